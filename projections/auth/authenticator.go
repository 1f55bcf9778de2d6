package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/projections"
)

// Principal is who a valid key speaks for.
type Principal struct {
	WorkspaceID string
	KeyID       string
	EventLimit  int64
}

// HashKey is how secrets are stored: hex SHA-256.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

type entry struct {
	p       Principal
	hash    string
	expires time.Time
}

// Authenticator resolves API keys to principals. A hit in its cache costs
// no database round trip; entries go on revocation (NOTIFY, delivered
// to every process right after the projection commits), when the
// listening connection is lost (the whole cache is dropped), and after TTL
// at the latest.
type Authenticator struct {
	db  *projections.DB
	log *slog.Logger
	now func() time.Time
	ttl time.Duration

	mu        sync.RWMutex
	cache     map[string]entry // by hash
	listening bool             // cache is used only while LISTEN is up

	usedMu sync.Mutex
	used   map[string]time.Time // key id → last use not yet flushed
}

// NewAuthenticator builds an authenticator. Run Listen for caching.
func NewAuthenticator(db *projections.DB, log *slog.Logger, now func() time.Time) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{db: db, log: log, now: now, ttl: time.Minute,
		cache: map[string]entry{}, used: map[string]time.Time{}}
}

// Authenticate checks a bearer secret. Unknown and revoked keys are
// failure.Unauthorized; an unreachable database is failure.Unavailable.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, failure.New(failure.Unauthorized, "missing API key: send Authorization: Bearer <key>")
	}
	hash := HashKey(secret)
	now := a.now()
	a.mu.RLock()
	e, ok := a.cache[hash]
	listening := a.listening
	a.mu.RUnlock()
	if ok && listening && now.Before(e.expires) {
		a.touch(e.p.KeyID, now)
		return e.p, nil
	}
	var p Principal
	var revoked bool
	err := a.db.Do(ctx, func(ctx context.Context) error {
		return a.db.Pool.QueryRow(ctx, `SELECT k.workspace_id, k.key_id, w.event_limit, k.revoked_at IS NOT NULL
			FROM api_keys k JOIN workspaces w USING (workspace_id) WHERE k.hash = $1`, hash).
			Scan(&p.WorkspaceID, &p.KeyID, &p.EventLimit, &revoked)
	})
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && revoked) {
		return Principal{}, failure.New(failure.Unauthorized, "invalid or revoked API key")
	}
	if err != nil {
		return Principal{}, err
	}
	a.mu.Lock()
	if a.listening {
		a.cache[hash] = entry{p: p, hash: hash, expires: now.Add(a.ttl)}
	}
	a.mu.Unlock()
	a.touch(p.KeyID, now)
	return p, nil
}

func (a *Authenticator) touch(keyID string, at time.Time) {
	a.usedMu.Lock()
	if at.After(a.used[keyID]) {
		a.used[keyID] = at
	}
	a.usedMu.Unlock()
}

// Forget drops a key from this process's cache at once (the revoking
// process calls it; others learn through NOTIFY).
func (a *Authenticator) Forget(keyID string) {
	a.mu.Lock()
	for h, e := range a.cache {
		if e.p.KeyID == keyID {
			delete(a.cache, h)
		}
	}
	a.mu.Unlock()
}

func (a *Authenticator) forgetPayload(payload string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case strings.HasPrefix(payload, "key:"):
		delete(a.cache, strings.TrimPrefix(payload, "key:"))
	case strings.HasPrefix(payload, "workspace:"):
		ws := strings.TrimPrefix(payload, "workspace:")
		for h, e := range a.cache {
			if e.p.WorkspaceID == ws {
				delete(a.cache, h)
			}
		}
	default:
		a.cache = map[string]entry{}
	}
}

// Listen keeps a LISTEN connection open and applies invalidations until ctx
// ends; while it is down the cache is off. It also flushes last-used times
// every few seconds.
func (a *Authenticator) Listen(ctx context.Context) error {
	go a.flushLoop(ctx)
	for {
		err := a.listenOnce(ctx)
		a.mu.Lock()
		a.listening = false
		a.cache = map[string]entry{}
		a.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("auth cache listener lost; cache off until it is back", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (a *Authenticator) listenOnce(ctx context.Context) error {
	conn, err := a.db.Dedicated(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	a.mu.Lock()
	a.cache = map[string]entry{}
	a.listening = true
	a.mu.Unlock()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		a.forgetPayload(n.Payload)
	}
}

func (a *Authenticator) flushLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = a.Flush(fctx)
			cancel()
			return
		case <-t.C:
			if err := a.Flush(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("flush api key last_used_at", "error", err)
			}
		}
	}
}

// Flush writes pending last-used times in one statement.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.usedMu.Lock()
	used := a.used
	a.used = map[string]time.Time{}
	a.usedMu.Unlock()
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	ats := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		ats = append(ats, at)
	}
	err := a.db.Do(ctx, func(ctx context.Context) error {
		_, err := a.db.Pool.Exec(ctx, `INSERT INTO api_key_usage (key_id, last_used_at)
			SELECT * FROM unnest($1::text[], $2::timestamptz[])
			ON CONFLICT (key_id) DO UPDATE SET last_used_at = GREATEST(api_key_usage.last_used_at, excluded.last_used_at)`, ids, ats)
		return err
	})
	if err != nil {
		a.usedMu.Lock()
		for id, at := range used {
			if at.After(a.used[id]) {
				a.used[id] = at
			}
		}
		a.usedMu.Unlock()
	}
	return err
}

// pendingUse returns an unflushed last-use time of this process.
func (a *Authenticator) pendingUse(keyID string) (time.Time, bool) {
	a.usedMu.Lock()
	defer a.usedMu.Unlock()
	t, ok := a.used[keyID]
	return t, ok
}
