package httpapi

import (
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/commands/ingest"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
)

// MaxIdempotencyKeyBytes bounds the Idempotency-Key header.
const MaxIdempotencyKeyBytes = 255

func (a *api) send(c echo.Context, events []payload.Object) ([]ingest.Result, error) {
	p := principal(c)
	key := c.Request().Header.Get("Idempotency-Key")
	if len(key) > MaxIdempotencyKeyBytes || !utf8.ValidString(key) {
		return nil, failure.Field(failure.InvalidValue, "Idempotency-Key",
			"Idempotency-Key must be UTF-8 text of at most %d bytes", MaxIdempotencyKeyBytes)
	}
	return a.SendFunc(c.Request().Context(), ingest.Request{
		WorkspaceID:    p.WorkspaceID,
		EventLimit:     p.EventLimit,
		IdempotencyKey: key,
		Events:         events,
	})
}

func (a *api) postEvent(c echo.Context) error {
	obj, err := payload.Decode(body(c))
	if err != nil {
		return err
	}
	res, err := a.send(c, []payload.Object{obj})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return failure.New(failure.Internal, "expected one result, got %d", len(res))
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	return data(c, http.StatusOK, map[string]any{"queued": true, "id": res[0].ID})
}

type batchResult struct {
	Status int        `json:"status"`
	ID     string     `json:"id,omitempty"`
	Error  *errorBody `json:"error,omitempty"`
}

func (a *api) postBatch(c echo.Context) error {
	obj, err := payload.Decode(body(c))
	if err != nil {
		return err
	}
	raw, ok := obj["events"]
	if !ok || raw == nil {
		return failure.Field(failure.MissingField, "events", "events is required")
	}
	list, ok := raw.([]any)
	if !ok {
		return failure.Field(failure.InvalidType, "events", "events must be an array")
	}
	if len(list) > ingest.MaxBatchEvents {
		return failure.Field(failure.TooManyEvents, "events", "a batch holds at most %d events, got %d", ingest.MaxBatchEvents, len(list))
	}
	events := make([]payload.Object, len(list))
	for i, v := range list {
		if o, err := payload.FromValue(v); err == nil {
			events[i] = o
		}
	}
	res, err := a.send(c, events)
	if err != nil {
		return err
	}
	out := make([]batchResult, len(res))
	for i, r := range res {
		if r.Err != nil {
			b := bodyOf(r.Err)
			out[i] = batchResult{Status: Status(r.Err.Code), Error: &b}
		} else {
			out[i] = batchResult{Status: http.StatusOK, ID: r.ID}
		}
	}
	return data(c, http.StatusOK, map[string]any{"results": out})
}

func (a *api) getUsage(c echo.Context) error {
	u, err := a.UsageFunc(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	return data(c, http.StatusOK, u)
}

func (a *api) createContact(c echo.Context) error {
	obj, err := payload.Decode(body(c))
	if err != nil {
		return err
	}
	f, err := contact.ParseCreate(obj, a.Limits)
	if err != nil {
		return err
	}
	ws := principal(c).WorkspaceID
	if err := a.CreateContactFunc(c.Request().Context(), ws, f); err != nil {
		return err
	}
	ct, err := a.GetContactFunc(c.Request().Context(), ws, f.Email)
	if err != nil {
		return err
	}
	return data(c, http.StatusCreated, ct)
}

func (a *api) getContact(c echo.Context) error {
	ct, err := a.GetContactFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "email"))
	if err != nil {
		return err
	}
	return data(c, http.StatusOK, ct)
}

func (a *api) patchContact(c echo.Context) error {
	obj, err := payload.Decode(body(c))
	if err != nil {
		return err
	}
	f, err := contact.ParsePatch(obj, a.Limits)
	if err != nil {
		return err
	}
	ws, email := principal(c).WorkspaceID, pathParam(c, "email")
	if err := a.PatchContactFunc(c.Request().Context(), ws, email, f); err != nil {
		return err
	}
	ct, err := a.GetContactFunc(c.Request().Context(), ws, email)
	if err != nil {
		return err
	}
	return data(c, http.StatusOK, ct)
}

func (a *api) deleteContact(c echo.Context) error {
	if err := a.DeleteContactFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "email")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *api) listContacts(c echo.Context) error {
	limit, cursor, err := paging(c)
	if err != nil {
		return err
	}
	items, next, err := a.ListContactsFunc(c.Request().Context(), principal(c).WorkspaceID, limit, cursor)
	if err != nil {
		return err
	}
	return page(c, items, next)
}

func (a *api) createKey(c echo.Context) error {
	obj, err := payload.Decode(body(c))
	if err != nil {
		return err
	}
	name, _, err := obj.String("name", true, 0)
	if err != nil {
		return err
	}
	k, err := a.CreateKeyFunc(c.Request().Context(), principal(c).WorkspaceID, name)
	if err != nil {
		return err
	}
	return data(c, http.StatusCreated, k)
}

func (a *api) listKeys(c echo.Context) error {
	limit, cursor, err := paging(c)
	if err != nil {
		return err
	}
	items, next, err := a.ListKeysFunc(c.Request().Context(), principal(c).WorkspaceID, limit, cursor)
	if err != nil {
		return err
	}
	return page(c, items, next)
}

func (a *api) revokeKey(c echo.Context) error {
	if err := a.RevokeKeyFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
