// Package httpapi is Lark's HTTP API (echo): the routes of SPEC §2.1–2.3
// and GET /v1/usage, /healthz, /readyz and /metrics, with bearer-key
// authentication, JSON content-type and body-size checks, request metrics
// and structured request logs. Errors are rendered in one place
// (errors.go) from Lark's failure codes.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/larkhq/lark/commands/ingest"
	"github.com/larkhq/lark/commands/workspaces"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
	"github.com/larkhq/lark/projections/auth"
	"github.com/larkhq/lark/projections/contacts"
)

// Usage is a workspace's usage of the current period.
type Usage struct {
	Period string `json:"period"`
	Used   int64  `json:"used"`
	Limit  int64  `json:"limit"`
}

// Deps are what the API calls. Every func field is required.
type Deps struct {
	AuthenticateFunc func(ctx context.Context, secret string) (auth.Principal, error)
	SendFunc         func(ctx context.Context, r ingest.Request) ([]ingest.Result, error)
	UsageFunc        func(ctx context.Context, p auth.Principal) (Usage, error)

	CreateContactFunc func(ctx context.Context, ws string, f contact.Fields) error
	PatchContactFunc  func(ctx context.Context, ws, email string, f contact.Fields) error
	DeleteContactFunc func(ctx context.Context, ws, email string) error
	GetContactFunc    func(ctx context.Context, ws, email string) (contacts.Contact, error)
	ListContactsFunc  func(ctx context.Context, ws string, limit int, cursor string) ([]contacts.Contact, string, error)

	CreateKeyFunc func(ctx context.Context, ws, name string) (workspaces.CreatedKey, error)
	RevokeKeyFunc func(ctx context.Context, ws, keyID string) error
	ListKeysFunc  func(ctx context.Context, ws string, limit int, cursor string) ([]auth.Key, string, error)

	ReadyFunc func(ctx context.Context) error

	// AutomationDeps serve SPEC §2.4–2.5 (automations.go, runs.go).
	AutomationDeps
	// ExplainDeps serve SPEC §2.6 and GET /v1/events/{id} (explain.go).
	ExplainDeps
	// AnalyticsDeps serve SPEC §2.7 (analytics.go).
	AnalyticsDeps

	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Limits     payload.Limits
	// MaxEventBytes bounds single-event and other bodies; MaxBatchBytes
	// bounds POST /v1/events/batch.
	MaxEventBytes, MaxBatchBytes int64
	// BenchRoutes adds POST /v1/_bench/noop: the same middleware as
	// POST /v1/events (auth, body limit, metrics, logs) and a handler that
	// stores nothing, so `make bench` can measure the HTTP ceiling of the
	// machine in the same run as the real route. Off unless LARK_BENCH_ROUTES=1.
	BenchRoutes bool
}

type api struct {
	Deps
	log      *slog.Logger
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

const principalKey = "lark.principal"

// New builds the handler.
func New(d Deps) (http.Handler, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxEventBytes <= 0 {
		d.MaxEventBytes = 256 << 10
	}
	if d.MaxBatchBytes <= 0 {
		d.MaxBatchBytes = 5 << 20
	}
	a := &api{Deps: d, log: d.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lark_http_requests_total",
			Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lark_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"route", "method", "status"}),
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{a.requests, a.latency} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	e.Use(a.observe)

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"data": map[string]string{"status": "ok"}})
	})
	e.GET("/readyz", a.readyz)
	if d.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})))
	}

	v1 := e.Group("/v1", a.authenticate)
	v1.POST("/events", a.postEvent, a.jsonBody(func() int64 { return a.MaxEventBytes }))
	v1.POST("/events/batch", a.postBatch, a.jsonBody(func() int64 { return a.MaxBatchBytes }))
	v1.GET("/usage", a.getUsage)
	v1.POST("/contacts", a.createContact, a.jsonBody(func() int64 { return a.MaxEventBytes }))
	v1.GET("/contacts", a.listContacts)
	v1.GET("/contacts/:email", a.getContact)
	v1.PATCH("/contacts/:email", a.patchContact, a.jsonBody(func() int64 { return a.MaxEventBytes }))
	v1.DELETE("/contacts/:email", a.deleteContact)
	v1.POST("/api-keys", a.createKey, a.jsonBody(func() int64 { return a.MaxEventBytes }))
	v1.GET("/api-keys", a.listKeys)
	v1.DELETE("/api-keys/:id", a.revokeKey)
	a.automationRoutes(v1)
	a.explainRoutes(v1)
	a.analyticsRoutes(v1)
	if d.BenchRoutes {
		v1.POST("/_bench/noop", a.benchNoop, a.jsonBody(func() int64 { return a.MaxEventBytes }))
	}
	return e, nil
}

