package analytics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/failure"
)

func TestParseRange(t *testing.T) {
	// 23:30 in UTC-5 is already the next UTC day.
	now := time.Date(2026, 3, 10, 23, 30, 0, 0, time.FixedZone("EST", -5*3600))
	day := func(s string) time.Time { d, _ := time.Parse(DateLayout, s); return d }
	tests := []struct {
		name      string
		from, to  string
		want      Range
		wantDays  int
		wantCode  string
		wantField string
	}{
		{name: "defaults: the last 30 UTC days", want: Range{day("2026-02-10"), day("2026-03-11")}, wantDays: 30},
		{name: "only to", to: "2026-01-31", want: Range{day("2026-01-02"), day("2026-01-31")}, wantDays: 30},
		{name: "only from", from: "2026-03-01", want: Range{day("2026-03-01"), day("2026-03-11")}, wantDays: 11},
		{name: "one day", from: "2026-02-28", to: "2026-02-28", want: Range{day("2026-02-28"), day("2026-02-28")}, wantDays: 1},
		{name: "the longest range", from: "2024-01-01", to: "2024-12-31", want: Range{day("2024-01-01"), day("2024-12-31")}, wantDays: 366},
		{name: "future dates are allowed", from: "2030-01-01", to: "2030-01-02", want: Range{day("2030-01-01"), day("2030-01-02")}, wantDays: 2},
		{name: "one day too long", from: "2024-01-01", to: "2025-01-01", wantCode: failure.InvalidValue, wantField: "to"},
		{name: "from after to", from: "2026-03-02", to: "2026-03-01", wantCode: failure.InvalidValue, wantField: "from"},
		{name: "only from, after today", from: "2026-03-12", wantCode: failure.InvalidValue, wantField: "from"},
		{name: "only to, too long with default from is fine", to: "2020-01-01", want: Range{day("2019-12-03"), day("2020-01-01")}, wantDays: 30},
		{name: "bad from", from: "2026-3-1", wantCode: failure.InvalidValue, wantField: "from"},
		{name: "no such day", from: "2026-02-30", wantCode: failure.InvalidValue, wantField: "from"},
		{name: "timestamp instead of a date", to: "2026-03-01T00:00:00Z", wantCode: failure.InvalidValue, wantField: "to"},
		{name: "bad to wins over a good from", from: "2026-03-01", to: "yesterday", wantCode: failure.InvalidValue, wantField: "to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRange(tc.from, tc.to, now)
			if tc.wantCode != "" {
				var fe *failure.Error
				if err == nil || failure.Code(err) != tc.wantCode {
					t.Fatalf("got %v, %v, want code %s", got, err, tc.wantCode)
				}
				fe = err.(*failure.Error)
				if fe.Field != tc.wantField {
					t.Fatalf("field %q, want %q", fe.Field, tc.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("range (-want +got):\n%s", diff)
			}
			if got.Days() != tc.wantDays {
				t.Errorf("days %d, want %d", got.Days(), tc.wantDays)
			}
		})
	}
}
