package esdbserver

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// Concurrent appends and retries with a head cache far smaller than the set
// of streams (so heads are evicted and prechecks go stale all the time):
// every retry of an acknowledged batch is answered idempotently with the
// original revision, no id is stored twice, and revisions stay contiguous.
func TestConcurrentRetriesWithEvictions(t *testing.T) {
	s, err := newStore(t.TempDir(), discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.cache = newHeadCache(3)
	go s.writer()
	defer s.close()

	const workers, rounds, nStreams = 8, 150, 12
	type acked struct {
		stream string
		ids    []proposed
		rev    int64
	}
	var mu sync.Mutex
	var history []acked
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				mu.Lock()
				var old *acked
				if len(history) > 0 && rng.IntN(3) == 0 {
					a := history[rng.IntN(len(history))]
					old = &a
				}
				mu.Unlock()
				if old != nil {
					exp := expected{kind: expAny}
					if rng.IntN(2) == 0 {
						exp = expected{kind: expExists}
					}
					res := s.write(&writeReq{op: opAppend, stream: old.stream, exp: exp, events: old.ids})
					if res.kind != resOK || res.cur != old.rev {
						t.Errorf("retry on %s: %+v, want ok at revision %d", old.stream, res, old.rev)
						return
					}
					continue
				}
				stream := fmt.Sprintf("s%d", rng.IntN(nStreams))
				evs := make([]proposed, 1+rng.IntN(3))
				for i := range evs {
					evs[i] = proposed{id: uuid.New(), typ: "t", data: []byte("d")}
				}
				// Sometimes the same batch is sent twice at once, as a client
				// retrying before the first answer would.
				twice := rng.IntN(4) == 0
				var dup writeResult
				var dupDone sync.WaitGroup
				if twice {
					dupDone.Add(1)
					go func() {
						defer dupDone.Done()
						dup = s.write(&writeReq{op: opAppend, stream: stream, exp: expected{kind: expAny}, events: evs})
					}()
				}
				res := s.write(&writeReq{op: opAppend, stream: stream, exp: expected{kind: expAny}, events: evs})
				dupDone.Wait()
				if res.kind != resOK {
					t.Errorf("append: %+v", res)
					return
				}
				if twice && (dup.kind != resOK || dup.cur != res.cur) {
					t.Errorf("concurrent duplicate: %+v and %+v, want both ok at one revision", res, dup)
					return
				}
				mu.Lock()
				history = append(history, acked{stream: stream, ids: evs, rev: res.cur})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, a := range history {
		total += len(a.ids)
	}
	stored := 0
	for i := range nStreams {
		stream := fmt.Sprintf("s%d", i)
		h, err := s.head(stream)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[16]byte]bool{}
		next := uint64(0)
		err = s.scanStream(stream, 0, uint64(max(h.lastRev, 0)), false, func(r *record) (bool, error) {
			if r.rev != next {
				t.Errorf("%s: revision %d where %d was expected", stream, r.rev, next)
			}
			next++
			if seen[r.id] {
				t.Errorf("%s: id %x stored twice", stream, r.id)
			}
			seen[r.id] = true
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		stored += int(next)
	}
	if stored != total {
		t.Errorf("%d events stored, %d acknowledged", stored, total)
	}
}
