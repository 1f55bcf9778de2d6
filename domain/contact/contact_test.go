package contact_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/failure"
)

func TestIDIsCaseInsensitivePerWorkspace(t *testing.T) {
	if contact.ID("ws", "Jane@Example.com") != contact.ID("ws", "jane@example.COM") {
		t.Error("ids differ by case")
	}
	if contact.ID("ws1", "jane@example.com") == contact.ID("ws2", "jane@example.com") {
		t.Error("ids equal across workspaces")
	}
}

func TestDecide(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	first, last := "Jane", "Doe"
	created := contact.Created{WorkspaceID: "ws", ContactID: "c", Email: "Jane@x.io", FirstName: "J",
		Properties: map[string]any{"a": 1.0, "b": 2.0}, At: at}
	tests := []struct {
		name     string
		given    []contact.Event
		when     func(contact.State) ([]contact.Event, error)
		then     []contact.Event
		wantCode string
		state    contact.State
	}{
		{
			name: "create new",
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecideCreate(s, "ws", "c", contact.Fields{Email: "Jane@x.io", FirstName: &first}, at)
			},
			then: []contact.Event{contact.Created{WorkspaceID: "ws", ContactID: "c", Email: "Jane@x.io", FirstName: "Jane", At: at}},
		},
		{
			name:  "create existing",
			given: []contact.Event{created},
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecideCreate(s, "ws", "c", contact.Fields{Email: "jane@x.io"}, at)
			},
			wantCode: failure.ContactExists,
		},
		{
			name:  "create after delete",
			given: []contact.Event{created, contact.Deleted{WorkspaceID: "ws", ContactID: "c", At: at}},
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecideCreate(s, "ws", "c", contact.Fields{Email: "jane@x.io"}, at)
			},
			then: []contact.Event{contact.Created{WorkspaceID: "ws", ContactID: "c", Email: "jane@x.io", At: at}},
		},
		{
			name:  "patch merges",
			given: []contact.Event{created},
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecidePatch(s, "ws", contact.Fields{LastName: &last, Properties: map[string]any{"a": nil, "c": 3.0}}, at)
			},
			then: []contact.Event{contact.Updated{WorkspaceID: "ws", ContactID: "c", LastName: &last,
				Properties: map[string]any{"a": nil, "c": 3.0}, At: at}},
			state: contact.State{Exists: true, ID: "c", Email: "Jane@x.io", FirstName: "J", LastName: "Doe",
				Properties: map[string]any{"b": 2.0, "c": 3.0}, CreatedAt: at, UpdatedAt: at},
		},
		{
			name: "patch missing",
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecidePatch(s, "ws", contact.Fields{}, at)
			},
			wantCode: failure.NotFound,
		},
		{
			name:  "delete twice",
			given: []contact.Event{created, contact.Deleted{WorkspaceID: "ws", ContactID: "c", At: at}},
			when: func(s contact.State) ([]contact.Event, error) {
				return contact.DecideDelete(s, "ws", at)
			},
			wantCode: failure.NotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := contact.Fold(tc.given)
			got, err := tc.when(s)
			if tc.wantCode != "" {
				if failure.Code(err) != tc.wantCode {
					t.Fatalf("got error %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.then, got); d != "" {
				t.Errorf("events (-want +got)\n%s", d)
			}
			if tc.state.Exists {
				if d := cmp.Diff(tc.state, contact.Fold(append(tc.given, got...))); d != "" {
					t.Errorf("state (-want +got)\n%s", d)
				}
			}
		})
	}
}
