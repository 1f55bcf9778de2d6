-- Read models of automations and their runs (issue 4). Everything here is
-- projected from the event store and can be rebuilt from it; rows keep the
-- stream revision they reflect.

-- Automations (projection "automations", from automation-{id} streams): the
-- current version of each automation.
CREATE TABLE IF NOT EXISTS automations (
    automation_id      text PRIMARY KEY,
    workspace_id       text        NOT NULL,
    name               text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('draft', 'active', 'paused')),
    version            integer     NOT NULL,
    trigger_event_name text        NOT NULL,
    definition         jsonb       NOT NULL, -- the current version's definition as accepted
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    revision           bigint      NOT NULL  -- automation stream revision applied
);
CREATE INDEX IF NOT EXISTS automations_workspace ON automations (workspace_id, created_at, automation_id);

-- Every version of every automation (projection "automations").
CREATE TABLE IF NOT EXISTS automation_versions (
    automation_id text        NOT NULL,
    version       integer     NOT NULL,
    workspace_id  text        NOT NULL,
    definition    jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (automation_id, version)
);

-- The process manager's own view of automations ("run-manager", written in
-- the same transaction as its checkpoint, so it is exactly the state of
-- history at the position the manager has reached). Not for analysts.
CREATE TABLE IF NOT EXISTS run_manager_automations (
    automation_id      text    PRIMARY KEY,
    workspace_id       text    NOT NULL,
    trigger_event_name text    NOT NULL,
    status             text    NOT NULL,
    version            integer NOT NULL,
    definition         jsonb   NOT NULL,
    revision           bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS run_manager_automations_trigger
    ON run_manager_automations (workspace_id, trigger_event_name) WHERE status = 'active';

-- Automation runs (projection "runs", from run-{id} streams).
CREATE TABLE IF NOT EXISTS automation_runs (
    run_id             text PRIMARY KEY,
    workspace_id       text        NOT NULL,
    automation_id      text        NOT NULL,
    automation_version integer     NOT NULL,
    contact_id         text        NOT NULL,
    email              text        NOT NULL, -- the contact's address as stored
    email_lower        text        NOT NULL,
    trigger_event_id   text        NOT NULL,
    trigger_event_name text        NOT NULL,
    trigger            jsonb       NOT NULL, -- {event_id, event_name, properties, received_at}
    status             text        NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed')),
    current_node       text        NOT NULL DEFAULT '',
    failure_reason     text        NOT NULL DEFAULT '',
    started_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    ended_at           timestamptz,
    steps              integer     NOT NULL, -- events in the run stream
    revision           bigint      NOT NULL  -- run stream revision applied
);
CREATE INDEX IF NOT EXISTS automation_runs_list ON automation_runs (workspace_id, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS automation_runs_automation ON automation_runs (workspace_id, automation_id, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS automation_runs_email ON automation_runs (workspace_id, email_lower, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS automation_runs_trigger ON automation_runs (trigger_event_id);

-- Every event of every run, in order (projection "runs"). data is the
-- event's payload (RunStarted's is trimmed of the definition).
CREATE TABLE IF NOT EXISTS automation_run_steps (
    run_id   text        NOT NULL,
    seq      integer     NOT NULL, -- run stream revision
    type     text        NOT NULL,
    node     text        NOT NULL DEFAULT '',
    at       timestamptz,
    data     jsonb       NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Work queues derived from run history (projection "runs"): emails queued
-- and not yet recorded as sent or finally failed, and pending delays.
CREATE TABLE IF NOT EXISTS run_email_outbox (
    message_id      text PRIMARY KEY,
    run_id          text        NOT NULL,
    workspace_id    text        NOT NULL,
    node            text        NOT NULL,
    attempt         integer     NOT NULL, -- the attempt the run waits for
    next_attempt_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS run_email_outbox_due ON run_email_outbox (next_attempt_at);

CREATE TABLE IF NOT EXISTS run_timers (
    run_id       text        NOT NULL,
    node         text        NOT NULL,
    workspace_id text        NOT NULL,
    due          timestamptz NOT NULL,
    PRIMARY KEY (run_id, node)
);
CREATE INDEX IF NOT EXISTS run_timers_due ON run_timers (due);
