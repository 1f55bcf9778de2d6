package conformance

import (
	"bytes"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
)

// binaryEvent is an octet-stream event of n bytes with a recognisable
// pattern.
func binaryEvent(n int) esdb.EventData {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	return esdb.EventData{EventID: uuid.New(), EventType: "Blob", ContentType: esdb.ContentTypeBinary, Data: data}
}

// An append whose data exceeds 1 MiB fails and stores nothing, whether one
// event or a batch is too big.
func TestAppendOverMaxSizeFails(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tests := []struct {
		name string
		evs  []esdb.EventData
	}{
		{name: "one event of 1 MiB + 1", evs: []esdb.EventData{binaryEvent(1<<20 + 1)}},
		{name: "two events of 600 KiB", evs: []esdb.EventData{binaryEvent(600 << 10), binaryEvent(600 << 10)}},
	}
	for _, tt := range tests {
		s := streamName(t, "")
		_, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{}, tt.evs...)
		if err == nil {
			t.Errorf("%s: append succeeded, want an error", tt.name)
		}
		_, err = readStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
		if code, _ := errCode(err); err == nil || code != esdb.ErrorCodeResourceNotFound {
			t.Errorf("%s: read after the failed append: got %v, want ErrorCodeResourceNotFound (nothing stored)", tt.name, err)
		}
	}
	// The client and connection keep working after the refusal.
	mustAppend(t, c, streamName(t, "after"), esdb.NoStream{}, jsonEvent("After", 0))
}

// A 900 KiB event is within the limit and reads back byte for byte.
func TestAppendLargeEventRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	ev := binaryEvent(900 << 10)
	mustAppend(t, c, s, esdb.NoStream{}, ev)
	got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount)
	if len(got) != 1 {
		t.Fatalf("read %d events, want 1", len(got))
	}
	if !bytes.Equal(got[0].Event.Data, ev.Data) {
		t.Errorf("data differs: got %d bytes, want %d", len(got[0].Event.Data), len(ev.Data))
	}
	all := mustReadAll(t, c, esdb.ReadAllOptions{From: got[0].Event.Position}, 1)
	if len(all) != 1 || !bytes.Equal(all[0].Event.Data, ev.Data) {
		t.Errorf("$all read of the large event did not return it intact")
	}
}
