// Package run is the automation run state machine: one contact travelling
// through one automation version, started by one custom event.
//
// It is pure and replayable. [Decider.Decide] turns a command (Start,
// EmailResult, TimerFired) and the current [State] into events; [Evolve]
// folds an event into the state. Time and ids come in as data: a run's clock
// is the trigger event's received_at, then the recorded time of each
// external input (an email's sent time, a delay's due time), so a delay's due
// time is the same whenever the history is replayed.
//
// Where it sits: the process manager in commands/ reads the matching
// automation and the contact, derives the run id with [RunID], calls Decide
// with [Start] and appends the events to stream run-{id} with expected
// revision "no stream"; it then looks at [State.Awaiting]: an email waiting
// (an EmailQueued event carries the rendered subject and body and the
// deterministic Message-ID, see [MessageID]) goes to the sender worker, which
// sends it at least once under that id and reports an [EmailResult]; a delay
// waiting (DelayStarted with its due time) goes to the timer worker, which
// reports [TimerFired] at or after the due time. Each result is decided
// against the state folded from the run stream and appended with the
// stream's exact expected revision. A duplicate or stale result is refused
// with [ErrUnexpectedInput] and can be dropped.
//
// Rendering happens here, at decide time, through the Decider's RenderFunc
// (adapters/liquid provides it), so what is queued is exactly what is sent
// on every retry, and replay re-renders and compares.
//
// [Replay] re-decides every recorded input from the recorded history and
// compares with the recorded decisions; explain (SPEC §2.6) reports
// replay_verified from it.
package run

import (
	"time"

	"github.com/larkhq/lark/domain/automation"
)

// SchemaVersion is the version of the run events' JSON payloads, recorded
// in each event's metadata by the event-store adapter.
const SchemaVersion = 1

// Event type names, used as EventStoreDB event types in run-{id} streams.
const (
	TypeRunStarted         = "RunStarted"
	TypeConditionEvaluated = "ConditionEvaluated"
	TypeEmailQueued        = "EmailQueued"
	TypeEmailSent          = "EmailSent"
	TypeEmailFailed        = "EmailFailed"
	TypeDelayStarted       = "DelayStarted"
	TypeDelayElapsed       = "DelayElapsed"
	TypeRunCompleted       = "RunCompleted"
	TypeRunFailed          = "RunFailed"
)

// Event is one recorded fact of a run. Every event carries the run and
// workspace ids.
type Event interface {
	// EventType is the event's type name (one of the Type* constants).
	EventType() string
	// RunHeader returns the run and workspace ids.
	RunHeader() Header
}

// Header is what every run event records about where it belongs.
type Header struct {
	RunID       string `json:"run_id"`
	WorkspaceID string `json:"workspace_id"`
}

// RunHeader returns h itself, so that embedding Header satisfies [Event].
func (h Header) RunHeader() Header { return h }

// Trigger is the custom event that started a run, as recorded in RunStarted.
// Properties hold json.Number for numbers.
type Trigger struct {
	EventID    string         `json:"event_id"`
	EventName  string         `json:"event_name"`
	Properties map[string]any `json:"properties"`
	ReceivedAt time.Time      `json:"received_at"`
}

// Policy is the run's fixed configuration, recorded at start so that a later
// change of configuration does not change how an old run is replayed.
type Policy struct {
	// MaxEmailAttempts is how many times a retryable email failure is tried
	// before the run fails.
	MaxEmailAttempts int `json:"max_email_attempts"`
}

// RunStarted opens a run: which automation version it runs (with the full
// definition, so replay needs nothing else), the trigger event and the
// contact as they were at that point of history.
type RunStarted struct {
	Header
	AutomationID      string                `json:"automation_id"`
	AutomationVersion int                   `json:"automation_version"`
	Definition        automation.Definition `json:"definition"`
	Trigger           Trigger               `json:"trigger"`
	Contact           automation.Contact    `json:"contact"`
	ContactID         string                `json:"contact_id,omitempty"`
	Policy            Policy                `json:"policy"`
	// At is when the process manager started the run (informational; the
	// run's clock starts at Trigger.ReceivedAt).
	At time.Time `json:"at"`
}

// ConditionEvaluated records a condition node's inputs and outcome: the
// evaluation (value seen, comparator, expected value, result), the branch
// taken ("yes" or "no") and the node it leads to ("" ends the run).
type ConditionEvaluated struct {
	Header
	Node       string                `json:"node"`
	Evaluation automation.Evaluation `json:"evaluation"`
	Branch     string                `json:"branch"`
	Next       string                `json:"next"`
}

// EmailQueued records the intention to send an email: the rendered message
// and the Message-ID every attempt uses. From is "" when the node has no
// from (the sender uses LARK_MAIL_FROM).
type EmailQueued struct {
	Header
	Node      string    `json:"node"`
	MessageID string    `json:"message_id"`
	To        string    `json:"to"`
	From      string    `json:"from,omitempty"`
	Subject   string    `json:"subject"`
	Body      string    `json:"body"`
	At        time.Time `json:"at"`
}

// EmailSent records that the relay accepted the email.
type EmailSent struct {
	Header
	Node      string    `json:"node"`
	MessageID string    `json:"message_id"`
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
}

// EmailFailed records a failed attempt. When Retryable and attempts remain,
// the run keeps waiting for the next attempt; otherwise RunFailed follows.
type EmailFailed struct {
	Header
	Node      string    `json:"node"`
	MessageID string    `json:"message_id"`
	Attempt   int       `json:"attempt"`
	Error     string    `json:"error"`
	Retryable bool      `json:"retryable"`
	At        time.Time `json:"at"`
}

// DelayStarted records a delay node's timer: Due is the run's clock (from
// recorded history) plus the duration.
type DelayStarted struct {
	Header
	Node     string    `json:"node"`
	Duration string    `json:"duration"`
	Due      time.Time `json:"due"`
}

// DelayElapsed records that the timer fired. The run's clock moves to Due,
// not to FiredAt, so a late timer does not shift later delays.
type DelayElapsed struct {
	Header
	Node    string    `json:"node"`
	Due     time.Time `json:"due"`
	FiredAt time.Time `json:"fired_at"`
}

// RunCompleted records the normal end of a run, after its last node.
type RunCompleted struct {
	Header
	At time.Time `json:"at"`
}

// RunFailed records that the run stopped on an error at Node.
type RunFailed struct {
	Header
	Node   string    `json:"node,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// EventType implementations.

func (RunStarted) EventType() string         { return TypeRunStarted }
func (ConditionEvaluated) EventType() string { return TypeConditionEvaluated }
func (EmailQueued) EventType() string        { return TypeEmailQueued }
func (EmailSent) EventType() string          { return TypeEmailSent }
func (EmailFailed) EventType() string        { return TypeEmailFailed }
func (DelayStarted) EventType() string       { return TypeDelayStarted }
func (DelayElapsed) EventType() string       { return TypeDelayElapsed }
func (RunCompleted) EventType() string       { return TypeRunCompleted }
func (RunFailed) EventType() string          { return TypeRunFailed }
