package runs

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/adapters/liquid"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/adapters/smtp"
	"github.com/larkhq/lark/adapters/smtp/mailpittest"
	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/domain/run"
	"github.com/larkhq/lark/projections"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type bundle struct {
	store   *esdb.Store
	db      *projections.DB
	decider run.Decider
}

func setup(t testing.TB) bundle {
	t.Helper()
	store, err := esdb.New(esdb.Config{Client: esdbtest.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{store: store, db: projections.NewDB(pgtest.NewPool(t), nil),
		decider: run.Decider{RenderFunc: liquid.New(liquid.Config{}).Render}}
}

// startRun starts a run of def for jane directly (as the manager would).
func (b bundle) startRun(t *testing.T, eventID string, def automation.Definition, at time.Time) string {
	t.Helper()
	id := run.RunID(eventID, "auto-1")
	evs, err := b.decider.Decide(run.State{}, run.Start{RunID: id, WorkspaceID: "ws", AutomationID: "auto-1", AutomationVersion: 1,
		Definition: def, Trigger: run.Trigger{EventID: eventID, EventName: "e", ReceivedAt: at},
		Contact: automation.Contact{EmailAddress: "jane@example.com", FirstName: "Jane"}, Policy: run.Policy{MaxEmailAttempts: 3}, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Append(context.Background(), esdb.RunStream(id), esdb.NoStream, proposed("ws", evs)...); err != nil {
		t.Fatal(err)
	}
	return id
}

func (b bundle) types(t *testing.T, runID string) []string {
	t.Helper()
	_, h, _, err := Load(context.Background(), b.store, runID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range h {
		out = append(out, e.EventType())
	}
	return out
}

func mailDef() automation.Definition {
	return automation.Definition{Name: "m", Trigger: automation.Trigger{Type: "custom_event", EventName: "e"}, Start: "mail",
		Nodes: []automation.Node{{ID: "mail", Type: automation.NodeSendEmail, Email: &automation.Email{Subject: "Hi {{ contact.first_name }}", Body: "Body"}}}}
}

func smtpSend(t *testing.T, url string) func(ctx context.Context, e Email) error {
	s, err := smtp.NewSender(smtp.Config{URL: url, BreakerFailures: 100})
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, e Email) error {
		return s.Send(ctx, smtp.Message{MessageID: e.MessageID, From: e.From, To: e.To, Subject: e.Subject, Body: e.Body})
	}
}

// A crash between sending and recording: the next attempt sends the same
// message under the same Message-ID, then records it once.
func TestSenderCrashBetweenSendAndRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mp := mailpittest.Start(t)
	id := b.startRun(t, "ev-crash", mailDef(), time.Now())
	real := smtpSend(t, mp.SMTPURL())
	ctx, crash := context.WithCancel(context.Background())
	s := &Sender{Store: b.store, DB: b.db, Decider: b.decider, From: "shop@example.com",
		SendFunc: func(c context.Context, e Email) error {
			err := real(c, e)
			crash() // the process dies right after the relay accepted the mail
			return err
		}}
	s.defaults()
	if err := s.deliver(ctx, outboxRow{messageID: run.MessageID(id, "mail"), runID: id}); err == nil {
		t.Fatal("deliver after crash: want an error")
	}
	if diff := cmp.Diff([]string{"RunStarted", "EmailQueued"}, b.types(t, id)); diff != "" {
		t.Fatalf("nothing recorded after the crash (-want +got):\n%s", diff)
	}
	s.SendFunc = real
	if err := s.deliver(context.Background(), outboxRow{messageID: run.MessageID(id, "mail"), runID: id}); err != nil {
		t.Fatal(err)
	}
	// A third pass finds the email recorded and sends nothing.
	if err := s.deliver(context.Background(), outboxRow{messageID: run.MessageID(id, "mail"), runID: id}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RunStarted", "EmailQueued", "EmailSent", "RunCompleted"}, b.types(t, id)); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
	msgs := mp.WaitFor(t, 2, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	msgs = mp.Messages(t)
	want := run.MessageID(id, "mail") + "@lark"
	if len(msgs) != 2 || msgs[0].MessageID != want || msgs[1].MessageID != want || msgs[0].Subject != "Hi Jane" {
		t.Fatalf("got %+v, want two copies with Message-ID %s", msgs, want)
	}
}

// Temporary failures are retried after a backoff, up to success;
// permanent ones fail the run at once.
func TestSenderRetryAndPermanentFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mp := mailpittest.Start(t, mailpittest.WithAllowedRecipients(`^jane@example\.com$`))
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := &Sender{Store: b.store, DB: b.db, Decider: b.decider, From: "shop@example.com", Now: clock,
		SendFunc: smtpSend(t, mp.SMTPURL()), PermanentFunc: func(err error) bool { return errors.Is(err, smtp.ErrPermanent) }}
	s.defaults()
	id := b.startRun(t, "ev-retry", mailDef(), now)
	row := outboxRow{messageID: run.MessageID(id, "mail"), runID: id}
	mp.SetChaos(t, mailpittest.Chaos{Recipient: mailpittest.Trigger{ErrorCode: 451, Probability: 100}})
	ctx := context.Background()
	if err := s.deliver(ctx, row); err != nil {
		t.Fatal(err)
	}
	if err := s.deliver(ctx, row); err != nil { // backing off: nothing happens
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RunStarted", "EmailQueued", "EmailFailed"}, b.types(t, id)); diff != "" {
		t.Fatalf("after a 451 (-want +got):\n%s", diff)
	}
	mp.SetChaos(t, mailpittest.Chaos{})
	advance(2 * time.Second)
	if err := s.deliver(ctx, row); err != nil {
		t.Fatal(err)
	}
	st, _, _, _ := Load(ctx, b.store, id)
	if diff := cmp.Diff([]string{"RunStarted", "EmailQueued", "EmailFailed", "EmailSent", "RunCompleted"}, b.types(t, id)); diff != "" || st.Status != run.StatusCompleted {
		t.Fatalf("after the retry (-want +got):\n%s", diff)
	}

	// A recipient the relay refuses (550): permanent, the run fails.
	def := mailDef()
	evs, _ := b.decider.Decide(run.State{}, run.Start{RunID: "r-perm", WorkspaceID: "ws", AutomationID: "a", Definition: def,
		Trigger: run.Trigger{EventID: "x", ReceivedAt: now}, Contact: automation.Contact{EmailAddress: "bob@example.com"}})
	if _, err := b.store.Append(ctx, esdb.RunStream("r-perm"), esdb.NoStream, proposed("ws", evs)...); err != nil {
		t.Fatal(err)
	}
	if err := s.deliver(ctx, outboxRow{messageID: run.MessageID("r-perm", "mail"), runID: "r-perm"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RunStarted", "EmailQueued", "EmailFailed", "RunFailed"}, b.types(t, "r-perm")); diff != "" {
		t.Fatalf("permanent failure (-want +got):\n%s", diff)
	}
}

// A timer fires at its due time, once, however many passes race.
func TestTimersFireOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	def := automation.Definition{Name: "d", Trigger: automation.Trigger{Type: "custom_event", EventName: "e"}, Start: "wait",
		Nodes: []automation.Node{{ID: "wait", Type: automation.NodeDelay, Duration: "2h"}}}
	id := b.startRun(t, "ev-timer", def, start)
	due := start.Add(2 * time.Hour)
	ctx := context.Background()
	if _, err := b.db.Pool.Exec(ctx, `INSERT INTO run_timers (run_id, node, workspace_id, due) VALUES ($1, 'wait', 'ws', $2)`, id, due); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := due.Add(-time.Second)
	tm := &Timers{Store: b.store, DB: b.db, Decider: b.decider, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	if err := tm.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RunStarted", "DelayStarted"}, b.types(t, id)); diff != "" {
		t.Fatalf("before due (-want +got):\n%s", diff)
	}
	mu.Lock()
	now = due.Add(time.Minute)
	mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = tm.Tick(ctx) }()
	}
	wg.Wait()
	if diff := cmp.Diff([]string{"RunStarted", "DelayStarted", "DelayElapsed", "RunCompleted"}, b.types(t, id)); diff != "" {
		t.Fatalf("after due, four racing passes (-want +got):\n%s", diff)
	}
	_, h, _, _ := Load(ctx, b.store, id)
	if el := h[2].(run.DelayElapsed); !el.Due.Equal(due) || !el.FiredAt.Equal(due.Add(time.Minute)) {
		t.Fatalf("elapsed %+v", el)
	}
}

// ContactAt sees the contact exactly as of a position in $all.
func TestContactAt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cid := contact.ID("ws", "Jane@Example.com")
	stream := esdb.ContactStream(cid)
	appendC := func(rev int64, e contact.Event) esdb.Position {
		res, err := b.store.Append(ctx, stream, rev, esdb.Proposed{Type: e.EventType(), WorkspaceID: "ws", Data: e})
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	marker := func() esdb.Position {
		res, err := b.store.Append(ctx, "marker-"+cid, esdb.Any, esdb.Proposed{Type: "Marker", WorkspaceID: "ws", Data: map[string]int{}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	before := marker()
	appendC(esdb.NoStream, contact.Created{WorkspaceID: "ws", ContactID: cid, Email: "Jane@Example.com", FirstName: "Jane",
		Properties: map[string]any{"tier": "gold"}})
	afterCreate := marker()
	appendC(0, contact.Deleted{WorkspaceID: "ws", ContactID: cid})
	afterDelete := marker()
	tests := []struct {
		name  string
		pos   esdb.Position
		found bool
	}{{"before creation", before, false}, {"after creation", afterCreate, true}, {"after deletion", afterDelete, false}}
	for _, tc := range tests {
		c, found, err := ContactAt(ctx, b.store, "ws", "jane@example.com", tc.pos)
		if err != nil {
			t.Fatal(err)
		}
		if found != tc.found {
			t.Errorf("%s: found %v, want %v", tc.name, found, tc.found)
		}
		if found && (c.FirstName != "Jane" || c.Email != "Jane@Example.com" || c.Properties["tier"] != "gold") {
			t.Errorf("%s: contact %+v", tc.name, c)
		}
	}
}
