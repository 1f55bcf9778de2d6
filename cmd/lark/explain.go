package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/domain/explain"
)

// cmdExplain is `lark explain event ID` and `lark explain run ID`. Ids are
// global UUIDs, so no workspace is given: an event's workspace comes from
// the events read model (table events), a run's from its own stream
// (run-{id}, whose events record the workspace).
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || (args[0] != "event" && args[0] != "run") {
		return usageError{"expected: lark explain event ID | lark explain run ID"}
	}
	kind := args[0]
	fs := flag.NewFlagSet("explain "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	// Accept the flag before or after the id.
	rest := args[1:]
	var id string
	var flags []string
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
		} else if id == "" {
			id = a
		} else {
			return usageError{fmt.Sprintf("unexpected argument %q", a)}
		}
	}
	if err := fs.Parse(flags); err != nil {
		return usageError{err.Error()}
	}
	if id == "" {
		return usageError{"the " + kind + " id is required"}
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(cfg.LogLevel), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var v any
	if kind == "event" {
		x, err := a.svc.ExplainEvent(ctx, "", id)
		if err != nil {
			return err
		}
		if !*asJSON {
			return printEvent(stdout, x)
		}
		v = x
	} else {
		x, err := a.svc.ExplainRun(ctx, "", id)
		if err != nil {
			return err
		}
		if !*asJSON {
			return printRun(stdout, x)
		}
		v = x
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printEvent(w io.Writer, x explain.EventExplanation) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("Event %s  %q for %s\n", x.EventID, x.EventName, x.EmailAddress)
	p("  workspace %s, received %s, run manager: %s\n", x.WorkspaceID, x.ReceivedAt.UTC().Format(time.RFC3339Nano),
		map[bool]string{true: "processed", false: "not processed yet"}[x.Processed])
	switch c := x.Contact; {
	case c.Existed:
		p("  contact: existed (%s)\n", c.ContactID)
	case c.DeletedBefore != nil:
		p("  contact: had been deleted at %s, before the event\n", c.DeletedBefore.UTC().Format(time.RFC3339))
	default:
		p("  contact: did not exist\n")
	}
	if c := x.Contact; c.CreatedLater != nil {
		p("           (created later, at %s)\n", c.CreatedLater.UTC().Format(time.RFC3339))
	}
	p("\n%s\n", x.Summary)
	if len(x.Matched) > 0 {
		p("\nMatched:\n")
		for _, m := range x.Matched {
			state := "fired, run " + m.RunID
			if m.RunStatus != "" {
				state += " (" + m.RunStatus + ")"
			}
			if !m.Fired {
				state = "did not fire"
			}
			if m.Reason != "" {
				state += ": " + m.Reason
			}
			p("  %s %q v%d — %s\n", m.AutomationID, m.Name, m.Version, state)
		}
	}
	if len(x.NotMatched) > 0 {
		p("\nDid not match:\n")
		for _, n := range x.NotMatched {
			flag := ""
			if n.NearMiss {
				flag = "  [NEAR MISS]"
			}
			p("  %s %q (%s, trigger %q) — %s%s\n", n.AutomationID, n.Name, n.Status, n.TriggerEventName, n.Message, flag)
			if len(n.Later) > 0 {
				p("      later: %s\n", strings.Join(n.Later, ", "))
			}
		}
	}
	if len(x.CreatedLater) > 0 {
		p("\nCreated after the event:\n")
		for _, c := range x.CreatedLater {
			p("  %s %q (trigger %q) created %s\n", c.AutomationID, c.Name, c.TriggerEventName, c.CreatedAt.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func printRun(w io.Writer, x explain.RunExplanation) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("Run %s  automation %s v%d, %s\n", x.RunID, x.AutomationID, x.AutomationVersion, x.Status)
	p("  trigger event %s %q, contact %s\n", x.TriggerEventID, x.TriggerEventName, x.EmailAddress)
	if x.ReplayVerified {
		p("  replay_verified: true (the current code reproduces every recorded decision)\n\n")
	} else {
		p("  replay_verified: FALSE\n")
		for _, m := range x.Mismatches {
			p("    step %d, node %q: %s\n", m.Step, m.Node, m.Message)
		}
		p("\n")
	}
	for _, s := range x.Steps {
		at := ""
		if s.At != nil {
			at = " at " + s.At.UTC().Format(time.RFC3339)
		}
		node := ""
		if s.Node != "" {
			node = " [" + s.Node + "]"
		}
		mark := ""
		if s.Replay != "verified" {
			mark = "  <-- " + s.ReplayMessage
		}
		p("%3d %s%s%s%s\n", s.Seq, s.Type, node, at, mark)
		for _, kv := range []struct {
			label string
			m     map[string]any
		}{{"in ", s.Inputs}, {"out", s.Outputs}} {
			if len(kv.m) == 0 {
				continue
			}
			b, _ := json.Marshal(kv.m)
			p("      %s %s\n", kv.label, b)
		}
	}
	return nil
}
