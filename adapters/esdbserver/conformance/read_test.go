package conformance

import (
	"bytes"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestReadStreamFiniteReads(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	mustAppend(t, c, s, esdb.NoStream{}, jsonEvents("E", 10)...)
	tests := []struct {
		name  string
		opts  esdb.ReadStreamOptions
		count uint64
		want  []uint64
	}{
		{name: "forwards from start", opts: esdb.ReadStreamOptions{From: esdb.Start{}}, count: maxCount, want: seq(0, 9)},
		{name: "forwards count 3", opts: esdb.ReadStreamOptions{From: esdb.Start{}}, count: 3, want: seq(0, 2)},
		{name: "forwards from revision inclusive", opts: esdb.ReadStreamOptions{From: esdb.Revision(5)}, count: 3, want: seq(5, 7)},
		{name: "forwards from last revision", opts: esdb.ReadStreamOptions{From: esdb.Revision(9)}, count: 100, want: seq(9, 9)},
		{name: "forwards past the end", opts: esdb.ReadStreamOptions{From: esdb.Revision(20)}, count: 100, want: nil},
		{name: "backwards from end", opts: esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, count: maxCount, want: seq(9, 0)},
		{name: "backwards count 3", opts: esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, count: 3, want: seq(9, 7)},
		{name: "backwards from revision inclusive", opts: esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(4)}, count: maxCount, want: seq(4, 0)},
		{name: "backwards from beyond the end", opts: esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(100)}, count: 2, want: seq(9, 8)},
		{name: "backwards from revision 0", opts: esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(0)}, count: 5, want: seq(0, 0)},
	}
	for _, tt := range tests {
		got, err := readStream(t, c, s, tt.opts, tt.count)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, revisions(got)); diff != "" {
			t.Errorf("%s: revisions (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestReadMissingStreamIsNotFound(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	for _, opts := range []esdb.ReadStreamOptions{
		{Direction: esdb.Forwards, From: esdb.Start{}},
		{Direction: esdb.Backwards, From: esdb.End{}},
		{Direction: esdb.Forwards, From: esdb.Revision(3)},
	} {
		got, err := readStream(t, c, s, opts, 10)
		wantCode(t, "read of a never-written stream", err, esdb.ErrorCodeResourceNotFound)
		if len(got) != 0 {
			t.Errorf("got %d events before the not-found error, want 0", len(got))
		}
	}
}

// Every field of a recorded event comes back as written.
func TestRecordedEventFields(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	js := esdb.EventData{
		EventID:     uuid.New(),
		EventType:   "OrderPlaced",
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(`{"order":"o-1","lines":[1,2,3]}`),
		Metadata:    []byte(`{"correlation":"c-9"}`),
	}
	bin := esdb.EventData{
		EventID:     uuid.New(),
		EventType:   "blob.stored",
		ContentType: esdb.ContentTypeBinary,
		Data:        []byte{0, 1, 2, 0xff, 0xfe},
		Metadata:    []byte{9, 8, 7},
	}
	empty := esdb.EventData{EventID: uuid.New(), EventType: "Empty", ContentType: esdb.ContentTypeJson}
	before := time.Now()
	res := mustAppend(t, c, s, esdb.NoStream{}, js, bin, empty)
	after := time.Now()
	// A real server's clock may differ a little from ours.
	slack := 2 * time.Second

	for _, dir := range []esdb.Direction{esdb.Forwards, esdb.Backwards} {
		from := esdb.StreamPosition(esdb.Start{})
		if dir == esdb.Backwards {
			from = esdb.End{}
		}
		got := mustReadStream(t, c, s, esdb.ReadStreamOptions{Direction: dir, From: from}, maxCount)
		if len(got) != 3 {
			t.Fatalf("read %d events, want 3", len(got))
		}
		if dir == esdb.Backwards {
			got[0], got[2] = got[2], got[0]
		}
		for i, want := range []esdb.EventData{js, bin, empty} {
			r := got[i]
			if r.Link != nil {
				t.Errorf("event %d: Link = %+v, want nil for a plain event", i, r.Link)
			}
			e := r.Event
			if e == nil {
				t.Fatalf("event %d: Event is nil", i)
			}
			wantCT := "application/json"
			if want.ContentType == esdb.ContentTypeBinary {
				wantCT = "application/octet-stream"
			}
			if e.EventID != want.EventID || e.EventType != want.EventType || e.ContentType != wantCT ||
				e.StreamID != s || e.EventNumber != uint64(i) {
				t.Errorf("event %d: got (id %s, type %q, content type %q, stream %q, revision %d), want (%s, %q, %q, %q, %d)",
					i, e.EventID, e.EventType, e.ContentType, e.StreamID, e.EventNumber, want.EventID, want.EventType, wantCT, s, i)
			}
			if !bytes.Equal(e.Data, want.Data) {
				t.Errorf("event %d: data = %q, want %q", i, e.Data, want.Data)
			}
			if !bytes.Equal(e.UserMetadata, want.Metadata) {
				t.Errorf("event %d: user metadata = %q, want %q", i, e.UserMetadata, want.Metadata)
			}
			if e.CreatedDate.Before(before.Add(-slack)) || e.CreatedDate.After(after.Add(slack)) {
				t.Errorf("event %d: created = %v, want within [%v, %v] (±%v)", i, e.CreatedDate, before, after, slack)
			}
			if e.CreatedDate.Location() != time.UTC {
				t.Errorf("event %d: created location = %v, want UTC", i, e.CreatedDate.Location())
			}
			wantKeys := []string{"content-type", "created", "type"}
			var keys []string
			for k := range e.SystemMetadata {
				keys = append(keys, k)
			}
			if diff := cmp.Diff(wantKeys, keys, sortStrings); diff != "" {
				t.Errorf("event %d: system metadata keys (-want +got):\n%s", i, diff)
			}
			if e.Position.Commit == 0 || e.Position.Commit != e.Position.Prepare {
				t.Errorf("event %d: position = %+v, want commit == prepare > 0", i, e.Position)
			}
			if r.Commit == nil || *r.Commit != e.Position.Commit {
				t.Errorf("event %d: ResolvedEvent.Commit = %v, want %d", i, r.Commit, e.Position.Commit)
			}
		}
		if last := got[2].Event.Position; last.Commit != res.CommitPosition {
			t.Errorf("last event position = %+v, want the WriteResult's %d", last, res.CommitPosition)
		}
	}
}
