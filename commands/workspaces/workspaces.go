// Package workspaces is the write side of workspaces and API keys:
// creating workspaces (lark workspace create, the default workspace),
// creating and revoking keys. Each command loads the workspace stream,
// lets domain/workspace decide, appends with the exact expected revision
// and answers only once the auth read model has passed the write
// (read-your-writes).
package workspaces

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/ident"
	"github.com/larkhq/lark/domain/workspace"
	"github.com/larkhq/lark/projections/auth"
)

// Store is the event store as these commands need it.
type Store interface {
	ReadStream(ctx context.Context, stream string) ([]esdb.Recorded, int64, error)
	Append(ctx context.Context, stream string, expected int64, events ...esdb.Proposed) (esdb.AppendResult, error)
}

// WaitFunc waits until the auth read model has passed pos.
type WaitFunc func(ctx context.Context, pos esdb.Position) error

// Handler runs the commands.
type Handler struct {
	Store      Store
	WaitFunc   WaitFunc
	Now        func() time.Time
	ForgetFunc func(keyID string) // drops a revoked key from this process's auth cache
}

// DefaultName is the name of the workspace lark serve creates on first start.
const DefaultName = "default"

// DefaultWorkspaceID is the derived id of the default workspace, so several
// processes racing to create it create it once.
func DefaultWorkspaceID() string { return ident.Derive("workspace", DefaultName) }

// KeyPrefixLen is how much of a secret is kept to tell keys apart.
const KeyPrefixLen = 12

// NewSecret returns a fresh API key secret, its displayable prefix and hash.
func NewSecret() (secret, prefix, hash string, err error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", "", fmt.Errorf("random key: %w", err)
	}
	secret = "lark_" + hex.EncodeToString(b[:])
	return secret, secret[:KeyPrefixLen], auth.HashKey(secret), nil
}

// CreatedKey is a new key as shown once.
type CreatedKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Key       string    `json:"key"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

func toEvents(recs []esdb.Recorded) ([]workspace.Event, error) {
	out := make([]workspace.Event, 0, len(recs))
	for _, r := range recs {
		var e workspace.Event
		var err error
		switch r.Type {
		case workspace.TypeCreated:
			var v workspace.Created
			err = r.Decode(&v)
			e = v
		case workspace.TypeEventLimitChanged:
			var v workspace.EventLimitChanged
			err = r.Decode(&v)
			e = v
		case workspace.TypeAPIKeyCreated:
			var v workspace.APIKeyCreated
			err = r.Decode(&v)
			e = v
		case workspace.TypeAPIKeyRevoked:
			var v workspace.APIKeyRevoked
			err = r.Decode(&v)
			e = v
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func proposals(ws string, events []workspace.Event) []esdb.Proposed {
	out := make([]esdb.Proposed, len(events))
	for i, e := range events {
		out[i] = esdb.Proposed{Type: e.EventType(), WorkspaceID: ws, Data: e}
	}
	return out
}

// Create creates a workspace with a first key named "default" and returns
// its id and the key's secret.
func (h *Handler) Create(ctx context.Context, name string, eventLimit int64) (string, string, error) {
	id := uuid.NewString()
	secret, created, err := h.create(ctx, id, name, eventLimit)
	if err == nil && !created {
		err = failure.New(failure.Conflict, "workspace %s exists already", id)
	}
	return id, secret, err
}

// EnsureDefault creates the default workspace unless it exists; only the
// caller that created it gets the first key.
func (h *Handler) EnsureDefault(ctx context.Context, eventLimit int64) (string, bool, error) {
	return h.create(ctx, DefaultWorkspaceID(), DefaultName, eventLimit)
}

func (h *Handler) create(ctx context.Context, id, name string, eventLimit int64) (string, bool, error) {
	secret, prefix, hash, err := NewSecret()
	if err != nil {
		return "", false, err
	}
	events, err := workspace.DecideCreate(workspace.State{}, workspace.Create{
		WorkspaceID: id, Name: name, EventLimit: eventLimit, At: h.Now().UTC(),
		FirstKey: workspace.NewKey{KeyID: uuid.NewString(), Name: "default", Prefix: prefix, Hash: hash},
	})
	if err != nil {
		return "", false, err
	}
	res, err := h.Store.Append(ctx, esdb.WorkspaceStream(id), esdb.NoStream, proposals(id, events)...)
	if errors.Is(err, esdb.ErrConcurrency) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if err := h.WaitFunc(ctx, res.Position); err != nil {
		return "", false, err
	}
	return secret, true, nil
}

// load folds a workspace stream.
func (h *Handler) load(ctx context.Context, ws string) (workspace.State, int64, error) {
	recs, rev, err := h.Store.ReadStream(ctx, esdb.WorkspaceStream(ws))
	if err != nil {
		return workspace.State{}, 0, err
	}
	events, err := toEvents(recs)
	if err != nil {
		return workspace.State{}, 0, err
	}
	return workspace.Fold(events), rev, nil
}

// decideAndAppend loads, decides and appends, retrying on a concurrent
// write, then waits for the read model.
func (h *Handler) decideAndAppend(ctx context.Context, ws string, decide func(workspace.State) ([]workspace.Event, error)) error {
	for attempt := 0; ; attempt++ {
		s, rev, err := h.load(ctx, ws)
		if err != nil {
			return err
		}
		events, err := decide(s)
		if err != nil || len(events) == 0 {
			return err
		}
		res, err := h.Store.Append(ctx, esdb.WorkspaceStream(ws), rev, proposals(ws, events)...)
		if errors.Is(err, esdb.ErrConcurrency) && attempt < 5 {
			continue
		}
		if errors.Is(err, esdb.ErrConcurrency) {
			return failure.Wrap(failure.Conflict, err, "the workspace changed concurrently; retry")
		}
		if err != nil {
			return err
		}
		return h.WaitFunc(ctx, res.Position)
	}
}

// CreateKey adds a key to a workspace.
func (h *Handler) CreateKey(ctx context.Context, ws, name string) (CreatedKey, error) {
	secret, prefix, hash, err := NewSecret()
	if err != nil {
		return CreatedKey{}, err
	}
	at := h.Now().UTC()
	k := CreatedKey{ID: uuid.NewString(), Name: name, Key: secret, Prefix: prefix, CreatedAt: at}
	err = h.decideAndAppend(ctx, ws, func(s workspace.State) ([]workspace.Event, error) {
		return workspace.DecideCreateKey(s, workspace.NewKey{KeyID: k.ID, Name: name, Prefix: prefix, Hash: hash}, at)
	})
	return k, err
}

// RevokeKey revokes a key; it is refused by every process from the moment
// this returns (this process at once; others as the NOTIFY arrives).
func (h *Handler) RevokeKey(ctx context.Context, ws, keyID string) error {
	err := h.decideAndAppend(ctx, ws, func(s workspace.State) ([]workspace.Event, error) {
		return workspace.DecideRevokeKey(s, keyID, h.Now().UTC())
	})
	if err == nil && h.ForgetFunc != nil {
		h.ForgetFunc(keyID)
	}
	return err
}

// SetEventLimit changes a workspace's monthly limit.
func (h *Handler) SetEventLimit(ctx context.Context, ws string, limit int64) error {
	return h.decideAndAppend(ctx, ws, func(s workspace.State) ([]workspace.Event, error) {
		return workspace.DecideEventLimit(s, limit, h.Now().UTC())
	})
}
