package contact

import (
	"time"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
)

// MaxNameBytes bounds first and last names.
const MaxNameBytes = 255

// Fields are the writable fields of a contact, as parsed from a request.
type Fields struct {
	Email      string
	FirstName  *string
	LastName   *string
	Properties map[string]any
}

// ParseCreate validates a create body.
func ParseCreate(o payload.Object, l payload.Limits) (Fields, error) {
	email, _, err := o.Email("email_address", true)
	if err != nil {
		return Fields{}, err
	}
	f, err := parseRest(o, l)
	f.Email = email
	return f, err
}

// ParsePatch validates a patch body (email_address cannot change and is
// ignored if present).
func ParsePatch(o payload.Object, l payload.Limits) (Fields, error) {
	return parseRest(o, l)
}

func parseRest(o payload.Object, l payload.Limits) (Fields, error) {
	var f Fields
	for _, name := range []string{"first_name", "last_name"} {
		s, ok, err := o.String(name, false, MaxNameBytes)
		if err != nil {
			return Fields{}, err
		}
		if ok {
			v := s
			if name == "first_name" {
				f.FirstName = &v
			} else {
				f.LastName = &v
			}
		}
	}
	props, err := o.Properties("properties", l)
	if err != nil {
		return Fields{}, err
	}
	f.Properties = props
	return f, nil
}

// DecideCreate adds a contact unless one with this email exists
// (ContactExists).
func DecideCreate(s State, workspaceID, id string, f Fields, at time.Time) ([]Event, error) {
	if s.Exists {
		return nil, failure.Field(failure.ContactExists, "email_address", "a contact with email %s exists already", s.Email)
	}
	c := Created{WorkspaceID: workspaceID, ContactID: id, Email: f.Email, Properties: f.Properties, At: at}
	if f.FirstName != nil {
		c.FirstName = *f.FirstName
	}
	if f.LastName != nil {
		c.LastName = *f.LastName
	}
	return []Event{c}, nil
}

// DecidePatch merges fields into an existing contact (NotFound otherwise).
func DecidePatch(s State, workspaceID string, f Fields, at time.Time) ([]Event, error) {
	if !s.Exists {
		return nil, failure.New(failure.NotFound, "contact not found")
	}
	return []Event{Updated{WorkspaceID: workspaceID, ContactID: s.ID, FirstName: f.FirstName, LastName: f.LastName,
		Properties: f.Properties, At: at}}, nil
}

// DecideDelete removes an existing contact (NotFound otherwise).
func DecideDelete(s State, workspaceID string, at time.Time) ([]Event, error) {
	if !s.Exists {
		return nil, failure.New(failure.NotFound, "contact not found")
	}
	return []Event{Deleted{WorkspaceID: workspaceID, ContactID: s.ID, At: at}}, nil
}
