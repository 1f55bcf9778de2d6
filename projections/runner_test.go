package projections_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/domain/contact"
	"github.com/larkhq/lark/projections"
	"github.com/larkhq/lark/projections/contacts"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type bundle struct {
	db    *projections.DB
	store *esdb.Store
}

func setup(t *testing.T) bundle {
	t.Helper()
	store, err := esdb.New(esdb.Config{Client: esdbtest.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{db: projections.NewDB(pgtest.NewPool(t), nil), store: store}
}

func (b bundle) create(t *testing.T, email string) esdb.Position {
	t.Helper()
	id := contact.ID("ws", email)
	res, err := b.store.Append(context.Background(), esdb.ContactStream(id), esdb.Any, esdb.Proposed{
		Type: contact.TypeCreated, WorkspaceID: "ws",
		Data: contact.Created{WorkspaceID: "ws", ContactID: id, Email: email, At: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Position
}

func (b bundle) count(t *testing.T) (n int, revSum int64) {
	t.Helper()
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(revision), 0) FROM contacts`).Scan(&n, &revSum); err != nil {
		t.Fatal(err)
	}
	return n, revSum
}

func run(t *testing.T, r *projections.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestReplayIsNoOp: moving the checkpoint back replays events; rows that
// already reflect a revision are left alone, so nothing changes.
func TestReplayIsNoOp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := projections.NewRunner(contacts.Projection{}, b.db, b.store, nil, nil, nil)
	var last esdb.Position
	for _, e := range []string{"a@x.io", "b@x.io", "c@x.io"} {
		last = b.create(t, e)
	}
	// Update one so its row is at revision 1.
	id := contact.ID("ws", "a@x.io")
	ln := "Last"
	res, err := b.store.Append(ctx, esdb.ContactStream(id), 0, esdb.Proposed{Type: contact.TypeUpdated, WorkspaceID: "ws",
		Data: contact.Updated{WorkspaceID: "ws", ContactID: id, LastName: &ln, At: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	last = res.Position
	if err := r.WaitFor(ctx, last); err != nil { // no runner: applies itself
		t.Fatal(err)
	}
	n, sum := b.count(t)
	if n != 3 || sum != 1 {
		t.Fatalf("got %d rows, revision sum %d; want 3, 1", n, sum)
	}
	if _, err := b.db.Pool.Exec(ctx, `UPDATE projection_checkpoints SET commit_position = 0, prepare_position = 0 WHERE name = 'contacts'`); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	var lastName string
	if err := b.db.Pool.QueryRow(ctx, `SELECT last_name FROM contacts WHERE contact_id = $1`, id).Scan(&lastName); err != nil {
		t.Fatal(err)
	}
	if n2, sum2 := b.count(t); n2 != 3 || sum2 != 1 || lastName != "Last" {
		t.Errorf("after replay: %d rows, revision sum %d, last name %q; want 3, 1, Last", n2, sum2, lastName)
	}
}

// TestOneRunnerAtATime: of two runners of one projection only one applies;
// when it stops the other takes over.
func TestOneRunnerAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r1 := projections.NewRunner(contacts.Projection{}, b.db, b.store, nil, nil, nil)
	r2 := projections.NewRunner(contacts.Projection{}, b.db, b.store, nil, nil, nil)
	stop1 := run(t, r1)
	if err := r1.WaitFor(ctx, b.create(t, "a@x.io")); err != nil {
		t.Fatal(err)
	}
	run(t, r2)
	var holders int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&holders); err != nil {
		t.Fatal(err)
	}
	if holders != 1 {
		t.Errorf("%d advisory locks held, want 1", holders)
	}
	if err := r2.WaitFor(ctx, b.create(t, "b@x.io")); err != nil {
		t.Fatal(err)
	}
	stop1()
	// r2's Run stands by and takes over within its retry interval (polled
	// directly: WaitFor would apply the projection itself).
	b.create(t, "c@x.io")
	for {
		if n, _ := b.count(t); n == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the standby runner never took over")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWaitForForeignHead: waiting for the head of $all when the head is an
// event of another category (which a filtered live subscription reports
// only every 32 events) still returns.
func TestWaitForForeignHead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r := projections.NewRunner(contacts.Projection{}, b.db, b.store, nil, nil, nil)
	run(t, r)
	if err := r.WaitFor(ctx, b.create(t, "a@x.io")); err != nil {
		t.Fatal(err)
	}
	res, err := b.store.Append(ctx, "other-1", esdb.Any, esdb.Proposed{Type: "Other", WorkspaceID: "ws", Data: map[string]int{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.WaitFor(ctx, res.Position); err != nil {
		t.Fatalf("WaitFor a foreign head: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
