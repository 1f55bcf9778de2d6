package run_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/run"
)

var update = flag.Bool("update", false, "regenerate testdata/*.json golden run histories and outputs")

// scenario is a run driven by a sequence of commands; tamper, if set,
// alters the recorded history afterwards (as a corrupted or hand-edited
// store would) so that replay must report the step.
type scenario struct {
	name   string
	def    string
	event  string
	inputs func(h []run.Event) []run.Command // further inputs, built from the history so far
	tamper func(h []run.Event) []run.Event
}

func lastQueued(h []run.Event) run.EmailQueued {
	for i := len(h) - 1; i >= 0; i-- {
		if q, ok := h[i].(run.EmailQueued); ok {
			return q
		}
	}
	return run.EmailQueued{}
}

func lastDelay(h []run.Event) run.DelayStarted {
	for i := len(h) - 1; i >= 0; i-- {
		if q, ok := h[i].(run.DelayStarted); ok {
			return q
		}
	}
	return run.DelayStarted{}
}

func sent(at time.Duration) func(h []run.Event) []run.Command {
	return func(h []run.Event) []run.Command {
		q := lastQueued(h)
		return []run.Command{run.EmailResult{Node: q.Node, MessageID: q.MessageID, Attempt: 1, At: t0.Add(at)}}
	}
}

func scenarios() []scenario {
	return []scenario{
		{name: "vip_sent", def: specExample, event: `{"total": 99.99, "order_id": "A-17", "currency": "USD"}`,
			inputs: func(h []run.Event) []run.Command { return sent(time.Minute)(h) }},
		{name: "small_order_delay_then_thanks", def: specExample, event: `{"total": "20", "order_id": "A-18"}`,
			inputs: func(h []run.Event) []run.Command { return nil }},
		{name: "email_retried_then_failed", def: specExample, event: `{"total": 60, "order_id": "A-19", "currency": "EUR"}`,
			inputs: func(h []run.Event) []run.Command { return nil }},
		{name: "tampered_branch", def: specExample, event: `{"total": 99.99, "order_id": "A-17", "currency": "USD"}`,
			tamper: func(h []run.Event) []run.Event {
				c := h[1].(run.ConditionEvaluated)
				c.Branch, c.Next = "no", "wait"
				h[1] = c
				return h
			}},
		{name: "tampered_subject", def: specExample, event: `{"total": 99.99, "order_id": "A-17", "currency": "USD"}`,
			tamper: func(h []run.Event) []run.Event {
				q := h[2].(run.EmailQueued)
				q.Subject = "Thank you, Bob"
				h[2] = q
				return h
			}},
		{name: "tampered_due", def: specExample, event: `{"total": 1}`,
			tamper: func(h []run.Event) []run.Event {
				d := h[2].(run.DelayStarted)
				d.Due = d.Due.Add(time.Minute)
				h[2] = d
				return h
			}},
	}
}

// drive runs a scenario through the decider. The multi-step scenarios
// script their inputs here so each sees the history built so far.
func drive(t *testing.T, d run.Decider, sc scenario) []run.Event {
	t.Helper()
	var hist []run.Event
	apply := func(c run.Command) {
		t.Helper()
		evs, err := d.Decide(run.Fold(hist), c)
		if err != nil {
			t.Fatalf("%s: Decide(%T): %v", sc.name, c, err)
		}
		hist = append(hist, evs...)
	}
	apply(start(t, parseDef(t, sc.def), sc.event))
	switch sc.name {
	case "small_order_delay_then_thanks":
		dl := lastDelay(hist)
		apply(run.TimerFired{Node: dl.Node, Due: dl.Due, At: dl.Due.Add(2 * sec)})
		q := lastQueued(hist)
		apply(run.EmailResult{Node: q.Node, MessageID: q.MessageID, Attempt: 1, At: dl.Due.Add(4 * sec)})
	case "email_retried_then_failed":
		q := lastQueued(hist)
		for i := 1; i <= run.DefaultMaxEmailAttempts; i++ {
			apply(run.EmailResult{Node: q.Node, MessageID: q.MessageID, Attempt: i, At: t0.Add(time.Duration(i) * time.Minute), Err: "421 4.7.0 try again later", Retryable: true})
		}
	default:
		if sc.inputs != nil {
			for _, c := range sc.inputs(hist) {
				apply(c)
			}
		}
	}
	if sc.tamper != nil {
		hist = sc.tamper(hist)
	}
	return hist
}

// goldenOutput is what a replay of a history shows: the final state and
// every decision in a line an auditor can read, plus any mismatch.
type goldenOutput struct {
	Status     run.Status     `json:"status"`
	Events     int            `json:"events"`
	Clock      time.Time      `json:"clock"`
	Awaiting   run.Awaiting   `json:"awaiting"`
	Steps      []string       `json:"steps"`
	Verified   bool           `json:"replay_verified"`
	Mismatches []run.Mismatch `json:"mismatches"`
}

