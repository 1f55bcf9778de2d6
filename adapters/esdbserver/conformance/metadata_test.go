package conformance

import (
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestStreamMetadataRoundTripLatestWins(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	_, err := c.GetStreamMetadata(opCtx(t), s, esdb.ReadStreamOptions{})
	wantCode(t, "metadata of a stream without metadata", err, esdb.ErrorCodeResourceNotFound)

	var first esdb.StreamMetadata
	first.SetMaxCount(5)
	first.SetCacheControl(30 * time.Second)
	first.AddCustomProperty("owner", "billing")
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, first); err != nil {
		t.Fatalf("set first metadata: %v", err)
	}
	got, err := c.GetStreamMetadata(opCtx(t), s, esdb.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("get metadata: %v", err)
	}
	if mc := got.MaxCount(); mc == nil || *mc != 5 {
		t.Errorf("$maxCount = %v, want 5", mc)
	}
	if cc := got.CacheControl(); cc == nil || *cc != 30*time.Second {
		t.Errorf("$cacheControl = %v, want 30s", cc)
	}
	if o := got.CustomProperty("owner"); o != "billing" {
		t.Errorf("custom owner = %v, want billing", o)
	}

	var second esdb.StreamMetadata
	second.SetMaxAge(time.Hour)
	res, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, second)
	if err != nil {
		t.Fatalf("set second metadata: %v", err)
	}
	if res.NextExpectedVersion != 1 {
		t.Errorf("metastream revision after second write = %d, want 1", res.NextExpectedVersion)
	}
	got, err = c.GetStreamMetadata(opCtx(t), s, esdb.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("get metadata: %v", err)
	}
	if got.MaxCount() != nil || got.CustomProperty("owner") != nil {
		t.Errorf("stale keys from the first metadata: maxCount %v owner %v", got.MaxCount(), got.CustomProperty("owner"))
	}
	if ma := got.MaxAge(); ma == nil || *ma != time.Hour {
		t.Errorf("$maxAge = %v, want 1h", ma)
	}
	// Metastreams behave as $maxCount 1: only the latest event is readable.
	meta := mustReadStream(t, c, "$$"+s, esdb.ReadStreamOptions{}, maxCount)
	if diff := cmp.Diff([]uint64{1}, revisions(meta)); diff != "" {
		t.Errorf("metastream revisions (-want +got):\n%s", diff)
	}
	// The metastream's expected revision counts every write.
	_, err = c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, first)
	wantCode(t, "metadata write at a stale revision", err, esdb.ErrorCodeWrongExpectedVersion)
}

// $maxCount hides all but the last N revisions from stream reads; $all keeps
// them.
func TestStreamMetadataMaxCount(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("E", 10)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	var m esdb.StreamMetadata
	m.SetMaxCount(3)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	if diff := cmp.Diff(seq(7, 9), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seq(9, 7), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, maxCount))); diff != "" {
		t.Errorf("backwards (-want +got):\n%s", diff)
	}
	assertAllStillHas(t, c, s, evs)
	// A subscription's catch-up is truncated the same way.
	r := pump(t, subscribeStream(t, c, s, esdb.SubscribeToStreamOptions{From: esdb.Start{}}))
	if diff := cmp.Diff(seq(7, 9), revisions(r.untilCaughtUp(nil))); diff != "" {
		t.Errorf("subscription catch-up (-want +got):\n%s", diff)
	}
}

// $tb hides revisions below it from stream reads; $all keeps them.
func TestStreamMetadataTruncateBefore(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("E", 5)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	var m esdb.StreamMetadata
	m.SetTruncateBefore(3)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	if diff := cmp.Diff(seq(3, 4), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("forwards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seq(4, 3), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, maxCount))); diff != "" {
		t.Errorf("backwards (-want +got):\n%s", diff)
	}
	// A truncated revision read explicitly gives nothing before $tb.
	if diff := cmp.Diff(seq(3, 4), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{From: esdb.Revision(1)}, maxCount))); diff != "" {
		t.Errorf("forwards from revision 1 (-want +got):\n%s", diff)
	}
	assertAllStillHas(t, c, s, evs)

	// $tb beyond the last event hides everything, but the stream still
	// exists: a clean end, not NotFound.
	m.SetTruncateBefore(100)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	if got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount); len(got) != 0 {
		t.Errorf("read with $tb past the end: got revisions %v, want none", revisions(got))
	}
}

// $maxAge hides old events; a stream whose events are all hidden reads as
// empty (io.EOF), not as not found.
func TestStreamMetadataMaxAge(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("Old", 3)
	mustAppend(t, c, s, esdb.NoStream{}, evs...)
	var m esdb.StreamMetadata
	m.SetMaxAge(time.Second)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	got, err := readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if err != nil {
		t.Fatalf("read of an aged-out stream: got %v, want a clean empty read", err)
	}
	if len(got) != 0 {
		t.Errorf("aged-out read: got revisions %v, want none", revisions(got))
	}
	ev := jsonEvent("Fresh", 0)
	mustAppend(t, c, s, esdb.Revision(2), ev)
	got = mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if len(got) != 1 || got[0].OriginalEvent().EventID != ev.EventID || got[0].OriginalEvent().EventNumber != 3 {
		t.Errorf("after a fresh append: got %v revisions %v, want only the fresh event at 3", eventIDs(got), revisions(got))
	}
	assertAllStillHas(t, c, s, evs)
}

// assertAllStillHas checks that $all still returns evs (metadata filters
// stream reads only).
func assertAllStillHas(t *testing.T, c *esdb.Client, s string, evs []esdb.EventData) {
	t.Helper()
	// Stream reads hide the first event now, so find it through $all
	// backwards from the end (the test wrote only a few events since).
	back := onlyStreams(mustReadAll(t, c, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 2000), s)
	got := make([]*esdb.ResolvedEvent, 0, len(back))
	for i := len(back) - 1; i >= 0; i-- {
		got = append(got, back[i])
	}
	if len(got) > len(evs) {
		got = got[:len(evs)]
	}
	if diff := cmp.Diff(ids(evs), eventIDs(got)); diff != "" {
		t.Errorf("$all events of %s (-want +got):\n%s", s, diff)
	}
}

// Invalid metadata JSON is ignored as empty metadata: the stream reads
// normally.
func TestStreamMetadataInvalidJSONIgnored(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 4)...)
	bad := esdb.EventData{EventID: uuid.New(), EventType: "$metadata", ContentType: esdb.ContentTypeBinary, Data: []byte(`{"$maxCount":`)}
	mustAppend(t, c, "$$"+s, esdb.Any{}, bad)
	if diff := cmp.Diff(seq(0, 3), revisions(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("read with invalid metadata (-want +got):\n%s", diff)
	}
}

// Writing metadata to a soft-deleted stream's metastream undeletes it: ESDB
// rewrites $tb to last+1, so the old events stay hidden but the stream
// reads as existing (empty) rather than not found.
func TestStreamMetadataWriteUndeletes(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 3)...)
	if _, err := c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var m esdb.StreamMetadata
	m.AddCustomProperty("note", "revived")
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, m); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	got, err := readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if err != nil {
		t.Fatalf("read after metadata write on a soft-deleted stream: got %v, want an empty read", err)
	}
	if len(got) != 0 {
		t.Errorf("read after undelete: got revisions %v, want none (old events stay truncated)", revisions(got))
	}
	ev := jsonEvent("New", 0)
	res := mustAppend(t, c, s, esdb.Revision(2), ev)
	if res.NextExpectedVersion != 3 {
		t.Errorf("NextExpectedVersion = %d, want 3", res.NextExpectedVersion)
	}
}
