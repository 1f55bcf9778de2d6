package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/larkhq/lark/adapters/esdbserver"
)

// cmdEventstoreServe runs the embedded EventStoreDB-compatible server alone,
// for several `lark serve` processes to share (LARK_ESDB_URL=esdb://ADDR?tls=false).
func cmdEventstoreServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("eventstore serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2113", "gRPC listen address")
	data := fs.String("data", filepath.Join(cfg.DataDir, "eventstore"), "data directory")
	metricsAddr := fs.String("metrics", "", "address for Prometheus /metrics (off when empty)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	logger := newLogger(cfg.LogLevel)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := esdbserver.Start(ctx, esdbserver.Config{Listen: *listen, DataDir: *data, Registerer: reg, Logger: logger})
	if err != nil {
		return err
	}
	var metricsSrv *http.Server
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metricsSrv = &http.Server{Addr: *metricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics listener", "err", err)
			}
		}()
	}
	fmt.Fprintf(stdout, "event store listening on %s (%s)\n", srv.Addr(), srv.URL())
	<-ctx.Done()
	logger.Info("event store shutting down")
	if metricsSrv != nil {
		_ = metricsSrv.Close()
	}
	return srv.Close()
}
