package service

import (
	"context"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/httpapi"
	"github.com/larkhq/lark/adapters/liquid"
	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/commands/runs"
	domexplain "github.com/larkhq/lark/domain/explain"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
	"github.com/larkhq/lark/projections/auth"
	automationsrm "github.com/larkhq/lark/projections/automations"
	contactsrm "github.com/larkhq/lark/projections/contacts"
	"github.com/larkhq/lark/projections/events"
	"github.com/larkhq/lark/projections/explain"
	"github.com/larkhq/lark/projections/replay"
	runsrm "github.com/larkhq/lark/projections/runs"
	"github.com/larkhq/lark/projections/usage"
)

// explainSide is the auditor's side (SPEC §2.6): the events read model and
// the explainer behind GET /v1/events/{id}, its explanation and a run's.
type explainSide struct {
	eventsRun *projections.Runner
	explainer *explain.Explainer
	deps      httpapi.ExplainDeps
}

func newExplainSide(cfg Config, store *esdb.Store, feed projections.Source, db *projections.DB, pm *projections.Metrics, auto *automationSide) *explainSide {
	x := &explainSide{}
	x.eventsRun = projections.NewRunner(events.Projection{}, db, feed, cfg.Logger, pm, cfg.Now)
	x.explainer = &explain.Explainer{Store: store, DB: db, Decider: run.Decider{RenderFunc: liquid.New(liquid.Config{}).Render},
		CatchUpEventsFunc: func(ctx context.Context) error {
			head, err := store.Head(ctx)
			if err != nil {
				return err
			}
			return x.eventsRun.WaitFor(ctx, head)
		},
		CatchUpAutomationsFunc: auto.autoRun.WaitFor,
		CatchUpRunsFunc: func(ctx context.Context) error {
			head, err := store.Head(ctx)
			if err != nil {
				return err
			}
			return auto.runsRun.WaitFor(ctx, head)
		},
	}
	x.deps = httpapi.ExplainDeps{
		GetEventFunc:     x.explainer.GetEvent,
		ExplainEventFunc: x.explainer.Event,
		ExplainRunFunc:   x.explainer.Run,
	}
	return x
}

// GetEvent returns a stored event with its processing status; ws "" finds
// it in any workspace (event ids are global UUIDs).
func (s *Service) GetEvent(ctx context.Context, ws, id string) (events.Event, error) {
	return s.expl.explainer.GetEvent(ctx, ws, id)
}

// ExplainEvent explains a stored event (SPEC §2.6); ws "" finds it in any
// workspace.
func (s *Service) ExplainEvent(ctx context.Context, ws, id string) (domexplain.EventExplanation, error) {
	return s.expl.explainer.Event(ctx, ws, id)
}

// ExplainRun explains a run and replays it (SPEC §2.6); ws "" finds it in
// any workspace (run ids are global).
func (s *Service) ExplainRun(ctx context.Context, ws, id string) (domexplain.RunExplanation, error) {
	return s.expl.explainer.Run(ctx, ws, id)
}

// ReadModels are every projection that writes read-model tables, as
// `lark replay` rebuilds them. The run process manager appears only as
// its automation view (run_manager_automations): replay feeds it
// automation events alone, so it starts no runs and appends nothing.
func ReadModels() []projections.Projection {
	return []projections.Projection{
		auth.Projection{},
		contactsrm.Projection{},
		usage.Projection{},
		automationsrm.Projection{},
		runsrm.Projection{},
		events.Projection{},
		managerView{&runs.Manager{}},
	}
}

// managerView is the run process manager restricted to automation events:
// applying those only updates its table run_manager_automations.
type managerView struct{ *runs.Manager }

// Prefixes implements projections.Projection.
func (managerView) Prefixes() []string { return []string{esdb.Prefix(esdb.CategoryAutomation)} }

// Replay rebuilds every read model from the event store into a scratch
// schema of the service's database and compares it with the live one
// (`lark replay`); o's Pool, Source, Projections and MigrateFunc are filled
// in when empty.
func (s *Service) Replay(ctx context.Context, o replay.Options) (replay.Report, error) {
	if o.Pool == nil {
		o.Pool = s.cfg.Pool
	}
	if o.Source == nil {
		o.Source = s.store
	}
	if o.Projections == nil {
		o.Projections = ReadModels()
	}
	if o.MigrateFunc == nil {
		o.MigrateFunc = postgres.Migrate
	}
	return replay.Run(ctx, o)
}
