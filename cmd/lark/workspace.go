package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// cmdWorkspaceCreate creates a workspace and prints its id and first API key
// as JSON. It reaches the same event store and Postgres as `lark serve`.
func cmdWorkspaceCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "workspace name (required)")
	limit := fs.Int64("event-limit", cfg.DefaultEventLimit, "custom events allowed per calendar month (UTC)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if strings.TrimSpace(*name) == "" {
		return usageError{"--name is required"}
	}
	if *limit < 0 {
		return usageError{"--event-limit must not be negative"}
	}
	logger := newLogger(cfg.LogLevel)
	a, err := openApp(ctx, cfg, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer a.Close()
	id, key, err := a.svc.CreateWorkspace(ctx, *name, *limit)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"workspace_id": id, "name": *name, "event_limit": *limit, "api_key": key})
}

// cmdMigrate applies the Postgres migrations and exits.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	logger := newLogger(cfg.LogLevel)
	a, err := openApp(ctx, cfg, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	a.Close()
	_, err = io.WriteString(stdout, "migrations applied\n")
	return err
}
