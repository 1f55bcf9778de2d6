// Package analytics answers SPEC §2.7's HTTP analytics from the read
// models other projections keep: custom-event counts per UTC day and event
// name (table events) and an automation's funnel — runs by status, branch
// counts per condition node, emails per send_email node — (tables
// automations, automation_runs and automation_run_steps). It owns no table
// and no projection; migration 0030_analytics.sql adds the indexes its
// queries use.
//
// The answers reflect events once the projections behind those tables have
// passed them; the service waits (briefly) for that before asking.
package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/projections"
)

// MaxEventNameBytes bounds the event_name filter (the longest name an event
// may have).
const MaxEventNameBytes = 255

// Queries reads the analytics of a workspace.
type Queries struct{ DB *projections.DB }

// DayCount is the number of events of one name received on one UTC day.
type DayCount struct {
	Date      string `json:"date"` // YYYY-MM-DD
	EventName string `json:"event_name"`
	Count     int64  `json:"count"`
}

// EventCounts is the answer of GET /v1/analytics/events. Series holds only
// the (day, name) pairs with at least one event, by date then name.
type EventCounts struct {
	From      string     `json:"from"`
	To        string     `json:"to"`
	EventName *string    `json:"event_name"` // the filter, null when none
	Total     int64      `json:"total"`
	Series    []DayCount `json:"series"`
}

// CheckEventName checks the event_name filter: failure.TooLong (field
// event_name) past MaxEventNameBytes.
func CheckEventName(name string) error {
	if len(name) > MaxEventNameBytes {
		return failure.Field(failure.TooLong, "event_name", "event_name is longer than %d bytes", MaxEventNameBytes)
	}
	return nil
}

// EventCounts counts the workspace's stored custom events per UTC day of
// received_at and event name over r, only events named name when name is
// not "". An over-long name is failure.TooLong (field event_name).
func (q Queries) EventCounts(ctx context.Context, workspaceID string, r Range, name string) (EventCounts, error) {
	if err := CheckEventName(name); err != nil {
		return EventCounts{}, err
	}
	out := EventCounts{From: r.From.Format(DateLayout), To: r.To.Format(DateLayout), Series: []DayCount{}}
	if name != "" {
		out.EventName = &name
	}
	// Index-only scan of events_analytics (workspace_id, received_at,
	// event_name): no heap visit for the properties.
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		rows, err := q.DB.Pool.Query(ctx, `SELECT (received_at AT TIME ZONE 'UTC')::date AS day, event_name, count(*)
			FROM events
			WHERE workspace_id = $1 AND received_at >= $2 AND received_at < $3 AND ($4 = '' OR event_name = $4)
			GROUP BY 1, 2 ORDER BY 1, 2`,
			workspaceID, r.From, r.To.AddDate(0, 0, 1), name)
		if err != nil {
			return err
		}
		out.Series, out.Total = out.Series[:0], 0
		for rows.Next() {
			var d DayCount
			var day time.Time
			if err := rows.Scan(&day, &d.EventName, &d.Count); err != nil {
				return err
			}
			d.Date = day.Format(DateLayout)
			out.Series = append(out.Series, d)
			out.Total += d.Count
		}
		return rows.Err()
	})
	if err != nil {
		return EventCounts{}, fmt.Errorf("count events: %w", err)
	}
	return out, nil
}

