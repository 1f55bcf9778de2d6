package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/adapters/esdb"
)

// Projection is one read model's write side.
type Projection interface {
	// Name identifies the projection (its checkpoint row and lock).
	Name() string
	// Prefixes are the stream-name prefixes it consumes.
	Prefixes() []string
	// Apply applies events, in $all order, inside tx. It must be idempotent
	// per event (rows remember the revision they reflect).
	Apply(ctx context.Context, tx pgx.Tx, events []esdb.Recorded) error
}

// Source is the event store as the runner needs it.
type Source interface {
	Follow(ctx context.Context, from esdb.Position, prefixes []string, out chan<- esdb.Message) error
}

// Metrics are the runners' Prometheus collectors; one set serves all.
type Metrics struct {
	lag      *prometheus.GaugeVec
	position *prometheus.GaugeVec
	applied  *prometheus.CounterVec
}

// NewMetrics registers the projection metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lark_projection_lag_seconds",
			Help: "Age of the newest event a projection has applied when it was applied (0 when idle and caught up)."}, []string{"projection"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lark_projection_checkpoint_position",
			Help: "Commit position in $all a projection has applied up to."}, []string{"projection"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lark_projection_events_applied_total",
			Help: "Events applied by a projection."}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.lag, m.position, m.applied} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register projection metrics: %w", err)
		}
	}
	return m, nil
}

// Runner runs one projection.
type Runner struct {
	p       Projection
	db      *DB
	src     Source
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every committed checkpoint
}

// NewRunner builds a runner. metrics may be nil.
func NewRunner(p Projection, db *DB, src Source, log *slog.Logger, metrics *Metrics, now func() time.Time) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Runner{p: p, db: db, src: src, log: log.With("projection", p.Name()), metrics: metrics, now: now,
		changed: make(chan struct{})}
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.p.Name() }

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("lark.projection." + name))
	return int64(h.Sum64())
}

