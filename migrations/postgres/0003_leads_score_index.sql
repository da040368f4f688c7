-- The console's Leads view sorted by score (all campaigns, or one): a window reads its rows in
-- order. Ascending: the console orders by `score DIR, id DIR` in one direction, which an ascending
-- index serves forwards and backwards.
CREATE INDEX IF NOT EXISTS leads_campaign_score ON leads (campaign_id, score, id);
CREATE INDEX IF NOT EXISTS leads_score ON leads (score, id);
