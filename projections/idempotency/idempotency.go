// Package idempotency keeps Idempotency-Key records in Postgres: a request
// claims its key (with a lease) before it stores anything and records its
// answer before it answers; a retry within 24 hours gets the recorded
// answer. If a process dies between storing events and recording the
// answer, the claim's lease runs out and the next retry recovers the answer
// from idempotent_events, which the usage projection fills from the stored
// events themselves (see commands/ingest).
package idempotency

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/projections"
)

// Outcome of a claim.
type Outcome int

// Claim outcomes.
const (
	Claimed   Outcome = iota // the key is new: go ahead, then Complete or Release
	Done                     // the key has an answer: return Record.Body
	InFlight                 // another request holds the key's lease
	Recovered                // a lapsed claim was taken over: find out what was stored
)

// Record is a key's row.
type Record struct {
	Status int
	Body   []byte
}

// Store reads and writes the records.
type Store struct {
	DB    *projections.DB
	TTL   time.Duration // how long answers are kept; default 24 h
	Lease time.Duration // how long a claim blocks others; default 30 s
}

func (s Store) ttl() time.Duration {
	if s.TTL <= 0 {
		return 24 * time.Hour
	}
	return s.TTL
}

func (s Store) lease() time.Duration {
	if s.Lease <= 0 {
		return 30 * time.Second
	}
	return s.Lease
}

// Claim tries to take the key for a new request at now.
func (s Store) Claim(ctx context.Context, ws, key string, now time.Time) (Outcome, Record, error) {
	var out Outcome
	var rec Record
	err := s.DB.Do(ctx, func(ctx context.Context) error {
		for attempt := 0; attempt < 3; attempt++ {
			tag, err := s.DB.Pool.Exec(ctx, `INSERT INTO idempotency_keys (workspace_id, key, state, lease_until, created_at)
				VALUES ($1, $2, 'pending', $3, $4) ON CONFLICT DO NOTHING`, ws, key, now.Add(s.lease()), now)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				out = Claimed
				return nil
			}
			var state string
			var status *int32
			var body []byte
			var leaseUntil, created time.Time
			err = s.DB.Pool.QueryRow(ctx, `SELECT state, status, body, lease_until, created_at FROM idempotency_keys
				WHERE workspace_id = $1 AND key = $2`, ws, key).Scan(&state, &status, &body, &leaseUntil, &created)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if now.Sub(created) >= s.ttl() {
				if _, err := s.DB.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE workspace_id = $1 AND key = $2 AND created_at = $3`,
					ws, key, created); err != nil {
					return err
				}
				if _, err := s.DB.Pool.Exec(ctx, `DELETE FROM idempotent_events WHERE workspace_id = $1 AND key = $2`, ws, key); err != nil {
					return err
				}
				continue
			}
			if state == "done" {
				out, rec = Done, Record{Body: body}
				if status != nil {
					rec.Status = int(*status)
				}
				return nil
			}
			if now.Before(leaseUntil) {
				out = InFlight
				return nil
			}
			tag, err = s.DB.Pool.Exec(ctx, `UPDATE idempotency_keys SET lease_until = $3
				WHERE workspace_id = $1 AND key = $2 AND state = 'pending' AND lease_until = $4`, ws, key, now.Add(s.lease()), leaseUntil)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				out = Recovered
				return nil
			}
		}
		out = InFlight
		return nil
	})
	return out, rec, err
}

// Complete records the answer of a claimed key.
func (s Store) Complete(ctx context.Context, ws, key string, status int, body []byte) error {
	return s.DB.Do(ctx, func(ctx context.Context) error {
		_, err := s.DB.Pool.Exec(ctx, `UPDATE idempotency_keys SET state = 'done', status = $3, body = $4
			WHERE workspace_id = $1 AND key = $2`, ws, key, status, body)
		return err
	})
}

// Release gives up a claim whose request stored nothing, so that a retry
// runs afresh.
func (s Store) Release(ctx context.Context, ws, key string) error {
	return s.DB.Do(ctx, func(ctx context.Context) error {
		_, err := s.DB.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE workspace_id = $1 AND key = $2 AND state = 'pending'`, ws, key)
		return err
	})
}

// StoredEvents returns, by index within the request, the ids of the events
// stored under the key (as the usage projection has seen them).
func (s Store) StoredEvents(ctx context.Context, ws, key string) (map[int]string, error) {
	out := map[int]string{}
	err := s.DB.Do(ctx, func(ctx context.Context) error {
		rows, err := s.DB.Pool.Query(ctx, `SELECT idx, event_id FROM idempotent_events WHERE workspace_id = $1 AND key = $2`, ws, key)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var idx int32
			var id string
			if err := rows.Scan(&idx, &id); err != nil {
				return err
			}
			out[int(idx)] = id
		}
		return rows.Err()
	})
	return out, err
}

// Sweep deletes records older than the TTL.
func (s Store) Sweep(ctx context.Context, now time.Time) error {
	return s.DB.Do(ctx, func(ctx context.Context) error {
		cut := now.Add(-s.ttl())
		if _, err := s.DB.Pool.Exec(ctx, `DELETE FROM idempotent_events e USING idempotency_keys k
			WHERE e.workspace_id = k.workspace_id AND e.key = k.key AND k.created_at < $1`, cut); err != nil {
			return err
		}
		_, err := s.DB.Pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, cut)
		return err
	})
}
