package esdbserver

import (
	"bytes"
	"encoding/binary"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pageSize bounds how many events one storage iterator serves before it is
// reopened, so that a slow reader does not pin old storage files for long.
const pageSize = 1024

// eventFilter is a stream-name or event-type filter for $all.
type eventFilter struct {
	byType   bool
	re       *regexp.Regexp
	prefixes []string
	interval uint64 // checkpoint interval in considered events
}

func (f *eventFilter) match(r *record) bool {
	if f == nil {
		return true
	}
	s := r.stream
	if f.byType {
		s = r.typ
	}
	if f.re != nil {
		return f.re.MatchString(s)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// parseFilter reads the filter option: nil for no_filter.
func parseFilter(o *streams.ReadReq_Options) (*eventFilter, error) {
	switch fo := o.GetFilterOption().(type) {
	case *streams.ReadReq_Options_NoFilter:
		return nil, nil
	case *streams.ReadReq_Options_Filter:
		opt := fo.Filter
		f := &eventFilter{}
		var expr *streams.ReadReq_Options_FilterOptions_Expression
		switch e := opt.GetFilter().(type) {
		case *streams.ReadReq_Options_FilterOptions_StreamIdentifier:
			expr = e.StreamIdentifier
		case *streams.ReadReq_Options_FilterOptions_EventType:
			expr, f.byType = e.EventType, true
		default:
			return nil, status.Error(codes.InvalidArgument, "filter has no expression")
		}
		if rx := expr.GetRegex(); rx != "" {
			re, err := regexp.Compile(rx)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "invalid filter regex %q: %v", rx, err)
			}
			f.re = re
		} else {
			f.prefixes = expr.GetPrefix()
		}
		window := uint64(32)
		if m, ok := opt.GetWindow().(*streams.ReadReq_Options_FilterOptions_Max); ok && m.Max > 0 {
			window = uint64(m.Max)
		}
		mult := uint64(opt.GetCheckpointIntervalMultiplier())
		if mult == 0 {
			return nil, status.Error(codes.InvalidArgument, "checkpoint interval multiplier must be greater than 0")
		}
		f.interval = window * mult
		return f, nil
	}
	return nil, status.Error(codes.InvalidArgument, "filter option is missing")
}

// eventSender sends records as ReadResp events, encoded by hand.
type eventSender struct {
	st         streams.Streams_ReadServer
	store      *store
	uuidString bool
	resolve    bool
	target     record
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func newSender(st streams.Streams_ReadServer, s *store, o *streams.ReadReq_Options) *eventSender {
	_, str := o.GetUuidOption().GetContent().(*streams.ReadReq_Options_UUIDOption_String_)
	return &eventSender{st: st, store: s, uuidString: str, resolve: o.GetResolveLinks()}
}

// send sends one event (resolving a link if asked). The message buffer is
// handed to gRPC, which writes it asynchronously, so it is never reused.
func (es *eventSender) send(r *record) error {
	var msg rawMessage
	switch {
	case es.resolve && r.typ == "$>":
		ok, err := es.resolveLink(r.data)
		if err != nil {
			return err
		}
		var ev *record
		if ok {
			ev = &es.target
		}
		msg = appendReadResp(make([]byte, 0, recordedSize(ev, es.uuidString)+recordedSize(r, es.uuidString)+32),
			ev, r, r.pos, es.uuidString)
	case r.enc != nil && !es.uuidString:
		msg = r.enc
	default:
		msg = appendReadResp(make([]byte, 0, recordedSize(r, es.uuidString)+24), r, nil, r.pos, es.uuidString)
	}
	return es.st.SendMsg(&msg)
}

// resolveLink loads the target of a link "rev@stream" into es.target; false
// if it is missing, truncated or deleted.
func (es *eventSender) resolveLink(data []byte) (bool, error) {
	at := bytes.IndexByte(data, '@')
	if at <= 0 {
		return false, nil
	}
	rev, err := strconv.ParseUint(string(data[:at]), 10, 64)
	if err != nil {
		return false, nil
	}
	stream := string(data[at+1:])
	v, err := es.store.visibility(stream)
	if err != nil {
		return false, storageError(err)
	}
	if v.missing || v.deleted || int64(rev) < v.minRev || int64(rev) > v.h.lastRev {
		return false, nil
	}
	pos, err := es.store.lookupRev(es.store.db, stream, rev)
	if err != nil {
		return false, storageError(err)
	}
	if pos == 0 {
		return false, nil
	}
	if err := es.store.getRecord(es.store.db, pos, &es.target); err != nil {
		return false, storageError(err)
	}
	if es.target.created < v.cutoff {
		return false, nil
	}
	return true, nil
}

// visibility describes which revisions of a stream reads may return.
type visibility struct {
	h       head
	deleted bool  // tombstoned (stream or, for a metastream, its stream)
	missing bool  // never written or soft-deleted: StreamNotFound
	minRev  int64 // first readable revision
	cutoff  int64 // events created before these ticks are hidden
}

// visibility computes the read view of stream from its metadata.
func (s *store) visibility(stream string) (visibility, error) {
	h, err := s.head(stream)
	if err != nil {
		return visibility{}, err
	}
	v := visibility{h: h, cutoff: math.MinInt64}
	if isMetastream(stream) {
		bh, err := s.head(stream[2:])
		if err != nil {
			return visibility{}, err
		}
		v.deleted = bh.tombstoned
		v.missing = h.lastRev < 0
		v.minRev = h.lastRev // metastreams read as $maxCount 1
		return v, nil
	}
	v.deleted = h.tombstoned
	v.missing = h.lastRev < 0 || h.deleted
	v.minRev = h.tb
	if h.maxCount > 0 && h.lastRev-h.maxCount+1 > v.minRev {
		v.minRev = h.lastRev - h.maxCount + 1
	}
	if h.maxAge > 0 {
		v.cutoff = toTicks(s.now()) - h.maxAge*int64(time.Second/100)
	}
	return v, nil
}

// Read serves finite reads and catch-up subscriptions.
func (x *streamsService) Read(req *streams.ReadReq, st streams.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read options are missing")
	}
	if o.GetUuidOption() == nil {
		return status.Error(codes.InvalidArgument, "uuid option is missing")
	}
	filter, err := parseFilter(o)
	if err != nil {
		return err
	}
	backwards := o.GetReadDirection() == streams.ReadReq_Options_Backwards
	switch so := o.GetStreamOption().(type) {
	case *streams.ReadReq_Options_Stream:
		if filter != nil {
			return status.Error(codes.InvalidArgument, "stream reads cannot be filtered")
		}
		stream := string(so.Stream.GetStreamIdentifier().GetStreamName())
		switch co := o.GetCountOption().(type) {
		case *streams.ReadReq_Options_Count:
			return x.readStream(st, o, so.Stream, stream, co.Count, backwards)
		case *streams.ReadReq_Options_Subscription:
			if backwards {
				return status.Error(codes.InvalidArgument, "subscriptions read forwards")
			}
			return x.subscribeStream(st, o, so.Stream, stream)
		}
	case *streams.ReadReq_Options_All:
		switch co := o.GetCountOption().(type) {
		case *streams.ReadReq_Options_Count:
			return x.readAll(st, o, so.All, co.Count, backwards, filter)
		case *streams.ReadReq_Options_Subscription:
			if backwards {
				return status.Error(codes.InvalidArgument, "subscriptions read forwards")
			}
			return x.subscribeAll(st, o, so.All, filter)
		}
	}
	return status.Error(codes.InvalidArgument, "invalid combination of read options")
}

func notFound(st streams.Streams_ReadServer, stream string) error {
	return st.Send(&streams.ReadResp{Content: &streams.ReadResp_StreamNotFound_{
		StreamNotFound: &streams.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)},
		},
	}})
}

