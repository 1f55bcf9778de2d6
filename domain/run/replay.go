package run

import (
	"encoding/json"
	"fmt"
)

// Mismatch is a recorded decision that the current code does not reproduce.
// Index is the event's position in the history (its stream revision), Node
// the node the step concerns ("" when none), Recorded and Replayed the
// events' JSON (either may be empty when one side has an event the other
// lacks), Message a human summary.
type Mismatch struct {
	Index    int    `json:"index"`
	Node     string `json:"node,omitempty"`
	Type     string `json:"type,omitempty"`
	Recorded string `json:"recorded,omitempty"`
	Replayed string `json:"replayed,omitempty"`
	Message  string `json:"message"`
}

// Replay re-decides a recorded run history and compares. The history splits
// into segments, each opened by an input event (RunStarted, EmailSent,
// EmailFailed, DelayElapsed — what a Start, EmailResult or TimerFired command
// produced) and followed by the decisions taken with it. For each segment
// the command is rebuilt from the input event, decided against the state
// folded from the recorded events before it, and the result compared event
// by event (as JSON) with the recorded segment. It returns the state folded
// from the recorded history and every mismatch (at most one per segment);
// no mismatches means replay_verified.
func (d Decider) Replay(history []Event) (State, []Mismatch) {
	var s State
	var out []Mismatch
	for i := 0; i < len(history); {
		in := history[i]
		j := i + 1
		for j < len(history) && !isInput(history[j]) {
			j++
		}
		cmd, ok := commandFor(in)
		if !ok {
			out = append(out, Mismatch{Index: i, Node: nodeOf(in), Type: in.EventType(),
				Recorded: jsonOf(in), Message: fmt.Sprintf("recorded %s has no input before it", in.EventType())})
		} else if got, err := d.Decide(s, cmd); err != nil {
			out = append(out, Mismatch{Index: i, Node: nodeOf(in), Type: in.EventType(),
				Recorded: jsonOf(in), Message: fmt.Sprintf("re-deciding %s: %v", in.EventType(), err)})
		} else if m, differ := compareSegment(i, history[i:j], got); differ {
			out = append(out, m)
		}
		for k := i; k < j; k++ {
			s = Evolve(s, history[k])
		}
		i = j
	}
	return s, out
}

func compareSegment(start int, recorded, replayed []Event) (Mismatch, bool) {
	n := max(len(recorded), len(replayed))
	for k := 0; k < n; k++ {
		var r, p Event
		if k < len(recorded) {
			r = recorded[k]
		}
		if k < len(replayed) {
			p = replayed[k]
		}
		rj, pj := jsonOf(r), jsonOf(p)
		if rj == pj && r != nil && p != nil && r.EventType() == p.EventType() {
			continue
		}
		m := Mismatch{Index: start + k, Recorded: rj, Replayed: pj}
		switch {
		case p == nil:
			m.Node, m.Type = nodeOf(r), r.EventType()
			m.Message = fmt.Sprintf("recorded %s at node %q, replay decides nothing more", r.EventType(), m.Node)
		case r == nil:
			m.Node, m.Type = nodeOf(p), p.EventType()
			m.Message = fmt.Sprintf("replay decides %s at node %q, not recorded", p.EventType(), m.Node)
		default:
			m.Node, m.Type = nodeOf(r), r.EventType()
			if m.Node == "" {
				m.Node = nodeOf(p)
			}
			if r.EventType() != p.EventType() {
				m.Message = fmt.Sprintf("recorded %s, replay decides %s at node %q", r.EventType(), p.EventType(), m.Node)
			} else {
				m.Message = fmt.Sprintf("%s at node %q differs from the replayed decision", r.EventType(), m.Node)
			}
		}
		return m, true
	}
	return Mismatch{}, false
}

func isInput(e Event) bool {
	switch e.(type) {
	case RunStarted, EmailSent, EmailFailed, DelayElapsed:
		return true
	}
	return false
}

// commandFor rebuilds the command that produced an input event.
func commandFor(e Event) (Command, bool) {
	switch e := e.(type) {
	case RunStarted:
		return Start{RunID: e.RunID, WorkspaceID: e.WorkspaceID, AutomationID: e.AutomationID,
			AutomationVersion: e.AutomationVersion, Definition: e.Definition, Trigger: e.Trigger,
			Contact: e.Contact, ContactID: e.ContactID, Policy: e.Policy, At: e.At}, true
	case EmailSent:
		return EmailResult{Node: e.Node, MessageID: e.MessageID, Attempt: e.Attempt, At: e.At}, true
	case EmailFailed:
		return EmailResult{Node: e.Node, MessageID: e.MessageID, Attempt: e.Attempt, At: e.At, Err: e.Error, Retryable: e.Retryable}, true
	case DelayElapsed:
		return TimerFired{Node: e.Node, Due: e.Due, At: e.FiredAt}, true
	}
	return nil, false
}

// nodeOf names the node an event concerns.
func nodeOf(e Event) string {
	switch e := e.(type) {
	case RunStarted:
		return e.Definition.Start
	case ConditionEvaluated:
		return e.Node
	case EmailQueued:
		return e.Node
	case EmailSent:
		return e.Node
	case EmailFailed:
		return e.Node
	case DelayStarted:
		return e.Node
	case DelayElapsed:
		return e.Node
	case RunFailed:
		return e.Node
	}
	return ""
}

func jsonOf(e Event) string {
	if e == nil {
		return ""
	}
	data, err := json.Marshal(e) // compact already
	if err != nil {
		return fmt.Sprintf("<unencodable %s: %v>", e.EventType(), err)
	}
	return string(data)
}
