package service

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/adapters/smtp/mailpittest"
	"github.com/larkhq/lark/domain/run"
)

// specAutomation is the example automation of SPEC §2.4.
func specAutomation() map[string]any {
	return map[string]any{
		"name":    "Purchase follow-up",
		"trigger": map[string]any{"type": "custom_event", "event_name": "purchase_completed"},
		"start":   "big_order",
		"nodes": []any{
			map[string]any{"id": "big_order", "type": "condition",
				"condition": map[string]any{"operator": "event_key", "key": "total", "comparator": "greater_than", "value": 50},
				"yes":       "vip_mail", "no": "wait"},
			map[string]any{"id": "vip_mail", "type": "send_email",
				"email": map[string]any{"subject": "Thank you, {{ contact.first_name | default: 'friend' }}",
					"body": "Order {{ event.order_id }}{% if event.currency == 'USD' %} in dollars{% endif %}."}},
			map[string]any{"id": "wait", "type": "delay", "duration": "1h", "next": "thanks_mail"},
			map[string]any{"id": "thanks_mail", "type": "send_email",
				"email": map[string]any{"subject": "Thanks!", "body": "Thanks for order {{ event.order_id }}."}},
		},
	}
}

// clock is a test clock: real time plus an offset the test moves forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func (e *env) mustStatus(r resp, want int) resp {
	e.t.Helper()
	if r.Status != want {
		e.t.Fatalf("status %d, want %d: %s", r.Status, want, r.Raw)
	}
	return r
}

func (e *env) createAutomation(def map[string]any, activate bool) string {
	e.t.Helper()
	r := e.mustStatus(e.do("POST", "/v1/automations", e.key, def), 201)
	id := r.data()["id"].(string)
	if activate {
		e.mustStatus(e.do("POST", "/v1/automations/"+id+"/activate", e.key, nil), 200)
	}
	return id
}

func (e *env) sendEvent(email, name string, props map[string]any) string {
	e.t.Helper()
	r := e.mustStatus(e.do("POST", "/v1/events", e.key, map[string]any{"email_address": email, "event_name": name, "properties": props}), 200)
	return r.data()["id"].(string)
}

