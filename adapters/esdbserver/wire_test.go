package esdbserver

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// recordedProto is the reference: the RecordedEvent built with the
// generated types.
func recordedProto(r *record, uuidString bool) *streams.ReadResp_ReadEvent_RecordedEvent {
	id := &shared.UUID{}
	if uuidString {
		id.Value = &shared.UUID_String_{String_: uuid.UUID(r.id).String()}
	} else {
		id.Value = &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
			MostSignificantBits:  int64(binary.BigEndian.Uint64(r.id[:8])),
			LeastSignificantBits: int64(binary.BigEndian.Uint64(r.id[8:])),
		}}
	}
	return &streams.ReadResp_ReadEvent_RecordedEvent{
		Id:               id,
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
		StreamRevision:   r.rev,
		PreparePosition:  r.pos,
		CommitPosition:   r.pos,
		Metadata: map[string]string{
			"type": r.typ, "content-type": contentType(r.json), "created": strconv.FormatInt(r.created, 10),
		},
		CustomMetadata: r.meta,
		Data:           r.data,
	}
}

func TestHandEncodedReadRespMatchesProto(t *testing.T) {
	negative := [16]byte{0xff, 0xfe, 1, 2, 3, 4, 5, 6, 0x80, 0, 0, 0, 0, 0, 0, 1}
	recs := []record{
		{pos: 1, rev: 0, created: 638000000000000000, id: uuid.New(), json: true, stream: "s", typ: "T",
			data: []byte(`{"a":1}`), meta: []byte(`{}`)},
		{pos: 1 << 40, rev: tombstoneRev, created: -1, id: negative, stream: "$$x", typ: "$metadata"},
		{pos: 300, rev: 7, id: [16]byte{}, stream: "", typ: "", data: make([]byte, 70000)},
	}
	link := record{pos: 999, rev: 3, created: 5, id: uuid.New(), stream: "$ce-x", typ: "$>", data: []byte("7@s")}
	for i := range recs {
		for _, uuidString := range []bool{false, true} {
			for _, withLink := range []bool{false, true} {
				r := &recs[i]
				want := &streams.ReadResp_ReadEvent{
					Event:    recordedProto(r, uuidString),
					Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
				}
				var l *record
				if withLink {
					l = &link
					want.Link = recordedProto(l, uuidString)
				}
				got := &streams.ReadResp{}
				if err := proto.Unmarshal(appendReadResp(nil, r, l, r.pos, uuidString), got); err != nil {
					t.Fatalf("record %d: unmarshal: %v", i, err)
				}
				wantResp := &streams.ReadResp{Content: &streams.ReadResp_Event{Event: want}}
				if diff := cmp.Diff(wantResp, got, protocmp.Transform()); diff != "" {
					t.Errorf("record %d uuidString=%v link=%v (-want +got):\n%s", i, uuidString, withLink, diff)
				}
			}
		}
	}
	// An unresolved link: only the link is set.
	got := &streams.ReadResp{}
	if err := proto.Unmarshal(appendReadResp(nil, nil, &link, link.pos, false), got); err != nil {
		t.Fatal(err)
	}
	want := &streams.ReadResp{Content: &streams.ReadResp_Event{Event: &streams.ReadResp_ReadEvent{
		Link:     recordedProto(&link, false),
		Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: link.pos},
	}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("unresolved link (-want +got):\n%s", diff)
	}
}
