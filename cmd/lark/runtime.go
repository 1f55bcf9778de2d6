package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/adapters/esdbserver"
	"github.com/larkhq/lark/adapters/postgres"
)

// databaseName is the database Lark uses inside its private cluster.
const databaseName = "lark"

// runtimeFile, under the data directory, is where a `lark serve` running on
// embedded defaults records the address of its embedded event store, so that
// `lark workspace create` in a second terminal finds it with no setup. The
// private Postgres cluster needs no entry: postgres.StartCluster reuses a
// cluster already running from the same directory.
const runtimeFile = "lark-runtime.json"

type runtimeInfo struct {
	PID       int       `json:"pid"`
	ESDBURL   string    `json:"esdb_url"`
	StartedAt time.Time `json:"started_at"`
}

// endpoints are the event store and Postgres one process talks to, with what
// it started itself and must stop on the way out.
type endpoints struct {
	ESDBURL     string
	DatabaseURL string
	// Embedded is the event store this process started, nil if it uses
	// another's (LARK_ESDB_URL, or a running `lark serve`'s).
	Embedded *esdbserver.Server
	cluster  *postgres.Cluster
	logger   *slog.Logger
}

// openEndpoints resolves the event store and Postgres per the configuration:
// explicit URLs win; otherwise the embedded store of a running `lark serve`
// on the same data directory, or one started here; and the private cluster
// under the data directory, started or reused.
func openEndpoints(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (*endpoints, error) {
	ep := &endpoints{ESDBURL: cfg.ESDBURL, DatabaseURL: cfg.DatabaseURL, logger: logger}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if ep.ESDBURL == "" {
		if info, ok := readRuntime(cfg.DataDir); ok {
			ep.ESDBURL = info.ESDBURL
			logger.Info("using the embedded event store of a running lark serve", "pid", info.PID, "url", info.ESDBURL)
		} else {
			srv, err := esdbserver.Start(ctx, esdbserver.Config{
				Listen:     "127.0.0.1:0",
				DataDir:    filepath.Join(cfg.DataDir, "eventstore"),
				Registerer: reg,
				Logger:     logger.With("component", "esdbserver"),
			})
			if err != nil {
				return nil, fmt.Errorf("start embedded event store: %w", err)
			}
			ep.Embedded = srv
			ep.ESDBURL = srv.URL()
			logger.Info("embedded event store started", "url", ep.ESDBURL)
		}
	}
	if ep.DatabaseURL == "" {
		cl, err := postgres.StartCluster(ctx, filepath.Join(cfg.DataDir, "postgres"), logger.With("component", "postgres"))
		if err != nil {
			ep.Close(context.Background())
			return nil, fmt.Errorf("start private postgres cluster: %w", err)
		}
		ep.cluster = cl
		if err := cl.EnsureDatabase(ctx, databaseName); err != nil {
			ep.Close(context.Background())
			return nil, err
		}
		ep.DatabaseURL = cl.URL(databaseName)
	}
	return ep, nil
}

// Close stops what this process started, event store first so nothing new
// is appended while Postgres goes down.
func (ep *endpoints) Close(ctx context.Context) {
	if ep.Embedded != nil {
		if err := ep.Embedded.Close(); err != nil {
			ep.logger.Error("close embedded event store", "err", err)
		}
		ep.Embedded = nil
	}
	if ep.cluster != nil {
		if err := ep.cluster.Stop(ctx); err != nil {
			ep.logger.Error("stop private postgres cluster", "err", err)
		}
		ep.cluster = nil
	}
}

// readRuntime returns the runtime record of a live `lark serve` on dataDir.
func readRuntime(dataDir string) (runtimeInfo, bool) {
	var info runtimeInfo
	b, err := os.ReadFile(filepath.Join(dataDir, runtimeFile))
	if err != nil || json.Unmarshal(b, &info) != nil || info.ESDBURL == "" || info.PID <= 0 {
		return info, false
	}
	if info.PID == os.Getpid() || !processAlive(info.PID) {
		return info, false
	}
	return info, true
}

func writeRuntime(dataDir string, info runtimeInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, runtimeFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write runtime file: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dataDir, runtimeFile))
}

func removeRuntime(dataDir string) {
	if info, ok := readRuntimeAny(dataDir); ok && info.PID == os.Getpid() {
		_ = os.Remove(filepath.Join(dataDir, runtimeFile))
	}
}

func readRuntimeAny(dataDir string) (runtimeInfo, bool) {
	var info runtimeInfo
	b, err := os.ReadFile(filepath.Join(dataDir, runtimeFile))
	if err != nil {
		return info, false
	}
	return info, json.Unmarshal(b, &info) == nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
