package projections

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/larkhq/lark/domain/failure"
)

// EncodeCursor makes the opaque cursor of a keyset page ordered by
// (timestamp, id): the last row's values, so the next page starts after it
// however rows are added meanwhile.
func EncodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

// DecodeCursor reads a cursor made by EncodeCursor. A cursor that is not one
// is an invalid_value failure on field "cursor" (a 400, never a 500).
func DecodeCursor(cursor string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	ts, id, ok := strings.Cut(string(raw), "|")
	t, perr := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !ok || perr != nil {
		return time.Time{}, "", failure.Field(failure.InvalidValue, "cursor", "cursor is not valid")
	}
	return t, id, nil
}
