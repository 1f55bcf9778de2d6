package esdb_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdb"
)

// appendMixed appends n events to events-* streams, interleaved with
// events of another category.
func appendMixed(t *testing.T, s *esdb.Store, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		stream := esdb.EventsStream(fmt.Sprintf("ws%d", i%3), "202601")
		if _, err := s.Append(ctx, stream, esdb.Any, esdb.Proposed{Type: "E", WorkspaceID: "ws", Data: map[string]any{"tag": tag, "i": i}}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := s.Append(ctx, esdb.WorkspaceStream("other"), esdb.Any, esdb.Proposed{Type: "W", WorkspaceID: "ws", Data: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// collect follows via f from `from` until it has n events; it checks that
// every message (events and checkpoints) moves strictly forward.
func collect(t *testing.T, ctx context.Context, f interface {
	Follow(context.Context, esdb.Position, []string, chan<- esdb.Message) error
}, from esdb.Position, n int, slow time.Duration) ([]string, error) {
	out := make(chan esdb.Message)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = f.Follow(fctx, from, []string{esdb.Prefix(esdb.CategoryEvents)}, out) }()
	var ids []string
	last := from
	for len(ids) < n {
		select {
		case m := <-out:
			var pos esdb.Position
			switch {
			case m.Event != nil:
				pos = m.Event.Position
				ids = append(ids, m.Event.ID)
			case m.Checkpoint != nil:
				pos = *m.Checkpoint
			default:
				return ids, fmt.Errorf("unexpected message %+v", m)
			}
			if !last.Less(pos) {
				return ids, fmt.Errorf("position %v after %v: not forward", pos, last)
			}
			last = pos
			if slow > 0 {
				time.Sleep(slow)
			}
		case <-ctx.Done():
			return ids, fmt.Errorf("got %d of %d events: %w", len(ids), n, ctx.Err())
		}
	}
	return ids, nil
}

func TestFeedsDeliverWhatAnOwnSubscriptionWould(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	appendMixed(t, s, "before", 120)

	// The reference: a subscription of one's own.
	want, err := collect(t, ctx, s, esdb.Position{}, 120, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := s.ReadStream(ctx, esdb.EventsStream("ws1", "202601"))
	if err != nil {
		t.Fatal(err)
	}
	mid := all[10].Position // a follower that starts part-way

	// A tiny window forces followers out of it (slow ones, late ones) and
	// back in.
	up := &countingUpstream{up: s}
	// The shared subscription also carries workspace-* events, which these
	// followers see as checkpoints.
	feeds := esdb.NewFeeds(up, []string{esdb.Prefix(esdb.CategoryEvents), esdb.Prefix(esdb.CategoryWorkspace)}, 8, 200*time.Millisecond)
	type res struct {
		name string
		ids  []string
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan res, 4)
	run := func(name string, from esdb.Position, n int, slow, delay time.Duration) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			ids, err := collect(t, ctx, feeds, from, n, slow)
			results <- res{name, ids, err}
		}()
	}
	total := 120 + 90
	run("from the start", esdb.Position{}, total, 0, 0)
	run("slow reader", esdb.Position{}, total, 2*time.Millisecond, 0)
	run("late joiner", esdb.Position{}, total, 0, 150*time.Millisecond)
	// Events of ws1 are every third; all[10] is the 32nd events-* event.
	run("from the middle", mid, total-32, 0, 50*time.Millisecond)
	// Live events while everyone follows.
	time.Sleep(100 * time.Millisecond)
	appendMixed(t, s, "live", 90)
	live, err := collect(t, ctx, s, esdb.Position{}, total, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, live[:120]); d != "" {
		t.Fatalf("reference changed (-want +got):\n%s", d)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
			continue
		}
		exp := live
		if r.name == "from the middle" {
			exp = live[32:]
		}
		if d := cmp.Diff(exp, r.ids); d != "" {
			t.Errorf("%s (-want +got):\n%s", r.name, d)
		}
	}
	up.waitIdle(t)
}

func TestFeedsShareOneSubscriptionAndStopWhenUnused(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up := &countingUpstream{up: s}
	feeds := esdb.NewFeeds(up, []string{esdb.Prefix(esdb.CategoryEvents)}, 0, time.Hour)
	appendMixed(t, s, "x", 20)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := collect(t, ctx, feeds, esdb.Position{}, 20, 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Three followers that start together at the same position share the
	// feed's subscription (at most one may have had to catch up alone if
	// it joined after the feed had moved on).
	if n := up.opened(); n > 2 {
		t.Errorf("%d upstream subscriptions for 3 followers, want at most 2", n)
	}
	// With no follower left, the feed's subscription ends.
	up.waitIdle(t)
}

type countingUpstream struct {
	up         esdb.Upstream
	mu         sync.Mutex
	n, running int
}

func (c *countingUpstream) Follow(ctx context.Context, from esdb.Position, prefixes []string, out chan<- esdb.Message) error {
	c.mu.Lock()
	c.n++
	c.running++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}()
	return c.up.Follow(ctx, from, prefixes, out)
}

// waitIdle waits until no upstream subscription is running (the client
// must not be closed under one).
func (c *countingUpstream) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.active() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream subscriptions still active with no follower", c.active())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *countingUpstream) opened() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
func (c *countingUpstream) active() int { c.mu.Lock(); defer c.mu.Unlock(); return c.running }

func TestFeedsFilterPerFollower(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendMixed(t, s, "x", 12) // 12 events-* and 3 workspace-* events
	if _, err := s.Append(ctx, esdb.ContactStream("c"), esdb.Any, esdb.Proposed{Type: "C", WorkspaceID: "ws", Data: 1}); err != nil {
		t.Fatal(err)
	}
	up := &countingUpstream{up: s}
	feeds := esdb.NewFeeds(up, []string{esdb.Prefix(esdb.CategoryEvents), esdb.Prefix(esdb.CategoryWorkspace)}, 0, time.Hour)
	// A workspace-* follower shares the feed; a contact-* follower (not in
	// the shared set) gets a subscription of its own; either way one
	// upstream subscription each, since each follows alone here.
	for _, tc := range []struct {
		prefix string
		n      int
	}{
		{esdb.Prefix(esdb.CategoryWorkspace), 3},
		{esdb.Prefix(esdb.CategoryContact), 1},
	} {
		own := followIDs(t, ctx, s, tc.prefix, tc.n)
		before := up.opened()
		got := followIDs(t, ctx, feeds, tc.prefix, tc.n)
		if d := cmp.Diff(own, got); d != "" {
			t.Errorf("%s (-own subscription +feed):\n%s", tc.prefix, d)
		}
		if opened := up.opened() - before; opened != 1 {
			t.Errorf("%s: %d upstream subscriptions opened, want 1", tc.prefix, opened)
		}
		up.waitIdle(t)
	}
}

// followIDs returns the first n event ids f delivers for prefix, and fails
// on an event of another prefix.
func followIDs(t *testing.T, ctx context.Context, f esdb.Upstream, prefix string, n int) []string {
	t.Helper()
	out := make(chan esdb.Message)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = f.Follow(fctx, esdb.Position{}, []string{prefix}, out) }()
	var ids []string
	for len(ids) < n {
		select {
		case m := <-out:
			if m.Event != nil {
				if !strings.HasPrefix(m.Event.Stream, prefix) {
					t.Fatalf("event of %s delivered to a %s follower", m.Event.Stream, prefix)
				}
				ids = append(ids, m.Event.ID)
			}
		case <-ctx.Done():
			t.Fatalf("%s: got %d of %d events", prefix, len(ids), n)
		}
	}
	return ids
}

