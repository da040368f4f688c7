-- Candidate rows become narrow and clustered by campaign, with no score index.
--
-- Incremental maintenance rewrites the score of every candidate row of a changed profile. With a
-- rowid table, a 64-character criteria hash on every row and a (campaign_id, cheap_score) index,
-- each rewrite dirtied a table page and two random index pages: on 1M profiles × 10 campaigns,
-- rewriting the scores of the ≈ 54,000 rows of 20,000 changed profiles took 2.0 s plus 1.0 s of
-- commit. The same rows in this layout take 0.37 s plus 0.31 s (BENCHMARKS.md §3, "narrow rows").
--
-- - WITHOUT ROWID, keyed (campaign_id, profile_id): a campaign's rows are contiguous, so a
--   shortlist or a score-sorted listing reads them in one range scan and keeps the top rows.
-- - No criteria hash per row: a row means "matches the campaign's current predicate with this
--   score"; verdicts are looked up under the campaign's current criteria hash.
-- - No score index: every score change moved an entry in it. The score order is a top-N sort
--   over the campaign's range (≈ 60 ms for a 480,000-row campaign).
CREATE TABLE campaign_candidates_v2 (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    profile_id INTEGER NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    cheap_score REAL NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, profile_id)
) WITHOUT ROWID;

INSERT INTO campaign_candidates_v2 (campaign_id, profile_id, cheap_score, added_at)
    SELECT campaign_id, profile_id, cheap_score, added_at FROM campaign_candidates
    ORDER BY campaign_id, profile_id;

DROP TABLE campaign_candidates;
ALTER TABLE campaign_candidates_v2 RENAME TO campaign_candidates;
CREATE INDEX campaign_candidates_profile ON campaign_candidates (profile_id);
