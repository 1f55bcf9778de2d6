package automation

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func n(s string) json.Number { return json.Number(s) }

// testEvent has one property of every JSON type the evaluator meets.
func testEvent() map[string]any {
	return map[string]any{
		"str":        "hello world",
		"empty":      "",
		"num":        n("99.99"),
		"numstr":     "99.99",
		"int":        n("20"),
		"intstr":     "20",
		"float":      99.99,
		"big":        n("9007199254740993"),
		"zip":        "02134",
		"t":          true,
		"f":          false,
		"tstr":       "true",
		"fstr":       "false",
		"null":       nil,
		"arr":        []any{"a", n("1"), true, nil},
		"emptyarr":   []any{},
		"obj":        map[string]any{"total": n("50"), "inner": map[string]any{"x": "y"}, "items": []any{map[string]any{"sku": "A1"}}},
		"dotted.key": "literal",
	}
}

func TestCompareTable(t *testing.T) {
	type row struct {
		key   string
		cmp   Comparator
		value any
		want  bool
	}
	rows := []row{
		// equals: strings
		{"str", Equals, "hello world", true},
		{"str", Equals, "Hello world", false},
		{"empty", Equals, "", true},
		{"zip", Equals, "2134", false}, // two strings compare exactly
		{"zip", Equals, n("2134"), true},
		{"zip", Equals, "02134", true},
		// equals: numbers and numeric strings
		{"num", Equals, n("99.99"), true},
		{"num", Equals, "99.99", true},
		{"numstr", Equals, n("99.99"), true},
		{"numstr", Equals, 99.99, true},
		{"float", Equals, n("99.99"), true},
		{"num", Equals, n("99.990"), true},
		{"num", Equals, n("9.999e1"), true},
		{"num", Equals, n("99.98"), false},
		{"int", Equals, n("20.0"), true},
		{"int", Equals, 20, true},
		{"intstr", Equals, n("20"), true},
		{"intstr", Equals, "20.0", false}, // strings exact
		{"big", Equals, n("9007199254740992"), false},
		{"big", Equals, "9007199254740993", true},
		{"num", Equals, "abc", false},
		{"num", Equals, true, false},
		{"num", Equals, nil, false},
		// equals: booleans and "true"/"false"
		{"t", Equals, true, true},
		{"t", Equals, "true", true},
		{"t", Equals, false, false},
		{"t", Equals, "TRUE", false},
		{"t", Equals, n("1"), false},
		{"tstr", Equals, true, true},
		{"fstr", Equals, false, true},
		{"fstr", Equals, true, false},
		{"f", Equals, "false", true},
		{"tstr", Equals, "true", true},
		// equals: null
		{"null", Equals, nil, true},
		{"null", Equals, "null", false},
		{"null", Equals, "", false},
		{"str", Equals, nil, false},
		// equals: arrays and objects
		{"arr", Equals, []any{"a", "1", "true", nil}, true},
		{"arr", Equals, []any{"a", n("1"), true}, false},
		{"emptyarr", Equals, []any{}, true},
		{"obj.inner", Equals, map[string]any{"x": "y"}, true},
		{"obj.inner", Equals, map[string]any{"x": "z"}, false},
		{"obj.inner", Equals, "y", false},
		// equals: nested paths and missing
		{"obj.total", Equals, n("50"), true},
		{"obj.total", Equals, "50", true},
		{"obj.items.0.sku", Equals, "A1", true},
		{"obj.items.1.sku", Equals, "A1", false},
		{"obj.items.00.sku", Equals, "A1", false},
		{"obj.inner.x.y", Equals, "y", false},
		{"dotted.key", Equals, "literal", true},
		{"missing", Equals, nil, false},
		{"missing", Equals, "", false},
		{"obj.missing", Equals, nil, false},
		{"str.x", Equals, nil, false},
		// not_equals is !equals, and true when missing
		{"str", NotEquals, "hello world", false},
		{"str", NotEquals, "x", true},
		{"num", NotEquals, "99.99", false},
		{"t", NotEquals, "true", false},
		{"null", NotEquals, nil, false},
		{"null", NotEquals, "x", true},
		{"missing", NotEquals, "x", true},
		{"missing", NotEquals, nil, true},
		{"obj.missing", NotEquals, n("1"), true},
		// has / not_has
		{"str", Has, nil, true},
		{"empty", Has, nil, true},
		{"num", Has, nil, true},
		{"f", Has, nil, true},
		{"arr", Has, nil, true},
		{"emptyarr", Has, nil, true},
		{"obj", Has, nil, true},
		{"obj.total", Has, nil, true},
		{"null", Has, nil, false},
		{"missing", Has, nil, false},
		{"obj.missing", Has, nil, false},
		{"null", NotHas, nil, true},
		{"missing", NotHas, nil, true},
		{"str", NotHas, nil, false},
		{"obj.inner.x", NotHas, nil, false},
		// ordering comparators
		{"num", GreaterThan, n("50"), true},
		{"num", GreaterThan, "50", true},
		{"numstr", GreaterThan, n("50"), true},
		{"float", GreaterThan, n("99.98"), true},
		{"num", GreaterThan, n("99.99"), false},
		{"num", GreaterOrEqual, n("99.99"), true},
		{"num", LessOrEqual, "99.99", true},
		{"num", LessThan, n("100"), true},
		{"num", LessThan, n("-100"), false},
		{"intstr", GreaterThan, n("50"), false},
		{"intstr", LessThan, n("50"), true},
		{"intstr", LessThan, "3", false}, // numeric, not lexicographic
		{"zip", GreaterThan, n("2000"), true},
		{"big", GreaterThan, n("9007199254740992"), true},
		{"obj.total", GreaterOrEqual, n("50"), true},
		{"obj.total", GreaterThan, n("50"), false},
		{"str", GreaterThan, n("1"), false},
		{"str", LessThan, n("1"), false},
		{"t", GreaterThan, n("0"), false},
		{"tstr", GreaterOrEqual, n("0"), false},
		{"null", GreaterThan, n("0"), false},
		{"null", LessThan, n("0"), false},
		{"arr", GreaterThan, n("0"), false},
		{"obj", LessThan, n("0"), false},
		{"missing", GreaterThan, n("0"), false},
		{"missing", LessOrEqual, n("0"), false},
		{"empty", LessThan, n("1"), false},
		// contains
		{"str", Contains, "lo wo", true},
		{"str", Contains, "", true},
		{"str", Contains, "xyz", false},
		{"numstr", Contains, n("99"), true},
		{"tstr", Contains, true, true},
		{"arr", Contains, "a", true},
		{"arr", Contains, n("1"), true},
		{"arr", Contains, "1", true},
		{"arr", Contains, "true", true},
		{"arr", Contains, "b", false},
		{"arr", Contains, nil, true},
		{"emptyarr", Contains, "a", false},
		{"num", Contains, n("99"), false}, // a number is not a string
		{"t", Contains, true, false},
		{"obj", Contains, "total", false},
		{"null", Contains, "", false},
		{"missing", Contains, "", false},
	}
	for _, r := range rows {
		name := fmt.Sprintf("%s %s %#v", r.key, r.cmp, r.value)
		t.Run(name, func(t *testing.T) {
			c := Condition{Operator: OperatorEventKey, Key: r.key, Comparator: r.cmp, Value: r.value}
			ev, err := Evaluate(c, Facts{Event: testEvent()})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if ev.Result != r.want {
				t.Fatalf("got %v, want %v (seen %#v found %v)", ev.Result, r.want, ev.Seen, ev.Found)
			}
		})
	}
}

