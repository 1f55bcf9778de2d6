package automation

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// specExample is SPEC §2.4's example automation, verbatim.
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

func mustParse(t *testing.T, s string) Definition {
	t.Helper()
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

// fakeCheck stands in for the Liquid engine (adapters/liquid has the real
// one and its own tests): it refuses templates containing "{% bad".
func fakeCheck(src string) error {
	if strings.Contains(src, "{% bad") {
		return errors.New("unknown tag bad")
	}
	return nil
}

func TestParseSpecExample(t *testing.T) {
	d := mustParse(t, specExample)
	if err := Validate(d, fakeCheck); err != nil {
		t.Fatalf("Validate(spec example) = %v, want nil", err)
	}
	big, ok := d.Node("big_order")
	if !ok {
		t.Fatal("node big_order missing")
	}
	if diff := cmp.Diff(&Condition{Operator: OperatorEventKey, Key: "total", Comparator: GreaterThan, Value: json.Number("50")}, big.Condition); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
	// Round trip: marshal and parse again gives the same definition, even via plain json.Unmarshal.
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var again Definition
	if err := json.Unmarshal(data, &again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, again); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"name": 1}`, `{"name":"a"} {}`, `{"nodes":[{"condition":{"value": }}]}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = nil error, want an error", in)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	// edit returns the spec example changed by f.
	edit := func(f func(d *Definition)) Definition {
		d := mustParse(t, specExample)
		f(&d)
		return d
	}
	node := func(d *Definition, id string) *Node {
		for i := range d.Nodes {
			if d.Nodes[i].ID == id {
				return &d.Nodes[i]
			}
		}
		t.Fatalf("no node %q", id)
		return nil
	}
	tests := []struct {
		name string
		def  Definition
		want ValidationError // Message is matched as a substring
	}{
		{"missing name", edit(func(d *Definition) { d.Name = "" }), ValidationError{Field: "name", Message: "required"}},
		{"trigger type missing", edit(func(d *Definition) { d.Trigger.Type = "" }), ValidationError{Field: "trigger.type", Message: "required"}},
		{"trigger type unknown", edit(func(d *Definition) { d.Trigger.Type = "page_view" }), ValidationError{Field: "trigger.type", Message: "unknown trigger type"}},
		{"event name missing", edit(func(d *Definition) { d.Trigger.EventName = "" }), ValidationError{Field: "trigger.event_name", Message: "required"}},
		{"event name too long", edit(func(d *Definition) { d.Trigger.EventName = strings.Repeat("x", 256) }), ValidationError{Field: "trigger.event_name", Message: "longer than 255"}},
		{"no nodes", edit(func(d *Definition) { d.Nodes = nil }), ValidationError{Field: "nodes", Message: "at least one"}},
		{"too many nodes", edit(func(d *Definition) {
			for i := 0; i <= MaxNodes; i++ {
				d.Nodes = append(d.Nodes, Node{ID: fmt.Sprint("n", i), Type: NodeDelay, Duration: "1m"})
			}
		}), ValidationError{Field: "nodes", Message: "more than"}},
		{"node without id", edit(func(d *Definition) { d.Nodes[2].ID = "" }), ValidationError{Field: "nodes[2].id", Message: "required"}},
		{"duplicate id", edit(func(d *Definition) { d.Nodes[3].ID = "wait" }), ValidationError{Node: "wait", Field: "id", Message: "duplicate"}},
		{"missing start", edit(func(d *Definition) { d.Start = "" }), ValidationError{Field: "start", Message: "required"}},
		{"unknown start", edit(func(d *Definition) { d.Start = "nope" }), ValidationError{Field: "start", Message: `unknown node "nope"`}},
		{"missing node type", edit(func(d *Definition) { node(d, "wait").Type = "" }), ValidationError{Node: "wait", Field: "type", Message: "required"}},
		{"unknown node type", edit(func(d *Definition) { node(d, "wait").Type = "webhook" }), ValidationError{Node: "wait", Field: "type", Message: `unknown node type "webhook"`}},
		{"condition missing", edit(func(d *Definition) { node(d, "big_order").Condition = nil }), ValidationError{Node: "big_order", Field: "condition", Message: "required"}},
		{"operator missing", edit(func(d *Definition) { node(d, "big_order").Condition.Operator = "" }), ValidationError{Node: "big_order", Field: "condition.operator", Message: "required"}},
		{"operator unknown", edit(func(d *Definition) { node(d, "big_order").Condition.Operator = "event_name" }), ValidationError{Node: "big_order", Field: "condition.operator", Message: "unknown operator"}},
		{"key missing", edit(func(d *Definition) { node(d, "big_order").Condition.Key = "" }), ValidationError{Node: "big_order", Field: "condition.key", Message: "required"}},
		{"comparator missing", edit(func(d *Definition) { node(d, "big_order").Condition.Comparator = "" }), ValidationError{Node: "big_order", Field: "condition.comparator", Message: "required"}},
		{"comparator unknown", edit(func(d *Definition) { node(d, "big_order").Condition.Comparator = "greater" }), ValidationError{Node: "big_order", Field: "condition.comparator", Message: `unknown comparator "greater"`}},
		{"ordering needs a number", edit(func(d *Definition) { node(d, "big_order").Condition.Value = "fifty" }), ValidationError{Node: "big_order", Field: "condition.value", Message: "needs a number"}},
		{"contains needs a scalar", edit(func(d *Definition) {
			c := node(d, "big_order").Condition
			c.Comparator, c.Value = Contains, []any{"a"}
		}), ValidationError{Node: "big_order", Field: "condition.value", Message: "contains needs"}},
		{"equals with a Go value JSON cannot hold", edit(func(d *Definition) {
			c := node(d, "big_order").Condition
			c.Comparator, c.Value = Equals, struct{}{}
		}), ValidationError{Node: "big_order", Field: "condition.value", Message: "unsupported value"}},
		{"dangling yes", edit(func(d *Definition) { node(d, "big_order").Yes = "ghost" }), ValidationError{Node: "big_order", Field: "yes", Message: `unknown node "ghost"`}},
		{"dangling no", edit(func(d *Definition) { node(d, "big_order").No = "ghost" }), ValidationError{Node: "big_order", Field: "no", Message: `unknown node "ghost"`}},
		{"dangling next", edit(func(d *Definition) { node(d, "wait").Next = "ghost" }), ValidationError{Node: "wait", Field: "next", Message: `unknown node "ghost"`}},
		{"email missing", edit(func(d *Definition) { node(d, "vip_mail").Email = nil }), ValidationError{Node: "vip_mail", Field: "email", Message: "required"}},
		{"subject missing", edit(func(d *Definition) { node(d, "vip_mail").Email.Subject = "" }), ValidationError{Node: "vip_mail", Field: "email.subject", Message: "required"}},
		{"body missing", edit(func(d *Definition) { node(d, "thanks_mail").Email.Body = "" }), ValidationError{Node: "thanks_mail", Field: "email.body", Message: "required"}},
		{"template does not parse", edit(func(d *Definition) { node(d, "vip_mail").Email.Body = "{% bad %}" }), ValidationError{Node: "vip_mail", Field: "email.body", Message: "does not parse: unknown tag bad"}},
		{"bad from", edit(func(d *Definition) { node(d, "vip_mail").Email.From = "not an address" }), ValidationError{Node: "vip_mail", Field: "email.from", Message: "not an email address"}},
		{"duration missing", edit(func(d *Definition) { node(d, "wait").Duration = "" }), ValidationError{Node: "wait", Field: "duration", Message: "required"}},
		{"bad duration", edit(func(d *Definition) { node(d, "wait").Duration = "1 hour" }), ValidationError{Node: "wait", Field: "duration", Message: "invalid duration"}},
		{"self loop", edit(func(d *Definition) { node(d, "wait").Next = "wait" }), ValidationError{Node: "wait", Field: "next", Message: `cycle through "wait"`}},
		{"cycle", edit(func(d *Definition) { node(d, "thanks_mail").Next = "big_order" }), ValidationError{Node: "thanks_mail", Field: "next", Message: `cycle through "big_order"`}},
		{"cycle via no branch", edit(func(d *Definition) {
			node(d, "big_order").No = "check2"
			d.Nodes = append(d.Nodes, Node{ID: "check2", Type: NodeCondition, Condition: &Condition{Operator: OperatorEventKey, Key: "x", Comparator: Has}, Yes: "wait", No: "big_order"})
		}), ValidationError{Node: "check2", Field: "no", Message: `cycle through "big_order"`}},
		{"unreachable cycle", edit(func(d *Definition) {
			d.Nodes = append(d.Nodes,
				Node{ID: "a", Type: NodeDelay, Duration: "1m", Next: "b"},
				Node{ID: "b", Type: NodeDelay, Duration: "1m", Next: "a"})
		}), ValidationError{Node: "b", Field: "next", Message: `cycle through "a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.def, fakeCheck)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tt.want, *ve, cmpopts.IgnoreFields(ValidationError{}, "Message", "Err")); diff != "" {
				t.Errorf("error %q (-want +got):\n%s", ve, diff)
			}
			if !strings.Contains(ve.Message, tt.want.Message) {
				t.Errorf("message %q does not contain %q", ve.Message, tt.want.Message)
			}
			if tt.want.Node != "" && !strings.Contains(ve.Error(), fmt.Sprintf("%q", tt.want.Node)) {
				t.Errorf("Error() %q does not name node %q", ve.Error(), tt.want.Node)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	d := Definition{
		Name: "edge cases", Trigger: Trigger{Type: TriggerCustomEvent, EventName: "Signed Up ✓"}, Start: "c",
		Nodes: []Node{
			// A condition with only a yes branch and a next fallback; unreachable nodes are allowed.
			{ID: "c", Type: NodeCondition, Condition: &Condition{Operator: OperatorContactProperty, Key: "first_name", Comparator: Has}, Yes: "m", Next: "d"},
			{ID: "m", Type: NodeSendEmail, Email: &Email{Subject: "s", Body: "b", From: "Lark <hello@lark.dev>"}},
			{ID: "d", Type: NodeDelay, Duration: "365d"},
			{ID: "island", Type: NodeDelay, Duration: "1w", Next: "m"},
			{ID: "same", Type: NodeCondition, Condition: &Condition{Operator: OperatorEventKey, Key: "x", Comparator: Equals, Value: nil}, Yes: "m", No: "m"},
		},
	}
	if err := Validate(d, nil); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30m", 30 * time.Minute, true},
		{"2h", 2 * time.Hour, true},
		{"3d", 72 * time.Hour, true},
		{"45s", 45 * time.Second, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"365d", MaxDelay, true},
		{"366d", 0, false},
		{"99999999999999999999h", 0, false},
		{"0m", 0, false},
		{"-5m", 0, false},
		{"1.5h", 0, false},
		{"1h30m", 0, false},
		{"h", 0, false},
		{"", 0, false},
		{"5", 0, false},
		{"5y", 0, false},
		{"5 m", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadDuration) {
			t.Errorf("ParseDuration(%q) error %v does not wrap ErrBadDuration", tt.in, err)
		}
	}
}
