-- Read models of the ingestion API (issue 3). Every projected row keeps the
-- stream revision it reflects, so replaying an event already applied is a
-- no-op. All of it can be rebuilt from the event store, except the two
-- operational tables marked below.

-- Workspaces (projection "auth", from workspace-{id} streams).
CREATE TABLE IF NOT EXISTS workspaces (
    workspace_id text PRIMARY KEY,
    name         text        NOT NULL,
    event_limit  bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    revision     bigint      NOT NULL -- workspace stream revision applied
);

-- API keys (projection "auth"). Only the SHA-256 of the secret is stored.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id       text PRIMARY KEY,
    workspace_id text        NOT NULL,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    hash         text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    revision     bigint      NOT NULL -- workspace stream revision applied
);
CREATE INDEX IF NOT EXISTS api_keys_workspace ON api_keys (workspace_id, created_at, key_id);

-- Operational, not projected: when each key was last used, flushed by the
-- API processes every few seconds (not a write per request).
CREATE TABLE IF NOT EXISTS api_key_usage (
    key_id       text PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);

-- Contacts (projection "contacts", from contact-{id} streams). A deleted
-- contact keeps its row (deleted = true) so that its revision survives.
CREATE TABLE IF NOT EXISTS contacts (
    contact_id   text PRIMARY KEY,
    workspace_id text        NOT NULL,
    email        text        NOT NULL, -- as given
    email_lower  text        NOT NULL, -- identity
    first_name   text        NOT NULL DEFAULT '',
    last_name    text        NOT NULL DEFAULT '',
    properties   jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    revision     bigint      NOT NULL -- contact stream revision applied
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_workspace_email ON contacts (workspace_id, email_lower);

-- Monthly usage (projection "usage", from events-{ws}-{yyyymm} streams).
-- used = revision + 1 of the month's stream.
CREATE TABLE IF NOT EXISTS usage (
    workspace_id text        NOT NULL,
    period       text        NOT NULL, -- 'YYYY-MM', UTC
    used         bigint      NOT NULL,
    revision     bigint      NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, period)
);

-- Operational, not projected: Idempotency-Key records (kept 24 h). A
-- request claims its key (state 'pending', with a lease) before it
-- appends, and records its answer ('done') before it answers.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    workspace_id text        NOT NULL,
    key          text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('pending', 'done')),
    status       integer,
    body         bytea,
    lease_until  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);

-- Projected (projection "usage"): the stored events that carried an
-- Idempotency-Key, so a retry after a crash between the append and the
-- recording of the answer finds what was stored.
CREATE TABLE IF NOT EXISTS idempotent_events (
    workspace_id text NOT NULL,
    key          text NOT NULL,
    event_id     text NOT NULL,
    idx          integer NOT NULL, -- position of the event in its request
    PRIMARY KEY (workspace_id, key, idx)
);
