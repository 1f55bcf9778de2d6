package automation

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// UnmarshalEvent decodes a stored lifecycle event of the given type (numbers
// kept exact). ok is false for a type this package does not know.
func UnmarshalEvent(eventType string, data []byte) (e Event, ok bool, err error) {
	var v any
	switch eventType {
	case TypeCreated:
		v = &Created{}
	case TypeUpdated:
		v = &Updated{}
	case TypeActivated:
		v = &Activated{}
	case TypePaused:
		v = &Paused{}
	default:
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return nil, true, fmt.Errorf("decode %s: %w", eventType, err)
	}
	switch x := v.(type) {
	case *Created:
		return *x, true, nil
	case *Updated:
		return *x, true, nil
	case *Activated:
		return *x, true, nil
	case *Paused:
		return *x, true, nil
	}
	return nil, false, nil
}
