-- Read model of stored custom events (issue 5, projection "events", from
-- events-{ws}-{yyyymm} streams): where each event is in the event store, so
-- GET /v1/events/{id}, explain and `lark explain event ID` find it (and its
-- workspace) from its global id. Projected: rebuilt by `lark replay`.
CREATE TABLE IF NOT EXISTS events (
    event_id         text PRIMARY KEY,
    workspace_id     text          NOT NULL,
    stream           text          NOT NULL, -- events-{ws}-{yyyymm}
    revision         bigint        NOT NULL, -- the event's revision in that stream
    commit_position  numeric(20,0) NOT NULL, -- its $all position
    prepare_position numeric(20,0) NOT NULL,
    email            text          NOT NULL, -- as sent
    email_lower      text          NOT NULL,
    event_name       text          NOT NULL,
    properties       jsonb         NOT NULL,
    received_at      timestamptz   NOT NULL
);
CREATE INDEX IF NOT EXISTS events_workspace ON events (workspace_id, received_at DESC, event_id DESC);
