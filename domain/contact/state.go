package contact

import "time"

// State is the fold of a contact stream.
type State struct {
	Exists     bool
	ID         string
	Email      string
	FirstName  string
	LastName   string
	Properties map[string]any
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Evolve applies one event.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Created:
		return State{Exists: true, ID: e.ContactID, Email: e.Email, FirstName: e.FirstName, LastName: e.LastName,
			Properties: Merge(nil, e.Properties), CreatedAt: e.At, UpdatedAt: e.At}
	case Updated:
		if e.FirstName != nil {
			s.FirstName = *e.FirstName
		}
		if e.LastName != nil {
			s.LastName = *e.LastName
		}
		s.Properties = Merge(s.Properties, e.Properties)
		s.UpdatedAt = e.At
	case Deleted:
		return State{ID: s.ID}
	}
	return s
}

// Fold applies events in order to the zero state.
func Fold(events []Event) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

// Merge returns a copy of base with patch's keys set; a nil value in patch
// removes the key.
func Merge(base, patch map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(patch))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range patch {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}
