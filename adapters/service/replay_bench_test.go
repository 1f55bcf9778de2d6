package service

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/domain/automation"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/projections/replay"
)

// BenchmarkReplay measures `lark replay`'s rebuild: events read from $all
// and applied through every projection into the scratch schema, per
// second, against a plain read of the same $all prefixes in the same run
// (ratio = replay rate / plain read rate). The store holds
// LARK_BENCH_REPLAY_EVENTS custom events (default 50,000) of two
// workspaces, 400 contact events and a few automations, appended straight
// to the event store, and the live read models are caught up first.
// Run: go test -run '^$' -bench Replay -benchtime 1x ./adapters/service/
func BenchmarkReplay(b *testing.B) {
	n := 50_000
	if s := os.Getenv("LARK_BENCH_REPLAY_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	svc, pool, ws := benchService(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store := svc.store
	now := time.Now().UTC()
	for i := 0; i < 200; i++ {
		email := fmt.Sprintf("c%d@example.com", i)
		id := contact.ID(ws, email)
		if _, err := store.Append(ctx, esdb.ContactStream(id), esdb.NoStream,
			esdb.Proposed{Type: contact.TypeCreated, WorkspaceID: ws, Data: contact.Created{WorkspaceID: ws, ContactID: id, Email: email, FirstName: "F", At: now}},
			esdb.Proposed{Type: contact.TypeUpdated, WorkspaceID: ws, Data: contact.Updated{WorkspaceID: ws, ContactID: id, Properties: map[string]any{"n": i}, At: now}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		id := uuid.NewString()
		def := automation.Definition{Name: fmt.Sprint("a", i), Trigger: automation.Trigger{Type: automation.TriggerCustomEvent, EventName: fmt.Sprint("other_", i)},
			Start: "m", Nodes: []automation.Node{{ID: "m", Type: automation.NodeSendEmail, Email: &automation.Email{Subject: "s", Body: "b"}}}}
		if _, err := store.Append(ctx, esdb.AutomationStream(id), esdb.NoStream,
			esdb.Proposed{Type: automation.TypeCreated, WorkspaceID: ws, Data: automation.Created{WorkspaceID: ws, AutomationID: id, Version: 1, Definition: def, At: now}},
			esdb.Proposed{Type: automation.TypeActivated, WorkspaceID: ws, Data: automation.Activated{WorkspaceID: ws, AutomationID: id, Version: 1, At: now}}); err != nil {
			b.Fatal(err)
		}
	}
	stream := esdb.EventsStream(ws, ingest.StreamPeriod(now))
	for sent := 0; sent < n; {
		batch := make([]esdb.Proposed, 0, 500)
		for j := 0; j < 500 && sent < n; j++ {
			id := uuid.NewString()
			batch = append(batch, esdb.Proposed{ID: id, Type: ingest.TypeReceived, WorkspaceID: ws, Data: ingest.Received{
				WorkspaceID: ws, EventID: id, Email: fmt.Sprintf("c%d@example.com", sent%250), Name: "page_viewed",
				Properties: map[string]any{"i": sent, "path": "/pricing", "nested": map[string]any{"a": []any{1, "x"}}}, ReceivedAt: now}})
			sent++
		}
		if _, err := store.Append(ctx, stream, esdb.Any, batch...); err != nil {
			b.Fatal(err)
		}
	}
	head, err := store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Live read models caught up.
	for {
		var behind int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints WHERE commit_position < $1::numeric`,
			strconv.FormatUint(head.Commit, 10)).Scan(&behind); err != nil {
			b.Fatal(err)
		}
		var have int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints`).Scan(&have)
		if behind == 0 && have >= 7 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A plain read of the same prefixes, to the head.
	plain := func() (int64, time.Duration) {
		t0 := time.Now()
		fctx, fcancel := context.WithCancel(ctx)
		defer fcancel()
		ch := make(chan esdb.Message, 4096)
		go func() {
			_ = store.Follow(fctx, esdb.Position{}, []string{"automation-", "contact-", "events-", "run-", "workspace-"}, ch)
		}()
		var read int64
		for m := range ch {
			if m.Event != nil {
				read++
			}
			if m.CaughtUp || (m.Event != nil && !m.Event.Position.Less(head)) {
				break
			}
		}
		return read, time.Since(t0)
	}
	b.ResetTimer()
	var rate, plainRate float64
	for i := 0; i < b.N; i++ {
		pr, pd := plain()
		rep, err := svc.Replay(ctx, replay.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Differ() {
			b.Fatalf("replay differs: %+v", rep.Diffs)
		}
		rate = float64(rep.Read) / rep.ReadTime.Seconds()
		plainRate = float64(pr) / pd.Seconds()
		b.Logf("replay: %d events in %v (%.0f/s; whole run incl. snapshot, migrate, compare %v); plain $all read: %d in %v (%.0f/s)",
			rep.Read, rep.ReadTime, rate, rep.Total, pr, pd, plainRate)
	}
	b.ReportMetric(rate, "replay_events/s")
	b.ReportMetric(plainRate, "plain_read_events/s")
	b.ReportMetric(rate/plainRate, "ratio")
}

// benchService starts a service on a fresh database and event store, with
// one workspace.
func benchService(b *testing.B) (*Service, *pgxpool.Pool, string) {
	b.Helper()
	pool := pgtest.NewPool(b)
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := New(ctx, Config{ESDBURL: esdbtest.URL(b), Pool: pool})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = svc.Close()
	})
	ws, _, err := svc.CreateWorkspace(ctx, "bench", 1<<40)
	if err != nil {
		b.Fatal(err)
	}
	return svc, pool, ws
}
