package run

import (
	"time"

	"github.com/larkhq/lark/domain/automation"
)

// Status is a run's status as the API reports it (SPEC §2.5).
type Status string

// Run statuses. A run is running while it steps or while its email is being
// sent, waiting while a delay's timer is pending, and completed or failed at
// the end.
const (
	StatusNew       Status = ""
	StatusRunning   Status = "running"
	StatusWaiting   Status = "waiting"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// AwaitKind names the external input a run is waiting for.
type AwaitKind string

// What a run can wait for.
const (
	AwaitNothing AwaitKind = ""
	AwaitEmail   AwaitKind = "email"
	AwaitTimer   AwaitKind = "timer"
)

// Awaiting is the external input a run needs next: the email worker's
// result for MessageID's attempt Attempt, or the timer for Node at Due.
type Awaiting struct {
	Kind      AwaitKind `json:"kind"`
	Node      string    `json:"node,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Due       time.Time `json:"due,omitzero"`
}

// State is a run folded from its events by [Evolve].
type State struct {
	Header
	Status            Status
	AutomationID      string
	AutomationVersion int
	Definition        automation.Definition
	Trigger           Trigger
	Contact           automation.Contact
	ContactID         string
	Policy            Policy
	// Cursor is the node to execute next; "" once the path has ended.
	Cursor string
	// Clock is the run's time from recorded history: the trigger's
	// received_at, then each email's sent time and each delay's due time.
	Clock time.Time
	// Awaiting is the external input the run waits for, if any.
	Awaiting Awaiting
	// Events is how many events have been folded (the stream's revision + 1).
	Events int

	nodes map[string]int // node id → index in Definition.Nodes; shared, never mutated
}

// Ended reports whether the run has completed or failed.
func (s State) Ended() bool { return s.Status == StatusCompleted || s.Status == StatusFailed }

// node returns the definition node with the given id.
func (s State) node(id string) (automation.Node, bool) {
	if s.nodes != nil {
		i, ok := s.nodes[id]
		if !ok {
			return automation.Node{}, false
		}
		return s.Definition.Nodes[i], true
	}
	return s.Definition.Node(id)
}

// Evolve folds one event into the state. It never fails: an event that does
// not fit the state is folded as well as it can be (Replay reports it).
func Evolve(s State, e Event) State {
	s.Events++
	switch e := e.(type) {
	case RunStarted:
		s.Header = e.Header
		s.Status = StatusRunning
		s.AutomationID, s.AutomationVersion = e.AutomationID, e.AutomationVersion
		s.Definition = e.Definition
		s.Trigger = e.Trigger
		s.Contact, s.ContactID = e.Contact, e.ContactID
		s.Policy = e.Policy
		s.Cursor = e.Definition.Start
		s.Clock = e.Trigger.ReceivedAt.UTC()
		s.Awaiting = Awaiting{}
		s.nodes = make(map[string]int, len(e.Definition.Nodes))
		for i, n := range e.Definition.Nodes {
			if _, dup := s.nodes[n.ID]; !dup {
				s.nodes[n.ID] = i
			}
		}
	case ConditionEvaluated:
		s.Cursor = e.Next
	case EmailQueued:
		s.Status = StatusRunning
		s.Awaiting = Awaiting{Kind: AwaitEmail, Node: e.Node, MessageID: e.MessageID, Attempt: 1}
	case EmailSent:
		s.Awaiting = Awaiting{}
		s.Clock = e.At.UTC()
		s.Cursor = s.nextOf(e.Node)
	case EmailFailed:
		if e.Retryable && e.Attempt < s.maxAttempts() {
			s.Awaiting.Attempt = e.Attempt + 1
		} else {
			s.Awaiting = Awaiting{}
		}
	case DelayStarted:
		s.Status = StatusWaiting
		s.Awaiting = Awaiting{Kind: AwaitTimer, Node: e.Node, Due: e.Due.UTC()}
	case DelayElapsed:
		s.Status = StatusRunning
		s.Awaiting = Awaiting{}
		s.Clock = e.Due.UTC()
		s.Cursor = s.nextOf(e.Node)
	case RunCompleted:
		s.Status = StatusCompleted
		s.Cursor = ""
		s.Awaiting = Awaiting{}
	case RunFailed:
		s.Status = StatusFailed
		s.Awaiting = Awaiting{}
	}
	return s
}

func (s State) nextOf(node string) string {
	n, ok := s.node(node)
	if !ok {
		return ""
	}
	return n.Next
}

func (s State) maxAttempts() int {
	if s.Policy.MaxEmailAttempts <= 0 {
		return DefaultMaxEmailAttempts
	}
	return s.Policy.MaxEmailAttempts
}

// Fold evolves a history from the empty state.
func Fold(history []Event) State {
	var s State
	for _, e := range history {
		s = Evolve(s, e)
	}
	return s
}
