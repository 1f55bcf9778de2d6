// Package esdb is Lark's only door to the event store: it wraps the
// official EventStoreDB client, builds stream names, serialises events
// (JSON data; JSON metadata carrying the schema version and workspace id),
// converts revisions, maps the client's errors to Lark's (wrong expected
// version → ErrConcurrency, stream not found → empty stream, unreachable →
// failure.Unavailable), and runs every call through a circuit breaker with
// a per-call timeout so that a dead event store answers in milliseconds.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	kdb "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/sony/gobreaker/v2"

	"github.com/larkhq/lark/domain/failure"
)

// Expected revisions besides an exact revision (>= 0).
const (
	NoStream int64 = -1 // the stream must not exist
	Any      int64 = -2 // no check
)

// SchemaVersion is written into every event's metadata.
const SchemaVersion = 1

// Metadata keys Lark writes.
const (
	MetaSchema      = "schema"
	MetaWorkspaceID = "workspace_id"
)

// ErrConcurrency means the stream was not at the expected revision.
var ErrConcurrency = errors.New("esdb: wrong expected version")

// Position is a position in $all. The zero Position is the start.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Less orders positions as $all does.
func (p Position) Less(q Position) bool {
	return p.Commit < q.Commit || (p.Commit == q.Commit && p.Prepare < q.Prepare)
}

// Proposed is an event to append. An empty ID gets a random UUID.
type Proposed struct {
	ID          string
	Type        string
	WorkspaceID string
	Data        any               // marshalled as JSON
	Meta        map[string]string // extra metadata; schema and workspace_id are added
}

// Recorded is an event read back.
type Recorded struct {
	Stream      string
	Type        string
	ID          string
	Revision    uint64
	Position    Position
	Created     time.Time
	WorkspaceID string
	Schema      int
	Meta        map[string]string
	Data        []byte
}

// Decode unmarshals the event's data into v.
func (r Recorded) Decode(v any) error {
	if err := json.Unmarshal(r.Data, v); err != nil {
		return fmt.Errorf("decode %s %s@%d: %w", r.Type, r.Stream, r.Revision, err)
	}
	return nil
}

// AppendResult is where an append landed.
type AppendResult struct {
	NextRevision uint64   // revision of the last event written
	Position     Position // $all position of the last event written
}

// Config builds a Store.
type Config struct {
	// Client is the connected official client. Either Client or Connect is
	// required.
	Client *kdb.Client
	// ConnectFunc, if set, builds a fresh client: used at start when Client
	// is nil and whenever the client has closed itself (the official client
	// closes itself for good when rediscovery fails while the server is down).
	ConnectFunc func() (*kdb.Client, error)
	// CallTimeout bounds one unary call (append, short read); default 3 s.
	CallTimeout time.Duration
	// OpenTimeout is how long the breaker stays open before probing; default 1 s.
	OpenTimeout time.Duration
	// OnStateChangeFunc reports breaker state changes (for metrics).
	OnStateChangeFunc func(name string, from, to gobreaker.State)
	Logger            *slog.Logger
}

// Store is the wrapped client. Safe for concurrent use.
type Store struct {
	life    sync.RWMutex // read-held by calls in flight; Close takes it
	closed  bool
	mu      sync.Mutex
	client  *kdb.Client
	connect func() (*kdb.Client, error)
	owned   bool // close the client on Close
	timeout time.Duration
	breaker *gobreaker.CircuitBreaker[any]
	log     *slog.Logger
	// calls counts client calls still running, including those a caller
	// left behind on timeout (guard); Close waits for them, because the
	// official client races (and panics) when closed under a running call.
	calls sync.WaitGroup
}

// New builds a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil && cfg.ConnectFunc == nil {
		return nil, errors.New("esdb: Client or ConnectFunc is required")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 3 * time.Second
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{client: cfg.Client, connect: cfg.ConnectFunc, timeout: cfg.CallTimeout, log: cfg.Logger}
	s.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "eventstore",
		MaxRequests: 1,
		Interval:    10 * time.Second,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		IsSuccessful: func(err error) bool {
			// Only infrastructure failures count against the store.
			return err == nil || !isInfra(err)
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			s.log.Warn("circuit breaker state", "breaker", name, "from", from.String(), "to", to.String())
			if cfg.OnStateChangeFunc != nil {
				cfg.OnStateChangeFunc(name, from, to)
			}
		},
	})
	return s, nil
}

