package esdb

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Upstream is what Feeds share: Store.Follow.
type Upstream interface {
	Follow(ctx context.Context, from Position, prefixes []string, out chan<- Message) error
}

// Feeds shares one $all subscription between followers. Several read
// models consume the same categories (the usage and events projections and
// the run process manager all read events-*); each subscription costs the
// event store a read and the client a protobuf and metadata decode of
// every event, so under ingest load one subscription, fanned out here,
// saves a large share of the CPU.
//
// The shared subscription is filtered to a fixed set of stream prefixes; a
// follower asks for a subset of them. It gets the events of its own
// prefixes, and for an event of the others a checkpoint at its position
// (which is what a checkpoint says: nothing more of the follower's streams
// up to there). A follower asking for a prefix outside the set gets a
// subscription of its own.
//
// The feed keeps the last Window messages it received. A follower whose
// position is inside that window reads from it, in order; one that is
// behind it (a projection rebuilding, or one too slow to keep up) follows
// with a subscription of its own until it is inside the window again, so
// every follower sees what its own subscription would have delivered:
// every event after its position, in order, with checkpoints in between.
// CaughtUp messages are not forwarded.
//
// The feed resubscribes when it has received nothing for Idle, as the
// projection runner does: the catch-up of a new filtered subscription ends
// with a checkpoint at the head of $all, which tells waiters that nothing
// of theirs is left to read.
type Feeds struct {
	up       Upstream
	prefixes []string
	window   int
	idle     time.Duration

	mu sync.Mutex
	fd *feed // nil while nobody follows
}

// DefaultFeedWindow is the number of messages a feed keeps for followers.
const DefaultFeedWindow = 1 << 16

// NewFeeds builds Feeds over up sharing a subscription to prefixes;
// window <= 0 means DefaultFeedWindow and idle <= 0 one second.
func NewFeeds(up Upstream, prefixes []string, window int, idle time.Duration) *Feeds {
	if window <= 0 {
		window = DefaultFeedWindow
	}
	if idle <= 0 {
		idle = time.Second
	}
	return &Feeds{up: up, prefixes: slices.Clone(prefixes), window: window, idle: idle}
}

type feed struct {
	cancel context.CancelFunc
	refs   int // guarded by Feeds.mu

	mu     sync.Mutex
	ring   []Message     // ordered by position
	base   Position      // the ring holds everything in (base, head]
	head   Position      // position of the newest message received
	notify chan struct{} // closed and replaced when a message arrives
	// readers are the positions of the followers reading from the ring:
	// what all of them have read is dropped, so the ring holds only what
	// someone still needs (and at most the window), not a window's worth
	// of garbage for the collector to mark.
	readers map[*Position]Position
}

// minKeep is how many messages the ring keeps even when every reader has
// read them (a follower resubscribing finds its position still inside).
const minKeep = 1024

func msgPos(m Message) (Position, bool) {
	switch {
	case m.Event != nil:
		return m.Event.Position, true
	case m.Checkpoint != nil:
		return *m.Checkpoint, true
	}
	return Position{}, false
}

// Follow is Store.Follow through the shared subscription: it sends every
// event after from whose stream starts with one of prefixes to out, in
// order, with checkpoints in between, until ctx ends.
func (f *Feeds) Follow(ctx context.Context, from Position, prefixes []string, out chan<- Message) error {
	for _, p := range prefixes {
		if !slices.Contains(f.prefixes, p) {
			return f.up.Follow(ctx, from, prefixes, out)
		}
	}
	fd := f.join(from)
	defer f.leave(fd)
	for {
		// Read from the feed while inside its window.
		if err := fd.serve(ctx, &from, prefixes, out); err != nil {
			return err
		}
		// Behind the window (or ahead of the feed): follow alone until
		// inside it again.
		if err := f.alone(ctx, fd, &from, prefixes, out); err != nil {
			return err
		}
	}
}

func (f *Feeds) join(from Position) *feed {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f.fd = &feed{cancel: cancel, base: from, head: from, notify: make(chan struct{}), readers: map[*Position]Position{}}
		go f.run(ctx, f.fd)
	}
	f.fd.refs++
	return f.fd
}

func (f *Feeds) leave(fd *feed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd.refs--
	if fd.refs == 0 {
		fd.cancel()
		f.fd = nil
	}
}

