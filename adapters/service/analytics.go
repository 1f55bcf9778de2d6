package service

import (
	"context"
	"time"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/httpapi"
	"github.com/larkhq/lark/projections"
	"github.com/larkhq/lark/projections/analytics"
)

// AnalyticsCatchUp bounds how long an analytics request waits for the read
// models it counts to pass the event store's head as it was when the
// request arrived. Past it (a projection far behind, or the event store
// unreachable) the answer is computed from the read models as they are.
const AnalyticsCatchUp = 2 * time.Second

// newAnalyticsDeps wires SPEC §2.7: event counts read the events read
// model, automation analytics the automations and runs read models, each
// after waiting (at most AnalyticsCatchUp) for its projection to reach the
// current head, so an event acknowledged before the request is counted.
func newAnalyticsDeps(cfg Config, store *esdb.Store, db *projections.DB, eventsRun, runsRun *projections.Runner) httpapi.AnalyticsDeps {
	q := analytics.Queries{DB: db}
	catchUp := func(ctx context.Context, r *projections.Runner) {
		cctx, cancel := context.WithTimeout(ctx, AnalyticsCatchUp)
		defer cancel()
		head, err := store.Head(cctx)
		if err == nil {
			err = r.WaitFor(cctx, head)
		}
		if err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("analytics: read model not caught up; answering from it as it is", "error", err)
		}
	}
	return httpapi.AnalyticsDeps{
		EventCountsFunc: func(ctx context.Context, ws, from, to, name string) (analytics.EventCounts, error) {
			r, err := analytics.ParseRange(from, to, cfg.Now())
			if err != nil {
				return analytics.EventCounts{}, err
			}
			if err := analytics.CheckEventName(name); err != nil {
				return analytics.EventCounts{}, err
			}
			catchUp(ctx, eventsRun)
			return q.EventCounts(ctx, ws, r, name)
		},
		AutomationAnalyticsFunc: func(ctx context.Context, ws, id string) (analytics.AutomationStats, error) {
			catchUp(ctx, runsRun)
			return q.Automation(ctx, ws, id)
		},
	}
}
