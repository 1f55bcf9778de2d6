package run_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/larkhq/lark/adapters/liquid"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/run"
)

// specExample is SPEC §2.4's example automation.
const specExample = `{
  "name": "Purchase follow-up",
  "trigger": { "type": "custom_event", "event_name": "purchase_completed" },
  "start": "big_order",
  "nodes": [
    { "id": "big_order", "type": "condition",
      "condition": { "operator": "event_key", "key": "total",
                     "comparator": "greater_than", "value": 50 },
      "yes": "vip_mail", "no": "wait" },
    { "id": "vip_mail", "type": "send_email",
      "email": { "subject": "Thank you, {{ contact.first_name | default: 'friend' }}",
                 "body": "Order {{ event.order_id }}{% if event.currency == 'USD' %} in dollars{% endif %}." } },
    { "id": "wait", "type": "delay", "duration": "1h", "next": "thanks_mail" },
    { "id": "thanks_mail", "type": "send_email",
      "email": { "subject": "Thanks!", "body": "..." } }
  ]
}`

var (
	t0  = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sec = time.Second
)

func decider() run.Decider {
	return run.Decider{RenderFunc: liquid.New(liquid.Config{}).Render}
}

func parseDef(t testing.TB, s string) automation.Definition {
	t.Helper()
	d, err := automation.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if err := automation.Validate(d, liquid.New(liquid.Config{}).Check); err != nil {
		t.Fatal(err)
	}
	return d
}

