package analytics

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/projections"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// seedAutomation writes an automation row of the runs read model directly
// (the service tests drive the same tables through real runs; this one
// covers retry histories that need a flaky relay).
func seedAutomation(t testing.TB, pool *pgxpool.Pool, ws, id string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO automations (automation_id, workspace_id, name, status, version,
		trigger_event_name, definition, created_at, updated_at, revision)
		VALUES ($1, $2, 'a', 'active', 1, 'e', $3, now(), now(), 0)`, id, ws,
		`{"nodes":[{"id":"mail","type":"send_email"}]}`)
	if err != nil {
		t.Fatal(err)
	}
}

// seedRun writes a run and its steps ([type, data] pairs) directly.
func seedRun(t testing.TB, pool *pgxpool.Pool, ws, auto, runID, status string, steps [][2]string) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO automation_runs (run_id, workspace_id, automation_id, automation_version, contact_id,
		email, email_lower, trigger_event_id, trigger_event_name, trigger, status, started_at, updated_at, steps, revision)
		VALUES ($1, $2, $3, 1, 'c', 'a@b.c', 'a@b.c', $1, 'e', '{}', $4, now(), now(), $5, $5 - 1)`,
		runID, ws, auto, status, len(steps))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if _, err := pool.Exec(ctx, `INSERT INTO automation_run_steps (run_id, seq, type, node, data) VALUES ($1, $2, $3, 'mail', $4)`,
			runID, i, s[0], s[1]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEmailRetries: a temporary failure retried into success is an
// attempt, not a failed email; failures on every attempt are one failed
// email and as many attempts.
func TestEmailRetries(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	seedAutomation(t, pool, "ws", "auto")
	start := [2]string{"RunStarted", `{}`}
	queued := [2]string{"EmailQueued", `{"message_id":"m"}`}
	temp := [2]string{"EmailFailed", `{"retryable":true}`}
	seedRun(t, pool, "ws", "auto", "retried", "completed", [][2]string{start, queued, temp, {"EmailSent", `{}`}, {"RunCompleted", `{}`}})
	seedRun(t, pool, "ws", "auto", "gave-up", "failed", [][2]string{start, queued, temp, temp, temp, {"RunFailed", `{}`}})
	seedRun(t, pool, "ws", "auto", "retrying", "running", [][2]string{start, queued, temp})
	got, err := Queries{DB: projections.NewDB(pool, nil)}.Automation(context.Background(), "ws", "auto")
	if err != nil {
		t.Fatal(err)
	}
	want := EmailCounts{Queued: 3, Sent: 1, Failed: 1, FailedAttempts: 5}
	if diff := cmp.Diff(want, got.Emails); diff != "" {
		t.Errorf("emails (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&want, got.Nodes[0].Emails); diff != "" {
		t.Errorf("node emails (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(RunCounts{Started: 3, Running: 1, Completed: 1, Failed: 1}, got.Runs); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if _, err := (Queries{DB: projections.NewDB(pool, nil)}).Automation(context.Background(), "other", "auto"); err == nil {
		t.Error("another workspace's automation: no error")
	}
}

// BenchmarkEventCounts measures a 366-day count over 1,000,000 events of
// one workspace (10 names), next to 100,000 of another.
func BenchmarkEventCounts(b *testing.B) {
	pool := pgtest.NewPool(b)
	ctx := context.Background()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ws := range []struct {
		id string
		n  int
	}{{"big", 1_000_000}, {"small", 100_000}} {
		_, err := pool.Exec(ctx, `INSERT INTO events (event_id, workspace_id, stream, revision, commit_position, prepare_position,
			email, email_lower, event_name, properties, received_at)
			SELECT $1 || '-' || i, $1, 's', i, i, i, 'a@b.c', 'a@b.c', 'event_' || (i % 10), '{"total": 12.5, "currency": "USD"}',
				$2::timestamptz + (i * interval '31 seconds')
			FROM generate_series(1, $3) AS i`, ws.id, start, ws.n)
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	q := Queries{DB: projections.NewDB(pool, nil)}
	r := Range{From: start, To: start.AddDate(0, 0, MaxDays-1)}
	for _, name := range []string{"", "event_3"} {
		b.Run(fmt.Sprintf("name=%q", name), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				got, err := q.EventCounts(ctx, "big", r, name)
				if err != nil {
					b.Fatal(err)
				}
				if name == "" && got.Total != 1_000_000 {
					b.Fatalf("total %d", got.Total)
				}
			}
		})
	}
}
