package workspace

// State is the fold of a workspace stream.
type State struct {
	Exists     bool
	ID         string
	Name       string
	EventLimit int64
	Keys       map[string]Key // by key id
}

// Key is an API key as the aggregate knows it.
type Key struct {
	ID      string
	Name    string
	Revoked bool
}

// Evolve applies one event to the state.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Created:
		s.Exists, s.ID, s.Name, s.EventLimit = true, e.WorkspaceID, e.Name, e.EventLimit
	case EventLimitChanged:
		s.EventLimit = e.EventLimit
	case APIKeyCreated:
		keys := make(map[string]Key, len(s.Keys)+1)
		for k, v := range s.Keys {
			keys[k] = v
		}
		keys[e.KeyID] = Key{ID: e.KeyID, Name: e.Name}
		s.Keys = keys
	case APIKeyRevoked:
		if k, ok := s.Keys[e.KeyID]; ok {
			keys := make(map[string]Key, len(s.Keys))
			for id, v := range s.Keys {
				keys[id] = v
			}
			k.Revoked = true
			keys[e.KeyID] = k
			s.Keys = keys
		}
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
