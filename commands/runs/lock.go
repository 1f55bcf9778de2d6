package runs

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/larkhq/lark/projections"
)

// exclusive runs fn while this process holds the Postgres advisory lock
// named name (one sender, one timer worker per deployment; the others
// stand by and take over when the holder dies). fn's context is cancelled
// when the lock's connection is lost. It returns when ctx ends.
func exclusive(ctx context.Context, db *projections.DB, name string, log *slog.Logger, fn func(ctx context.Context) error) error {
	h := fnv.New64a()
	h.Write([]byte("lark.worker." + name))
	key := int64(h.Sum64())
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			conn, err := db.Dedicated(ctx)
			if err != nil {
				return fmt.Errorf("lock connection: %w", err)
			}
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = conn.Close(cctx)
			}()
			var ok bool
			if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
				return fmt.Errorf("try lock: %w", err)
			}
			if !ok {
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
				return nil
			}
			fctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- fn(fctx) }()
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case err := <-done:
					return err
				case <-t.C:
					if err := conn.Ping(ctx); err != nil {
						cancel()
						<-done
						return fmt.Errorf("lock connection lost: %w", err)
					}
				}
			}
		}()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("worker stopped; restarting", "worker", name, "error", err, "after", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
	return nil
}

// poll calls tick every interval until ctx ends; tick's errors are logged.
func poll(ctx context.Context, interval time.Duration, log *slog.Logger, what string, tick func(ctx context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := tick(ctx); err != nil && ctx.Err() == nil {
			log.Warn(what+" pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
