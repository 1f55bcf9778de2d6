// Package payload decodes and checks the JSON objects clients send (event
// and contact bodies) against Lark's documented input limits, turning every
// problem into a 400-class failure that names the field. It is pure.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/larkhq/lark/domain/failure"
)

// Limits bound free-form properties. They are documented in the README.
type Limits struct {
	MaxProperties  int // keys plus array elements, counted at every level
	MaxKeyBytes    int // length of one property key
	MaxStringBytes int // length of one string value
	MaxDepth       int // nesting of objects and arrays below properties
}

// DefaultLimits are Lark's defaults.
func DefaultLimits() Limits {
	return Limits{MaxProperties: 1000, MaxKeyBytes: 255, MaxStringBytes: 64 << 10, MaxDepth: 10}
}

// Object is a decoded JSON object; numbers are json.Number so that they keep
// their exact text.
type Object map[string]any

// Decode parses body as one JSON object. Invalid UTF-8, NUL bytes (raw or
// escaped), bad JSON, trailing data and non-objects are InvalidJSON or
// InvalidBody failures.
func Decode(body []byte) (Object, error) {
	if !utf8.Valid(body) {
		return nil, failure.New(failure.InvalidJSON, "body is not valid UTF-8")
	}
	if bytes.IndexByte(body, 0) >= 0 {
		return nil, failure.New(failure.InvalidJSON, "body contains a NUL byte")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, failure.New(failure.InvalidJSON, "body is not valid JSON: %s", jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, failure.New(failure.InvalidJSON, "body holds data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, failure.New(failure.InvalidBody, "body must be a JSON object")
	}
	return Object(obj), nil
}

// FromValue converts an already-decoded JSON value (from a batch) into an
// Object, or reports InvalidBody.
func FromValue(v any) (Object, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, failure.New(failure.InvalidBody, "event must be a JSON object")
	}
	return Object(obj), nil
}

func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// String returns the string field name. Absent or null gives MissingField
// when required, "" otherwise; another type is InvalidType. NUL inside is
// InvalidValue; longer than max bytes is TooLong.
func (o Object) String(name string, required bool, max int) (string, bool, error) {
	v, ok := o[name]
	if !ok || v == nil {
		if required {
			return "", false, failure.Field(failure.MissingField, name, "%s is required", name)
		}
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, failure.Field(failure.InvalidType, name, "%s must be a string", name)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", false, failure.Field(failure.InvalidValue, name, "%s must not contain NUL characters", name)
	}
	if max > 0 && len(s) > max {
		return "", false, failure.Field(failure.TooLong, name, "%s must be at most %d bytes", name, max)
	}
	return s, true, nil
}

// Properties returns the object field name, checked against limits. Absent
// or null gives nil; another type is InvalidType.
func (o Object) Properties(name string, l Limits) (map[string]any, error) {
	v, ok := o[name]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, failure.Field(failure.InvalidType, name, "%s must be a JSON object", name)
	}
	count := 0
	if err := check(name, m, 0, l, &count); err != nil {
		return nil, err
	}
	return m, nil
}

func check(path string, v any, depth int, l Limits, count *int) error {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return failure.Field(failure.InvalidValue, path, "%s must not contain NUL characters", path)
		}
		if len(v) > l.MaxStringBytes {
			return failure.Field(failure.TooLong, path, "%s must be at most %d bytes", path, l.MaxStringBytes)
		}
	case map[string]any:
		if depth > l.MaxDepth {
			return failure.Field(failure.TooDeep, path, "properties nest deeper than %d levels", l.MaxDepth)
		}
		for k, e := range v {
			*count++
			if *count > l.MaxProperties {
				return failure.Field(failure.TooManyProperties, "properties", "properties hold more than %d keys and array elements", l.MaxProperties)
			}
			kp := path + "." + k
			if strings.IndexByte(k, 0) >= 0 {
				return failure.Field(failure.InvalidValue, path, "property keys must not contain NUL characters")
			}
			if len(k) > l.MaxKeyBytes {
				return failure.Field(failure.TooLong, path, "property keys must be at most %d bytes", l.MaxKeyBytes)
			}
			if err := check(kp, e, depth+1, l, count); err != nil {
				return err
			}
		}
	case []any:
		if depth > l.MaxDepth {
			return failure.Field(failure.TooDeep, path, "properties nest deeper than %d levels", l.MaxDepth)
		}
		for i, e := range v {
			*count++
			if *count > l.MaxProperties {
				return failure.Field(failure.TooManyProperties, "properties", "properties hold more than %d keys and array elements", l.MaxProperties)
			}
			if err := check(fmt.Sprintf("%s[%d]", path, i), e, depth+1, l, count); err != nil {
				return err
			}
		}
	}
	return nil
}

// MaxEmailBytes bounds an email address (RFC 5321 path limit).
const MaxEmailBytes = 254

// Email returns the field name as a plausible email address: exactly one
// "@", non-empty local part and domain, no spaces or control characters,
// at most 254 bytes.
func (o Object) Email(name string, required bool) (string, bool, error) {
	s, ok, err := o.String(name, required, 0)
	if err != nil || !ok {
		return s, ok, err
	}
	if err := CheckEmail(name, s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// CheckEmail validates an email address given as field.
func CheckEmail(field, s string) error {
	if s == "" {
		return failure.Field(failure.InvalidEmail, field, "%s must not be empty", field)
	}
	if len(s) > MaxEmailBytes {
		return failure.Field(failure.InvalidEmail, field, "%s must be at most %d bytes", field, MaxEmailBytes)
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return failure.Field(failure.InvalidEmail, field, "%s must contain one @ between a non-empty local part and domain", field)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return failure.Field(failure.InvalidEmail, field, "%s must not contain spaces or control characters", field)
		}
	}
	return nil
}
