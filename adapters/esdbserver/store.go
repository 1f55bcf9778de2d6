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
