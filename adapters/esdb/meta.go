package esdb

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeMeta decodes an event's JSON metadata, a flat object of strings.
// Every event is decoded once per subscription that sees it, so the common
// case — what Encode writes: no escapes, no whitespace, only strings — is
// parsed by hand; anything else goes to encoding/json, which also has the
// last word on errors.
func decodeMeta(b []byte) (map[string]string, error) {
	if m, ok := decodeFlatMeta(b); ok {
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeFlatMeta parses {"k":"v",...} in valid UTF-8 with no whitespace and
// no backslash anywhere; ok is false for anything else (the caller falls
// back).
func decodeFlatMeta(b []byte) (map[string]string, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' || bytes.IndexByte(b, '\\') >= 0 || !utf8.Valid(b) {
		return nil, false
	}
	m := make(map[string]string, 4)
	rest := b[1 : len(b)-1]
	if len(rest) == 0 {
		return m, true
	}
	str := func() (string, bool) {
		if len(rest) == 0 || rest[0] != '"' {
			return "", false
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			return "", false
		}
		s := rest[1 : 1+end]
		for _, c := range s {
			if c < 0x20 { // control characters must be escaped in JSON
				return "", false
			}
		}
		rest = rest[end+2:]
		return string(s), true
	}
	for {
		k, ok := str()
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return nil, false
		}
		rest = rest[1:]
		v, ok := str()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // let encoding/json decide what a duplicate means
		}
		m[k] = v
		if len(rest) == 0 {
			return m, true
		}
		if rest[0] != ',' {
			return nil, false
		}
		rest = rest[1:]
	}
}
