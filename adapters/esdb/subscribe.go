package esdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	kdb "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/sony/gobreaker/v2"
)

// Message is what a $all subscription delivers: an event, or a checkpoint
// (everything up to Checkpoint has been considered and nothing more of the
// filtered categories is there), or the news that it caught up.
type Message struct {
	Event      *Recorded
	Checkpoint *Position
	CaughtUp   bool
}

// Follow subscribes to $all after from (the zero Position means the start),
// filtered server-side to streams whose names start with one of prefixes,
// and sends every message to out in order. When the subscription drops it
// resubscribes after the last position it delivered, backing off while the
// store is unreachable. It returns when ctx ends.
func (s *Store) Follow(ctx context.Context, from Position, prefixes []string, out chan<- Message) error {
	backoff := 50 * time.Millisecond
	for {
		delivered, err := s.followOnce(ctx, &from, prefixes, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if delivered {
			backoff = 50 * time.Millisecond
		}
		s.log.Warn("event store subscription dropped; resubscribing", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func (s *Store) followOnce(ctx context.Context, from *Position, prefixes []string, out chan<- Message) (bool, error) {
	// Opening the subscription goes through the breaker; the long-lived
	// stream does not (it has no per-call timeout).
	var sub *kdb.Subscription
	s.life.RLock()
	_, err := s.breaker.Execute(func() (any, error) {
		c, err := s.getClient()
		if err != nil {
			return nil, err
		}
		opts := kdb.SubscribeToAllOptions{
			Filter: &kdb.SubscriptionFilter{Type: kdb.StreamFilterType, Prefixes: prefixes},
		}
		if *from == (Position{}) {
			opts.From = kdb.Start{}
		} else {
			opts.From = kdb.Position(*from)
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		err = s.guard(ctx, cctx, func() error {
			var err error
			sub, err = c.SubscribeToAll(ctx, opts)
			return err
		})
		return nil, s.classify(c, err)
	})
	s.life.RUnlock()
	if err != nil {
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return false, err
		}
		return false, fmt.Errorf("subscribe to $all: %w", err)
	}
	defer sub.Close()
	delivered := false
	for {
		m := sub.Recv()
		var msg Message
		switch {
		case m.SubscriptionDropped != nil:
			return delivered, fmt.Errorf("subscription dropped: %w", m.SubscriptionDropped.Error)
		case m.EventAppeared != nil:
			r, err := fromResolved(m.EventAppeared)
			if err != nil {
				return delivered, err
			}
			msg.Event = &r
			*from = r.Position
		case m.CheckPointReached != nil:
			p := Position(*m.CheckPointReached)
			if !from.Less(p) {
				continue
			}
			msg.Checkpoint = &p
			*from = p
		case m.CaughtUp != nil:
			msg.CaughtUp = true
		default:
			continue
		}
		delivered = true
		select {
		case out <- msg:
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
	}
}