func props(t testing.TB, s string) map[string]any {
	t.Helper()
	m, err := automation.DecodeProperties([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// start returns the Start command of SPEC's example for an event with the given properties.
func start(t testing.TB, def automation.Definition, eventProps string) run.Start {
	return run.Start{
		RunID: run.RunID("evt-1", "auto-1"), WorkspaceID: "ws-1", AutomationID: "auto-1", AutomationVersion: 1,
		Definition: def,
		Trigger:    run.Trigger{EventID: "evt-1", EventName: "purchase_completed", Properties: props(t, eventProps), ReceivedAt: t0},
		Contact:    automation.Contact{EmailAddress: "jane@example.com", FirstName: "Jane"},
		ContactID:  "contact-1",
		At:         t0.Add(2 * sec),
	}
}

func TestDecide(t *testing.T) {
	def := parseDef(t, specExample)
	vip := start(t, def, `{"total": 99.99, "order_id": "A-17", "currency": "USD"}`)
	small := start(t, def, `{"total": "20", "order_id": "A-18"}`)
	h := run.Header{RunID: vip.RunID, WorkspaceID: "ws-1"}
	vipMsg := run.MessageID(vip.RunID, "vip_mail")
	thanksMsg := run.MessageID(vip.RunID, "thanks_mail")

	started := func(c run.Start) run.RunStarted {
		return run.RunStarted{Header: h, AutomationID: "auto-1", AutomationVersion: 1, Definition: def, Trigger: c.Trigger,
			Contact: c.Contact, ContactID: "contact-1", Policy: run.Policy{MaxEmailAttempts: run.DefaultMaxEmailAttempts}, At: t0.Add(2 * sec)}
	}
	bigYes := run.ConditionEvaluated{Header: h, Node: "big_order", Branch: "yes", Next: "vip_mail",
		Evaluation: automation.Evaluation{Operator: "event_key", Key: "total", Comparator: "greater_than", Expected: json.Number("50"), Found: true, Seen: json.Number("99.99"), Result: true}}
	bigNo := run.ConditionEvaluated{Header: h, Node: "big_order", Branch: "no", Next: "wait",
		Evaluation: automation.Evaluation{Operator: "event_key", Key: "total", Comparator: "greater_than", Expected: json.Number("50"), Found: true, Seen: "20"}}
	vipQueued := run.EmailQueued{Header: h, Node: "vip_mail", MessageID: vipMsg, To: "jane@example.com",
		Subject: "Thank you, Jane", Body: "Order A-17 in dollars.", At: t0}
	delay := run.DelayStarted{Header: h, Node: "wait", Duration: "1h", Due: t0.Add(time.Hour)}
	failed := func(n int, retry bool) run.EmailFailed {
		return run.EmailFailed{Header: h, Node: "vip_mail", MessageID: vipMsg, Attempt: n, Error: "421 try later", Retryable: retry, At: t0.Add(time.Duration(n) * time.Minute)}
	}
	result := func(n int, err string, retry bool) run.EmailResult {
		return run.EmailResult{Node: "vip_mail", MessageID: vipMsg, Attempt: n, At: t0.Add(time.Duration(n) * time.Minute), Err: err, Retryable: retry}
	}
	vipHistory := []run.Event{started(vip), bigYes, vipQueued}

	tests := []struct {
		name    string
		given   []run.Event
		when    run.Command
		then    []run.Event
		wantErr error
	}{
		{name: "start, total 99.99 takes the yes branch and queues the rendered VIP email",
			when: vip, then: vipHistory},
		{name: "start, total \"20\" takes the no branch and waits an hour from received_at",
			when: small, then: []run.Event{started(small), bigNo, delay}},
		{name: "timer fires late: the thanks email is queued at the due time, not the firing time",
			given: []run.Event{started(small), bigNo, delay},
			when:  run.TimerFired{Node: "wait", Due: t0.Add(time.Hour), At: t0.Add(time.Hour + 3*sec)},
			then: []run.Event{
				run.DelayElapsed{Header: h, Node: "wait", Due: t0.Add(time.Hour), FiredAt: t0.Add(time.Hour + 3*sec)},
				run.EmailQueued{Header: h, Node: "thanks_mail", MessageID: thanksMsg, To: "jane@example.com", Subject: "Thanks!", Body: "...", At: t0.Add(time.Hour)},
			}},
		{name: "email sent ends the run (vip_mail has no next)",
			given: vipHistory, when: result(1, "", false),
			then: []run.Event{
				run.EmailSent{Header: h, Node: "vip_mail", MessageID: vipMsg, Attempt: 1, At: t0.Add(time.Minute)},
				run.RunCompleted{Header: h, At: t0.Add(time.Minute)},
			}},
		{name: "retryable failure keeps waiting",
			given: vipHistory, when: result(1, "421 try later", true),
			then: []run.Event{failed(1, true)}},
		{name: "second attempt after a retryable failure can succeed",
			given: append(append([]run.Event{}, vipHistory...), failed(1, true)), when: result(2, "", false),
			then: []run.Event{
				run.EmailSent{Header: h, Node: "vip_mail", MessageID: vipMsg, Attempt: 2, At: t0.Add(2 * time.Minute)},
				run.RunCompleted{Header: h, At: t0.Add(2 * time.Minute)},
			}},
		{name: "retryable failure on the last attempt fails the run",
			given: append(append([]run.Event{}, vipHistory...), failed(1, true), failed(2, true), failed(3, true), failed(4, true)),
			when:  result(5, "421 try later", true),
			then: []run.Event{failed(5, true),
				run.RunFailed{Header: h, Node: "vip_mail", Reason: "email failed after 5 attempts: 421 try later", At: t0.Add(5 * time.Minute)}}},
		{name: "permanent failure fails the run at once",
			given: vipHistory, when: result(1, "550 no such user", false),
			then: []run.Event{
				run.EmailFailed{Header: h, Node: "vip_mail", MessageID: vipMsg, Attempt: 1, Error: "550 no such user", At: t0.Add(time.Minute)},
				run.RunFailed{Header: h, Node: "vip_mail", Reason: "email failed: 550 no such user", At: t0.Add(time.Minute)}}},
		{name: "start twice", given: vipHistory, when: vip, wantErr: run.ErrAlreadyStarted},
		{name: "start without ids", when: run.Start{Definition: def}, wantErr: run.ErrInvalidCommand},
		{name: "email result before start", when: result(1, "", false), wantErr: run.ErrNotStarted},
		{name: "email result for another message", given: vipHistory,
			when: run.EmailResult{Node: "vip_mail", MessageID: "other", Attempt: 1}, wantErr: run.ErrUnexpectedInput},
		{name: "duplicate email result (attempt already recorded)", given: append(append([]run.Event{}, vipHistory...), failed(1, true)),
			when: result(1, "421 try later", true), wantErr: run.ErrUnexpectedInput},
		{name: "timer while waiting for an email", given: vipHistory,
			when: run.TimerFired{Node: "wait", Due: t0.Add(time.Hour), At: t0.Add(time.Hour)}, wantErr: run.ErrUnexpectedInput},
		{name: "timer with another due time", given: []run.Event{started(small), bigNo, delay},
			when: run.TimerFired{Node: "wait", Due: t0.Add(2 * time.Hour), At: t0.Add(2 * time.Hour)}, wantErr: run.ErrUnexpectedInput},
		{name: "timer fired early", given: []run.Event{started(small), bigNo, delay},
			when: run.TimerFired{Node: "wait", Due: t0.Add(time.Hour), At: t0.Add(time.Hour - sec)}, wantErr: run.ErrTimerEarly},
		{name: "input after the run ended",
			given: append(append([]run.Event{}, vipHistory...), run.EmailSent{Header: h, Node: "vip_mail", MessageID: vipMsg, Attempt: 1, At: t0}, run.RunCompleted{Header: h, At: t0}),
			when:  result(1, "", false), wantErr: run.ErrEnded},
	}
	d := decider()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decide(run.Fold(tt.given), tt.when)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decide error = %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Decide returned events with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if diff := cmp.Diff(tt.then, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			// Every decided event survives the codec unchanged.
			recs, err := run.Record(got)
			if err != nil {
				t.Fatal(err)
			}
			back, err := run.Decode(recs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, back, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("codec round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideRunFailures(t *testing.T) {
	d := decider()
	tests := []struct {
		name       string
		def        string
		wantNode   string
		wantReason string
	}{
		{"template fails to render", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"m",
			"nodes":[{"id":"m","type":"send_email","email":{"subject":"{{ x | nosuch }}","body":"b"}}]}`, "m", "render subject"},
		{"start node missing from snapshot", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"ghost",
			"nodes":[{"id":"m","type":"delay","duration":"1h"}]}`, "ghost", `node "ghost" is not in automation version 1`},
		{"cycle in snapshot", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"a",
			"nodes":[{"id":"a","type":"condition","condition":{"operator":"event_key","key":"k","comparator":"has"},"yes":"b","no":"b"},
			         {"id":"b","type":"condition","condition":{"operator":"event_key","key":"k","comparator":"has"},"yes":"a","no":"a"}]}`, "", "cycle"},
		{"unknown comparator in snapshot", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"a",
			"nodes":[{"id":"a","type":"condition","condition":{"operator":"event_key","key":"k","comparator":"like"}}]}`, "a", "unknown comparator"},
		{"bad duration in snapshot", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"a",
			"nodes":[{"id":"a","type":"delay","duration":"soon"}]}`, "a", "invalid duration"},
		{"unknown node type in snapshot", `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"a",
			"nodes":[{"id":"a","type":"webhook"}]}`, "a", "unknown node type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, err := automation.Parse([]byte(tt.def))
			if err != nil {
				t.Fatal(err)
			}
			evs, err := d.Decide(run.State{}, start(t, def, `{}`))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			last, ok := evs[len(evs)-1].(run.RunFailed)
			if !ok {
				t.Fatalf("last event %T, want RunFailed; events %v", evs[len(evs)-1], evs)
			}
			if tt.wantNode != "" && last.Node != tt.wantNode {
				t.Errorf("failed at node %q, want %q", last.Node, tt.wantNode)
			}
			if !strings.Contains(last.Reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", last.Reason, tt.wantReason)
			}
			if s := run.Fold(evs); s.Status != run.StatusFailed {
				t.Errorf("status %q, want failed", s.Status)
			}
		})
	}
	if _, err := (run.Decider{}).Decide(run.State{}, start(t, parseDef(t, specExample), `{}`)); !errors.Is(err, run.ErrNoRenderer) {
		t.Errorf("no renderer: got %v, want ErrNoRenderer", err)
	}
}

// TestDelayClock checks that a delay's due time derives from recorded
// history: after an email, from its recorded sent time; after a delay, from
// the previous due time (not from when the timer happened to fire).
func TestDelayClock(t *testing.T) {
	def := parseDef(t, `{"name":"n","trigger":{"type":"custom_event","event_name":"e"},"start":"m",
		"nodes":[{"id":"m","type":"send_email","email":{"subject":"s","body":"b"},"next":"d1"},
		         {"id":"d1","type":"delay","duration":"2h","next":"d2"},
		         {"id":"d2","type":"delay","duration":"3d"}]}`)
	d := decider()
	var hist []run.Event
	apply := func(c run.Command) []run.Event {
		t.Helper()
		evs, err := d.Decide(run.Fold(hist), c)
		if err != nil {
			t.Fatalf("Decide(%T): %v", c, err)
		}
		hist = append(hist, evs...)
		return evs
	}
	st := start(t, def, `{}`)
	apply(st)
	sentAt := t0.Add(5 * time.Minute)
	evs := apply(run.EmailResult{Node: "m", MessageID: run.MessageID(st.RunID, "m"), Attempt: 1, At: sentAt})
	d1 := evs[len(evs)-1].(run.DelayStarted)
	if want := sentAt.Add(2 * time.Hour); !d1.Due.Equal(want) {
		t.Errorf("d1 due %v, want %v", d1.Due, want)
	}
	evs = apply(run.TimerFired{Node: "d1", Due: d1.Due, At: d1.Due.Add(17 * time.Minute)})
	d2 := evs[len(evs)-1].(run.DelayStarted)
	if want := d1.Due.Add(72 * time.Hour); !d2.Due.Equal(want) {
		t.Errorf("d2 due %v, want %v", d2.Due, want)
	}
	if s := run.Fold(hist); s.Status != run.StatusWaiting || s.Awaiting.Node != "d2" {
		t.Errorf("state %q awaiting %+v, want waiting at d2", s.Status, s.Awaiting)
	}
	evs = apply(run.TimerFired{Node: "d2", Due: d2.Due, At: d2.Due})
	if done, ok := evs[len(evs)-1].(run.RunCompleted); !ok || !done.At.Equal(d2.Due) {
		t.Errorf("last event %#v, want RunCompleted at %v", evs[len(evs)-1], d2.Due)
	}
	if _, mm := d.Replay(hist); len(mm) != 0 {
		t.Errorf("replay mismatches: %+v", mm)
	}
}

func TestContactScope(t *testing.T) {
	def := parseDef(t, specExample)
	c := start(t, def, `{"total": 51, "order_id": 7, "currency": "EUR"}`)
	c.Contact = automation.Contact{EmailAddress: "x@example.com"} // no first name → default filter
	evs, err := decider().Decide(run.State{}, c)
	if err != nil {
		t.Fatal(err)
	}
	q := evs[len(evs)-1].(run.EmailQueued)
	if q.Subject != "Thank you, friend" || q.Body != "Order 7." || q.To != "x@example.com" {
		t.Errorf("queued %q / %q to %q", q.Subject, q.Body, q.To)
	}
}
