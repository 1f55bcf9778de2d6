package contact

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	first := "Jane"
	for _, e := range []Event{
		Created{WorkspaceID: "w", ContactID: "c", Email: "Jane@Example.com", FirstName: "Jane",
			Properties: map[string]any{"vip": true, "ltv": json.Number("9007199254740993")}, At: at},
		Updated{WorkspaceID: "w", ContactID: "c", FirstName: &first, Properties: map[string]any{"gone": nil}, At: at},
		Deleted{WorkspaceID: "w", ContactID: "c", At: at},
	} {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := Decode(e.EventType(), data)
		if err != nil || !ok {
			t.Fatalf("Decode(%s) = %v, %v", e.EventType(), ok, err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", e.EventType(), diff)
		}
	}
}

func TestDecodeOtherTypesAndErrors(t *testing.T) {
	if e, ok, err := Decode("WorkspaceCreated", []byte(`{}`)); ok || err != nil || e != nil {
		t.Fatalf("foreign type: %v %v %v, want skipped", e, ok, err)
	}
	if _, ok, err := Decode(TypeCreated, []byte(`{"at":`)); !ok || err == nil {
		t.Fatalf("broken data: ok %v err %v, want an error", ok, err)
	}
}