func describe(e run.Event) string {
	switch e := e.(type) {
	case run.RunStarted:
		return fmt.Sprintf("RunStarted %s v%d for %s by %s %s", e.AutomationID, e.AutomationVersion, e.Contact.EmailAddress, e.Trigger.EventName, e.Trigger.ReceivedAt.Format(time.RFC3339))
	case run.ConditionEvaluated:
		ev := e.Evaluation
		seen := "missing"
		if ev.Found {
			b, _ := json.Marshal(ev.Seen)
			seen = string(b)
		}
		exp, _ := json.Marshal(ev.Expected)
		return fmt.Sprintf("ConditionEvaluated %s: %s %s seen %s %s %s → %v, branch %s → %q", e.Node, ev.Operator, ev.Key, seen, ev.Comparator, exp, ev.Result, e.Branch, e.Next)
	case run.EmailQueued:
		return fmt.Sprintf("EmailQueued %s to %s subject %q body %q id %s", e.Node, e.To, e.Subject, e.Body, e.MessageID)
	case run.EmailSent:
		return fmt.Sprintf("EmailSent %s attempt %d at %s", e.Node, e.Attempt, e.At.Format(time.RFC3339))
	case run.EmailFailed:
		return fmt.Sprintf("EmailFailed %s attempt %d retryable %v: %s", e.Node, e.Attempt, e.Retryable, e.Error)
	case run.DelayStarted:
		return fmt.Sprintf("DelayStarted %s %s due %s", e.Node, e.Duration, e.Due.Format(time.RFC3339))
	case run.DelayElapsed:
		return fmt.Sprintf("DelayElapsed %s due %s fired %s", e.Node, e.Due.Format(time.RFC3339), e.FiredAt.Format(time.RFC3339))
	case run.RunCompleted:
		return fmt.Sprintf("RunCompleted at %s", e.At.Format(time.RFC3339))
	case run.RunFailed:
		return fmt.Sprintf("RunFailed at %s: %s", e.Node, e.Reason)
	}
	return e.EventType()
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenReplay replays the recorded histories in testdata through the
// current code and compares with the golden outputs. A change of decision
// logic that alters a past decision fails here; run with -update to accept
// it on purpose (and say why in the commit).
func TestGoldenReplay(t *testing.T) {
	d := decider()
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			histPath := filepath.Join("testdata", sc.name+".history.json")
			goldPath := filepath.Join("testdata", sc.name+".golden.json")
			if *update {
				recs, err := run.Record(drive(t, d, sc))
				if err != nil {
					t.Fatal(err)
				}
				writeJSON(t, histPath, recs)
			}
			data, err := os.ReadFile(histPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenReplay -update to create)", err)
			}
			var recs []run.Recorded
			if err := json.Unmarshal(data, &recs); err != nil {
				t.Fatal(err)
			}
			hist, err := run.Decode(recs)
			if err != nil {
				t.Fatal(err)
			}
			state, mm := d.Replay(hist)
			out := goldenOutput{Status: state.Status, Events: state.Events, Clock: state.Clock, Awaiting: state.Awaiting,
				Verified: len(mm) == 0, Mismatches: mm}
			for _, e := range hist {
				out.Steps = append(out.Steps, describe(e))
			}
			if *update {
				writeJSON(t, goldPath, out)
			}
			gdata, err := os.ReadFile(goldPath)
			if err != nil {
				t.Fatal(err)
			}
			var want goldenOutput
			if err := json.Unmarshal(gdata, &want); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(out)
			var got goldenOutput
			if err := json.Unmarshal(gotJSON, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("replay of %s (-golden +current):\n%s", histPath, diff)
			}
			// Untampered scenarios must verify; tampered ones must not.
			if tampered := sc.tamper != nil; got.Verified == tampered {
				t.Errorf("replay_verified = %v for tampered=%v", got.Verified, tampered)
			}
			// Driving the scenario again today records the same history.
			if sc.tamper == nil {
				again, err := run.Record(drive(t, d, sc))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(mustJSON(t, recs)), string(mustJSON(t, again))); diff != "" {
					t.Errorf("re-driven history differs from %s (-recorded +now):\n%s", histPath, diff)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReplayNamesTamperedStep(t *testing.T) {
	d := decider()
	tests := []struct {
		scenario  string
		wantIndex int
		wantNode  string
		wantType  string
	}{
		{"tampered_branch", 1, "big_order", run.TypeConditionEvaluated},
		{"tampered_subject", 2, "vip_mail", run.TypeEmailQueued},
		{"tampered_due", 2, "wait", run.TypeDelayStarted},
	}
	byName := map[string]scenario{}
	for _, sc := range scenarios() {
		byName[sc.name] = sc
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, mm := d.Replay(drive(t, d, byName[tt.scenario]))
			if len(mm) != 1 {
				t.Fatalf("got %d mismatches %+v, want 1", len(mm), mm)
			}
			m := mm[0]
			if m.Index != tt.wantIndex || m.Node != tt.wantNode || m.Type != tt.wantType {
				t.Errorf("mismatch at %d node %q type %s, want %d %q %s", m.Index, m.Node, m.Type, tt.wantIndex, tt.wantNode, tt.wantType)
			}
			if m.Recorded == m.Replayed || m.Recorded == "" || m.Replayed == "" {
				t.Errorf("mismatch should show both sides: %+v", m)
			}
		})
	}
}

