package esdbserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxAppendSize is the limit on the summed data of one append.
const maxAppendSize = 1 << 20

// streamsService implements the Streams gRPC service.
type streamsService struct {
	streams.UnimplementedStreamsServer
	srv *Server
}

// deletedError sets the stream-deleted trailers and returns the status.
func deletedError(setTrailer func(metadata.MD), stream string) error {
	setTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", stream))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", stream)
}

// storageError maps a storage error to a gRPC status.
func storageError(err error) error {
	switch {
	case errors.Is(err, errClosed):
		return status.Error(codes.Unavailable, "server is shutting down")
	case pebble.IsCorruptionError(err), errors.Is(err, errCorruptRecord):
		return status.Error(codes.DataLoss, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func unaryTrailer(ctx context.Context) func(metadata.MD) {
	return func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
}

// uuidBytes converts a wire UUID to its RFC-4122 bytes.
func uuidBytes(u *shared.UUID) ([16]byte, error) {
	var id [16]byte
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
	case *shared.UUID_String_:
		p, err := uuid.Parse(v.String_)
		if err != nil {
			return id, err
		}
		id = p
	}
	return id, nil
}

// expectedOf converts an expected-revision oneof (from Append, Delete or
// Tombstone options).
func expectedOf(v any) (expected, bool) {
	switch e := v.(type) {
	case *streams.AppendReq_Options_Revision:
		return expected{kind: expRev, rev: e.Revision}, true
	case *streams.AppendReq_Options_NoStream:
		return expected{kind: expNoStream}, true
	case *streams.AppendReq_Options_Any:
		return expected{kind: expAny}, true
	case *streams.AppendReq_Options_StreamExists:
		return expected{kind: expExists}, true
	case *streams.DeleteReq_Options_Revision:
		return expected{kind: expRev, rev: e.Revision}, true
	case *streams.DeleteReq_Options_NoStream:
		return expected{kind: expNoStream}, true
	case *streams.DeleteReq_Options_Any:
		return expected{kind: expAny}, true
	case *streams.DeleteReq_Options_StreamExists:
		return expected{kind: expExists}, true
	case *streams.TombstoneReq_Options_Revision:
		return expected{kind: expRev, rev: e.Revision}, true
	case *streams.TombstoneReq_Options_NoStream:
		return expected{kind: expNoStream}, true
	case *streams.TombstoneReq_Options_Any:
		return expected{kind: expAny}, true
	case *streams.TombstoneReq_Options_StreamExists:
		return expected{kind: expExists}, true
	}
	return expected{}, false
}

// Append writes a batch of events atomically after the expected-revision
// check; a wrong expected version is an answer, not an error.
func (x *streamsService) Append(st streams.Streams_AppendServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.Unknown, "the first append message must carry options")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	if stream == "" {
		return status.Error(codes.InvalidArgument, "stream name is empty")
	}
	exp, ok := expectedOf(opts.GetExpectedStreamRevision())
	if !ok {
		return status.Error(codes.InvalidArgument, "expected stream revision is missing")
	}
	req := &writeReq{op: opAppend, stream: stream, exp: exp}
	dataSize := 0 // the limit counts event data only, as ESDB does
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		pm := m.GetProposedMessage()
		if pm == nil {
			return status.Error(codes.Unknown, "expected a proposed message")
		}
		typ, okType := pm.GetMetadata()["type"]
		ct, okCT := pm.GetMetadata()["content-type"]
		if !okType || !okCT {
			st.SetTrailer(metadata.Pairs("exception", "missing-required-metadata-property",
				"required-metadata-properties", "type,content-type"))
			return status.Error(codes.InvalidArgument, "required metadata properties are missing: type, content-type")
		}
		if typ == "" {
			return status.Error(codes.Unknown, "event type is empty")
		}
		id, err := uuidBytes(pm.GetId())
		if err != nil || id == ([16]byte{}) {
			return status.Error(codes.Unknown, "event id is missing or invalid")
		}
		dataSize += len(pm.GetData())
		if dataSize > maxAppendSize {
			st.SetTrailer(metadata.Pairs("exception", "maximum-append-size-exceeded",
				"maximum-append-size", strconv.Itoa(maxAppendSize)))
			return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", maxAppendSize)
		}
		req.size += len(pm.GetData()) + len(pm.GetCustomMetadata()) + len(typ) + 64
		req.events = append(req.events, proposed{
			id: id, typ: typ, json: ct == "application/json",
			data: pm.GetData(), meta: pm.GetCustomMetadata(),
		})
	}
	res := x.srv.store.write(req)
	switch res.kind {
	case resError:
		x.srv.log.Error("append failed", "stream", stream, "err", res.err)
		return storageError(res.err)
	case resDeleted:
		return deletedError(st.SetTrailer, stream)
	case resWEV:
		return st.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_WrongExpectedVersion_{
			WrongExpectedVersion: wrongExpected(exp, res.cur),
		}})
	}
	ok2 := &streams.AppendResp_Success{}
	if res.cur < 0 {
		ok2.CurrentRevisionOption = &streams.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok2.CurrentRevisionOption = &streams.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.cur)}
	}
	if res.pos == 0 {
		ok2.PositionOption = &streams.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		ok2.PositionOption = &streams.AppendResp_Success_Position{Position: &streams.AppendResp_Position{
			CommitPosition: res.pos, PreparePosition: res.pos,
		}}
	}
	return st.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_Success_{Success: ok2}})
}

