package conformance

import (
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// $all forward reads include the start position; backward reads exclude it.
func TestReadAllStartPositions(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("E", 5)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	stored := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	p2 := stored[2].OriginalEvent().Position

	fwd := mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Forwards, From: p2}, 3)
	if diff := cmp.Diff(ids(evs[2:5]), eventIDs(fwd)); diff != "" {
		t.Errorf("forwards from event 2's position (-want +got):\n%s", diff)
	}
	bwd := mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: p2}, 2)
	if diff := cmp.Diff([]uuid.UUID{evs[1].EventID, evs[0].EventID}, eventIDs(bwd)); diff != "" {
		t.Errorf("backwards from event 2's position (-want +got):\n%s", diff)
	}
	if got := mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Forwards, From: esdb.End{}}, 10); len(got) != 0 {
		t.Errorf("forwards from end: got %d events, want 0", len(got))
	}
	if got := mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.Start{}}, 10); len(got) != 0 {
		t.Errorf("backwards from start: got %d events, want 0", len(got))
	}
	if got := mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Forwards, From: p2}, 1); len(got) != 1 {
		t.Errorf("count 1: got %d events, want 1", len(got))
	}
}

// $all is one total order: positions > 0, commit == prepare, strictly
// increasing, agreeing with write order and per-stream revision order.
func TestReadAllOrder(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	a, b := streamName(t, "a"), streamName(t, "b")
	var want []uuid.UUID
	var first esdb.AllPosition = esdb.Start{}
	for i := 0; i < 6; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		batch := jsonEvents("E", 1+i%3)
		res := mustAppend(t, c, s, esdb.Any{}, batch...)
		if i == 0 && esdbtest.External() {
			// A shared server's $all is too big to read whole; start at
			// our first event instead.
			first = esdb.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition}
		}
		want = append(want, ids(batch)...)
	}

	fwd := mustReadAll(t, c, esdb.ReadAllOptions{From: first}, maxCount)
	var prev uint64
	for i, e := range fwd {
		p := e.OriginalEvent().Position
		if p.Commit == 0 || p.Commit != p.Prepare || p.Commit <= prev {
			t.Fatalf("$all event %d (%s@%d, %s) position %+v: want commit == prepare > previous %d",
				i, e.OriginalEvent().StreamID, e.OriginalEvent().EventNumber, e.OriginalEvent().EventType, p, prev)
		}
		prev = p.Commit
	}
	own := onlyStreams(fwd, a, b)
	if diff := cmp.Diff(want, eventIDs(own)); diff != "" {
		t.Errorf("own events in $all forwards (-want +got):\n%s", diff)
	}
	next := map[string]uint64{}
	for _, e := range own {
		o := e.OriginalEvent()
		if o.EventNumber != next[o.StreamID] {
			t.Errorf("%s revision %d in $all, want %d", o.StreamID, o.EventNumber, next[o.StreamID])
		}
		next[o.StreamID] = o.EventNumber + 1
	}

	count := maxCount
	if esdbtest.External() {
		count = 1000 // other writers may have appended since
	}
	bwd := onlyStreams(mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, count), a, b)
	if !esdbtest.External() || len(bwd) == len(want) {
		rev := make([]uuid.UUID, len(want))
		for i, id := range want {
			rev[len(want)-1-i] = id
		}
		if diff := cmp.Diff(rev, eventIDs(bwd)); diff != "" {
			t.Errorf("own events in $all backwards (-want +got):\n%s", diff)
		}
	}
}
