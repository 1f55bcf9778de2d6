package service

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/smtp/mailpittest"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections/analytics"
)

// analyticsEvents GETs /v1/analytics/events with the query and decodes it.
func (e *env) analyticsEvents(key, query string) (analytics.EventCounts, resp) {
	e.t.Helper()
	r := e.do("GET", "/v1/analytics/events?"+query, key, nil)
	var out struct{ Data analytics.EventCounts }
	if r.Status == 200 {
		if err := json.Unmarshal([]byte(r.Raw), &out); err != nil {
			e.t.Fatalf("decode %s: %v", r.Raw, err)
		}
	}
	return out.Data, r
}

// TestAnalyticsEvents counts events across three UTC days and names: the
// whole range, the default range, an event_name filter, a narrower range,
// bad parameters, and another workspace's view.
func TestAnalyticsEvents(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	clk.Advance(-48 * time.Hour)
	e := setup(t, options{cfg: func(c *Config) { c.Now = clk.Now }})

	// Expected counts come from each event's received_at day, so the test
	// holds whenever it runs (even across midnight UTC).
	want := map[[2]string]int64{}
	var days []string
	send := func(name string, n int) {
		for i := 0; i < n; i++ {
			// The server stamps received_at with clk between these two
			// readings; only if they straddle midnight UTC ask the event.
			before := clk.Now().UTC().Format(analytics.DateLayout)
			id := e.sendEvent("jane@example.com", name, map[string]any{"i": i})
			d := clk.Now().UTC().Format(analytics.DateLayout)
			if d != before {
				ev := e.mustStatus(e.do("GET", "/v1/events/"+id, e.key, nil), 200).data()
				at, err := time.Parse(time.RFC3339Nano, ev["received_at"].(string))
				if err != nil {
					t.Fatal(err)
				}
				d = at.UTC().Format(analytics.DateLayout)
			}
			want[[2]string{d, name}]++
			if len(days) == 0 || days[len(days)-1] != d {
				days = append(days, d)
			}
		}
	}
	send("signup", 2)
	send("purchase_completed", 1)
	clk.Advance(24 * time.Hour)
	send("purchase_completed", 3)
	send("Signup", 1) // names are case-sensitive
	clk.Advance(24 * time.Hour)
	send("signup", 1)
	if len(days) < 3 {
		t.Fatalf("events span days %v, want 3", days)
	}
	series := func(keep func(day, name string) bool) []analytics.DayCount {
		out := []analytics.DayCount{}
		for k, n := range want {
			if keep(k[0], k[1]) {
				out = append(out, analytics.DayCount{Date: k[0], EventName: k[1], Count: n})
			}
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Date != out[j].Date {
				return out[i].Date < out[j].Date
			}
			return out[i].EventName < out[j].EventName
		})
		return out
	}
	total := func(s []analytics.DayCount) (n int64) {
		for _, d := range s {
			n += d.Count
		}
		return n
	}
	first, last := days[0], days[len(days)-1]
	all := func(string, string) bool { return true }
	ptr := func(s string) *string { return &s }

	tests := []struct {
		name  string
		query string
		want  analytics.EventCounts
	}{
		{"whole range", "from=" + first + "&to=" + last,
			analytics.EventCounts{From: first, To: last, Series: series(all)}},
		{"default: the last 30 days to today", "",
			analytics.EventCounts{From: clk.Now().UTC().AddDate(0, 0, -29).Format(analytics.DateLayout),
				To: clk.Now().UTC().Format(analytics.DateLayout), Series: series(all)}},
		{"name filter", "from=" + first + "&to=" + last + "&event_name=signup",
			analytics.EventCounts{From: first, To: last, EventName: ptr("signup"),
				Series: series(func(_, n string) bool { return n == "signup" })}},
		{"name filter is exact", "from=" + first + "&to=" + last + "&event_name=" + url.QueryEscape("Signup"),
			analytics.EventCounts{From: first, To: last, EventName: ptr("Signup"),
				Series: series(func(_, n string) bool { return n == "Signup" })}},
		{"unknown name", "from=" + first + "&to=" + last + "&event_name=nope",
			analytics.EventCounts{From: first, To: last, EventName: ptr("nope"), Series: []analytics.DayCount{}}},
		{"range leaves out the first day", "from=" + days[1] + "&to=" + last,
			analytics.EventCounts{From: days[1], To: last, Series: series(func(d, _ string) bool { return d >= days[1] })}},
		{"only the first day", "from=" + first + "&to=" + first,
			analytics.EventCounts{From: first, To: first, Series: series(func(d, _ string) bool { return d == first })}},
		{"a range before any event", "from=2020-01-01&to=2020-12-31",
			analytics.EventCounts{From: "2020-01-01", To: "2020-12-31", Series: []analytics.DayCount{}}},
	}
	for _, tc := range tests {
		tc.want.Total = total(tc.want.Series)
		got, r := e.analyticsEvents(e.key, tc.query)
		if r.Status != 200 {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// The documented shape: series is [] (not null) when empty, and
	// event_name is null without a filter.
	if _, r := e.analyticsEvents(e.key, "from=2020-01-01&to=2020-01-01"); !strings.Contains(r.Raw, `"series":[]`) || !strings.Contains(r.Raw, `"event_name":null`) {
		t.Errorf("empty answer: %s", r.Raw)
	}

	// Read-your-writes: an event acknowledged before the request is counted.
	for i := 0; i < 5; i++ {
		e.sendEvent("bob@example.com", "ryw", nil)
		got, _ := e.analyticsEvents(e.key, "event_name=ryw")
		if got.Total != int64(i+1) {
			t.Fatalf("after %d ryw events: total %d", i+1, got.Total)
		}
	}

	bad := []struct{ query, code, field string }{
		{"from=2026-1-1", "invalid_value", "from"},
		{"to=2026-13-01", "invalid_value", "to"},
		{"from=2026-02-30&to=2026-03-01", "invalid_value", "from"},
		{"from=" + last + "&to=" + first, "invalid_value", "from"},
		{"from=2024-01-01&to=2025-01-01", "invalid_value", "to"},
		{"event_name=" + strings.Repeat("x", 256), "value_too_long", "event_name"},
	}
	for _, tc := range bad {
		if _, r := e.analyticsEvents(e.key, tc.query); r.Status != 400 || r.errCode() != tc.code || r.errField() != tc.field {
			t.Errorf("%s: got %d %s %q, want 400 %s %q: %s", tc.query, r.Status, r.errCode(), r.errField(), tc.code, tc.field, r.Raw)
		}
	}
	if _, r := e.analyticsEvents("", ""); r.Status != 401 {
		t.Errorf("no key: %d", r.Status)
	}
	if _, r := e.analyticsEvents("lark_nope", ""); r.Status != 401 {
		t.Errorf("bad key: %d", r.Status)
	}

	// Another workspace counts none of these.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, key2, err := e.svc.CreateWorkspace(ctx, "other", 100)
	if err != nil {
		t.Fatal(err)
	}
	e.mustStatus(e.do("POST", "/v1/events", key2, event("x@example.com", "signup")), 200)
	got, r := e.analyticsEvents(key2, "from="+first+"&to="+last)
	if r.Status != 200 || got.Total != 1 || len(got.Series) != 1 || got.Series[0].EventName != "signup" || got.Series[0].Count != 1 {
		t.Errorf("other workspace: %s", r.Raw)
	}
	if got, _ := e.analyticsEvents(e.key, "from="+first+"&to="+last+"&event_name=signup"); got.Total != total(series(func(_, n string) bool { return n == "signup" })) {
		t.Errorf("the other workspace's event is counted here: %+v", got)
	}
}

// automationStats GETs /v1/analytics/automations/{id} and decodes it.
func (e *env) automationStats(key, id string) (analytics.AutomationStats, resp) {
	e.t.Helper()
	r := e.do("GET", "/v1/analytics/automations/"+url.PathEscape(id), key, nil)
	var out struct{ Data analytics.AutomationStats }
	if r.Status == 200 {
		if err := json.Unmarshal([]byte(r.Raw), &out); err != nil {
			e.t.Fatalf("decode %s: %v", r.Raw, err)
		}
	}
	return out.Data, r
}

func n64(n int64) *int64 { return &n }

// TestAnalyticsAutomation runs SPEC §2.4's example for four events through
// a real SMTP server that refuses one recipient, and checks the funnel
// before and after the delays elapse, after a new version renames a node,
// and from another workspace.
func TestAnalyticsAutomation(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.WithAllowedRecipients(`@ok\.test$`))
	clk := &clock{}
	e := setup(t, options{cfg: func(c *Config) {
		c.Now = clk.Now
		c.Automation = AutomationConfig{SMTPURL: mp.SMTPURL(), MailFrom: "shop@example.com", WorkerPoll: 20 * time.Millisecond}
	}})
	for _, email := range []string{"jane@ok.test", "bob@refused.test"} {
		e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": email}), 201)
	}
	id := e.createAutomation(specAutomation(), true)

	// An automation nobody triggered: every count zero, every node listed.
	zero := func(version int, status string) analytics.AutomationStats {
		return analytics.AutomationStats{AutomationID: id, Name: "Purchase follow-up", Version: version, Status: status,
			Nodes: []analytics.NodeStats{
				{ID: "big_order", Type: "condition", Yes: n64(0), No: n64(0), InCurrentVersion: true},
				{ID: "vip_mail", Type: "send_email", Emails: &analytics.EmailCounts{}, InCurrentVersion: true},
				{ID: "wait", Type: "delay", DelaysStarted: n64(0), DelaysElapsed: n64(0), InCurrentVersion: true},
				{ID: "thanks_mail", Type: "send_email", Emails: &analytics.EmailCounts{}, InCurrentVersion: true},
			}}
	}
	got, r := e.automationStats(e.key, id)
	if r.Status != 200 {
		t.Fatalf("analytics: %d %s", r.Status, r.Raw)
	}
	if diff := cmp.Diff(zero(1, "active"), got); diff != "" {
		t.Fatalf("untriggered (-want +got):\n%s", diff)
	}

	runOf := func(email string, total any) string {
		return run.RunID(e.sendEvent(email, "purchase_completed", map[string]any{"total": total, "order_id": "o"}), id)
	}
	vip := runOf("jane@ok.test", 99.99)      // yes: VIP email sent, completed
	refused := runOf("bob@refused.test", 80) // yes: VIP email refused (550), run failed
	w1 := runOf("jane@ok.test", 10)          // no: waiting at the delay
	w2 := runOf("jane@ok.test", "5")         // no: waiting at the delay
	e.sendEvent("jane@ok.test", "other_event", nil)
	e.sendEvent("nobody@ok.test", "purchase_completed", map[string]any{"total": 100}) // no contact: no run
	e.waitRun(vip, "completed")
	e.waitRun(refused, "failed")
	e.waitRun(w1, "waiting")
	e.waitRun(w2, "waiting")

	want := zero(1, "active")
	want.Runs = analytics.RunCounts{Started: 4, Waiting: 2, Completed: 1, Failed: 1}
	want.Emails = analytics.EmailCounts{Queued: 2, Sent: 1, Failed: 1, FailedAttempts: 1}
	want.Nodes[0].Yes, want.Nodes[0].No = n64(2), n64(2)
	want.Nodes[1].Emails = &analytics.EmailCounts{Queued: 2, Sent: 1, Failed: 1, FailedAttempts: 1}
	want.Nodes[2].DelaysStarted = n64(2)
	got, _ = e.automationStats(e.key, id)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after four runs (-want +got):\n%s", diff)
	}

	// The delays elapse: both waiting runs send the thanks email.
	clk.Advance(time.Hour + time.Minute)
	e.waitRun(w1, "completed")
	e.waitRun(w2, "completed")
	want.Runs = analytics.RunCounts{Started: 4, Completed: 3, Failed: 1}
	want.Emails = analytics.EmailCounts{Queued: 4, Sent: 3, Failed: 1, FailedAttempts: 1}
	want.Nodes[2].DelaysElapsed = n64(2)
	want.Nodes[3].Emails = &analytics.EmailCounts{Queued: 2, Sent: 2}
	got, _ = e.automationStats(e.key, id)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after the delays (-want +got):\n%s", diff)
	}

	// Version 2 renames the delay node: the old id stays, marked as not in
	// the current version, after the current nodes.
	def := specAutomation()
	nodes := def["nodes"].([]any)
	nodes[0].(map[string]any)["no"] = "pause"
	nodes[2].(map[string]any)["id"] = "pause"
	e.mustStatus(e.do("PUT", "/v1/automations/"+id, e.key, def), 200)
	got, _ = e.automationStats(e.key, id)
	want.Version = 2
	old := want.Nodes[2]
	old.InCurrentVersion = false
	want.Nodes[2] = analytics.NodeStats{ID: "pause", Type: "delay", DelaysStarted: n64(0), DelaysElapsed: n64(0), InCurrentVersion: true}
	want.Nodes = append(want.Nodes, old)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after a new version (-want +got):\n%s", diff)
	}

	// Unknown ids and other workspaces' automations are 404.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, key2, err := e.svc.CreateWorkspace(ctx, "other", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, id string }{
		{key2, id},
		{e.key, "00000000-0000-0000-0000-000000000000"},
		{e.key, "not an id"},
		{e.key, vip}, // a run id is not an automation id
	} {
		if _, r := e.automationStats(tc.key, tc.id); r.Status != 404 || r.errCode() != "not_found" {
			t.Errorf("GET analytics of %q: %d %s", tc.id, r.Status, r.Raw)
		}
	}
	// The other workspace's own automation of the same shape has no runs.
	e2 := *e
	e2.key = key2
	id2 := e2.createAutomation(specAutomation(), true)
	if got, r := e.automationStats(key2, id2); r.Status != 200 || got.Runs != (analytics.RunCounts{}) || got.Emails != (analytics.EmailCounts{}) {
		t.Errorf("other workspace's automation: %s", r.Raw)
	}
}
