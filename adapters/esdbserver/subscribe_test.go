package esdbserver

import (
	"context"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// Checkpoints of a filtered $all subscription lie strictly after its start
// position and never beyond the events scanned.
func TestFilteredCheckpointsAfterStart(t *testing.T) {
	srv := start(t, t.TempDir(), nil)
	c := newClient(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	other := esdb.EventData{EventType: "Other", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	wanted := esdb.EventData{EventType: "Wanted", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	res, err := c.AppendToStream(ctx, "a", esdb.AppendToStreamOptions{}, other, other, other)
	if err != nil {
		t.Fatal(err)
	}
	startPos := res.CommitPosition
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:               esdb.Position{Commit: startPos, Prepare: startPos},
		Filter:             &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: []string{"Wanted"}},
		MaxSearchWindow:    4,
		CheckpointInterval: 2, // every 8 considered events
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var log []string
	next := func() *esdb.SubscriptionEvent {
		t.Helper()
		ev := sub.Recv()
		if ev.SubscriptionDropped != nil {
			t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		}
		return ev
	}
	if ev := next(); ev.CaughtUp == nil {
		t.Fatalf("first message %+v, want caught up (no checkpoint at or before the start)", ev)
	}
	// 8 live events: 7 others then one wanted.
	for range 7 {
		if _, err := c.AppendToStream(ctx, "a", esdb.AppendToStreamOptions{}, other); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.AppendToStream(ctx, "b", esdb.AppendToStreamOptions{}, wanted); err != nil {
		t.Fatal(err)
	}
	for len(log) < 2 {
		ev := next()
		switch {
		case ev.EventAppeared != nil:
			log = append(log, "event "+ev.EventAppeared.Event.EventType)
		case ev.CheckPointReached != nil:
			if ev.CheckPointReached.Commit != startPos+8 {
				t.Errorf("checkpoint at %d, want %d", ev.CheckPointReached.Commit, startPos+8)
			}
			log = append(log, "checkpoint")
		}
	}
	if diff := cmp.Diff([]string{"event Wanted", "checkpoint"}, log); diff != "" {
		t.Errorf("live messages (-want +got):\n%s", diff)
	}
}

// A subscriber that does not read while many commits happen falls behind,
// returns to catching up from storage, and still gets every event once, in
// order.
func TestSlowSubscriberFallsBackWithoutLoss(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := start(t, t.TempDir(), reg)
	c := newClient(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := c.SubscribeToStream(ctx, "slow", esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := sub.Recv(); ev.CaughtUp == nil {
		t.Fatalf("first message %+v, want caught up", ev)
	}
	const n = 300
	big := esdb.EventData{EventType: "T", ContentType: esdb.ContentTypeBinary, Data: make([]byte, 16<<10)}
	for range n {
		if _, err := c.AppendToStream(ctx, "slow", esdb.AppendToStreamOptions{}, big); err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(0); want < n; {
		ev := sub.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", ev.SubscriptionDropped.Error)
		case ev.EventAppeared != nil:
			if got := ev.EventAppeared.Event.EventNumber; got != want {
				t.Fatalf("event %d delivered where %d was due", got, want)
			}
			want++
		}
	}
	if got := counter(t, reg, "lark_esdb_subscription_fallbacks_total", ""); got < 1 {
		t.Errorf("fallbacks = %v, want at least 1 (the subscriber never fell behind)", got)
	}
}
