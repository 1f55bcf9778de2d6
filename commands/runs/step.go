package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/run"
)

// Store is the event store as the run commands need it.
type Store interface {
	ReadStream(ctx context.Context, stream string) ([]esdb.Recorded, int64, error)
	Append(ctx context.Context, stream string, expected int64, events ...esdb.Proposed) (esdb.AppendResult, error)
}

// Load reads and folds a run stream. It returns the state, the history and
// the stream's revision (esdb.NoStream when the run does not exist).
func Load(ctx context.Context, store Store, runID string) (run.State, []run.Event, int64, error) {
	recs, rev, err := store.ReadStream(ctx, esdb.RunStream(runID))
	if err != nil {
		return run.State{}, nil, 0, err
	}
	history := make([]run.Event, 0, len(recs))
	for _, r := range recs {
		e, err := run.Unmarshal(r.Type, r.Data)
		if err != nil {
			return run.State{}, nil, 0, fmt.Errorf("run %s@%d: %w", runID, r.Revision, err)
		}
		history = append(history, e)
	}
	return run.Fold(history), history, rev, nil
}

func proposed(ws string, evs []run.Event) []esdb.Proposed {
	out := make([]esdb.Proposed, len(evs))
	for i, e := range evs {
		out[i] = esdb.Proposed{Type: e.EventType(), WorkspaceID: ws, Data: e}
	}
	return out
}

// errDropped means the input is no longer wanted (duplicate, stale, run
// ended): nothing was appended and nothing needs to be.
var errDropped = errors.New("input dropped")

// step decides the command built by mk against the run's current state and
// appends the result with the stream's exact expected revision, retrying
// on a concurrent append (the input is then re-decided against the new
// state). mk returns ok=false when the state no longer wants the input.
// It returns the appended events, or errDropped.
func step(ctx context.Context, store Store, d run.Decider, runID string, mk func(s run.State, history []run.Event) (run.Command, bool)) ([]run.Event, error) {
	for attempt := 0; ; attempt++ {
		s, history, rev, err := Load(ctx, store, runID)
		if err != nil {
			return nil, err
		}
		if rev == esdb.NoStream || s.Ended() {
			return nil, errDropped
		}
		cmd, ok := mk(s, history)
		if !ok {
			return nil, errDropped
		}
		evs, err := d.Decide(s, cmd)
		if errors.Is(err, run.ErrUnexpectedInput) || errors.Is(err, run.ErrEnded) {
			return nil, errDropped
		}
		if err != nil {
			return nil, fmt.Errorf("decide run %s: %w", runID, err)
		}
		_, err = store.Append(ctx, esdb.RunStream(runID), rev, proposed(s.WorkspaceID, evs)...)
		if errors.Is(err, esdb.ErrConcurrency) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("append to run %s: %w", runID, err)
		}
		return evs, nil
	}
}

// countEnd records run endings among appended events.
func countEnd(m *Metrics, evs []run.Event) {
	for _, e := range evs {
		switch e.(type) {
		case run.RunCompleted:
			m.runEnded(string(run.StatusCompleted))
		case run.RunFailed:
			m.runEnded(string(run.StatusFailed))
		}
	}
}
