package runs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
)

// Email is one message handed to the relay. MessageID is the run's
// deterministic id for the node, the same on every attempt.
type Email struct {
	// MessageID is "<run.MessageID>@<domain>", without angle brackets.
	MessageID string
	RunID     string
	From      string
	To        string
	Subject   string
	Body      string
}

// Sender is the email worker. It performs every queued email at least once
// under its deterministic Message-ID and records the result in the run:
// EmailSent, or EmailFailed (temporary errors are retried with backoff up to
// the run's attempt limit; permanent ones fail the run at once).
//
// The rendered message comes from the run's EmailQueued event, never from
// re-rendering, so every attempt sends the same bytes; a crash between
// sending and recording leads to one more send of the same message with the
// same Message-ID (at least once), never to a different id.
type Sender struct {
	Store   Store
	DB      *projections.DB
	Decider run.Decider
	// SendFunc hands one message to the relay (adapters/smtp).
	SendFunc func(ctx context.Context, e Email) error
	// PermanentFunc reports whether a send error is permanent (a retry
	// cannot succeed); nil treats every error as temporary.
	PermanentFunc func(error) bool
	// From is the sender address for nodes without their own (LARK_MAIL_FROM).
	From string
	// MessageIDDomain is the right-hand side of the Message-ID header,
	// "<run.MessageID@MessageIDDomain>" (default "lark"). Keep it fixed:
	// changing it changes the id of emails not yet recorded as sent.
	MessageIDDomain string
	// RetryDelayFunc is the wait after a failed attempt; it must be the
	// projection's (projections/runs.DefaultRetryDelay when nil).
	RetryDelayFunc func(failedAttempt int) time.Duration
	Now            func() time.Time
	// Poll is how often the outbox is read (default 100 ms).
	Poll time.Duration
	// SendTimeout bounds one send (default 30 s).
	SendTimeout time.Duration
	// Concurrency bounds the sends in flight (default 8).
	Concurrency int
	Logger      *slog.Logger
	Metrics     *Metrics
}

func (s *Sender) defaults() {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Poll <= 0 {
		s.Poll = 100 * time.Millisecond
	}
	if s.SendTimeout <= 0 {
		s.SendTimeout = 30 * time.Second
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 8
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.MessageIDDomain == "" {
		s.MessageIDDomain = "lark"
	}
}

// Run sends queued emails until ctx ends, in one process of the deployment
// at a time (an advisory lock; the others stand by).
func (s *Sender) Run(ctx context.Context) error {
	s.defaults()
	return exclusive(ctx, s.DB, "sender", s.Logger, func(ctx context.Context) error {
		return poll(ctx, s.Poll, s.Logger, "email sender", s.Tick)
	})
}

type outboxRow struct {
	messageID, runID string
}

// Tick performs one pass: every email due now is sent and recorded.
func (s *Sender) Tick(ctx context.Context) error {
	s.defaults()
	now := s.Now()
	var due []outboxRow
	err := s.DB.Do(ctx, func(ctx context.Context) error {
		due = due[:0]
		rows, err := s.DB.Pool.Query(ctx, `SELECT message_id, run_id FROM run_email_outbox
			WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 500`, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r outboxRow
			if err := rows.Scan(&r.messageID, &r.runID); err != nil {
				return err
			}
			due = append(due, r)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.Concurrency)
	for _, r := range due {
		g.Go(func() error {
			if err := s.deliver(gctx, r); err != nil && gctx.Err() == nil {
				s.Logger.Warn("email delivery", "run_id", r.runID, "message_id", r.messageID, "error", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// deliver sends one email if its run still waits for it, and records the result.
func (s *Sender) deliver(ctx context.Context, r outboxRow) error {
	st, history, _, err := Load(ctx, s.Store, r.runID)
	if err != nil {
		return err
	}
	w := st.Awaiting
	if st.Ended() || w.Kind != run.AwaitEmail || w.MessageID != r.messageID {
		return nil // recorded already; the outbox row goes when the projection catches up
	}
	var queued *run.EmailQueued
	var lastFail time.Time
	for _, e := range history {
		switch e := e.(type) {
		case run.EmailQueued:
			if e.MessageID == r.messageID {
				queued = &e
			}
		case run.EmailFailed:
			if e.MessageID == r.messageID {
				lastFail = e.At
			}
		}
	}
	if queued == nil {
		return fmt.Errorf("run %s waits for %s but has no EmailQueued for it", r.runID, r.messageID)
	}
	delay := s.RetryDelayFunc
	if delay == nil {
		delay = defaultRetryDelay
	}
	if w.Attempt > 1 && s.Now().Before(lastFail.Add(delay(w.Attempt-1))) {
		return nil // backing off (the outbox row may lag behind the run)
	}
	from := queued.From
	if from == "" {
		from = s.From
	}
	sctx, cancel := context.WithTimeout(ctx, s.SendTimeout)
	start := time.Now()
	sendErr := s.SendFunc(sctx, Email{MessageID: queued.MessageID + "@" + s.MessageIDDomain, RunID: r.runID, From: from, To: queued.To,
		Subject: queued.Subject, Body: queued.Body})
	cancel()
	s.Metrics.sendTook(time.Since(start).Seconds())
	if sendErr != nil && ctx.Err() != nil {
		return ctx.Err() // shutting down: record nothing, the next holder retries
	}
	result := run.EmailResult{Node: queued.Node, MessageID: queued.MessageID, Attempt: w.Attempt, At: s.Now().UTC()}
	label := "sent"
	if sendErr != nil {
		result.Err = sendErr.Error()
		result.Retryable = s.PermanentFunc == nil || !s.PermanentFunc(sendErr)
		label = "failed_permanent"
		if result.Retryable {
			label = "failed_temporary"
		}
	}
	evs, err := step(ctx, s.Store, s.Decider, r.runID, func(run.State, []run.Event) (run.Command, bool) { return result, true })
	if errors.Is(err, errDropped) {
		return nil
	}
	if err != nil {
		return err
	}
	s.Metrics.email(label)
	countEnd(s.Metrics, evs)
	return nil
}

// defaultRetryDelay matches projections/runs.DefaultRetryDelay.
func defaultRetryDelay(failedAttempt int) time.Duration {
	d := time.Second
	for i := 1; i < failedAttempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}
