package ingest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/domain/payload"
)

func TestAdmit(t *testing.T) {
	tests := []struct {
		used, limit int64
		n, want     int
	}{
		{0, 50, 1, 1}, {49, 50, 1, 1}, {50, 50, 1, 0}, {51, 50, 1, 0},
		{45, 50, 10, 5}, {0, 0, 3, 0}, {0, 1 << 62, 500, 500},
	}
	for _, tc := range tests {
		if got := ingest.Admit(tc.used, tc.limit, tc.n); got != tc.want {
			t.Errorf("Admit(%d, %d, %d) = %d, want %d", tc.used, tc.limit, tc.n, got, tc.want)
		}
	}
}

func TestPeriod(t *testing.T) {
	// The month is UTC: 23:30 on Nov 30 in New York is already December.
	ny := time.FixedZone("EST", -5*3600)
	at := time.Date(2026, 11, 30, 23, 30, 0, 0, ny)
	if got := []string{ingest.Period(at), ingest.StreamPeriod(at)}; !cmp.Equal(got, []string{"2026-12", "202612"}) {
		t.Errorf("got %v", got)
	}
}

func TestParse(t *testing.T) {
	o, err := payload.Decode([]byte(`{"email_address":"Jane@Example.com","event_name":"Purchase","properties":{"total":"99.99"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ingest.Parse(o, payload.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := ingest.Event{Email: "Jane@Example.com", Name: "Purchase", Properties: map[string]any{"total": "99.99"}}
	if d := cmp.Diff(want, ev); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}
