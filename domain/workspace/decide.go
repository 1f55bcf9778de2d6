package workspace

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/larkhq/lark/domain/failure"
)

// Limits on names, in bytes.
const (
	MaxNameBytes = 200
)

// Create asks for a new workspace with its first API key.
type Create struct {
	WorkspaceID string
	Name        string
	EventLimit  int64
	FirstKey    NewKey
	At          time.Time
}

// NewKey describes a key to create: the id, the name, and the secret's
// prefix and hash (the secret itself never enters the domain).
type NewKey struct {
	KeyID  string
	Name   string
	Prefix string
	Hash   string
}

// DecideCreate starts a workspace. A workspace that exists already is a
// Conflict.
func DecideCreate(s State, c Create) ([]Event, error) {
	if s.Exists {
		return nil, failure.New(failure.Conflict, "workspace %s exists already", c.WorkspaceID)
	}
	if err := validName("name", c.Name); err != nil {
		return nil, err
	}
	if c.EventLimit < 0 {
		return nil, failure.Field(failure.InvalidValue, "event_limit", "event_limit must not be negative")
	}
	return []Event{
		Created{WorkspaceID: c.WorkspaceID, Name: c.Name, EventLimit: c.EventLimit, At: c.At},
		APIKeyCreated{WorkspaceID: c.WorkspaceID, KeyID: c.FirstKey.KeyID, Name: c.FirstKey.Name,
			Prefix: c.FirstKey.Prefix, Hash: c.FirstKey.Hash, At: c.At},
	}, nil
}

// DecideCreateKey adds a key to an existing workspace.
func DecideCreateKey(s State, k NewKey, at time.Time) ([]Event, error) {
	if !s.Exists {
		return nil, failure.New(failure.NotFound, "workspace not found")
	}
	if err := validName("name", k.Name); err != nil {
		return nil, err
	}
	return []Event{APIKeyCreated{WorkspaceID: s.ID, KeyID: k.KeyID, Name: k.Name, Prefix: k.Prefix, Hash: k.Hash, At: at}}, nil
}

// DecideRevokeKey revokes a key. Revoking a revoked key changes nothing and
// is not an error (DELETE is idempotent); an unknown key is NotFound.
func DecideRevokeKey(s State, keyID string, at time.Time) ([]Event, error) {
	k, ok := s.Keys[keyID]
	if !s.Exists || !ok {
		return nil, failure.New(failure.NotFound, "api key %s not found", keyID)
	}
	if k.Revoked {
		return nil, nil
	}
	return []Event{APIKeyRevoked{WorkspaceID: s.ID, KeyID: keyID, At: at}}, nil
}

// DecideEventLimit changes the monthly event limit.
func DecideEventLimit(s State, limit int64, at time.Time) ([]Event, error) {
	if !s.Exists {
		return nil, failure.New(failure.NotFound, "workspace not found")
	}
	if limit < 0 {
		return nil, failure.Field(failure.InvalidValue, "event_limit", "event_limit must not be negative")
	}
	if limit == s.EventLimit {
		return nil, nil
	}
	return []Event{EventLimitChanged{WorkspaceID: s.ID, EventLimit: limit, At: at}}, nil
}

func validName(field, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return failure.Field(failure.InvalidValue, field, "%s must not be empty", field)
	case !utf8.ValidString(name) || strings.ContainsRune(name, 0):
		return failure.Field(failure.InvalidValue, field, "%s must be UTF-8 text without NUL", field)
	case len(name) > MaxNameBytes:
		return failure.Field(failure.TooLong, field, "%s must be at most %d bytes", field, MaxNameBytes)
	}
	return nil
}
