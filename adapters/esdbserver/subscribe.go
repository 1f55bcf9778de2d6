package esdbserver

import (
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var caughtUpMsg = &streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: &streams.ReadResp_CaughtUp{}}}

func confirm(st streams.Streams_ReadServer) error {
	return st.Send(&streams.ReadResp{Content: &streams.ReadResp_Confirmation{
		Confirmation: &streams.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}})
}

func checkpoint(st streams.Streams_ReadServer, pos uint64) error {
	return st.Send(&streams.ReadResp{Content: &streams.ReadResp_Checkpoint_{
		Checkpoint: &streams.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos},
	}})
}

// ended returns an error once the call or the server is ending.
func (x *streamsService) ended(st streams.Streams_ReadServer) error {
	select {
	case <-st.Context().Done():
		return status.FromContextError(st.Context().Err()).Err()
	case <-x.srv.shutdown:
		return status.Error(codes.Unavailable, "server is shutting down")
	default:
		return nil
	}
}

// waitLive blocks until q has news, the call ends or the server closes.
func (x *streamsService) waitLive(st streams.Streams_ReadServer, q *liveQueue) error {
	select {
	case <-q.signal:
		return nil
	case <-st.Context().Done():
		return status.FromContextError(st.Context().Err()).Err()
	case <-x.srv.shutdown:
		return status.Error(codes.Unavailable, "server is shutting down")
	}
}

// subscribeStream serves a catch-up subscription to one stream.
func (x *streamsService) subscribeStream(st streams.Streams_ReadServer, o *streams.ReadReq_Options,
	so *streams.ReadReq_Options_StreamOptions, stream string) error {
	s := x.srv.store
	h, err := s.head(stream)
	if err != nil {
		return storageError(err)
	}
	if h.tombstoned {
		return deletedError(st.SetTrailer, stream)
	}
	if err := confirm(st); err != nil {
		return err
	}
	x.srv.met.subscription(1)
	defer x.srv.met.subscription(-1)

	// cursorRev/cursorPos: everything up to them has been delivered.
	cursorRev, cursorPos := int64(-1), uint64(0)
	fromEnd := false
	switch r := so.GetRevisionOption().(type) {
	case *streams.ReadReq_Options_StreamOptions_Revision:
		cursorRev = int64(min(r.Revision, math.MaxInt64))
	case *streams.ReadReq_Options_StreamOptions_End:
		fromEnd = true
		cursorRev = h.lastRev
	}
	es := newSender(st, s, o)
	var buf []record
	ofStream := func(r *record) bool { return r.stream == stream }
	for {
		q, top := s.hub.register(ofStream)
		err := func() error {
			defer s.hub.unregister(q)
			if fromEnd {
				cursorPos, fromEnd = top, false
			}
			// Catch up from storage to top; later events arrive on q.
			for {
				if err := x.ended(st); err != nil {
					return err
				}
				v, err := s.visibility(stream)
				if err != nil {
					return storageError(err)
				}
				start := max(cursorRev+1, v.minRev, 0)
				if v.missing || start > v.h.lastRev {
					if v.deleted && v.h.lastPos > cursorPos && v.h.lastPos <= top {
						return x.sendTombstone(st, es, v.h.lastPos, stream)
					}
					break
				}
				n := 0
				err = s.scanStream(stream, uint64(start), uint64(v.h.lastRev), false, func(r *record) (bool, error) {
					if r.pos > top {
						return false, nil
					}
					n++
					cursorRev = int64(r.rev)
					if r.pos <= cursorPos || r.created < v.cutoff {
						return n < pageSize, nil
					}
					cursorPos = r.pos
					return n < pageSize, es.send(r)
				})
				if err != nil {
					return sendErr(err)
				}
				if n < pageSize {
					if v.deleted && v.h.lastPos > cursorPos && v.h.lastPos <= top {
						return x.sendTombstone(st, es, v.h.lastPos, stream)
					}
					break
				}
			}
			cursorPos = max(cursorPos, top)
			caughtUp := false
			for {
				var over bool
				buf, over = q.take(buf)
				if over {
					x.srv.log.Debug("stream subscriber fell behind; catching up from storage", "stream", stream, "at", cursorPos)
					x.srv.met.fallback()
					return nil // fall back to catch-up
				}
				if !caughtUp {
					if err := st.Send(caughtUpMsg); err != nil {
						return err
					}
					caughtUp = true
				}
				for i := range buf {
					r := &buf[i]
					if r.pos <= cursorPos {
						continue
					}
					cursorPos = r.pos
					if r.stream != stream {
						continue
					}
					if err := es.send(r); err != nil {
						return err
					}
					if r.rev == tombstoneRev && r.typ == "$streamDeleted" {
						return deletedError(st.SetTrailer, stream)
					}
					cursorRev = int64(r.rev)
				}
				if err := x.waitLive(st, q); err != nil {
					return err
				}
			}
		}()
		if err != nil {
			return err
		}
	}
}

