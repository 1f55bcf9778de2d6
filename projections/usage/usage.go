// Package usage is the monthly usage read model: the "usage" projection
// (from events-{ws}-{yyyymm} streams; used = the stream's revision + 1) and
// the record of stored events that carried an Idempotency-Key.
package usage

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/ingest"
)

// Metadata keys the ingest lane writes on events sent with an
// Idempotency-Key.
const (
	MetaIdempotencyKey   = "idempotency_key"
	MetaIdempotencyIndex = "idempotency_index"
)

// Projection keeps usage and idempotent_events.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return "usage" }

// Prefixes implements projections.Projection.
func (Projection) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryEvents)} }

type monthKey struct{ ws, period string }

// Apply implements projections.Projection: one upsert per workspace-month
// per batch, keeping the highest revision seen.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	months := map[monthKey]esdb.Recorded{}
	var idemWS, idemKey, idemID []string
	var idemIdx []int32
	for _, ev := range events {
		if ev.Type != ingest.TypeReceived {
			continue
		}
		ws, period, ok := parseStream(ev.Stream)
		if !ok {
			continue
		}
		k := monthKey{ws, period}
		if cur, ok := months[k]; !ok || cur.Revision < ev.Revision {
			months[k] = ev
		}
		if key := ev.Meta[MetaIdempotencyKey]; key != "" {
			idx, _ := strconv.Atoi(ev.Meta[MetaIdempotencyIndex])
			idemWS, idemKey, idemID, idemIdx = append(idemWS, ws), append(idemKey, key), append(idemID, ev.ID), append(idemIdx, int32(idx))
		}
	}
	for k, ev := range months {
		if _, err := tx.Exec(ctx, `INSERT INTO usage (workspace_id, period, used, revision, updated_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (workspace_id, period) DO UPDATE SET used = excluded.used, revision = excluded.revision,
				updated_at = excluded.updated_at
			WHERE usage.revision < excluded.revision`, k.ws, k.period, int64(ev.Revision)+1, int64(ev.Revision), ev.Created); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
	}
	if len(idemWS) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO idempotent_events (workspace_id, key, event_id, idx)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
			ON CONFLICT DO NOTHING`, idemWS, idemKey, idemID, idemIdx); err != nil {
			return fmt.Errorf("idempotent events: %w", err)
		}
	}
	return nil
}

// parseStream splits events-{ws}-{yyyymm} into the workspace id and the
// period "yyyy-mm".
func parseStream(stream string) (ws, period string, ok bool) {
	rest, ok := strings.CutPrefix(stream, esdb.Prefix(esdb.CategoryEvents))
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || len(rest)-i-1 != 6 {
		return "", "", false
	}
	ym := rest[i+1:]
	return rest[:i], ym[:4] + "-" + ym[4:], true
}
