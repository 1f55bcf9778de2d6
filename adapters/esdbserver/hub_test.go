package esdbserver

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func positions(recs []record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.pos)
	}
	return out
}

func TestHubQueuesAndOverflow(t *testing.T) {
	h := newHub()
	h.setHead(10)
	all, top := h.register(nil)
	if top != 10 {
		t.Fatalf("head at registration = %d, want 10", top)
	}
	odd, _ := h.register(func(r *record) bool { return r.stream == "odd" })
	for p := uint64(11); p <= 11+liveBuffer; p++ { // liveBuffer+1 events, one per commit
		stream := "even"
		if p%2 == 1 {
			stream = "odd"
		}
		h.publish([]record{{pos: p, stream: stream}})
	}
	if got := h.head.Load(); got != 11+liveBuffer {
		t.Errorf("head = %d, want %d", got, 11+liveBuffer)
	}
	recs, over := all.take(nil)
	if !over || len(recs) != 0 {
		t.Errorf("unfiltered queue: %d events, overflow %v; want its buffer dropped", len(recs), over)
	}
	recs, over = odd.take(nil)
	if over {
		t.Error("filtered queue overflowed with only half the events")
	}
	var want []uint64
	for p := uint64(11); p <= 11+liveBuffer; p += 2 {
		want = append(want, p)
	}
	if diff := cmp.Diff(want, positions(recs)); diff != "" {
		t.Errorf("filtered queue (-want +got):\n%s", diff)
	}
	// One large commit into an empty queue is accepted whole.
	big := make([]record, 3*liveBuffer)
	for i := range big {
		big[i] = record{pos: uint64(100 + i), stream: "odd"}
	}
	h.publish(big)
	if recs, over := odd.take(nil); over || len(recs) != len(big) {
		t.Errorf("large commit: %d events, overflow %v; want %d, false", len(recs), over, len(big))
	}
	h.unregister(all)
	h.unregister(odd)
	h.publish([]record{{pos: 500}})
	if len(h.subs) != 0 {
		t.Errorf("%d queues left after unregister", len(h.subs))
	}
	select {
	case <-odd.signal:
	default:
		t.Error("queue was not signalled")
	}
}