// Close closes a client the Store built itself.
func (s *Store) Close() error {
	// The official client panics when used after Close; wait for calls in
	// flight and refuse later ones.
	s.life.Lock()
	s.closed = true
	s.life.Unlock()
	done := make(chan struct{})
	go func() { s.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // a call stuck inside the client for good
		s.log.Warn("closing the event store client with calls still running")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owned && s.client != nil {
		return s.client.Close()
	}
	return nil
}

// BreakerState is the breaker's state: closed, half-open or open.
func (s *Store) BreakerState() gobreaker.State { return s.breaker.State() }

// infraError marks a failure to reach the store.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

func isInfra(err error) bool {
	var ie *infraError
	return errors.As(err, &ie)
}

// getClient returns the current client, (re)connecting if needed.
func (s *Store) getClient() (*kdb.Client, error) {
	if s.closed {
		return nil, errClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c, err := s.connect()
		if err != nil {
			return nil, &infraError{fmt.Errorf("connect: %w", err)}
		}
		s.client, s.owned = c, true
	}
	return s.client, nil
}

// dropClient forgets a client that closed itself, so the next call builds a
// new one (only when the Store can connect).
func (s *Store) dropClient(c *kdb.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connect != nil && s.client == c {
		// Not Close()d: other goroutines may still hold it, and the
		// official client panics when a closed client is used. A client
		// that reports ConnectionClosed has already stopped its own
		// goroutine and connection.
		s.client = nil
	}
}

// classify maps a client error: infrastructure errors are wrapped as
// infraError (they trip the breaker), wrong expected version becomes
// ErrConcurrency.
func (s *Store) classify(c *kdb.Client, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var e *kdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case kdb.ErrorCodeWrongExpectedVersion:
			return fmt.Errorf("%w: %v", ErrConcurrency, err)
		case kdb.ErrorCodeResourceNotFound:
			return errNotFound
		case kdb.ErrorCodeConnectionClosed:
			s.dropClient(c)
			return &infraError{err}
		case kdb.ErrorUnavailable, kdb.ErrorCodeDeadlineExceeded, kdb.ErrorAborted, kdb.ErrorCodeNotLeader:
			return &infraError{err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &infraError{err}
	}
	return err
}

var (
	errNotFound = errors.New("esdb: stream not found")
	errClosed   = errors.New("esdb: store closed")
)

// call runs fn through the breaker with a per-call timeout and maps the
// result: an open breaker or an infrastructure failure becomes a
// failure.Unavailable error.
func (s *Store) call(ctx context.Context, what string, fn func(ctx context.Context, c *kdb.Client) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	_, err := s.breaker.Execute(func() (any, error) {
		c, err := s.getClient()
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return nil, s.classify(c, s.guard(ctx, cctx, func() error { return fn(cctx, c) }))
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return failure.Wrap(failure.Unavailable, err, "the event store cannot be reached")
	case isInfra(err):
		return failure.Wrap(failure.Unavailable, err, "the event store cannot be reached")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("esdb %s: %w", what, err)
}

// guard runs a client call so that the caller can always leave: the
// official client can block forever (a call racing with the client closing
// itself after failed rediscovery waits on a channel nobody reads) or panic
// (a call racing with Close sends on a closed channel). The call runs in
// its own goroutine, panics become errors, and the caller returns when
// cctx (the per-call deadline) ends. parent tells cancellation by the
// caller from a timeout.
func (s *Store) guard(parent, cctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		defer func() {
			if r := recover(); r != nil {
				done <- &infraError{fmt.Errorf("event store client failed: %v", r)}
			}
		}()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-cctx.Done():
		if err := parent.Err(); err != nil {
			return err
		}
		return &infraError{fmt.Errorf("event store call: %w", cctx.Err())}
	}
}

func toExpected(rev int64) kdb.ExpectedRevision {
	switch {
	case rev == NoStream:
		return kdb.NoStream{}
	case rev < 0:
		return kdb.Any{}
	default:
		return kdb.Revision(uint64(rev))
	}
}

// Encode builds the wire form of proposed events.
func Encode(events []Proposed) ([]kdb.EventData, error) {
	out := make([]kdb.EventData, len(events))
	for i, e := range events {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.Type, err)
		}
		meta := make(map[string]string, len(e.Meta)+2)
		for k, v := range e.Meta {
			meta[k] = v
		}
		meta[MetaSchema] = strconv.Itoa(SchemaVersion)
		meta[MetaWorkspaceID] = e.WorkspaceID
		mb, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("encode metadata of %s: %w", e.Type, err)
		}
		id := uuid.New()
		if e.ID != "" {
			if id, err = uuid.Parse(e.ID); err != nil {
				return nil, fmt.Errorf("event id %q: %w", e.ID, err)
			}
		}
		out[i] = kdb.EventData{EventID: id, EventType: e.Type, ContentType: kdb.ContentTypeJson, Data: data, Metadata: mb}
	}
	return out, nil
}

// Encoded is an event ready for the wire (see Encode); encoding in the
// caller's goroutine keeps JSON work out of the ingest lane.
type Encoded = kdb.EventData

// EncodedSize is what an encoded event weighs against the store's
// per-append size limit.
func EncodedSize(e Encoded) int { return len(e.Data) + len(e.Metadata) + len(e.EventType) + 16 }

