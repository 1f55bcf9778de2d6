// Package runs is the automation-runs read model: the "runs" projection
// (from run-{id} streams) into automation_runs (one row per run) and
// automation_run_steps (one row per recorded event), plus the work tables
// the email sender and the timers poll (run_email_outbox, run_timers), and
// the queries behind GET /v1/automation-runs.
package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/run"
)

// Name is the projection's checkpoint name.
const Name = "runs"

// Projection keeps the runs tables. RetryDelayFunc gives the wait before
// email attempt n+1 after attempt n failed with a temporary error
// (nil: [DefaultRetryDelay]); it must be a pure function so that a rebuild
// produces the same rows.
type Projection struct {
	RetryDelayFunc func(failedAttempt int) time.Duration
}

// DefaultRetryDelay doubles from 1 s (1, 2, 4, ...) up to 5 minutes.
func DefaultRetryDelay(failedAttempt int) time.Duration {
	d := time.Second
	for i := 1; i < failedAttempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryRun)} }

// Apply implements projections.Projection. An event whose revision the
// run's row has already reflected is skipped, so a replay is a no-op.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	for _, ev := range events {
		e, err := run.Unmarshal(ev.Type, ev.Data)
		if err != nil {
			return fmt.Errorf("runs: %s@%d: %w", ev.Stream, ev.Revision, err)
		}
		if err := p.apply(ctx, tx, int64(ev.Revision), e); err != nil {
			return fmt.Errorf("runs: %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
		}
	}
	return nil
}

func (p Projection) apply(ctx context.Context, tx pgx.Tx, rev int64, e run.Event) error {
	h := e.RunHeader()
	if st, ok := e.(run.RunStarted); ok {
		trig, err := json.Marshal(st.Trigger)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO automation_runs (run_id, workspace_id, automation_id, automation_version,
				contact_id, email, email_lower, trigger_event_id, trigger_event_name, trigger, status, current_node,
				started_at, updated_at, steps, revision)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11, $12, $12, 1, 0)
			ON CONFLICT (run_id) DO NOTHING`,
			h.RunID, h.WorkspaceID, st.AutomationID, st.AutomationVersion, st.ContactID, st.Contact.EmailAddress,
			strings.ToLower(st.Contact.EmailAddress), st.Trigger.EventID, st.Trigger.EventName, trig,
			st.Definition.Start, st.At)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return insertStep(ctx, tx, h.RunID, 0, e)
	}
	// Later events: move the run row first; if it already reflects this
	// revision, the event was applied before.
	status, node, at, reason := "", "", time.Time{}, ""
	ended := false
	switch e := e.(type) {
	case run.ConditionEvaluated:
		node = e.Next
	case run.EmailQueued:
		status, node, at = "running", e.Node, e.At
	case run.EmailSent:
		node, at = e.Node, e.At
	case run.EmailFailed:
		node, at = e.Node, e.At
	case run.DelayStarted:
		status, node = "waiting", e.Node
	case run.DelayElapsed:
		status, node, at = "running", e.Node, e.FiredAt
	case run.RunCompleted:
		status, at, ended = "completed", e.At, true
	case run.RunFailed:
		status, node, at, reason, ended = "failed", e.Node, e.At, e.Reason, true
	}
	tag, err := tx.Exec(ctx, `UPDATE automation_runs SET
			status = COALESCE(NULLIF($3, ''), status),
			current_node = CASE WHEN $4 THEN current_node ELSE $5 END,
			updated_at = CASE WHEN $6::timestamptz IS NULL THEN updated_at ELSE GREATEST(updated_at, $6) END,
			ended_at = CASE WHEN $4 THEN $6 ELSE ended_at END,
			failure_reason = COALESCE(NULLIF($7, ''), failure_reason),
			steps = $2 + 1, revision = $2
		WHERE run_id = $1 AND revision < $2`,
		h.RunID, rev, status, ended, node, nullTime(at), reason)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	if err := insertStep(ctx, tx, h.RunID, rev, e); err != nil {
		return err
	}
	switch e := e.(type) {
	case run.EmailQueued:
		_, err = tx.Exec(ctx, `INSERT INTO run_email_outbox (message_id, run_id, workspace_id, node, attempt, next_attempt_at)
			VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (message_id) DO NOTHING`, e.MessageID, h.RunID, h.WorkspaceID, e.Node, e.At)
	case run.EmailSent:
		_, err = tx.Exec(ctx, `DELETE FROM run_email_outbox WHERE message_id = $1`, e.MessageID)
	case run.EmailFailed:
		if e.Retryable {
			delay := DefaultRetryDelay
			if p.RetryDelayFunc != nil {
				delay = p.RetryDelayFunc
			}
			_, err = tx.Exec(ctx, `UPDATE run_email_outbox SET attempt = $2, next_attempt_at = $3 WHERE message_id = $1`,
				e.MessageID, e.Attempt+1, e.At.Add(delay(e.Attempt)))
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM run_email_outbox WHERE message_id = $1`, e.MessageID)
		}
	case run.DelayStarted:
		_, err = tx.Exec(ctx, `INSERT INTO run_timers (run_id, node, workspace_id, due) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, h.RunID, e.Node, h.WorkspaceID, e.Due)
	case run.DelayElapsed:
		_, err = tx.Exec(ctx, `DELETE FROM run_timers WHERE run_id = $1 AND node = $2`, h.RunID, e.Node)
	case run.RunCompleted, run.RunFailed:
		if _, err = tx.Exec(ctx, `DELETE FROM run_email_outbox WHERE run_id = $1`, h.RunID); err == nil {
			_, err = tx.Exec(ctx, `DELETE FROM run_timers WHERE run_id = $1`, h.RunID)
		}
	}
	return err
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// stepData is what a step row keeps of an event: its payload without the
// header, and for RunStarted without the (large) definition.
func stepData(e run.Event) (node string, at time.Time, data []byte, err error) {
	var v any = e
	switch e := e.(type) {
	case run.RunStarted:
		node, at = e.Definition.Start, e.At
		v = map[string]any{"automation_id": e.AutomationID, "automation_version": e.AutomationVersion,
			"trigger": e.Trigger, "contact": e.Contact, "contact_id": e.ContactID, "policy": e.Policy, "at": e.At}
	case run.ConditionEvaluated:
		node = e.Node
	case run.EmailQueued:
		node, at = e.Node, e.At
	case run.EmailSent:
		node, at = e.Node, e.At
	case run.EmailFailed:
		node, at = e.Node, e.At
	case run.DelayStarted:
		node = e.Node
	case run.DelayElapsed:
		node, at = e.Node, e.FiredAt
	case run.RunCompleted:
		at = e.At
	case run.RunFailed:
		node, at = e.Node, e.At
	}
	data, err = json.Marshal(v)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err == nil {
		delete(m, "run_id")
		delete(m, "workspace_id")
		data, err = json.Marshal(m)
	}
	return node, at, data, err
}

func insertStep(ctx context.Context, tx pgx.Tx, runID string, seq int64, e run.Event) error {
	node, at, data, err := stepData(e)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO automation_run_steps (run_id, seq, type, node, at, data)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, runID, seq, e.EventType(), node, nullTime(at), data)
	return err
}
