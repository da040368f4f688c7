-- Candidate rows lose their criteria hash and the score index (see the SQLite migration of the
-- same name). On PostgreSQL, with no index on cheap_score, a score rewrite is a heap-only (HOT)
-- update: no index entry moves. The fill factor leaves room on each page for those updates.
DROP INDEX IF EXISTS campaign_candidates_score;
ALTER TABLE campaign_candidates DROP COLUMN criteria_hash;
ALTER TABLE campaign_candidates SET (fillfactor = 80);
