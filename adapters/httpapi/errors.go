package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/failure"
)

// statusOf is THE mapping from Lark error codes to HTTP statuses.
var statusOf = map[string]int{
	failure.MissingField:        http.StatusBadRequest,
	failure.InvalidType:         http.StatusBadRequest,
	failure.InvalidValue:        http.StatusBadRequest,
	failure.InvalidEmail:        http.StatusBadRequest,
	failure.TooLong:             http.StatusBadRequest,
	failure.TooManyProperties:   http.StatusBadRequest,
	failure.TooDeep:             http.StatusBadRequest,
	failure.InvalidJSON:         http.StatusBadRequest,
	failure.InvalidBody:         http.StatusBadRequest,
	failure.TooManyEvents:       http.StatusBadRequest,
	failure.Unauthorized:        http.StatusUnauthorized,
	failure.NotFound:            http.StatusNotFound,
	codeMethodNotAllowed:        http.StatusMethodNotAllowed,
	failure.ContactExists:       http.StatusConflict,
	failure.Conflict:            http.StatusConflict,
	failure.IdempotencyInFlight: http.StatusConflict,
	failure.PayloadTooLarge:     http.StatusRequestEntityTooLarge,
	failure.UnsupportedMedia:    http.StatusUnsupportedMediaType,
	failure.UsageLimitReached:   http.StatusTooManyRequests,
	failure.Internal:            http.StatusInternalServerError,
	failure.Unavailable:         http.StatusServiceUnavailable,

	automation.InvalidAutomation: http.StatusBadRequest,
}

const codeMethodNotAllowed = "method_not_allowed"

// Status is the HTTP status of an error code (500 for unknown codes).
func Status(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is the error shape of SPEC §2.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func bodyOf(e *failure.Error) errorBody {
	return errorBody{Code: e.Code, Message: e.Message, Field: e.Field}
}

// toFailure turns any error into a *failure.Error.
func toFailure(err error) *failure.Error {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return fe
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return failure.New(failure.NotFound, "no such route")
		case http.StatusMethodNotAllowed:
			return failure.New(codeMethodNotAllowed, "method not allowed")
		case http.StatusRequestEntityTooLarge:
			return failure.New(failure.PayloadTooLarge, "request body too large")
		case http.StatusUnsupportedMediaType:
			return failure.New(failure.UnsupportedMedia, "Content-Type must be application/json")
		}
	}
	return failure.Wrap(failure.Internal, err, "internal error")
}

// errorHandler is echo's HTTPErrorHandler: one place that renders errors.
func (a *api) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	fe := toFailure(err)
	status := Status(fe.Code)
	if status >= 500 {
		a.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "error", err)
	}
	if fe.Code == failure.Unavailable || fe.Code == failure.IdempotencyInFlight {
		c.Response().Header().Set("Retry-After", "1")
	}
	if fe.Code == failure.Internal {
		fe = failure.New(failure.Internal, "internal error")
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, map[string]errorBody{"error": bodyOf(fe)})
}
