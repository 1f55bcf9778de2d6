package conformance

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// Benchmarks of the event store through the official client, each against
// bare Pebble doing the same work in the same run:
//
//	go test -run '^$' -bench . -benchtime 3s ./adapters/esdbserver/conformance/
//
// Every benchmark reports events/s for the client path, pebble-events/s for
// the baseline and ratio-to-pebble = events/s ÷ pebble-events/s.

// benchPayload is the data of every benchmark event (about the size of a
// small domain event).
var benchPayload = []byte(`{"workspace":"w-0001","contact":"c-000000001","kind":"page_viewed","url":"https://example.com/pricing"}`)

func benchEvent() esdb.EventData {
	return esdb.EventData{EventID: uuid.New(), EventType: "PageViewed", ContentType: esdb.ContentTypeJson, Data: benchPayload}
}

// runParallel runs op n times on workers goroutines and returns the wall
// time; it stops at the first error.
func runParallel(n, workers int, op func(worker int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := op(w); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// pebbleBaseline is a bare Pebble database in a temporary directory.
type pebbleBaseline struct {
	db  *pebble.DB
	key atomic.Uint64
}

func openPebble(b *testing.B) *pebbleBaseline {
	b.Helper()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{})
	if err != nil {
		b.Fatalf("open pebble: %v", err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return &pebbleBaseline{db: db}
}

// value is what the baseline stores per event: the payload plus room for the
// id, type and timestamps that the event store keeps too.
var baselineValue = append(append([]byte{}, benchPayload...), make([]byte, 64)...)

// writeBatch commits perBatch records with a synced write.
func (p *pebbleBaseline) writeBatch(perBatch int) error {
	batch := p.db.NewBatch()
	defer batch.Close()
	var k [8]byte
	for i := 0; i < perBatch; i++ {
		binary.BigEndian.PutUint64(k[:], p.key.Add(1))
		if err := batch.Set(k[:], baselineValue, nil); err != nil {
			return err
		}
	}
	return batch.Commit(pebble.Sync)
}

// synced measures bare Pebble doing n synced commits of perBatch records on
// workers goroutines; it returns records per second.
func (p *pebbleBaseline) synced(b *testing.B, n, workers, perBatch int) float64 {
	b.Helper()
	elapsed, err := runParallel(n, workers, func(int) error { return p.writeBatch(perBatch) })
	if err != nil {
		b.Fatalf("pebble baseline: %v", err)
	}
	return float64(n*perBatch) / elapsed.Seconds()
}

func report(b *testing.B, rate, baseline float64) {
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseline, "pebble-events/s")
	b.ReportMetric(rate/baseline, "ratio-to-pebble")
}

// benchAppends measures appends of perBatch events through the client on
// workers goroutines, each writing to its own stream.
func benchAppends(b *testing.B, workers, perBatch int) {
	c := newClient(b)
	streams := make([]string, workers)
	for i := range streams {
		streams[i] = fmt.Sprintf("bench-%d-%s", i, uuid.NewString())
	}
	// Warm the connection up outside the measurement.
	mustAppend(b, c, streams[0], esdb.Any{}, benchEvent())
	b.ResetTimer()
	elapsed, err := runParallel(b.N, workers, func(w int) error {
		evs := make([]esdb.EventData, perBatch)
		for i := range evs {
			evs[i] = benchEvent()
		}
		_, err := c.AppendToStream(context.Background(), streams[w], esdb.AppendToStreamOptions{}, evs...)
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatalf("append: %v", err)
	}
	rate := float64(b.N*perBatch) / elapsed.Seconds()
	report(b, rate, openPebble(b).synced(b, b.N, workers, perBatch))
}

// Single-event appends at 1, 16 and 64 concurrent writers.
func BenchmarkAppendSingle(b *testing.B) {
	for _, w := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchAppends(b, w, 1) })
	}
}

