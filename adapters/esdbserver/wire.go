package esdbserver

import (
	"strconv"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawMessage is an already encoded protobuf message. The server's codec
// sends its bytes as they are; they must not change after the send.
type rawMessage []byte

// rawCodec is the gRPC proto codec, except that it passes rawMessage
// through, so that hot paths can encode ReadResp messages by hand (and share
// one encoding between subscribers).
type rawCodec struct{ proto encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2(protocodec.Name)} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*r)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c rawCodec) Name() string { return protocodec.Name }

// Field numbers of the messages encoded by hand (streams.proto, shared.proto).
const (
	fReadRespEvent        = 1 // ReadResp.event
	fReadEventEvent       = 1 // ReadEvent.event
	fReadEventLink        = 2 // ReadEvent.link
	fReadEventCommit      = 3 // ReadEvent.commit_position
	fRecID                = 1
	fRecStream            = 2
	fRecRevision          = 3
	fRecPrepare           = 4
	fRecCommit            = 5
	fRecMetadata          = 6
	fRecCustomMetadata    = 7
	fRecData              = 8
	fUUIDStructured       = 1
	fUUIDString           = 2
	fStructuredMost       = 1
	fStructuredLeast      = 2
	fStreamIdentifierName = 3
	fMapKey               = 1
	fMapValue             = 2
)

// appendReadResp appends the encoding of ReadResp{event: ReadEvent{event:
// ev, link: link (if not nil), commit_position: pos}}.
func appendReadResp(dst []byte, ev, link *record, pos uint64, uuidString bool) []byte {
	inner := recordedSize(ev, uuidString)
	readEvent := 0
	if ev != nil {
		readEvent += protowire.SizeTag(fReadEventEvent) + protowire.SizeBytes(inner)
	}
	linkSize := 0
	if link != nil {
		linkSize = recordedSize(link, uuidString)
		readEvent += protowire.SizeTag(fReadEventLink) + protowire.SizeBytes(linkSize)
	}
	readEvent += protowire.SizeTag(fReadEventCommit) + protowire.SizeVarint(pos)

	dst = protowire.AppendTag(dst, fReadRespEvent, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(readEvent))
	if ev != nil {
		dst = protowire.AppendTag(dst, fReadEventEvent, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(inner))
		dst = appendRecorded(dst, ev, uuidString)
	}
	if link != nil {
		dst = protowire.AppendTag(dst, fReadEventLink, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(linkSize))
		dst = appendRecorded(dst, link, uuidString)
	}
	dst = protowire.AppendTag(dst, fReadEventCommit, protowire.VarintType)
	return protowire.AppendVarint(dst, pos)
}

func contentType(json bool) string {
	if json {
		return "application/json"
	}
	return "application/octet-stream"
}

