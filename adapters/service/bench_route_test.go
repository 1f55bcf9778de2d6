package service

import "testing"

// The no-op route exists only when asked for, sits behind the same auth and
// body limits as POST /v1/events, and stores nothing.
func TestBenchRoute(t *testing.T) {
	t.Parallel()
	off := setup(t, options{})
	if r := off.do("POST", "/v1/_bench/noop", off.key, event("a@example.com", "x")); r.Status != 404 {
		t.Fatalf("without BenchRoutes: status %d, want 404", r.Status)
	}

	on := setup(t, options{cfg: func(c *Config) { c.BenchRoutes = true }})
	if r := on.do("POST", "/v1/_bench/noop", "", event("a@example.com", "x")); r.Status != 401 {
		t.Fatalf("no key: status %d, want 401", r.Status)
	}
	if r := on.do("POST", "/v1/_bench/noop", on.key, "x", "Content-Type", "text/plain"); r.Status != 415 {
		t.Fatalf("text/plain: status %d, want 415", r.Status)
	}
	for range 3 {
		if r := on.do("POST", "/v1/_bench/noop", on.key, event("a@example.com", "x")); r.Status != 200 || r.data()["queued"] != true {
			t.Fatalf("noop: %d %s", r.Status, r.Raw)
		}
	}
	if n := on.streamCount(); n != 0 {
		t.Fatalf("the no-op route stored %d events", n)
	}
}
