package service

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/run"
)

// explanation is the part of an event explanation the tests compare.
type explanation struct {
	Processed bool `json:"processed"`
	Contact   struct {
		Existed       bool    `json:"existed"`
		DeletedBefore *string `json:"deleted_before_event_at"`
		CreatedLater  *string `json:"created_after_event_at"`
	} `json:"contact"`
	Matched []struct {
		AutomationID string `json:"automation_id"`
		Fired        bool   `json:"fired"`
		RunID        string `json:"run_id"`
		RunStatus    string `json:"run_status"`
		Reason       string `json:"reason"`
	} `json:"matched"`
	NotMatched []struct {
		AutomationID string `json:"automation_id"`
		Status       string `json:"status"`
		Reason       string `json:"reason"`
		NameMatches  bool   `json:"name_matches"`
		NearMiss     bool   `json:"near_miss"`
		NearMissKind string `json:"near_miss_kind"`
		Later        []string
	} `json:"not_matched"`
	CreatedLater []struct {
		AutomationID string `json:"automation_id"`
		NameMatches  bool   `json:"name_matches"`
	} `json:"created_later"`
	Summary string `json:"summary"`
}

// verdicts reduces an explanation to "automation id → verdict" strings.
func (x explanation) verdicts(names map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range x.Matched {
		v := "fired"
		if !m.Fired {
			v = "matched, not fired: " + m.Reason
		} else if m.Reason != "" {
			v += ": " + m.Reason
		}
		out[names[m.AutomationID]] = v
	}
	for _, n := range x.NotMatched {
		v := n.Reason
		if n.NearMiss {
			v += " (near miss: " + n.NearMissKind + ")"
		}
		if n.NameMatches {
			v += " (name matches)"
		}
		out[names[n.AutomationID]] = v
	}
	for _, c := range x.CreatedLater {
		out[names[c.AutomationID]] = "created later"
	}
	return out
}

func (e *env) explainEvent(id string) explanation {
	e.t.Helper()
	r := e.mustStatus(e.do("GET", "/v1/events/"+id+"/explain", e.key, nil), 200)
	raw, _ := json.Marshal(r.Body["data"])
	var x explanation
	if err := json.Unmarshal(raw, &x); err != nil {
		e.t.Fatal(err)
	}
	return x
}

