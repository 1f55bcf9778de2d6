package automation

import "time"

// Event types of an automation-{id} stream.
const (
	TypeCreated   = "AutomationCreated"
	TypeUpdated   = "AutomationUpdated"
	TypeActivated = "AutomationActivated"
	TypePaused    = "AutomationPaused"
)

// Event is one of the automation lifecycle events below.
type Event interface{ EventType() string }

// Created records a new automation: version 1 of its definition, in status
// draft.
type Created struct {
	WorkspaceID  string     `json:"workspace_id"`
	AutomationID string     `json:"automation_id"`
	Version      int        `json:"version"`
	Definition   Definition `json:"definition"`
	At           time.Time  `json:"at"`
}

// Updated records a replaced definition: a new version. Its status is
// unchanged; runs already started keep the version they started with.
type Updated struct {
	WorkspaceID  string     `json:"workspace_id"`
	AutomationID string     `json:"automation_id"`
	Version      int        `json:"version"`
	Definition   Definition `json:"definition"`
	At           time.Time  `json:"at"`
}

// Activated records that the automation fires from now on (in $all order).
type Activated struct {
	WorkspaceID  string    `json:"workspace_id"`
	AutomationID string    `json:"automation_id"`
	Version      int       `json:"version"`
	At           time.Time `json:"at"`
}

// Paused records that the automation stops firing; runs already started
// carry on.
type Paused struct {
	WorkspaceID  string    `json:"workspace_id"`
	AutomationID string    `json:"automation_id"`
	Version      int       `json:"version"`
	At           time.Time `json:"at"`
}

// EventType implements Event.
func (Created) EventType() string { return TypeCreated }

// EventType implements Event.
func (Updated) EventType() string { return TypeUpdated }

// EventType implements Event.
func (Activated) EventType() string { return TypeActivated }

// EventType implements Event.
func (Paused) EventType() string { return TypePaused }
