package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

// TestExplainAndReplayCLI: `lark explain event|run` and `lark replay` in a
// second process find the running lark serve through the data directory;
// replay reports no difference on an honest store and names the row an
// operator corrupted, exiting non-zero.
func TestExplainAndReplayCLI(t *testing.T) {
	dir := dataDir(t)
	addr := freeAddr(t)
	dbURL := pgtest.NewDatabase(t)
	env := []string{"LARK_DATA_DIR=" + dir, "LARK_HTTP_ADDR=" + addr, "LARK_DATABASE_URL=" + dbURL}
	w := parseWorkspace(t, runLark(t, env, "workspace", "create", "--name", "audit"))
	srv := startLark(t, env, "serve")
	srv.waitLine("Lark is listening", 2*time.Minute)
	c := newClient(t, addr, w.APIKey)

	if code, err := c.do(http.MethodPost, "/v1/contacts", map[string]any{"email_address": "jane@example.com", "first_name": "Jane"}, nil); err != nil || code != http.StatusCreated {
		t.Fatalf("create contact: %d %v", code, err)
	}
	def := map[string]any{
		"name": "big orders", "trigger": map[string]any{"type": "custom_event", "event_name": "purchase_completed"},
		"start": "big",
		"nodes": []any{map[string]any{"id": "big", "type": "condition",
			"condition": map[string]any{"operator": "event_key", "key": "total", "comparator": "greater_than", "value": 50}}},
	}
	var auto struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code, err := c.do(http.MethodPost, "/v1/automations", def, &auto); err != nil || code != http.StatusCreated {
		t.Fatalf("create automation: %d %v", code, err)
	}
	if code, err := c.do(http.MethodPost, "/v1/automations/"+auto.Data.ID+"/activate", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("activate: %d %v", code, err)
	}
	send := func(email, name string) string {
		var res struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		ev := map[string]any{"email_address": email, "event_name": name, "properties": map[string]any{"total": "99.99"}}
		if code, err := c.do(http.MethodPost, "/v1/events", ev, &res); err != nil || code != http.StatusOK {
			t.Fatalf("event: %d %v", code, err)
		}
		return res.Data.ID
	}
	fired := send("Jane@example.com", "purchase_completed")
	missed := send("jane@example.com", "Purchase_Completed")

	// The fired event's explanation names the run; wait for the manager.
	var x struct {
		Contact struct {
			Existed bool `json:"existed"`
		} `json:"contact"`
		Matched []struct {
			Fired bool   `json:"fired"`
			RunID string `json:"run_id"`
		} `json:"matched"`
		NotMatched []struct {
			NearMiss bool `json:"near_miss"`
		} `json:"not_matched"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := runLark(t, env, "explain", "event", fired, "--json")
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("explain event --json printed %q: %v", out, err)
		}
		if len(x.Matched) == 1 && x.Matched[0].RunID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run in the explanation: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !x.Contact.Existed || !x.Matched[0].Fired {
		t.Fatalf("fired event explained as %+v", x)
	}
	runID := x.Matched[0].RunID

	out := runLark(t, env, "explain", "event", missed, "--json")
	x.Matched, x.NotMatched = nil, nil
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatal(err)
	}
	if len(x.Matched) != 0 || len(x.NotMatched) != 1 || !x.NotMatched[0].NearMiss {
		t.Fatalf("Purchase_Completed explained as %s, want one near miss and nothing matched", out)
	}
	human := runLark(t, env, "explain", "event", missed)
	if !strings.Contains(strings.ToLower(human), "near miss") {
		t.Fatalf("human-readable explanation does not mention the near miss:\n%s", human)
	}

	var run struct {
		ReplayVerified bool `json:"replay_verified"`
		Steps          []struct {
			Type string `json:"type"`
		} `json:"steps"`
	}
	out = runLark(t, env, "explain", "run", runID, "--json")
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("explain run --json printed %q: %v", out, err)
	}
	if !run.ReplayVerified || len(run.Steps) < 2 {
		t.Fatalf("run explained as %s", out)
	}

	if out := runLark(t, env, "replay", "--quiet"); !strings.Contains(out, "No differences") {
		t.Fatalf("replay of an honest store:\n%s", out)
	}

	// Corrupt one contact row behind Lark's back.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if tag, err := conn.Exec(ctx, `UPDATE contacts SET first_name = 'Mallory' WHERE email_lower = 'jane@example.com'`); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt contact: %v %v", tag, err)
	}
	cmd := exec.Command(larkBin, "replay", "--quiet")
	cmd.Env = append(cleanEnv(), env...)
	b, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("replay after corruption: err %v, want exit code 1; output:\n%s", err, b)
	}
	report := string(b)
	if !strings.Contains(report, "contacts differs") || !strings.Contains(report, `"Mallory"`) || !strings.Contains(report, `"Jane"`) {
		t.Fatalf("replay report does not name the corrupted row:\n%s", report)
	}
	if n := strings.Count(report, " differs ") + strings.Count(report, " missing ") + strings.Count(report, " extra "); n != 1 {
		t.Fatalf("replay reports %d differing rows, want exactly 1:\n%s", n, report)
	}
	fmt.Fprint(testWriter{t}, report)
	srv.stop()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
