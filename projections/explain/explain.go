// Package explain serves the auditor's view (SPEC §2.6): it gathers, from
// the event store, the histories an explanation needs and hands them to the
// pure domain/explain.
//
// For an event: the events read model (projections/events) gives the
// event's workspace and $all position; the automations read model gives the
// ids of the workspace's automations; then every automation stream and the
// contact's stream are read from the event store and each of their events is
// marked as stored before or after the custom event in $all, so the
// explanation sees exactly the facts the run process manager saw when it
// handled the event (the manager folds automation events in $all order and
// reads the contact as of the event's position; see commands/runs.Manager).
// The runs a matched automation started are read from their run streams.
//
// For a run: the run stream is read and replayed through the current state
// machine (run.Decider.Replay).
package explain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/explain"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
	"github.com/larkhq/lark/projections/events"
)

// Store is the event store as explain needs it.
type Store interface {
	// ReadStream reads a whole stream; a missing stream is empty.
	ReadStream(ctx context.Context, stream string) ([]esdb.Recorded, int64, error)
}

// Explainer computes explanations.
type Explainer struct {
	Store   Store
	DB      *projections.DB
	Decider run.Decider
	// CatchUpEventsFunc, if set, brings the events read model up to the
	// event store's head; it is called when an event id is not found, so
	// that an event stored a moment ago is found (read-your-writes).
	CatchUpEventsFunc func(ctx context.Context) error
	// CatchUpAutomationsFunc, if set, waits until the automations read
	// model has passed pos, so that every automation created before the
	// event is listed.
	CatchUpAutomationsFunc func(ctx context.Context, pos esdb.Position) error
	// CatchUpRunsFunc, if set, brings the runs read model up to the event
	// store's head, so that an event reported processed lists every run the
	// manager started for it (the manager appends them before it moves its
	// checkpoint past the event).
	CatchUpRunsFunc func(ctx context.Context) error
	// Concurrency bounds the streams read at once (default 16).
	Concurrency int
}

// GetEvent returns a stored event with its processing status
// (GET /v1/events/{id}). ws "" finds it in any workspace.
func (x *Explainer) GetEvent(ctx context.Context, ws, id string) (events.Event, error) {
	q := events.Queries{DB: x.DB}
	e, err := q.Get(ctx, ws, id)
	if isNotFound(err) && x.CatchUpEventsFunc != nil {
		// Bounded: an id that was never stored must answer 404 promptly
		// even if the read model cannot prove it has reached the head.
		cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
		cerr := x.CatchUpEventsFunc(cctx)
		cancel()
		if cerr != nil && (ctx.Err() != nil || !errors.Is(cerr, context.DeadlineExceeded)) {
			return events.Event{}, fmt.Errorf("catch up the events read model: %w", cerr)
		}
		e, err = q.Get(ctx, ws, id)
	}
	if err == nil && e.Status == events.StatusProcessed && x.CatchUpRunsFunc != nil {
		cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
		cerr := x.CatchUpRunsFunc(cctx)
		cancel()
		if cerr != nil && (ctx.Err() != nil || !errors.Is(cerr, context.DeadlineExceeded)) {
			return events.Event{}, fmt.Errorf("catch up the runs read model: %w", cerr)
		}
		e, err = q.Get(ctx, ws, id)
	}
	return e, err
}

// catchUpTimeout bounds the wait for the events read model when an id is
// not found, and for the runs read model when an event is processed.
const catchUpTimeout = 2 * time.Second

func isNotFound(err error) bool {
	var fe *failure.Error
	return errors.As(err, &fe) && fe.Code == failure.NotFound
}

