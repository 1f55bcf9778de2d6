// Package esdbtest gives tests an event store to talk to through the
// official client: the embedded server in a temporary directory, or, when
// LARK_TEST_ESDB_URL is set, a real EventStoreDB/KurrentDB node (so the same
// tests prove the embedded server against the real thing).
package esdbtest

import (
	"context"
	"log"
	"os"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/larkhq/lark/adapters/esdbserver"
)

// ExternalURLEnv names the variable that points the tests at a real server.
const ExternalURLEnv = "LARK_TEST_ESDB_URL"

// External reports whether the tests run against a real EventStoreDB.
func External() bool { return os.Getenv(ExternalURLEnv) != "" }

// URL returns an esdb:// connection string for the test: the external
// server's, or that of an embedded server started in t.TempDir() and closed
// at cleanup.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(ExternalURLEnv); u != "" {
		return u
	}
	srv, err := esdbserver.Start(context.Background(), esdbserver.Config{
		Listen:  "127.0.0.1:0",
		DataDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("start embedded event store: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close embedded event store: %v", err)
		}
	})
	return srv.URL()
}

// Client returns an official client connected to URL(t), closed at cleanup.
func Client(t testing.TB) *esdb.Client {
	t.Helper()
	return ClientFor(t, URL(t))
}

// ClientFor returns an official client for url, closed at cleanup.
func ClientFor(t testing.TB, url string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatalf("parse %q: %v", url, err)
	}
	cfg.Logger = quietLogger
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// quietLogger keeps the client's warnings and errors (on stderr) and drops
// its discovery chatter, which would otherwise interleave with test and
// benchmark output.
func quietLogger(level esdb.LogLevel, format string, args ...any) {
	if level == esdb.LogWarn || level == esdb.LogError {
		log.Printf("esdb client ["+level+"] "+format, args...)
	}
}
