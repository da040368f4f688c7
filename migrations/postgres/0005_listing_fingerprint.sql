-- What a profile's discovery listing showed at its last full scrape (a hash of the Account
-- entity: bio, fields, counts, last post date; volatile URLs excluded) and when that scrape ran.
-- A re-crawl whose listing still shows the same account only moves last_seen, without fetching
-- the profile again, while the scrape is younger than the platform's listing_trust_secs.
ALTER TABLE profiles_raw ADD COLUMN IF NOT EXISTS account_hash TEXT;
ALTER TABLE profiles_raw ADD COLUMN IF NOT EXISTS scraped_at BIGINT;
