package service

import (
	"strings"
	"testing"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limit: 1})
	e.do("POST", "/v1/events", e.key, event("a@b.c", "x"))
	e.do("POST", "/v1/events", e.key, event("a@b.c", "x")) // refused: limit 1
	if r := e.do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Errorf("healthz: %d", r.Status)
	}
	if r := e.do("GET", "/readyz", "", nil); r.Status != 200 {
		t.Errorf("readyz: %d %s", r.Status, r.Raw)
	}
	if r := e.do("GET", "/v1/nope", e.key, nil); r.Status != 404 || r.errCode() != "not_found" {
		t.Errorf("unknown route: %d %s", r.Status, r.Raw)
	}
	if r := e.do("PUT", "/healthz", "", map[string]any{}); r.Status != 405 || r.errCode() != "method_not_allowed" {
		t.Errorf("wrong method: %d %s", r.Status, r.Raw)
	}
	m := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`lark_http_requests_total{method="POST",route="/v1/events",status="200"} 1`,
		`lark_http_requests_total{method="POST",route="/v1/events",status="429"} 1`,
		`lark_http_request_duration_seconds_bucket{method="POST",route="/v1/events",status="200"`,
		`lark_events_ingested_total 1`,
		`lark_usage_refusals_total 1`,
		`lark_projection_lag_seconds{projection="auth"}`,
		`lark_circuit_breaker_state{breaker="eventstore"} 0`,
		`lark_circuit_breaker_state{breaker="postgres"} 0`,
	} {
		if !strings.Contains(m.Raw, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
