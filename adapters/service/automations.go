package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/httpapi"
	"github.com/larkhq/lark/adapters/liquid"
	"github.com/larkhq/lark/adapters/smtp"
	"github.com/larkhq/lark/commands/automations"
	"github.com/larkhq/lark/commands/runs"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
	automationsrm "github.com/larkhq/lark/projections/automations"
	runsrm "github.com/larkhq/lark/projections/runs"
)

// DefaultMailFrom is the sender when neither a node nor LARK_MAIL_FROM gives one.
const DefaultMailFrom = "lark@localhost"

// automationSide is the automation half of the service: the automations
// commands and read model, the run process manager, the runs read model,
// the email sender and the timers.
type automationSide struct {
	autoRun *projections.Runner // automations read model
	runsRun *projections.Runner // runs read model and work tables
	manager *projections.Runner // the process manager (commands/runs.Manager)
	sender  *runs.Sender        // nil when no mail transport is configured
	timers  *runs.Timers
	deps    httpapi.AutomationDeps
}

// feed is the shared events-*/automation-* subscription (service.go) the
// process manager follows.
func newAutomationSide(cfg Config, store *esdb.Store, feed projections.Source, db *projections.DB, pm *projections.Metrics) (*automationSide, error) {
	ac := cfg.Automation
	log := cfg.Logger
	rm, err := runs.NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	eng := liquid.New(liquid.Config{})
	decider := run.Decider{RenderFunc: eng.Render}
	a := &automationSide{}
	a.autoRun = projections.NewRunner(automationsrm.Projection{}, db, store, log, pm, cfg.Now)
	a.runsRun = projections.NewRunner(runsrm.Projection{}, db, store, log, pm, cfg.Now)
	a.manager = projections.NewRunner(&runs.Manager{Store: store, Decider: decider, Now: cfg.Now,
		Policy: run.Policy{MaxEmailAttempts: ac.MaxEmailAttempts}, Logger: log, Metrics: rm}, db, feed, log, pm, cfg.Now)
	a.timers = &runs.Timers{Store: store, DB: db, Decider: decider, Now: cfg.Now, Poll: ac.WorkerPoll, Logger: log, Metrics: rm}

	send, err := mailTransport(ac, cfg, log)
	if err != nil {
		return nil, err
	}
	if send != nil {
		from := ac.MailFrom
		if from == "" {
			from = DefaultMailFrom
		}
		a.sender = &runs.Sender{Store: store, DB: db, Decider: decider, SendFunc: send,
			PermanentFunc: func(err error) bool { return errors.Is(err, smtp.ErrPermanent) },
			From:          from, Now: cfg.Now, Poll: ac.WorkerPoll, Logger: log, Metrics: rm}
	} else {
		log.Warn("no SMTP URL and no mail directory configured: emails stay queued")
	}

	ah := &automations.Handler{Store: store, WaitFunc: a.autoRun.WaitFor, Now: cfg.Now, CheckTemplateFunc: eng.Check}
	aq := automationsrm.Queries{DB: db}
	rq := runsrm.Queries{DB: db}
	a.deps = httpapi.AutomationDeps{
		CreateAutomationFunc:   ah.Create,
		ReplaceAutomationFunc:  ah.Replace,
		ActivateAutomationFunc: ah.Activate,
		PauseAutomationFunc:    ah.Pause,
		GetAutomationFunc:      aq.Get,
		ListAutomationsFunc:    aq.List,
		ListRunsFunc:           rq.List,
		GetRunFunc:             rq.Get,
	}
	return a, nil
}

// mailTransport builds the SMTP sender, or the .eml writer when no SMTP URL
// is configured; nil when neither is.
func mailTransport(ac AutomationConfig, cfg Config, log *slog.Logger) (func(ctx context.Context, e runs.Email) error, error) {
	toMessage := func(e runs.Email) smtp.Message {
		return smtp.Message{MessageID: e.MessageID, From: e.From, To: e.To, Subject: e.Subject, Body: e.Body,
			Headers: map[string]string{"X-Lark-Run": e.RunID}}
	}
	switch {
	case ac.SMTPURL != "":
		s, err := smtp.NewSender(smtp.Config{URL: ac.SMTPURL, Registerer: cfg.Registerer, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("smtp sender: %w", err)
		}
		return func(ctx context.Context, e runs.Email) error { return s.Send(ctx, toMessage(e)) }, nil
	case ac.MailDir != "":
		f, err := smtp.NewFileSender(ac.MailDir)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, e runs.Email) error { return f.Send(ctx, toMessage(e)) }, nil
	}
	return nil, nil
}

// runs lists the automation side's background loops.
func (a *automationSide) runs() []func(context.Context) error {
	out := []func(context.Context) error{a.autoRun.Run, a.runsRun.Run, a.manager.Run, a.timers.Run}
	if a.sender != nil {
		out = append(out, a.sender.Run)
	}
	return out
}