// Event explains a stored custom event (GET /v1/events/{id}/explain). ws ""
// finds it in any workspace.
func (x *Explainer) Event(ctx context.Context, ws, id string) (explain.EventExplanation, error) {
	ev, err := x.GetEvent(ctx, ws, id)
	if err != nil {
		return explain.EventExplanation{}, err
	}
	pos := ev.StorePosition()
	if x.CatchUpAutomationsFunc != nil {
		if err := x.CatchUpAutomationsFunc(ctx, pos); err != nil {
			return explain.EventExplanation{}, fmt.Errorf("catch up the automations read model: %w", err)
		}
	}
	var ids []string
	err = x.DB.Do(ctx, func(ctx context.Context) error {
		rows, err := x.DB.Pool.Query(ctx, `SELECT automation_id FROM automations WHERE workspace_id = $1 ORDER BY automation_id`, ev.WorkspaceID)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return explain.EventExplanation{}, fmt.Errorf("list automations: %w", err)
	}
	facts := explain.EventFacts{EventID: ev.ID, WorkspaceID: ev.WorkspaceID, Email: ev.EmailAddress, Name: ev.EventName,
		ReceivedAt: ev.ReceivedAt, Processed: ev.Status == events.StatusProcessed, RunIDFunc: run.RunID,
		Runs: map[string]explain.RunFound{}}
	facts.Automations = make([]explain.AutomationHistory, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(x.concurrency())
	for i, id := range ids {
		g.Go(func() error {
			h, err := x.automationHistory(gctx, id, pos)
			facts.Automations[i] = h
			return err
		})
	}
	g.Go(func() error {
		var err error
		facts.Contact, err = x.contactHistory(gctx, ev.WorkspaceID, ev.EmailAddress, pos)
		return err
	})
	if err := g.Wait(); err != nil {
		return explain.EventExplanation{}, err
	}
	// First pass: which runs should exist; then read them from history.
	first := explain.Event(facts)
	var mu sync.Mutex
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(x.concurrency())
	for _, m := range first.Matched {
		if m.RunID == "" {
			continue
		}
		g.Go(func() error {
			s, _, err := x.loadRun(gctx, m.RunID)
			if err != nil || s.Status == run.StatusNew {
				return err
			}
			mu.Lock()
			facts.Runs[m.RunID] = explain.RunFound{ID: m.RunID, Status: string(s.Status)}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return explain.EventExplanation{}, err
	}
	return explain.Event(facts), nil
}

func (x *Explainer) concurrency() int {
	if x.Concurrency > 0 {
		return x.Concurrency
	}
	return 16
}

func (x *Explainer) automationHistory(ctx context.Context, id string, pos esdb.Position) (explain.AutomationHistory, error) {
	h := explain.AutomationHistory{ID: id}
	recs, _, err := x.Store.ReadStream(ctx, esdb.AutomationStream(id))
	if err != nil {
		return h, fmt.Errorf("read automation %s: %w", id, err)
	}
	for _, r := range recs {
		e, ok, err := automation.UnmarshalEvent(r.Type, r.Data)
		if err != nil {
			return h, fmt.Errorf("automation %s@%d: %w", id, r.Revision, err)
		}
		if ok {
			h.Events = append(h.Events, explain.Historic[automation.Event]{Event: e, Before: r.Position.Less(pos)})
		}
	}
	return h, nil
}

func (x *Explainer) contactHistory(ctx context.Context, ws, email string, pos esdb.Position) ([]explain.Historic[contact.Event], error) {
	recs, _, err := x.Store.ReadStream(ctx, esdb.ContactStream(contact.ID(ws, email)))
	if err != nil {
		return nil, fmt.Errorf("read contact of event: %w", err)
	}
	var out []explain.Historic[contact.Event]
	for _, r := range recs {
		e, ok, err := contact.Decode(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("contact %s@%d: %w", r.Stream, r.Revision, err)
		}
		if !ok {
			continue
		}
		out = append(out, explain.Historic[contact.Event]{Event: e, Before: r.Position.Less(pos)})
	}
	return out, nil
}

// loadRun reads and decodes a run stream (a missing run folds to StatusNew).
func (x *Explainer) loadRun(ctx context.Context, id string) (run.State, []run.Event, error) {
	recs, _, err := x.Store.ReadStream(ctx, esdb.RunStream(id))
	if err != nil {
		return run.State{}, nil, fmt.Errorf("read run %s: %w", id, err)
	}
	history, err := DecodeRun(recs)
	if err != nil {
		return run.State{}, nil, err
	}
	return run.Fold(history), history, nil
}

// DecodeRun decodes a run stream's records.
func DecodeRun(recs []esdb.Recorded) ([]run.Event, error) {
	history := make([]run.Event, 0, len(recs))
	for _, r := range recs {
		e, err := run.Unmarshal(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("%s@%d: %w", r.Stream, r.Revision, err)
		}
		history = append(history, e)
	}
	return history, nil
}

// Run explains a run (GET /v1/automation-runs/{id}/explain): every step
// with its inputs and outputs, and replay_verified. ws "" finds it in any
// workspace; a run of another workspace is not found.
func (x *Explainer) Run(ctx context.Context, ws, id string) (explain.RunExplanation, error) {
	recs, _, err := x.Store.ReadStream(ctx, esdb.RunStream(id))
	if err != nil {
		return explain.RunExplanation{}, fmt.Errorf("read run %s: %w", id, err)
	}
	if len(recs) == 0 || (ws != "" && recs[0].WorkspaceID != "" && recs[0].WorkspaceID != ws) {
		return explain.RunExplanation{}, failure.New(failure.NotFound, "automation run not found")
	}
	history, err := DecodeRun(recs)
	if err != nil {
		return explain.RunExplanation{}, err
	}
	xr := explain.Run(x.Decider, history)
	if ws != "" && xr.WorkspaceID != ws {
		return explain.RunExplanation{}, failure.New(failure.NotFound, "automation run not found")
	}
	return xr, nil
}