// waitProcessed polls GET /v1/events/{id} until the run manager has handled it.
func (e *env) waitProcessed(id string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.do("GET", "/v1/events/"+id, e.key, nil)
		if r.Status == 200 && r.data()["status"] == "processed" {
			return r.data()
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event %s not processed: %d %s", id, r.Status, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func named(def map[string]any, name, trigger string) map[string]any {
	def["name"] = name
	def["trigger"] = map[string]any{"type": "custom_event", "event_name": trigger}
	return def
}

// TestExplainEvent covers every explanation case of issue 5 in one
// workspace: fired; not fired because of a name mismatch with near misses
// flagged; contact missing; contact deleted before the event; automation
// paused; automation created after the event.
func TestExplainEvent(t *testing.T) {
	t.Parallel()
	e := setup(t, options{cfg: func(c *Config) { c.Automation.MailDir = t.TempDir() }})
	names := map[string]string{}
	auto := func(name, trigger string, activate bool) string {
		id := e.createAutomation(named(specAutomation(), name, trigger), activate)
		names[id] = name
		return id
	}
	auto("main", "purchase_completed", true)
	auto("case", "Purchase_Completed", true)
	auto("edit", "purchase_complete", true)
	auto("other", "signed_up", true)
	auto("draft", "purchase_completed", false)
	paused := auto("paused", "purchase_completed", true)
	e.mustStatus(e.do("POST", "/v1/automations/"+paused+"/pause", e.key, nil), 200)
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "Jane@Example.com", "first_name": "Jane"}), 201)
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "bob@example.com"}), 201)
	e.mustStatus(e.do("DELETE", "/v1/contacts/bob@example.com", e.key, nil), 204)

	fired := e.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": 99.99, "order_id": "A1"})
	missing := e.sendEvent("nobody@example.com", "purchase_completed", nil)
	deleted := e.sendEvent("bob@example.com", "purchase_completed", nil)
	typo := e.sendEvent("jane@example.com", "purchase_complet", nil)
	// Created after every event above; and the paused one is activated
	// again (later), which must not change what the events saw.
	auto("later", "purchase_completed", true)
	e.mustStatus(e.do("POST", "/v1/automations/"+paused+"/activate", e.key, nil), 200)
	// The contact that did not exist is created later.
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "nobody@example.com"}), 201)
	for _, id := range []string{fired, missing, deleted, typo} {
		e.waitProcessed(id)
	}

	notFired := func(reason string) map[string]string {
		return map[string]string{
			"main": "matched, not fired: " + reason, "case": "event_name_differs (near miss: differs_only_in_case)",
			"edit": "event_name_differs (near miss: small_edit)", "other": "event_name_differs",
			"draft": "draft (name matches)", "paused": "paused (name matches)", "later": "created later",
		}
	}
	tests := []struct {
		name    string
		id      string
		want    map[string]string
		existed bool
		deleted bool
		later   bool
	}{
		{name: "fired", id: fired, existed: true, want: map[string]string{
			"main": "fired", "case": "event_name_differs (near miss: differs_only_in_case)",
			"edit": "event_name_differs (near miss: small_edit)", "other": "event_name_differs",
			"draft": "draft (name matches)", "paused": "paused (name matches)", "later": "created later"}},
		{name: "contact missing", id: missing, want: notFired("contact_missing"), later: true},
		{name: "contact deleted before the event", id: deleted, want: notFired("contact_deleted"), deleted: true},
		{name: "name mismatch with near misses", id: typo, existed: true, want: map[string]string{
			"main": "event_name_differs (near miss: small_edit)", "case": "event_name_differs",
			"edit": "event_name_differs (near miss: small_edit)", "other": "event_name_differs",
			"draft": "draft (near miss: small_edit)", "paused": "paused (near miss: small_edit)", "later": "created later"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := e.explainEvent(tc.id)
			if diff := cmp.Diff(tc.want, x.verdicts(names)); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s\nsummary: %s", diff, x.Summary)
			}
			if !x.Processed || x.Contact.Existed != tc.existed || (x.Contact.DeletedBefore != nil) != tc.deleted ||
				(x.Contact.CreatedLater != nil) != tc.later {
				t.Errorf("processed %v, contact %+v; want existed %v deleted %v created later %v",
					x.Processed, x.Contact, tc.existed, tc.deleted, tc.later)
			}
			for _, n := range x.NotMatched {
				if names[n.AutomationID] == "paused" && (len(n.Later) != 1 || n.Later[0] != "activated_after_event") {
					t.Errorf("paused automation: later %v, want [activated_after_event]", n.Later)
				}
			}
		})
	}

	// The fired event's run is named in the explanation and in GET /v1/events/{id}.
	x := e.explainEvent(fired)
	var runID string
	for _, m := range x.Matched {
		runID = m.RunID
	}
	if runID == "" {
		t.Fatalf("no run in %+v", x.Matched)
	}
	e.waitRun(runID, "completed")
	got := e.waitProcessed(fired)
	runs, _ := got["runs"].([]any)
	if len(runs) != 1 || runs[0].(map[string]any)["id"] != runID || got["event_name"] != "purchase_completed" ||
		got["email_address"] != "jane@example.com" {
		t.Fatalf("GET event: %v", got)
	}
	if x := e.explainEvent(fired); x.Matched[0].RunStatus != "completed" {
		t.Errorf("run status in explanation %q, want completed", x.Matched[0].RunStatus)
	}

	// Unknown ids, and ids of another workspace, are not found.
	e.mustStatus(e.do("GET", "/v1/events/"+uuid.NewString(), e.key, nil), 404)
	e.mustStatus(e.do("GET", "/v1/events/"+uuid.NewString()+"/explain", e.key, nil), 404)
	e.mustStatus(e.do("GET", "/v1/automation-runs/"+uuid.NewString()+"/explain", e.key, nil), 404)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, key2, err := e.svc.CreateWorkspace(ctx, "other", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/events/" + fired, "/v1/events/" + fired + "/explain", "/v1/automation-runs/" + runID + "/explain"} {
		if r := e.do("GET", p, key2, nil); r.Status != 404 {
			t.Errorf("GET %s with another workspace's key: %d %s", p, r.Status, r.Raw)
		}
	}
	// The operator's view (no workspace) finds both.
	if xe, err := e.svc.ExplainEvent(ctx, "", fired); err != nil || xe.WorkspaceID != e.ws {
		t.Errorf("ExplainEvent without workspace: %v %v", xe.WorkspaceID, err)
	}
}

