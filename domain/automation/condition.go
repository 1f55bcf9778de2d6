package automation

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Contact is what a contact_property condition (and a run's snapshot) sees
// of a contact. An empty FirstName, LastName or EmailAddress counts as a
// missing property.
type Contact struct {
	EmailAddress string         `json:"email_address"`
	FirstName    string         `json:"first_name,omitempty"`
	LastName     string         `json:"last_name,omitempty"`
	Properties   map[string]any `json:"properties,omitempty"`
}

// Facts are what a condition is evaluated against: the triggering event's
// properties (for event_key) and the contact (for contact_property).
type Facts struct {
	Event   map[string]any
	Contact Contact
}

// Evaluation is a condition's result together with everything that led to
// it, as recorded in a run's ConditionEvaluated event and shown by explain:
// the value seen (Found false when the property is missing; Found true and
// Seen nil when it is present but null), the comparator, the expected value
// and the outcome.
type Evaluation struct {
	Operator   Operator   `json:"operator"`
	Key        string     `json:"key"`
	Comparator Comparator `json:"comparator"`
	Expected   any        `json:"expected"`
	Found      bool       `json:"found"`
	Seen       any        `json:"seen"`
	Result     bool       `json:"result"`
}

// Errors returned by [Evaluate] for conditions that [Validate] would refuse.
var (
	ErrUnknownOperator   = errors.New("unknown condition operator")
	ErrUnknownComparator = errors.New("unknown comparator")
)

// Evaluate applies a condition to the facts with exactly SPEC §2.4's rules:
//
//   - The key is looked up as a whole first; if no property has that exact
//     name, a dotted path ("order.total") walks into nested objects, and a
//     whole-number segment indexes an array ("items.0.sku").
//   - A missing property makes every comparator false except not_equals and
//     not_has. A property present with the value null is "present but null":
//     has is false, equals null is true, equals anything else is false.
//   - equals: booleans match booleans and the strings "true"/"false"; when
//     either side is a number, both must be numbers or numeric strings and
//     compare as exact decimals ("99.99" equals 99.99, 1 equals 1.0); two
//     strings compare exactly ("01" does not equal "1"); arrays and objects
//     compare element by element with these same rules.
//   - greater_than, less_than, greater_or_equal, less_or_equal: true only
//     when both sides are numbers or numeric strings, compared as exact
//     decimals (no float rounding).
//   - contains: a string seen contains the expected value's text (a number
//     as its JSON text, a boolean as true/false); an array seen has an
//     element that equals the expected value. Anything else is false.
//   - not_equals is exactly !equals; not_has is exactly !has.
//
// A numeric string is a decimal in the syntax [+-]digits[.digits][e[+-]digits]
// (also ".5" and "5."), with no spaces, hex, inf or nan; an exponent beyond
// ±10^9 makes it non-numeric. Values are string, bool, nil, json.Number,
// float64 (or any Go integer or float type), []any and map[string]any.
func Evaluate(c Condition, f Facts) (Evaluation, error) {
	ev := Evaluation{Operator: c.Operator, Key: c.Key, Comparator: c.Comparator, Expected: c.Value}
	switch c.Operator {
	case OperatorEventKey:
		ev.Seen, ev.Found = lookup(f.Event, c.Key)
	case OperatorContactProperty:
		ev.Seen, ev.Found = contactLookup(f.Contact, c.Key)
	default:
		return ev, fmt.Errorf("%q: %w", c.Operator, ErrUnknownOperator)
	}
	result, err := Compare(c.Comparator, ev.Seen, ev.Found, c.Value)
	if err != nil {
		return ev, err
	}
	ev.Result = result
	return ev, nil
}

// Compare applies one comparator to a seen value (found false when the
// property is missing) and an expected value, with the rules documented on
// [Evaluate].
func Compare(cmp Comparator, seen any, found bool, expected any) (bool, error) {
	switch cmp {
	case Equals:
		return found && equal(seen, expected), nil
	case NotEquals:
		return !(found && equal(seen, expected)), nil
	case Has:
		return found && seen != nil, nil
	case NotHas:
		return !(found && seen != nil), nil
	case GreaterThan, LessThan, GreaterOrEqual, LessOrEqual:
		if !found {
			return false, nil
		}
		a, ok1 := toDecimal(seen, true)
		b, ok2 := toDecimal(expected, true)
		if !ok1 || !ok2 {
			return false, nil
		}
		r := a.cmp(b)
		switch cmp {
		case GreaterThan:
			return r > 0, nil
		case LessThan:
			return r < 0, nil
		case GreaterOrEqual:
			return r >= 0, nil
		default:
			return r <= 0, nil
		}
	case Contains:
		return found && contains(seen, expected), nil
	}
	return false, fmt.Errorf("%q: %w", cmp, ErrUnknownComparator)
}

func lookup(root map[string]any, key string) (any, bool) {
	if root == nil {
		return nil, false
	}
	if v, ok := root[key]; ok {
		return v, true
	}
	if !strings.Contains(key, ".") {
		return nil, false
	}
	var cur any = root
	for _, seg := range strings.Split(key, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) || (len(seg) > 1 && seg[0] == '0') || seg[0] == '+' || seg[0] == '-' {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func contactLookup(c Contact, key string) (any, bool) {
	var s string
	switch key {
	case "email_address":
		s = c.EmailAddress
	case "first_name":
		s = c.FirstName
	case "last_name":
		s = c.LastName
	default:
		return lookup(c.Properties, key)
	}
	if s == "" {
		return nil, false
	}
	return s, true
}

type kind int

const (
	kindOther kind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case string:
		return kindString
	case []any:
		return kindArray
	case map[string]any:
		return kindObject
	}
	if _, ok := toDecimal(v, false); ok {
		return kindNumber
	}
	return kindOther
}

func isJSONValue(v any) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if !isJSONValue(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !isJSONValue(e) {
				return false
			}
		}
		return true
	}
	return kindOf(v) != kindOther
}

