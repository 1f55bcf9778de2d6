// Package contacts is the contacts read model: the "contacts" projection
// (from contact-{id} streams) and the queries behind GET /v1/contacts.
package contacts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/projections"
)

// Projection keeps the contacts table.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return "contacts" }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryContact)} }

// Apply implements projections.Projection. Each statement applies only when
// the row's revision is older than the event's, so a replay is a no-op.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	for _, ev := range events {
		rev := int64(ev.Revision)
		var err error
		switch ev.Type {
		case contact.TypeCreated:
			var e contact.Created
			if err = ev.Decode(&e); err != nil {
				return err
			}
			props, _ := json.Marshal(nonNil(e.Properties))
			_, err = tx.Exec(ctx, `INSERT INTO contacts (contact_id, workspace_id, email, email_lower, first_name, last_name,
					properties, created_at, updated_at, deleted, revision)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, false, $9)
				ON CONFLICT (contact_id) DO UPDATE SET email = excluded.email, email_lower = excluded.email_lower,
					first_name = excluded.first_name, last_name = excluded.last_name, properties = excluded.properties,
					created_at = excluded.created_at, updated_at = excluded.updated_at, deleted = false, revision = excluded.revision
				WHERE contacts.revision < excluded.revision`,
				e.ContactID, e.WorkspaceID, e.Email, strings.ToLower(e.Email), e.FirstName, e.LastName, props, e.At, rev)
		case contact.TypeUpdated:
			var e contact.Updated
			if err = ev.Decode(&e); err != nil {
				return err
			}
			var set, del []string
			setVals := map[string]any{}
			for k, v := range e.Properties {
				if v == nil {
					del = append(del, k)
				} else {
					set = append(set, k)
					setVals[k] = v
				}
			}
			setJSON, _ := json.Marshal(setVals)
			_, err = tx.Exec(ctx, `UPDATE contacts SET
					first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name),
					properties = (properties - $4::text[]) || $5::jsonb, updated_at = $6, revision = $7
				WHERE contact_id = $1 AND revision < $7`, e.ContactID, e.FirstName, e.LastName, nonNilS(del), setJSON, e.At, rev)
		case contact.TypeDeleted:
			var e contact.Deleted
			if err = ev.Decode(&e); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE contacts SET deleted = true, updated_at = $2, revision = $3
				WHERE contact_id = $1 AND revision < $3`, e.ContactID, e.At, rev)
		}
		if err != nil {
			return fmt.Errorf("contacts: %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
		}
	}
	return nil
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func nonNilS(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Contact is a contact as the API shows it.
type Contact struct {
	ID         string         `json:"id"`
	Email      string         `json:"email_address"`
	FirstName  string         `json:"first_name"`
	LastName   string         `json:"last_name"`
	Properties map[string]any `json:"properties"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Queries reads the contacts read model.
type Queries struct{ DB *projections.DB }

// Get returns a workspace's contact by email (case-insensitive), or
// failure.NotFound.
func (q Queries) Get(ctx context.Context, workspaceID, email string) (Contact, error) {
	var c Contact
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		return q.DB.Pool.QueryRow(ctx, `SELECT contact_id, email, first_name, last_name, properties, created_at, updated_at
			FROM contacts WHERE workspace_id = $1 AND email_lower = $2 AND NOT deleted`, workspaceID, strings.ToLower(email)).
			Scan(&c.ID, &c.Email, &c.FirstName, &c.LastName, &c.Properties, &c.CreatedAt, &c.UpdatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Contact{}, failure.New(failure.NotFound, "contact not found")
	}
	return c, err
}

// List returns a page of contacts ordered by lower-cased email, and the
// opaque cursor of the next page ("" = last page).
func (q Queries) List(ctx context.Context, workspaceID string, limit int, cursor string) ([]Contact, string, error) {
	after := ""
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.HasPrefix(string(raw), "c:") {
			return nil, "", failure.Field(failure.InvalidValue, "cursor", "cursor is not valid")
		}
		after = strings.TrimPrefix(string(raw), "c:")
	}
	var out []Contact
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		out = out[:0]
		rows, err := q.DB.Pool.Query(ctx, `SELECT contact_id, email, first_name, last_name, properties, created_at, updated_at
			FROM contacts WHERE workspace_id = $1 AND NOT deleted AND email_lower > $2
			ORDER BY email_lower LIMIT $3`, workspaceID, after, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c Contact
			if err := rows.Scan(&c.ID, &c.Email, &c.FirstName, &c.LastName, &c.Properties, &c.CreatedAt, &c.UpdatedAt); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte("c:" + strings.ToLower(out[limit-1].Email)))
	}
	return out, next, nil
}