// waitRun polls GET /v1/automation-runs/{id} until the run has the status.
func (e *env) waitRun(id string, status string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.do("GET", "/v1/automation-runs/"+id, e.key, nil)
		if r.Status == 200 && r.data()["status"] == status {
			return r.data()
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s: want status %s, last answer %d %s", id, status, r.Status, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) runIDs(query string) []string {
	e.t.Helper()
	r := e.mustStatus(e.do("GET", "/v1/automation-runs?limit=500&"+query, e.key, nil), 200)
	var out []string
	for _, x := range r.Body["data"].([]any) {
		out = append(out, x.(map[string]any)["id"].(string))
	}
	return out
}

func stepTypes(runData map[string]any) []string {
	var out []string
	for _, s := range runData["steps"].([]any) {
		out = append(out, s.(map[string]any)["type"].(string))
	}
	return out
}

func TestAutomationsAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	r := e.mustStatus(e.do("POST", "/v1/automations", e.key, specAutomation()), 201)
	d := r.data()
	id := d["id"].(string)
	if d["status"] != "draft" || d["version"] != 1.0 || d["name"] != "Purchase follow-up" || d["start"] != "big_order" {
		t.Fatalf("created: %s", r.Raw)
	}
	if n := len(d["nodes"].([]any)); n != 4 {
		t.Fatalf("nodes: %d", n)
	}
	// A condition value keeps its exact number.
	cond := d["nodes"].([]any)[0].(map[string]any)["condition"].(map[string]any)
	if cond["value"] != 50.0 {
		t.Fatalf("condition value %v", cond["value"])
	}

	bad := func(mut func(def map[string]any)) map[string]any {
		def := specAutomation()
		mut(def)
		return def
	}
	node := func(def map[string]any, i int) map[string]any { return def["nodes"].([]any)[i].(map[string]any) }
	tests := []struct {
		name      string
		def       any
		wantField string
		wantInMsg string
	}{
		{"unknown comparator", bad(func(d map[string]any) {
			node(d, 0)["condition"].(map[string]any)["comparator"] = "bigger"
		}), "nodes[0].condition.comparator", `"big_order"`},
		{"dangling edge", bad(func(d map[string]any) { node(d, 2)["next"] = "nowhere" }), "nodes[2].next", `"wait"`},
		{"missing start", bad(func(d map[string]any) { d["start"] = "nope" }), "start", "nope"},
		{"cycle", bad(func(d map[string]any) { node(d, 3)["next"] = "wait" }), "nodes[3].next", `"thanks_mail"`},
		{"unknown node type", bad(func(d map[string]any) { node(d, 1)["type"] = "sms" }), "nodes[1].type", `"vip_mail"`},
		{"template does not parse", bad(func(d map[string]any) {
			node(d, 1)["email"].(map[string]any)["body"] = "{% if %}"
		}), "nodes[1].email.body", `"vip_mail"`},
		{"duplicate id", bad(func(d map[string]any) { node(d, 3)["id"] = "wait" }), "nodes[3].id", `"wait"`},
		{"nodes wrong shape", `{"name":"x","trigger":{"type":"custom_event","event_name":"e"},"start":"a","nodes":"a"}`, "", "nodes"},
	}
	for _, tc := range tests {
		r := e.do("POST", "/v1/automations", e.key, tc.def)
		if r.Status != 400 || r.errCode() != "invalid_automation" || r.errField() != tc.wantField {
			t.Errorf("%s: got %d %s %q, want 400 invalid_automation %q: %s", tc.name, r.Status, r.errCode(), r.errField(), tc.wantField, r.Raw)
			continue
		}
		msg := r.Body["error"].(map[string]any)["message"].(string)
		if !strings.Contains(msg, tc.wantInMsg) {
			t.Errorf("%s: message %q does not name %s", tc.name, msg, tc.wantInMsg)
		}
	}
	if r := e.do("POST", "/v1/automations", e.key, `{"name":`); r.Status != 400 || r.errCode() != "invalid_json" {
		t.Errorf("bad JSON: %d %s", r.Status, r.Raw)
	}

	// Replace: a new version; activate and pause; get and list.
	def2 := specAutomation()
	def2["name"] = "Renamed"
	r = e.mustStatus(e.do("PUT", "/v1/automations/"+id, e.key, def2), 200)
	if r.data()["version"] != 2.0 || r.data()["name"] != "Renamed" || r.data()["status"] != "draft" {
		t.Fatalf("replaced: %s", r.Raw)
	}
	if r := e.do("PUT", "/v1/automations/"+id, e.key, bad(func(d map[string]any) { d["start"] = "" })); r.Status != 400 {
		t.Fatalf("invalid replace: %d", r.Status)
	}
	if s := e.mustStatus(e.do("POST", "/v1/automations/"+id+"/activate", e.key, nil), 200).data()["status"]; s != "active" {
		t.Fatalf("activate: %v", s)
	}
	if s := e.mustStatus(e.do("POST", "/v1/automations/"+id+"/activate", e.key, nil), 200).data()["status"]; s != "active" {
		t.Fatalf("activate twice: %v", s)
	}
	if s := e.mustStatus(e.do("POST", "/v1/automations/"+id+"/pause", e.key, nil), 200).data()["status"]; s != "paused" {
		t.Fatalf("pause: %v", s)
	}
	if g := e.mustStatus(e.do("GET", "/v1/automations/"+id, e.key, nil), 200).data(); g["status"] != "paused" || g["version"] != 2.0 {
		t.Fatalf("get: %v", g)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, e.createAutomation(specAutomation(), false))
	}
	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		r := e.mustStatus(e.do("GET", "/v1/automations?limit=2&cursor="+cursor, e.key, nil), 200)
		for _, x := range r.Body["data"].([]any) {
			listed = append(listed, x.(map[string]any)["id"].(string))
		}
		if r.Body["next_cursor"] == nil {
			break
		}
		cursor = r.Body["next_cursor"].(string)
	}
	if diff := cmp.Diff(append([]string{id}, ids...), listed); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	for _, p := range []string{"/v1/automations/" + "00000000-0000-0000-0000-000000000000", "/v1/automations/not-a-uuid"} {
		if r := e.do("GET", p, e.key, nil); r.Status != 404 || r.errCode() != "not_found" {
			t.Errorf("GET %s: %d %s", p, r.Status, r.Raw)
		}
		if r := e.do("POST", p+"/activate", e.key, nil); r.Status != 404 {
			t.Errorf("activate %s: %d %s", p, r.Status, r.Raw)
		}
	}
	// Another workspace sees none of it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, key2, err := e.svc.CreateWorkspace(ctx, "other", 100)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/v1/automations/"+id, key2, nil); r.Status != 404 {
		t.Errorf("other workspace GET: %d", r.Status)
	}
	if r := e.do("PUT", "/v1/automations/"+id, key2, specAutomation()); r.Status != 404 {
		t.Errorf("other workspace PUT: %d", r.Status)
	}
	if r := e.do("GET", "/v1/automations", key2, nil); r.Status != 200 || len(r.Body["data"].([]any)) != 0 {
		t.Errorf("other workspace list: %s", r.Raw)
	}
	if r := e.do("GET", "/v1/automation-runs?status=bogus", e.key, nil); r.Status != 400 || r.errField() != "status" {
		t.Errorf("bad status filter: %d %s", r.Status, r.Raw)
	}
	if r := e.do("GET", "/v1/automation-runs/nope", e.key, nil); r.Status != 404 {
		t.Errorf("unknown run: %d", r.Status)
	}
}