func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch x {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func equal(a, b any) bool {
	ka, kb := kindOf(a), kindOf(b)
	switch {
	case ka == kindOther || kb == kindOther:
		return false
	case ka == kindNull || kb == kindNull:
		return ka == kb
	case ka == kindBool || kb == kindBool:
		x, ok1 := asBool(a)
		y, ok2 := asBool(b)
		return ok1 && ok2 && x == y
	case ka == kindNumber || kb == kindNumber:
		x, ok1 := toDecimal(a, true)
		y, ok2 := toDecimal(b, true)
		return ok1 && ok2 && x.cmp(y) == 0
	case ka == kindString && kb == kindString:
		return a.(string) == b.(string)
	case ka == kindArray && kb == kindArray:
		x, y := a.([]any), b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case ka == kindObject && kb == kindObject:
		x, y := a.(map[string]any), b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

func contains(seen, expected any) bool {
	switch s := seen.(type) {
	case string:
		text, ok := scalarText(expected)
		return ok && strings.Contains(s, text)
	case []any:
		for _, e := range s {
			if equal(e, expected) {
				return true
			}
		}
	}
	return false
}

// scalarText is the text a scalar stands for inside a string.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		if _, ok := toDecimal(v, false); ok {
			return string(x), true
		}
		return "", false
	}
	if kindOf(v) == kindNumber {
		return numberText(v), true
	}
	return "", false
}

func numberText(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	return fmt.Sprint(v)
}

// decimal is an exact decimal number: 0.digits × 10^exp, negated when neg.
// digits has no leading or trailing zeros; zero is digits "" and neg false.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

const maxExponent = 1_000_000_000

// toDecimal reads v as a number; strings count only when allowString.
func toDecimal(v any, allowString bool) (decimal, bool) {
	switch x := v.(type) {
	case string:
		if !allowString {
			return decimal{}, false
		}
		return parseDecimal(x)
	case json.Number:
		return parseDecimal(string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return decimal{}, false
		}
		return parseDecimal(strconv.FormatFloat(x, 'g', -1, 64))
	case float32:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return decimal{}, false
		}
		return parseDecimal(strconv.FormatFloat(f, 'g', -1, 32))
	case int:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int8:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int16:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int32:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int64:
		return parseDecimal(strconv.FormatInt(x, 10))
	case uint:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint8:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint16:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint32:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint64:
		return parseDecimal(strconv.FormatUint(x, 10))
	}
	return decimal{}, false
}

// parseDecimal reads [+-]digits[.digits][(e|E)[+-]digits], where either the
// integer or the fraction digits may be empty but not both.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		d.neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fracStart:i]
	}
	if intPart == "" && frac == "" {
		return decimal{}, false
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expNeg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		expStart := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			exp = exp*10 + int64(s[i]-'0')
			if exp > maxExponent {
				return decimal{}, false
			}
			i++
		}
		if i == expStart {
			return decimal{}, false
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(s) {
		return decimal{}, false
	}
	all := intPart + frac
	exp += int64(len(intPart))
	lead := 0
	for lead < len(all) && all[lead] == '0' {
		lead++
	}
	all = all[lead:]
	exp -= int64(lead)
	all = strings.TrimRight(all, "0")
	if all == "" {
		return decimal{}, true // zero, whatever its sign
	}
	d.digits = all
	d.exp = exp
	return d, true
}

func (d decimal) sign() int {
	switch {
	case d.digits == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

// cmp returns -1, 0 or +1 as d is less than, equal to or greater than o.
func (d decimal) cmp(o decimal) int {
	sd, so := d.sign(), o.sign()
	if sd != so {
		if sd < so {
			return -1
		}
		return 1
	}
	if sd == 0 {
		return 0
	}
	var mag int
	switch {
	case d.exp != o.exp:
		if d.exp < o.exp {
			mag = -1
		} else {
			mag = 1
		}
	default:
		mag = strings.Compare(d.digits, o.digits)
	}
	return mag * sd
}