// TestExplainRun explains a completed run step by step, then replays a
// copy of its history with one recorded decision altered.
func TestExplainRun(t *testing.T) {
	t.Parallel()
	e := setup(t, options{cfg: func(c *Config) { c.Automation.MailDir = t.TempDir() }})
	e.createAutomation(specAutomation(), true)
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "jane@example.com", "first_name": "Jane"}), 201)
	id := e.sendEvent("jane@example.com", "purchase_completed", map[string]any{"total": "99.99", "order_id": "A7", "currency": "USD"})
	runs := e.waitProcessed(id)["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("runs %v", runs)
	}
	runID := runs[0].(map[string]any)["id"].(string)
	e.waitRun(runID, "completed")

	r := e.mustStatus(e.do("GET", "/v1/automation-runs/"+runID+"/explain", e.key, nil), 200)
	d := r.data()
	if d["replay_verified"] != true || d["status"] != "completed" || d["trigger_event_id"] != id {
		t.Fatalf("explain run: %s", r.Raw)
	}
	type step struct {
		Type    string
		Node    string
		Inputs  map[string]any
		Outputs map[string]any
		Replay  string
	}
	var steps []step
	raw, _ := json.Marshal(d["steps"])
	if err := json.Unmarshal(raw, &steps); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, s := range steps {
		types = append(types, s.Type+"@"+s.Node+":"+s.Replay)
	}
	want := []string{"RunStarted@big_order:verified", "ConditionEvaluated@big_order:verified",
		"EmailQueued@vip_mail:verified", "EmailSent@vip_mail:verified", "RunCompleted@:verified"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Fatalf("steps (-want +got):\n%s", diff)
	}
	cond := steps[1]
	if cond.Inputs["value_seen"] != "99.99" || cond.Inputs["comparator"] != "greater_than" || cond.Inputs["expected"] != 50.0 ||
		cond.Outputs["branch"] != "yes" || cond.Outputs["next"] != "vip_mail" {
		t.Errorf("condition step: %+v", cond)
	}
	mail := steps[2]
	if mail.Outputs["subject"] != "Thank you, Jane" || mail.Outputs["message_id"] != run.MessageID(runID, "vip_mail") ||
		mail.Outputs["body"] != "Order A7 in dollars." {
		t.Errorf("email step: %+v", mail)
	}

	// Tamper: copy the run's history into a new run stream with the
	// condition's recorded branch flipped.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, _, err := e.svc.store.ReadStream(ctx, esdb.RunStream(runID))
	if err != nil {
		t.Fatal(err)
	}
	var copied []esdb.Proposed
	for _, rec := range recs {
		var m map[string]any
		if err := json.Unmarshal(rec.Data, &m); err != nil {
			t.Fatal(err)
		}
		if rec.Type == run.TypeConditionEvaluated {
			m["branch"], m["next"] = "no", "wait"
		}
		copied = append(copied, esdb.Proposed{Type: rec.Type, WorkspaceID: rec.WorkspaceID, Data: m})
	}
	tampered := uuid.NewString()
	if _, err := e.svc.store.Append(ctx, esdb.RunStream(tampered), esdb.NoStream, copied...); err != nil {
		t.Fatal(err)
	}
	xr, err := e.svc.ExplainRun(ctx, e.ws, tampered)
	if err != nil {
		t.Fatal(err)
	}
	if xr.ReplayVerified || len(xr.Mismatches) == 0 {
		t.Fatalf("tampered run verified: %+v", xr.Mismatches)
	}
	if m := xr.Mismatches[0]; m.Step != 1 || m.Node != "big_order" || m.Type != run.TypeConditionEvaluated {
		t.Errorf("first mismatch %+v, want step 1 at node big_order", m)
	}
	if xr.Steps[1].Replay != "mismatch" || xr.Steps[0].Replay != "verified" {
		t.Errorf("step replay marks: %q %q", xr.Steps[0].Replay, xr.Steps[1].Replay)
	}
	// The untouched original still verifies.
	if xo, err := e.svc.ExplainRun(ctx, "", runID); err != nil || !xo.ReplayVerified {
		t.Errorf("original run: verified %v, %v", xo.ReplayVerified, err)
	}
}
