package run

import (
	"errors"
	"fmt"
	"time"

	"github.com/larkhq/lark/domain/automation"
)

// DefaultMaxEmailAttempts is the policy used when Start gives none.
const DefaultMaxEmailAttempts = 5

// Command is an input to [Decider.Decide]: [Start], [EmailResult] or [TimerFired].
type Command interface{ isCommand() }

// Start begins a run. The process manager fills it from the stored custom
// event, the automation version that matched and the contact as of that
// event; At is its own clock, recorded for information only.
type Start struct {
	RunID             string
	WorkspaceID       string
	AutomationID      string
	AutomationVersion int
	Definition        automation.Definition
	Trigger           Trigger
	Contact           automation.Contact
	ContactID         string
	// Policy is recorded in RunStarted; zero fields take defaults.
	Policy Policy
	At     time.Time
}

// EmailResult is the email worker's report for one attempt: Err empty means
// the relay accepted the message at At.
type EmailResult struct {
	Node      string
	MessageID string
	Attempt   int
	At        time.Time
	Err       string
	Retryable bool
}

// TimerFired is the timer worker's report that the delay at Node, due at
// Due, fired at At (at or after Due).
type TimerFired struct {
	Node string
	Due  time.Time
	At   time.Time
}

func (Start) isCommand()       {}
func (EmailResult) isCommand() {}
func (TimerFired) isCommand()  {}

// Errors returned by Decide. Callers may drop ErrUnexpectedInput (a
// duplicate or stale worker report) after logging it.
var (
	ErrAlreadyStarted  = errors.New("run already started")
	ErrNotStarted      = errors.New("run not started")
	ErrEnded           = errors.New("run has ended")
	ErrUnexpectedInput = errors.New("run is not waiting for this input")
	ErrTimerEarly      = errors.New("timer fired before its due time")
	ErrInvalidCommand  = errors.New("invalid command")
	ErrNoRenderer      = errors.New("decider has no RenderFunc")
)

// RenderFunc renders a Liquid template with the given scope. It must be
// deterministic (adapters/liquid's Engine.Render is).
type RenderFunc func(src string, scope map[string]any) (string, error)

// Decider decides a run's next events. Its only dependency is the template
// renderer, a pure function; it holds no other state.
type Decider struct {
	RenderFunc RenderFunc
}

// Decide returns the events that follow from cmd in state s, stepping
// through condition nodes at once and stopping at a send_email node (the
// email is queued, rendered), at a delay node (the timer is started), or at
// the end of the path (RunCompleted). Problems inside the run (a template
// that fails to render, a node missing from a snapshot, a retryable email
// failure out of attempts) are decided as RunFailed, not returned as errors;
// errors are for commands that do not fit the state.
func (d Decider) Decide(s State, cmd Command) ([]Event, error) {
	if d.RenderFunc == nil {
		return nil, ErrNoRenderer
	}
	switch c := cmd.(type) {
	case Start:
		if s.Status != StatusNew {
			return nil, fmt.Errorf("start run %s: %w", c.RunID, ErrAlreadyStarted)
		}
		if c.RunID == "" || c.WorkspaceID == "" || c.AutomationID == "" {
			return nil, fmt.Errorf("start: run, workspace and automation ids are required: %w", ErrInvalidCommand)
		}
		policy := c.Policy
		if policy.MaxEmailAttempts <= 0 {
			policy.MaxEmailAttempts = DefaultMaxEmailAttempts
		}
		trig := c.Trigger
		trig.ReceivedAt = trig.ReceivedAt.UTC()
		started := RunStarted{
			Header:       Header{RunID: c.RunID, WorkspaceID: c.WorkspaceID},
			AutomationID: c.AutomationID, AutomationVersion: c.AutomationVersion,
			Definition: c.Definition, Trigger: trig, Contact: c.Contact, ContactID: c.ContactID,
			Policy: policy, At: c.At.UTC(),
		}
		return d.advance(s, []Event{started}), nil

	case EmailResult:
		if err := checkLive(s); err != nil {
			return nil, err
		}
		w := s.Awaiting
		if w.Kind != AwaitEmail || w.Node != c.Node || w.MessageID != c.MessageID || w.Attempt != c.Attempt {
			return nil, fmt.Errorf("email result for %s attempt %d, awaiting %+v: %w", c.Node, c.Attempt, w, ErrUnexpectedInput)
		}
		if c.Err == "" {
			return d.advance(s, []Event{EmailSent{Header: s.Header, Node: c.Node, MessageID: c.MessageID, Attempt: c.Attempt, At: c.At.UTC()}}), nil
		}
		failed := EmailFailed{Header: s.Header, Node: c.Node, MessageID: c.MessageID, Attempt: c.Attempt, Error: c.Err, Retryable: c.Retryable, At: c.At.UTC()}
		if c.Retryable && c.Attempt < s.maxAttempts() {
			return []Event{failed}, nil
		}
		reason := "email failed: " + c.Err
		if c.Retryable {
			reason = fmt.Sprintf("email failed after %d attempts: %s", c.Attempt, c.Err)
		}
		return []Event{failed, RunFailed{Header: s.Header, Node: c.Node, Reason: reason, At: c.At.UTC()}}, nil

	case TimerFired:
		if err := checkLive(s); err != nil {
			return nil, err
		}
		w := s.Awaiting
		if w.Kind != AwaitTimer || w.Node != c.Node || !w.Due.Equal(c.Due) {
			return nil, fmt.Errorf("timer for %s due %v, awaiting %+v: %w", c.Node, c.Due, w, ErrUnexpectedInput)
		}
		if c.At.Before(w.Due) {
			return nil, fmt.Errorf("timer for %s fired at %v, due %v: %w", c.Node, c.At, w.Due, ErrTimerEarly)
		}
		return d.advance(s, []Event{DelayElapsed{Header: s.Header, Node: c.Node, Due: w.Due, FiredAt: c.At.UTC()}}), nil
	}
	return nil, fmt.Errorf("command %T: %w", cmd, ErrInvalidCommand)
}

