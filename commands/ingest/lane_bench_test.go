package ingest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	domain "github.com/larkhq/lark/domain/ingest"
)

// BenchmarkIngest compares, against the embedded event store through the
// official client, 64 concurrent callers storing one event each:
//
//   - lane: through the ingest lane (group commit, exact limit);
//   - unbatched_any: one append per event, no expected revision (no limit
//     could be enforced this way — the ceiling of one-append-per-request);
//   - unbatched_exact: one append per event at the exact revision, which is
//     what an exact limit costs without group commit (appends serialised).
//
// Run: go test -run '^$' -bench Ingest -benchtime 5s ./commands/ingest/
func BenchmarkIngest(b *testing.B) {
	client := esdbtest.Client(b)
	store, err := esdb.New(esdb.Config{Client: client})
	if err != nil {
		b.Fatal(err)
	}
	const callers = 64
	par := (callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	var streamN atomic.Int64
	newStream := func() string { return esdb.EventsStream(fmt.Sprintf("bench%d", streamN.Add(1)), "202612") }
	encode := func(b *testing.B) []esdb.Encoded {
		enc, err := esdb.Encode([]esdb.Proposed{{Type: domain.TypeReceived, WorkspaceID: "bench",
			Data: domain.Received{Email: "jane@example.com", Name: "purchase_completed", Properties: map[string]any{"total": 99.99}}}})
		if err != nil {
			b.Fatal(err)
		}
		return enc
	}
	ctx := context.Background()

	b.Run("lane", func(b *testing.B) {
		lanes, err := NewLanes(store, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		stream := newStream()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if n, err := lanes.Submit(ctx, stream, 1<<62, encode(b)); err != nil || n != 1 {
					b.Errorf("submit: %d %v", n, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("unbatched_any", func(b *testing.B) {
		stream := newStream()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := store.AppendEncoded(ctx, stream, esdb.Any, encode(b)); err != nil {
					b.Errorf("append: %v", err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("unbatched_exact", func(b *testing.B) {
		stream := newStream()
		var mu sync.Mutex
		rev := esdb.NoStream
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				enc := encode(b)
				mu.Lock()
				res, err := store.AppendEncoded(ctx, stream, rev, enc)
				if err == nil {
					rev = int64(res.NextRevision)
				}
				mu.Unlock()
				if err != nil {
					b.Errorf("append: %v", err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