// Appends of 100 events per batch, by 1 and 16 writers.
func BenchmarkAppendBatch100(b *testing.B) {
	for _, w := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchAppends(b, w, 100) })
	}
}

// A forward read of $all over N events against a bare Pebble iterator over
// N records.
func BenchmarkReadAll(b *testing.B) {
	if esdbtest.External() {
		b.Skip("reads the whole of $all; needs the embedded server")
	}
	const n = 20000
	c := newClient(b)
	s := "bench-read-" + uuid.NewString()
	for i := 0; i < n/500; i++ {
		evs := make([]esdb.EventData, 500)
		for j := range evs {
			evs[j] = benchEvent()
		}
		mustAppend(b, c, s, esdb.Any{}, evs...)
	}
	p := openPebble(b)
	for i := 0; i < n/500; i++ {
		if err := p.writeBatch(500); err != nil {
			b.Fatalf("pebble: %v", err)
		}
	}
	b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			rs, err := c.ReadAll(context.Background(), esdb.ReadAllOptions{From: esdb.Start{}}, maxCount)
			got, err := collect(rs, err)
			if err != nil {
				b.Fatalf("read $all: %v", err)
			}
			if len(got) < n {
				b.Fatalf("read $all: %d events, want at least %d", len(got), n)
			}
		}
		rate := float64(b.N*n) / time.Since(start).Seconds()
		b.StopTimer()
		baseStart := time.Now()
		for i := 0; i < b.N; i++ {
			it, err := p.db.NewIter(&pebble.IterOptions{})
			if err != nil {
				b.Fatalf("pebble iter: %v", err)
			}
			count := 0
			for valid := it.First(); valid; valid = it.Next() {
				if _, err := it.ValueAndErr(); err != nil {
					b.Fatalf("pebble value: %v", err)
				}
				count++
			}
			if err := it.Close(); err != nil {
				b.Fatalf("pebble iter: %v", err)
			}
			if count != n {
				b.Fatalf("pebble: %d records, want %d", count, n)
			}
		}
		report(b, rate, float64(b.N*n)/time.Since(baseStart).Seconds())
	})
}

// Live fan-out: one writer appends batches of 100 while 10 filtered $all
// subscribers receive every event. events/s is the rate at which every
// subscriber has received the events; the baseline is Pebble committing the
// same synced batches.
func BenchmarkFanout10(b *testing.B) {
	const subscribers, perBatch = 10, 100
	c := newClient(b)
	prefix := "bench-fan-" + uuid.NewString()[:8] + "-"
	batches := (b.N + perBatch - 1) / perBatch
	total := batches * perBatch
	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	ready := make(chan struct{}, subscribers)
	for i := 0; i < subscribers; i++ {
		sub := subscribeAll(b, c, esdb.SubscribeToAllOptions{
			From:   esdb.End{},
			Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{prefix}},
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := 0
			for got < total {
				ev := sub.Recv()
				switch {
				case ev.SubscriptionDropped != nil:
					errs <- ev.SubscriptionDropped.Error
					return
				case ev.CaughtUp != nil:
					select {
					case ready <- struct{}{}:
					default:
					}
				case ev.EventAppeared != nil:
					got++
				}
			}
		}()
	}
	for i := 0; i < subscribers; i++ {
		select {
		case <-ready:
		case err := <-errs:
			b.Fatalf("subscriber: %v", err)
		case <-time.After(opTimeout):
			b.Fatal("subscribers did not catch up")
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < batches; i++ {
		evs := make([]esdb.EventData, perBatch)
		for j := range evs {
			evs[j] = benchEvent()
		}
		if _, err := c.AppendToStream(context.Background(), prefix+"s", esdb.AppendToStreamOptions{}, evs...); err != nil {
			b.Fatalf("append: %v", err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatalf("subscriber: %v", err)
	default:
	}
	rate := float64(total) / elapsed.Seconds()
	report(b, rate, openPebble(b).synced(b, batches, 1, perBatch))
	b.ReportMetric(rate*subscribers, "deliveries/s")
}
