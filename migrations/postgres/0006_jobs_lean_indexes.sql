-- Fewer index entries per job state change. A claim or a completion changes `status`, which every
-- old index on `jobs` keyed or filtered on, so no such update is HOT and PostgreSQL inserted a new
-- entry into all seven indexes on each of them (enqueue + claim + complete: 19 index insertions).
-- Partial indexes take an entry only from rows that match their predicate: with the set below a
-- job costs 5 (enqueue: pkey + jobs_claim; claim: pkey + jobs_running; complete: pkey).
--
-- jobs_ready (status, kind, priority, run_at, id) served claims before jobs_claim (0002) and is
-- unused since; jobs_lease (status, lease_until) is replaced by a partial index over running jobs
-- (the rescue sweep's only question).
DROP INDEX IF EXISTS jobs_ready;
DROP INDEX IF EXISTS jobs_lease;
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (lease_until) WHERE status = 'running';
-- Jobs that ended badly, for the console's and `omni jobs --status` filters (rare, off the hot path;
-- queued/failed are in jobs_claim, running in jobs_running, succeeded is most rows).
CREATE INDEX IF NOT EXISTS jobs_unsuccessful ON jobs (status, id) WHERE status IN ('dead', 'cancelled');
-- Most jobs have no campaign, root or unique key: index only those that do. Queries ask
-- `campaign_id = $1`, `root_id = $1` and `unique_key = $1`, which imply IS NOT NULL.
DROP INDEX IF EXISTS jobs_campaign;
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs (campaign_id) WHERE campaign_id IS NOT NULL;
DROP INDEX IF EXISTS jobs_root;
CREATE INDEX IF NOT EXISTS jobs_root ON jobs (root_id, status) WHERE root_id IS NOT NULL;
-- The UNIQUE constraint's index holds every NULL key too; enqueue's ON CONFLICT names the predicate.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_unique_key_key;
