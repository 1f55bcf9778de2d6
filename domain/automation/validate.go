package automation

import (
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits of a definition, enforced by [Validate].
const (
	// MaxNodes bounds the graph size (a 1,000-step run needs 1,000 nodes).
	MaxNodes = 5000
	// MaxEventNameLen matches the ingestion limit on event names (SPEC §2.1).
	MaxEventNameLen = 255
	// MaxDelay is the longest delay a node may ask for.
	MaxDelay = 365 * 24 * time.Hour
	// MaxTemplateLen bounds a subject or body template, in bytes.
	MaxTemplateLen = 256 << 10
)

// ValidationError says what is wrong with a definition and where: Node is
// the id of the node at fault ("" for top-level fields), Field the JSON field
// relative to that node (or to the definition when Node is ""), Message a
// human explanation. The HTTP API maps it to 400 invalid_automation.
type ValidationError struct {
	Node    string
	Field   string
	Message string
	// Err is the underlying cause, when there is one (a template error).
	Err error
}

func (e *ValidationError) Error() string {
	switch {
	case e.Node != "" && e.Field != "":
		return fmt.Sprintf("node %q: %s: %s", e.Node, e.Field, e.Message)
	case e.Node != "":
		return fmt.Sprintf("node %q: %s", e.Node, e.Message)
	case e.Field != "":
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Unwrap returns the cause, so errors.Is/As see through to template errors.
func (e *ValidationError) Unwrap() error { return e.Err }

// CheckTemplateFunc parses a template and reports why it does not parse.
type CheckTemplateFunc func(src string) error

// Validate checks a definition as SPEC §2.4 requires and returns the first
// problem found as a *ValidationError (nodes are checked in order, so the
// answer is stable): trigger type and event name, name, start, unique ids,
// known node types, operators and comparators, comparator values, required
// fields, parsable templates (through checkTemplate; nil skips template
// checks), durations, edges that point at existing nodes, and no cycles.
//
// Nodes not reachable from start are allowed (a draft may hold them) but
// are validated like the others.
func Validate(def Definition, checkTemplate CheckTemplateFunc) error {
	if def.Name == "" {
		return &ValidationError{Field: "name", Message: "is required"}
	}
	if def.Trigger.Type != TriggerCustomEvent {
		if def.Trigger.Type == "" {
			return &ValidationError{Field: "trigger.type", Message: "is required (custom_event)"}
		}
		return &ValidationError{Field: "trigger.type", Message: fmt.Sprintf("unknown trigger type %q (want custom_event)", def.Trigger.Type)}
	}
	if def.Trigger.EventName == "" {
		return &ValidationError{Field: "trigger.event_name", Message: "is required"}
	}
	if len(def.Trigger.EventName) > MaxEventNameLen {
		return &ValidationError{Field: "trigger.event_name", Message: fmt.Sprintf("longer than %d bytes", MaxEventNameLen)}
	}
	if !utf8.ValidString(def.Trigger.EventName) {
		return &ValidationError{Field: "trigger.event_name", Message: "is not valid UTF-8"}
	}
	if len(def.Nodes) == 0 {
		return &ValidationError{Field: "nodes", Message: "at least one node is required"}
	}
	if len(def.Nodes) > MaxNodes {
		return &ValidationError{Field: "nodes", Message: fmt.Sprintf("more than %d nodes", MaxNodes)}
	}
	index := make(map[string]int, len(def.Nodes))
	for i, n := range def.Nodes {
		if n.ID == "" {
			return &ValidationError{Field: fmt.Sprintf("nodes[%d].id", i), Message: "is required"}
		}
		if _, dup := index[n.ID]; dup {
			return &ValidationError{Node: n.ID, Field: "id", Message: "duplicate node id"}
		}
		index[n.ID] = i
	}
	if def.Start == "" {
		return &ValidationError{Field: "start", Message: "is required"}
	}
	if _, ok := index[def.Start]; !ok {
		return &ValidationError{Field: "start", Message: fmt.Sprintf("names unknown node %q", def.Start)}
	}
	for _, n := range def.Nodes {
		if err := validateNode(n, index, checkTemplate); err != nil {
			return err
		}
	}
	return findCycle(def, index)
}

func validateNode(n Node, index map[string]int, checkTemplate CheckTemplateFunc) error {
	edge := func(field, target string) error {
		if target == "" {
			return nil
		}
		if _, ok := index[target]; !ok {
			return &ValidationError{Node: n.ID, Field: field, Message: fmt.Sprintf("points at unknown node %q", target)}
		}
		return nil
	}
	switch n.Type {
	case NodeCondition:
		if err := validateCondition(n); err != nil {
			return err
		}
		if err := edge("yes", n.Yes); err != nil {
			return err
		}
		if err := edge("no", n.No); err != nil {
			return err
		}
	case NodeSendEmail:
		if n.Email == nil {
			return &ValidationError{Node: n.ID, Field: "email", Message: "is required for a send_email node"}
		}
		for _, t := range []struct{ field, src string }{{"email.subject", n.Email.Subject}, {"email.body", n.Email.Body}} {
			if t.src == "" {
				return &ValidationError{Node: n.ID, Field: t.field, Message: "is required"}
			}
			if len(t.src) > MaxTemplateLen {
				return &ValidationError{Node: n.ID, Field: t.field, Message: fmt.Sprintf("longer than %d bytes", MaxTemplateLen)}
			}
			if checkTemplate != nil {
				if err := checkTemplate(t.src); err != nil {
					return &ValidationError{Node: n.ID, Field: t.field, Message: fmt.Sprintf("template does not parse: %v", err), Err: err}
				}
			}
		}
		if n.Email.From != "" {
			if _, err := mail.ParseAddress(n.Email.From); err != nil {
				return &ValidationError{Node: n.ID, Field: "email.from", Message: fmt.Sprintf("not an email address: %v", err), Err: err}
			}
		}
	case NodeDelay:
		if n.Duration == "" {
			return &ValidationError{Node: n.ID, Field: "duration", Message: "is required for a delay node"}
		}
		if _, err := ParseDuration(n.Duration); err != nil {
			return &ValidationError{Node: n.ID, Field: "duration", Message: err.Error(), Err: err}
		}
	case "":
		return &ValidationError{Node: n.ID, Field: "type", Message: "is required (condition, send_email or delay)"}
	default:
		return &ValidationError{Node: n.ID, Field: "type", Message: fmt.Sprintf("unknown node type %q (want condition, send_email or delay)", n.Type)}
	}
	return edge("next", n.Next)
}

func validateCondition(n Node) error {
	c := n.Condition
	if c == nil {
		return &ValidationError{Node: n.ID, Field: "condition", Message: "is required for a condition node"}
	}
	switch c.Operator {
	case OperatorEventKey, OperatorContactProperty:
	case "":
		return &ValidationError{Node: n.ID, Field: "condition.operator", Message: "is required (event_key or contact_property)"}
	default:
		return &ValidationError{Node: n.ID, Field: "condition.operator", Message: fmt.Sprintf("unknown operator %q (want event_key or contact_property)", c.Operator)}
	}
	if c.Key == "" {
		return &ValidationError{Node: n.ID, Field: "condition.key", Message: "is required"}
	}
	if c.Comparator == "" {
		return &ValidationError{Node: n.ID, Field: "condition.comparator", Message: "is required"}
	}
	if !knownComparator(c.Comparator) {
		return &ValidationError{Node: n.ID, Field: "condition.comparator", Message: fmt.Sprintf("unknown comparator %q", c.Comparator)}
	}
	switch c.Comparator {
	case GreaterThan, LessThan, GreaterOrEqual, LessOrEqual:
		if _, ok := toDecimal(c.Value, true); !ok {
			return &ValidationError{Node: n.ID, Field: "condition.value", Message: fmt.Sprintf("%s needs a number (or numeric string)", c.Comparator)}
		}
	case Contains:
		switch c.Value.(type) {
		case nil, []any, map[string]any:
			return &ValidationError{Node: n.ID, Field: "condition.value", Message: "contains needs a string, number or boolean"}
		}
	case Equals, NotEquals:
		if !isJSONValue(c.Value) {
			return &ValidationError{Node: n.ID, Field: "condition.value", Message: fmt.Sprintf("unsupported value type %T", c.Value)}
		}
	}
	return nil
}

// findCycle reports a node that lies on a cycle, by iterative depth-first
// search over every node (so unreachable cycles are found too).
func findCycle(def Definition, index map[string]int) error {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(def.Nodes))
	type frame struct {
		node  int
		edges []string
		next  int
	}
	for root := range def.Nodes {
		if color[root] != white {
			continue
		}
		stack := []frame{{node: root, edges: successors(def.Nodes[root])}}
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(top.edges) {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			target := index[top.edges[top.next]]
			top.next++
			switch color[target] {
			case grey:
				from := def.Nodes[top.node].ID
				return &ValidationError{Node: from, Field: edgeField(def.Nodes[top.node], def.Nodes[target].ID),
					Message: fmt.Sprintf("creates a cycle through %q", def.Nodes[target].ID)}
			case white:
				color[target] = grey
				stack = append(stack, frame{node: target, edges: successors(def.Nodes[target])})
			}
		}
	}
	return nil
}

func successors(n Node) []string {
	var out []string
	if n.Type == NodeCondition {
		for _, s := range []string{n.Yes, n.No} {
			if s != "" {
				out = append(out, s)
			}
		}
	}
	if n.Next != "" {
		out = append(out, n.Next)
	}
	return out
}

func edgeField(n Node, target string) string {
	switch {
	case n.Type == NodeCondition && n.Yes == target:
		return "yes"
	case n.Type == NodeCondition && n.No == target:
		return "no"
	}
	return "next"
}

// ErrBadDuration is wrapped by [ParseDuration]'s errors.
var ErrBadDuration = errors.New("invalid duration")

// ParseDuration reads a delay duration: a positive integer followed by one
// unit — s (seconds), m (minutes), h (hours), d (days of 24 hours) or w
// (weeks) — such as "30m", "2h", "3d"; at most [MaxDelay].
func ParseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("%q: want a number and a unit (s, m, h, d, w) such as 30m: %w", s, ErrBadDuration)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, fmt.Errorf("%q: unknown unit (want s, m, h, d or w): %w", s, ErrBadDuration)
	}
	digits := s[:len(s)-1]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q: want a whole number before the unit: %w", s, ErrBadDuration)
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(MaxDelay/unit) {
		return 0, fmt.Errorf("%q: longer than %v: %w", s, MaxDelay, ErrBadDuration)
	}
	if n == 0 {
		return 0, fmt.Errorf("%q: must be positive: %w", s, ErrBadDuration)
	}
	return time.Duration(n) * unit, nil
}
