package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// config is everything the environment says; built once in cmd and passed down.
type config struct {
	ESDBURL           string // LARK_ESDB_URL; "" = embedded event store under DataDir
	DatabaseURL       string // LARK_DATABASE_URL; "" = private cluster under DataDir
	DataDir           string // LARK_DATA_DIR; default ./data
	HTTPAddr          string // LARK_HTTP_ADDR; default 127.0.0.1:8080
	SMTPURL           string // LARK_SMTP_URL; "" = .eml files under DataDir/mail
	MailFrom          string // LARK_MAIL_FROM; default lark@localhost
	DefaultEventLimit int64  // LARK_DEFAULT_EVENT_LIMIT; default 10000 per month
	MaxEventBytes     int64  // LARK_MAX_EVENT_BYTES; default 256 KiB
	MaxBatchBytes     int64  // LARK_MAX_BATCH_BYTES; default 5 MiB
	LogLevel          slog.Level
	BenchRoutes       bool // LARK_BENCH_ROUTES=1: the no-op route of `make bench`
	// PprofAddr is LARK_PPROF_ADDR: when set (e.g. 127.0.0.1:6060), serve
	// net/http/pprof there, on its own listener, never on the API's.
	PprofAddr string
}

func loadConfig() (config, error) {
	c := config{
		ESDBURL:     os.Getenv("LARK_ESDB_URL"),
		DatabaseURL: os.Getenv("LARK_DATABASE_URL"),
		DataDir:     envOr("LARK_DATA_DIR", "data"),
		HTTPAddr:    envOr("LARK_HTTP_ADDR", "127.0.0.1:8080"),
		SMTPURL:     os.Getenv("LARK_SMTP_URL"),
		MailFrom:    os.Getenv("LARK_MAIL_FROM"),
	}
	c.BenchRoutes = os.Getenv("LARK_BENCH_ROUTES") == "1"
	c.PprofAddr = strings.TrimSpace(os.Getenv("LARK_PPROF_ADDR"))
	var err error
	if c.DefaultEventLimit, err = envInt("LARK_DEFAULT_EVENT_LIMIT", 10000); err != nil {
		return c, err
	}
	if c.MaxEventBytes, err = envInt("LARK_MAX_EVENT_BYTES", 256<<10); err != nil {
		return c, err
	}
	if c.MaxBatchBytes, err = envInt("LARK_MAX_BATCH_BYTES", 5<<20); err != nil {
		return c, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(envOr("LARK_LOG_LEVEL", "info"))); err != nil {
		return c, fmt.Errorf("LARK_LOG_LEVEL: %w", err)
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("LARK_DATA_DIR: %w", err)
	}
	c.DataDir = abs
	return c, nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int64) (int64, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
