// Command lark is Lark's one binary: the API server with its projections and
// workers (`lark serve`), the embedded EventStoreDB-compatible server on its
// own (`lark eventstore serve`), and the operator's tools (`lark workspace
// create`, `lark migrate`). It only wires packages together; behaviour lives
// in domain, commands, projections and adapters.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `lark — the Custom Event trigger back end

Usage:
  lark serve                                   API, projections and workers in one process
  lark eventstore serve [--listen ADDR] [--data DIR] [--metrics ADDR]
                                               the embedded EventStoreDB-compatible server alone
  lark workspace create --name NAME [--event-limit N]
                                               create a workspace; prints JSON with its first API key
  lark migrate                                 apply Postgres migrations
  lark explain event ID [--json]               why an event fired what it fired (SPEC §2.6)
  lark explain run ID [--json]                 a run's steps, replayed and verified
  lark replay [--keep] [--schema NAME] [--json] [--quiet]
                                               rebuild every read model into a scratch schema and
                                               compare with the live one (exit 1 when they differ)
  lark version

Configuration (environment): LARK_ESDB_URL, LARK_DATABASE_URL, LARK_DATA_DIR,
LARK_HTTP_ADDR, LARK_SMTP_URL, LARK_MAIL_FROM, LARK_DEFAULT_EVENT_LIMIT,
LARK_MAX_EVENT_BYTES, LARK_MAX_BATCH_BYTES, LARK_LOG_LEVEL, LARK_PPROF_ADDR
(opt-in profiler listener). lark serve runs with GOGC=400 unless GOGC is set.
See README.md.
`

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "lark: %v\n\n%s", err, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "lark: %v\n", err)
		os.Exit(1)
	}
}

// usageError marks a mistake in the command line, answered with the usage text.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "eventstore":
		if len(args) < 2 || args[1] != "serve" {
			return usageError{"expected: lark eventstore serve"}
		}
		return cmdEventstoreServe(ctx, args[2:], stdout, stderr)
	case "workspace":
		if len(args) < 2 || args[1] != "create" {
			return usageError{"expected: lark workspace create --name NAME"}
		}
		return cmdWorkspaceCreate(ctx, args[2:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}
