package auth

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/projections"
)

// Key is an API key as listed (no secret).
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Workspace is a workspace as the read model holds it.
type Workspace struct {
	ID         string
	Name       string
	EventLimit int64
}

// GetWorkspace returns a workspace or failure.NotFound.
func (a *Authenticator) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	var w Workspace
	err := a.db.Do(ctx, func(ctx context.Context) error {
		return a.db.Pool.QueryRow(ctx, `SELECT workspace_id, name, event_limit FROM workspaces WHERE workspace_id = $1`, id).
			Scan(&w.ID, &w.Name, &w.EventLimit)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Workspace{}, failure.New(failure.NotFound, "workspace not found")
	}
	return w, err
}

// KeyHash returns the hash of a workspace's key or failure.NotFound.
func (a *Authenticator) KeyHash(ctx context.Context, workspaceID, keyID string) (string, error) {
	var h string
	err := a.db.Do(ctx, func(ctx context.Context) error {
		return a.db.Pool.QueryRow(ctx, `SELECT hash FROM api_keys WHERE workspace_id = $1 AND key_id = $2`, workspaceID, keyID).Scan(&h)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", failure.New(failure.NotFound, "api key not found")
	}
	return h, err
}

// ListKeys returns a page of a workspace's keys, oldest first, revoked ones
// included (with revoked_at), and the cursor of the next page ("" = none).
func (a *Authenticator) ListKeys(ctx context.Context, workspaceID string, limit int, cursor string) ([]Key, string, error) {
	afterAt, afterID := time.Time{}, ""
	if cursor != "" {
		var err error
		if afterAt, afterID, err = projections.DecodeCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	var keys []Key
	err := a.db.Do(ctx, func(ctx context.Context) error {
		keys = keys[:0]
		rows, err := a.db.Pool.Query(ctx, `SELECT k.key_id, k.name, k.prefix, k.created_at, u.last_used_at, k.revoked_at
			FROM api_keys k LEFT JOIN api_key_usage u USING (key_id)
			WHERE k.workspace_id = $1 AND (k.created_at, k.key_id) > ($2, $3)
			ORDER BY k.created_at, k.key_id LIMIT $4`, workspaceID, afterAt, afterID, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k Key
			if err := rows.Scan(&k.ID, &k.Name, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		last := keys[limit-1]
		next = projections.EncodeCursor(last.CreatedAt, last.ID)
	}
	for i := range keys {
		if t, ok := a.pendingUse(keys[i].ID); ok && (keys[i].LastUsedAt == nil || t.After(*keys[i].LastUsedAt)) {
			t := t.UTC()
			keys[i].LastUsedAt = &t
		}
	}
	return keys, next, nil
}
