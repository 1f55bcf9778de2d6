package service

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPostEventStatuses(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	long := strings.Repeat("a", 250) + "@example.com"
	deep := map[string]any{}
	cur := deep
	for i := 0; i < 12; i++ {
		n := map[string]any{}
		cur["x"] = n
		cur = n
	}
	many := map[string]any{}
	for i := 0; i < 1001; i++ {
		many[fmt.Sprint("k", i)] = i
	}
	tests := []struct {
		name      string
		body      any
		hdr       []string
		wantCode  string
		wantField string
		want      int
	}{
		{"missing email", map[string]any{"event_name": "x"}, nil, "missing_field", "email_address", 400},
		{"null email", map[string]any{"email_address": nil, "event_name": "x"}, nil, "missing_field", "email_address", 400},
		{"empty email", map[string]any{"email_address": "", "event_name": "x"}, nil, "invalid_email", "email_address", 400},
		{"email wrong type", map[string]any{"email_address": 12, "event_name": "x"}, nil, "invalid_type", "email_address", 400},
		{"email no at", map[string]any{"email_address": "jane.example.com", "event_name": "x"}, nil, "invalid_email", "email_address", 400},
		{"email two ats", map[string]any{"email_address": "a@b@c", "event_name": "x"}, nil, "invalid_email", "email_address", 400},
		{"email empty domain", map[string]any{"email_address": "jane@", "event_name": "x"}, nil, "invalid_email", "email_address", 400},
		{"email too long", map[string]any{"email_address": long, "event_name": "x"}, nil, "invalid_email", "email_address", 400},
		{"missing name", map[string]any{"email_address": "a@b.c"}, nil, "missing_field", "event_name", 400},
		{"empty name", map[string]any{"email_address": "a@b.c", "event_name": ""}, nil, "invalid_value", "event_name", 400},
		{"name wrong type", map[string]any{"email_address": "a@b.c", "event_name": true}, nil, "invalid_type", "event_name", 400},
		{"name too long", map[string]any{"email_address": "a@b.c", "event_name": strings.Repeat("n", 256)}, nil, "value_too_long", "event_name", 400},
		{"properties not object", map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": []int{1}}, nil, "invalid_type", "properties", 400},
		{"properties too deep", map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": deep}, nil, "too_deeply_nested", "properties.x.x.x.x.x.x.x.x.x.x.x", 400},
		{"too many properties", map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": many}, nil, "too_many_properties", "properties", 400},
		{"key too long", map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": map[string]any{strings.Repeat("k", 256): 1}}, nil, "value_too_long", "properties", 400},
		{"value too long", map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": map[string]any{"k": strings.Repeat("v", 64<<10+1)}}, nil, "value_too_long", "properties.k", 400},
		{"escaped NUL", `{"email_address":"a@b.c","event_name":"x\u0000y"}`, nil, "invalid_value", "event_name", 400},
		{"raw NUL", "{\"email_address\":\"a@b.c\",\"event_name\":\"x\x00\"}", nil, "invalid_json", "", 400},
		{"invalid UTF-8", "{\"email_address\":\"a@b.c\",\"event_name\":\"\xff\xfe\"}", nil, "invalid_json", "", 400},
		{"bad JSON", `{"email_address":`, nil, "invalid_json", "", 400},
		{"trailing data", `{"email_address":"a@b.c","event_name":"x"} {}`, nil, "invalid_json", "", 400},
		{"not an object", `["a"]`, nil, "invalid_body", "", 400},
		{"empty body", ``, nil, "invalid_json", "", 400},
		{"text content type", `{}`, []string{"Content-Type", "text/plain"}, "unsupported_media_type", "", 415},
		{"no content type", `{}`, []string{"Content-Type", ""}, "unsupported_media_type", "", 415},
		{"too large", `{"email_address":"a@b.c","event_name":"x","properties":{"k":"` + strings.Repeat("v", 256<<10) + `"}}`, nil, "payload_too_large", "", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do("POST", "/v1/events", e.key, tc.body, tc.hdr...)
			got := []any{r.Status, r.errCode(), r.errField()}
			want := []any{tc.want, tc.wantCode, tc.wantField}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s\nbody %s", d, r.Raw)
			}
			if msg, _ := r.Body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Errorf("no error message: %s", r.Raw)
			}
		})
	}
	e.t = t
	if got := e.streamCount(); got != 0 {
		t.Errorf("after refused events, used = %d, want 0", got)
	}
	// Accepted: unicode, nested properties, unknown fields ignored.
	r := e.do("POST", "/v1/events", e.key, map[string]any{"email_address": "Jöhn@Example.com", "event_name": "Größe 🚀",
		"properties": map[string]any{"a": map[string]any{"b": []any{1, "x", nil, true}}}, "unknown": 1})
	if r.Status != 200 || r.data()["queued"] != true || r.data()["id"] == "" {
		t.Fatalf("accepted event: %d %s", r.Status, r.Raw)
	}
	if got := e.streamCount(); got != 1 {
		t.Errorf("used = %d, want 1", got)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	for _, tc := range []struct{ name, auth string }{
		{"missing", ""},
		{"not bearer", "Basic " + e.key},
		{"unknown", "Bearer lark_0000000000000000000000000000000000000000000000"},
	} {
		r := e.do("POST", "/v1/events", "", event("a@b.c", "x"), "Authorization", tc.auth)
		if r.Status != 401 || r.errCode() != "unauthorized" {
			t.Errorf("%s: got %d %s, want 401 unauthorized", tc.name, r.Status, r.Raw)
		}
	}
	// Revoked: use the key first so that it is cached, revoke it with
	// another key, and it is refused at once.
	k := e.do("POST", "/v1/api-keys", e.key, map[string]any{"name": "second"})
	if k.Status != 201 {
		t.Fatalf("create key: %d %s", k.Status, k.Raw)
	}
	second := k.data()["key"].(string)
	if r := e.do("POST", "/v1/events", second, event("a@b.c", "x")); r.Status != 200 {
		t.Fatalf("second key: %d %s", r.Status, r.Raw)
	}
	if r := e.do("DELETE", "/v1/api-keys/"+k.data()["id"].(string), e.key, nil); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	for _, path := range []string{"/v1/events", "/v1/usage"} {
		method, body := "POST", any(event("a@b.c", "x"))
		if path == "/v1/usage" {
			method, body = "GET", nil
		}
		if r := e.do(method, path, second, body); r.Status != 401 || r.errCode() != "unauthorized" {
			t.Errorf("revoked key on %s: got %d %s, want 401", path, r.Status, r.Raw)
		}
	}
	if got := e.streamCount(); got != 1 {
		t.Errorf("used = %d, want 1", got)
	}
}

// TestUsageLimitExact: 120 concurrent events against a limit of 50.
func TestUsageLimitExact(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limit: 50})
	statuses := fire(t, 120, func(i int) *env { return e }, e.key)
	want := map[int]int{200: 50, 429: 70}
	if d := cmp.Diff(want, statuses); d != "" {
		t.Errorf("statuses (-want +got)\n%s", d)
	}
	if got := e.streamCount(); got != 50 {
		t.Errorf("stream holds %d events, want 50", got)
	}
	u := e.do("GET", "/v1/usage", e.key, nil)
	if u.data()["limit"].(float64) != 50 || u.data()["used"].(float64) != 50 {
		t.Errorf("usage %s", u.Raw)
	}
	r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"))
	if r.Status != 429 || r.errCode() != "usage_limit_reached" {
		t.Errorf("past the limit: %d %s", r.Status, r.Raw)
	}
}

// TestUsageLimitExactTwoServices: two Services share one event store and one
// database; the limit holds across them.
func TestUsageLimitExactTwoServices(t *testing.T) {
	t.Parallel()
	a := setup(t, options{limit: 50})
	b := startService(t, options{esURL: a.esURL, pool: a.pool})
	b.key, b.ws = a.key, a.ws
	statuses := fire(t, 120, func(i int) *env {
		if i%2 == 0 {
			return a
		}
		return b
	}, a.key)
	want := map[int]int{200: 50, 429: 70}
	if d := cmp.Diff(want, statuses); d != "" {
		t.Errorf("statuses (-want +got)\n%s", d)
	}
	if got := a.streamCount(); got != 50 {
		t.Errorf("stream holds %d events, want 50", got)
	}
}

func fire(t *testing.T, n int, pick func(i int) *env, key string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e := pick(i)
			req, _ := http.NewRequest("POST", e.http.URL+"/v1/events",
				strings.NewReader(fmt.Sprintf(`{"email_address":"u%d@example.com","event_name":"x"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			mu.Lock()
			statuses[res.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}

func TestBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limit: 4})
	r := e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": []any{
		event("a@b.c", "one"),
		map[string]any{"email_address": "nope", "event_name": "bad"},
		"not an object",
		event("b@b.c", "two"),
		event("c@b.c", "three"),
		map[string]any{"email_address": "d@b.c"},
		event("d@b.c", "four"),
		event("e@b.c", "five: over the limit"),
		event("f@b.c", "six: over the limit"),
	}})
	if r.Status != 200 {
		t.Fatalf("batch: %d %s", r.Status, r.Raw)
	}
	var got []string
	for _, x := range r.data()["results"].([]any) {
		m := x.(map[string]any)
		s := fmt.Sprint(m["status"])
		if e, ok := m["error"].(map[string]any); ok {
			s += " " + e["code"].(string)
		} else if m["id"] == "" || m["id"] == nil {
			s += " no id"
		}
		got = append(got, s)
	}
	want := []string{"200", "400 invalid_email", "400 invalid_body", "200", "200", "400 missing_field", "200",
		"429 usage_limit_reached", "429 usage_limit_reached"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got)\n%s", d)
	}
	if got := e.streamCount(); got != 4 {
		t.Errorf("used = %d, want 4", got)
	}
	// Problems with the request as a whole.
	evs := make([]any, 501)
	for i := range evs {
		evs[i] = event("a@b.c", "x")
	}
	for _, tc := range []struct {
		body any
		want int
		code string
	}{
		{map[string]any{"events": evs}, 400, "too_many_events"},
		{map[string]any{"events": "x"}, 400, "invalid_type"},
		{map[string]any{}, 400, "missing_field"},
		{`[1]`, 400, "invalid_body"},
		{`{"events": [`, 400, "invalid_json"},
	} {
		r := e.do("POST", "/v1/events/batch", e.key, tc.body)
		if r.Status != tc.want || r.errCode() != tc.code {
			t.Errorf("got %d %s, want %d %s", r.Status, r.errCode(), tc.want, tc.code)
		}
	}
	if r := e.do("POST", "/v1/events/batch", "", map[string]any{"events": []any{}}); r.Status != 401 {
		t.Errorf("batch without key: %d", r.Status)
	}
}

func TestBatchSizeLimits(t *testing.T) {
	t.Parallel()
	e := setup(t, options{cfg: func(c *Config) { c.MaxBatchBytes = 2 << 20 }})
	// Over the configured batch limit: 413.
	big := strings.Repeat("v", 60<<10)
	evs := make([]any, 20) // 1.2 MiB
	for i := range evs {
		evs[i] = map[string]any{"email_address": "a@b.c", "event_name": "x", "properties": map[string]any{"k": big}}
	}
	if r := e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": append(evs, evs...)}); r.Status != 413 || r.errCode() != "payload_too_large" {
		t.Errorf("over the batch limit: %d %s", r.Status, r.Raw)
	}
	// Under the body limit but over what one atomic append can hold: 413,
	// nothing stored.
	if r := e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": evs}); r.Status != 413 {
		t.Errorf("over the append limit: %d %s", r.Status, r.Raw)
	}
	if got := e.streamCount(); got != 0 {
		t.Errorf("used = %d, want 0", got)
	}
}
