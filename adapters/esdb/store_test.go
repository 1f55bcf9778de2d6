package esdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	kdb "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/esdbserver"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/domain/failure"
)

func newStore(t *testing.T) *esdb.Store {
	t.Helper()
	s, err := esdb.New(esdb.Config{Client: esdbtest.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendReadAndErrors(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	stream := esdb.ContactStream("c1")

	recs, rev, err := s.ReadStream(ctx, stream)
	if err != nil || len(recs) != 0 || rev != esdb.NoStream {
		t.Fatalf("missing stream: %v %d %v, want empty, NoStream", recs, rev, err)
	}
	if rev, last, err := s.Last(ctx, stream); err != nil || last != nil || rev != esdb.NoStream {
		t.Fatalf("Last of missing stream: %d %v %v", rev, last, err)
	}
	res, err := s.Append(ctx, stream, esdb.NoStream,
		esdb.Proposed{Type: "A", WorkspaceID: "ws", Data: map[string]int{"n": 1}, Meta: map[string]string{"k": "v"}},
		esdb.Proposed{Type: "B", WorkspaceID: "ws", Data: map[string]int{"n": 2}})
	if err != nil || res.NextRevision != 1 {
		t.Fatalf("append: %+v %v", res, err)
	}
	if _, err := s.Append(ctx, stream, esdb.NoStream, esdb.Proposed{Type: "C", WorkspaceID: "ws", Data: 1}); !errors.Is(err, esdb.ErrConcurrency) {
		t.Errorf("NoStream on an existing stream: %v, want ErrConcurrency", err)
	}
	if _, err := s.Append(ctx, stream, 0, esdb.Proposed{Type: "C", WorkspaceID: "ws", Data: 1}); !errors.Is(err, esdb.ErrConcurrency) {
		t.Errorf("stale revision: %v, want ErrConcurrency", err)
	}
	recs, rev, err = s.ReadStream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Type, WS, Meta, Data string
		Schema               int
		Rev                  uint64
	}
	var got []view
	for _, r := range recs {
		got = append(got, view{r.Type, r.WorkspaceID, r.Meta["k"], string(r.Data), r.Schema, r.Revision})
	}
	want := []view{{"A", "ws", "v", `{"n":1}`, 1, 0}, {"B", "ws", "", `{"n":2}`, 1, 1}}
	if d := cmp.Diff(want, got); d != "" || rev != 1 {
		t.Errorf("read back (rev %d) (-want +got)\n%s", rev, d)
	}
	if r, last, err := s.Last(ctx, stream); err != nil || r != 1 || last.Type != "B" || last.Position != res.Position {
		t.Errorf("Last: %d %+v %v", r, last, err)
	}
	if head, err := s.Head(ctx); err != nil || head != res.Position {
		t.Errorf("Head: %+v %v, want %+v", head, err, res.Position)
	}
}

func TestFollowFiltersAndResumes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	first, err := s.Append(ctx, esdb.WorkspaceStream("w1"), esdb.Any, esdb.Proposed{Type: "W", WorkspaceID: "w1", Data: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{esdb.ContactStream("x"), esdb.WorkspaceStream("w2"), esdb.EventsStream("w1", "202612")} {
		if _, err := s.Append(ctx, st, esdb.Any, esdb.Proposed{Type: "T", WorkspaceID: "w", Data: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// From after the first event: only the other workspace stream.
	out := make(chan esdb.Message, 100)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	go func() { _ = s.Follow(fctx, first.Position, []string{esdb.Prefix(esdb.CategoryWorkspace)}, out) }()
	var streams []string
	for len(streams) < 1 {
		select {
		case m := <-out:
			if m.Event != nil {
				streams = append(streams, m.Event.Stream)
			}
		case <-ctx.Done():
			t.Fatal("no event")
		}
	}
	if _, err := s.Append(ctx, esdb.WorkspaceStream("w3"), esdb.Any, esdb.Proposed{Type: "W", WorkspaceID: "w3", Data: 1}); err != nil {
		t.Fatal(err)
	}
	for len(streams) < 2 {
		select {
		case m := <-out:
			if m.Event != nil {
				streams = append(streams, m.Event.Stream)
			}
		case <-ctx.Done():
			t.Fatal("no live event")
		}
	}
	if d := cmp.Diff([]string{"workspace-w2", "workspace-w3"}, streams); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

// TestUnavailable: with the server gone, calls fail as failure.Unavailable
// and, once the breaker is open, at once.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	srv, err := esdbserver.Start(context.Background(), esdbserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The Store builds (and rebuilds) its own clients: the official client
	// cannot be closed safely while a call of it is stuck in rediscovery.
	url := srv.URL()
	s, err := esdb.New(esdb.Config{CallTimeout: time.Second, ConnectFunc: func() (*kdb.Client, error) {
		cfg, err := kdb.ParseConnectionString(url)
		if err != nil {
			return nil, err
		}
		cfg.Logger = kdb.NoopLogging()
		return kdb.NewClient(cfg)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Append(ctx, "x-1", esdb.Any, esdb.Proposed{Type: "T", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Append(ctx, "x-1", esdb.Any, esdb.Proposed{Type: "T", Data: 1}); failure.Code(err) != failure.Unavailable {
			t.Fatalf("append %d with the server down: %v, want unavailable", i, err)
		}
	}
	start := time.Now()
	_, err = s.Append(ctx, "x-1", esdb.Any, esdb.Proposed{Type: "T", Data: 1})
	if failure.Code(err) != failure.Unavailable || time.Since(start) > 20*time.Millisecond {
		t.Errorf("open breaker: %v after %v, want unavailable at once", err, time.Since(start))
	}
	if got := s.BreakerState().String(); got != "open" {
		t.Errorf("breaker %s, want open", got)
	}
}
