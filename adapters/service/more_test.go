package service

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdbserver"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	first := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "k1")
	again := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "k1")
	if first.Status != 200 || again.Status != 200 || first.data()["id"] != again.data()["id"] {
		t.Fatalf("retry: first %d %s, again %d %s", first.Status, first.Raw, again.Status, again.Raw)
	}
	other := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "k2")
	if other.data()["id"] == first.data()["id"] {
		t.Errorf("another key got the same id")
	}
	// A first answer that was an error is also what retries get.
	bad := e.do("POST", "/v1/events", e.key, map[string]any{"event_name": "x"}, "Idempotency-Key", "k3")
	badAgain := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "k3")
	if bad.Status != 400 || badAgain.Status != 400 || badAgain.errField() != "email_address" {
		t.Errorf("error answer replay: %d then %d %s", bad.Status, badAgain.Status, badAgain.Raw)
	}
	// Batches too.
	body := map[string]any{"events": []any{event("a@b.c", "x"), map[string]any{}, event("b@b.c", "y")}}
	b1 := e.do("POST", "/v1/events/batch", e.key, body, "Idempotency-Key", "kb")
	b2 := e.do("POST", "/v1/events/batch", e.key, body, "Idempotency-Key", "kb")
	if d := cmp.Diff(b1.Body, b2.Body); d != "" || b1.Status != 200 {
		t.Errorf("batch replay differs (-first +again)\n%s", d)
	}
	if got := e.streamCount(); got != 4 {
		t.Errorf("used = %d, want 4 (k1, k2, two of kb)", got)
	}
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'k'
	}
	if r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", string(long)); r.Status != 400 || r.errField() != "Idempotency-Key" {
		t.Errorf("over-long key: %d %s", r.Status, r.Raw)
	}
	// Keys are per workspace.
	e2 := otherWorkspace(t, e)
	o := e2.do("POST", "/v1/events", e2.key, event("a@b.c", "x"), "Idempotency-Key", "k1")
	if o.Status != 200 || o.data()["id"] == first.data()["id"] {
		t.Errorf("same key in another workspace: %d %s", o.Status, o.Raw)
	}
}

// TestIdempotencyAfterCrash reproduces the state a crash leaves between the
// append and the recording of the answer (the claim still pending, its
// lease run out) and checks the retry recovers the stored answer.
func TestIdempotencyAfterCrash(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	first := e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": []any{
		event("a@b.c", "x"), map[string]any{"email_address": "bad"}, event("b@b.c", "y")}}, "Idempotency-Key", "crash")
	if first.Status != 200 {
		t.Fatalf("first: %d %s", first.Status, first.Raw)
	}
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `UPDATE idempotency_keys SET state = 'pending', status = NULL, body = NULL,
		lease_until = now() - interval '1 second' WHERE key = 'crash'`); err != nil {
		t.Fatal(err)
	}
	again := e.do("POST", "/v1/events/batch", e.key, map[string]any{"events": []any{
		event("a@b.c", "x"), map[string]any{"email_address": "bad"}, event("b@b.c", "y")}}, "Idempotency-Key", "crash")
	if d := cmp.Diff(first.Body, again.Body); d != "" {
		t.Errorf("recovered answer (-first +again)\n%s", d)
	}
	if got := e.streamCount(); got != 2 {
		t.Errorf("used = %d, want 2", got)
	}
	// While a claim's lease runs, a concurrent retry is told to wait.
	if _, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (workspace_id, key, state, lease_until, created_at)
		VALUES ($1, 'busy', 'pending', now() + interval '1 minute', now())`, e.ws); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "busy")
	if r.Status != 409 || r.errCode() != "idempotency_in_flight" || r.Header.Get("Retry-After") == "" {
		t.Errorf("in flight: %d %s", r.Status, r.Raw)
	}
	// A lapsed claim whose request stored nothing runs afresh.
	if _, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (workspace_id, key, state, lease_until, created_at)
		VALUES ($1, 'lost', 'pending', now() - interval '1 second', now())`, e.ws); err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"), "Idempotency-Key", "lost"); r.Status != 200 {
		t.Errorf("lapsed empty claim: %d %s", r.Status, r.Raw)
	}
	if got := e.streamCount(); got != 3 {
		t.Errorf("used = %d, want 3", got)
	}
}

