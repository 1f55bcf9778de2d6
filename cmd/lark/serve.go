package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/adapters/service"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	tuneGC()
	if cfg.PprofAddr != "" {
		stop, err := startPprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	app, err := openApp(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	defer app.Close()
	if app.ep.Embedded != nil {
		if err := writeRuntime(cfg.DataDir, runtimeInfo{PID: os.Getpid(), ESDBURL: app.ep.ESDBURL, StartedAt: time.Now().UTC()}); err != nil {
			return err
		}
		defer removeRuntime(cfg.DataDir)
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on LARK_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan error, 1)
	go func() { runDone <- app.svc.Run(runCtx) }()

	// On embedded defaults the first start creates workspace "default" and
	// shows its first key once; later starts find it and show nothing.
	if app.ep.Embedded != nil || cfg.ESDBURL == "" {
		key, created, err := app.svc.EnsureDefaultWorkspace(ctx)
		if err != nil {
			cancelRun()
			return fmt.Errorf("create default workspace: %w", err)
		}
		if created {
			fmt.Fprintf(stdout, "Created workspace \"default\". Its API key (shown only this once):\n\n    %s\n\n", key)
		}
	}

	srv := &http.Server{Handler: app.svc.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "Lark is listening on http://%s (event store %s)\n", ln.Addr(), app.ep.ESDBURL)
	logger.Info("lark serving", "addr", ln.Addr().String(), "esdb", app.ep.ESDBURL, "data_dir", cfg.DataDir)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-serveDone:
	case serveErr = <-runDone:
		if serveErr == nil {
			serveErr = errors.New("background workers stopped")
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Error("http shutdown", "err", err)
	}
	cancelRun()
	select {
	case <-runDone:
	case <-shutCtx.Done():
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// serveGCPercent is lark serve's GOGC when the environment sets none. Under
// ingest load the heap is mostly short-lived request and event garbage over
// a small live set (tens of MiB), so the default of 100 spends a sixth of
// the CPU marking; 400 trades a few hundred MiB of headroom for most of it.
// GOGC and GOMEMLIMIT in the environment still win, as usual.
const serveGCPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}

// app is one process's connection to Lark's infrastructure and the service
// assembled on top of it.
type app struct {
	ep   *endpoints
	pool *pgxpool.Pool
	es   *esdb.Client
	svc  *service.Service
}

// openApp resolves the endpoints, migrates Postgres and assembles the service.
func openApp(ctx context.Context, cfg config, logger *slog.Logger, reg *prometheus.Registry) (*app, error) {
	ep, err := openEndpoints(ctx, cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	a := &app{ep: ep}
	if a.pool, err = postgres.Connect(ctx, withPoolSize(ep.DatabaseURL, 16)); err != nil {
		a.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := postgres.Migrate(ctx, a.pool); err != nil {
		a.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if a.es, err = newESDBClient(ep.ESDBURL, logger); err != nil {
		a.Close()
		return nil, err
	}
	a.svc, err = service.New(ctx, service.Config{
		ESDB:              a.es,
		ESDBURL:           ep.ESDBURL,
		Pool:              a.pool,
		Registerer:        reg,
		Gatherer:          reg,
		Logger:            logger,
		Now:               time.Now,
		DefaultEventLimit: cfg.DefaultEventLimit,
		MaxEventBytes:     cfg.MaxEventBytes,
		MaxBatchBytes:     cfg.MaxBatchBytes,
		BenchRoutes:       cfg.BenchRoutes,
		Automation: service.AutomationConfig{
			SMTPURL:  cfg.SMTPURL,
			MailFrom: cfg.MailFrom,
			MailDir:  filepath.Join(cfg.DataDir, "mail"),
		},
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("assemble service: %w", err)
	}
	return a, nil
}

// Close releases everything in the reverse order of openApp.
func (a *app) Close() {
	if a.svc != nil {
		_ = a.svc.Close()
	}
	if a.es != nil {
		_ = a.es.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	a.ep.Close(context.Background())
}

func newESDBClient(url string, logger *slog.Logger) (*esdb.Client, error) {
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		return nil, fmt.Errorf("LARK_ESDB_URL %q: %w", url, err)
	}
	cfg.Logger = clientLogger(logger.With("component", "esdb-client"))
	c, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("event store client: %w", err)
	}
	return c, nil
}

// clientLogger routes the official client's log lines into our structured
// log; its discovery chatter (info and debug) goes to debug, and so do the
// "subscription dropped: context canceled" errors it logs whenever we end a
// subscription on purpose (projections resubscribe when idle).
func clientLogger(logger *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		l := slog.LevelDebug
		switch {
		case strings.Contains(msg, "context canceled"):
		case level == esdb.LogWarn:
			l = slog.LevelWarn
		case level == esdb.LogError:
			l = slog.LevelError
		}
		logger.Log(context.Background(), l, msg)
	}
}

// withPoolSize sets pgx's pool_max_conns unless the URL already does: the
// default (4 on 2 cores) starves contact, key and idempotency writes under
// load. Projection locks and LISTEN use connections of their own.
func withPoolSize(dbURL string, n int) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.Scheme == "" {
		return dbURL // a key=value DSN: leave it as the operator wrote it
	}
	q := u.Query()
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", strconv.Itoa(n))
		u.RawQuery = q.Encode()
	}
	return u.String()
}
