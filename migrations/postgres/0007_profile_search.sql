-- Substring search over a profile's handle and text (the console's `/` filter on Candidates and
-- Leads): trigram GIN indexes serve `LOWER(col) LIKE '%…%'` from the index. pg_trgm ships with
-- PostgreSQL (contrib) and is a trusted extension (a database owner may create it). Where it is
-- not installed the filter still works, by scanning, so its absence is not an error.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX IF NOT EXISTS profile_features_text_trgm ON profile_features USING gin (LOWER(text) gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS profiles_raw_handle_trgm ON profiles_raw USING gin (LOWER(handle) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%): the console filter will scan', SQLERRM;
END
$$;