// wrongExpected builds the wrong-expected-version answer, with the legacy
// 20.6.0 fields filled as ESDB does.
func wrongExpected(exp expected, cur int64) *streams.AppendResp_WrongExpectedVersion {
	w := &streams.AppendResp_WrongExpectedVersion{}
	if cur < 0 {
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(cur)}
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(cur)}
	}
	switch exp.kind {
	case expRev:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.rev}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.rev}
	case expNoStream:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: math.MaxUint64}
	case expAny:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expExists:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	}
	return w
}

// expectedVersionString renders an expected revision as ESDB's signed
// version in trailers.
func expectedVersionString(exp expected) string {
	switch exp.kind {
	case expNoStream:
		return "-1"
	case expAny:
		return "-2"
	case expExists:
		return "-4"
	}
	return strconv.FormatUint(exp.rev, 10)
}

// deleteOrTombstone runs a unary delete or tombstone.
func (x *streamsService) deleteOrTombstone(ctx context.Context, op opKind, sid *shared.StreamIdentifier, expv any) (uint64, error) {
	stream := string(sid.GetStreamName())
	if stream == "" {
		return 0, status.Error(codes.InvalidArgument, "stream name is empty")
	}
	exp, ok := expectedOf(expv)
	if !ok {
		return 0, status.Error(codes.InvalidArgument, "expected stream revision is missing")
	}
	res := x.srv.store.write(&writeReq{op: op, stream: stream, exp: exp, size: 64})
	switch res.kind {
	case resError:
		x.srv.log.Error("delete failed", "stream", stream, "err", res.err)
		return 0, storageError(res.err)
	case resDeleted:
		return 0, deletedError(unaryTrailer(ctx), stream)
	case resWEV:
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "wrong-expected-version",
			"stream-name", stream, "expected-version", expectedVersionString(exp),
			"actual-version", strconv.FormatInt(res.cur, 10)))
		return 0, status.Error(codes.FailedPrecondition,
			fmt.Sprintf("Append failed due to WrongExpectedVersion. Stream: %s, Expected version: %s, Actual version: %d",
				stream, expectedVersionString(exp), res.cur))
	}
	return res.pos, nil
}

// Delete soft-deletes a stream.
func (x *streamsService) Delete(ctx context.Context, req *streams.DeleteReq) (*streams.DeleteResp, error) {
	o := req.GetOptions()
	pos, err := x.deleteOrTombstone(ctx, opDelete, o.GetStreamIdentifier(), o.GetExpectedStreamRevision())
	if err != nil {
		return nil, err
	}
	return &streams.DeleteResp{PositionOption: &streams.DeleteResp_Position_{
		Position: &streams.DeleteResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}

// Tombstone deletes a stream permanently.
func (x *streamsService) Tombstone(ctx context.Context, req *streams.TombstoneReq) (*streams.TombstoneResp, error) {
	o := req.GetOptions()
	pos, err := x.deleteOrTombstone(ctx, opTombstone, o.GetStreamIdentifier(), o.GetExpectedStreamRevision())
	if err != nil {
		return nil, err
	}
	return &streams.TombstoneResp{PositionOption: &streams.TombstoneResp_Position_{
		Position: &streams.TombstoneResp_Position{CommitPosition: pos, PreparePosition: pos},
	}}, nil
}
