package run

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrUnknownEventType is returned by [Unmarshal] for a type this package
// does not know.
var ErrUnknownEventType = errors.New("unknown run event type")

// Marshal encodes an event's JSON payload. The type name is e.EventType().
func Marshal(e Event) ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return data, nil
}

// Unmarshal decodes a payload written by [Marshal], numbers kept as
// json.Number so that replayed evaluations see exactly what was recorded.
// Unknown fields are ignored (forward compatibility within a schema version).
func Unmarshal(eventType string, data []byte) (Event, error) {
	var e any
	switch eventType {
	case TypeRunStarted:
		e = &RunStarted{}
	case TypeConditionEvaluated:
		e = &ConditionEvaluated{}
	case TypeEmailQueued:
		e = &EmailQueued{}
	case TypeEmailSent:
		e = &EmailSent{}
	case TypeEmailFailed:
		e = &EmailFailed{}
	case TypeDelayStarted:
		e = &DelayStarted{}
	case TypeDelayElapsed:
		e = &DelayElapsed{}
	case TypeRunCompleted:
		e = &RunCompleted{}
	case TypeRunFailed:
		e = &RunFailed{}
	default:
		return nil, fmt.Errorf("%q: %w", eventType, ErrUnknownEventType)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", eventType, err)
	}
	return deref(e), nil
}

// deref turns the pointer Unmarshal decoded into the value type Decide
// produces, so recorded and decided events compare alike.
func deref(e any) Event {
	switch x := e.(type) {
	case *RunStarted:
		return *x
	case *ConditionEvaluated:
		return *x
	case *EmailQueued:
		return *x
	case *EmailSent:
		return *x
	case *EmailFailed:
		return *x
	case *DelayStarted:
		return *x
	case *DelayElapsed:
		return *x
	case *RunCompleted:
		return *x
	case *RunFailed:
		return *x
	}
	panic(fmt.Sprintf("run: deref of %T", e)) // unreachable: Unmarshal only passes the types above
}

// Recorded is an event as stored: its type name and JSON payload. Golden
// histories and tools that move histories around use it.
type Recorded struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Record encodes events as [Recorded] entries.
func Record(events []Event) ([]Recorded, error) {
	out := make([]Recorded, 0, len(events))
	for _, e := range events {
		data, err := Marshal(e)
		if err != nil {
			return nil, err
		}
		out = append(out, Recorded{Type: e.EventType(), Data: data})
	}
	return out, nil
}

// Decode decodes [Recorded] entries back into events.
func Decode(recs []Recorded) ([]Event, error) {
	out := make([]Event, 0, len(recs))
	for i, r := range recs {
		e, err := Unmarshal(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}
