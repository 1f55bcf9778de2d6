package conformance

import (
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestAppendExpectedRevision(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tests := []struct {
		name     string
		existing int // events written before; 0 = the stream does not exist
		expected esdb.ExpectedRevision
		wantWEV  bool
		wantNext uint64
	}{
		{name: "no_stream on absent stream", existing: 0, expected: esdb.NoStream{}, wantNext: 0},
		{name: "no_stream on existing stream", existing: 2, expected: esdb.NoStream{}, wantWEV: true},
		{name: "exact current revision", existing: 2, expected: esdb.Revision(1), wantNext: 2},
		{name: "revision below current", existing: 2, expected: esdb.Revision(0), wantWEV: true},
		{name: "revision above current", existing: 2, expected: esdb.Revision(5), wantWEV: true},
		{name: "revision on absent stream", existing: 0, expected: esdb.Revision(0), wantWEV: true},
		{name: "stream_exists on absent stream", existing: 0, expected: esdb.StreamExists{}, wantWEV: true},
		{name: "stream_exists on existing stream", existing: 2, expected: esdb.StreamExists{}, wantNext: 2},
		{name: "any on absent stream", existing: 0, expected: esdb.Any{}, wantNext: 0},
		{name: "any on existing stream", existing: 2, expected: esdb.Any{}, wantNext: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := streamName(t, "")
			var before []esdb.EventData
			if tt.existing > 0 {
				before = jsonEvents("Before", tt.existing)
				mustAppend(t, c, s, esdb.Any{}, before...)
			}
			ev := jsonEvent("Proposed", 99)
			res, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: tt.expected}, ev)
			want := ids(before)
			if tt.wantWEV {
				wantCode(t, "append", err, esdb.ErrorCodeWrongExpectedVersion)
			} else {
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				if res.NextExpectedVersion != tt.wantNext {
					t.Errorf("NextExpectedVersion = %d, want %d", res.NextExpectedVersion, tt.wantNext)
				}
				want = append(want, ev.EventID)
			}
			got, err := readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
			if len(want) == 0 {
				wantCode(t, "read of a stream that must still be absent", err, esdb.ErrorCodeResourceNotFound)
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if diff := cmp.Diff(want, eventIDs(got)); diff != "" {
				t.Errorf("stream ids (-want +got):\n%s", diff)
			}
		})
	}
}

// A batch gets contiguous revisions and strictly increasing positions, and
// the WriteResult position is the position of the batch's last event.
func TestAppendBatchRevisionsAndPositions(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	evs := jsonEvents("Batched", 10)
	res := mustAppend(t, c, s, esdb.NoStream{}, evs...)
	if res.NextExpectedVersion != 9 {
		t.Errorf("NextExpectedVersion = %d, want 9", res.NextExpectedVersion)
	}
	if res.CommitPosition == 0 || res.CommitPosition != res.PreparePosition {
		t.Errorf("WriteResult position = (%d,%d), want commit == prepare > 0", res.CommitPosition, res.PreparePosition)
	}
	got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if diff := cmp.Diff(seq(0, 9), revisions(got)); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}
	var prev uint64
	for i, e := range got {
		p := e.OriginalEvent().Position
		if p.Commit == 0 || p.Commit != p.Prepare || p.Commit <= prev {
			t.Errorf("event %d position = %+v, want commit == prepare > previous %d", i, p, prev)
		}
		prev = p.Commit
	}
	last := got[len(got)-1].OriginalEvent().Position
	if last.Commit != res.CommitPosition || last.Prepare != res.PreparePosition {
		t.Errorf("last event position = %+v, WriteResult = (%d,%d): want equal", last, res.CommitPosition, res.PreparePosition)
	}
	// The batch is contiguous in $all: reading $all from its first event
	// yields exactly the batch, with nothing interleaved.
	all := mustReadAll(t, c, esdb.ReadAllOptions{From: got[0].OriginalEvent().Position}, 10)
	if diff := cmp.Diff(ids(evs), eventIDs(all)); diff != "" {
		t.Errorf("$all from the batch's first event (-want +got):\n%s", diff)
	}
}

