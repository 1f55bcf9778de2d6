// Package ingest is the write side of POST /v1/events and
// /v1/events/batch: validation, the exact monthly limit through the ingest
// lanes (lane.go), and Idempotency-Key handling.
//
// Idempotency: a request with a key first claims it in Postgres (a
// 'pending' row with a 30 s lease). Its events get ids derived from
// (workspace, key, index) and carry the key in their metadata. Once the
// lane has answered, the answer is recorded ('done') and then returned; a
// retry within 24 h gets the recorded answer and stores nothing. If the
// request stored nothing (the event store was down) the claim is released.
// If the process dies after the append but before recording, the claim's
// lease lapses; the next retry takes it over, waits until the usage
// projection has read $all up to the head, and rebuilds the answer from
// the events that projection saw stored under the key (idempotent_events):
// stored ones answer 200 with their id, the others of the accepted set
// could only have been refused (429), invalid ones are re-validated (400).
// If nothing was stored it runs the request afresh. A retry while the first
// request still holds the lease gets 409 idempotency_in_flight.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/ident"
	domain "github.com/larkhq/lark/domain/ingest"
	"github.com/larkhq/lark/domain/payload"
	"github.com/larkhq/lark/projections/idempotency"
	"github.com/larkhq/lark/projections/usage"
)

// MaxBatchEvents bounds POST /v1/events/batch.
const MaxBatchEvents = 500

// Keys is the idempotency record store.
type Keys interface {
	Claim(ctx context.Context, ws, key string, now time.Time) (idempotency.Outcome, idempotency.Record, error)
	Complete(ctx context.Context, ws, key string, status int, body []byte) error
	Release(ctx context.Context, ws, key string) error
	StoredEvents(ctx context.Context, ws, key string) (map[int]string, error)
}

// Catchup waits until the usage projection has read $all up to its head.
type Catchup func(ctx context.Context) error

// Result is the outcome of one event: an id, or an error.
type Result struct {
	ID  string         `json:"id,omitempty"`
	Err *failure.Error `json:"error,omitempty"`
}

// storedAnswer is how an idempotent answer is recorded.
type storedAnswer struct {
	Results []storedResult `json:"results"`
}

