// Package ingest holds the custom-event rules: what a valid event is, the
// event recorded for an accepted one, and the usage arithmetic of the
// monthly limit (usage = revision of events-{ws}-{yyyymm} + 1). Pure.
package ingest

import (
	"time"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
)

// TypeReceived is the event type of an accepted custom event.
const TypeReceived = "CustomEventReceived"

// MaxEventNameBytes bounds event_name.
const MaxEventNameBytes = 255

// Event is a validated custom event as sent by a client.
type Event struct {
	Email      string
	Name       string
	Properties map[string]any
}

// Received is the stored record of an accepted event, in stream
// events-{ws}-{yyyymm}.
type Received struct {
	WorkspaceID string         `json:"workspace_id"`
	EventID     string         `json:"event_id"`
	Email       string         `json:"email_address"`
	Name        string         `json:"event_name"`
	Properties  map[string]any `json:"properties"`
	ReceivedAt  time.Time      `json:"received_at"`
}

// EventType names the stored event.
func (Received) EventType() string { return TypeReceived }

// Parse validates one event object per SPEC §2.1 and the input limits.
func Parse(o payload.Object, l payload.Limits) (Event, error) {
	email, _, err := o.Email("email_address", true)
	if err != nil {
		return Event{}, err
	}
	name, _, err := o.String("event_name", true, MaxEventNameBytes)
	if err != nil {
		return Event{}, err
	}
	if name == "" {
		return Event{}, failure.Field(failure.InvalidValue, "event_name", "event_name must not be empty")
	}
	props, err := o.Properties("properties", l)
	if err != nil {
		return Event{}, err
	}
	if props == nil {
		props = map[string]any{}
	}
	return Event{Email: email, Name: name, Properties: props}, nil
}

// Period is the usage period (calendar month, UTC) of t, as "2026-12".
func Period(t time.Time) string { return t.UTC().Format("2006-01") }

// StreamPeriod is the period as it appears in stream names, "202612".
func StreamPeriod(t time.Time) string { return t.UTC().Format("200601") }

// Admit splits n requested events against a limit given the events already
// accepted this period: it returns how many of them fit (a prefix).
func Admit(used, limit int64, n int) int {
	free := limit - used
	if free <= 0 {
		return 0
	}
	if int64(n) > free {
		return int(free)
	}
	return n
}
