package conformance

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
)

// Soft delete hides the stream; an append recreates it with revisions
// continuing and only the new events visible.
func TestSoftDeleteThenRecreate(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("Old", 3)...)
	del, err := c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(2)})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if del.Position.Commit == 0 || del.Position.Commit != del.Position.Prepare {
		t.Errorf("delete position = %+v, want commit == prepare > 0", del.Position)
	}
	for _, opts := range []esdb.ReadStreamOptions{{}, {Direction: esdb.Backwards, From: esdb.End{}}} {
		_, err := readStream(t, c, s, opts, maxCount)
		wantCode(t, "read after soft delete", err, esdb.ErrorCodeResourceNotFound)
	}
	// The delete wrote {"$tb":MaxInt64} to the metastream, visible in $all.
	rec := mustReadAll(t, c, esdb.ReadAllOptions{From: del.Position}, 1)
	if len(rec) != 1 {
		t.Fatalf("$all at the delete position: got %d events, want 1", len(rec))
	}
	o := rec[0].OriginalEvent()
	var meta map[string]any
	if err := json.Unmarshal(o.Data, &meta); err != nil {
		t.Fatalf("delete record data %q: %v", o.Data, err)
	}
	if o.StreamID != "$$"+s || o.EventType != "$metadata" || meta["$tb"] != float64(math.MaxInt64) || len(meta) != 1 {
		t.Errorf("delete record = %s type %s data %s, want $$%s $metadata {\"$tb\":%d}", o.StreamID, o.EventType, o.Data, s, int64(math.MaxInt64))
	}

	evs := jsonEvents("New", 2)
	res := mustAppend(t, c, s, esdb.Any{}, evs...)
	if res.NextExpectedVersion != 4 {
		t.Errorf("NextExpectedVersion after recreate = %d, want 4", res.NextExpectedVersion)
	}
	got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if diff := cmp.Diff(ids(evs), eventIDs(got)); diff != "" {
		t.Errorf("ids after recreate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seq(3, 4), revisions(got)); diff != "" {
		t.Errorf("revisions after recreate (-want +got):\n%s", diff)
	}
	m, err := c.GetStreamMetadata(opCtx(t), s, esdb.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("metadata after recreate: %v", err)
	}
	if tb := m.TruncateBefore(); tb == nil || *tb != 3 {
		t.Errorf("$tb after recreate = %v, want 3", tb)
	}
}

// no_stream on a soft-deleted stream recreates it; stream_exists on it is a
// stream-deleted error.
func TestSoftDeletedStreamExpectedRevisions(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("Old", 2)...)
	if _, err := c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, jsonEvent("X", 0))
	wantCode(t, "append stream_exists to a soft-deleted stream", err, esdb.ErrorCodeStreamDeleted)
	_, err = c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{ExpectedRevision: esdb.StreamExists{}})
	wantCode(t, "delete stream_exists of a soft-deleted stream", err, esdb.ErrorCodeStreamDeleted)

	ev := jsonEvent("Again", 0)
	res := mustAppend(t, c, s, esdb.NoStream{}, ev)
	if res.NextExpectedVersion != 2 {
		t.Errorf("NextExpectedVersion after no_stream recreate = %d, want 2", res.NextExpectedVersion)
	}
	got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if len(got) != 1 || got[0].OriginalEvent().EventID != ev.EventID {
		t.Errorf("after recreate: got ids %v, want [%s]", eventIDs(got), ev.EventID)
	}
}

// Deleting a stream that never had events (nor metadata) fails, whatever
// the expected revision; a delete with a wrong expected revision fails and
// leaves the stream alone. Both map to ErrorCodeUnknown in this client.
func TestDeleteFailures(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.NoStream{}} {
		_, err := c.DeleteStream(opCtx(t), streamName(t, ""), esdb.DeleteStreamOptions{ExpectedRevision: exp})
		wantCode(t, "delete of a never-written stream", err, esdb.ErrorCodeUnknown)
	}
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 3)...)
	_, err := c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(5)})
	wantCode(t, "delete with a wrong expected revision", err, esdb.ErrorCodeUnknown)
	if got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount); len(got) != 3 {
		t.Errorf("stream has %d events after a failed delete, want 3", len(got))
	}
}

// After a tombstone every operation on the stream fails with stream-deleted.
func TestTombstone(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 2)...)
	res, err := c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Revision(1)})
	if err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if res.Position.Commit == 0 || res.Position.Commit != res.Position.Prepare {
		t.Errorf("tombstone position = %+v, want commit == prepare > 0", res.Position)
	}
	rec := mustReadAll(t, c, esdb.ReadAllOptions{From: res.Position}, 1)
	if len(rec) != 1 {
		t.Fatalf("$all at the tombstone position: got %d events, want 1", len(rec))
	}
	if o := rec[0].OriginalEvent(); o.StreamID != s || o.EventType != "$streamDeleted" || o.EventNumber != math.MaxInt64 || len(o.Data) != 0 {
		t.Errorf("tombstone record = %s@%d type %s data %q, want %s@%d $streamDeleted with empty data", o.StreamID, o.EventNumber, o.EventType, o.Data, s, int64(math.MaxInt64))
	}

	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.NoStream{}, esdb.StreamExists{}, esdb.Revision(1), esdb.Revision(2)} {
		_, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: exp}, jsonEvent("After", 0))
		wantCode(t, "append to a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
	}
	for _, opts := range []esdb.ReadStreamOptions{{}, {Direction: esdb.Backwards, From: esdb.End{}}} {
		_, err := readStream(t, c, s, opts, maxCount)
		wantCode(t, "read of a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
	}
	_, err = readStream(t, c, "$$"+s, esdb.ReadStreamOptions{}, maxCount)
	wantCode(t, "read of a tombstoned stream's metastream", err, esdb.ErrorCodeStreamDeleted)
	_, err = c.DeleteStream(opCtx(t), s, esdb.DeleteStreamOptions{})
	wantCode(t, "delete of a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
	_, err = c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{})
	wantCode(t, "tombstone of a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
	sub, err := c.SubscribeToStream(ctxFor(t), s, esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	if sub != nil {
		_ = sub.Close()
	}
	wantCode(t, "subscribe to a tombstoned stream", err, esdb.ErrorCodeStreamDeleted)
}

// A stream that never existed can be tombstoned with any or no_stream.
func TestTombstoneAbsentStream(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.NoStream{}} {
		s := streamName(t, "")
		if _, err := c.TombstoneStream(opCtx(t), s, esdb.TombstoneStreamOptions{ExpectedRevision: exp}); err != nil {
			t.Errorf("tombstone absent stream with %T: %v", exp, err)
			continue
		}
		_, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{}, jsonEvent("After", 0))
		wantCode(t, "append after tombstone of an absent stream", err, esdb.ErrorCodeStreamDeleted)
	}
}