type storedResult struct {
	ID      string `json:"id,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Field   string `json:"field,omitempty"`
}

// Handler handles event submissions.
type Handler struct {
	lanes   *Lanes
	keys    Keys
	catchup Catchup
	now     func() time.Time
	limits  payload.Limits

	ingested prometheus.Counter
	refused  prometheus.Counter
}

// NewHandler builds the handler.
func NewHandler(lanes *Lanes, keys Keys, catchup Catchup, now func() time.Time, limits payload.Limits, reg prometheus.Registerer) (*Handler, error) {
	h := &Handler{lanes: lanes, keys: keys, catchup: catchup, now: now, limits: limits,
		ingested: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_events_ingested_total",
			Help: "Custom events accepted and durably stored."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "lark_usage_refusals_total",
			Help: "Custom events refused because the workspace's monthly limit was reached."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{h.ingested, h.refused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// Request is one submission: one event (POST /v1/events) or a batch.
type Request struct {
	WorkspaceID    string
	EventLimit     int64
	IdempotencyKey string
	Events         []payload.Object // nil entries are events that were not JSON objects
}

// Send validates and stores the request's events and returns one result
// per event, in order. The error is for the request as a whole (nothing
// was stored): failure.Unavailable, failure.IdempotencyInFlight, ...
func (h *Handler) Send(ctx context.Context, r Request) ([]Result, error) {
	if r.IdempotencyKey == "" {
		return h.send(ctx, r, nil)
	}
	now := h.now()
	out, rec, err := h.keys.Claim(ctx, r.WorkspaceID, r.IdempotencyKey, now)
	if err != nil {
		return nil, err
	}
	switch out {
	case idempotency.Done:
		return decodeAnswer(rec.Body)
	case idempotency.InFlight:
		return nil, failure.New(failure.IdempotencyInFlight, "a request with this Idempotency-Key is still being processed; retry shortly")
	case idempotency.Recovered:
		if err := h.catchup(ctx); err != nil {
			return nil, err
		}
		stored, err := h.keys.StoredEvents(ctx, r.WorkspaceID, r.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		if len(stored) > 0 {
			res := h.rebuild(r, stored)
			return res, h.record(ctx, r, res)
		}
	}
	res, err := h.send(ctx, r, nil)
	if err != nil {
		// Nothing was stored: let a retry run afresh.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = h.keys.Release(rctx, r.WorkspaceID, r.IdempotencyKey)
		cancel()
		return nil, err
	}
	// The events are stored; if recording fails, a retry recovers the
	// answer from the projection once the lease lapses.
	_ = h.record(context.WithoutCancel(ctx), r, res)
	return res, nil
}

func (h *Handler) record(ctx context.Context, r Request, res []Result) error {
	body, err := encodeAnswer(res)
	if err != nil {
		return err
	}
	return h.keys.Complete(ctx, r.WorkspaceID, r.IdempotencyKey, 200, body)
}

func eventID(r Request, i int) string {
	if r.IdempotencyKey == "" {
		return ""
	}
	return ident.Derive("event", r.WorkspaceID, r.IdempotencyKey, strconv.Itoa(i))
}

// validate parses every event; valid ones get an id.
func (h *Handler) validate(r Request) ([]Result, []domain.Event) {
	results := make([]Result, len(r.Events))
	events := make([]domain.Event, len(r.Events))
	for i, o := range r.Events {
		if o == nil {
			results[i].Err = failure.New(failure.InvalidBody, "event must be a JSON object")
			continue
		}
		ev, err := domain.Parse(o, h.limits)
		if err != nil {
			var fe *failure.Error
			if !errors.As(err, &fe) {
				fe = failure.Wrap(failure.InvalidBody, err, "invalid event")
			}
			results[i].Err = fe
			continue
		}
		events[i] = ev
	}
	return results, events
}

func (h *Handler) send(ctx context.Context, r Request, _ map[int]string) ([]Result, error) {
	results, events := h.validate(r)
	now := h.now().UTC()
	var idx []int
	var data []esdb.Proposed
	for i, res := range results {
		if res.Err != nil {
			continue
		}
		id := eventID(r, i)
		if id == "" {
			id = newID()
		}
		p := esdb.Proposed{ID: id, Type: domain.TypeReceived, WorkspaceID: r.WorkspaceID,
			Data: domain.Received{WorkspaceID: r.WorkspaceID, EventID: id, Email: events[i].Email, Name: events[i].Name,
				Properties: events[i].Properties, ReceivedAt: now}}
		if r.IdempotencyKey != "" {
			p.Meta = map[string]string{usage.MetaIdempotencyKey: r.IdempotencyKey, usage.MetaIdempotencyIndex: strconv.Itoa(i)}
		}
		idx = append(idx, i)
		data = append(data, p)
		results[i].ID = id
	}
	if len(data) == 0 {
		return results, nil
	}
	enc, err := esdb.Encode(data)
	if err != nil {
		return nil, failure.Wrap(failure.Internal, err, "encode events")
	}
	stream := esdb.EventsStream(r.WorkspaceID, domain.StreamPeriod(now))
	n, err := h.lanes.Submit(ctx, stream, r.EventLimit, enc)
	if errors.Is(err, esdb.ErrConcurrency) {
		err = failure.Wrap(failure.Unavailable, err, "too much contention on the usage stream; retry")
	}
	if err != nil {
		return nil, err
	}
	h.ingested.Add(float64(n))
	h.refused.Add(float64(len(idx) - n))
	for k := n; k < len(idx); k++ {
		results[idx[k]] = Result{Err: limitReached()}
	}
	return results, nil
}

func limitReached() *failure.Error {
	return failure.New(failure.UsageLimitReached, "the workspace's monthly event limit is reached")
}

// rebuild reconstructs the answer of a request whose events were stored by
// a process that died before recording it.
func (h *Handler) rebuild(r Request, stored map[int]string) []Result {
	results, _ := h.validate(r)
	for i := range results {
		if results[i].Err != nil {
			continue
		}
		if id, ok := stored[i]; ok {
			results[i].ID = id
		} else {
			results[i].Err = limitReached()
		}
	}
	return results
}

func encodeAnswer(res []Result) ([]byte, error) {
	a := storedAnswer{Results: make([]storedResult, len(res))}
	for i, r := range res {
		a.Results[i].ID = r.ID
		if r.Err != nil {
			a.Results[i] = storedResult{Code: r.Err.Code, Message: r.Err.Message, Field: r.Err.Field}
		}
	}
	return json.Marshal(a)
}

func decodeAnswer(b []byte) ([]Result, error) {
	var a storedAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, failure.Wrap(failure.Internal, err, "decode recorded answer")
	}
	out := make([]Result, len(a.Results))
	for i, s := range a.Results {
		out[i].ID = s.ID
		if s.Code != "" {
			out[i].Err = &failure.Error{Code: s.Code, Message: s.Message, Field: s.Field}
		}
	}
	return out, nil
}