func TestFeedsTrimWhatEveryReaderHasRead(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	appendMany := func(n int) {
		for i := 0; i < n; i += 100 {
			batch := make([]esdb.Proposed, 100)
			for j := range batch {
				batch[j] = esdb.Proposed{Type: "E", WorkspaceID: "ws", Data: i + j}
			}
			if _, err := s.Append(ctx, esdb.EventsStream("ws", "202601"), esdb.Any, batch...); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendMany(500)
	up := &countingUpstream{up: s}
	feeds := esdb.NewFeeds(up, []string{esdb.Prefix(esdb.CategoryEvents)}, 0, time.Hour)
	const total = 5500 // several trims of the ring while both read
	var wg sync.WaitGroup
	got := make([][]string, 2)
	errs := make([]error, 2)
	for i, slow := range []time.Duration{0, 200 * time.Microsecond} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = collect(t, ctx, feeds, esdb.Position{}, total, slow)
		}()
	}
	appendMany(total - 500)
	want, err := collect(t, ctx, s, esdb.Position{}, total, 0)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Errorf("follower %d: %v", i, errs[i])
			continue
		}
		if d := cmp.Diff(want, got[i]); d != "" {
			t.Errorf("follower %d (-want +got):\n%s", i, d)
		}
	}
	up.waitIdle(t)
}