func (x *streamsService) sendTombstone(st streams.Streams_ReadServer, es *eventSender, pos uint64, stream string) error {
	var r record
	if err := x.srv.store.getRecord(x.srv.store.db, pos, &r); err != nil {
		return storageError(err)
	}
	if err := es.send(&r); err != nil {
		return err
	}
	return deletedError(st.SetTrailer, stream)
}

// subscribeAll serves a catch-up subscription to $all, optionally filtered
// with checkpoints.
func (x *streamsService) subscribeAll(st streams.Streams_ReadServer, o *streams.ReadReq_Options,
	ao *streams.ReadReq_Options_AllOptions, filter *eventFilter) error {
	s := x.srv.store
	if err := confirm(st); err != nil {
		return err
	}
	x.srv.met.subscription(1)
	defer x.srv.met.subscription(-1)

	cursor := uint64(0) // everything up to cursor has been considered
	fromEnd := false
	switch p := ao.GetAllOption().(type) {
	case *streams.ReadReq_Options_AllOptions_Position:
		cursor = p.Position.GetCommitPosition()
	case *streams.ReadReq_Options_AllOptions_End:
		fromEnd = true
	}
	es := newSender(st, s, o)
	// Checkpoints strictly increase from the start position.
	considered, lastCheckpoint := uint64(0), cursor
	// consider handles one event: delivers it if it matches and sends a
	// checkpoint every filter.interval considered events.
	consider := func(r *record) error {
		cursor = r.pos
		if filter.match(r) {
			if err := es.send(r); err != nil {
				return err
			}
		}
		if filter == nil {
			return nil
		}
		considered++
		if considered >= filter.interval {
			considered = 0
			if r.pos > lastCheckpoint {
				lastCheckpoint = r.pos
				return checkpoint(st, r.pos)
			}
		}
		return nil
	}
	var buf []record
	for {
		q, top := s.hub.register(nil)
		err := func() error {
			defer s.hub.unregister(q)
			if fromEnd {
				cursor, lastCheckpoint, fromEnd = top, top, false
			}
			for cursor < top {
				if err := x.ended(st); err != nil {
					return err
				}
				n := 0
				err := s.scanAll(cursor+1, top, false, func(r *record) (bool, error) {
					n++
					return n < pageSize, consider(r)
				})
				if err != nil {
					return sendErr(err)
				}
				if n == 0 {
					cursor = top
				}
			}
			if filter != nil && cursor == top && top > lastCheckpoint {
				lastCheckpoint = top
				if err := checkpoint(st, top); err != nil {
					return err
				}
			}
			considered = 0
			caughtUp := false
			for {
				var over bool
				buf, over = q.take(buf)
				if over {
					x.srv.log.Debug("$all subscriber fell behind; catching up from storage", "at", cursor)
					x.srv.met.fallback()
					return nil
				}
				if !caughtUp {
					if err := st.Send(caughtUpMsg); err != nil {
						return err
					}
					caughtUp = true
				}
				for i := range buf {
					if buf[i].pos <= cursor {
						continue
					}
					if err := consider(&buf[i]); err != nil {
						return err
					}
				}
				if err := x.waitLive(st, q); err != nil {
					return err
				}
			}
		}()
		if err != nil {
			return err
		}
	}
}