// An empty append writes nothing; with an expected revision below the
// current one it is a WEV.
func TestAppendEmptyBatch(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	if _, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}); err != nil {
		t.Fatalf("empty append to absent stream with no_stream: %v", err)
	}
	_, err := readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	wantCode(t, "read after empty append", err, esdb.ErrorCodeResourceNotFound)

	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 3)...)
	_, err = c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)})
	wantCode(t, "empty append below current revision", err, esdb.ErrorCodeWrongExpectedVersion)
	res, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(2)})
	if err != nil {
		t.Fatalf("empty append at current revision: %v", err)
	}
	if res.NextExpectedVersion != 2 {
		t.Errorf("empty append NextExpectedVersion = %d, want 2", res.NextExpectedVersion)
	}
	if got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount); len(got) != 3 {
		t.Errorf("stream has %d events after empty appends, want 3", len(got))
	}
}

// Re-appending a batch with the same ids at the same explicit expected
// revision succeeds without writing and reports the original batch's last
// revision and position.
func TestAppendIdempotentExactRevision(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	first := jsonEvents("First", 3) // revisions 0..2
	firstRes := mustAppend(t, c, s, esdb.NoStream{}, first...)
	second := jsonEvents("Second", 2) // revisions 3..4
	secondRes := mustAppend(t, c, s, esdb.Revision(2), second...)

	tests := []struct {
		name     string
		expected esdb.ExpectedRevision
		evs      []esdb.EventData
		wantNext uint64
		wantPos  uint64
	}{
		{name: "no_stream retry of the first batch", expected: esdb.NoStream{}, evs: first, wantNext: 2, wantPos: firstRes.CommitPosition},
		{name: "exact retry of the second batch", expected: esdb.Revision(2), evs: second, wantNext: 4, wantPos: secondRes.CommitPosition},
		{name: "retry of a suffix of the first batch", expected: esdb.Revision(0), evs: first[1:], wantNext: 2, wantPos: firstRes.CommitPosition},
	}
	for _, tt := range tests {
		res, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: tt.expected}, tt.evs...)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if res.NextExpectedVersion != tt.wantNext {
			t.Errorf("%s: NextExpectedVersion = %d, want %d", tt.name, res.NextExpectedVersion, tt.wantNext)
		}
		if res.CommitPosition != tt.wantPos || res.PreparePosition != tt.wantPos {
			t.Errorf("%s: position = (%d,%d), want the original (%d,%d)", tt.name, res.CommitPosition, res.PreparePosition, tt.wantPos, tt.wantPos)
		}
	}
	want := append(ids(first), ids(second)...)
	if diff := cmp.Diff(want, eventIDs(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("stream after retries (-want +got):\n%s", diff)
	}
}

// A retry that only partly matches what is stored is a WEV and writes
// nothing.
func TestAppendIdempotentExactRevisionPartialOverlap(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	first := jsonEvents("First", 3)
	mustAppend(t, c, s, esdb.NoStream{}, first...)
	second := jsonEvents("Second", 2)
	mustAppend(t, c, s, esdb.Revision(2), second...)
	fresh := jsonEvent("Fresh", 0)

	tests := []struct {
		name     string
		expected esdb.ExpectedRevision
		evs      []esdb.EventData
	}{
		{name: "batch runs past the end", expected: esdb.Revision(2), evs: []esdb.EventData{second[0], second[1], fresh}},
		{name: "later id differs", expected: esdb.NoStream{}, evs: []esdb.EventData{first[0], fresh}},
		{name: "first id differs", expected: esdb.Revision(0), evs: []esdb.EventData{fresh}},
		{name: "ids out of order", expected: esdb.NoStream{}, evs: []esdb.EventData{first[1], first[0]}},
	}
	for _, tt := range tests {
		_, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: tt.expected}, tt.evs...)
		if code, _ := errCode(err); err == nil || code != esdb.ErrorCodeWrongExpectedVersion {
			t.Errorf("%s: got %v, want ErrorCodeWrongExpectedVersion", tt.name, err)
		}
	}
	want := append(ids(first), ids(second)...)
	if diff := cmp.Diff(want, eventIDs(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("stream after rejected retries (-want +got):\n%s", diff)
	}
}