// run keeps the feed's upstream subscription until ctx ends, resubscribing
// from the head whenever it has been idle.
func (f *Feeds) run(ctx context.Context, fd *feed) {
	for ctx.Err() == nil {
		fd.mu.Lock()
		from := fd.head
		fd.mu.Unlock()
		sctx, cancel := context.WithCancel(ctx)
		ch := make(chan Message, 256)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = f.up.Follow(sctx, from, f.prefixes, ch)
		}()
		idle := time.NewTimer(f.idle)
	recv:
		for {
			select {
			case m := <-ch:
				fd.publish(m, f.window)
				idle.Reset(f.idle)
			case <-idle.C:
				break recv
			case <-ctx.Done():
				break recv
			}
		}
		idle.Stop()
		cancel()
		<-done
		for len(ch) > 0 {
			fd.publish(<-ch, f.window)
		}
	}
}

func (fd *feed) publish(m Message, window int) {
	pos, ok := msgPos(m)
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if !ok || !fd.head.Less(pos) {
		return
	}
	fd.ring = append(fd.ring, m)
	fd.head = pos
	if len(fd.ring) > window {
		// Drop the oldest quarter at once so that trimming is amortised.
		fd.drop(len(fd.ring) - window*3/4)
	} else if len(fd.ring) >= 2*minKeep && len(fd.ring)%minKeep == 0 {
		// Drop what every reader has read, keeping minKeep.
		low := fd.head
		for _, p := range fd.readers {
			if p.Less(low) {
				low = p
			}
		}
		n, _ := slices.BinarySearchFunc(fd.ring, low, cmpPos)
		fd.drop(min(n, len(fd.ring)-minKeep))
	}
	close(fd.notify)
	fd.notify = make(chan struct{})
}

// drop removes the ring's n oldest messages.
func (fd *feed) drop(n int) {
	if n <= 0 {
		return
	}
	fd.base, _ = msgPos(fd.ring[n-1])
	fd.ring = append(fd.ring[:0:0], fd.ring[n:]...)
}

func cmpPos(m Message, p Position) int {
	mp, _ := msgPos(m)
	switch {
	case mp.Less(p):
		return -1
	case p.Less(mp):
		return 1
	}
	return 0
}

// covers tells whether a follower at from can read from the feed.
func (fd *feed) covers(from Position) bool {
	return !from.Less(fd.base) && !fd.head.Less(from)
}

// serve sends the feed's messages after *from to out, as the follower's
// prefixes see them, while *from stays inside the window; it returns nil
// when the follower must go alone.
func (fd *feed) serve(ctx context.Context, from *Position, prefixes []string, out chan<- Message) error {
	defer func() {
		fd.mu.Lock()
		delete(fd.readers, from)
		fd.mu.Unlock()
	}()
	for {
		fd.mu.Lock()
		if !fd.covers(*from) {
			delete(fd.readers, from)
			fd.mu.Unlock()
			return nil
		}
		fd.readers[from] = *from
		i, _ := slices.BinarySearchFunc(fd.ring, *from, cmpPos)
		// ring[i] is the first message at or after *from.
		if i < len(fd.ring) {
			if mp, _ := msgPos(fd.ring[i]); mp == *from {
				i++
			}
		}
		batch := slices.Clone(fd.ring[i:])
		wait := fd.notify
		fd.mu.Unlock()
		for _, m := range batch {
			pos, _ := msgPos(m)
			if m.Event != nil && !hasPrefix(m.Event.Stream, prefixes) {
				m = Message{Checkpoint: &pos}
			}
			select {
			case out <- m:
				*from = pos
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func hasPrefix(stream string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// alone follows with a subscription of the follower's own until *from is
// inside the feed's window.
func (f *Feeds) alone(ctx context.Context, fd *feed, from *Position, prefixes []string, out chan<- Message) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan Message, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.up.Follow(sctx, *from, prefixes, ch)
	}()
	defer func() {
		cancel()
		<-done
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		fd.mu.Lock()
		inside := fd.covers(*from)
		fd.mu.Unlock()
		if inside {
			return nil
		}
		select {
		case m := <-ch:
			pos, ok := msgPos(m)
			if !ok || !from.Less(pos) {
				continue
			}
			select {
			case out <- m:
				*from = pos
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