func TestEvaluateExplainsItself(t *testing.T) {
	tests := []struct {
		name string
		c    Condition
		f    Facts
		want Evaluation
	}{
		{
			name: "event key found",
			c:    Condition{Operator: OperatorEventKey, Key: "total", Comparator: GreaterThan, Value: n("50")},
			f:    Facts{Event: map[string]any{"total": n("99.99")}},
			want: Evaluation{Operator: OperatorEventKey, Key: "total", Comparator: GreaterThan, Expected: n("50"), Found: true, Seen: n("99.99"), Result: true},
		},
		{
			name: "event key missing",
			c:    Condition{Operator: OperatorEventKey, Key: "total", Comparator: GreaterThan, Value: n("50")},
			f:    Facts{Event: map[string]any{}},
			want: Evaluation{Operator: OperatorEventKey, Key: "total", Comparator: GreaterThan, Expected: n("50")},
		},
		{
			name: "nil event is all missing",
			c:    Condition{Operator: OperatorEventKey, Key: "a.b", Comparator: NotHas},
			want: Evaluation{Operator: OperatorEventKey, Key: "a.b", Comparator: NotHas, Result: true},
		},
		{
			name: "present but null",
			c:    Condition{Operator: OperatorEventKey, Key: "coupon", Comparator: Has},
			f:    Facts{Event: map[string]any{"coupon": nil}},
			want: Evaluation{Operator: OperatorEventKey, Key: "coupon", Comparator: Has, Found: true},
		},
		{
			name: "contact first name",
			c:    Condition{Operator: OperatorContactProperty, Key: "first_name", Comparator: Equals, Value: "Jane"},
			f:    Facts{Contact: Contact{EmailAddress: "j@x.io", FirstName: "Jane"}},
			want: Evaluation{Operator: OperatorContactProperty, Key: "first_name", Comparator: Equals, Expected: "Jane", Found: true, Seen: "Jane", Result: true},
		},
		{
			name: "contact empty last name is missing",
			c:    Condition{Operator: OperatorContactProperty, Key: "last_name", Comparator: NotHas},
			f:    Facts{Contact: Contact{EmailAddress: "j@x.io"}},
			want: Evaluation{Operator: OperatorContactProperty, Key: "last_name", Comparator: NotHas, Result: true},
		},
		{
			name: "contact email",
			c:    Condition{Operator: OperatorContactProperty, Key: "email_address", Comparator: Contains, Value: "@x.io"},
			f:    Facts{Contact: Contact{EmailAddress: "j@x.io"}},
			want: Evaluation{Operator: OperatorContactProperty, Key: "email_address", Comparator: Contains, Expected: "@x.io", Found: true, Seen: "j@x.io", Result: true},
		},
		{
			name: "contact custom nested property",
			c:    Condition{Operator: OperatorContactProperty, Key: "plan.tier", Comparator: Equals, Value: "gold"},
			f:    Facts{Contact: Contact{EmailAddress: "j@x.io", Properties: map[string]any{"plan": map[string]any{"tier": "gold"}}}},
			want: Evaluation{Operator: OperatorContactProperty, Key: "plan.tier", Comparator: Equals, Expected: "gold", Found: true, Seen: "gold", Result: true},
		},
		{
			name: "contact property does not read the event",
			c:    Condition{Operator: OperatorContactProperty, Key: "total", Comparator: Has},
			f:    Facts{Event: map[string]any{"total": n("1")}, Contact: Contact{EmailAddress: "j@x.io"}},
			want: Evaluation{Operator: OperatorContactProperty, Key: "total", Comparator: Has},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Evaluate(tt.c, tt.f)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateUnknown(t *testing.T) {
	_, err := Evaluate(Condition{Operator: "event_name", Key: "x", Comparator: Equals}, Facts{})
	if !errors.Is(err, ErrUnknownOperator) {
		t.Errorf("unknown operator: got %v, want ErrUnknownOperator", err)
	}
	_, err = Evaluate(Condition{Operator: OperatorEventKey, Key: "x", Comparator: "matches"}, Facts{})
	if !errors.Is(err, ErrUnknownComparator) {
		t.Errorf("unknown comparator: got %v, want ErrUnknownComparator", err)
	}
}

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want decimal
	}{
		{"0", true, decimal{}},
		{"-0.000", true, decimal{}},
		{"99.99", true, decimal{digits: "9999", exp: 2}},
		{"0099.9900", true, decimal{digits: "9999", exp: 2}},
		{"9.999e1", true, decimal{digits: "9999", exp: 2}},
		{"-0.05", true, decimal{neg: true, digits: "5", exp: -1}},
		{"+5", true, decimal{digits: "5", exp: 1}},
		{".5", true, decimal{digits: "5", exp: 0}},
		{"5.", true, decimal{digits: "5", exp: 1}},
		{"1E-3", true, decimal{digits: "1", exp: -2}},
		{"", false, decimal{}},
		{".", false, decimal{}},
		{"-", false, decimal{}},
		{"1e", false, decimal{}},
		{"1e+", false, decimal{}},
		{" 1", false, decimal{}},
		{"1 ", false, decimal{}},
		{"0x10", false, decimal{}},
		{"inf", false, decimal{}},
		{"NaN", false, decimal{}},
		{"1_000", false, decimal{}},
		{"1e1000000001", false, decimal{}},
		{"1.2.3", false, decimal{}},
	}
	for _, tt := range tests {
		got, ok := parseDecimal(tt.in)
		if ok != tt.ok {
			t.Errorf("parseDecimal(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(decimal{})); ok && diff != "" {
			t.Errorf("parseDecimal(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// FuzzEvaluate checks the evaluator's laws on arbitrary JSON properties and
// condition values: it never panics; not_equals is !equals and not_has is
// !has; a missing property makes only not_equals and not_has true; numeric
// comparisons are consistent (exactly one of <, =, > when both sides are
// numeric, mirrored when the sides swap) and agree with equals.
func FuzzEvaluate(f *testing.F) {
	seeds := []struct{ props, key, value string }{
		{`{"total": 99.99}`, "total", `50`},
		{`{"total": "99.99"}`, "total", `99.99`},
		{`{"ok": "true"}`, "ok", `true`},
		{`{"a": {"b": [1, "2", null]}}`, "a.b", `"2"`},
		{`{"a": {"b": [1, "2", null]}}`, "a.b.1", `2`},
		{`{"n": null}`, "n", `null`},
		{`{"s": "hello"}`, "s", `"ell"`},
		{`{"x": 1e400}`, "x", `1e400`},
		{`{"x": -0}`, "x", `0.0`},
		{`{}`, "missing", `""`},
	}
	for _, s := range seeds {
		f.Add(s.props, s.key, s.value)
	}
	f.Fuzz(func(t *testing.T, propsJSON, key, valueJSON string) {
		props, err := DecodeProperties([]byte(propsJSON))
		if err != nil {
			return
		}
		value, err := decodeValue([]byte(valueJSON))
		if err != nil {
			return
		}
		facts := Facts{Event: props, Contact: Contact{Properties: props}}
		results := map[Comparator]bool{}
		var seen any
		var found bool
		for _, c := range Comparators() {
			ev, err := Evaluate(Condition{Operator: OperatorEventKey, Key: key, Comparator: c, Value: value}, facts)
			if err != nil {
				t.Fatalf("Evaluate(%s): %v", c, err)
			}
			results[c] = ev.Result
			seen, found = ev.Seen, ev.Found
			// contact_property over the same map agrees for custom keys.
			if key != "first_name" && key != "last_name" && key != "email_address" {
				ev2, err := Evaluate(Condition{Operator: OperatorContactProperty, Key: key, Comparator: c, Value: value}, facts)
				if err != nil || ev2.Result != ev.Result {
					t.Fatalf("contact_property %s = %v (%v), event_key = %v", c, ev2.Result, err, ev.Result)
				}
			}
		}
		if results[NotEquals] != !results[Equals] {
			t.Errorf("not_equals %v, equals %v", results[NotEquals], results[Equals])
		}
		if results[NotHas] != !results[Has] {
			t.Errorf("not_has %v, has %v", results[NotHas], results[Has])
		}
		if !found {
			for c, r := range results {
				if want := c == NotEquals || c == NotHas; r != want {
					t.Errorf("missing property: %s = %v, want %v", c, r, want)
				}
			}
			return
		}
		if results[Has] != (seen != nil) {
			t.Errorf("has = %v with seen %#v", results[Has], seen)
		}
		a, okA := toDecimal(seen, true)
		b, okB := toDecimal(value, true)
		numeric := okA && okB
		gt, lt, ge, le := results[GreaterThan], results[LessThan], results[GreaterOrEqual], results[LessOrEqual]
		if !numeric {
			if gt || lt || ge || le {
				t.Errorf("non-numeric %#v vs %#v: gt %v lt %v ge %v le %v", seen, value, gt, lt, ge, le)
			}
			return
		}
		eq := !gt && !lt
		if n := btoi(gt) + btoi(lt) + btoi(eq); n != 1 {
			t.Errorf("trichotomy broken: gt %v lt %v", gt, lt)
		}
		if ge != (gt || eq) || le != (lt || eq) {
			t.Errorf("ge %v le %v inconsistent with gt %v lt %v", ge, le, gt, lt)
		}
		if a.cmp(b) != -b.cmp(a) {
			t.Errorf("antisymmetry broken: %#v vs %#v", seen, value)
		}
		// Swap the sides: the comparison mirrors.
		swapped, _ := Compare(GreaterThan, value, true, seen)
		if swapped != lt {
			t.Errorf("swap: %#v > %#v = %v, but %#v < %#v = %v", value, seen, swapped, seen, value, lt)
		}
		// When either side is a real number, equals agrees with numeric equality.
		if kindOf(seen) == kindNumber || kindOf(value) == kindNumber {
			if results[Equals] != eq {
				t.Errorf("equals %v but numeric equality %v for %#v vs %#v", results[Equals], eq, seen, value)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
