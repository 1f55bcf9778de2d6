package esdbserver

import (
	"sync"
	"sync/atomic"
)

// liveBuffer is how many live events a subscriber may lag before its buffer
// is dropped and it returns to catching up from storage.
const liveBuffer = 32

// hub fans committed events out to subscribers, in commit order.
type hub struct {
	mu   sync.Mutex
	head atomic.Uint64 // newest published position; written under mu
	subs map[*liveQueue]struct{}
}

// liveQueue buffers live events for one subscriber.
type liveQueue struct {
	match    func(*record) bool // nil: every event
	mu       sync.Mutex
	recs     []record
	overflow bool
	signal   chan struct{}
}

func newHub() *hub { return &hub{subs: make(map[*liveQueue]struct{})} }

func (h *hub) setHead(pos uint64) {
	h.mu.Lock()
	h.head.Store(pos)
	h.mu.Unlock()
}

// publish makes recs (ascending positions, all above the head) visible.
func (h *hub) publish(recs []record) {
	if len(recs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head.Store(recs[len(recs)-1].pos)
	if len(h.subs) == 0 {
		return
	}
	// Encode each event once for all subscribers.
	for i := range recs {
		r := &recs[i]
		r.enc = appendReadResp(make([]byte, 0, recordedSize(r, false)+24), r, nil, r.pos, false)
	}
	for q := range h.subs {
		q.push(recs)
	}
}

// register adds a live queue and returns it with the head at registration:
// the queue receives exactly the events after that head.
// match, if not nil, selects the events the queue receives.
func (h *hub) register(match func(*record) bool) (*liveQueue, uint64) {
	q := &liveQueue{match: match, signal: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[q] = struct{}{}
	return q, h.head.Load()
}

func (h *hub) unregister(q *liveQueue) {
	h.mu.Lock()
	delete(h.subs, q)
	h.mu.Unlock()
}

func (q *liveQueue) push(recs []record) {
	if q.match != nil {
		var sel []record
		for i := range recs {
			if q.match(&recs[i]) {
				sel = append(sel, recs[i])
			}
		}
		if len(sel) == 0 {
			return
		}
		recs = sel
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overflow {
		return
	}
	if len(q.recs) > 0 && len(q.recs)+len(recs) > liveBuffer {
		q.overflow = true
		q.recs = nil
	} else {
		q.recs = append(q.recs, recs...)
	}
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns the buffered events and whether the queue overflowed.
func (q *liveQueue) take(buf []record) ([]record, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	buf = append(buf[:0], q.recs...)
	q.recs = q.recs[:0]
	return buf, q.overflow
}
