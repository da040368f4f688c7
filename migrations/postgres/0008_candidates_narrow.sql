-- Candidate rows lose their criteria hash and the score index (see the SQLite migration of the
-- same name). On PostgreSQL, with no index on cheap_score, a score rewrite is a heap-only (HOT)
-- update: no index entry moves, provided the row's page has room. The fill factor leaves that room
-- on pages written from now on; pages already full get it only when the table is rewritten
-- (VACUUM FULL or CLUSTER, which lock the table: an operator's choice, not this migration's).
DROP INDEX IF EXISTS campaign_candidates_score;
ALTER TABLE campaign_candidates DROP COLUMN criteria_hash;
ALTER TABLE campaign_candidates SET (fillfactor = 80);
