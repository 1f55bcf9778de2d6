package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// opTimeout bounds every single client call so that a hung server fails the
// test instead of the whole package timing out.
const opTimeout = 20 * time.Second

// maxCount is "read everything" for finite reads; ESDB pages internally, so
// huge counts are normal.
const maxCount = ^uint64(0)

// sortStrings makes cmp.Diff ignore the order of string slices.
var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// newClient returns an official client for this test's event store.
func newClient(t testing.TB) *esdb.Client {
	t.Helper()
	return esdbtest.Client(t)
}

// streamName returns a stream name unique to this run, derived from the test
// name so that a failing test's streams are easy to find on a shared server.
func streamName(t testing.TB, suffix string) string {
	t.Helper()
	base := nonName.ReplaceAllString(t.Name(), "_")
	if suffix != "" {
		base += "_" + suffix
	}
	return base + "-" + uuid.NewString()
}

// ctxFor returns a context that ends at the test's cleanup.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// opCtx returns a context bounded by opTimeout.
func opCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// jsonEvent is a JSON event of type typ with a fresh id and a payload that
// names i.
func jsonEvent(typ string, i int) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.New(),
		EventType:   typ,
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(fmt.Sprintf(`{"i":%d}`, i)),
		Metadata:    []byte(fmt.Sprintf(`{"meta":%d}`, i)),
	}
}

// jsonEvents returns n JSON events of type typ numbered from 0.
func jsonEvents(typ string, n int) []esdb.EventData {
	evs := make([]esdb.EventData, n)
	for i := range evs {
		evs[i] = jsonEvent(typ, i)
	}
	return evs
}

