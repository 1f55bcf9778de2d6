package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// uniqueToken is a short identifier-safe token for stream and type names.
func uniqueToken(prefix string) string {
	return prefix + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// Filtered $all subscriptions by stream/event-type prefix and regex, during
// catch-up and live.
func TestSubscribeAllFilters(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	type write struct{ stream, typ string }
	tests := []struct {
		name   string
		filter func(u string) *esdb.SubscriptionFilter
		want   []int // indexes into the writes below
	}{
		{
			name: "stream prefix list",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{u + "-a", u + "-b"}}
			},
			want: []int{0, 1},
		},
		{
			name: "stream prefix is case-sensitive starts-with",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{u, strings.ToUpper(u)}}
			},
			want: []int{0, 1, 3},
		},
		{
			name: "stream regex anchored",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: "^" + u + "-(a|c)$"}
			},
			want: []int{0, 3},
		},
		{
			name: "stream regex unanchored match",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: u + "-a"}
			},
			want: []int{0, 2},
		},
		{
			name: "event type prefix",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: []string{u + "Created"}}
			},
			want: []int{0, 2},
		},
		{
			name: "event type regex",
			filter: func(u string) *esdb.SubscriptionFilter {
				return &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "^(" + u + "Updated|Other" + u + ")$"}
			},
			want: []int{1, 3, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := uniqueToken("flt")
			writes := []write{
				{u + "-a", u + "Created"},
				{u + "-b", u + "Updated"},
				{"x" + u + "-a", u + "Created"},
				{u + "-c", "Other" + u},
				{"x" + u + "-b", "Other" + u},
			}
			mine := func(e *esdb.ResolvedEvent) bool { return strings.Contains(e.OriginalEvent().StreamID, u) }
			writeAll := func() []uuid.UUID {
				var want []uuid.UUID
				for i, w := range writes {
					ev := jsonEvent(w.typ, i)
					mustAppend(t, c, w.stream, esdb.Any{}, ev)
					for _, j := range tt.want {
						if j == i {
							want = append(want, ev.EventID)
						}
					}
				}
				return want
			}
			marker := mustAppend(t, c, "m"+u, esdb.Any{}, jsonEvent("Marker", 0))
			wantOld := writeAll()
			r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: writePos(marker), Filter: tt.filter(u)}))
			if diff := cmp.Diff(wantOld, eventIDs(r.untilCaughtUp(mine))); diff != "" {
				t.Errorf("catch-up (-want +got):\n%s", diff)
			}
			wantLive := writeAll()
			if diff := cmp.Diff(wantLive, eventIDs(r.events(len(wantLive), mine))); diff != "" {
				t.Errorf("live (-want +got):\n%s", diff)
			}
			r.noEvents(quiet, mine)
		})
	}
}

// ExcludeSystemEventsFilter drops $-typed events ($metadata, $streamDeleted,
// $>) but keeps non-$ types, even in $ streams.
func TestSubscribeAllExcludeSystemEvents(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	u := uniqueToken("sys")
	plain, sys, doomed, links := u+"-plain", "$"+u+"-sys", u+"-doomed", u+"-links"
	mine := func(e *esdb.ResolvedEvent) bool { return strings.Contains(e.OriginalEvent().StreamID, u) }
	r := pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}, Filter: esdb.ExcludeSystemEventsFilter()}))
	r.untilCaughtUp(nil)

	keep1 := jsonEvent("Kept", 1)
	mustAppend(t, c, plain, esdb.Any{}, keep1)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(5)
	if _, err := c.SetStreamMetadata(opCtx(t), plain, esdb.AppendToStreamOptions{}, meta); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	keep2 := jsonEvent("KeptInSystemStream", 2)
	mustAppend(t, c, sys, esdb.Any{}, keep2)
	mustAppend(t, c, links, esdb.Any{}, linkEvent(0, plain))
	mustAppend(t, c, doomed, esdb.Any{}, jsonEvent("Doomed", 3))
	if _, err := c.TombstoneStream(opCtx(t), doomed, esdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	keep3 := jsonEvent("KeptLast", 4)
	mustAppend(t, c, plain, esdb.Any{}, keep3)

	want := []uuid.UUID{keep1.EventID, keep2.EventID, eventIDOfType(t, c, doomed, "Doomed"), keep3.EventID}
	if diff := cmp.Diff(want, eventIDs(r.events(len(want), mine))); diff != "" {
		t.Errorf("events through ExcludeSystemEventsFilter (-want +got):\n%s", diff)
	}
	r.noEvents(quiet, mine)
}

// eventIDOfType finds the id of the event of type typ in stream through $all
// (the stream itself may be tombstoned).
func eventIDOfType(t *testing.T, c *esdb.Client, stream, typ string) uuid.UUID {
	t.Helper()
	for _, e := range mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1000) {
		if o := e.OriginalEvent(); o.StreamID == stream && o.EventType == typ {
			return o.EventID
		}
	}
	t.Fatalf("no %s event in %s among the last 1000 $all events", typ, stream)
	return uuid.UUID{}
}