// With any and stream_exists, a batch whose ids were all just written
// succeeds without writing; a batch whose first id is known but a later one
// is not is a WEV even though any was requested.
func TestAppendIdempotentAnyAndStreamExists(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.StreamExists{}} {
		s := streamName(t, "")
		mustAppend(t, c, s, esdb.NoStream{}, jsonEvent("Seed", 0))
		batch := jsonEvents("Batch", 3) // revisions 1..3
		orig := mustAppend(t, c, s, exp, batch...)
		mustAppend(t, c, s, esdb.Any{}, jsonEvent("After", 0)) // revision 4

		res, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: exp}, batch...)
		if err != nil {
			t.Fatalf("%T retry: %v", exp, err)
		}
		if res.NextExpectedVersion != 3 || res.CommitPosition != orig.CommitPosition {
			t.Errorf("%T retry: got (next %d, pos %d), want the original (next 3, pos %d)", exp, res.NextExpectedVersion, res.CommitPosition, orig.CommitPosition)
		}
		_, err = c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: exp}, batch[0], jsonEvent("New", 0))
		if code, _ := errCode(err); err == nil || code != esdb.ErrorCodeWrongExpectedVersion {
			t.Errorf("%T partial retry: got %v, want ErrorCodeWrongExpectedVersion", exp, err)
		}
		if got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount); len(got) != 5 {
			t.Errorf("%T: stream has %d events after retries, want 5", exp, len(got))
		}
	}
}

// At R == current revision ESDB writes normally and does not deduplicate ids
// stored earlier in the stream.
func TestAppendAtCurrentRevisionDoesNotDeduplicate(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	ev := jsonEvent("Once", 0)
	mustAppend(t, c, s, esdb.NoStream{}, ev)
	res := mustAppend(t, c, s, esdb.Revision(0), ev)
	if res.NextExpectedVersion != 1 {
		t.Errorf("NextExpectedVersion = %d, want 1 (a new write)", res.NextExpectedVersion)
	}
	if diff := cmp.Diff([]uuid.UUID{ev.EventID, ev.EventID}, eventIDs(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
		t.Errorf("stream ids (-want +got):\n%s", diff)
	}
}

// Event ids are unique per stream only: the same id may be written to
// another stream.
func TestAppendSameIDInAnotherStream(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	a, b := streamName(t, "a"), streamName(t, "b")
	ev := jsonEvent("Shared", 0)
	mustAppend(t, c, a, esdb.NoStream{}, ev)
	res := mustAppend(t, c, b, esdb.NoStream{}, ev)
	if res.NextExpectedVersion != 0 {
		t.Errorf("NextExpectedVersion in second stream = %d, want 0", res.NextExpectedVersion)
	}
	// And with any, which uses the per-stream id lookup.
	c2 := streamName(t, "c")
	mustAppend(t, c, c2, esdb.Any{}, ev)
	for _, s := range []string{a, b, c2} {
		if diff := cmp.Diff([]uuid.UUID{ev.EventID}, eventIDs(mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount))); diff != "" {
			t.Errorf("%s ids (-want +got):\n%s", s, diff)
		}
	}
}

// A stream that has only metadata counts as existing for stream_exists.
func TestAppendStreamExistsWithOnlyMetadata(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	var meta esdb.StreamMetadata
	meta.SetMaxCount(10)
	if _, err := c.SetStreamMetadata(opCtx(t), s, esdb.AppendToStreamOptions{}, meta); err != nil {
		t.Fatalf("set metadata: %v", err)
	}
	res := mustAppend(t, c, s, esdb.StreamExists{}, jsonEvent("First", 0))
	if res.NextExpectedVersion != 0 {
		t.Errorf("NextExpectedVersion = %d, want 0", res.NextExpectedVersion)
	}
}