// ids returns the event ids of evs in order.
func ids(evs []esdb.EventData) []uuid.UUID {
	if len(evs) == 0 {
		return nil
	}
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

// mustAppend appends evs and fails the test on any error.
func mustAppend(t testing.TB, c *esdb.Client, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	res, err := c.AppendToStream(opCtx(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...)
	if err != nil {
		t.Fatalf("append %d events to %s (expected %#v): %v", len(evs), stream, exp, err)
	}
	return res
}

// collect drains a finite read. It returns the events read before the first
// error and that error (nil at a clean end).
func collect(rs *esdb.ReadStream, err error) ([]*esdb.ResolvedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

// readStream reads stream with opts and count.
func readStream(t testing.TB, c *esdb.Client, stream string, opts esdb.ReadStreamOptions, count uint64) ([]*esdb.ResolvedEvent, error) {
	t.Helper()
	return collect(c.ReadStream(opCtx(t), stream, opts, count))
}

// mustReadStream reads stream and fails the test on any error.
func mustReadStream(t testing.TB, c *esdb.Client, stream string, opts esdb.ReadStreamOptions, count uint64) []*esdb.ResolvedEvent {
	t.Helper()
	evs, err := readStream(t, c, stream, opts, count)
	if err != nil {
		t.Fatalf("read %s %+v count %d: %v", stream, opts, count, err)
	}
	return evs
}

// mustReadAll reads $all and fails the test on any error.
func mustReadAll(t testing.TB, c *esdb.Client, opts esdb.ReadAllOptions, count uint64) []*esdb.ResolvedEvent {
	t.Helper()
	evs, err := collect(c.ReadAll(opCtx(t), opts, count))
	if err != nil {
		t.Fatalf("read $all %+v count %d: %v", opts, count, err)
	}
	return evs
}

// onlyStreams keeps the events whose original stream is one of streams, so
// that $all assertions hold on a shared server.
func onlyStreams(evs []*esdb.ResolvedEvent, streams ...string) []*esdb.ResolvedEvent {
	var out []*esdb.ResolvedEvent
	for _, e := range evs {
		for _, s := range streams {
			if e.OriginalEvent().StreamID == s {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// revisions returns the original stream revisions of evs.
func revisions(evs []*esdb.ResolvedEvent) []uint64 {
	if len(evs) == 0 {
		return nil
	}
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent().EventNumber
	}
	return out
}

// eventIDs returns the original event ids of evs.
func eventIDs(evs []*esdb.ResolvedEvent) []uuid.UUID {
	if len(evs) == 0 {
		return nil
	}
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent().EventID
	}
	return out
}

// seq returns [from, from+1, ..., to] (or descending when from > to).
func seq(from, to uint64) []uint64 {
	var out []uint64
	if from <= to {
		for r := from; r <= to; r++ {
			out = append(out, r)
		}
		return out
	}
	for r := from; ; r-- {
		out = append(out, r)
		if r == to {
			return out
		}
	}
}

// errCode returns the client error code wrapped in err.
func errCode(err error) (esdb.ErrorCode, bool) {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// wantCode fails the test unless err carries the client error code want.
func wantCode(t testing.TB, what string, err error, want esdb.ErrorCode) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want error code %d", what, want)
	}
	got, ok := errCode(err)
	if !ok {
		t.Fatalf("%s: got error %v (not an *esdb.Error), want error code %d", what, err, want)
	}
	if got != want {
		t.Fatalf("%s: got error code %d (%v), want %d", what, got, err, want)
	}
}

// positionOf returns the $all position of the event with id in stream, read
// back from the stream.
func positionOf(t testing.TB, c *esdb.Client, stream string, id uuid.UUID) esdb.Position {
	t.Helper()
	for _, e := range mustReadStream(t, c, stream, esdb.ReadStreamOptions{}, maxCount) {
		if e.OriginalEvent().EventID == id {
			return e.OriginalEvent().Position
		}
	}
	t.Fatalf("event %s not found in %s", id, stream)
	return esdb.Position{}
}

// subReader pumps a subscription into a channel so that tests can wait with
// a timeout. It is started only when the test wants to consume, which lets a
// test leave a subscription unread on purpose (slow subscriber).
type subReader struct {
	t   testing.TB
	sub *esdb.Subscription
	ch  chan *esdb.SubscriptionEvent
	// checkpoints counts the checkpoint messages skipped so far.
	checkpoints int
}

// subscribeStream subscribes to stream and fails the test on error.
func subscribeStream(t testing.TB, c *esdb.Client, stream string, opts esdb.SubscribeToStreamOptions) *esdb.Subscription {
	t.Helper()
	sub, err := c.SubscribeToStream(ctxFor(t), stream, opts)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", stream, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// subscribeAll subscribes to $all and fails the test on error.
func subscribeAll(t testing.TB, c *esdb.Client, opts esdb.SubscribeToAllOptions) *esdb.Subscription {
	t.Helper()
	sub, err := c.SubscribeToAll(ctxFor(t), opts)
	if err != nil {
		t.Fatalf("subscribe to $all: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// pump starts reading sub in the background.
func pump(t testing.TB, sub *esdb.Subscription) *subReader {
	r := &subReader{t: t, sub: sub, ch: make(chan *esdb.SubscriptionEvent, 1024)}
	go func() {
		defer close(r.ch)
		for {
			ev := sub.Recv()
			r.ch <- ev
			if ev.SubscriptionDropped != nil {
				return
			}
		}
	}()
	return r
}

// next returns the next subscription message, or nil after timeout.
func (r *subReader) next(timeout time.Duration) *esdb.SubscriptionEvent {
	select {
	case ev, ok := <-r.ch:
		if !ok {
			return &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: errors.New("subscription reader closed")}}
		}
		if ev.CheckPointReached != nil {
			r.checkpoints++
		}
		return ev
	case <-time.After(timeout):
		return nil
	}
}

// events waits for n events whose original stream passes keep (nil keeps
// everything), skipping caught-up, fell-behind and checkpoint messages and
// other events. It fails the test on a drop or a timeout.
func (r *subReader) events(n int, keep func(*esdb.ResolvedEvent) bool) []*esdb.ResolvedEvent {
	r.t.Helper()
	var out []*esdb.ResolvedEvent
	deadline := time.Now().Add(opTimeout)
	for len(out) < n {
		ev := r.next(time.Until(deadline))
		switch {
		case ev == nil:
			r.t.Fatalf("timed out after %d of %d subscription events", len(out), n)
		case ev.SubscriptionDropped != nil:
			r.t.Fatalf("subscription dropped after %d of %d events: %v", len(out), n, ev.SubscriptionDropped.Error)
		case ev.EventAppeared != nil:
			if keep == nil || keep(ev.EventAppeared) {
				out = append(out, ev.EventAppeared)
			}
		}
	}
	return out
}

// untilCaughtUp consumes messages until caught_up and returns the events
// that passed keep before it.
func (r *subReader) untilCaughtUp(keep func(*esdb.ResolvedEvent) bool) []*esdb.ResolvedEvent {
	r.t.Helper()
	var out []*esdb.ResolvedEvent
	deadline := time.Now().Add(opTimeout)
	for {
		ev := r.next(time.Until(deadline))
		switch {
		case ev == nil:
			r.t.Fatalf("timed out waiting for caught_up after %d events", len(out))
		case ev.SubscriptionDropped != nil:
			r.t.Fatalf("subscription dropped before caught_up: %v", ev.SubscriptionDropped.Error)
		case ev.CaughtUp != nil:
			return out
		case ev.EventAppeared != nil:
			if keep == nil || keep(ev.EventAppeared) {
				out = append(out, ev.EventAppeared)
			}
		}
	}
}

// noEvents fails the test if an event passing keep arrives within d.
func (r *subReader) noEvents(d time.Duration, keep func(*esdb.ResolvedEvent) bool) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		ev := r.next(left)
		switch {
		case ev == nil:
			return
		case ev.SubscriptionDropped != nil:
			r.t.Fatalf("subscription dropped: %v", ev.SubscriptionDropped.Error)
		case ev.EventAppeared != nil && (keep == nil || keep(ev.EventAppeared)):
			o := ev.EventAppeared.OriginalEvent()
			r.t.Fatalf("unexpected event %s@%d type %s", o.StreamID, o.EventNumber, o.EventType)
		}
	}
}

// inStreams returns a keep function for events of the given streams.
func inStreams(streams ...string) func(*esdb.ResolvedEvent) bool {
	return func(e *esdb.ResolvedEvent) bool {
		id := e.OriginalEvent().StreamID
		for _, s := range streams {
			if id == s {
				return true
			}
		}
		return false
	}
}

// withPrefix returns a keep function for events whose stream starts with p.
func withPrefix(p string) func(*esdb.ResolvedEvent) bool {
	return func(e *esdb.ResolvedEvent) bool { return strings.HasPrefix(e.OriginalEvent().StreamID, p) }
}

// skipIfExternal skips tests that need the embedded server.
func skipIfExternal(t testing.TB, why string) {
	t.Helper()
	if esdbtest.External() {
		t.Skipf("needs the embedded server: %s", why)
	}
}
