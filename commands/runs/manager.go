// Package runs is the automation run side of the write model: the process
// manager that starts runs from stored custom events ([Manager]), the email
// worker that performs queued emails ([Sender]) and the timer worker that
// fires delays ([Timers]). All three decide through domain/run's Decider and
// append to run-{id} streams with exact expected revisions, so a duplicate
// or late input is harmless.
//
// Where it sits: the Manager is a projections.Projection over $all
// (prefixes events- and automation-), run by a projections.Runner, so it
// consumes events in stored order from a checkpoint, in one process at a
// time. The Sender and Timers poll work tables that projections/runs derives
// from run history (run_email_outbox, run_timers).
package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/domain/run"
)

// ManagerName is the manager's checkpoint and lock name.
const ManagerName = "run-manager"

// Manager is the process manager. For each stored CustomEventReceived it
// starts one run per automation of the workspace that was active at that
// point of history and whose trigger event name is byte-for-byte equal, if
// the contact existed at that point of history.
//
// "At that point of history" is exact and deterministic:
//   - Automations: the manager folds automation events itself, in $all
//     order, into table run_manager_automations in the same transaction as
//     its checkpoint, so when it handles an event it sees every automation
//     event stored before it and none stored after.
//   - Contacts: it reads the contact's stream and folds only the events
//     whose $all position is before the custom event's.
//
// Run ids are derived from (event id, automation id) and RunStarted is
// appended with expected revision "no stream", so handling an event twice
// (after a crash before the checkpoint moved) starts one run.
type Manager struct {
	Store   Store
	Decider run.Decider
	// Now stamps RunStarted.At (informational).
	Now func() time.Time
	// Policy is recorded in each new run (zero fields take defaults).
	Policy run.Policy
	// Concurrency bounds the run starts in flight within a batch (default 32).
	Concurrency int
	Logger      *slog.Logger
	Metrics     *Metrics

	defs sync.Map // defKey → automation.Definition; versions are immutable
}

type defKey struct {
	id      string
	version int
}

// Name implements projections.Projection.
func (m *Manager) Name() string { return ManagerName }

// Prefixes implements projections.Projection.
func (m *Manager) Prefixes() []string {
	return []string{esdb.Prefix(esdb.CategoryEvents), esdb.Prefix(esdb.CategoryAutomation)}
}

// match is an automation version that fires for an event.
type match struct {
	id      string
	version int
}

// startJob is one stored event and the automations it fires.
type startJob struct {
	pos     esdb.Position
	event   ingest.Received
	matches []match
}

