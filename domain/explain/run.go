package explain

import (
	"fmt"
	"time"

	"github.com/larkhq/lark/domain/run"
)

// Step is one recorded event of a run with its inputs and outputs.
type Step struct {
	// Seq is the event's revision in the run stream.
	Seq     int            `json:"seq"`
	Type    string         `json:"type"`
	Node    string         `json:"node,omitempty"`
	At      *time.Time     `json:"at,omitempty"`
	Inputs  map[string]any `json:"inputs"`
	Outputs map[string]any `json:"outputs"`
	// Replay is "verified" when replay reproduced this event, "mismatch"
	// when it did not (ReplayMessage says how).
	Replay        string `json:"replay"`
	ReplayMessage string `json:"replay_message,omitempty"`
}

// RunMismatch is a step whose recorded decision replay did not reproduce.
type RunMismatch struct {
	Step     int    `json:"step"` // Seq of the step
	Node     string `json:"node,omitempty"`
	Type     string `json:"type,omitempty"`
	Message  string `json:"message"`
	Recorded string `json:"recorded,omitempty"`
	Replayed string `json:"replayed,omitempty"`
}

// RunExplanation is a run's every step, and whether replaying its recorded
// history through the current state machine reproduces every decision.
type RunExplanation struct {
	RunID             string        `json:"run_id"`
	WorkspaceID       string        `json:"workspace_id"`
	AutomationID      string        `json:"automation_id"`
	AutomationVersion int           `json:"automation_version"`
	TriggerEventID    string        `json:"trigger_event_id"`
	TriggerEventName  string        `json:"trigger_event_name"`
	EmailAddress      string        `json:"email_address"`
	Status            run.Status    `json:"status"`
	Steps             []Step        `json:"steps"`
	ReplayVerified    bool          `json:"replay_verified"`
	Mismatches        []RunMismatch `json:"mismatches"`
}

// Run explains a run's recorded history (stream order): it describes each
// step and replays the history through d ([run.Decider.Replay]), marking
// the steps whose recorded decision differs from the replayed one.
func Run(d run.Decider, history []run.Event) RunExplanation {
	s, mism := d.Replay(history)
	x := RunExplanation{RunID: s.RunID, WorkspaceID: s.WorkspaceID, AutomationID: s.AutomationID,
		AutomationVersion: s.AutomationVersion, TriggerEventID: s.Trigger.EventID, TriggerEventName: s.Trigger.EventName,
		EmailAddress: s.Contact.EmailAddress, Status: s.Status,
		Steps: make([]Step, 0, len(history)), ReplayVerified: len(mism) == 0, Mismatches: []RunMismatch{}}
	bad := make(map[int]run.Mismatch, len(mism))
	for _, m := range mism {
		bad[m.Index] = m
		x.Mismatches = append(x.Mismatches, RunMismatch{Step: m.Index, Node: m.Node, Type: m.Type, Message: m.Message,
			Recorded: m.Recorded, Replayed: m.Replayed})
	}
	for i, e := range history {
		st := describe(i, e)
		st.Replay = "verified"
		if m, ok := bad[i]; ok {
			st.Replay, st.ReplayMessage = "mismatch", m.Message
		}
		x.Steps = append(x.Steps, st)
	}
	// A mismatch may point past the recorded history (replay decides more
	// than was recorded): name it on the last step too.
	for _, m := range mism {
		if m.Index >= len(history) && len(x.Steps) > 0 {
			last := &x.Steps[len(x.Steps)-1]
			last.Replay, last.ReplayMessage = "mismatch", m.Message
		}
	}
	return x
}

func ptime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// describe turns one event into a step.
func describe(seq int, e run.Event) Step {
	st := Step{Seq: seq, Type: e.EventType(), Inputs: map[string]any{}, Outputs: map[string]any{}}
	switch e := e.(type) {
	case run.RunStarted:
		st.Node, st.At = e.Definition.Start, ptime(e.At)
		st.Inputs["automation_id"] = e.AutomationID
		st.Inputs["automation_version"] = e.AutomationVersion
		st.Inputs["trigger_event_id"] = e.Trigger.EventID
		st.Inputs["trigger_event_name"] = e.Trigger.EventName
		st.Inputs["event_properties"] = nonNilMap(e.Trigger.Properties)
		st.Inputs["received_at"] = e.Trigger.ReceivedAt
		st.Inputs["contact"] = e.Contact
		st.Inputs["max_email_attempts"] = e.Policy.MaxEmailAttempts
		st.Outputs["start_node"] = e.Definition.Start
	case run.ConditionEvaluated:
		st.Node = e.Node
		ev := e.Evaluation
		st.Inputs["operator"] = ev.Operator
		st.Inputs["key"] = ev.Key
		st.Inputs["comparator"] = ev.Comparator
		st.Inputs["expected"] = ev.Expected
		st.Inputs["found"] = ev.Found
		st.Inputs["value_seen"] = ev.Seen
		st.Outputs["result"] = ev.Result
		st.Outputs["branch"] = e.Branch
		st.Outputs["next"] = e.Next
	case run.EmailQueued:
		st.Node, st.At = e.Node, ptime(e.At)
		st.Inputs["to"] = e.To
		if e.From != "" {
			st.Inputs["from"] = e.From
		}
		st.Outputs["subject"] = e.Subject
		st.Outputs["body"] = e.Body
		st.Outputs["message_id"] = e.MessageID
	case run.EmailSent:
		st.Node, st.At = e.Node, ptime(e.At)
		st.Inputs["message_id"] = e.MessageID
		st.Inputs["attempt"] = e.Attempt
		st.Outputs["accepted_at"] = e.At
	case run.EmailFailed:
		st.Node, st.At = e.Node, ptime(e.At)
		st.Inputs["message_id"] = e.MessageID
		st.Inputs["attempt"] = e.Attempt
		st.Inputs["error"] = e.Error
		st.Inputs["retryable"] = e.Retryable
	case run.DelayStarted:
		st.Node = e.Node
		st.Inputs["duration"] = e.Duration
		st.Outputs["due"] = e.Due
	case run.DelayElapsed:
		st.Node, st.At = e.Node, ptime(e.FiredAt)
		st.Inputs["due"] = e.Due
		st.Inputs["fired_at"] = e.FiredAt
	case run.RunCompleted:
		st.At = ptime(e.At)
	case run.RunFailed:
		st.Node, st.At = e.Node, ptime(e.At)
		st.Outputs["reason"] = e.Reason
	default:
		st.Outputs["note"] = fmt.Sprintf("unknown event %T", e)
	}
	return st
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