// TestAutomationEndToEnd runs SPEC §2.4's example through a real SMTP
// server (mailpit): branching on the event's data, rendering, delays,
// exact trigger matching, unknown contacts, idempotent handling, and a
// restart with an email queued.
func TestAutomationEndToEnd(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t)
	clk := &clock{}
	o := options{cfg: func(c *Config) {
		c.Now = clk.Now
		c.Automation = AutomationConfig{SMTPURL: mp.SMTPURL(), MailFrom: "shop@example.com", WorkerPoll: 20 * time.Millisecond}
	}}
	o.pool, o.esURL = pgtest.NewPool(t), esdbtest.URL(t)
	e, stop1 := startStoppable(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if e.ws, e.key, err = e.svc.CreateWorkspace(ctx, "test", 1000); err != nil {
		t.Fatal(err)
	}
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "Jane@Example.com", "first_name": "Jane"}), 201)
	autoID := e.createAutomation(specAutomation(), true)

	// 99.99 > 50: the VIP email, rendered with the contact and the event.
	ev1 := e.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": 99.99, "order_id": "A-1", "currency": "USD"})
	run1 := run.RunID(ev1, autoID)
	msgs := mp.WaitFor(t, 1, 20*time.Second)
	want := mailpittest.Msg{MessageID: run.MessageID(run1, "vip_mail") + "@lark", From: "shop@example.com",
		To: "Jane@Example.com", Subject: "Thank you, Jane", Text: "Order A-1 in dollars."}
	got := msgs[0]
	got.ID, got.Headers, got.Text = "", nil, strings.TrimRight(got.Text, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("VIP email (-want +got):\n%s", diff)
	}
	r1 := e.waitRun(run1, "completed")
	if diff := cmp.Diff([]string{"RunStarted", "ConditionEvaluated", "EmailQueued", "EmailSent", "RunCompleted"}, stepTypes(r1)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	cond := r1["steps"].([]any)[1].(map[string]any)["details"].(map[string]any)
	if cond["branch"] != "yes" || cond["evaluation"].(map[string]any)["seen"] != 99.99 {
		t.Errorf("condition step: %v", cond)
	}

	// "20" (a numeric string) is not > 50: the run waits at the delay.
	ev2 := e.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": "20", "order_id": "B-2"})
	run2 := run.RunID(ev2, autoID)
	r2 := e.waitRun(run2, "waiting")
	if r2["current_node"] != "wait" {
		t.Errorf("waiting at %v", r2["current_node"])
	}
	steps := r2["steps"].([]any)
	if b := steps[1].(map[string]any)["details"].(map[string]any)["branch"]; b != "no" {
		t.Errorf("branch %v", b)
	}
	trig := r2["trigger_event"].(map[string]any)
	recv, _ := time.Parse(time.RFC3339Nano, trig["received_at"].(string))
	due, _ := time.Parse(time.RFC3339Nano, steps[2].(map[string]any)["details"].(map[string]any)["due"].(string))
	if !due.Equal(recv.Add(time.Hour)) {
		t.Errorf("delay due %v, want received_at %v + 1h", due, recv)
	}

	// Names differing in case, and unknown contacts, fire nothing.
	e.sendEvent("jane@example.com", "Purchase_Completed", map[string]any{"total": 500})
	e.sendEvent("nobody@example.com", "purchase_completed", map[string]any{"total": 500})
	// A sentinel that does fire: once its run exists, the two before it
	// (stored earlier) have been handled.
	ev5 := e.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": 1, "order_id": "C-3"})
	e.waitRun(run.RunID(ev5, autoID), "waiting")
	if n := len(e.runIDs("automation_id=" + autoID)); n != 3 {
		t.Fatalf("runs: %d, want 3", n)
	}
	if n := len(e.runIDs("email=JANE@example.com&status=waiting")); n != 2 {
		t.Fatalf("waiting runs of jane: %d, want 2", n)
	}

	// The delay fires once its due time has come (the clock moves 1h).
	clk.Advance(time.Hour + time.Minute)
	e.waitRun(run2, "completed")
	e.waitRun(run.RunID(ev5, autoID), "completed")
	msgs = mp.WaitFor(t, 3, 20*time.Second)
	subjects := map[string]string{}
	for _, m := range msgs {
		subjects[m.MessageID] = m.Subject
	}
	if diff := cmp.Diff(map[string]string{
		run.MessageID(run1, "vip_mail") + "@lark":                      "Thank you, Jane",
		run.MessageID(run2, "thanks_mail") + "@lark":                   "Thanks!",
		run.MessageID(run.RunID(ev5, autoID), "thanks_mail") + "@lark": "Thanks!",
	}, subjects); diff != "" {
		t.Fatalf("emails by Message-ID (-want +got):\n%s", diff)
	}

	// Handling every event again (the manager's checkpoint reset, a new
	// process without a mail transport) starts no second run and sends no
	// second email; a new event's email stays queued.
	stop1()
	if _, err := e.pool.Exec(context.Background(), `UPDATE projection_checkpoints SET commit_position = 0, prepare_position = 0 WHERE name = 'run-manager'`); err != nil {
		t.Fatal(err)
	}
	e2, stop2 := startStoppable(t, options{esURL: e.esURL, pool: e.pool, cfg: func(c *Config) { c.Now = clk.Now }})
	e2.ws, e2.key = e.ws, e.key
	ev6 := e2.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": 100, "order_id": "D-4"})
	run6 := run.RunID(ev6, autoID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e2.do("GET", "/v1/automation-runs/"+run6, e2.key, nil)
		if r.Status == 200 && cmp.Equal(stepTypes(r.data()), []string{"RunStarted", "ConditionEvaluated", "EmailQueued"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: email not queued: %s", run6, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(e2.runIDs("automation_id=" + autoID)); n != 4 {
		t.Fatalf("runs after re-handling every event: %d, want 4", n)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(mp.Messages(t)); n != 3 {
		t.Fatalf("emails after re-handling: %d, want 3", n)
	}

	// Restart with the relay: the queued email goes out once, with its id.
	stop2()
	e3, _ := startStoppable(t, o)
	e3.ws, e3.key = e.ws, e.key
	e3.waitRun(run6, "completed")
	msgs = mp.WaitFor(t, 4, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	msgs = mp.Messages(t)
	if len(msgs) != 4 || msgs[3].MessageID != run.MessageID(run6, "vip_mail")+"@lark" || strings.TrimSpace(msgs[3].Text) != "Order D-4." {
		t.Fatalf("after restart: %d emails, last %+v", len(msgs), msgs[len(msgs)-1])
	}
}
