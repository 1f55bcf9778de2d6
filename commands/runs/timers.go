package runs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
)

// Timers is the timer worker: it fires delays whose due time has come.
// Due times come from recorded history (DelayStarted.Due, derived from the
// trigger's received_at and recorded results), so they survive restarts;
// the pending ones are in run_timers (projections/runs). Firing decides
// TimerFired against the run's state and appends with the stream's exact
// expected revision, so a timer fires once even if two passes race.
type Timers struct {
	Store   Store
	DB      *projections.DB
	Decider run.Decider
	Now     func() time.Time
	// Poll is how often run_timers is read (default 250 ms).
	Poll    time.Duration
	Logger  *slog.Logger
	Metrics *Metrics
}

func (t *Timers) defaults() {
	if t.Now == nil {
		t.Now = time.Now
	}
	if t.Poll <= 0 {
		t.Poll = 250 * time.Millisecond
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run fires timers until ctx ends, in one process of the deployment at a time.
func (t *Timers) Run(ctx context.Context) error {
	t.defaults()
	return exclusive(ctx, t.DB, "timers", t.Logger, func(ctx context.Context) error {
		return poll(ctx, t.Poll, t.Logger, "timers", t.Tick)
	})
}

// Tick fires every timer due now.
func (t *Timers) Tick(ctx context.Context) error {
	t.defaults()
	type row struct{ runID, node string }
	var due []row
	err := t.DB.Do(ctx, func(ctx context.Context) error {
		due = due[:0]
		rows, err := t.DB.Pool.Query(ctx, `SELECT run_id, node FROM run_timers WHERE due <= $1 ORDER BY due LIMIT 1000`, t.Now())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.runID, &r.node); err != nil {
				return err
			}
			due = append(due, r)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("read timers: %w", err)
	}
	for _, r := range due {
		evs, err := step(ctx, t.Store, t.Decider, r.runID, func(s run.State, _ []run.Event) (run.Command, bool) {
			w := s.Awaiting
			now := t.Now().UTC()
			if w.Kind != run.AwaitTimer || w.Node != r.node || now.Before(w.Due) {
				return nil, false
			}
			return run.TimerFired{Node: w.Node, Due: w.Due, At: now}, true
		})
		if errors.Is(err, errDropped) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.Logger.Warn("fire timer", "run_id", r.runID, "node", r.node, "error", err)
			continue
		}
		t.Metrics.timerFired()
		countEnd(t.Metrics, evs)
	}
	return nil
}