func otherWorkspace(t *testing.T, e *env) *env {
	t.Helper()
	ws, key, err := e.svc.CreateWorkspace(context.Background(), "other", 100)
	if err != nil {
		t.Fatal(err)
	}
	o := *e
	o.ws, o.key = ws, key
	return &o
}

func TestEventStoreDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := esdbserver.Start(context.Background(), esdbserver.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	e := setup(t, options{esURL: srv.URL()})
	if r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x")); r.Status != 200 {
		t.Fatalf("before: %d %s", r.Status, r.Raw)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	var open []time.Duration // once the breaker is open
	for i := 0; i < 25; i++ {
		start := time.Now()
		r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x"))
		d := time.Since(start)
		if r.Status != 503 || r.errCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("store down, request %d: %d %s (Retry-After %q)", i, r.Status, r.Raw, r.Header.Get("Retry-After"))
		}
		if i >= 5 {
			open = append(open, d)
		}
	}
	// The breaker lets one probe through every second (which may take the
	// call timeout); the others answer at once.
	sort.Slice(open, func(i, j int) bool { return open[i] < open[j] })
	if median := open[len(open)/2]; median > 50*time.Millisecond {
		t.Errorf("with the breaker open, the median 503 took %v, want milliseconds", median)
	}
	if r := e.do("GET", "/readyz", "", nil); r.Status != 503 {
		t.Errorf("readyz with the store down: %d", r.Status)
	}
	// Back up on the same address and data: nothing of the refused events
	// was stored, and the service recovers by itself.
	srv2, err := esdbserver.Start(context.Background(), esdbserver.Config{Listen: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv2.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.do("GET", "/v1/usage", e.key, nil)
		if r.Status == 200 {
			if got := r.data()["used"].(float64); got != 1 {
				t.Errorf("after the outage used = %v, want 1", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not recover: %d %s", r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.do("POST", "/v1/events", e.key, event("a@b.c", "x")); r.Status != 200 {
		t.Errorf("after recovery: %d %s", r.Status, r.Raw)
	}
}

func TestContacts(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	c := e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "Jane@Example.com", "first_name": "Jane",
		"properties": map[string]any{"plan": "pro", "seats": 3}})
	if c.Status != 201 || c.data()["email_address"] != "Jane@Example.com" {
		t.Fatalf("create: %d %s", c.Status, c.Raw)
	}
	// Read-your-writes, case-insensitive identity.
	g := e.do("GET", "/v1/contacts/"+url.PathEscape("jane@EXAMPLE.com"), e.key, nil)
	if g.Status != 200 || g.data()["first_name"] != "Jane" || g.data()["id"] != c.data()["id"] {
		t.Fatalf("get: %d %s", g.Status, g.Raw)
	}
	if r := e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "JANE@example.com"}); r.Status != 409 || r.errCode() != "contact_exists" {
		t.Errorf("duplicate: %d %s", r.Status, r.Raw)
	}
	p := e.do("PATCH", "/v1/contacts/jane@example.com", e.key, map[string]any{"last_name": "Doe",
		"properties": map[string]any{"seats": 5, "plan": nil, "new": "x"}})
	want := map[string]any{"email_address": "Jane@Example.com", "first_name": "Jane", "last_name": "Doe",
		"properties": map[string]any{"seats": float64(5), "new": "x"}}
	got := map[string]any{}
	for k := range want {
		got[k] = p.data()[k]
	}
	if d := cmp.Diff(want, got); p.Status != 200 || d != "" {
		t.Errorf("patch %d (-want +got)\n%s", p.Status, d)
	}
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", "/v1/contacts/nobody@example.com", nil, 404, "not_found"},
		{"PATCH", "/v1/contacts/nobody@example.com", map[string]any{"first_name": "x"}, 404, "not_found"},
		{"DELETE", "/v1/contacts/nobody@example.com", nil, 404, "not_found"},
		{"POST", "/v1/contacts", map[string]any{"email_address": "x"}, 400, "invalid_email"},
		{"POST", "/v1/contacts", map[string]any{"email_address": "x@y.z", "first_name": 3}, 400, "invalid_type"},
		{"POST", "/v1/contacts", "{", 400, "invalid_json"},
		{"GET", "/v1/contacts?limit=0", nil, 400, "invalid_value"},
		{"GET", "/v1/contacts?limit=501", nil, 400, "invalid_value"},
		{"GET", "/v1/contacts?cursor=!!!", nil, 400, "invalid_value"},
	} {
		r := e.do(tc.method, tc.path, e.key, tc.body)
		if r.Status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s %s: got %d %s, want %d %s", tc.method, tc.path, r.Status, r.Raw, tc.status, tc.code)
		}
	}
	if r := e.do("DELETE", "/v1/contacts/JANE@example.com", e.key, nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := e.do("GET", "/v1/contacts/jane@example.com", e.key, nil); r.Status != 404 {
		t.Errorf("get after delete: %d", r.Status)
	}
	// The email can be added again.
	if r := e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "jane@example.com"}); r.Status != 201 {
		t.Errorf("re-create: %d %s", r.Status, r.Raw)
	}
	// Paging with a cursor through 7 contacts, 3 at a time.
	var wantEmails []string
	wantEmails = append(wantEmails, "jane@example.com")
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		em := fmt.Sprintf("user%d@example.com", i)
		wantEmails = append(wantEmails, em)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": em}); r.Status != 201 {
				t.Errorf("create %s: %d %s", em, r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	sort.Strings(wantEmails)
	var gotEmails []string
	cursor, pages := "", 0
	for {
		r := e.do("GET", "/v1/contacts?limit=3&cursor="+url.QueryEscape(cursor), e.key, nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		pages++
		for _, x := range r.Body["data"].([]any) {
			gotEmails = append(gotEmails, x.(map[string]any)["email_address"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if _, present := r.Body["next_cursor"]; !present {
			t.Fatalf("no next_cursor field: %s", r.Raw)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if d := cmp.Diff(wantEmails, gotEmails); d != "" || pages != 3 {
		t.Errorf("paging (%d pages) (-want +got)\n%s", pages, d)
	}
	// Isolation: another workspace sees none of it.
	o := otherWorkspace(t, e)
	if r := o.do("GET", "/v1/contacts/jane@example.com", o.key, nil); r.Status != 404 {
		t.Errorf("other workspace sees the contact: %d", r.Status)
	}
	if r := o.do("GET", "/v1/contacts", o.key, nil); len(r.Body["data"].([]any)) != 0 || r.Body["next_cursor"] != nil {
		t.Errorf("other workspace lists: %s", r.Raw)
	}
	if r := o.do("POST", "/v1/contacts", o.key, map[string]any{"email_address": "jane@example.com"}); r.Status != 201 {
		t.Errorf("same email in another workspace: %d %s", r.Status, r.Raw)
	}
	if r := o.do("GET", "/v1/usage", o.key, nil); r.data()["used"].(float64) != 0 {
		t.Errorf("other workspace usage: %s", r.Raw)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	k := e.do("POST", "/v1/api-keys", e.key, map[string]any{"name": "ci"})
	if k.Status != 201 {
		t.Fatalf("create: %d %s", k.Status, k.Raw)
	}
	secret := k.data()["key"].(string)
	if p := k.data()["prefix"].(string); len(p) == 0 || secret[:len(p)] != p {
		t.Errorf("prefix %q of %q", p, secret)
	}
	if r := e.do("POST", "/v1/api-keys", e.key, map[string]any{"name": ""}); r.Status != 400 || r.errField() != "name" {
		t.Errorf("empty name: %d %s", r.Status, r.Raw)
	}
	if r := e.do("GET", "/v1/usage", secret, nil); r.Status != 200 {
		t.Fatalf("new key: %d", r.Status)
	}
	l := e.do("GET", "/v1/api-keys", e.key, nil)
	keys := l.Body["data"].([]any)
	if len(keys) != 2 {
		t.Fatalf("list: %s", l.Raw)
	}
	for _, x := range keys {
		m := x.(map[string]any)
		if _, ok := m["key"]; ok {
			t.Errorf("listing shows a secret: %v", m)
		}
		if m["last_used_at"] == nil {
			t.Errorf("key %v has no last_used_at although used", m["name"])
		}
	}
	// Only a hash is stored.
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM api_keys WHERE hash = $1 OR prefix = $1`, secret).Scan(&n); err != nil || n != 0 {
		t.Errorf("secret found in api_keys (%d, %v)", n, err)
	}
	// Paging.
	p1 := e.do("GET", "/v1/api-keys?limit=1", e.key, nil)
	p2 := e.do("GET", "/v1/api-keys?limit=1&cursor="+url.QueryEscape(p1.Body["next_cursor"].(string)), e.key, nil)
	if p2.Body["next_cursor"] != nil || p2.Body["data"].([]any)[0].(map[string]any)["name"] != "ci" {
		t.Errorf("paging: %s then %s", p1.Raw, p2.Raw)
	}
	// Another workspace cannot revoke or see it.
	o := otherWorkspace(t, e)
	if r := o.do("DELETE", "/v1/api-keys/"+k.data()["id"].(string), o.key, nil); r.Status != 404 {
		t.Errorf("revoke from another workspace: %d", r.Status)
	}
	if r := o.do("GET", "/v1/api-keys", o.key, nil); len(r.Body["data"].([]any)) != 1 {
		t.Errorf("other workspace lists %s", r.Raw)
	}
	if r := e.do("DELETE", "/v1/api-keys/"+k.data()["id"].(string), e.key, nil); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if r := e.do("GET", "/v1/usage", secret, nil); r.Status != 401 {
		t.Errorf("revoked key: %d", r.Status)
	}
	if r := e.do("DELETE", "/v1/api-keys/nope", e.key, nil); r.Status != 404 {
		t.Errorf("unknown key: %d", r.Status)
	}
}

// TestRevokeAcrossServices: a key cached by one process is refused there
// as soon as another process has revoked it.
func TestRevokeAcrossServices(t *testing.T) {
	t.Parallel()
	a := setup(t, options{})
	b := startService(t, options{esURL: a.esURL, pool: a.pool})
	k := a.do("POST", "/v1/api-keys", a.key, map[string]any{"name": "x"})
	secret := k.data()["key"].(string)
	deadline := time.Now().Add(5 * time.Second)
	for b.do("GET", "/v1/usage", secret, nil).Status != 200 { // cached in b
		if time.Now().After(deadline) {
			t.Fatal("b never accepted the key")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.do("GET", "/v1/usage", secret, nil)
	if r := a.do("DELETE", "/v1/api-keys/"+k.data()["id"].(string), a.key, nil); r.Status != 204 {
		t.Fatalf("revoke: %d", r.Status)
	}
	// Refused by b as soon as the NOTIFY arrives: milliseconds, long
	// before the cache's one-minute safety TTL.
	deadline = time.Now().Add(time.Second)
	for b.do("GET", "/v1/usage", secret, nil).Status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("b still accepts the revoked key after 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWorkspaceCreateWithoutServer: creating a workspace from a process
// that does not run the projections (lark workspace create with no lark
// serve) still answers with a usable, projected workspace; and the default
// workspace is created once however many processes race.
func TestWorkspaceCreateWithoutServer(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	url := esdbtestURL(t)
	svc, err := New(context.Background(), Config{ESDBURL: url, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, key, err := svc.CreateWorkspace(ctx, "cli", 7)
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.authn.Authenticate(ctx, key)
	if err != nil || p.WorkspaceID != ws || p.EventLimit != 7 {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	var mu sync.Mutex
	created, keys := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(ctx, Config{ESDBURL: url, Pool: pool})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			k, ok, err := s.EnsureDefaultWorkspace(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				created++
			}
			if k != "" {
				keys++
				if _, err := s.authn.Authenticate(ctx, k); err != nil {
					t.Errorf("default key: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if created != 1 || keys != 1 {
		t.Errorf("default workspace created %d times, %d keys handed out; want 1, 1", created, keys)
	}
}
