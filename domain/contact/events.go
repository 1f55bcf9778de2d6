// Package contact holds the contact aggregate: a person of a workspace,
// identified by the lower-cased email address, stored as given. Events live
// in stream contact-{id}, id = ID(workspace, email). Pure.
package contact

import (
	"strings"
	"time"

	"github.com/larkhq/lark/domain/ident"
)

// Event types as stored.
const (
	TypeCreated = "ContactCreated"
	TypeUpdated = "ContactUpdated"
	TypeDeleted = "ContactDeleted"
)

// ID derives a contact's id from its workspace and its email address,
// compared case-insensitively.
func ID(workspaceID, email string) string {
	return ident.Derive("contact", workspaceID, strings.ToLower(email))
}

// Event is one of the contact events below.
type Event interface{ EventType() string }

// Created adds a contact.
type Created struct {
	WorkspaceID string         `json:"workspace_id"`
	ContactID   string         `json:"contact_id"`
	Email       string         `json:"email_address"`
	FirstName   string         `json:"first_name,omitempty"`
	LastName    string         `json:"last_name,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
	At          time.Time      `json:"at"`
}

// Updated merges names and properties into a contact. Nil names are left
// alone; a property whose value is null is removed.
type Updated struct {
	WorkspaceID string         `json:"workspace_id"`
	ContactID   string         `json:"contact_id"`
	FirstName   *string        `json:"first_name,omitempty"`
	LastName    *string        `json:"last_name,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
	At          time.Time      `json:"at"`
}

// Deleted removes a contact; the email may be added again later.
type Deleted struct {
	WorkspaceID string    `json:"workspace_id"`
	ContactID   string    `json:"contact_id"`
	At          time.Time `json:"at"`
}

// EventType implements Event.
func (Created) EventType() string { return TypeCreated }

// EventType implements Event.
func (Updated) EventType() string { return TypeUpdated }

// EventType implements Event.
func (Deleted) EventType() string { return TypeDeleted }
