package conformance

import (
	"fmt"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
)

// linkEvent is a $> link to revision rev of stream.
func linkEvent(rev uint64, stream string) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.New(),
		EventType:   "$>",
		ContentType: esdb.ContentTypeBinary,
		Data:        []byte(fmt.Sprintf("%d@%s", rev, stream)),
	}
}

// Links resolve to their target with resolve links on, and come back raw
// with it off; a link to a missing target comes back with the link only.
func TestLinks(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	target, links := streamName(t, "target"), streamName(t, "links")
	evs := jsonEvents("Target", 2)
	mustAppend(t, c, target, esdb.NoStream{}, evs...)
	mustAppend(t, c, links, esdb.NoStream{}, linkEvent(1, target), linkEvent(7, target))

	resolved := mustReadStream(t, c, links, esdb.ReadStreamOptions{ResolveLinkTos: true}, maxCount)
	if len(resolved) != 2 {
		t.Fatalf("resolved read: got %d events, want 2", len(resolved))
	}
	r := resolved[0]
	if r.Event == nil || r.Event.EventID != evs[1].EventID || r.Event.StreamID != target || r.Event.EventNumber != 1 {
		t.Errorf("resolved link: Event = %+v, want %s@1 id %s", r.Event, target, evs[1].EventID)
	}
	if r.Link == nil || r.Link.StreamID != links || r.Link.EventNumber != 0 || r.Link.EventType != "$>" {
		t.Errorf("resolved link: Link = %+v, want the $> record %s@0", r.Link, links)
	}
	if r.Link != nil && (r.Commit == nil || *r.Commit != r.Link.Position.Commit) {
		t.Errorf("resolved link: Commit = %v, want the link's position %d", r.Commit, r.Link.Position.Commit)
	}
	if r.OriginalStreamRevision().Value != 0 {
		t.Errorf("OriginalStreamRevision = %d, want the link's 0", r.OriginalStreamRevision().Value)
	}
	dangling := resolved[1]
	if dangling.Event != nil || dangling.Link == nil || dangling.Link.EventNumber != 1 {
		t.Errorf("link to a missing target: Event = %+v, Link = %+v; want no event and the link record", dangling.Event, dangling.Link)
	}

	raw := mustReadStream(t, c, links, esdb.ReadStreamOptions{ResolveLinkTos: false}, maxCount)
	if len(raw) != 2 {
		t.Fatalf("raw read: got %d events, want 2", len(raw))
	}
	if raw[0].Link != nil || raw[0].Event == nil || raw[0].Event.EventType != "$>" || string(raw[0].Event.Data) != "1@"+target {
		t.Errorf("raw link: Event = %+v, Link = %+v; want the $> record as Event", raw[0].Event, raw[0].Link)
	}

	// A subscription with resolve links on resolves too.
	sr := pump(t, subscribeStream(t, c, links, esdb.SubscribeToStreamOptions{From: esdb.Start{}, ResolveLinkTos: true}))
	got := sr.events(1, nil)[0]
	if got.Event == nil || got.Event.EventID != evs[1].EventID || got.Link == nil {
		t.Errorf("subscription with resolve links: Event = %+v, Link = %+v", got.Event, got.Link)
	}
}