// AppendEncoded is Append for events already encoded.
func (s *Store) AppendEncoded(ctx context.Context, stream string, expected int64, data []Encoded) (AppendResult, error) {
	var res AppendResult
	err := s.call(ctx, "append", func(ctx context.Context, c *kdb.Client) error {
		wr, err := c.AppendToStream(ctx, stream, kdb.AppendToStreamOptions{ExpectedRevision: toExpected(expected)}, data...)
		if err != nil {
			return err
		}
		res = AppendResult{NextRevision: wr.NextExpectedVersion, Position: Position{wr.CommitPosition, wr.PreparePosition}}
		return nil
	})
	return res, err
}

// Last returns the stream's last event (revision NoStream and a nil event
// when the stream is empty or absent).
func (s *Store) Last(ctx context.Context, stream string) (int64, *Recorded, error) {
	rev := NoStream
	var last *Recorded
	err := s.call(ctx, "read last", func(ctx context.Context, c *kdb.Client) error {
		rs, err := c.ReadStream(ctx, stream, kdb.ReadStreamOptions{Direction: kdb.Backwards, From: kdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := fromResolved(ev)
		if err != nil {
			return err
		}
		rev, last = int64(r.Revision), &r
		return nil
	})
	if errors.Is(err, errNotFound) {
		return NoStream, nil, nil
	}
	return rev, last, err
}

// Append writes events atomically to stream if it is at expected (an exact
// revision, NoStream or Any). It returns ErrConcurrency (wrapped) on a
// wrong expected version, and a failure.Unavailable error when the store
// cannot be reached (nothing was written... as far as the client can know;
// a timeout after the server committed is indistinguishable).
func (s *Store) Append(ctx context.Context, stream string, expected int64, events ...Proposed) (AppendResult, error) {
	data, err := Encode(events)
	if err != nil {
		return AppendResult{}, err
	}
	var res AppendResult
	err = s.call(ctx, "append", func(ctx context.Context, c *kdb.Client) error {
		wr, err := c.AppendToStream(ctx, stream, kdb.AppendToStreamOptions{ExpectedRevision: toExpected(expected)}, data...)
		if err != nil {
			return err
		}
		res = AppendResult{NextRevision: wr.NextExpectedVersion, Position: Position{wr.CommitPosition, wr.PreparePosition}}
		return nil
	})
	return res, err
}

// ReadStream reads a whole stream forwards. A stream that does not exist is
// empty. The returned revision is that of the last event, or NoStream.
func (s *Store) ReadStream(ctx context.Context, stream string) ([]Recorded, int64, error) {
	var out []Recorded
	err := s.call(ctx, "read", func(ctx context.Context, c *kdb.Client) error {
		out = out[:0]
		rs, err := c.ReadStream(ctx, stream, kdb.ReadStreamOptions{Direction: kdb.Forwards, From: kdb.Start{}}, ^uint64(0))
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			r, err := fromResolved(ev)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
	})
	if errors.Is(err, errNotFound) {
		return nil, NoStream, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if len(out) == 0 {
		return nil, NoStream, nil
	}
	return out, int64(out[len(out)-1].Revision), nil
}

// LastRevision returns the revision of the stream's last event, or NoStream.
func (s *Store) LastRevision(ctx context.Context, stream string) (int64, error) {
	rev := NoStream
	err := s.call(ctx, "read last", func(ctx context.Context, c *kdb.Client) error {
		ev, err := first(c.ReadStream(ctx, stream, kdb.ReadStreamOptions{Direction: kdb.Backwards, From: kdb.End{}}, 1))
		if ev != nil {
			rev = int64(ev.OriginalEvent().EventNumber)
		}
		return err
	})
	if errors.Is(err, errNotFound) {
		return NoStream, nil
	}
	return rev, err
}

// Head returns the position of the last event in $all (zero when empty).
func (s *Store) Head(ctx context.Context) (Position, error) {
	var p Position
	err := s.call(ctx, "read head", func(ctx context.Context, c *kdb.Client) error {
		ev, err := first(c.ReadAll(ctx, kdb.ReadAllOptions{Direction: kdb.Backwards, From: kdb.End{}}, 1))
		if ev != nil {
			p = Position(ev.OriginalEvent().Position)
		}
		return err
	})
	return p, err
}

// first returns the one event of a read of count 1, nil when there is none.
func first(rs *kdb.ReadStream, err error) (*kdb.ResolvedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	return ev, err
}

// Ping checks that the store answers (for readiness); it bypasses nothing:
// an open breaker fails the ping.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.Head(ctx)
	return err
}

func fromResolved(ev *kdb.ResolvedEvent) (Recorded, error) {
	e := ev.Event
	if e == nil {
		e = ev.OriginalEvent()
	}
	r := Recorded{
		Stream:   e.StreamID,
		Type:     e.EventType,
		ID:       e.EventID.String(),
		Revision: e.EventNumber,
		Position: Position(e.Position),
		Created:  e.CreatedDate,
		Data:     e.Data,
	}
	if len(e.UserMetadata) > 0 {
		if meta, err := decodeMeta(e.UserMetadata); err == nil {
			r.Meta = meta
			r.WorkspaceID = meta[MetaWorkspaceID]
			r.Schema, _ = strconv.Atoi(meta[MetaSchema])
		}
	}
	return r, nil
}
