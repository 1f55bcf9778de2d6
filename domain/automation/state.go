package automation

import "time"

// Status is an automation's lifecycle status (SPEC §1).
type Status string

// Automation statuses; only active automations fire.
const (
	StatusDraft  Status = "draft"
	StatusActive Status = "active"
	StatusPaused Status = "paused"
)

// State is an automation folded from its stream.
type State struct {
	Exists      bool
	ID          string
	WorkspaceID string
	Status      Status
	Version     int
	Definition  Definition
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Evolve applies one event.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Created:
		return State{Exists: true, ID: e.AutomationID, WorkspaceID: e.WorkspaceID, Status: StatusDraft,
			Version: e.Version, Definition: e.Definition, CreatedAt: e.At, UpdatedAt: e.At}
	case Updated:
		s.Version, s.Definition, s.UpdatedAt = e.Version, e.Definition, e.At
	case Activated:
		s.Status, s.UpdatedAt = StatusActive, e.At
	case Paused:
		s.Status, s.UpdatedAt = StatusPaused, e.At
	}
	return s
}

// FoldEvents applies events in order to the zero state.
func FoldEvents(events []Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}
