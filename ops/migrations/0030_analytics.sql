-- Indexes for the HTTP analytics (SPEC §2.7, projections/analytics). No
-- new tables: analytics read the events and runs read models.

-- GET /v1/analytics/events: counts per UTC day and name over a range of
-- received_at. Covering, so the count is an index-only scan that never
-- visits the rows (and their properties); the event_name filter is applied
-- on the index tuples.
CREATE INDEX IF NOT EXISTS events_analytics ON events (workspace_id, received_at, event_name);

-- GET /v1/analytics/automations/{id}: runs by status, index-only.
CREATE INDEX IF NOT EXISTS automation_runs_status ON automation_runs (workspace_id, automation_id, status);
