package runs

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/projections"
)

// benchWorld appends n active automations (trigger names "event-0" ...)
// and one contact, and returns the manager.
func benchWorld(b *testing.B, bd bundle, automations int) *Manager {
	b.Helper()
	ctx := context.Background()
	def := mailDef()
	for i := 0; i < automations; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		def.Trigger.EventName = fmt.Sprintf("event-%d", i)
		if _, err := bd.store.Append(ctx, esdb.AutomationStream(id), esdb.NoStream,
			esdb.Proposed{Type: automation.TypeCreated, WorkspaceID: "ws", Data: automation.Created{WorkspaceID: "ws", AutomationID: id, Version: 1, Definition: def}},
			esdb.Proposed{Type: automation.TypeActivated, WorkspaceID: "ws", Data: automation.Activated{WorkspaceID: "ws", AutomationID: id, Version: 1}}); err != nil {
			b.Fatal(err)
		}
	}
	cid := contact.ID("ws", "jane@example.com")
	if _, err := bd.store.Append(ctx, esdb.ContactStream(cid), esdb.NoStream, esdb.Proposed{Type: contact.TypeCreated, WorkspaceID: "ws",
		Data: contact.Created{WorkspaceID: "ws", ContactID: cid, Email: "jane@example.com", FirstName: "Jane"}}); err != nil {
		b.Fatal(err)
	}
	return &Manager{Store: bd.store, Decider: bd.decider}
}

// appendEvents appends n custom events for jane, cycling through the
// automations' trigger names, in batches; it returns the last position.
func appendEvents(b *testing.B, bd bundle, from, n, automations int) esdb.Position {
	b.Helper()
	var last esdb.Position
	for i := 0; i < n; {
		var batch []esdb.Proposed
		for ; i < n && len(batch) < 250; i++ {
			k := from + i
			batch = append(batch, esdb.Proposed{Type: ingest.TypeReceived, WorkspaceID: "ws", Data: ingest.Received{WorkspaceID: "ws",
				EventID: fmt.Sprintf("10000000-0000-4000-8000-%012d", k), Email: "jane@example.com",
				Name: fmt.Sprintf("event-%d", k%automations), Properties: map[string]any{"total": k}, ReceivedAt: time.Now()}})
		}
		res, err := bd.store.Append(context.Background(), esdb.EventsStream("ws", "202612"), esdb.Any, batch...)
		if err != nil {
			b.Fatal(err)
		}
		last = res.Position
	}
	return last
}

func waitCheckpoint(b *testing.B, db *projections.DB, name string, pos esdb.Position) {
	b.Helper()
	for {
		cp, err := projections.Checkpoint(context.Background(), db.Pool, name)
		if err != nil {
			b.Fatal(err)
		}
		if !cp.Less(pos) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkManagerThroughput measures events/s through trigger matching
// and run start (each event matches one of 1,000 active automations and
// starts a run whose email is queued), against a plain read of the same
// events from $all in the same run. Run with -benchtime=Nx (N events).
func BenchmarkManagerThroughput(b *testing.B) {
	const automations = 1000
	bd := setup(b)
	m := benchWorld(b, bd, automations)
	head := appendEvents(b, bd, 0, b.N, automations)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Baseline: a plain read of $all (events- prefix) up to the head.
	start := time.Now()
	ch := make(chan esdb.Message, 1024)
	fctx, fcancel := context.WithCancel(ctx)
	go func() { _ = bd.store.Follow(fctx, esdb.Position{}, []string{esdb.Prefix(esdb.CategoryEvents)}, ch) }()
	for n := 0; n < b.N; {
		if msg := <-ch; msg.Event != nil {
			n++
		}
	}
	fcancel()
	readRate := float64(b.N) / time.Since(start).Seconds()

	b.ResetTimer()
	start = time.Now()
	r := projections.NewRunner(m, bd.db, bd.store, nil, nil, nil)
	go func() { _ = r.Run(ctx) }()
	waitCheckpoint(b, bd.db, ManagerName, head)
	el := time.Since(start)
	b.StopTimer()
	var started int
	if err := bd.db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_manager_automations WHERE status = 'active'`).Scan(&started); err != nil || started != automations {
		b.Fatalf("active automations %d, %v", started, err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(readRate, "read_events/s")
	b.ReportMetric(float64(b.N)/el.Seconds()/readRate, "ratio_to_read")
}

// BenchmarkManagerLag sustains 2,000 events/s (each starting one run, 1,000
// active automations) for a few seconds while the manager runs live, and
// reports the lag from append to the end of the manager's batch: p50, p99, max.
func BenchmarkManagerLag(b *testing.B) {
	const automations, rate = 1000, 2000
	duration := 5 * time.Second
	bd := setup(b)
	m := &timed{Manager: benchWorld(b, bd, automations)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := projections.NewRunner(m, bd.db, bd.store, nil, nil, nil)
	go func() { _ = r.Run(ctx) }()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		m.mu.Lock()
		m.lags = m.lags[:0]
		m.mu.Unlock()
		tick := time.NewTicker(10 * time.Millisecond)
		start, sent := time.Now(), 0
		var head esdb.Position
		for time.Since(start) < duration {
			<-tick.C
			want := int(time.Since(start).Seconds() * rate)
			if want > sent {
				head = appendEvents(b, bd, it*rate*10+sent, want-sent, automations)
				sent = want
			}
		}
		tick.Stop()
		waitCheckpoint(b, bd.db, ManagerName, head)
		m.mu.Lock()
		lags := append([]time.Duration(nil), m.lags...)
		m.mu.Unlock()
		b.ReportMetric(float64(sent)/duration.Seconds(), "offered_events/s")
		b.ReportMetric(percentile(lags, 0.50).Seconds()*1000, "p50_ms")
		b.ReportMetric(percentile(lags, 0.99).Seconds()*1000, "p99_ms")
		b.ReportMetric(percentile(lags, 1).Seconds()*1000, "max_ms")
	}
}

// timed is a projection that records, after each batch, how long ago each
// of its events was appended (the manager's lag).
type timed struct {
	*Manager
	mu   sync.Mutex
	lags []time.Duration
}

func (t *timed) Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error {
	if err := t.Manager.Apply(ctx, tx, events); err != nil {
		return err
	}
	now := time.Now()
	t.mu.Lock()
	for _, e := range events {
		if e.Type == ingest.TypeReceived {
			t.lags = append(t.lags, now.Sub(e.Created))
		}
	}
	t.mu.Unlock()
	return nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
