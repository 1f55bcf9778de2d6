// Package workspace holds the workspace aggregate: a tenant, its monthly
// event limit and its API keys. Events live in stream workspace-{id}. The
// package is pure: ids, secrets' hashes and times come in as arguments.
package workspace

import "time"

// Event types as stored in the event store.
const (
	TypeCreated           = "WorkspaceCreated"
	TypeEventLimitChanged = "EventLimitChanged"
	TypeAPIKeyCreated     = "ApiKeyCreated"
	TypeAPIKeyRevoked     = "ApiKeyRevoked"
)

// Event is one of the workspace events below.
type Event interface{ EventType() string }

// Created starts a workspace.
type Created struct {
	WorkspaceID string    `json:"workspace_id"`
	Name        string    `json:"name"`
	EventLimit  int64     `json:"event_limit"`
	At          time.Time `json:"at"`
}

// EventLimitChanged sets a new monthly event limit.
type EventLimitChanged struct {
	WorkspaceID string    `json:"workspace_id"`
	EventLimit  int64     `json:"event_limit"`
	At          time.Time `json:"at"`
}

// APIKeyCreated records a new key. Only the SHA-256 hash of the secret is
// kept; Prefix is the secret's first characters, shown to tell keys apart.
type APIKeyCreated struct {
	WorkspaceID string    `json:"workspace_id"`
	KeyID       string    `json:"key_id"`
	Name        string    `json:"name"`
	Prefix      string    `json:"prefix"`
	Hash        string    `json:"hash"`
	At          time.Time `json:"at"`
}

// APIKeyRevoked stops a key from authenticating.
type APIKeyRevoked struct {
	WorkspaceID string    `json:"workspace_id"`
	KeyID       string    `json:"key_id"`
	At          time.Time `json:"at"`
}

// EventType implements Event.
func (Created) EventType() string { return TypeCreated }

// EventType implements Event.
func (EventLimitChanged) EventType() string { return TypeEventLimitChanged }

// EventType implements Event.
func (APIKeyCreated) EventType() string { return TypeAPIKeyCreated }

// EventType implements Event.
func (APIKeyRevoked) EventType() string { return TypeAPIKeyRevoked }
