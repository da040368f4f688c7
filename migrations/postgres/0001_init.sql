-- Omni schema, PostgreSQL dialect. Timestamps are unix milliseconds; JSON is text; flags are 0/1.
CREATE TABLE IF NOT EXISTS campaigns (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    spec TEXT NOT NULL,
    compiled_where TEXT NOT NULL,
    compiled_params TEXT NOT NULL,
    criteria_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_status ON campaigns (status);

CREATE TABLE IF NOT EXISTS profiles_raw (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    external_id TEXT NOT NULL,
    handle TEXT NOT NULL,
    payload TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    last_changed BIGINT NOT NULL,
    fetch_error TEXT,
    UNIQUE (platform, external_id)
);
CREATE INDEX IF NOT EXISTS profiles_raw_handle ON profiles_raw (platform, handle);

CREATE TABLE IF NOT EXISTS profile_features (
    profile_id BIGINT PRIMARY KEY REFERENCES profiles_raw (id) ON DELETE CASCADE,
    feature_version BIGINT NOT NULL,
    followers BIGINT NOT NULL,
    log_followers DOUBLE PRECISION NOT NULL DEFAULT 0,
    following BIGINT NOT NULL,
    posts_count BIGINT NOT NULL,
    engagement_rate DOUBLE PRECISION NOT NULL,
    avg_likes DOUBLE PRECISION NOT NULL,
    avg_comments DOUBLE PRECISION NOT NULL,
    posts_per_week DOUBLE PRECISION NOT NULL,
    last_post_at BIGINT,
    account_age_days BIGINT NOT NULL,
    language TEXT,
    is_bot BIGINT NOT NULL,
    has_link BIGINT NOT NULL,
    has_email BIGINT NOT NULL,
    text TEXT NOT NULL,
    image_keys TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS campaign_candidates (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    profile_id BIGINT NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    criteria_hash TEXT NOT NULL,
    cheap_score DOUBLE PRECISION NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, profile_id)
);
CREATE INDEX IF NOT EXISTS campaign_candidates_score ON campaign_candidates (campaign_id, cheap_score DESC);
CREATE INDEX IF NOT EXISTS campaign_candidates_profile ON campaign_candidates (profile_id);

CREATE TABLE IF NOT EXISTS llm_scores (
    id BIGSERIAL PRIMARY KEY,
    profile_id BIGINT NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    profile_hash TEXT NOT NULL,
    criteria_hash TEXT NOT NULL,
    campaign_id BIGINT REFERENCES campaigns (id) ON DELETE SET NULL,
    model TEXT NOT NULL,
    score BIGINT NOT NULL,
    qualified BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    red_flags TEXT NOT NULL,
    opener TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    UNIQUE (profile_hash, criteria_hash)
);
CREATE INDEX IF NOT EXISTS llm_scores_profile ON llm_scores (profile_id);
CREATE INDEX IF NOT EXISTS llm_scores_campaign_day ON llm_scores (campaign_id, created_at);

CREATE TABLE IF NOT EXISTS leads (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    profile_id BIGINT NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE,
    llm_score_id BIGINT REFERENCES llm_scores (id) ON DELETE SET NULL,
    score BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (campaign_id, profile_id)
);
CREATE INDEX IF NOT EXISTS leads_campaign_status ON leads (campaign_id, status, score DESC);
CREATE INDEX IF NOT EXISTS leads_profile ON leads (profile_id);
-- The console's Leads view sorted by score (all campaigns, or one): a window reads its rows in order.
CREATE INDEX IF NOT EXISTS leads_campaign_score ON leads (campaign_id, score, id);
CREATE INDEX IF NOT EXISTS leads_score ON leads (score, id);

CREATE TABLE IF NOT EXISTS accounts (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    token_env TEXT NOT NULL,
    daily_cap BIGINT NOT NULL,
    hourly_cap BIGINT NOT NULL,
    min_gap_secs BIGINT NOT NULL,
    jitter_secs BIGINT NOT NULL,
    quiet_hours TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    warmup_days BIGINT NOT NULL DEFAULT 0,
    paused_until BIGINT,
    pause_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (platform, handle)
);

CREATE TABLE IF NOT EXISTS dm_batches (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'draft',
    created_at BIGINT NOT NULL,
    approved_at BIGINT
);
CREATE INDEX IF NOT EXISTS dm_batches_campaign ON dm_batches (campaign_id);

CREATE TABLE IF NOT EXISTS messages (
    id BIGSERIAL PRIMARY KEY,
    lead_id BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    batch_id BIGINT NOT NULL REFERENCES dm_batches (id) ON DELETE CASCADE,
    account_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    idempotency_key TEXT NOT NULL UNIQUE,
    platform_message_id TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    not_before BIGINT,
    sent_at BIGINT
);
CREATE INDEX IF NOT EXISTS messages_batch ON messages (batch_id);
CREATE INDEX IF NOT EXISTS messages_lead ON messages (lead_id);
CREATE INDEX IF NOT EXISTS messages_account_sent ON messages (account_id, sent_at);

CREATE TABLE IF NOT EXISTS feedback_events (
    id BIGSERIAL PRIMARY KEY,
    platform_event_id TEXT NOT NULL UNIQUE,
    message_id BIGINT REFERENCES messages (id) ON DELETE SET NULL,
    lead_id BIGINT REFERENCES leads (id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    body TEXT,
    occurred_at BIGINT NOT NULL,
    ingested_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_events_lead ON feedback_events (lead_id);

CREATE TABLE IF NOT EXISTS campaign_weights (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    weights TEXT NOT NULL,
    intercept DOUBLE PRECISION NOT NULL,
    feature_means TEXT NOT NULL,
    feature_stds TEXT NOT NULL,
    n_samples BIGINT NOT NULL,
    auc DOUBLE PRECISION,
    trained_at BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

CREATE TABLE IF NOT EXISTS do_not_contact (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    external_id TEXT,
    reason TEXT,
    added_at BIGINT NOT NULL,
    UNIQUE (platform, handle)
);

CREATE TABLE IF NOT EXISTS jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    priority BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 5,
    lease_token BIGINT,
    lease_until BIGINT,
    worker_id TEXT,
    unique_key TEXT UNIQUE,
    keep_unique BIGINT NOT NULL DEFAULT 1,
    progress BIGINT NOT NULL DEFAULT 0,
    progress_message TEXT,
    result TEXT,
    error TEXT,
    campaign_id BIGINT,
    root_id BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (status, kind, priority, run_at, id);
-- Claim order over ready jobs only: a claim reads the first rows instead of sorting all of them.
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_at, id) WHERE status IN ('queued', 'failed');
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_campaign ON jobs (campaign_id);
CREATE INDEX IF NOT EXISTS jobs_root ON jobs (root_id, status);

CREATE TABLE IF NOT EXISTS queue_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    lease_seq BIGINT NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS job_lease_seq;

CREATE TABLE IF NOT EXISTS engine_nodes (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
