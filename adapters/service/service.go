// Package service assembles Lark's ingestion side — the event store
// wrapper, the projections, the commands and the HTTP API — into one value
// that cmd/lark starts. It owns no logic of its own.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	kdb "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/httpapi"
	"github.com/larkhq/lark/commands/contacts"
	"github.com/larkhq/lark/commands/ingest"
	"github.com/larkhq/lark/commands/workspaces"
	domingest "github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/domain/payload"
	"github.com/larkhq/lark/projections"
	"github.com/larkhq/lark/projections/auth"
	contactsrm "github.com/larkhq/lark/projections/contacts"
	"github.com/larkhq/lark/projections/idempotency"
	"github.com/larkhq/lark/projections/usage"
)

// Config is what cmd/lark provides.
type Config struct {
	// ESDB is a connected official client. Alternatively (or as well) give
	// ESDBURL: the service then builds its own client and rebuilds it when
	// the official client has closed itself after the store was
	// unreachable for a while (it never recovers on its own).
	ESDB    *kdb.Client
	ESDBURL string
	Pool    *pgxpool.Pool

	Registerer prometheus.Registerer // nil: a private registry
	Gatherer   prometheus.Gatherer   // for /metrics; nil: the private registry
	Logger     *slog.Logger
	Now        func() time.Time

	DefaultEventLimit int64 // LARK_DEFAULT_EVENT_LIMIT: limit of new workspaces when none is given
	MaxEventBytes     int64 // 256 KiB by default
	MaxBatchBytes     int64 // 5 MiB by default
	Limits            *payload.Limits

	// ESDBCallTimeout bounds one event-store call (default 3 s).
	ESDBCallTimeout time.Duration

	Automation AutomationConfig

	// BenchRoutes adds the no-op route `make bench` measures (LARK_BENCH_ROUTES=1).
	BenchRoutes bool
}

// AutomationConfig configures the automation side (automations.go).
type AutomationConfig struct {
	// SMTPURL is LARK_SMTP_URL; when empty, emails are written as .eml
	// files under MailDir. With neither, no emails are sent (they stay queued).
	SMTPURL string
	// MailFrom is LARK_MAIL_FROM, the sender of nodes without their own
	// (default "lark@localhost").
	MailFrom string
	// MailDir is where .eml files go when SMTPURL is empty
	// (cmd/lark: $LARK_DATA_DIR/mail).
	MailDir string
	// WorkerPoll is how often the email sender and the timers look for
	// work (default 100 ms and 250 ms).
	WorkerPoll time.Duration
	// MaxEmailAttempts is recorded in each new run (default 5).
	MaxEmailAttempts int
}

// DefaultEventLimit is used when Config.DefaultEventLimit is 0.
const DefaultEventLimit = 10_000

// Service is the assembled ingestion side.
type Service struct {
	cfg      Config
	store    *esdb.Store
	db       *projections.DB
	authn    *auth.Authenticator
	authRun  *projections.Runner
	contRun  *projections.Runner
	usageRun *projections.Runner
	ws       *workspaces.Handler
	keys     idempotency.Store
	handler  http.Handler

	auto *automationSide
	expl *explainSide
}

