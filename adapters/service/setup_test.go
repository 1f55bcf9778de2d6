package service

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// env is one test's Lark: a fresh database, an event store, a running
// Service behind an httptest server, and a workspace with a key.
type env struct {
	t     testing.TB
	svc   *Service
	http  *httptest.Server
	pool  *pgxpool.Pool
	esURL string
	ws    string
	key   string
}

type options struct {
	esURL string
	pool  *pgxpool.Pool
	limit int64
	cfg   func(*Config)
}

func setup(t *testing.T, o options) *env { return setupTB(t, o) }

func setupB(b *testing.B) *env { return setupTB(b, options{limit: 1 << 40}) }

func setupTB(t testing.TB, o options) *env {
	t.Helper()
	if o.pool == nil {
		o.pool = pgtest.NewPool(t)
	}
	if o.esURL == "" {
		o.esURL = esdbtest.URL(t)
	}
	if o.limit == 0 {
		o.limit = 1000
	}
	e := startService(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, key, err := e.svc.CreateWorkspace(ctx, "test", o.limit)
	if err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	e.ws, e.key = ws, key
	return e
}

// startService starts a Service that stops at cleanup.
func startService(t testing.TB, o options) *env {
	t.Helper()
	e, _ := startStoppable(t, o)
	return e
}

// startStoppable starts a Service behind an httptest server and returns a
// function that stops it (idempotent; cleanup calls it too).
func startStoppable(t testing.TB, o options) (*env, func()) {
	t.Helper()
	if o.pool == nil {
		o.pool = pgtest.NewPool(t)
	}
	if o.esURL == "" {
		o.esURL = esdbtest.URL(t)
	}
	cfg := Config{ESDBURL: o.esURL, Pool: o.pool, Logger: testLogger(t), ESDBCallTimeout: 2 * time.Second}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("new service: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	srv := httptest.NewServer(svc.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			cancel()
			wg.Wait()
			_ = svc.Close()
		})
	}
	t.Cleanup(stop)
	return &env{t: t, svc: svc, http: srv, pool: o.pool, esURL: o.esURL}, stop
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// do sends a request with the env's key (key "" = none).
func (e *env) do(method, path, key string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.Body)
	}
	return r
}

func (r resp) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) errField() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["field"].(string)
	return s
}

func (r resp) data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

func event(email, name string) map[string]any {
	return map[string]any{"email_address": email, "event_name": name, "properties": map[string]any{"total": 9.5}}
}

// streamCount counts the events of this workspace's current month stream
// straight from the event store.
func (e *env) streamCount() int64 {
	e.t.Helper()
	u := e.do("GET", "/v1/usage", e.key, nil)
	if u.Status != 200 {
		e.t.Fatalf("usage: %d %s", u.Status, u.Raw)
	}
	return int64(u.data()["used"].(float64))
}

func esdbtestURL(t *testing.T) string { return esdbtest.URL(t) }
