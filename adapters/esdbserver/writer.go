package esdbserver

import (
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
)

// The single writer: requests are queued by their handlers, checked one by
// one against the streams' current state and committed in groups, one
// Pebble batch and one fsync per group.

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
