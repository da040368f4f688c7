-- Fewer and narrower indexes on `jobs`: every claim and completion changes `status` and so rewrites
-- each index that holds it. jobs_ready (status, kind, priority, run_at, id) served claims before
-- jobs_claim (0002) and is unused since; jobs_lease (status, lease_until) becomes a partial index
-- over running jobs (the rescue sweep's only question). A narrow (status, id) index stays for
-- status filters (the console binds the status, and SQLite cannot match a bound value to a
-- partial index's predicate). The UNIQUE constraint on unique_key cannot be dropped without
-- rebuilding the table; SQLite's writes are cheap enough here that it stays.
DROP INDEX IF EXISTS jobs_ready;
DROP INDEX IF EXISTS jobs_lease;
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
DROP INDEX IF EXISTS jobs_campaign;
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs (campaign_id) WHERE campaign_id IS NOT NULL;
DROP INDEX IF EXISTS jobs_root;
CREATE INDEX IF NOT EXISTS jobs_root ON jobs (root_id, status) WHERE root_id IS NOT NULL;
