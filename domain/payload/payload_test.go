package payload_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // failure code, "" = ok
	}{
		{"object", `{"a":1}`, ""},
		{"whitespace around", " \n{\"a\":1}\n ", ""},
		{"array", `[]`, failure.InvalidBody},
		{"string", `"x"`, failure.InvalidBody},
		{"null", `null`, failure.InvalidBody},
		{"truncated", `{"a":`, failure.InvalidJSON},
		{"two values", `{} {}`, failure.InvalidJSON},
		{"raw NUL", "{\"a\":\"\x00\"}", failure.InvalidJSON},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", failure.InvalidJSON},
		{"empty", ``, failure.InvalidJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := payload.Decode([]byte(tc.body))
			got := ""
			if err != nil {
				got = failure.Code(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

func TestCheckEmail(t *testing.T) {
	for email, ok := range map[string]bool{
		"jane@example.com": true, "Jane.Doe+tag@sub.example.co": true, "ü@例え.jp": true,
		"": false, "jane": false, "@example.com": false, "jane@": false, "a@b@c": false,
		"ja ne@example.com": false, "jane@exa\tmple.com": false,
		strings.Repeat("a", 243) + "@example.com": false, strings.Repeat("a", 242) + "@example.com": true,
	} {
		err := payload.CheckEmail("email_address", email)
		if (err == nil) != ok {
			t.Errorf("CheckEmail(%q) = %v, want ok=%v", email, err, ok)
		}
	}
}

func TestProperties(t *testing.T) {
	l := payload.Limits{MaxProperties: 4, MaxKeyBytes: 3, MaxStringBytes: 5, MaxDepth: 2}
	tests := []struct {
		name      string
		body      string
		wantCode  string
		wantField string
	}{
		{"absent", `{}`, "", ""},
		{"null", `{"properties":null}`, "", ""},
		{"ok", `{"properties":{"a":1,"b":{"c":[1]}}}`, "", ""},
		{"not object", `{"properties":"x"}`, failure.InvalidType, "properties"},
		{"too many", `{"properties":{"a":1,"b":2,"c":3,"d":4,"e":5}}`, failure.TooManyProperties, "properties"},
		{"array elements count", `{"properties":{"a":[1,2,3,4,5]}}`, failure.TooManyProperties, "properties"},
		{"key too long", `{"properties":{"abcd":1}}`, failure.TooLong, "properties"},
		{"string too long", `{"properties":{"a":"123456"}}`, failure.TooLong, "properties.a"},
		{"deep enough", `{"properties":{"a":{"b":1}}}`, "", ""},
		{"too deep", `{"properties":{"a":{"b":{"c":{}}}}}`, failure.TooDeep, "properties.a.b.c"},
		{"too deep array", `{"properties":{"a":[[1]]}}`, "", ""},
		{"too deep arrays", `{"properties":{"a":[[[]]]}}`, failure.TooDeep, "properties.a[0][0]"},
		{"NUL in value", `{"properties":{"a":"x\u0000"}}`, failure.InvalidValue, "properties.a"},
		{"NUL in key", `{"properties":{"\u0000":1}}`, failure.InvalidValue, "properties"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := payload.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = o.Properties("properties", l)
			var code, field string
			if err != nil {
				fe := err.(*failure.Error)
				code, field = fe.Code, fe.Field
			}
			if d := cmp.Diff([]string{tc.wantCode, tc.wantField}, []string{code, field}); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}