func TestReplayStructuralMismatches(t *testing.T) {
	d := decider()
	full := drive(t, d, scenario{name: "vip_sent", def: specExample, event: `{"total": 99.99, "order_id": "A-17", "currency": "USD"}`, inputs: sent(time.Minute)})
	// full: RunStarted, ConditionEvaluated, EmailQueued, EmailSent, RunCompleted
	tests := []struct {
		name      string
		hist      []run.Event
		wantIndex int
		wantMsg   string
	}{
		{"decision dropped", []run.Event{full[0], full[1]}, 2, "not recorded"},
		{"extra decision", append(append([]run.Event{}, full[:3]...), full[4]), 3, "replay decides nothing more"},
		{"decision without input", full[1:], 0, "no input before it"},
		{"input the state cannot take", []run.Event{full[0], full[1], full[2], full[3], full[4], full[3]}, 5, "re-deciding EmailSent"},
		{"reordered decisions", []run.Event{full[0], full[2], full[1]}, 1, "recorded EmailQueued, replay decides ConditionEvaluated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, mm := d.Replay(tt.hist)
			if len(mm) == 0 {
				t.Fatal("no mismatch reported")
			}
			if mm[0].Index != tt.wantIndex || !strings.Contains(mm[0].Message, tt.wantMsg) {
				t.Errorf("first mismatch %+v, want index %d message containing %q", mm[0], tt.wantIndex, tt.wantMsg)
			}
		})
	}
	if _, mm := d.Replay(full); len(mm) != 0 {
		t.Errorf("full history: mismatches %+v", mm)
	}
}

// TestReplayLongRun replays a 1,000-node chain (issue 5's explain budget is
// 50 ms for a 1,000-step run) and checks it verifies.
func TestReplayLongRun(t *testing.T) {
	const n = 1000
	def := automation.Definition{Name: "long", Trigger: automation.Trigger{Type: automation.TriggerCustomEvent, EventName: "e"}, Start: "c0"}
	for i := 0; i < n; i++ {
		next := ""
		if i+1 < n {
			next = fmt.Sprint("c", i+1)
		}
		def.Nodes = append(def.Nodes, automation.Node{ID: fmt.Sprint("c", i), Type: automation.NodeCondition,
			Condition: &automation.Condition{Operator: automation.OperatorEventKey, Key: "total", Comparator: automation.GreaterThan, Value: json.Number(fmt.Sprint(i))},
			Yes:       next, No: next})
	}
	if err := automation.Validate(def, nil); err != nil {
		t.Fatal(err)
	}
	d := decider()
	hist, err := d.Decide(run.State{}, start(t, def, `{"total": 500}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n+2 {
		t.Fatalf("%d events, want %d", len(hist), n+2)
	}
	recs, err := run.Record(hist)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	decoded, err := run.Decode(recs)
	if err != nil {
		t.Fatal(err)
	}
	s, mm := d.Replay(decoded)
	elapsed := time.Since(begin)
	if len(mm) != 0 || s.Status != run.StatusCompleted {
		t.Fatalf("status %s, mismatches %+v", s.Status, mm)
	}
	t.Logf("decode + replay of a %d-step run: %v", n, elapsed)
}

func BenchmarkReplay1000Steps(b *testing.B) {
	const n = 1000
	def := automation.Definition{Name: "long", Trigger: automation.Trigger{Type: automation.TriggerCustomEvent, EventName: "e"}, Start: "c0"}
	for i := 0; i < n; i++ {
		next := ""
		if i+1 < n {
			next = fmt.Sprint("c", i+1)
		}
		def.Nodes = append(def.Nodes, automation.Node{ID: fmt.Sprint("c", i), Type: automation.NodeCondition,
			Condition: &automation.Condition{Operator: automation.OperatorEventKey, Key: "total", Comparator: automation.GreaterThan, Value: json.Number(fmt.Sprint(i))},
			Yes:       next, No: next})
	}
	d := decider()
	hist, err := d.Decide(run.State{}, start(b, def, `{"total": 500}`))
	if err != nil {
		b.Fatal(err)
	}
	recs, err := run.Record(hist)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		decoded, err := run.Decode(recs)
		if err != nil {
			b.Fatal(err)
		}
		if _, mm := d.Replay(decoded); len(mm) != 0 {
			b.Fatal(mm)
		}
	}
}
