-- Base schema: projection checkpoints. Every projection stores the $all
-- position it has applied up to, in the same transaction as its rows.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name             text PRIMARY KEY,
    commit_position  numeric(20,0) NOT NULL,
    prepare_position numeric(20,0) NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