// Run keeps the projection up to date until ctx ends: it stands by until
// it holds the projection's advisory lock, then follows $all from the
// checkpoint; if anything fails it lets the lock go and starts over.
func (r *Runner) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		conn, err := r.acquire(ctx, true)
		if err == nil {
			err = r.follow(ctx, conn, nil)
			r.release(conn)
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("projection stopped; restarting", "error", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// acquire takes the projection's lock on a dedicated connection; with
// wait it retries until it gets it (standby), else it gives up at once
// (nil, nil when someone else holds it).
func (r *Runner) acquire(ctx context.Context, wait bool) (*pgx.Conn, error) {
	for {
		// A dedicated connection, outside the pool: it is held for as long
		// as the projection runs, and the pool's size is the caller's.
		conn, err := r.db.Dedicated(ctx)
		if err != nil {
			return nil, fmt.Errorf("lock connection: %w", err)
		}
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey(r.p.Name())).Scan(&ok); err != nil {
			_ = conn.Close(context.Background())
			return nil, fmt.Errorf("try lock: %w", err)
		}
		if ok {
			return conn, nil
		}
		_ = conn.Close(context.Background())
		if !wait {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (r *Runner) release(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Closing the session releases its advisory locks.
	_ = conn.Close(ctx)
}

// Checkpoint reads the projection's committed position.
func Checkpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (esdb.Position, error) {
	var c, p string
	err := q.QueryRow(ctx, `SELECT commit_position::text, prepare_position::text FROM projection_checkpoints WHERE name = $1`, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return esdb.Position{}, nil
	}
	if err != nil {
		return esdb.Position{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	var pos esdb.Position
	if pos.Commit, err = strconv.ParseUint(c, 10, 64); err != nil {
		return esdb.Position{}, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if pos.Prepare, err = strconv.ParseUint(p, 10, 64); err != nil {
		return esdb.Position{}, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	return pos, nil
}

const maxBatch = 500

// Under sustained load (the last batch of events was committed less than
// busyWindow ago) a runner waits up to linger for more events before it
// commits, so that it makes one transaction per ~linger instead of one per
// handful of events: at thousands of events per second the per-transaction
// work (BEGIN, checkpoint, COMMIT with its fsync) otherwise competes with
// ingestion for the CPU. A quiet runner commits at once, so a management
// write waits for no linger; under ingest load it waits at most linger more.
const (
	linger     = 10 * time.Millisecond
	busyWindow = 50 * time.Millisecond
)

// errLostLease means another runner moved the checkpoint under us.
var errLostLease = errors.New("checkpoint moved by another process")

// follow applies events until ctx ends, an error occurs, or (with stopAt)
// the checkpoint has passed stopAt. lock is the connection holding the
// advisory lock; it is pinged so that losing it stops the runner.
func (r *Runner) follow(ctx context.Context, lock *pgx.Conn, stopAt *esdb.Position) error {
	name := r.p.Name()
	if _, err := r.db.Pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_position, prepare_position)
		VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("init checkpoint: %w", err)
	}
	cp, err := Checkpoint(ctx, r.db.Pool, name)
	if err != nil {
		return err
	}
	r.signal()
	if stopAt != nil && !cp.Less(*stopAt) {
		return nil
	}
	ch := make(chan esdb.Message, 4*maxBatch)
	var cancel context.CancelFunc
	var followed chan struct{}
	start := func(from esdb.Position) {
		var fctx context.Context
		fctx, cancel = context.WithCancel(ctx)
		followed = make(chan struct{})
		out, done := ch, followed
		go func() {
			defer close(done)
			_ = r.src.Follow(fctx, from, r.p.Prefixes(), out)
		}()
	}
	start(cp)
	defer func() {
		cancel()
		<-followed
	}()
	// A live filtered subscription reports progress over events of other
	// categories only every 32 events, so a quiet $all whose head is not
	// ours would leave waiters (WaitFor the head) hanging. When idle we
	// resubscribe: the catch-up of a new subscription ends with a
	// checkpoint at the head.
	seen := cp // position of the last message taken from ch
	lastMsg := time.Now()
	resubscribe := func() {
		cancel()
		<-followed
		var carry []esdb.Message
		for len(ch) > 0 {
			carry = append(carry, <-ch)
		}
		from := seen
		ch = make(chan esdb.Message, 4*maxBatch)
		for _, m := range carry {
			ch <- m
			switch {
			case m.Event != nil:
				from = m.Event.Position
			case m.Checkpoint != nil && from.Less(*m.Checkpoint):
				from = *m.Checkpoint
			}
		}
		start(from)
		lastMsg = time.Now()
	}

	lockCheck := time.NewTicker(2 * time.Second)
	defer lockCheck.Stop()
	var pendingCP *esdb.Position // a checkpoint-only advance not yet written
	lastWrite := time.Now()
	var lastEvents time.Time // when a batch with events was last committed
	flushCP := time.NewTicker(time.Second)
	defer flushCP.Stop()
	for {
		var first esdb.Message
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lockCheck.C:
			if err := lock.Ping(ctx); err != nil {
				return fmt.Errorf("lock connection lost: %w", err)
			}
			continue
		case <-flushCP.C:
			if pendingCP != nil && time.Since(lastWrite) >= time.Second {
				if err := r.commit(ctx, &cp, *pendingCP, nil); err != nil {
					return err
				}
				pendingCP, lastWrite = nil, time.Now()
			}
			if time.Since(lastMsg) >= time.Second {
				resubscribe()
			}
			continue
		case first = <-ch:
			lastMsg = time.Now()
		}
		var events []esdb.Recorded
		to := cp
		add := func(m esdb.Message) {
			switch {
			case m.Event != nil:
				events = append(events, *m.Event)
				to = m.Event.Position
			case m.Checkpoint != nil:
				if to.Less(*m.Checkpoint) {
					to = *m.Checkpoint
				}
			}
			if seen.Less(to) {
				seen = to
			}
		}
		add(first)
	drain:
		for len(events) < maxBatch {
			select {
			case m := <-ch:
				add(m)
			default:
				break drain
			}
		}
		if len(events) > 0 && len(events) < maxBatch && time.Since(lastEvents) < busyWindow &&
			(stopAt == nil || to.Less(*stopAt)) {
			wait := time.NewTimer(linger)
		gather:
			for len(events) < maxBatch {
				select {
				case m := <-ch:
					add(m)
				case <-wait.C:
					break gather
				case <-ctx.Done():
					wait.Stop()
					return ctx.Err()
				}
			}
			wait.Stop()
		}
		if !cp.Less(to) {
			continue
		}
		if len(events) == 0 && (stopAt == nil || to.Less(*stopAt)) {
			// Only a checkpoint: persist it lazily.
			p := to
			pendingCP = &p
			continue
		}
		if err := r.commit(ctx, &cp, to, events); err != nil {
			return err
		}
		pendingCP, lastWrite = nil, time.Now()
		if len(events) > 0 {
			lastEvents = lastWrite
		}
		if stopAt != nil && !cp.Less(*stopAt) {
			return nil
		}
	}
}

// commit applies events and moves the checkpoint from *cp to to in one
// transaction, only if the checkpoint still holds *cp.
func (r *Runner) commit(ctx context.Context, cp *esdb.Position, to esdb.Position, events []esdb.Recorded) error {
	name := r.p.Name()
	err := r.db.Tx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if len(events) > 0 {
			if err := r.p.Apply(ctx, tx, events); err != nil {
				return fmt.Errorf("apply: %w", err)
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE projection_checkpoints
			SET commit_position = $2::numeric, prepare_position = $3::numeric, updated_at = now()
			WHERE name = $1 AND commit_position = $4::numeric AND prepare_position = $5::numeric`,
			name, strconv.FormatUint(to.Commit, 10), strconv.FormatUint(to.Prepare, 10),
			strconv.FormatUint(cp.Commit, 10), strconv.FormatUint(cp.Prepare, 10))
		if err != nil {
			return fmt.Errorf("move checkpoint: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errLostLease
		}
		return nil
	})
	if err != nil {
		return err
	}
	*cp = to
	if r.metrics != nil {
		r.metrics.position.WithLabelValues(name).Set(float64(to.Commit))
		r.metrics.applied.WithLabelValues(name).Add(float64(len(events)))
		if len(events) > 0 {
			r.metrics.lag.WithLabelValues(name).Set(r.now().Sub(events[len(events)-1].Created).Seconds())
		} else {
			r.metrics.lag.WithLabelValues(name).Set(0)
		}
	}
	r.signal()
	return nil
}

func (r *Runner) signal() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *Runner) changedChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// WaitFor returns once the projection's committed checkpoint is at or past
// pos (read-your-writes). It works across processes because the checkpoint
// is in Postgres. If no process is running the projection (its lock is
// free), it applies the projection itself up to pos, so short-lived
// commands (lark workspace create) answer correctly with or without a
// running server.
func (r *Runner) WaitFor(ctx context.Context, pos esdb.Position) error {
	poll := 2 * time.Millisecond
	// Give a running projection (here or in another process) a moment
	// before trying to apply it ourselves.
	tried := time.Now().Add(-200 * time.Millisecond)
	for {
		ch := r.changedChan()
		var cp esdb.Position
		err := r.db.Do(ctx, func(ctx context.Context) error {
			var err error
			cp, err = Checkpoint(ctx, r.db.Pool, r.p.Name())
			return err
		})
		if err != nil {
			return err
		}
		if !cp.Less(pos) {
			return nil
		}
		if time.Since(tried) > 250*time.Millisecond {
			tried = time.Now()
			conn, err := r.acquire(ctx, false)
			if err != nil {
				return err
			}
			if conn != nil {
				stop := pos
				err := r.follow(ctx, conn, &stop)
				r.release(conn)
				if err != nil {
					return fmt.Errorf("catch up %s: %w", r.p.Name(), err)
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(poll):
			if poll < 20*time.Millisecond {
				poll *= 2
			}
		}
	}
}
