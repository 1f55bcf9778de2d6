package workspace_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/workspace"
)

func TestDecide(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	key := workspace.NewKey{KeyID: "k1", Name: "default", Prefix: "lark_abc", Hash: "h"}
	created := []workspace.Event{
		workspace.Created{WorkspaceID: "w", Name: "n", EventLimit: 5, At: at},
		workspace.APIKeyCreated{WorkspaceID: "w", KeyID: "k1", Name: "default", Prefix: "lark_abc", Hash: "h", At: at},
	}
	tests := []struct {
		name     string
		given    []workspace.Event
		when     func(workspace.State) ([]workspace.Event, error)
		then     []workspace.Event
		wantCode string
	}{
		{"create", nil, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideCreate(s, workspace.Create{WorkspaceID: "w", Name: "n", EventLimit: 5, FirstKey: key, At: at})
		}, created, ""},
		{"create twice", created, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideCreate(s, workspace.Create{WorkspaceID: "w", Name: "n", FirstKey: key, At: at})
		}, nil, failure.Conflict},
		{"empty name", nil, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideCreate(s, workspace.Create{WorkspaceID: "w", Name: " ", FirstKey: key, At: at})
		}, nil, failure.InvalidValue},
		{"negative limit", nil, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideCreate(s, workspace.Create{WorkspaceID: "w", Name: "n", EventLimit: -1, FirstKey: key, At: at})
		}, nil, failure.InvalidValue},
		{"revoke", created, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideRevokeKey(s, "k1", at)
		}, []workspace.Event{workspace.APIKeyRevoked{WorkspaceID: "w", KeyID: "k1", At: at}}, ""},
		{"revoke again is a no-op", append(created, workspace.APIKeyRevoked{WorkspaceID: "w", KeyID: "k1", At: at}),
			func(s workspace.State) ([]workspace.Event, error) { return workspace.DecideRevokeKey(s, "k1", at) }, nil, ""},
		{"revoke unknown", created, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideRevokeKey(s, "k2", at)
		}, nil, failure.NotFound},
		{"key for missing workspace", nil, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideCreateKey(s, key, at)
		}, nil, failure.NotFound},
		{"limit change", created, func(s workspace.State) ([]workspace.Event, error) {
			return workspace.DecideEventLimit(s, 9, at)
		}, []workspace.Event{workspace.EventLimitChanged{WorkspaceID: "w", EventLimit: 9, At: at}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.when(workspace.Fold(tc.given))
			if failure.Code(err) != tc.wantCode && !(err == nil && tc.wantCode == "") {
				t.Fatalf("got error %v, want code %q", err, tc.wantCode)
			}
			if d := cmp.Diff(tc.then, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}
