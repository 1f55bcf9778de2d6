// Package automations is the automations read model: the "automations"
// projection (from automation-{id} streams) into tables automations and
// automation_versions, and the queries behind GET /v1/automations.
package automations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/projections"
)

// Projection keeps the automations tables.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return "automations" }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryAutomation)} }

// Apply implements projections.Projection. Every statement applies only
// when the row's revision is older than the event's.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	for _, ev := range events {
		e, ok, err := automation.UnmarshalEvent(ev.Type, ev.Data)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		rev := int64(ev.Revision)
		switch e := e.(type) {
		case automation.Created:
			def, err := json.Marshal(e.Definition)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO automations (automation_id, workspace_id, name, status, version,
					trigger_event_name, definition, created_at, updated_at, revision)
				VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $7, $8) ON CONFLICT (automation_id) DO NOTHING`,
				e.AutomationID, e.WorkspaceID, e.Definition.Name, e.Version, e.Definition.Trigger.EventName, def, e.At, rev)
			if err == nil {
				err = insertVersion(ctx, tx, e.AutomationID, e.WorkspaceID, e.Version, def, e.At)
			}
		case automation.Updated:
			def, err2 := json.Marshal(e.Definition)
			if err2 != nil {
				return err2
			}
			_, err = tx.Exec(ctx, `UPDATE automations SET name = $2, version = $3, trigger_event_name = $4,
					definition = $5, updated_at = $6, revision = $7
				WHERE automation_id = $1 AND revision < $7`,
				e.AutomationID, e.Definition.Name, e.Version, e.Definition.Trigger.EventName, def, e.At, rev)
			if err == nil {
				err = insertVersion(ctx, tx, e.AutomationID, e.WorkspaceID, e.Version, def, e.At)
			}
		case automation.Activated:
			_, err = tx.Exec(ctx, `UPDATE automations SET status = 'active', updated_at = $2, revision = $3
				WHERE automation_id = $1 AND revision < $3`, e.AutomationID, e.At, rev)
		case automation.Paused:
			_, err = tx.Exec(ctx, `UPDATE automations SET status = 'paused', updated_at = $2, revision = $3
				WHERE automation_id = $1 AND revision < $3`, e.AutomationID, e.At, rev)
		}
		if err != nil {
			return fmt.Errorf("automations: %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
		}
	}
	return nil
}

func insertVersion(ctx context.Context, tx pgx.Tx, id, ws string, version int, def []byte, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO automation_versions (automation_id, version, workspace_id, definition, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, id, version, ws, def, at)
	return err
}

// Automation is an automation as the API shows it: its id, status and
// version, then the definition's fields.
type Automation struct {
	ID        string             `json:"id"`
	Status    automation.Status  `json:"status"`
	Version   int                `json:"version"`
	Name      string             `json:"name"`
	Trigger   automation.Trigger `json:"trigger"`
	Start     string             `json:"start"`
	Nodes     []automation.Node  `json:"nodes"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// Queries reads the automations read model.
type Queries struct{ DB *projections.DB }

const columns = `automation_id, status, version, definition, created_at, updated_at`

func scan(row pgx.Row) (Automation, error) {
	var a Automation
	var def []byte
	if err := row.Scan(&a.ID, &a.Status, &a.Version, &def, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return Automation{}, err
	}
	d, err := automation.Parse(def)
	if err != nil {
		return Automation{}, err
	}
	a.Name, a.Trigger, a.Start, a.Nodes = d.Name, d.Trigger, d.Start, d.Nodes
	return a, nil
}

// Get returns one automation of the workspace, or failure.NotFound.
func (q Queries) Get(ctx context.Context, workspaceID, id string) (Automation, error) {
	var a Automation
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		var err error
		a, err = scan(q.DB.Pool.QueryRow(ctx, `SELECT `+columns+` FROM automations
			WHERE workspace_id = $1 AND automation_id = $2`, workspaceID, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Automation{}, failure.New(failure.NotFound, "automation not found")
	}
	return a, err
}

// List returns a page of the workspace's automations, oldest first, and the
// cursor of the next page ("" on the last page).
func (q Queries) List(ctx context.Context, workspaceID string, limit int, cursor string) ([]Automation, string, error) {
	afterAt, afterID := time.Time{}, ""
	if cursor != "" {
		var err error
		if afterAt, afterID, err = projections.DecodeCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	var out []Automation
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := q.DB.Pool.Query(ctx, `SELECT `+columns+` FROM automations
			WHERE workspace_id = $1 AND (created_at, automation_id) > ($2, $3)
			ORDER BY created_at, automation_id LIMIT $4`, workspaceID, afterAt, afterID, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, a)
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
		next = projections.EncodeCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}
