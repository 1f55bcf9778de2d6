package projections

import (
	"testing"
	"time"

	"github.com/larkhq/lark/domain/failure"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 0, 0, 123456789, time.FixedZone("x", 3600))
	gotAt, gotID, err := DecodeCursor(EncodeCursor(at, "id|with|bars"))
	if err != nil || !gotAt.Equal(at) || gotID != "id|with|bars" {
		t.Fatalf("round trip = %v %q %v, want %v %q", gotAt, gotID, err, at, "id|with|bars")
	}
}

func TestCursorInvalid(t *testing.T) {
	for _, c := range []string{"%%%", "bm8tYmFy", EncodeCursor(time.Time{}, "x")[:4], "MjAyNi0xMy0wMXx4"} {
		if _, _, err := DecodeCursor(c); !failure.Is(err, failure.InvalidValue) {
			t.Errorf("DecodeCursor(%q) = %v, want invalid_value", c, err)
		}
	}
}
