// Package automation holds the automation definition of SPEC §2.4 — a trigger
// and a graph of condition, send_email and delay nodes — its validation, and
// the condition evaluator that decides a condition node's branch.
//
// It sits at the centre of the write side: the HTTP API decodes a definition
// with [Parse] (or encoding/json) and checks it with [Validate] before
// commands/ appends AutomationCreated/AutomationUpdated; domain/run snapshots
// the definition into each run and calls [Evaluate] at every condition node.
//
// The package is pure (stdlib only). Template checking is passed in as a
// function so that the Liquid engine stays in adapters/liquid.
//
// Numbers: condition values are decoded with json.Decoder.UseNumber (see
// [Condition.UnmarshalJSON]), so a definition round-trips exactly and
// 99.99 stays the decimal 99.99. Event and contact properties handed to
// [Evaluate] should be decoded the same way; float64 and Go integer types
// are accepted too (a float64 is read as its shortest decimal form).
package automation

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// TriggerCustomEvent is the only trigger type: a custom event with a given name.
const TriggerCustomEvent = "custom_event"

// NodeType names what a node does.
type NodeType string

// The node types of SPEC §2.4.
const (
	NodeCondition NodeType = "condition"
	NodeSendEmail NodeType = "send_email"
	NodeDelay     NodeType = "delay"
)

// Operator says where a condition looks up its key.
type Operator string

// The condition operators of SPEC §2.4.
const (
	// OperatorEventKey looks the key up in the triggering event's properties.
	OperatorEventKey Operator = "event_key"
	// OperatorContactProperty looks the key up on the contact: first_name,
	// last_name, email_address, or a custom property.
	OperatorContactProperty Operator = "contact_property"
)

// Comparator is how a condition compares the value it sees with its value.
type Comparator string

// The comparators of SPEC §2.4, exactly.
const (
	Equals         Comparator = "equals"
	NotEquals      Comparator = "not_equals"
	Has            Comparator = "has"
	NotHas         Comparator = "not_has"
	GreaterThan    Comparator = "greater_than"
	LessThan       Comparator = "less_than"
	GreaterOrEqual Comparator = "greater_or_equal"
	LessOrEqual    Comparator = "less_or_equal"
	Contains       Comparator = "contains"
)

// Comparators lists every known comparator, in SPEC order.
func Comparators() []Comparator {
	return []Comparator{Equals, NotEquals, Has, NotHas, GreaterThan, LessThan, GreaterOrEqual, LessOrEqual, Contains}
}

func knownComparator(c Comparator) bool {
	for _, k := range Comparators() {
		if c == k {
			return true
		}
	}
	return false
}

// Definition is one version of an automation as the API accepts it (SPEC §2.4).
type Definition struct {
	Name    string  `json:"name"`
	Trigger Trigger `json:"trigger"`
	Start   string  `json:"start"`
	Nodes   []Node  `json:"nodes"`
}

// Trigger says which events start a run.
type Trigger struct {
	Type      string `json:"type"`
	EventName string `json:"event_name"`
}

// Node is one step of the graph. Which fields matter depends on Type:
// Condition/Yes/No for condition, Email for send_email, Duration for delay.
// Next is the following node of any type; on a condition node it is the
// fallback for a branch (yes or no) that is not given. A step with nowhere to
// go ends the run.
type Node struct {
	ID        string     `json:"id"`
	Type      NodeType   `json:"type"`
	Condition *Condition `json:"condition,omitempty"`
	Yes       string     `json:"yes,omitempty"`
	No        string     `json:"no,omitempty"`
	Email     *Email     `json:"email,omitempty"`
	Duration  string     `json:"duration,omitempty"`
	Next      string     `json:"next,omitempty"`
}

// Condition is a condition node's test.
type Condition struct {
	Operator   Operator   `json:"operator"`
	Key        string     `json:"key"`
	Comparator Comparator `json:"comparator"`
	// Value is what the seen value is compared with: a string, json.Number,
	// bool, nil, []any or map[string]any once decoded. Ignored by has/not_has.
	Value any `json:"value"`
}

// UnmarshalJSON decodes a condition keeping numbers exact (json.Number),
// whatever decoder the caller used.
func (c *Condition) UnmarshalJSON(data []byte) error {
	var raw struct {
		Operator   Operator        `json:"operator"`
		Key        string          `json:"key"`
		Comparator Comparator      `json:"comparator"`
		Value      json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*c = Condition{Operator: raw.Operator, Key: raw.Key, Comparator: raw.Comparator}
	if len(raw.Value) > 0 {
		v, err := decodeValue(raw.Value)
		if err != nil {
			return fmt.Errorf("condition value: %w", err)
		}
		c.Value = v
	}
	return nil
}

// Email is a send_email node's message. Subject and Body are Liquid
// templates; From, when set, overrides the configured sender.
type Email struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
	From    string `json:"from,omitempty"`
}

// Node returns the node with the given id.
func (d Definition) Node(id string) (Node, bool) {
	for _, n := range d.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Parse decodes a definition from JSON, keeping numbers exact. Unknown fields
// are ignored (SPEC §2). It does not validate; call [Validate].
func Parse(data []byte) (Definition, error) {
	var d Definition
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return Definition{}, fmt.Errorf("decode automation: %w", err)
	}
	if dec.More() {
		return Definition{}, fmt.Errorf("decode automation: trailing data after the JSON object")
	}
	return d, nil
}

// DecodeProperties decodes a JSON object of properties with numbers kept as
// json.Number, the form [Evaluate] and run snapshots expect.
func DecodeProperties(data []byte) (map[string]any, error) {
	v, err := decodeValue(data)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("properties: want a JSON object, got %T", v)
	}
	return m, nil
}

func decodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