// observe records metrics and a structured log line per request.
func (a *api) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		method := c.Request().Method
		st := strconv.Itoa(status)
		d := time.Since(start)
		a.requests.WithLabelValues(route, method, st).Inc()
		a.latency.WithLabelValues(route, method, st).Observe(d.Seconds())
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status < 300 && strings.HasPrefix(route, "/v1/events"):
			level = slog.LevelDebug // the hot path: thousands per second
		}
		if a.log.Enabled(c.Request().Context(), level) {
			attrs := []any{"method", method, "route", route, "path", c.Request().URL.Path, "status", status,
				"duration_ms", float64(d.Microseconds()) / 1000}
			if p, ok := c.Get(principalKey).(auth.Principal); ok {
				attrs = append(attrs, "workspace_id", p.WorkspaceID)
			}
			a.log.Log(c.Request().Context(), level, "http request", attrs...)
		}
		return nil
	}
}

func (a *api) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := a.ReadyFunc(ctx); err != nil {
		return failure.Wrap(failure.Unavailable, err, "not ready: %v", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]string{"status": "ready"}})
}

func (a *api) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		scheme, secret, _ := strings.Cut(h, " ")
		if h == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			return failure.New(failure.Unauthorized, "missing API key: send Authorization: Bearer <key>")
		}
		p, err := a.AuthenticateFunc(c.Request().Context(), strings.TrimSpace(secret))
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

func principal(c echo.Context) auth.Principal { return c.Get(principalKey).(auth.Principal) }

const bodyKey = "lark.body"

// jsonBody checks the Content-Type (415) and reads the body up to max
// bytes (413).
func (a *api) jsonBody(max func() int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || !(mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
				return failure.New(failure.UnsupportedMedia, "Content-Type must be application/json")
			}
			limit := max()
			if r.ContentLength > limit {
				return failure.New(failure.PayloadTooLarge, "request body is over the %d byte limit", limit)
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				return failure.Wrap(failure.InvalidBody, err, "could not read the request body")
			}
			if int64(len(body)) > limit {
				return failure.New(failure.PayloadTooLarge, "request body is over the %d byte limit", limit)
			}
			c.Set(bodyKey, body)
			return next(c)
		}
	}
}

func body(c echo.Context) []byte { b, _ := c.Get(bodyKey).([]byte); return b }

func data(c echo.Context, status int, v any) error {
	return c.JSON(status, map[string]any{"data": v})
}

func page[T any](c echo.Context, items []T, next string) error {
	if items == nil {
		items = []T{}
	}
	var cur any
	if next != "" {
		cur = next
	}
	return c.JSON(http.StatusOK, map[string]any{"data": items, "next_cursor": cur})
}

// paging reads limit (default 50, max 500) and cursor.
func paging(c echo.Context) (int, string, error) {
	limit := 50
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return 0, "", failure.Field(failure.InvalidValue, "limit", "limit must be an integer from 1 to 500")
		}
		limit = n
	}
	return limit, c.QueryParam("cursor"), nil
}

func pathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// benchNoop answers like POST /v1/events without looking at the body.
func (a *api) benchNoop(c echo.Context) error {
	_ = body(c)
	return data(c, http.StatusOK, map[string]any{"queued": true, "id": "00000000-0000-0000-0000-000000000000"})
}
