// Package projections is Lark's read side: runners that consume $all in
// order from a checkpoint and apply events to Postgres read models, writing
// rows and checkpoint in one transaction, in batches, with one process per
// projection at a time (a Postgres advisory lock) and read-your-writes
// waits on the checkpoint. The read models themselves live in the
// sub-packages, each with the queries the API needs.
package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sony/gobreaker/v2"

	"github.com/larkhq/lark/domain/failure"
)

// DB is the Postgres pool behind a circuit breaker: when Postgres cannot be
// reached, calls fail fast with failure.Unavailable instead of piling up.
type DB struct {
	Pool    *pgxpool.Pool
	breaker *gobreaker.CircuitBreaker[any]
	timeout time.Duration
}

// NewDB wraps pool. onState (optional) reports breaker state changes.
func NewDB(pool *pgxpool.Pool, onState func(name string, from, to gobreaker.State)) *DB {
	return &DB{
		Pool:    pool,
		timeout: 5 * time.Second,
		breaker: gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
			Name:        "postgres",
			MaxRequests: 1,
			Interval:    10 * time.Second,
			Timeout:     time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
			IsSuccessful: func(err error) bool {
				return err == nil || !isInfra(err)
			},
			IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
			OnStateChange: onState,
		}),
	}
}

// Dedicated opens a connection outside the pool (for advisory locks and
// LISTEN, which hold a session for long).
func (d *DB) Dedicated(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, d.Pool.Config().ConnConfig.Copy())
}

// BreakerState is the breaker's state.
func (d *DB) BreakerState() gobreaker.State { return d.breaker.State() }

// isInfra tells a failure to reach Postgres from an answer Postgres gave.
func isInfra(err error) bool {
	if err == nil || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 (connection exception) and 57P0x (shutdown) are outages.
		return len(pe.Code) >= 2 && (pe.Code[:2] == "08" || pe.Code[:3] == "57P")
	}
	var fe *failure.Error
	return !errors.As(err, &fe)
}

// Do runs fn through the breaker with a timeout. An open breaker or an
// outage becomes failure.Unavailable.
func (d *DB) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	_, err := d.breaker.Execute(func() (any, error) {
		cctx, cancel := context.WithTimeout(ctx, d.timeout)
		defer cancel()
		return nil, fn(cctx)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return failure.Wrap(failure.Unavailable, err, "the database cannot be reached")
	case ctx.Err() != nil:
		return ctx.Err()
	case isInfra(err):
		return failure.Wrap(failure.Unavailable, err, "the database cannot be reached")
	}
	return err
}

// Tx runs fn in a transaction through the breaker.
func (d *DB) Tx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return d.Do(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}
