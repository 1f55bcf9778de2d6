package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/failure"
	domain "github.com/larkhq/lark/domain/ingest"
)

// Log is the event store as the ingest lane needs it.
type Log interface {
	// AppendEncoded appends atomically at an exact expected revision
	// (esdb.NoStream for a new stream); a wrong expected version wraps
	// esdb.ErrConcurrency.
	AppendEncoded(ctx context.Context, stream string, expected int64, data []esdb.Encoded) (esdb.AppendResult, error)
	// Last returns the stream's last revision and event (NoStream, nil when empty).
	Last(ctx context.Context, stream string) (int64, *esdb.Recorded, error)
}

// MaxAppendBytes keeps one append under the event store's 1 MiB limit.
const MaxAppendBytes = 1000 * 1024

// maxAppendEvents bounds one group commit.
const maxAppendEvents = 2000

// item is one request's events waiting in a lane.
type item struct {
	ctx    context.Context
	events []esdb.Encoded
	size   int
	limit  int64
	done   chan laneResult
}

type laneResult struct {
	accepted int // a prefix of the item's events
	err      error
}

// Lanes is the set of ingest lanes of this process: one per workspace and
// month. A lane appends everything queued for its stream in one append
// with the exact expected revision (group commit), admitting each request
// against the limit in queue order, so usage can never pass the limit.
type Lanes struct {
	log     Log
	logger  *slog.Logger
	metrics *laneMetrics
	idle    time.Duration

	mu    sync.Mutex
	lanes map[string]*lane
}

type laneMetrics struct {
	appends   prometheus.Counter
	batchSize prometheus.Histogram
	conflicts prometheus.Counter
}

type lane struct {
	stream string
	mu     sync.Mutex
	queue  []*item
	wake   chan struct{}
}

// NewLanes builds the lanes.
func NewLanes(log Log, logger *slog.Logger, reg prometheus.Registerer) (*Lanes, error) {
	m := &laneMetrics{
		appends: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_ingest_appends_total",
			Help: "Appends made by the ingest lanes (each carries one or more events)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lark_ingest_append_events",
			Help: "Events per ingest append (group commit size).", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_ingest_append_conflicts_total",
			Help: "Ingest appends refused for a wrong expected version (another process appended) and retried."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.appends, m.batchSize, m.conflicts} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Lanes{log: log, logger: logger, metrics: m, idle: 30 * time.Second, lanes: map[string]*lane{}}, nil
}

// Submit queues events for stream under limit and waits for the lane. It
// returns how many of them (a prefix) were stored; the rest are over the
// limit. An error means none was stored.
func (ls *Lanes) Submit(ctx context.Context, stream string, limit int64, events []esdb.Encoded) (int, error) {
	size := 0
	for _, e := range events {
		size += esdb.EncodedSize(e)
	}
	if size > MaxAppendBytes {
		return 0, failure.New(failure.PayloadTooLarge, "the accepted events weigh %d bytes, over the %d bytes one atomic append can hold; split the batch", size, MaxAppendBytes)
	}
	it := &item{ctx: ctx, events: events, size: size, limit: limit, done: make(chan laneResult, 1)}
	ls.mu.Lock()
	l, ok := ls.lanes[stream]
	if !ok {
		l = &lane{stream: stream, wake: make(chan struct{}, 1)}
		ls.lanes[stream] = l
		go ls.run(l)
	}
	l.mu.Lock()
	l.queue = append(l.queue, it)
	l.mu.Unlock()
	ls.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case r := <-it.done:
		return r.accepted, r.err
	case <-ctx.Done():
		// The lane may still append it; wait for the verdict so the
		// caller never reports "not stored" for a stored event.
		r := <-it.done
		return r.accepted, r.err
	}
}

func (ls *Lanes) run(l *lane) {
	const unknown = int64(-3)
	rev := unknown
	timer := time.NewTimer(ls.idle)
	defer timer.Stop()
	for {
		select {
		case <-l.wake:
		case <-timer.C:
			ls.mu.Lock()
			l.mu.Lock()
			if len(l.queue) == 0 {
				delete(ls.lanes, l.stream)
				l.mu.Unlock()
				ls.mu.Unlock()
				return
			}
			l.mu.Unlock()
			ls.mu.Unlock()
		}
		for {
			batch := l.take()
			if len(batch) == 0 {
				break
			}
			rev = ls.commit(l.stream, rev, batch)
		}
		timer.Reset(ls.idle)
	}
}

// take removes a group of items that fits one append.
func (l *lane) take() []*item {
	l.mu.Lock()
	defer l.mu.Unlock()
	size, n, i := 0, 0, 0
	for ; i < len(l.queue); i++ {
		it := l.queue[i]
		if i > 0 && (size+it.size > MaxAppendBytes || n+len(it.events) > maxAppendEvents) {
			break
		}
		size += it.size
		n += len(it.events)
	}
	batch := l.queue[:i:i]
	l.queue = append([]*item(nil), l.queue[i:]...)
	return batch
}

// commit appends a group and answers its items; it returns the stream's
// revision afterwards (or unknown after an error).
func (ls *Lanes) commit(stream string, rev int64, batch []*item) int64 {
	const unknown = int64(-3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Requests whose callers gave up before their turn are dropped
	// unstored.
	live := batch[:0:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.done <- laneResult{err: failure.Wrap(failure.Unavailable, err, "request cancelled before it was stored")}
			continue
		}
		live = append(live, it)
	}
	batch = live
	if len(batch) == 0 {
		return rev
	}
	fail := func(err error) int64 {
		for _, it := range batch {
			it.done <- laneResult{err: err}
		}
		return unknown
	}
	for attempt := 0; ; attempt++ {
		if rev == unknown {
			r, _, err := ls.log.Last(ctx, stream)
			if err != nil {
				return fail(err)
			}
			rev = r
		}
		used := rev + 1
		accepted := make([]int, len(batch))
		var data []esdb.Encoded
		for i, it := range batch {
			n := domain.Admit(used, it.limit, len(it.events))
			accepted[i] = n
			used += int64(n)
			data = append(data, it.events[:n]...)
		}
		if len(data) == 0 {
			for _, it := range batch {
				it.done <- laneResult{}
			}
			return rev
		}
		res, err := ls.log.AppendEncoded(ctx, stream, rev, data)
		if errors.Is(err, esdb.ErrConcurrency) && attempt < 100 {
			// Another process appended: learn the revision and re-admit.
			ls.metrics.conflicts.Inc()
			rev = unknown
			continue
		}
		if err != nil && !errors.Is(err, esdb.ErrConcurrency) {
			// The append may have landed before the connection failed:
			// if the stream now ends with our last event, it did.
			if r, last, lerr := ls.log.Last(ctx, stream); lerr == nil && last != nil &&
				last.ID == data[len(data)-1].EventID.String() && r == rev+int64(len(data)) {
				err = nil
				res.NextRevision = uint64(r)
			}
		}
		if err != nil {
			ls.logger.Warn("ingest append failed", "stream", stream, "events", len(data), "error", err)
			return fail(err)
		}
		ls.metrics.appends.Inc()
		ls.metrics.batchSize.Observe(float64(len(data)))
		for i, it := range batch {
			it.done <- laneResult{accepted: accepted[i]}
		}
		return int64(res.NextRevision)
	}
}
