package conformance

import (
	"math"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// quiet is how long a test waits to be sure that nothing more arrives.
const quiet = 300 * time.Millisecond

func TestSubscribeStreamFromStart(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	old := jsonEvents("Old", 3)
	mustAppend(t, c, s, esdb.NoStream{}, old...)
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}}))
	caught := r.untilCaughtUp(nil)
	if diff := cmp.Diff(ids(old), eventIDs(caught)); diff != "" {
		t.Errorf("catch-up events before caught_up (-want +got):\n%s", diff)
	}
	live := jsonEvents("Live", 2)
	mustAppend(t, c, s, esdb.Revision(2), live[0])
	mustAppend(t, c, s, esdb.Revision(3), live[1])
	got := r.events(2, nil)
	if diff := cmp.Diff(ids(live), eventIDs(got)); diff != "" {
		t.Errorf("live events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seq(3, 4), revisions(got)); diff != "" {
		t.Errorf("live revisions (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, nil)
}

// A revision start is exclusive: From Revision(N) delivers N+1 onwards.
func TestSubscribeStreamFromRevisionIsExclusive(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("E", 5)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Revision(1)}))
	got := r.events(3, nil)
	if diff := cmp.Diff(seq(2, 4), revisions(got)); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, nil)
}

func TestSubscribeStreamFromEnd(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("Old", 3)...)
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.End{}}))
	if got := r.untilCaughtUp(nil); len(got) != 0 {
		t.Errorf("got %d events before caught_up from end, want 0", len(got))
	}
	ev := jsonEvent("New", 0)
	mustAppend(t, c, s, esdb.Revision(2), ev)
	got := r.events(1, nil)
	if got[0].OriginalEvent().EventID != ev.EventID || got[0].OriginalEvent().EventNumber != 3 {
		t.Errorf("got %s@%d, want %s@3", got[0].OriginalEvent().EventID, got[0].OriginalEvent().EventNumber, ev.EventID)
	}
	r.noEvents(quiet, nil)
}

// Subscribing to a stream that does not exist yet succeeds; its events
// arrive once it is written.
func TestSubscribeStreamMissingThenCreated(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}}))
	if got := r.untilCaughtUp(nil); len(got) != 0 {
		t.Fatalf("got %d events from a missing stream, want 0", len(got))
	}
	evs := jsonEvents("E", 2)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	if diff := cmp.Diff(ids(evs), eventIDs(r.events(2, nil))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// A soft-deleted stream subscribes like a missing one: old events are hidden
// and the events that recreate it arrive with continuing revisions.
func TestSubscribeStreamSoftDeletedThenRecreated(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("Old", 2)...)
	if _, err := c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}}))
	if got := r.untilCaughtUp(nil); len(got) != 0 {
		t.Fatalf("got %d events (revisions %v) from a soft-deleted stream, want 0", len(got), revisions(got))
	}
	ev := jsonEvent("New", 0)
	mustAppend(t, c, s, esdb.Any{}, ev)
	got := r.events(1, nil)
	if got[0].OriginalEvent().EventID != ev.EventID || got[0].OriginalEvent().EventNumber != 2 {
		t.Errorf("got %s@%d, want %s@2", got[0].OriginalEvent().EventID, got[0].OriginalEvent().EventNumber, ev.EventID)
	}
	r.noEvents(quiet, nil)
}

func TestSubscribeStreamTombstoned(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvent("E", 0))
	if _, err := c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	sub, err := c.SubscribeToStream(ctxFor(t), s, esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	if sub != nil {
		_ = sub.Close()
	}
	wantCode(t, "subscribe to a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
}

// A tombstone written while subscribed delivers the $streamDeleted record
// and then ends the subscription with a stream-deleted status.
func TestSubscribeStreamTombstonedWhileSubscribed(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvent("E", 0))
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}}))
	r.untilCaughtUp(nil)
	if _, err := c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	got := r.events(1, nil)[0].OriginalEvent()
	if got.EventType != "$streamDeleted" || got.EventNumber != math.MaxInt64 || got.StreamID != s {
		t.Errorf("got %s@%d type %q, want the tombstone %s@%d type $streamDeleted", got.StreamID, got.EventNumber, got.EventType, s, uint64(math.MaxInt64))
	}
	for {
		ev := r.next(opTimeout)
		if ev == nil {
			t.Fatal("subscription still open after the tombstone")
		}
		if ev.EventAppeared != nil {
			t.Fatalf("unexpected event after the tombstone: %+v", ev.EventAppeared.OriginalEvent())
		}
		if ev.SubscriptionDropped != nil {
			if code := status.Code(ev.SubscriptionDropped.Error); code != codes.FailedPrecondition {
				t.Errorf("drop error = %v (code %v), want FailedPrecondition stream-deleted", ev.SubscriptionDropped.Error, code)
			}
			return
		}
	}
}

// A subscriber that does not read while hundreds of events are appended
// still receives every event, in order, exactly once.
func TestSubscribeStreamSlowSubscriber(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	sub := subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	// 20 MiB in all: more than grpc-go's largest flow-control window
	// (16 MiB with BDP estimation), so the server really cannot push it all.
	const batches, per = 100, 10
	payload := make([]byte, 20<<10)
	for i := range payload {
		payload[i] = 'x'
	}
	var want []uint64
	for i := 0; i < batches; i++ {
		evs := jsonEvents("Burst", per)
		for j := range evs {
			evs[j].ContentType = esdb.ContentTypeBinary
			evs[j].Data = payload
		}
		mustAppend(t, c, s, esdb.Any{}, evs...)
		for j := 0; j < per; j++ {
			want = append(want, uint64(i*per+j))
		}
	}
	// Only now start reading: the server had to buffer, block or fall back to
	// catch-up for this subscriber.
	r := pump(t, sub)
	got := r.events(batches*per, nil)
	if diff := cmp.Diff(want, revisions(got)); diff != "" {
		t.Errorf("revisions delivered to the slow subscriber (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, nil)
}
