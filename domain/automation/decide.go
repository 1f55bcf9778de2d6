package automation

import (
	"time"

	"github.com/larkhq/lark/domain/failure"
)

// InvalidAutomation is the failure code of a definition that does not
// validate (HTTP 400).
const InvalidAutomation = "invalid_automation"

// AsFailure turns a *ValidationError into a failure.Error with code
// invalid_automation whose message names the node at fault and whose field
// is the JSON path of the field at fault ("nodes[2].condition.comparator",
// "trigger.event_name"). Other errors are returned unchanged.
func AsFailure(def Definition, err error) error {
	ve, ok := err.(*ValidationError)
	if !ok {
		return err
	}
	field := ve.Field
	if ve.Node != "" {
		// The node's index; for a duplicate id, the second node that has it.
		prefix, seen := "nodes", 0
		for i, n := range def.Nodes {
			if n.ID != ve.Node {
				continue
			}
			prefix, seen = "nodes["+itoa(i)+"]", seen+1
			if ve.Field != "id" || seen == 2 {
				break
			}
		}
		if field != "" {
			field = prefix + "." + field
		} else {
			field = prefix
		}
	}
	return &failure.Error{Code: InvalidAutomation, Message: ve.Error(), Field: field, Err: err}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// notFound hides automations of other workspaces as if they did not exist.
func notFound(s State, workspaceID string) error {
	if !s.Exists || s.WorkspaceID != workspaceID {
		return failure.New(failure.NotFound, "automation not found")
	}
	return nil
}

// DecideCreate creates an automation from a validated definition: version 1,
// status draft. Conflict if the id is taken.
func DecideCreate(s State, workspaceID, id string, def Definition, at time.Time) ([]Event, error) {
	if s.Exists {
		return nil, failure.New(failure.Conflict, "automation %s exists already", id)
	}
	return []Event{Created{WorkspaceID: workspaceID, AutomationID: id, Version: 1, Definition: def, At: at}}, nil
}

// DecideReplace replaces the definition with a validated one: a new version.
func DecideReplace(s State, workspaceID string, def Definition, at time.Time) ([]Event, error) {
	if err := notFound(s, workspaceID); err != nil {
		return nil, err
	}
	return []Event{Updated{WorkspaceID: workspaceID, AutomationID: s.ID, Version: s.Version + 1, Definition: def, At: at}}, nil
}

// DecideActivate makes the automation fire; activating an active one
// records nothing.
func DecideActivate(s State, workspaceID string, at time.Time) ([]Event, error) {
	if err := notFound(s, workspaceID); err != nil {
		return nil, err
	}
	if s.Status == StatusActive {
		return nil, nil
	}
	return []Event{Activated{WorkspaceID: workspaceID, AutomationID: s.ID, Version: s.Version, At: at}}, nil
}

// DecidePause stops the automation firing; pausing a paused or draft one
// records nothing (a draft stays a draft).
func DecidePause(s State, workspaceID string, at time.Time) ([]Event, error) {
	if err := notFound(s, workspaceID); err != nil {
		return nil, err
	}
	if s.Status != StatusActive {
		return nil, nil
	}
	return []Event{Paused{WorkspaceID: workspaceID, AutomationID: s.ID, Version: s.Version, At: at}}, nil
}
