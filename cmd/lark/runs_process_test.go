package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/adapters/smtp/mailpittest"
)

// TestKillServeMidRun: kill -9 of lark serve while runs are sending emails
// and waiting at delays; after a restart every run completes and every email
// arrives once per (run, node), always under the same Message-ID. The relay
// (mailpit told to drop repeated Message-IDs, as receivers do) holds exactly
// one message per expected id.
func TestKillServeMidRun(t *testing.T) {
	mp := mailpittest.Start(t, mailpittest.WithIgnoreDuplicateIDs())
	dir := dataDir(t)
	addr := freeAddr(t)
	env := []string{"LARK_DATA_DIR=" + dir, "LARK_HTTP_ADDR=" + addr,
		"LARK_DATABASE_URL=" + pgtest.NewDatabase(t), "LARK_SMTP_URL=" + mp.SMTPURL(),
		"LARK_MAIL_FROM=shop@example.com"}
	w := parseWorkspace(t, runLark(t, env, "workspace", "create", "--name", "runs"))

	srv := startLark(t, env, "serve")
	srv.waitLine("Lark is listening", 2*time.Minute)
	c := newClient(t, addr, w.APIKey)

	const contacts = 20
	for i := range contacts {
		body := map[string]any{"email_address": fmt.Sprintf("c%d@example.com", i), "first_name": fmt.Sprintf("N%d", i)}
		if code, err := c.do(http.MethodPost, "/v1/contacts", body, nil); err != nil || code != http.StatusCreated {
			t.Fatalf("create contact %d: %d %v", i, code, err)
		}
	}
	def := map[string]any{
		"name":    "welcome",
		"trigger": map[string]any{"type": "custom_event", "event_name": "signed_up"},
		"start":   "hello",
		"nodes": []any{
			map[string]any{"id": "hello", "type": "send_email", "next": "wait",
				"email": map[string]any{"subject": "Hello {{ contact.first_name }}", "body": "Welcome, {{ event.plan }}."}},
			map[string]any{"id": "wait", "type": "delay", "duration": "2s", "next": "later"},
			map[string]any{"id": "later", "type": "send_email",
				"email": map[string]any{"subject": "Two seconds later", "body": "Still here, {{ contact.first_name }}?"}},
		},
	}
	var created struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code, err := c.do(http.MethodPost, "/v1/automations", def, &created); err != nil || code != http.StatusCreated {
		t.Fatalf("create automation: %d %v", code, err)
	}
	if code, err := c.do(http.MethodPost, "/v1/automations/"+created.Data.ID+"/activate", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("activate: %d %v", code, err)
	}
	for i := range contacts {
		ev := map[string]any{"email_address": fmt.Sprintf("C%d@example.com", i), "event_name": "signed_up", "properties": map[string]any{"plan": "pro"}}
		if code, err := c.do(http.MethodPost, "/v1/events", ev, nil); err != nil || code != http.StatusOK {
			t.Fatalf("event %d: %d %v", i, code, err)
		}
	}
	// Kill as soon as some emails went out: others are queued, some runs wait.
	mp.WaitFor(t, 3, time.Minute)
	srv.kill()

	srv = startLark(t, env, "serve")
	srv.waitLine("Lark is listening", 2*time.Minute)
	msgs := mp.WaitFor(t, 2*contacts, 2*time.Minute)
	time.Sleep(time.Second) // a duplicate under a new id would show up now
	msgs = mp.Messages(t)
	if len(msgs) != 2*contacts {
		t.Fatalf("relay holds %d messages, want %d (one per run and node)", len(msgs), 2*contacts)
	}
	perRecipient := map[string]int{}
	ids := map[string]bool{}
	for _, m := range msgs {
		if ids[m.MessageID] {
			t.Errorf("Message-ID %s twice", m.MessageID)
		}
		ids[m.MessageID] = true
		if !strings.HasSuffix(m.MessageID, "@lark") {
			t.Errorf("Message-ID %q is not a derived <uuid@lark>", m.MessageID)
		}
		perRecipient[strings.ToLower(m.To)]++
		if m.From != "shop@example.com" && !strings.Contains(m.From, "shop@example.com") {
			t.Errorf("From = %q", m.From)
		}
	}
	for i := range contacts {
		to := fmt.Sprintf("c%d@example.com", i)
		if n := perRecipient[to]; n != 2 {
			t.Errorf("%s received %d emails, want 2", to, n)
		}
	}
	// Every run is recorded as completed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var runs struct {
			Data []map[string]any `json:"data"`
		}
		code, err := c.do(http.MethodGet, "/v1/automation-runs?status=completed&limit=500", nil, &runs)
		if err == nil && code == http.StatusOK && len(runs.Data) == contacts {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("completed runs: %d (status %d, %v), want %d", len(runs.Data), code, err, contacts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	srv.stop()
}
