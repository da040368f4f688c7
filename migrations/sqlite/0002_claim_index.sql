-- Claim order over ready jobs only: a claim reads the first rows instead of sorting all of them.
-- Its own migration so databases created before it get it too (SQLite claims name it).
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_at, id) WHERE status IN ('queued', 'failed');