func mapEntrySize(k, v string) int {
	n := protowire.SizeTag(fMapKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(fMapValue) + protowire.SizeBytes(len(v))
	return protowire.SizeTag(fRecMetadata) + protowire.SizeBytes(n)
}

func appendMapEntry(dst []byte, k string, v []byte) []byte {
	n := protowire.SizeTag(fMapKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(fMapValue) + protowire.SizeBytes(len(v))
	dst = protowire.AppendTag(dst, fRecMetadata, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, fMapKey, protowire.BytesType)
	dst = protowire.AppendString(dst, k)
	dst = protowire.AppendTag(dst, fMapValue, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

func structuredSize(id *[16]byte) int {
	most, least := beUint64(id[:8]), beUint64(id[8:])
	n := 0
	if most != 0 {
		n += protowire.SizeTag(fStructuredMost) + protowire.SizeVarint(most)
	}
	if least != 0 {
		n += protowire.SizeTag(fStructuredLeast) + protowire.SizeVarint(least)
	}
	return n
}

func idSize(r *record, uuidString bool) int {
	if uuidString {
		return protowire.SizeTag(fUUIDString) + protowire.SizeBytes(36)
	}
	return protowire.SizeTag(fUUIDStructured) + protowire.SizeBytes(structuredSize(&r.id))
}

func createdLen(ticks int64) int {
	var b [20]byte
	return len(strconv.AppendInt(b[:0], ticks, 10))
}

func recordedSize(r *record, uuidString bool) int {
	if r == nil {
		return 0
	}
	n := protowire.SizeTag(fRecID) + protowire.SizeBytes(idSize(r, uuidString))
	n += protowire.SizeTag(fRecStream) + protowire.SizeBytes(protowire.SizeTag(fStreamIdentifierName)+protowire.SizeBytes(len(r.stream)))
	if r.rev != 0 {
		n += protowire.SizeTag(fRecRevision) + protowire.SizeVarint(r.rev)
	}
	n += 2 * (protowire.SizeTag(fRecPrepare) + protowire.SizeVarint(r.pos))
	n += mapEntrySize("type", r.typ)
	n += mapEntrySize("content-type", contentType(r.json))
	n += protowire.SizeTag(fRecMetadata) + protowire.SizeBytes(
		protowire.SizeTag(fMapKey)+protowire.SizeBytes(len("created"))+
			protowire.SizeTag(fMapValue)+protowire.SizeBytes(createdLen(r.created)))
	if len(r.meta) > 0 {
		n += protowire.SizeTag(fRecCustomMetadata) + protowire.SizeBytes(len(r.meta))
	}
	if len(r.data) > 0 {
		n += protowire.SizeTag(fRecData) + protowire.SizeBytes(len(r.data))
	}
	return n
}

func appendRecorded(dst []byte, r *record, uuidString bool) []byte {
	dst = protowire.AppendTag(dst, fRecID, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(idSize(r, uuidString)))
	if uuidString {
		dst = protowire.AppendTag(dst, fUUIDString, protowire.BytesType)
		dst = protowire.AppendVarint(dst, 36)
		dst = appendUUIDString(dst, &r.id)
	} else {
		dst = protowire.AppendTag(dst, fUUIDStructured, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(structuredSize(&r.id)))
		if most := beUint64(r.id[:8]); most != 0 {
			dst = protowire.AppendTag(dst, fStructuredMost, protowire.VarintType)
			dst = protowire.AppendVarint(dst, most)
		}
		if least := beUint64(r.id[8:]); least != 0 {
			dst = protowire.AppendTag(dst, fStructuredLeast, protowire.VarintType)
			dst = protowire.AppendVarint(dst, least)
		}
	}
	dst = protowire.AppendTag(dst, fRecStream, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(protowire.SizeTag(fStreamIdentifierName)+protowire.SizeBytes(len(r.stream))))
	dst = protowire.AppendTag(dst, fStreamIdentifierName, protowire.BytesType)
	dst = protowire.AppendString(dst, r.stream)
	if r.rev != 0 {
		dst = protowire.AppendTag(dst, fRecRevision, protowire.VarintType)
		dst = protowire.AppendVarint(dst, r.rev)
	}
	dst = protowire.AppendTag(dst, fRecPrepare, protowire.VarintType)
	dst = protowire.AppendVarint(dst, r.pos)
	dst = protowire.AppendTag(dst, fRecCommit, protowire.VarintType)
	dst = protowire.AppendVarint(dst, r.pos)
	var tmp [20]byte
	dst = appendMapEntry(dst, "type", []byte(r.typ))
	dst = appendMapEntry(dst, "content-type", []byte(contentType(r.json)))
	dst = appendMapEntry(dst, "created", strconv.AppendInt(tmp[:0], r.created, 10))
	if len(r.meta) > 0 {
		dst = protowire.AppendTag(dst, fRecCustomMetadata, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.meta)
	}
	if len(r.data) > 0 {
		dst = protowire.AppendTag(dst, fRecData, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.data)
	}
	return dst
}

func appendUUIDString(dst []byte, id *[16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[b>>4], hex[b&15])
	}
	return dst
}
