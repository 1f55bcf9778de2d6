package esdbserver

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkStoreAppend measures the writer alone (no gRPC): concurrent
// appends of batches to distinct streams.
func BenchmarkStoreAppend(b *testing.B) {
	for _, c := range []struct{ writers, batch int }{{64, 1}, {16, 100}, {1, 100}} {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", c.writers, c.batch), func(b *testing.B) {
			s, err := openStore(b.TempDir(), discard(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			data := []byte(`{"orderId":"0c3c5c0e-1d7f-4b5e-9a53-3f0f2d7f8a11","amount":1234,"currency":"EUR"}`)
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range c.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; n.Add(1) <= int64(b.N); i++ {
						evs := make([]proposed, c.batch)
						for j := range evs {
							evs[j] = proposed{id: uuid.New(), typ: "OrderPlaced", json: true, data: data}
						}
						res := s.write(&writeReq{op: opAppend, stream: fmt.Sprintf("s-%d-%d", w, i%100),
							exp: expected{kind: expAny}, events: evs, size: len(data) * c.batch})
						if res.kind != resOK {
							b.Error(res)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
