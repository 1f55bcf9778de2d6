package service

import "testing"

func TestSmoke(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	r := e.do("POST", "/v1/events", e.key, event("jane@example.com", "purchase_completed"))
	if r.Status != 200 {
		t.Fatalf("got %d %s", r.Status, r.Raw)
	}
	if got := e.streamCount(); got != 1 {
		t.Fatalf("used = %d, want 1", got)
	}
}
