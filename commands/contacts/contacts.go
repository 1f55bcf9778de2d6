// Package contacts is the write side of contacts: create, patch, delete.
// Each command loads the contact's stream (id derived from workspace and
// lower-cased email), lets domain/contact decide, appends with the exact
// expected revision, and answers only once the contacts read model has
// passed the write (read-your-writes).
package contacts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/failure"
)

// Store is the event store as these commands need it.
type Store interface {
	ReadStream(ctx context.Context, stream string) ([]esdb.Recorded, int64, error)
	Append(ctx context.Context, stream string, expected int64, events ...esdb.Proposed) (esdb.AppendResult, error)
}

// Handler runs the commands.
type Handler struct {
	Store    Store
	WaitFunc func(ctx context.Context, pos esdb.Position) error
	Now      func() time.Time
}

func toEvents(recs []esdb.Recorded) ([]contact.Event, error) {
	out := make([]contact.Event, 0, len(recs))
	for _, r := range recs {
		e, ok, err := contact.Decode(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("%s@%d: %w", r.Stream, r.Revision, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func (h *Handler) run(ctx context.Context, ws, email string, decide func(s contact.State, id string, at time.Time) ([]contact.Event, error)) error {
	id := contact.ID(ws, email)
	stream := esdb.ContactStream(id)
	for attempt := 0; ; attempt++ {
		recs, rev, err := h.Store.ReadStream(ctx, stream)
		if err != nil {
			return err
		}
		evs, err := toEvents(recs)
		if err != nil {
			return err
		}
		events, err := decide(contact.Fold(evs), id, h.Now().UTC())
		if err != nil {
			return err
		}
		props := make([]esdb.Proposed, len(events))
		for i, e := range events {
			props[i] = esdb.Proposed{Type: e.EventType(), WorkspaceID: ws, Data: e}
		}
		res, err := h.Store.Append(ctx, stream, rev, props...)
		if errors.Is(err, esdb.ErrConcurrency) && attempt < 5 {
			continue
		}
		if errors.Is(err, esdb.ErrConcurrency) {
			return failure.Wrap(failure.Conflict, err, "the contact changed concurrently; retry")
		}
		if err != nil {
			return err
		}
		return h.WaitFunc(ctx, res.Position)
	}
}

// Create adds a contact; failure.ContactExists if the email is taken.
func (h *Handler) Create(ctx context.Context, ws string, f contact.Fields) error {
	return h.run(ctx, ws, f.Email, func(s contact.State, id string, at time.Time) ([]contact.Event, error) {
		return contact.DecideCreate(s, ws, id, f, at)
	})
}

// Patch merges fields into a contact; failure.NotFound if there is none.
func (h *Handler) Patch(ctx context.Context, ws, email string, f contact.Fields) error {
	return h.run(ctx, ws, email, func(s contact.State, _ string, at time.Time) ([]contact.Event, error) {
		return contact.DecidePatch(s, ws, f, at)
	})
}

// Delete removes a contact; failure.NotFound if there is none.
func (h *Handler) Delete(ctx context.Context, ws, email string) error {
	return h.run(ctx, ws, email, func(s contact.State, _ string, at time.Time) ([]contact.Event, error) {
		return contact.DecideDelete(s, ws, at)
	})
}
