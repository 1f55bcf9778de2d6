package ingest

import "github.com/google/uuid"

// newID is a fresh random event id (commands may use randomness; the
// domain may not).
func newID() string { return uuid.NewString() }