// RunCounts are an automation's runs by status; Started is all of them.
type RunCounts struct {
	Started   int64 `json:"started"`
	Running   int64 `json:"running"`
	Waiting   int64 `json:"waiting"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

// EmailCounts count the emails of one send_email node, or of all of them.
// Queued counts emails rendered and handed to the sender; Sent those the
// relay accepted; Failed those that will never be sent (a permanent
// rejection, or a temporary one on the last attempt, which fails the
// run); FailedAttempts every failed attempt, retried ones included.
// Queued - Sent - Failed are still being tried.
type EmailCounts struct {
	Queued         int64 `json:"queued"`
	Sent           int64 `json:"sent"`
	Failed         int64 `json:"failed"`
	FailedAttempts int64 `json:"failed_attempts"`
}

// NodeStats are the counts of one node. Yes and No are set for condition
// nodes, Emails for send_email nodes, DelaysStarted and DelaysElapsed for
// delay nodes.
type NodeStats struct {
	ID            string       `json:"id"`
	Type          string       `json:"type"`
	Yes           *int64       `json:"yes,omitempty"`
	No            *int64       `json:"no,omitempty"`
	Emails        *EmailCounts `json:"emails,omitempty"`
	DelaysStarted *int64       `json:"delays_started,omitempty"`
	DelaysElapsed *int64       `json:"delays_elapsed,omitempty"`
	// InCurrentVersion is false for a node id seen only in runs of older
	// versions.
	InCurrentVersion bool `json:"in_current_version"`
}

// AutomationStats is the answer of GET /v1/analytics/automations/{id}:
// counts over every run of every version of the automation. Nodes lists
// the current version's nodes in definition order (with zeros where no run
// reached them), then node ids seen only in older versions' runs, by id.
type AutomationStats struct {
	AutomationID string      `json:"automation_id"`
	Name         string      `json:"name"`
	Version      int         `json:"version"`
	Status       string      `json:"status"`
	Runs         RunCounts   `json:"runs"`
	Emails       EmailCounts `json:"emails"`
	Nodes        []NodeStats `json:"nodes"`
}

// Automation computes the analytics of one automation of the workspace;
// failure.NotFound when the workspace has no automation with that id.
func (q Queries) Automation(ctx context.Context, workspaceID, id string) (AutomationStats, error) {
	var out AutomationStats
	err := q.DB.Do(ctx, func(ctx context.Context) error {
		// One snapshot for the three reads, so the counts agree.
		return pgx.BeginTxFunc(ctx, q.DB.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
			func(tx pgx.Tx) error {
				var err error
				out, err = automationStats(ctx, tx, workspaceID, id)
				return err
			})
	})
	if err != nil {
		if failure.Is(err, failure.NotFound) {
			return AutomationStats{}, err
		}
		return AutomationStats{}, fmt.Errorf("automation analytics: %w", err)
	}
	return out, nil
}

func automationStats(ctx context.Context, tx pgx.Tx, workspaceID, id string) (AutomationStats, error) {
	out := AutomationStats{AutomationID: id, Nodes: []NodeStats{}}
	var def []byte
	err := tx.QueryRow(ctx, `SELECT name, version, status, definition FROM automations
		WHERE automation_id = $1 AND workspace_id = $2`, id, workspaceID).Scan(&out.Name, &out.Version, &out.Status, &def)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, failure.New(failure.NotFound, "no automation %q", id)
	}
	if err != nil {
		return out, err
	}
	var d struct {
		Nodes []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(def, &d); err != nil {
		return out, fmt.Errorf("automation %s definition: %w", id, err)
	}
	nodes := map[string]*NodeStats{}
	for _, n := range d.Nodes {
		out.Nodes = append(out.Nodes, NodeStats{ID: n.ID, Type: n.Type, InCurrentVersion: true})
	}
	for i := range out.Nodes {
		nodes[out.Nodes[i].ID] = &out.Nodes[i]
		initNode(&out.Nodes[i])
	}

	// Runs by status (index-only on automation_runs_status).
	rows, err := tx.Query(ctx, `SELECT status, count(*) FROM automation_runs
		WHERE workspace_id = $1 AND automation_id = $2 GROUP BY status`, workspaceID, id)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return out, err
		}
		out.Runs.Started += n
		switch st {
		case "running":
			out.Runs.Running = n
		case "waiting":
			out.Runs.Waiting = n
		case "completed":
			out.Runs.Completed = n
		case "failed":
			out.Runs.Failed = n
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}

	// Steps per node and kind. A final email failure is an EmailFailed
	// immediately followed (next revision of the run stream) by RunFailed;
	// the decider appends both together.
	rows, err = tx.Query(ctx, `SELECT s.node, s.type,
			CASE WHEN s.type = 'ConditionEvaluated' THEN s.data->>'branch' ELSE '' END AS branch,
			count(*) AS n,
			count(*) FILTER (WHERE s.type = 'EmailFailed' AND EXISTS (
				SELECT 1 FROM automation_run_steps f
				WHERE f.run_id = s.run_id AND f.seq = s.seq + 1 AND f.type = 'RunFailed')) AS final
		FROM automation_runs r
		JOIN automation_run_steps s ON s.run_id = r.run_id
		WHERE r.workspace_id = $1 AND r.automation_id = $2
		  AND s.type IN ('ConditionEvaluated', 'EmailQueued', 'EmailSent', 'EmailFailed', 'DelayStarted', 'DelayElapsed')
		GROUP BY 1, 2, 3`, workspaceID, id)
	if err != nil {
		return out, err
	}
	var extra []*NodeStats
	type count struct {
		node, typ, branch string
		n, final          int64
	}
	var counts []count
	for rows.Next() {
		var c count
		if err := rows.Scan(&c.node, &c.typ, &c.branch, &c.n, &c.final); err != nil {
			rows.Close()
			return out, err
		}
		counts = append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, c := range counts {
		ns, ok := nodes[c.node]
		if !ok {
			ns = &NodeStats{ID: c.node, Type: typeOfStep(c.typ)}
			initNode(ns)
			nodes[c.node] = ns
			extra = append(extra, ns)
		}
		switch c.typ {
		case "ConditionEvaluated":
			if ns.Yes == nil {
				ns.Yes, ns.No = new(int64), new(int64)
			}
			switch c.branch {
			case "yes":
				*ns.Yes += c.n
			case "no":
				*ns.No += c.n
			}
		case "EmailQueued", "EmailSent", "EmailFailed":
			if ns.Emails == nil {
				ns.Emails = &EmailCounts{}
			}
			switch c.typ {
			case "EmailQueued":
				ns.Emails.Queued += c.n
				out.Emails.Queued += c.n
			case "EmailSent":
				ns.Emails.Sent += c.n
				out.Emails.Sent += c.n
			case "EmailFailed":
				ns.Emails.FailedAttempts += c.n
				ns.Emails.Failed += c.final
				out.Emails.FailedAttempts += c.n
				out.Emails.Failed += c.final
			}
		case "DelayStarted", "DelayElapsed":
			if ns.DelaysStarted == nil {
				ns.DelaysStarted, ns.DelaysElapsed = new(int64), new(int64)
			}
			if c.typ == "DelayStarted" {
				*ns.DelaysStarted += c.n
			} else {
				*ns.DelaysElapsed += c.n
			}
		}
	}
	slices.SortFunc(extra, func(a, b *NodeStats) int { return strings.Compare(a.ID, b.ID) })
	for _, ns := range extra {
		out.Nodes = append(out.Nodes, *ns)
	}
	return out, nil
}

// initNode gives a node the zero counts of its type, so that a node no run
// reached shows zeros rather than nothing.
func initNode(n *NodeStats) {
	switch n.Type {
	case "condition":
		n.Yes, n.No = new(int64), new(int64)
	case "send_email":
		n.Emails = &EmailCounts{}
	case "delay":
		n.DelaysStarted, n.DelaysElapsed = new(int64), new(int64)
	}
}

// typeOfStep is the node type a run step type belongs to.
func typeOfStep(stepType string) string {
	switch stepType {
	case "ConditionEvaluated":
		return "condition"
	case "EmailQueued", "EmailSent", "EmailFailed":
		return "send_email"
	case "DelayStarted", "DelayElapsed":
		return "delay"
	}
	return ""
}
