package conformance

import (
	"math"
	"strings"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// writePos returns the $all position of a write.
func writePos(r *esdb.WriteResult) esdb.Position {
	return esdb.Position{Commit: r.CommitPosition, Prepare: r.PreparePosition}
}

// A position start is exclusive: the event at that position is skipped.
func TestSubscribeAllFromPositionIsExclusive(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("E", 4)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	p0 := positionOf(t, c, s, evs[0].EventID)
	r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: p0}))
	got := r.events(3, inStreams(s))
	if diff := cmp.Diff(ids(evs[1:]), eventIDs(got)); diff != "" {
		t.Errorf("events after event 0's position (-want +got):\n%s", diff)
	}
	// The WriteResult position of an append is the last event's position, so
	// subscribing from it skips that event.
	last := mustAppend(t, c, s, esdb.Any{}, jsonEvent("Last", 0))
	next := jsonEvent("Next", 0)
	r2 := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: writePos(last)}))
	mustAppend(t, c, s, esdb.Any{}, next)
	if got := r2.events(1, inStreams(s)); got[0].OriginalEvent().EventID != next.EventID {
		t.Errorf("first event after a WriteResult position: got type %s, want Next", got[0].OriginalEvent().EventType)
	}
}

func TestSubscribeAllFromEnd(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("Old", 3)...)
	r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}}))
	if got := r.untilCaughtUp(inStreams(s)); len(got) != 0 {
		t.Errorf("got %d old events from end, want 0", len(got))
	}
	ev := jsonEvent("New", 0)
	mustAppend(t, c, s, esdb.Any{}, ev)
	if got := r.events(1, inStreams(s)); got[0].OriginalEvent().EventID != ev.EventID {
		t.Errorf("got %s, want the new event %s", got[0].OriginalEvent().EventID, ev.EventID)
	}
	r.noEvents(quiet, inStreams(s))
}

// Catch-up from storage, caught_up, then live events, with nothing lost or
// repeated at the seam.
func TestSubscribeAllCatchUpThenLive(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	marker := mustAppend(t, c, streamName(t, "marker"), esdb.Any{}, jsonEvent("Marker", 0))
	old := jsonEvents("Old", 50)
	mustAppend(t, c, s, esdb.NoStream{}, old...)
	r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: writePos(marker)}))
	caught := r.untilCaughtUp(inStreams(s))
	if diff := cmp.Diff(ids(old), eventIDs(caught)); diff != "" {
		t.Errorf("catch-up (-want +got):\n%s", diff)
	}
	var live []esdb.EventData
	for i := 0; i < 10; i++ {
		ev := jsonEvent("Live", i)
		live = append(live, ev)
		mustAppend(t, c, s, esdb.Any{}, ev)
	}
	if diff := cmp.Diff(ids(live), eventIDs(r.events(10, inStreams(s)))); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, inStreams(s))
	if r.checkpoints != 0 {
		t.Errorf("unfiltered $all subscription sent %d checkpoints, want none", r.checkpoints)
	}
}

// An unfiltered $all subscription delivers system records too: $metadata in
// the metastream and the $streamDeleted tombstone.
func TestSubscribeAllUnfilteredIncludesSystemEvents(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvent("E", 0))
	r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}}))
	r.untilCaughtUp(nil)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(3)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, meta); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	if _, err := c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	got := r.events(2, inStreams(s, "$$"+s))
	type rec struct {
		Stream, Type string
		Revision     uint64
	}
	want := []rec{{"$$" + s, "$metadata", 0}, {s, "$streamDeleted", math.MaxInt64}}
	var gotRecs []rec
	for _, e := range got {
		o := e.OriginalEvent()
		gotRecs = append(gotRecs, rec{o.StreamID, o.EventType, o.EventNumber})
	}
	if diff := cmp.Diff(want, gotRecs); diff != "" {
		t.Errorf("system records (-want +got):\n%s", diff)
	}
}

// A filtered $all subscriber that does not read while hundreds of events are
// appended still gets every matching event once, in order.
func TestSubscribeAllSlowSubscriber(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	prefix := "slow" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "-"
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{
		From:   esdb.End{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{prefix}},
	})
	// 20 MiB: more than the client's largest flow-control window.
	payload := []byte(`{"pad":"` + strings.Repeat("y", 20<<10) + `"}`)
	var want []uuid.UUID
	for i := 0; i < 100; i++ {
		evs := jsonEvents("Burst", 10)
		for j := range evs {
			evs[j].Data = payload
		}
		mustAppend(t, c, prefix+string(rune('a'+i%3)), esdb.Any{}, evs...)
		want = append(want, ids(evs)...)
	}
	r := pump(t, sub)
	if diff := cmp.Diff(want, eventIDs(r.events(len(want), withPrefix(prefix)))); diff != "" {
		t.Errorf("events delivered to the slow subscriber (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, withPrefix(prefix))
}
