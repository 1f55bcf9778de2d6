// Package auth is the read model of workspaces and API keys: the "auth"
// projection (from workspace-{id} streams), the key lookup that
// authenticates every request (cached in memory, invalidated through
// Postgres LISTEN/NOTIFY when a key is revoked), and the key listing.
package auth

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/workspace"
)

// Channel is the NOTIFY channel on which the projection announces
// revocations and limit changes.
const Channel = "lark_auth"

// Projection keeps workspaces and api_keys.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return "auth" }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryWorkspace)} }

// Apply implements projections.Projection.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	for _, ev := range events {
		rev := int64(ev.Revision)
		var err error
		switch ev.Type {
		case workspace.TypeCreated:
			var e workspace.Created
			if err = ev.Decode(&e); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO workspaces (workspace_id, name, event_limit, created_at, revision)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (workspace_id) DO UPDATE SET name = excluded.name, event_limit = excluded.event_limit,
					created_at = excluded.created_at, revision = excluded.revision
				WHERE workspaces.revision < excluded.revision`, e.WorkspaceID, e.Name, e.EventLimit, e.At, rev)
		case workspace.TypeEventLimitChanged:
			var e workspace.EventLimitChanged
			if err = ev.Decode(&e); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE workspaces SET event_limit = $2, revision = $3
				WHERE workspace_id = $1 AND revision < $3`, e.WorkspaceID, e.EventLimit, rev)
			if err == nil {
				_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, "workspace:"+e.WorkspaceID)
			}
		case workspace.TypeAPIKeyCreated:
			var e workspace.APIKeyCreated
			if err = ev.Decode(&e); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO api_keys (key_id, workspace_id, name, prefix, hash, created_at, revision)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (key_id) DO NOTHING`, e.KeyID, e.WorkspaceID, e.Name, e.Prefix, e.Hash, e.At, rev)
			if err == nil {
				// Keep the workspace row's revision moving so that it
				// reflects the whole stream.
				_, err = tx.Exec(ctx, `UPDATE workspaces SET revision = $2 WHERE workspace_id = $1 AND revision < $2`, e.WorkspaceID, rev)
			}
		case workspace.TypeAPIKeyRevoked:
			var e workspace.APIKeyRevoked
			if err = ev.Decode(&e); err != nil {
				return err
			}
			var hash string
			err = tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = $2, revision = $3
				WHERE key_id = $1 AND revision < $3 RETURNING hash`, e.KeyID, e.At, rev).Scan(&hash)
			if err == pgx.ErrNoRows {
				err = nil // replayed: already applied
			} else if err == nil {
				_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, "key:"+hash)
			}
		}
		if err != nil {
			return fmt.Errorf("auth: %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
		}
	}
	return nil
}
