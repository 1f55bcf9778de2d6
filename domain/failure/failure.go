// Package failure is Lark's one application error type: a machine-readable
// code, a human message and, where one input field is at fault, its name.
// The HTTP adapter maps codes to statuses in a single table; everything
// inside (domain, commands, projections) speaks only in these codes.
package failure

import (
	"errors"
	"fmt"
)

// Codes shared across Lark. 400-class validation codes name the problem.
const (
	MissingField      = "missing_field"       // a required field is absent or null
	InvalidType       = "invalid_type"        // a field has the wrong JSON type
	InvalidValue      = "invalid_value"       // a field is empty, malformed or out of range
	InvalidEmail      = "invalid_email"       // email_address is not a plausible address
	TooLong           = "value_too_long"      // a string is longer than allowed
	TooManyProperties = "too_many_properties" // properties has too many keys
	TooDeep           = "too_deeply_nested"   // properties nest deeper than allowed
	InvalidJSON       = "invalid_json"        // body is not valid JSON, not UTF-8, or holds NUL
	InvalidBody       = "invalid_body"        // body is JSON but not the expected shape
	TooManyEvents     = "too_many_events"     // a batch holds more events than allowed

	Unauthorized        = "unauthorized"
	NotFound            = "not_found"
	ContactExists       = "contact_exists"
	Conflict            = "conflict"              // a concurrent write won; retry
	IdempotencyInFlight = "idempotency_in_flight" // the first request with this key is still running
	PayloadTooLarge     = "payload_too_large"
	UnsupportedMedia    = "unsupported_media_type"
	UsageLimitReached   = "usage_limit_reached"
	Unavailable         = "unavailable" // a dependency (event store, Postgres) cannot be reached
	Internal            = "internal"
)

// Error is an application error. The zero Field means "not about one field".
type Error struct {
	Code    string
	Message string
	Field   string
	Err     error // the cause, if any; never shown to clients
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Code + ": " + e.Message
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code and a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Field returns an error about one input field.
func Field(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code whose cause is err.
func Wrap(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// Code returns the code of the first *Error in err's chain, or Internal.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code string) bool { return err != nil && Code(err) == code }
