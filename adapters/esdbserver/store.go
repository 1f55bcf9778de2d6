package esdbserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/google/uuid"
)

// Limits of the writer's group commit.
const (
	maxGroupRequests = 1024
	maxGroupBytes    = 8 << 20
	headCacheSize    = 1 << 16  // stream heads (~350 bytes each with the id filter)
	cacheSize        = 64 << 20 // Pebble block cache
)

// errClosed is returned for writes after the store began closing.
var errClosed = errors.New("esdbserver: store closed")

// expectKind is the case of an expected stream revision.
type expectKind int

const (
	expAny expectKind = iota
	expNoStream
	expExists
	expRev
)

// expected is an expected stream revision.
type expected struct {
	kind expectKind
	rev  uint64
}

// opKind is what a write request does.
type opKind int

const (
	opAppend opKind = iota
	opDelete
	opTombstone
)

// proposed is one event to append.
type proposed struct {
	id   [16]byte
	typ  string
	json bool
	data []byte
	meta []byte
}

// precheck is what a request's own goroutine read from storage before
// queueing, so that the writer can skip those reads when still valid.
type precheck struct {
	stamp     uint64 // published position before the reads
	head      head
	firstSeen bool // the first event id is in the stream's id index
}

type writeReq struct {
	pre    *precheck
	op     opKind
	stream string
	exp    expected
	events []proposed
	size   int
	done   chan writeResult
}

// resultKind classifies a write result.
type resultKind int

const (
	resOK resultKind = iota
	resWEV
	resDeleted
	resError
)

type writeResult struct {
	kind resultKind
	err  error
	cur  int64  // current revision: for WEV, or the resulting one on success (-1: no stream)
	pos  uint64 // position of the last written (or matched) event; 0 if none
}

// store is the Pebble-backed event log with its single writer.
type store struct {
	db      *pebble.DB
	log     *slog.Logger
	met     *metrics
	cache   *headCache
	hub     *hub
	reqs    chan *writeReq
	quit    chan struct{}
	stopped chan struct{}
	mu      sync.RWMutex // guards closed against sends on reqs
	closed  bool
	nextPos uint64 // writer-owned
	now     func() time.Time
}

func openStore(dir string, log *slog.Logger, met *metrics) (*store, error) {
	s, err := newStore(dir, log, met)
	if err != nil {
		return nil, err
	}
	go s.writer()
	return s, nil
}

// newStore opens the store without starting its writer.
func newStore(dir string, log *slog.Logger, met *metrics) (*store, error) {
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		Logger:       pebbleLogger{log},
		MemTableSize: 32 << 20,
		EventListener: &pebble.EventListener{
			// Reads of a damaged block fail with pebble.ErrCorruption, which
			// the service reports as DataLoss; log it loudly here too.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("on-disk corruption detected", "info", info.String())
			},
		},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("esdbserver: open store in %s (is another process using it?): %w", dir, err)
	}
	s := &store{
		db:      db,
		log:     log,
		met:     met,
		cache:   newHeadCache(headCacheSize),
		hub:     newHub(),
		reqs:    make(chan *writeReq, 4096),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		now:     time.Now,
	}
	last, err := s.lastPosition()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.nextPos = last + 1
	s.hub.setHead(last)
	return s, nil
}

// lastPosition returns the position of the newest event, 0 if none.
func (s *store) lastPosition() (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixAll}, UpperBound: []byte{prefixAll + 1}})
	if err != nil {
		return 0, fmt.Errorf("esdbserver: scan log: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return 0, fmt.Errorf("esdbserver: scan log: %w", err)
		}
		return 0, nil
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, fmt.Errorf("%w: bad log key", errCorruptRecord)
	}
	var r record
	if err := decodeRecord(it.Value(), &r); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// close stops the writer after it has answered every queued request, then
// closes Pebble.
func (s *store) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	s.mu.Unlock()
	<-s.stopped
	// Everything acknowledged is already synced in the WAL; flushing the
	// memtable just spares the next start a WAL replay.
	if err := s.db.Flush(); err != nil {
		_ = s.db.Close()
		return fmt.Errorf("esdbserver: flush store: %w", err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("esdbserver: close store: %w", err)
	}
	return nil
}

