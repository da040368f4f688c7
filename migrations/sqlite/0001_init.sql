-- Omni schema, SQLite dialect. Timestamps are unix milliseconds; JSON is text; flags are 0/1.
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    spec TEXT NOT NULL,
    compiled_where TEXT NOT NULL,
    compiled_params TEXT NOT NULL,
    criteria_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_status ON campaigns (status);

CREATE TABLE IF NOT EXISTS profiles_raw (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    external_id TEXT NOT NULL,
    handle TEXT NOT NULL,
    payload TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    last_changed INTEGER NOT NULL,
    fetch_error TEXT,
    UNIQUE (platform, external_id)
);
CREATE INDEX IF NOT EXISTS profiles_raw_handle ON profiles_raw (platform, handle);

CREATE TABLE IF NOT EXISTS profile_features (
    profile_id INTEGER PRIMARY KEY REFERENCES profiles_raw (id) ON DELETE CASCADE,
    feature_version INTEGER NOT NULL,
    followers INTEGER NOT NULL,
    log_followers REAL NOT NULL DEFAULT 0,
    following INTEGER NOT NULL,
    posts_count INTEGER NOT NULL,
    engagement_rate REAL NOT NULL,
    avg_likes REAL NOT NULL,
    avg_comments REAL NOT NULL,
    posts_per_week REAL NOT NULL,
    last_post_at INTEGER,
    account_age_days INTEGER NOT NULL,
    language TEXT,
    is_bot INTEGER NOT NULL,
    has_link INTEGER NOT NULL,
    has_email INTEGER NOT NULL,
    text TEXT NOT NULL,
    image_keys TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_candidates (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    profile_id INTEGER NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    criteria_hash TEXT NOT NULL,
    cheap_score REAL NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, profile_id)
);
CREATE INDEX IF NOT EXISTS campaign_candidates_score ON campaign_candidates (campaign_id, cheap_score DESC);
CREATE INDEX IF NOT EXISTS campaign_candidates_profile ON campaign_candidates (profile_id);

CREATE TABLE IF NOT EXISTS llm_scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_id INTEGER NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    profile_hash TEXT NOT NULL,
    criteria_hash TEXT NOT NULL,
    campaign_id INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    model TEXT NOT NULL,
    score INTEGER NOT NULL,
    qualified INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    red_flags TEXT NOT NULL,
    opener TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    created_at INTEGER NOT NULL,
    UNIQUE (profile_hash, criteria_hash)
);
CREATE INDEX IF NOT EXISTS llm_scores_profile ON llm_scores (profile_id);
CREATE INDEX IF NOT EXISTS llm_scores_campaign_day ON llm_scores (campaign_id, created_at);

CREATE TABLE IF NOT EXISTS leads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    profile_id INTEGER NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    llm_score_id INTEGER REFERENCES llm_scores (id) ON DELETE SET NULL,
    score INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (campaign_id, profile_id)
);
CREATE INDEX IF NOT EXISTS leads_campaign_status ON leads (campaign_id, status, score DESC);
CREATE INDEX IF NOT EXISTS leads_profile ON leads (profile_id);
-- The console's Leads view sorted by score (all campaigns, or one): a window reads its rows in order.
CREATE INDEX IF NOT EXISTS leads_campaign_score ON leads (campaign_id, score, id);
CREATE INDEX IF NOT EXISTS leads_score ON leads (score, id);

CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    token_env TEXT NOT NULL,
    daily_cap INTEGER NOT NULL,
    hourly_cap INTEGER NOT NULL,
    min_gap_secs INTEGER NOT NULL,
    jitter_secs INTEGER NOT NULL,
    quiet_hours TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    warmup_days INTEGER NOT NULL DEFAULT 0,
    paused_until INTEGER,
    pause_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (platform, handle)
);

CREATE TABLE IF NOT EXISTS dm_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'draft',
    created_at INTEGER NOT NULL,
    approved_at INTEGER
);
CREATE INDEX IF NOT EXISTS dm_batches_campaign ON dm_batches (campaign_id);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    batch_id INTEGER NOT NULL REFERENCES dm_batches (id) ON DELETE CASCADE,
    account_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    idempotency_key TEXT NOT NULL UNIQUE,
    platform_message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    not_before INTEGER,
    sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS messages_batch ON messages (batch_id);
CREATE INDEX IF NOT EXISTS messages_lead ON messages (lead_id);
CREATE INDEX IF NOT EXISTS messages_account_sent ON messages (account_id, sent_at);

CREATE TABLE IF NOT EXISTS feedback_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform_event_id TEXT NOT NULL UNIQUE,
    message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    lead_id INTEGER REFERENCES leads (id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    body TEXT,
    occurred_at INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_events_lead ON feedback_events (lead_id);

CREATE TABLE IF NOT EXISTS campaign_weights (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    weights TEXT NOT NULL,
    intercept REAL NOT NULL,
    feature_means TEXT NOT NULL,
    feature_stds TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    auc REAL,
    trained_at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

CREATE TABLE IF NOT EXISTS do_not_contact (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    external_id TEXT,
    reason TEXT,
    added_at INTEGER NOT NULL,
    UNIQUE (platform, handle)
);

CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    priority INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    lease_token INTEGER,
    lease_until INTEGER,
    worker_id TEXT,
    unique_key TEXT UNIQUE,
    keep_unique INTEGER NOT NULL DEFAULT 1,
    progress INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    result TEXT,
    error TEXT,
    campaign_id INTEGER,
    root_id INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (status, kind, priority, run_at, id);
-- Claim order over ready jobs only: a claim reads the first rows instead of sorting all of them.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_at, id) WHERE status IN ('queued', 'failed');
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs (campaign_id);
CREATE INDEX IF NOT EXISTS jobs_root ON jobs (root_id, status);

CREATE TABLE IF NOT EXISTS queue_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lease_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO queue_state (id, lease_seq) VALUES (1, 0);

CREATE TABLE IF NOT EXISTS engine_nodes (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
