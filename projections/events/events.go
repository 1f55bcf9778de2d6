// Package events is the read model of stored custom events: the "events"
// projection (from events-{ws}-{yyyymm} streams) into table events, which
// records where each event lives in the event store (stream, revision,
// $all position) under its global id, and the query behind
// GET /v1/events/{id}: the event with its processing status (whether the
// run process manager has handled it yet, and the runs it started).
//
// Explain (projections/explain) and `lark explain event ID` find an event,
// and so its workspace, through this table.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/projections"
)

// Name is the projection's checkpoint name.
const Name = "events"

// ManagerName is the checkpoint name of the run process manager
// (commands/runs.ManagerName; repeated here so that the read side does not
// import the write side).
const ManagerName = "run-manager"

// Projection keeps the events table.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryEvents)} }

// Apply implements projections.Projection: one multi-row insert per batch;
// an event already recorded is left alone, so a replay is a no-op.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, evs []esdb.Recorded) error {
	n := len(evs)
	ids, wss, streams, emails, lowers, names, props, commits, prepares := make([]string, 0, n), make([]string, 0, n),
		make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n),
		make([]string, 0, n), make([]string, 0, n)
	revs := make([]int64, 0, n)
	ats := make([]time.Time, 0, n)
	for _, ev := range evs {
		if ev.Type != ingest.TypeReceived {
			continue
		}
		var rec struct {
			ingest.Received
			Properties json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(ev.Data, &rec); err != nil {
			return fmt.Errorf("events: %s@%d: %w", ev.Stream, ev.Revision, err)
		}
		p := string(rec.Properties)
		if p == "" || p == "null" {
			p = "{}"
		}
		id := rec.EventID
		if id == "" {
			id = ev.ID
		}
		ids, wss, streams = append(ids, id), append(wss, rec.WorkspaceID), append(streams, ev.Stream)
		emails, lowers, names = append(emails, rec.Email), append(lowers, strings.ToLower(rec.Email)), append(names, rec.Name)
		props, revs, ats = append(props, p), append(revs, int64(ev.Revision)), append(ats, rec.ReceivedAt)
		commits = append(commits, strconv.FormatUint(ev.Position.Commit, 10))
		prepares = append(prepares, strconv.FormatUint(ev.Position.Prepare, 10))
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO events (event_id, workspace_id, stream, revision, commit_position,
			prepare_position, email, email_lower, event_name, properties, received_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::numeric[], $6::numeric[],
			$7::text[], $8::text[], $9::text[], $10::text[]::jsonb[], $11::timestamptz[])
		ON CONFLICT (event_id) DO NOTHING`,
		ids, wss, streams, revs, commits, prepares, emails, lowers, names, props, ats)
	if err != nil {
		return fmt.Errorf("events: insert %d: %w", len(ids), err)
	}
	return nil
}

// Status is an event's processing status.
type Status string

// Processing statuses.
const (
	// StatusReceived: stored; the run process manager has not reached it yet.
	StatusReceived Status = "received"
	// StatusProcessed: the run process manager has handled it (and started
	// the runs listed, possibly none).
	StatusProcessed Status = "processed"
)

// Position is a position in $all as the API shows it.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Run is a run an event started, as GET /v1/events/{id} lists it.
type Run struct {
	ID           string `json:"id"`
	AutomationID string `json:"automation_id"`
	Status       string `json:"status"`
}

// Event is a stored custom event with its processing status.
type Event struct {
	ID           string          `json:"id"`
	WorkspaceID  string          `json:"workspace_id"`
	EmailAddress string          `json:"email_address"`
	EventName    string          `json:"event_name"`
	Properties   json.RawMessage `json:"properties"`
	ReceivedAt   time.Time       `json:"received_at"`
	Stream       string          `json:"stream"`
	Revision     int64           `json:"revision"`
	Position     Position        `json:"position"`
	Status       Status          `json:"status"`
	// Runs are the runs it started, from the runs read model (which may
	// trail the process manager by a moment).
	Runs []Run `json:"runs"`
}

// StorePosition is the event's $all position in the event-store adapter's type.
func (e Event) StorePosition() esdb.Position {
	return esdb.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
}

// Queries reads the events read model.
type Queries struct {
	DB *projections.DB
}

// Get returns the event with the given id and its processing status, or a
// failure.NotFound error. workspaceID "" finds the event in any workspace
// (the operator's CLI); otherwise an event of another workspace is not found.
func (q Queries) Get(ctx context.Context, workspaceID, id string) (Event, error) {
	var e Event
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		var commit, prepare string
		err := q.DB.Pool.QueryRow(ctx, `SELECT event_id, workspace_id, email, event_name, properties, received_at,
				stream, revision, commit_position::text, prepare_position::text
			FROM events WHERE event_id = $1 AND ($2 = '' OR workspace_id = $2)`, id, workspaceID).
			Scan(&e.ID, &e.WorkspaceID, &e.EmailAddress, &e.EventName, &e.Properties, &e.ReceivedAt,
				&e.Stream, &e.Revision, &commit, &prepare)
		if err != nil {
			return err
		}
		if e.Position.Commit, err = strconv.ParseUint(commit, 10, 64); err != nil {
			return err
		}
		if e.Position.Prepare, err = strconv.ParseUint(prepare, 10, 64); err != nil {
			return err
		}
		cp, err := projections.Checkpoint(ctx, q.DB.Pool, ManagerName)
		if err != nil {
			return err
		}
		e.Status = StatusReceived
		if !cp.Less(e.StorePosition()) {
			e.Status = StatusProcessed
		}
		rows, err := q.DB.Pool.Query(ctx, `SELECT run_id, automation_id, status FROM automation_runs
			WHERE trigger_event_id = $1 ORDER BY automation_id`, id)
		if err != nil {
			return err
		}
		e.Runs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Run, error) {
			var x Run
			return x, r.Scan(&x.ID, &x.AutomationID, &x.Status)
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, failure.New(failure.NotFound, "event not found")
	}
	if err != nil {
		return Event{}, err
	}
	if e.Runs == nil {
		e.Runs = []Run{}
	}
	return e, nil
}