func (x *streamsService) readStream(st streams.Streams_ReadServer, o *streams.ReadReq_Options,
	so *streams.ReadReq_Options_StreamOptions, stream string, count uint64, backwards bool) error {
	s := x.srv.store
	v, err := s.visibility(stream)
	if err != nil {
		return storageError(err)
	}
	if v.deleted {
		return deletedError(st.SetTrailer, stream)
	}
	if v.missing {
		return notFound(st, stream)
	}
	if count == 0 {
		return nil
	}
	last := v.h.lastRev
	lo := v.minRev
	var from int64
	switch r := so.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Revision:
		if r.Revision > math.MaxInt64 {
			from = math.MaxInt64
		} else {
			from = int64(r.Revision)
		}
	case *streams.ReadReq_Options_StreamOptions_End:
		if !backwards {
			return nil
		}
		from = last
	default:
		from = 0
	}
	es := newSender(st, s, o)
	sent := uint64(0)
	fn := func(r *record) (bool, error) {
		if r.created < v.cutoff {
			return true, nil
		}
		if err := es.send(r); err != nil {
			return false, err
		}
		sent++
		return sent < count, nil
	}
	if backwards {
		hi := min(from, last)
		if hi < lo || hi < 0 {
			return nil
		}
		err = s.scanStream(stream, uint64(max(lo, 0)), uint64(hi), true, fn)
	} else {
		start := max(from, lo, 0)
		if start > last {
			return nil
		}
		err = s.scanStream(stream, uint64(start), uint64(last), false, fn)
	}
	return sendErr(err)
}

// sendErr maps an error from a scan (a storage error or a send error).
func sendErr(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return storageError(err)
}

func (x *streamsService) readAll(st streams.Streams_ReadServer, o *streams.ReadReq_Options,
	ao *streams.ReadReq_Options_AllOptions, count uint64, backwards bool, filter *eventFilter) error {
	s := x.srv.store
	if count == 0 {
		return nil
	}
	head := s.published()
	var lo, hi uint64
	switch p := ao.GetAllOption().(type) {
	case *streams.ReadReq_Options_AllOptions_Position:
		at := p.Position.GetCommitPosition()
		if backwards {
			if at == 0 {
				return nil
			}
			lo, hi = 1, min(at-1, head)
		} else {
			lo, hi = max(at, 1), head
		}
	case *streams.ReadReq_Options_AllOptions_End:
		if !backwards {
			return nil
		}
		lo, hi = 1, head
	default:
		if backwards {
			return nil
		}
		lo, hi = 1, head
	}
	es := newSender(st, s, o)
	sent := uint64(0)
	// Page through the log so that no iterator stays open for long.
	for lo <= hi && sent < count {
		n, last := 0, uint64(0)
		err := s.scanAll(lo, hi, backwards, func(r *record) (bool, error) {
			n++
			last = r.pos
			if filter.match(r) {
				if err := es.send(r); err != nil {
					return false, err
				}
				sent++
			}
			return sent < count && n < pageSize, nil
		})
		if err != nil {
			return sendErr(err)
		}
		if n < pageSize {
			break
		}
		if backwards {
			if last <= lo {
				break
			}
			hi = last - 1
		} else {
			lo = last + 1
		}
	}
	return nil
}