func checkLive(s State) error {
	switch {
	case s.Status == StatusNew:
		return ErrNotStarted
	case s.Ended():
		return fmt.Errorf("run %s is %s: %w", s.RunID, s.Status, ErrEnded)
	}
	return nil
}

// advance folds evs into s and steps the run until it waits or ends.
func (d Decider) advance(s State, evs []Event) []Event {
	for _, e := range evs {
		s = Evolve(s, e)
	}
	limit := len(s.Definition.Nodes) + 1
	for steps := 0; s.Status == StatusRunning && s.Awaiting.Kind == AwaitNothing; steps++ {
		e := d.step(s, steps > limit)
		evs = append(evs, e)
		s = Evolve(s, e)
	}
	return evs
}

// step decides the event for the node at the cursor.
func (d Decider) step(s State, overLimit bool) Event {
	fail := func(node, reason string) Event {
		return RunFailed{Header: s.Header, Node: node, Reason: reason, At: s.Clock}
	}
	if s.Cursor == "" {
		return RunCompleted{Header: s.Header, At: s.Clock}
	}
	if overLimit {
		return fail(s.Cursor, "too many steps without waiting: the definition has a cycle")
	}
	n, ok := s.node(s.Cursor)
	if !ok {
		return fail(s.Cursor, fmt.Sprintf("node %q is not in automation version %d", s.Cursor, s.AutomationVersion))
	}
	switch n.Type {
	case automation.NodeCondition:
		if n.Condition == nil {
			return fail(n.ID, "condition node without a condition")
		}
		ev, err := automation.Evaluate(*n.Condition, automation.Facts{Event: s.Trigger.Properties, Contact: s.Contact})
		if err != nil {
			return fail(n.ID, "evaluate condition: "+err.Error())
		}
		branch, next := "no", n.No
		if ev.Result {
			branch, next = "yes", n.Yes
		}
		if next == "" {
			next = n.Next
		}
		return ConditionEvaluated{Header: s.Header, Node: n.ID, Evaluation: ev, Branch: branch, Next: next}
	case automation.NodeSendEmail:
		if n.Email == nil {
			return fail(n.ID, "send_email node without an email")
		}
		if s.Contact.EmailAddress == "" {
			return fail(n.ID, "the contact has no email address")
		}
		scope := Scope(s)
		subject, err := d.RenderFunc(n.Email.Subject, scope)
		if err != nil {
			return fail(n.ID, "render subject: "+err.Error())
		}
		body, err := d.RenderFunc(n.Email.Body, scope)
		if err != nil {
			return fail(n.ID, "render body: "+err.Error())
		}
		return EmailQueued{Header: s.Header, Node: n.ID, MessageID: MessageID(s.RunID, n.ID),
			To: s.Contact.EmailAddress, From: n.Email.From, Subject: subject, Body: body, At: s.Clock}
	case automation.NodeDelay:
		dur, err := automation.ParseDuration(n.Duration)
		if err != nil {
			return fail(n.ID, err.Error())
		}
		return DelayStarted{Header: s.Header, Node: n.ID, Duration: n.Duration, Due: s.Clock.Add(dur)}
	}
	return fail(n.ID, fmt.Sprintf("unknown node type %q", n.Type))
}

// Scope is what an email's templates see (SPEC §2.4): contact (its custom
// properties, with email_address, first_name and last_name on top; empty
// names are left out so that `default` applies), event (the trigger's
// properties) and event_meta (name, id, received_at as a time.Time). The
// maps are fresh at the top level; nested values are shared and must not be
// modified by the renderer.
func Scope(s State) map[string]any {
	contact := make(map[string]any, len(s.Contact.Properties)+3)
	for k, v := range s.Contact.Properties {
		contact[k] = v
	}
	for k, v := range map[string]string{"email_address": s.Contact.EmailAddress, "first_name": s.Contact.FirstName, "last_name": s.Contact.LastName} {
		if v != "" {
			contact[k] = v
		} else {
			delete(contact, k)
		}
	}
	event := make(map[string]any, len(s.Trigger.Properties))
	for k, v := range s.Trigger.Properties {
		event[k] = v
	}
	return map[string]any{
		"contact": contact,
		"event":   event,
		"event_meta": map[string]any{
			"name":        s.Trigger.EventName,
			"id":          s.Trigger.EventID,
			"received_at": s.Trigger.ReceivedAt,
		},
	}
}