// write queues r for the writer and waits for its result.
func (s *store) write(r *writeReq) writeResult {
	r.done = make(chan writeResult, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return writeResult{kind: resError, err: errClosed}
	}
	if err := s.precheck(r); err != nil {
		s.mu.RUnlock()
		return writeResult{kind: resError, err: err}
	}
	s.reqs <- r
	s.mu.RUnlock()
	return <-r.done
}

// precheck does the request's storage reads outside the writer.
func (s *store) precheck(r *writeReq) error {
	pre := &precheck{stamp: s.published()}
	h, err := s.head(r.stream)
	if err != nil {
		return err
	}
	pre.head = h
	if r.op == opAppend && len(r.events) > 0 && (r.exp.kind == expAny || r.exp.kind == expExists) &&
		h.ids.mayContain(&r.events[0].id) {
		_, pre.firstSeen, err = s.lookupID(s.db, r.stream, r.events[0].id)
		if err != nil {
			return err
		}
	}
	r.pre = pre
	return nil
}

// writer is the single goroutine that checks and commits writes in groups.
func (s *store) writer() {
	defer close(s.stopped)
	group := make([]*writeReq, 0, maxGroupRequests)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.quit:
			// Answer what is still queued; no sender can add more.
			for {
				select {
				case r := <-s.reqs:
					s.commitGroup([]*writeReq{r})
				default:
					return
				}
			}
		}
		group = append(group[:0], first)
		size := first.size
	drain:
		for len(group) < maxGroupRequests && size < maxGroupBytes {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				size += r.size
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// group is the state of one group commit.
type group struct {
	b       *pebble.Batch
	heads   map[string]head
	recs    []record
	nextPos uint64
	created int64
	buf     []byte
}

func (s *store) commitGroup(reqs []*writeReq) {
	g := &group{
		b:       s.db.NewIndexedBatch(),
		heads:   make(map[string]head),
		nextPos: s.nextPos,
		created: toTicks(s.now()),
	}
	defer g.b.Close()
	results := make([]writeResult, len(reqs))
	for i, r := range reqs {
		res, err := s.apply(g, r)
		if err != nil {
			// A request may have put part of its events in the batch: fail the
			// whole group rather than commit half a request.
			s.log.Error("write failed", "stream", r.stream, "err", err)
			s.met.commitFailed(len(reqs))
			for _, r := range reqs {
				r.done <- writeResult{kind: resError, err: err}
			}
			return
		}
		results[i] = res
	}
	if len(g.recs) > 0 {
		for k, h := range g.heads {
			if err := g.b.Set(headKey(k), encodeHead(h), nil); err != nil {
				s.log.Error("batch", "err", err)
			}
		}
		start := time.Now()
		bytesWritten := g.b.Len()
		if err := g.b.Commit(pebble.Sync); err != nil {
			err = fmt.Errorf("esdbserver: commit: %w", err)
			s.log.Error("commit failed", "err", err)
			for i, r := range reqs {
				results[i] = writeResult{kind: resError, err: err}
				r.done <- results[i]
			}
			s.met.commitFailed(len(reqs))
			return
		}
		s.met.committed(time.Since(start), len(g.recs), bytesWritten)
		s.nextPos = g.nextPos
		for k, h := range g.heads {
			s.cache.put(k, h, s.nextPos-1)
		}
		s.hub.publish(g.recs)
	}
	for i, r := range reqs {
		s.met.append(results[i].kind)
		r.done <- results[i]
	}
}

// headFor returns a stream's head as seen by the writer in group g. pre,
// if not nil, is a precheck of this stream.
func (s *store) headFor(g *group, stream string, pre *precheck) (head, error) {
	if h, ok := g.heads[stream]; ok {
		return h, nil
	}
	if h, ok := s.cache.get(stream); ok {
		return h, nil
	}
	// Every write puts its stream in the cache; a stream missing from it was
	// not written since the precheck unless it was evicted since then.
	if pre != nil && pre.stamp >= s.cache.mark() {
		s.cache.put(stream, pre.head, s.nextPos-1)
		return pre.head, nil
	}
	h, err := s.loadHead(stream)
	if err != nil {
		return head{}, err
	}
	s.cache.put(stream, h, s.nextPos-1)
	return h, nil
}

// loadHead reads a head from Pebble.
func (s *store) loadHead(stream string) (head, error) {
	v, c, err := s.db.Get(headKey(stream))
	if errors.Is(err, pebble.ErrNotFound) {
		return emptyHead, nil
	}
	if err != nil {
		return head{}, fmt.Errorf("esdbserver: read head of %q: %w", stream, err)
	}
	defer c.Close()
	return decodeHead(v)
}

// head returns a stream's committed head (for readers).
func (s *store) head(stream string) (head, error) {
	if h, ok := s.cache.get(stream); ok {
		return h, nil
	}
	return s.loadHead(stream)
}

func (s *store) apply(g *group, r *writeReq) (writeResult, error) {
	h, err := s.headFor(g, r.stream, r.pre)
	if err != nil {
		return writeResult{}, err
	}
	cur := h.lastRev
	wev := writeResult{kind: resWEV, cur: cur}
	if h.tombstoned {
		return writeResult{kind: resDeleted}, nil
	}
	if isMetastream(r.stream) {
		// The metastream of a tombstoned stream is deleted too.
		bh, err := s.headFor(g, r.stream[2:], nil)
		if err != nil {
			return writeResult{}, err
		}
		if bh.tombstoned {
			return writeResult{kind: resDeleted}, nil
		}
	}
	if r.op == opDelete && cur == -1 && !h.hasMeta {
		return wev, nil
	}
	switch r.exp.kind {
	case expExists, expAny:
		if r.exp.kind == expExists {
			if h.deleted {
				return writeResult{kind: resDeleted}, nil
			}
			if cur == -1 && !h.hasMeta {
				return wev, nil
			}
		}
		// The precheck's id lookup holds if the stream had no write since.
		unseen := len(r.events) > 0 && (!h.ids.mayContain(&r.events[0].id) ||
			r.pre != nil && !r.pre.firstSeen && h.lastPos <= r.pre.stamp)
		if r.op == opAppend && len(r.events) > 0 && !unseen {
			res, done, err := s.idempotentAny(g, r)
			if err != nil || done {
				return res, err
			}
		}
	case expNoStream, expRev:
		want := int64(-1)
		if r.exp.kind == expRev {
			if r.exp.rev > math.MaxInt64 {
				return wev, nil
			}
			want = int64(r.exp.rev)
		}
		switch {
		case want == cur:
		case want > cur:
			return wev, nil
		case r.exp.kind == expNoStream && h.deleted:
		case r.op != opAppend || len(r.events) == 0:
			return wev, nil
		default:
			return s.idempotentExact(g, r, want, cur)
		}
	}
	switch r.op {
	case opDelete:
		pos, err := s.writeEvent(g, "$$"+r.stream, proposed{
			id: uuid.New(), typ: "$metadata", json: true,
			data: []byte(`{"$tb":9223372036854775807}`),
		}, false)
		return writeResult{kind: resOK, pos: pos, cur: cur}, err
	case opTombstone:
		pos, err := s.writeEvent(g, r.stream, proposed{id: uuid.New(), typ: "$streamDeleted"}, true)
		return writeResult{kind: resOK, pos: pos, cur: cur}, err
	}
	if len(r.events) == 0 {
		return writeResult{kind: resOK, cur: cur}, nil
	}
	if h.deleted {
		// Recreate: the metastream gets the latest metadata with $tb = cur+1.
		mh, err := s.headFor(g, "$$"+r.stream, nil)
		if err != nil {
			return writeResult{}, err
		}
		var latest []byte
		if mh.lastRev >= 0 {
			var mr record
			if err := s.getRecord(g.b, mh.lastPos, &mr); err != nil {
				return writeResult{}, err
			}
			latest = mr.data
		}
		if _, err := s.writeEvent(g, "$$"+r.stream, proposed{
			id: uuid.New(), typ: "$metadata", json: true, data: withTB(latest, cur+1),
		}, false); err != nil {
			return writeResult{}, err
		}
	}
	var pos uint64
	for _, p := range r.events {
		if pos, err = s.writeEvent(g, r.stream, p, false); err != nil {
			return writeResult{}, err
		}
	}
	h, err = s.headFor(g, r.stream, nil)
	if err != nil {
		return writeResult{}, err
	}
	return writeResult{kind: resOK, cur: h.lastRev, pos: pos}, nil
}

// idempotentAny applies the id check for any/stream_exists: all ids known
// means success without a write; the first known but a later one not is WEV.
func (s *store) idempotentAny(g *group, r *writeReq) (writeResult, bool, error) {
	var lastRev uint64
	for i, p := range r.events {
		rev, ok, err := s.lookupID(g.b, r.stream, p.id)
		if err != nil {
			return writeResult{}, true, err
		}
		if !ok {
			if i == 0 {
				return writeResult{}, false, nil
			}
			h, _ := s.headFor(g, r.stream, nil)
			return writeResult{kind: resWEV, cur: h.lastRev}, true, nil
		}
		lastRev = rev
	}
	pos, err := s.lookupRev(g.b, r.stream, lastRev)
	if err != nil {
		return writeResult{}, true, err
	}
	return writeResult{kind: resOK, cur: int64(lastRev), pos: pos}, true, nil
}

// idempotentExact compares the proposed ids with the events stored at
// want+1, want+2, ...: all equal means success without a write.
func (s *store) idempotentExact(g *group, r *writeReq, want, cur int64) (writeResult, error) {
	wev := writeResult{kind: resWEV, cur: cur}
	if want+int64(len(r.events)) > cur {
		return wev, nil
	}
	var pos uint64
	var rec record
	for i, p := range r.events {
		rev := uint64(want + 1 + int64(i))
		var err error
		pos, err = s.lookupRev(g.b, r.stream, rev)
		if err != nil {
			return writeResult{}, err
		}
		if pos == 0 {
			return wev, nil
		}
		if err := s.getRecord(g.b, pos, &rec); err != nil {
			return writeResult{}, err
		}
		if rec.id != p.id {
			return wev, nil
		}
	}
	return writeResult{kind: resOK, cur: want + int64(len(r.events)), pos: pos}, nil
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// lookupID finds the revision of the event with id in stream.
func (s *store) lookupID(b getter, stream string, id [16]byte) (uint64, bool, error) {
	v, c, err := b.Get(idKey(stream, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("esdbserver: read id index: %w", err)
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: bad id index entry", errCorruptRecord)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// lookupRev returns the position of stream's revision rev, 0 if absent.
func (s *store) lookupRev(b getter, stream string, rev uint64) (uint64, error) {
	v, c, err := b.Get(streamKey(stream, rev))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("esdbserver: read stream index: %w", err)
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: bad stream index entry", errCorruptRecord)
	}
	return binary.BigEndian.Uint64(v), nil
}

// getRecord reads the record at pos into r (its slices are copies).
func (s *store) getRecord(b getter, pos uint64, r *record) error {
	v, c, err := b.Get(allKey(pos))
	if err != nil {
		return fmt.Errorf("esdbserver: read event at %d: %w", pos, err)
	}
	defer c.Close()
	if err := decodeRecord(v, r); err != nil {
		return err
	}
	r.pos = pos
	r.data = bytes.Clone(r.data)
	r.meta = bytes.Clone(r.meta)
	return nil
}

// writeEvent adds one event to the group's batch and updates heads.
func (s *store) writeEvent(g *group, stream string, p proposed, tombstone bool) (uint64, error) {
	h, err := s.headFor(g, stream, nil)
	if err != nil {
		return 0, err
	}
	rev := uint64(tombstoneRev)
	if !tombstone {
		rev = uint64(h.lastRev + 1)
	}
	data := p.data
	if isMetastream(stream) {
		base := stream[2:]
		bh, err := s.headFor(g, base, nil)
		if err != nil {
			return 0, err
		}
		m := parseMeta(data)
		if bh.deleted && m.tb != deletedTB {
			data = withTB(data, bh.lastRev+1)
			m = parseMeta(data)
		}
		bh.hasMeta = true
		bh.deleted = m.tb == deletedTB
		bh.tb, bh.maxCount, bh.maxAge = m.tb, m.maxCount, m.maxAge
		g.heads[base] = bh
	}
	pos := g.nextPos
	g.nextPos++
	rec := record{
		pos: pos, rev: rev, created: g.created, id: p.id, json: p.json,
		stream: stream, typ: p.typ, data: data, meta: p.meta,
	}
	g.buf = encodeRecord(g.buf[:0], &rec)
	if err := g.b.Set(allKey(pos), g.buf, nil); err != nil {
		return 0, fmt.Errorf("esdbserver: batch: %w", err)
	}
	if tombstone {
		h.tombstoned = true
	} else {
		g.b.Set(streamKey(stream, rev), u64(pos), nil)
		g.b.Set(idKey(stream, p.id), u64(rev), nil)
		h.ids.add(&p.id)
		h.lastRev = int64(rev)
	}
	h.lastPos = pos
	g.heads[stream] = h
	g.recs = append(g.recs, rec)
	return pos, nil
}

// toTicks converts t to .NET ticks (100 ns) since the Unix epoch.
func toTicks(t time.Time) int64 { return t.UnixNano() / 100 }

// published returns the position of the newest visible event.
func (s *store) published() uint64 { return s.hub.head.Load() }

// scanAll calls fn for the events with from <= pos <= to, ascending, or
// descending when backwards. fn's record aliases iterator memory. It stops
// when fn returns false or an error.
func (s *store) scanAll(from, to uint64, backwards bool, fn func(*record) (bool, error)) error {
	if from > to {
		return nil
	}
	lo := allKey(from)
	var hi []byte
	if to == math.MaxUint64 {
		hi = []byte{prefixAll + 1}
	} else {
		hi = allKey(to + 1)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("esdbserver: scan log: %w", err)
	}
	defer it.Close()
	var rec record
	valid := it.First
	step := it.Next
	if backwards {
		valid, step = it.Last, it.Prev
	}
	for ok := valid(); ok; ok = step() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("esdbserver: scan log: %w", err)
		}
		if err := decodeRecord(v, &rec); err != nil {
			return err
		}
		rec.pos = binary.BigEndian.Uint64(it.Key()[1:])
		more, err := fn(&rec)
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("esdbserver: scan log: %w", err)
	}
	return nil
}

// scanStream calls fn for stream's events with revisions in [from, to],
// ascending or descending, stopping when fn returns false or an error.
func (s *store) scanStream(stream string, from, to uint64, backwards bool, fn func(*record) (bool, error)) error {
	if from > to {
		return nil
	}
	lo := streamKey(stream, from)
	hi := streamKey(stream, to)
	hi = append(hi, 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("esdbserver: scan stream: %w", err)
	}
	defer it.Close()
	valid := it.First
	step := it.Next
	if backwards {
		valid, step = it.Last, it.Prev
	}
	var rec record
	for ok := valid(); ok; ok = step() {
		v := it.Value()
		if len(v) != 8 {
			return fmt.Errorf("%w: bad stream index entry", errCorruptRecord)
		}
		pos := binary.BigEndian.Uint64(v)
		val, c, err := s.db.Get(allKey(pos))
		if err != nil {
			return fmt.Errorf("esdbserver: read event at %d: %w", pos, err)
		}
		err = decodeRecord(val, &rec)
		if err != nil {
			c.Close()
			return err
		}
		rec.pos = pos
		more, err := fn(&rec)
		c.Close()
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("esdbserver: scan stream: %w", err)
	}
	return nil
}

// pebbleLogger routes Pebble's logs to slog: informational ones at debug.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
