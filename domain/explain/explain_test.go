package explain_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/explain"
	"github.com/larkhq/lark/domain/run"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"purchase", "purchase", 0},
		{"purchase", "purchse", 1},    // deletion
		{"purchase", "purchasee", 1},  // insertion
		{"purchase", "purcgase", 1},   // substitution
		{"purchase", "pruchase", 1},   // transposition
		{"ca", "abc", 3},              // OSA, not unrestricted DL (2)
		{"signed_up", "Signed_Up", 2}, // case counts as substitution
		{"köln", "kolн", 2},           // code points, not bytes
		{"purchase_completed", "purchase_complet", 2},
	}
	for _, tc := range tests {
		if got := explain.Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := explain.Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestNearMiss(t *testing.T) {
	tests := []struct {
		event, trigger string
		want           string
	}{
		{"purchase_completed", "purchase_completed", ""},
		{"Purchase_Completed", "purchase_completed", explain.NearMissCase},
		{"PURCHASE_COMPLETED", "purchase_completed", explain.NearMissCase}, // many edits, still only case
		{"purchase_complete", "purchase_completed", explain.NearMissEdit},
		{"purchase_complet", "purchase_completed", explain.NearMissEdit},
		{"purchase_compl", "purchase_completed", ""}, // 4 edits
		{"signup", "signed_up", ""},                  // 3 edits
		{"buy", "bux", explain.NearMissEdit},         // short names: 1 edit
		{"buy", "box", ""},                           // short names: not 2
		{"a", "b", ""},                               // one-letter names never
		{"A", "a", explain.NearMissCase},
	}
	for _, tc := range tests {
		if got, _ := explain.NearMiss(tc.event, tc.trigger); got != tc.want {
			t.Errorf("NearMiss(%q, %q) = %q, want %q", tc.event, tc.trigger, got, tc.want)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestEventContactFacts checks the contact's state as of the event from
// its whole history, and automation facts before and after the event.
func TestEventContactFacts(t *testing.T) {
	def := automation.Definition{Name: "A", Trigger: automation.Trigger{Type: "custom_event", EventName: "e"}, Start: "x"}
	created := contact.Created{ContactID: "c1", Email: "j@x.io", At: at(0)}
	deleted := contact.Deleted{ContactID: "c1", At: at(time.Minute)}
	again := contact.Created{ContactID: "c1", Email: "j@x.io", At: at(2 * time.Minute)}
	h := func(before bool, es ...contact.Event) []explain.Historic[contact.Event] {
		var out []explain.Historic[contact.Event]
		for _, e := range es {
			out = append(out, explain.Historic[contact.Event]{Event: e, Before: before})
		}
		return out
	}
	autos := []explain.AutomationHistory{{ID: "a1", Events: []explain.Historic[automation.Event]{
		{Event: automation.Created{AutomationID: "a1", Version: 1, Definition: def, At: at(0)}, Before: true},
		{Event: automation.Activated{AutomationID: "a1", At: at(0)}, Before: true},
	}}}
	tests := []struct {
		name    string
		contact []explain.Historic[contact.Event]
		want    string // verdict of a1
		existed bool
	}{
		{"exists", h(true, created), "fired", true},
		{"deleted before", h(true, created, deleted), "contact_deleted", false},
		{"deleted then created again before", h(true, created, deleted, again), "fired", true},
		{"deleted after", append(h(true, created), h(false, deleted)...), "fired", true},
		{"created after", h(false, created), "contact_missing", false},
		{"never", nil, "contact_missing", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := explain.Event(explain.EventFacts{EventID: "ev", Name: "e", Email: "j@x.io", Contact: tc.contact,
				Automations: autos, Processed: true, RunIDFunc: run.RunID,
				Runs: map[string]explain.RunFound{run.RunID("ev", "a1"): {Status: "completed"}}})
			if len(x.Matched) != 1 {
				t.Fatalf("matched %+v", x.Matched)
			}
			got := x.Matched[0].Reason
			if x.Matched[0].Fired {
				got = "fired"
			}
			if got != tc.want || x.Contact.Existed != tc.existed {
				t.Errorf("verdict %q existed %v, want %q %v (summary %q)", got, x.Contact.Existed, tc.want, tc.existed, x.Summary)
			}
		})
	}
	// A matched automation whose run is absent although the manager
	// processed the event is reported as an inconsistency; before
	// processing it is pending.
	for _, processed := range []bool{true, false} {
		x := explain.Event(explain.EventFacts{EventID: "ev", Name: "e", Contact: h(true, created), Automations: autos,
			Processed: processed, RunIDFunc: run.RunID})
		want := explain.ReasonRunMissing
		if !processed {
			want = explain.ReasonPending
		}
		if x.Matched[0].Reason != want {
			t.Errorf("processed %v: reason %q, want %q", processed, x.Matched[0].Reason, want)
		}
	}
}

// render is a deterministic stand-in for the Liquid engine: it substitutes
// {{ n }} with the scope's event property n.
func render(src string, scope map[string]any) (string, error) {
	ev := scope["event"].(map[string]any)
	return strings.ReplaceAll(src, "{{ n }}", fmt.Sprint(ev["n"])), nil
}

// longRun drives a run through a chain of n nodes (condition, send_email,
// delay in turn) to its end and returns the recorded history.
func longRun(t testing.TB, n int) []run.Event {
	t.Helper()
	def := automation.Definition{Name: "long", Trigger: automation.Trigger{Type: "custom_event", EventName: "e"}, Start: "n0"}
	for i := 0; i < n; i++ {
		id, next := fmt.Sprintf("n%d", i), fmt.Sprintf("n%d", i+1)
		if i == n-1 {
			next = ""
		}
		var node automation.Node
		switch i % 3 {
		case 0:
			node = automation.Node{ID: id, Type: automation.NodeCondition, Yes: next, No: next,
				Condition: &automation.Condition{Operator: automation.OperatorEventKey, Key: "n",
					Comparator: automation.GreaterThan, Value: json.Number("5")}}
		case 1:
			node = automation.Node{ID: id, Type: automation.NodeSendEmail, Next: next,
				Email: &automation.Email{Subject: "Step {{ n }}", Body: "Body {{ n }}"}}
		default:
			node = automation.Node{ID: id, Type: automation.NodeDelay, Duration: "1h", Next: next}
		}
		def.Nodes = append(def.Nodes, node)
	}
	d := run.Decider{RenderFunc: render}
	var s run.State
	var hist []run.Event
	var cmd run.Command = run.Start{RunID: "r1", WorkspaceID: "w1", AutomationID: "a1", AutomationVersion: 1, Definition: def,
		Trigger: run.Trigger{EventID: "ev", EventName: "e", Properties: map[string]any{"n": json.Number("7")}, ReceivedAt: t0},
		Contact: automation.Contact{EmailAddress: "j@x.io"}, At: t0}
	for cmd != nil {
		evs, err := d.Decide(s, cmd)
		if err != nil {
			t.Fatalf("decide %T: %v", cmd, err)
		}
		for _, e := range evs {
			s = run.Evolve(s, e)
		}
		hist = append(hist, evs...)
		switch w := s.Awaiting; w.Kind {
		case run.AwaitEmail:
			cmd = run.EmailResult{Node: w.Node, MessageID: w.MessageID, Attempt: w.Attempt, At: s.Clock.Add(time.Second)}
		case run.AwaitTimer:
			cmd = run.TimerFired{Node: w.Node, Due: w.Due, At: w.Due.Add(time.Second)}
		default:
			cmd = nil
		}
	}
	if s.Status != run.StatusCompleted {
		t.Fatalf("long run ended %s", s.Status)
	}
	return hist
}

func TestRunExplanation(t *testing.T) {
	hist := longRun(t, 6)
	x := explain.Run(run.Decider{RenderFunc: render}, hist)
	if !x.ReplayVerified || len(x.Mismatches) != 0 || x.Status != run.StatusCompleted || x.RunID != "r1" {
		t.Fatalf("explanation: verified %v mismatches %v status %s", x.ReplayVerified, x.Mismatches, x.Status)
	}
	var got []string
	for _, s := range x.Steps {
		got = append(got, fmt.Sprintf("%d %s@%s", s.Seq, s.Type, s.Node))
	}
	want := []string{"0 RunStarted@n0", "1 ConditionEvaluated@n0", "2 EmailQueued@n1", "3 EmailSent@n1",
		"4 DelayStarted@n2", "5 DelayElapsed@n2", "6 ConditionEvaluated@n3", "7 EmailQueued@n4", "8 EmailSent@n4",
		"9 DelayStarted@n5", "10 DelayElapsed@n5", "11 RunCompleted@"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("steps (-want +got):\n%s", diff)
	}
	c := x.Steps[1]
	if c.Inputs["value_seen"] != json.Number("7") || c.Inputs["comparator"] != automation.GreaterThan ||
		c.Inputs["expected"] != json.Number("5") || c.Outputs["branch"] != "yes" || c.Outputs["result"] != true {
		t.Errorf("condition step %+v", c)
	}
	if e := x.Steps[2]; e.Outputs["subject"] != "Step 7" || e.Outputs["message_id"] != run.MessageID("r1", "n1") {
		t.Errorf("email step %+v", e)
	}
	if d := x.Steps[4]; !d.Outputs["due"].(time.Time).Equal(t0.Add(time.Second + time.Hour)) {
		t.Errorf("delay due %v", d.Outputs["due"])
	}
}

// TestRunTampered alters one recorded decision in a copy of a history:
// replay_verified turns false and the step is named.
func TestRunTampered(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(h []run.Event)
		step   int
		node   string
	}{
		{"branch", func(h []run.Event) {
			c := h[6].(run.ConditionEvaluated)
			c.Branch = "no"
			h[6] = c
		}, 6, "n3"},
		{"subject", func(h []run.Event) {
			q := h[7].(run.EmailQueued)
			q.Subject = "Step 8"
			h[7] = q
		}, 7, "n4"},
		{"due", func(h []run.Event) {
			d := h[4].(run.DelayStarted)
			d.Due = d.Due.Add(time.Minute)
			h[4] = d
		}, 4, "n2"},
		{"value seen", func(h []run.Event) {
			c := h[1].(run.ConditionEvaluated)
			c.Evaluation.Seen = json.Number("8")
			h[1] = c
		}, 1, "n0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := longRun(t, 6)
			tc.tamper(hist)
			x := explain.Run(run.Decider{RenderFunc: render}, hist)
			if x.ReplayVerified || len(x.Mismatches) == 0 {
				t.Fatal("tampered history verified")
			}
			if m := x.Mismatches[0]; m.Step != tc.step || m.Node != tc.node {
				t.Errorf("mismatch %+v, want step %d node %s", m, tc.step, tc.node)
			}
			if x.Steps[tc.step].Replay != "mismatch" || x.Steps[0].Replay != "verified" {
				t.Errorf("replay marks: step %d %q, step 0 %q", tc.step, x.Steps[tc.step].Replay, x.Steps[0].Replay)
			}
		})
	}
}

// BenchmarkExplainRun1000 explains (describes and replays) a recorded run
// of 1,000 steps.
func BenchmarkExplainRun1000(b *testing.B) {
	hist := longRun(b, 600) // 600 nodes: 200 conditions, 200 emails (3 events each with the input), ...
	for len(hist) < 1000 {
		b.Fatalf("history has %d steps", len(hist))
	}
	hist = hist[:len(hist)]
	d := run.Decider{RenderFunc: render}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := explain.Run(d, hist)
		if !x.ReplayVerified {
			b.Fatal("not verified")
		}
	}
	b.ReportMetric(float64(len(hist)), "steps")
}
