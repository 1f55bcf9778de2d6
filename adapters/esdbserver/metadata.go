package esdbserver

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
)

// deletedTB is the $tb value that marks a soft-deleted stream.
const deletedTB = math.MaxInt64

// tombstoneRev is the stream revision reported for a tombstone record.
const tombstoneRev = math.MaxInt64

// streamMeta is the part of stream metadata the server interprets.
type streamMeta struct {
	tb, maxCount, maxAge int64
}

// parseMeta interprets metadata JSON. Invalid JSON counts as empty metadata,
// as does a key whose value is not an integer.
func parseMeta(data []byte) streamMeta {
	var m map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return streamMeta{}
	}
	num := func(k string) int64 {
		raw, ok := m[k]
		if !ok {
			return 0
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return 0
		}
		v, err := n.Int64()
		if err != nil || v < 0 {
			return 0
		}
		return v
	}
	return streamMeta{tb: num("$tb"), maxCount: num("$maxCount"), maxAge: num("$maxAge")}
}

// withTB returns data (metadata JSON) with $tb set to tb, keeping every
// other key. Invalid JSON is replaced by {"$tb":tb}.
func withTB(data []byte, tb int64) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	b, _ := json.Marshal(tb)
	m["$tb"] = b
	out, err := json.Marshal(m)
	if err != nil {
		return []byte(`{"$tb":` + string(b) + `}`)
	}
	return out
}

// isMetastream reports whether stream is the metastream "$$x" of x.
func isMetastream(stream string) bool { return strings.HasPrefix(stream, "$$") }
