// Package automations is the write side of automations (SPEC §2.4):
// create, replace, activate and pause. Each command loads the automation's
// stream (automation-{id}), lets domain/automation decide, appends with the
// exact expected revision, and answers once the automations read model has
// passed the write (read-your-writes).
package automations

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/failure"
)

// Store is the event store as these commands need it.
type Store interface {
	ReadStream(ctx context.Context, stream string) ([]esdb.Recorded, int64, error)
	Append(ctx context.Context, stream string, expected int64, events ...esdb.Proposed) (esdb.AppendResult, error)
}

// Handler runs the commands. Store, WaitFunc and Now are required;
// CheckTemplateFunc (adapters/liquid's Check) validates templates, and
// NewIDFunc makes automation ids (random UUIDs when nil).
type Handler struct {
	Store             Store
	WaitFunc          func(ctx context.Context, pos esdb.Position) error
	Now               func() time.Time
	CheckTemplateFunc automation.CheckTemplateFunc
	NewIDFunc         func() string
}

// Load folds an automation's stream.
func Load(ctx context.Context, store Store, id string) (automation.State, int64, error) {
	recs, rev, err := store.ReadStream(ctx, esdb.AutomationStream(id))
	if err != nil {
		return automation.State{}, 0, err
	}
	var s automation.State
	for _, r := range recs {
		e, ok, err := automation.UnmarshalEvent(r.Type, r.Data)
		if err != nil {
			return automation.State{}, 0, err
		}
		if ok {
			s = automation.Evolve(s, e)
		}
	}
	return s, rev, nil
}

func (h *Handler) run(ctx context.Context, ws, id string, decide func(s automation.State, at time.Time) ([]automation.Event, error)) error {
	if _, err := uuid.Parse(id); err != nil {
		return failure.New(failure.NotFound, "automation not found")
	}
	for attempt := 0; ; attempt++ {
		s, rev, err := Load(ctx, h.Store, id)
		if err != nil {
			return err
		}
		events, err := decide(s, h.Now().UTC())
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		props := make([]esdb.Proposed, len(events))
		for i, e := range events {
			props[i] = esdb.Proposed{Type: e.EventType(), WorkspaceID: ws, Data: e}
		}
		res, err := h.Store.Append(ctx, esdb.AutomationStream(id), rev, props...)
		if errors.Is(err, esdb.ErrConcurrency) && attempt < 5 {
			continue
		}
		if errors.Is(err, esdb.ErrConcurrency) {
			return failure.Wrap(failure.Conflict, err, "the automation changed concurrently; retry")
		}
		if err != nil {
			return err
		}
		return h.WaitFunc(ctx, res.Position)
	}
}

func (h *Handler) validate(def automation.Definition) error {
	if err := automation.Validate(def, h.CheckTemplateFunc); err != nil {
		return automation.AsFailure(def, err)
	}
	return nil
}

// Create validates def and stores it as a new automation (draft, version
// 1); it returns the new id. A definition that does not validate is a
// failure with code invalid_automation naming the node at fault.
func (h *Handler) Create(ctx context.Context, ws string, def automation.Definition) (string, error) {
	if err := h.validate(def); err != nil {
		return "", err
	}
	id := ""
	if h.NewIDFunc != nil {
		id = h.NewIDFunc()
	} else {
		id = uuid.NewString()
	}
	err := h.run(ctx, ws, id, func(s automation.State, at time.Time) ([]automation.Event, error) {
		return automation.DecideCreate(s, ws, id, def, at)
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Replace validates def and stores it as the automation's next version;
// failure.NotFound if the workspace has no such automation.
func (h *Handler) Replace(ctx context.Context, ws, id string, def automation.Definition) error {
	if err := h.validate(def); err != nil {
		return err
	}
	return h.run(ctx, ws, id, func(s automation.State, at time.Time) ([]automation.Event, error) {
		return automation.DecideReplace(s, ws, def, at)
	})
}

// Activate makes the automation fire for events stored from now on.
func (h *Handler) Activate(ctx context.Context, ws, id string) error {
	return h.run(ctx, ws, id, func(s automation.State, at time.Time) ([]automation.Event, error) {
		return automation.DecideActivate(s, ws, at)
	})
}

// Pause stops the automation firing; runs already started carry on.
func (h *Handler) Pause(ctx context.Context, ws, id string) error {
	return h.run(ctx, ws, id, func(s automation.State, at time.Time) ([]automation.Event, error) {
		return automation.DecidePause(s, ws, at)
	})
}
