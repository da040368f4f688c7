-- Incremental candidate maintenance in batches (DESIGN §6). A scrape records the profile it changed
-- in `candidates_pending` inside its own transaction, under the batch of a `candidates.pending` job
-- (one open batch per job tree); the job re-evaluates its whole batch with set-based SQL.
-- `started` closes a batch: once its job runs, scrapes open a new batch (and job) instead.
CREATE TABLE IF NOT EXISTS candidates_batches (
    job_id INTEGER PRIMARY KEY,
    root_key INTEGER NOT NULL,
    started INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS candidates_batches_open ON candidates_batches (root_key, started);
CREATE TABLE IF NOT EXISTS candidates_pending (
    job_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, profile_id)
);
