-- The search index (`profile_search`, migrations 0007 and 0009) without token positions or column
-- sizes. A filter is a substring check: the index only has to find the rows holding every trigram
-- of the needle (`browse::search_trigrams`), and the filter checks the substring on those rows.
-- Positions made up most of the index and most of the cost of writing it: with them a new profile
-- cost ≈ 276 µs of indexing, without them ≈ 115 µs (BENCHMARKS.md §2, "2026-12-06"), and the index
-- is 78 MB instead of 212 MB at 18,000 profiles. The triggers of 0009 refer to the table by name and stay as they are.
DROP TABLE IF EXISTS profile_search;

CREATE VIRTUAL TABLE profile_search USING fts5(
    handle, text, tokenize = 'trigram', detail = 'none', columnsize = 0
);

-- Every stored profile, indexed now; nothing is left waiting.
INSERT INTO profile_search (rowid, handle, text)
    SELECT f.profile_id, p.handle, f.text FROM profile_features f JOIN profiles_raw p ON p.id = f.profile_id;
DELETE FROM search_pending;
