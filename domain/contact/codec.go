package contact

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Decode turns a stored event's type and JSON data into a contact Event.
// Numbers in properties stay json.Number, exactly as sent, which is what the
// condition evaluator and run snapshots compare. ok is false for types that
// are not contact events (the caller skips them).
func Decode(typ string, data []byte) (e Event, ok bool, err error) {
	switch typ {
	case TypeCreated:
		var v Created
		err = decodeNumbers(data, &v)
		e = v
	case TypeUpdated:
		var v Updated
		err = decodeNumbers(data, &v)
		e = v
	case TypeDeleted:
		var v Deleted
		err = decodeNumbers(data, &v)
		e = v
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("decode %s: %w", typ, err)
	}
	return e, true, nil
}

func decodeNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