// Apply implements projections.Projection: automation events update the
// manager's view; custom events are matched against it in order, then the
// batch's runs are started concurrently (their order does not matter: each
// run's inputs are fixed by history) before the checkpoint moves.
func (m *Manager) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	memo := map[[2]string][]match{}
	var jobs []startJob
	for _, ev := range events {
		switch {
		case strings.HasPrefix(ev.Stream, esdb.Prefix(esdb.CategoryAutomation)):
			if err := m.applyAutomation(ctx, tx, ev); err != nil {
				return err
			}
			clear(memo)
		case ev.Type == ingest.TypeReceived:
			var rec ingest.Received
			if err := decodeNumbers(ev.Data, &rec); err != nil {
				return fmt.Errorf("run manager: %s@%d: %w", ev.Stream, ev.Revision, err)
			}
			key := [2]string{rec.WorkspaceID, rec.Name}
			ms, ok := memo[key]
			if !ok {
				var err error
				if ms, err = m.active(ctx, tx, rec.WorkspaceID, rec.Name); err != nil {
					return err
				}
				memo[key] = ms
				if err := m.loadDefinitions(ctx, tx, ms); err != nil {
					return err
				}
			}
			if len(ms) > 0 {
				jobs = append(jobs, startJob{pos: ev.Position, event: rec, matches: ms})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	limit := m.Concurrency
	if limit <= 0 {
		limit = 32
	}
	g.SetLimit(limit)
	for _, j := range jobs {
		g.Go(func() error { return m.start(gctx, j) })
	}
	return g.Wait()
}

// loadDefinitions caches the definitions of matched versions not cached
// yet, read in the transaction at the point of the match (so exactly the
// versions matched, even when a later event of the batch replaces them).
func (m *Manager) loadDefinitions(ctx context.Context, tx pgx.Tx, ms []match) error {
	for _, mt := range ms {
		if _, ok := m.defs.Load(defKey{mt.id, mt.version}); ok {
			continue
		}
		var raw []byte
		var version int
		if err := tx.QueryRow(ctx, `SELECT version, definition FROM run_manager_automations WHERE automation_id = $1`,
			mt.id).Scan(&version, &raw); err != nil {
			return fmt.Errorf("run manager: load automation %s: %w", mt.id, err)
		}
		if version != mt.version {
			return fmt.Errorf("run manager: automation %s is at version %d, matched %d", mt.id, version, mt.version)
		}
		def, err := automation.Parse(raw)
		if err != nil {
			return fmt.Errorf("run manager: automation %s: %w", mt.id, err)
		}
		m.defs.Store(defKey{mt.id, mt.version}, def)
	}
	return nil
}

func (m *Manager) applyAutomation(ctx context.Context, tx pgx.Tx, ev esdb.Recorded) error {
	e, ok, err := automation.UnmarshalEvent(ev.Type, ev.Data)
	if err != nil || !ok {
		return err
	}
	rev := int64(ev.Revision)
	switch e := e.(type) {
	case automation.Created:
		def, err := json.Marshal(e.Definition)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO run_manager_automations (automation_id, workspace_id, trigger_event_name,
				status, version, definition, revision) VALUES ($1, $2, $3, 'draft', $4, $5, $6)
			ON CONFLICT (automation_id) DO NOTHING`,
			e.AutomationID, e.WorkspaceID, e.Definition.Trigger.EventName, e.Version, def, rev)
		return err
	case automation.Updated:
		def, err := json.Marshal(e.Definition)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE run_manager_automations SET trigger_event_name = $2, version = $3,
				definition = $4, revision = $5 WHERE automation_id = $1 AND revision < $5`,
			e.AutomationID, e.Definition.Trigger.EventName, e.Version, def, rev)
		return err
	case automation.Activated:
		_, err := tx.Exec(ctx, `UPDATE run_manager_automations SET status = 'active', revision = $2
			WHERE automation_id = $1 AND revision < $2`, e.AutomationID, rev)
		return err
	case automation.Paused:
		_, err := tx.Exec(ctx, `UPDATE run_manager_automations SET status = 'paused', revision = $2
			WHERE automation_id = $1 AND revision < $2`, e.AutomationID, rev)
		return err
	}
	return nil
}

// active lists the automations active for a workspace and exact event name
// (Postgres text equality with the database's deterministic collation is
// byte-for-byte), ordered by id so that a batch starts them in a stable order.
func (m *Manager) active(ctx context.Context, tx pgx.Tx, ws, name string) ([]match, error) {
	rows, err := tx.Query(ctx, `SELECT automation_id, version FROM run_manager_automations
		WHERE workspace_id = $1 AND trigger_event_name = $2 AND status = 'active' ORDER BY automation_id`, ws, name)
	if err != nil {
		return nil, fmt.Errorf("run manager: match %q: %w", name, err)
	}
	defer rows.Close()
	var out []match
	for rows.Next() {
		var mt match
		if err := rows.Scan(&mt.id, &mt.version); err != nil {
			return nil, err
		}
		out = append(out, mt)
	}
	return out, rows.Err()
}

// start reads the contact as of the event and starts one run per match.
func (m *Manager) start(ctx context.Context, j startJob) error {
	c, found, err := ContactAt(ctx, m.Store, j.event.WorkspaceID, j.event.Email, j.pos)
	if err != nil {
		return err
	}
	if !found {
		for range j.matches {
			m.Metrics.skipped("no_contact")
		}
		return nil
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	for _, mt := range j.matches {
		v, _ := m.defs.Load(defKey{mt.id, mt.version})
		def := v.(automation.Definition)
		runID := run.RunID(j.event.EventID, mt.id)
		evs, err := m.Decider.Decide(run.State{}, run.Start{
			RunID: runID, WorkspaceID: j.event.WorkspaceID, AutomationID: mt.id, AutomationVersion: mt.version,
			Definition: def,
			Trigger: run.Trigger{EventID: j.event.EventID, EventName: j.event.Name,
				Properties: j.event.Properties, ReceivedAt: j.event.ReceivedAt},
			Contact: automation.Contact{EmailAddress: c.Email, FirstName: c.FirstName, LastName: c.LastName,
				Properties: c.Properties},
			ContactID: c.ID, Policy: m.Policy, At: now().UTC(),
		})
		if err != nil {
			return fmt.Errorf("run manager: start run %s: %w", runID, err)
		}
		_, err = m.Store.Append(ctx, esdb.RunStream(runID), esdb.NoStream, proposed(j.event.WorkspaceID, evs)...)
		if errors.Is(err, esdb.ErrConcurrency) {
			m.Metrics.skipped("already_started")
			continue
		}
		if err != nil {
			return fmt.Errorf("run manager: append run %s: %w", runID, err)
		}
		m.Metrics.runStarted()
		countEnd(m.Metrics, evs)
	}
	return nil
}

// ContactAt returns the contact of a workspace with the given email as it
// was just before position pos in $all: the contact's stream folded over
// the events stored before pos. found is false when there was no contact
// then (never created, or deleted).
func ContactAt(ctx context.Context, store Store, ws, email string, pos esdb.Position) (contact.State, bool, error) {
	recs, _, err := store.ReadStream(ctx, esdb.ContactStream(contact.ID(ws, email)))
	if err != nil {
		return contact.State{}, false, fmt.Errorf("read contact of event: %w", err)
	}
	var s contact.State
	for _, r := range recs {
		if !r.Position.Less(pos) {
			break
		}
		e, ok, err := contact.Decode(r.Type, r.Data)
		if err != nil {
			return contact.State{}, false, fmt.Errorf("contact %s@%d: %w", r.Stream, r.Revision, err)
		}
		if ok {
			s = contact.Evolve(s, e)
		}
	}
	return s, s.Exists, nil
}

// decodeNumbers decodes JSON keeping numbers as json.Number, the form the
// condition evaluator and run snapshots expect.
func decodeNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