// checkpointRun consumes a filtered subscription and checks the checkpoint
// invariants on the way: strictly increasing, never beyond a matching event
// that has not been delivered yet.
type checkpointRun struct {
	t           *testing.T
	r           *subReader
	matching    []esdb.Position // positions of every matching event written
	delivered   int
	checkpoints []esdb.Position
}

func (cr *checkpointRun) consume(until func() bool, keep func(*esdb.ResolvedEvent) bool) {
	cr.t.Helper()
	deadline := time.Now().Add(opTimeout)
	for !until() {
		ev := cr.r.next(time.Until(deadline))
		switch {
		case ev == nil:
			cr.t.Fatalf("timed out: %d events delivered, %d checkpoints", cr.delivered, len(cr.checkpoints))
		case ev.SubscriptionDropped != nil:
			cr.t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		case ev.EventAppeared != nil:
			if keep(ev.EventAppeared) {
				cr.delivered++
			}
		case ev.CheckPointReached != nil:
			p := *ev.CheckPointReached
			if n := len(cr.checkpoints); n > 0 && !less(cr.checkpoints[n-1], p) {
				cr.t.Errorf("checkpoint %+v not after previous %+v", p, cr.checkpoints[n-1])
			}
			for i, m := range cr.matching {
				if i >= cr.delivered && !less(p, m) {
					cr.t.Errorf("checkpoint %+v lies at or beyond matching event %d at %+v, which was not delivered yet", p, i, m)
				}
			}
			cr.checkpoints = append(cr.checkpoints, p)
		}
	}
}

func less(a, b esdb.Position) bool {
	return a.Commit < b.Commit || (a.Commit == b.Commit && a.Prepare < b.Prepare)
}

// Checkpoints come every window × multiplier considered events, matched or
// not, both in catch-up and live, and never run ahead of delivery.
func TestSubscribeAllCheckpoints(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	u := uniqueToken("cp")
	match, other := u+"-match", "o"+u+"-other"
	keep := func(e *esdb.ResolvedEvent) bool { return e.OriginalEvent().StreamID == match }
	const window, multiplier = 4, 2 // interval 8 considered events

	// Catch-up: 100 events, every 10th matching.
	marker := mustAppend(t, c, "m"+u, esdb.Any{}, jsonEvent("Marker", 0))
	var matching []esdb.Position
	var head esdb.Position
	for i := 0; i < 100; i++ {
		s := other
		if i%10 == 9 {
			s = match
		}
		res := mustAppend(t, c, s, esdb.Any{}, jsonEvent("E", i))
		head = writePos(res)
		if s == match {
			matching = append(matching, head)
		}
	}
	cr := &checkpointRun{t: t, matching: matching}
	cr.r = pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{
		From:               writePos(marker),
		Filter:             &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{match}},
		MaxSearchWindow:    window,
		CheckpointInterval: multiplier,
	}))
	cr.consume(func() bool { return cr.delivered == 10 }, keep)
	if len(cr.checkpoints) < 2 {
		t.Errorf("catch-up over ~100 considered events with interval %d: got %d checkpoints, want at least 2", window*multiplier, len(cr.checkpoints))
	}
	for _, p := range cr.checkpoints {
		if less(head, p) && !esdbtest.External() {
			t.Errorf("catch-up checkpoint %+v beyond the head %+v", p, head)
		}
	}

	// Live: a fresh subscription from the end counts every committed event.
	cr2 := &checkpointRun{t: t}
	cr2.r = pump(t, subscribeAll(t, c, esdb.SubscribeToAllOptions{
		From:               esdb.End{},
		Filter:             &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{match}},
		MaxSearchWindow:    5,
		CheckpointInterval: 2, // interval 10
	}))
	// Wait for caught_up (24.10 may checkpoint just before it; ignore that).
	for {
		ev := cr2.r.next(opTimeout)
		if ev == nil || ev.SubscriptionDropped != nil {
			t.Fatalf("no caught_up on the live subscription: %+v", ev)
		}
		if ev.CaughtUp != nil {
			break
		}
	}
	var all []esdb.Position
	for i := 0; i < 35; i++ {
		s := other
		if i == 14 {
			s = match
		}
		p := writePos(mustAppend(t, c, s, esdb.Any{}, jsonEvent("L", i)))
		all = append(all, p)
		if s == match {
			cr2.matching = append(cr2.matching, p)
		}
	}
	cr2.consume(func() bool { return cr2.delivered == 1 && len(cr2.checkpoints) >= 3 }, keep)
	if !esdbtest.External() {
		// Alone on the server, the 10th, 20th and 30th committed events are
		// exactly where the checkpoints fall.
		want := []esdb.Position{all[9], all[19], all[29]}
		if diff := cmp.Diff(want, cr2.checkpoints[:3]); diff != "" {
			t.Errorf("live checkpoints (-want +got):\n%s", diff)
		}
		cr2.r.noEvents(quiet, keep)
	}
}
