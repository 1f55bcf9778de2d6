package analytics

import (
	"time"

	"github.com/larkhq/lark/domain/failure"
)

// DefaultDays is the length of the default range (the last 30 UTC days,
// today included).
const DefaultDays = 30

// MaxDays is the longest range GET /v1/analytics/events answers.
const MaxDays = 366

// DateLayout is how dates are written in queries and answers.
const DateLayout = "2006-01-02"

// Range is an inclusive range of UTC days.
type Range struct {
	From, To time.Time // midnight UTC of the first and the last day
}

// Days is the number of days in r.
func (r Range) Days() int { return int(r.To.Sub(r.From)/(24*time.Hour)) + 1 }

// ParseRange reads the from and to query parameters (YYYY-MM-DD, UTC,
// inclusive; "" means the default). to defaults to today (the UTC day of
// now); from defaults to DefaultDays-1 days before to. Errors are
// failure.InvalidValue naming the field: a malformed date, from after to
// (field "from"), more than MaxDays days (field "to").
func ParseRange(from, to string, now time.Time) (Range, error) {
	var r Range
	today := now.UTC().Truncate(24 * time.Hour)
	r.To = today
	if to != "" {
		t, err := time.Parse(DateLayout, to)
		if err != nil {
			return Range{}, failure.Field(failure.InvalidValue, "to", "to must be a date YYYY-MM-DD, got %q", to)
		}
		r.To = t
	}
	r.From = r.To.AddDate(0, 0, -(DefaultDays - 1))
	if from != "" {
		t, err := time.Parse(DateLayout, from)
		if err != nil {
			return Range{}, failure.Field(failure.InvalidValue, "from", "from must be a date YYYY-MM-DD, got %q", from)
		}
		r.From = t
	}
	if r.From.After(r.To) {
		return Range{}, failure.Field(failure.InvalidValue, "from", "from (%s) is after to (%s)",
			r.From.Format(DateLayout), r.To.Format(DateLayout))
	}
	if n := r.Days(); n > MaxDays {
		return Range{}, failure.Field(failure.InvalidValue, "to", "the range from %s to %s is %d days; at most %d are allowed",
			r.From.Format(DateLayout), r.To.Format(DateLayout), n, MaxDays)
	}
	return r, nil
}