// New assembles the service. It does not start background work (Run does)
// and needs a migrated database.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Pool == nil {
		return nil, errors.New("service: Pool is required")
	}
	if cfg.ESDB == nil && cfg.ESDBURL == "" {
		return nil, errors.New("service: ESDB or ESDBURL is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultEventLimit <= 0 {
		cfg.DefaultEventLimit = DefaultEventLimit
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	limits := payload.DefaultLimits()
	if cfg.Limits != nil {
		limits = *cfg.Limits
	}
	breakerState := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lark_circuit_breaker_state",
		Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open."}, []string{"breaker"})
	if err := cfg.Registerer.Register(breakerState); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	breakerState.WithLabelValues("eventstore").Set(0)
	breakerState.WithLabelValues("postgres").Set(0)
	onState := func(name string, _, to gobreaker.State) { breakerState.WithLabelValues(name).Set(float64(to)) }

	escfg := esdb.Config{Client: cfg.ESDB, CallTimeout: cfg.ESDBCallTimeout, OnStateChangeFunc: onState, Logger: cfg.Logger}
	if cfg.ESDBURL != "" {
		url := cfg.ESDBURL
		escfg.ConnectFunc = func() (*kdb.Client, error) {
			c, err := kdb.ParseConnectionString(url)
			if err != nil {
				return nil, err
			}
			c.Logger = kdb.NoopLogging()
			return kdb.NewClient(c)
		}
	}
	store, err := esdb.New(escfg)
	if err != nil {
		return nil, err
	}
	db := projections.NewDB(cfg.Pool, func(name string, from, to gobreaker.State) {
		cfg.Logger.Warn("circuit breaker state", "breaker", name, "from", from.String(), "to", to.String())
		onState(name, from, to)
	})
	pm, err := projections.NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, store: store, db: db, keys: idempotency.Store{DB: db}}
	s.authn = auth.NewAuthenticator(db, cfg.Logger, cfg.Now)
	s.authRun = projections.NewRunner(auth.Projection{}, db, store, cfg.Logger, pm, cfg.Now)
	s.contRun = projections.NewRunner(contactsrm.Projection{}, db, store, cfg.Logger, pm, cfg.Now)
	// The usage and events projections and the run process manager read
	// every ingested event: they share one subscription (esdb.Feeds) so
	// that each event is read and decoded once, not three times.
	feed := esdb.NewFeeds(store, []string{esdb.Prefix(esdb.CategoryEvents), esdb.Prefix(esdb.CategoryAutomation)}, 0, 0)
	s.usageRun = projections.NewRunner(usage.Projection{}, db, feed, cfg.Logger, pm, cfg.Now)
	s.ws = &workspaces.Handler{Store: store, WaitFunc: s.authRun.WaitFor, Now: cfg.Now, ForgetFunc: s.authn.Forget}
	ch := &contacts.Handler{Store: store, WaitFunc: s.contRun.WaitFor, Now: cfg.Now}
	cq := contactsrm.Queries{DB: db}

	lanes, err := ingest.NewLanes(store, cfg.Logger, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	catchup := func(ctx context.Context) error {
		head, err := store.Head(ctx)
		if err != nil {
			return err
		}
		return s.usageRun.WaitFor(ctx, head)
	}
	ih, err := ingest.NewHandler(lanes, s.keys, catchup, cfg.Now, limits, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.auto, err = newAutomationSide(cfg, store, feed, db, pm)
	if err != nil {
		return nil, err
	}
	s.expl = newExplainSide(cfg, store, feed, db, pm, s.auto)
	s.handler, err = httpapi.New(httpapi.Deps{
		AutomationDeps:    s.auto.deps,
		ExplainDeps:       s.expl.deps,
		AnalyticsDeps:     newAnalyticsDeps(cfg, store, db, s.expl.eventsRun, s.auto.runsRun),
		AuthenticateFunc:  s.authn.Authenticate,
		SendFunc:          ih.Send,
		UsageFunc:         s.usage,
		CreateContactFunc: ch.Create,
		PatchContactFunc:  ch.Patch,
		DeleteContactFunc: ch.Delete,
		GetContactFunc:    cq.Get,
		ListContactsFunc:  cq.List,
		CreateKeyFunc:     s.ws.CreateKey,
		RevokeKeyFunc:     s.ws.RevokeKey,
		ListKeysFunc:      s.authn.ListKeys,
		ReadyFunc:         s.ready,
		Gatherer:          cfg.Gatherer,
		Registerer:        cfg.Registerer,
		Logger:            cfg.Logger,
		Limits:            limits,
		MaxEventBytes:     cfg.MaxEventBytes,
		MaxBatchBytes:     cfg.MaxBatchBytes,
		BenchRoutes:       cfg.BenchRoutes,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// usage is exact: it reads the month stream's revision from the event store.
func (s *Service) usage(ctx context.Context, p auth.Principal) (httpapi.Usage, error) {
	now := s.cfg.Now()
	rev, err := s.store.LastRevision(ctx, esdb.EventsStream(p.WorkspaceID, domingest.StreamPeriod(now)))
	if err != nil {
		return httpapi.Usage{}, err
	}
	return httpapi.Usage{Period: domingest.Period(now), Used: rev + 1, Limit: p.EventLimit}, nil
}

func (s *Service) ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	if err := s.db.Do(ctx, func(ctx context.Context) error { return s.db.Pool.Ping(ctx) }); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// Run runs the projections (each in at most one process at a time; others
// stand by), the auth cache listener and the idempotency sweeper until ctx
// ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range append([]func(context.Context) error{s.authRun.Run, s.contRun.Run, s.usageRun.Run, s.authn.Listen, s.sweep, s.expl.eventsRun.Run}, s.auto.runs()...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = f(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Service) sweep(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.keys.Sweep(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("sweep idempotency keys", "error", err)
			}
		}
	}
}

// Handler is the whole HTTP API, including /healthz, /readyz and /metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// CreateWorkspace creates a workspace (a negative eventLimit means the
// default; 0 is a workspace that may send no events)
// and returns its id and first API key. It answers once the auth read model
// knows the workspace: a running lark serve's projection, or, if none runs,
// this call applies the projection itself.
func (s *Service) CreateWorkspace(ctx context.Context, name string, eventLimit int64) (string, string, error) {
	if eventLimit < 0 {
		eventLimit = s.cfg.DefaultEventLimit
	}
	return s.ws.Create(ctx, name, eventLimit)
}

// EnsureDefaultWorkspace creates workspace "default" unless it exists;
// only the caller that created it gets its first API key.
func (s *Service) EnsureDefaultWorkspace(ctx context.Context) (string, bool, error) {
	return s.ws.EnsureDefault(ctx, s.cfg.DefaultEventLimit)
}

// SetEventLimit changes a workspace's monthly limit.
func (s *Service) SetEventLimit(ctx context.Context, workspaceID string, limit int64) error {
	return s.ws.SetEventLimit(ctx, workspaceID, limit)
}

// Close releases what New built (an event-store client it made itself).
func (s *Service) Close() error { return s.store.Close() }
