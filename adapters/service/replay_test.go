package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/larkhq/lark/projections/replay"
)

// fill stores a few thousand mixed events through the API: contacts
// (created, updated, deleted), automations (active, paused, replaced),
// custom events in batches (some firing runs that send emails or wait),
// and returns once the run manager and the runs have settled.
func (e *env) fill(t *testing.T, events int) {
	t.Helper()
	e.createAutomation(specAutomation(), true)
	p := e.createAutomation(named(specAutomation(), "paused", "signed_up"), true)
	e.mustStatus(e.do("POST", "/v1/automations/"+p+"/pause", e.key, nil), 200)
	e.createAutomation(named(specAutomation(), "draft", "purchase_completed"), false)
	for i := 0; i < 40; i++ {
		email := fmt.Sprintf("c%d@example.com", i)
		e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": email, "first_name": fmt.Sprint("N", i),
			"properties": map[string]any{"plan": "pro", "n": i}}), 201)
		if i%5 == 0 {
			e.mustStatus(e.do("PATCH", "/v1/contacts/"+email, e.key, map[string]any{"last_name": "L", "properties": map[string]any{"plan": nil}}), 200)
		}
		if i%7 == 0 {
			e.mustStatus(e.do("DELETE", "/v1/contacts/"+email, e.key, nil), 204)
		}
	}
	var last string
	for sent := 0; sent < events; {
		var batch []any
		for j := 0; j < 500 && sent < events; j++ {
			name := "page_viewed"
			props := map[string]any{"i": sent, "nested": map[string]any{"a": []any{1, "x", true}}}
			if sent%50 == 0 {
				name = "purchase_completed"
				props["total"] = sent % 100 // 0 waits at the delay, 50 takes the email branch
				props["order_id"] = fmt.Sprint("O", sent)
			}
			batch = append(batch, map[string]any{"email_address": fmt.Sprintf("c%d@example.com", sent%45), "event_name": name, "properties": props})
			sent++
		}
		r := e.mustStatus(e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": batch}), 200)
		res := r.data()["results"].([]any)
		last = res[len(res)-1].(map[string]any)["id"].(string)
	}
	e.waitProcessed(last)
	// Let the runs settle (emails written, read model caught up): poll until
	// no run is "running" for a moment.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM automation_runs WHERE status = 'running'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs still running", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplay rebuilds the read models of a store with a few thousand mixed
// events while the service keeps running: no difference; then one
// corrupted row, one deleted row and one extra row are reported exactly.
func TestReplay(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limit: 100000, cfg: func(c *Config) { c.Automation.MailDir = t.TempDir() }})
	e.fill(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rep, err := e.svc.Replay(ctx, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Differ() {
		t.Fatalf("clean replay differs: %+v", rep.Diffs)
	}
	rows := map[string]int64{}
	for _, tr := range rep.Tables {
		rows[tr.Table] = tr.LiveRows
		if tr.LiveRows != tr.RebuiltRows {
			t.Errorf("%s: %d live rows, %d rebuilt", tr.Table, tr.LiveRows, tr.RebuiltRows)
		}
	}
	for _, tbl := range []string{"events", "contacts", "automations", "automation_runs", "automation_run_steps", "usage", "workspaces", "run_manager_automations"} {
		if rows[tbl] == 0 {
			t.Errorf("table %s has no rows: the test compares nothing there (%v)", tbl, rows)
		}
	}
	if rows["events"] != 3000 {
		t.Errorf("events: %d rows, want 3000", rows["events"])
	}
	// The scratch schemas are gone.
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'lark_replay_%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d scratch schemas left (%v)", n, err)
	}

	// Corrupt the live read models: one changed row, one deleted, one added.
	exec := func(sql string, args ...any) {
		t.Helper()
		tag, err := e.pool.Exec(ctx, sql, args...)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v (%d rows)", sql, err, tag.RowsAffected())
		}
	}
	exec(`UPDATE contacts SET first_name = 'Mallory' WHERE email_lower = 'c3@example.com'`)
	var runID string
	if err := e.pool.QueryRow(ctx, `SELECT run_id FROM automation_runs ORDER BY run_id LIMIT 1`).Scan(&runID); err != nil {
		t.Fatal(err)
	}
	exec(`DELETE FROM automation_run_steps WHERE run_id = $1 AND seq = 1`, runID)
	exec(`INSERT INTO usage (workspace_id, period, used, revision, updated_at) VALUES ('ghost', '1999-01', 1, 0, now())`)

	rep, err = e.svc.Replay(ctx, replay.Options{Schema: "lark_replay_kept", Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range rep.Diffs {
		s := d.Table + " " + d.Kind
		switch d.Table {
		case "contacts":
			s += fmt.Sprintf(" %v", d.Columns)
		case "automation_run_steps":
			s += fmt.Sprintf(" run=%v seq=%v", d.Key["run_id"] == runID, d.Key["seq"])
		case "usage":
			s += fmt.Sprintf(" %v %v", d.Key["workspace_id"], d.Key["period"])
		}
		got = append(got, s)
	}
	want := []string{
		"automation_run_steps missing run=true seq=1",
		"contacts differs [{first_name Mallory N3}]",
		"usage extra ghost 1999-01",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diffs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !rep.Differ() {
		t.Error("Differ() false")
	}
	// --keep leaves the schemas.
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('lark_replay_kept', 'lark_replay_kept_live')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("kept schemas: %d (%v)", n, err)
	}
}
