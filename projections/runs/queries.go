package runs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
)

// Run is an automation run as the API shows it (SPEC §2.5). Steps is only
// filled by Get.
type Run struct {
	ID                string          `json:"id"`
	AutomationID      string          `json:"automation_id"`
	AutomationVersion int             `json:"automation_version"`
	Status            run.Status      `json:"status"`
	ContactID         string          `json:"contact_id"`
	EmailAddress      string          `json:"email_address"`
	TriggerEvent      json.RawMessage `json:"trigger_event"`
	CurrentNode       string          `json:"current_node,omitempty"`
	FailureReason     string          `json:"failure_reason,omitempty"`
	StartedAt         time.Time       `json:"started_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	EndedAt           *time.Time      `json:"ended_at"`
	Steps             []Step          `json:"steps,omitempty"`
}

// Step is one recorded event of a run: its sequence number (the run stream
// revision), type, node, time, and details (the event's own fields: the
// evaluation and branch of a condition, the rendered subject and body and
// Message-ID of an email, a delay's due time, ...).
type Step struct {
	Seq     int             `json:"seq"`
	Type    string          `json:"type"`
	Node    string          `json:"node,omitempty"`
	At      *time.Time      `json:"at,omitempty"`
	Details json.RawMessage `json:"details"`
}

// Filter narrows a run listing. Empty fields do not filter.
type Filter struct {
	AutomationID string
	Email        string
	Status       string
}

// Queries reads the runs read model.
type Queries struct{ DB *projections.DB }

const runColumns = `run_id, automation_id, automation_version, status, contact_id, email, trigger, current_node,
	failure_reason, started_at, updated_at, ended_at`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var trig []byte
	err := row.Scan(&r.ID, &r.AutomationID, &r.AutomationVersion, &r.Status, &r.ContactID, &r.EmailAddress, &trig,
		&r.CurrentNode, &r.FailureReason, &r.StartedAt, &r.UpdatedAt, &r.EndedAt)
	r.TriggerEvent = trig
	return r, err
}

// Get returns one run of the workspace with every step, or failure.NotFound.
func (q Queries) Get(ctx context.Context, workspaceID, id string) (Run, error) {
	var r Run
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		var err error
		r, err = scanRun(q.DB.Pool.QueryRow(ctx, `SELECT `+runColumns+` FROM automation_runs
			WHERE workspace_id = $1 AND run_id = $2`, workspaceID, id))
		if err != nil {
			return err
		}
		rows, err := q.DB.Pool.Query(ctx, `SELECT seq, type, node, at, data FROM automation_run_steps
			WHERE run_id = $1 ORDER BY seq`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		r.Steps = []Step{}
		for rows.Next() {
			var s Step
			var data []byte
			if err := rows.Scan(&s.Seq, &s.Type, &s.Node, &s.At, &data); err != nil {
				return err
			}
			s.Details = data
			r.Steps = append(r.Steps, s)
		}
		return rows.Err()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, failure.New(failure.NotFound, "automation run not found")
	}
	return r, err
}

// Statuses are the values the status filter accepts.
var statuses = map[string]bool{"running": true, "waiting": true, "completed": true, "failed": true}

// List returns a page of the workspace's runs, newest first, and the
// cursor of the next page ("" on the last page).
func (q Queries) List(ctx context.Context, workspaceID string, f Filter, limit int, cursor string) ([]Run, string, error) {
	if f.Status != "" && !statuses[f.Status] {
		return nil, "", failure.Field(failure.InvalidValue, "status", "status must be one of running, waiting, completed, failed")
	}
	var beforeAt any
	beforeID := ""
	if cursor != "" {
		t, id, err := projections.DecodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		beforeAt, beforeID = t, id
	}
	var out []Run
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := q.DB.Pool.Query(ctx, `SELECT `+runColumns+` FROM automation_runs
			WHERE workspace_id = $1 AND ($2::timestamptz IS NULL OR (started_at, run_id) < ($2, $3))
				AND ($4 = '' OR automation_id = $4) AND ($5 = '' OR email_lower = $5) AND ($6 = '' OR status = $6)
			ORDER BY started_at DESC, run_id DESC LIMIT $7`,
			workspaceID, beforeAt, beforeID, f.AutomationID, strings.ToLower(f.Email), f.Status, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = projections.EncodeCursor(last.StartedAt, last.ID)
	}
	return out, next, nil
}
