package ingest

import (
	"context"
	"sync"
	"testing"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
	"github.com/larkhq/lark/domain/failure"
	domain "github.com/larkhq/lark/domain/ingest"
)

func testStore(t *testing.T) *esdb.Store {
	t.Helper()
	s, err := esdb.New(esdb.Config{Client: esdbtest.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encoded(t *testing.T, n int) []esdb.Encoded {
	t.Helper()
	ps := make([]esdb.Proposed, n)
	for i := range ps {
		ps[i] = esdb.Proposed{Type: domain.TypeReceived, WorkspaceID: "ws", Data: domain.Received{Email: "a@b.c", Name: "x"}}
	}
	enc, err := esdb.Encode(ps)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestLaneRereadsAfterAnotherWriter: another process appends to the month
// stream behind the lane's back; the lane's next append meets a wrong
// expected version, re-reads and still admits exactly up to the limit.
func TestLaneRereadsAfterAnotherWriter(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	lanes, err := NewLanes(store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := esdb.EventsStream("ws", "202612")
	if n, err := lanes.Submit(ctx, stream, 10, encoded(t, 3)); n != 3 || err != nil {
		t.Fatalf("first submit: %d %v", n, err)
	}
	if _, err := store.AppendEncoded(ctx, stream, 2, encoded(t, 5)); err != nil { // "another server"
		t.Fatal(err)
	}
	n, err := lanes.Submit(ctx, stream, 10, encoded(t, 4))
	if n != 2 || err != nil {
		t.Errorf("after another writer: %d accepted (%v), want 2 (3+5 used of 10)", n, err)
	}
	if rev, _, _ := store.Last(ctx, stream); rev != 9 {
		t.Errorf("stream ends at revision %d, want 9", rev)
	}
}

// TestLaneConcurrentBatchesAllOrNothing: concurrent multi-event requests
// against a limit are each admitted as a prefix, and the total is exact.
func TestLaneConcurrentBatchesAllOrNothing(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	lanes, err := NewLanes(store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream := esdb.EventsStream("ws", "202612")
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := lanes.Submit(context.Background(), stream, 100, encoded(t, 7))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	rev, _, err := store.Last(context.Background(), stream)
	if total != 100 || rev != 99 || err != nil {
		t.Errorf("accepted %d, stream at %d (%v); want 100, 99", total, rev, err)
	}
}

// lostAck is a fault that cannot be produced on demand for real: the
// server commits the append but the acknowledgement is lost (a timeout or
// dropped connection after the commit).
type lostAck struct {
	*esdb.Store
	once sync.Once
}

func (l *lostAck) AppendEncoded(ctx context.Context, stream string, expected int64, data []esdb.Encoded) (esdb.AppendResult, error) {
	res, err := l.Store.AppendEncoded(ctx, stream, expected, data)
	lost := false
	l.once.Do(func() { lost = true })
	if err == nil && lost {
		return esdb.AppendResult{}, failure.New(failure.Unavailable, "acknowledgement lost")
	}
	return res, err
}

// TestLaneLostAcknowledgement: when an append's answer is lost but the
// events landed, the lane finds them at the end of the stream and reports
// them stored instead of telling the client nothing was stored.
func TestLaneLostAcknowledgement(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	lanes, err := NewLanes(&lostAck{Store: store}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream := esdb.EventsStream("ws", "202612")
	n, err := lanes.Submit(context.Background(), stream, 10, encoded(t, 2))
	if n != 2 || err != nil {
		t.Errorf("got %d, %v; want 2 stored", n, err)
	}
	n, err = lanes.Submit(context.Background(), stream, 10, encoded(t, 1))
	if n != 1 || err != nil {
		t.Errorf("next submit: %d, %v", n, err)
	}
	if rev, _, _ := store.Last(context.Background(), stream); rev != 2 {
		t.Errorf("stream at %d, want 2", rev)
	}
}
