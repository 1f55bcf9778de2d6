package conformance

import (
	"context"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"

	"github.com/larkhq/lark/adapters/esdbserver"
	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// startOn starts the embedded server on dir and returns a client for it.
func startOn(t *testing.T, dir string) (*esdbserver.Server, *esdb.Client) {
	t.Helper()
	srv, err := esdbserver.Start(context.Background(), esdbserver.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("start on %s: %v", dir, err)
	}
	return srv, esdbtest.ClientFor(t, srv.URL())
}

// Idempotent retries are exact and survive a clean restart (issue 2 asks
// for this; a real ESDB's any/stream_exists idempotency is only a cache, so
// this is embedded-only), and so do events, metadata and tombstones.
func TestRestartKeepsStateAndIdempotency(t *testing.T) {
	skipIfExternal(t, "restarts the server")
	t.Parallel()
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	exact, anyS, meta, dead := streamName(t, "exact"), streamName(t, "any"), streamName(t, "meta"), streamName(t, "dead")
	exactEvs := jsonEvents("E", 3)
	exactRes := mustAppend(t, c, exact, esdb.NoStream{}, exactEvs...)
	anyEvs := jsonEvents("A", 2)
	anyRes := mustAppend(t, c, anyS, esdb.Any{}, anyEvs...)
	mustAppend(t, c, meta, esdb.NoStream{}, jsonEvents("M", 5)...)
	var m esdb.StreamMetadata
	m.SetMaxCount(2)
	if _, err := c.SetStreamMetadata(opCtx(t), meta, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	mustAppend(t, c, dead, esdb.NoStream{}, jsonEvent("D", 0))
	if _, err := c.TombstoneStream(opCtx(t), dead, esdb.TombstoneStreamOptions{}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	srv2, c2 := startOn(t, dir)
	defer func() {
		if err := srv2.Close(); err != nil {
			t.Errorf("close after restart: %v", err)
		}
	}()
	res, err := c2.AppendToStream(opCtx(t), exact, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, exactEvs...)
	if err != nil || res.NextExpectedVersion != 2 || res.CommitPosition != exactRes.CommitPosition {
		t.Errorf("no_stream retry after restart: got %+v, %v; want the original %+v", res, err, exactRes)
	}
	res, err = c2.AppendToStream(opCtx(t), anyS, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, anyEvs...)
	if err != nil || res.NextExpectedVersion != 1 || res.CommitPosition != anyRes.CommitPosition {
		t.Errorf("any retry after restart: got %+v, %v; want the original %+v", res, err, anyRes)
	}
	if diff := cmp.Diff(ids(exactEvs), eventIDs(mustReadStream(t, c2, exact, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("%s after restart (-want +got):\n%s", exact, diff)
	}
	if diff := cmp.Diff(ids(anyEvs), eventIDs(mustReadStream(t, c2, anyS, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("%s after restart (-want +got):\n%s", anyS, diff)
	}
	if diff := cmp.Diff(seq(3, 4), revisions(mustReadStream(t, c2, meta, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("$maxCount after restart (-want +got):\n%s", diff)
	}
	_, err = c2.AppendToStream(opCtx(t), dead, esdb.AppendToStreamOptions{}, jsonEvent("D", 1))
	wantCode(t, "append to a tombstoned stream after restart", err, esdb.ErrorCodeStreamDeleted)
	// New writes continue after the old positions.
	next := mustAppend(t, c2, exact, esdb.Revision(2), jsonEvent("After", 0))
	if next.CommitPosition <= exactRes.CommitPosition {
		t.Errorf("position after restart %d, want beyond %d", next.CommitPosition, exactRes.CommitPosition)
	}
}
