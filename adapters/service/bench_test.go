package service

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// BenchmarkPostEvent measures durable single-event POSTs/s through the
// whole in-process stack (HTTP, auth, validation, lane, embedded event
// store) at 64 concurrent clients.
//
// Run: go test -run '^$' -bench PostEvent -benchtime 10s ./adapters/service/
func BenchmarkPostEvent(b *testing.B) {
	e := setupB(b)
	body := []byte(`{"email_address":"jane@example.com","event_name":"purchase_completed","properties":{"total":99.99,"currency":"USD"}}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 10 * time.Second}
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.http.URL+"/v1/events", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.key)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPostBatch100 measures events/s through POST /v1/events/batch
// with 100 events per request at 16 concurrent clients.
//
// Run: go test -run '^$' -bench PostBatch100 -benchtime 10s ./adapters/service/
func BenchmarkPostBatch100(b *testing.B) {
	e := setupB(b)
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"email_address":"jane@example.com","event_name":"purchase_completed","properties":{"total":99.99,"currency":"USD"}}`)
	}
	buf.WriteString(`]}`)
	body := buf.Bytes()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.http.URL+"/v1/events/batch", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.key)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
