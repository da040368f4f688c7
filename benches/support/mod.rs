//! Shared by the bench binaries (included with `#[path]`): timing helpers, peak RSS, the
//! PostgreSQL URL, and a fast generator of synthetic profiles for the large-table benches.
#![allow(dead_code)] // each bench binary uses a different subset

use omni::config::Config;
use omni::db::Db;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::platforms::{PlatformConfig, PlatformKind};
use omni::engine::queue::NewJob;
use omni::engine::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The process's peak resident set (VmHWM from /proc/self/status), in MiB.
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

/// The process's current resident set (VmRSS), in MiB.
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The median of `xs` (sorted in place); 0 for an empty slice.
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// The PostgreSQL URL to bench against, if one is set.
pub fn pg_url() -> Option<String> {
    std::env::var("OMNI_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("OMNI_TEST_DATABASE_URL"))
        .ok()
}

/// True when run as `cargo bench` (full size); false under `cargo test` (smoke pass).
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Connects, migrates and (on PostgreSQL, which outlives the run) empties every table the benches fill.
pub async fn fresh_db(url: &str, max_connections: u32) -> Db {
    let db = Db::connect(url, max_connections).await.expect("connect");
    db.migrate().await.expect("migrate");
    if url.starts_with("postgres") {
        sqlx::raw_sql(
            "TRUNCATE jobs, campaign_candidates, leads, llm_scores, profile_features, profiles_raw, campaigns, \
             campaign_weights, do_not_contact RESTART IDENTITY CASCADE",
        )
        .execute(db.pool())
        .await
        .expect("truncate");
    }
    db
}

/// Words synthetic bios and captions are drawn from (campaign keywords hit some of them).
pub const VOCAB: &[&str] = &[
    "food",
    "recipe",
    "cook",
    "vegan",
    "baking",
    "bread",
    "coffee",
    "tea",
    "travel",
    "hiking",
    "mountains",
    "beach",
    "photo",
    "camera",
    "art",
    "painting",
    "design",
    "music",
    "guitar",
    "piano",
    "fitness",
    "yoga",
    "running",
    "cycling",
    "books",
    "reading",
    "poetry",
    "garden",
    "plants",
    "tech",
    "rust",
    "code",
    "gaming",
    "film",
    "fashion",
    "style",
    "beauty",
    "pets",
    "dogs",
    "cats",
    "kids",
    "family",
    "science",
    "space",
    "history",
    "cars",
    "football",
    "tennis",
    "wine",
    "beer",
    "crafts",
    "knitting",
    "ceramics",
    "pottery",
    "home",
    "diy",
    "nature",
    "birds",
    "ocean",
    "city",
    "life",
    "daily",
    "love",
    "weekend",
    "friends",
    "new",
    "today",
    "morning",
    "sunset",
    "local",
];

const LANGS: &[&str] = &["en", "en", "en", "de", "fr", "es", "pt", "it", "ja", "nl"];

/// Inserts `n` synthetic profiles (`profiles_raw` then `profile_features`, ids 1..=n) in one
/// transaction with multi-row INSERTs. Deterministic for a given `seed`. Returns the seconds taken.
///
/// Values are written as SQL literals, not bound: every value is generated here (numbers, hex,
/// words from [`VOCAB`]), and sqlx's `Any` driver spent ~250 µs per row binding 21 parameters.
pub async fn seed_profiles(db: &Db, n: usize, seed: u64, now: i64) -> f64 {
    let t = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tx = db.begin_write().await.expect("begin");
    const CHUNK: usize = 1_000;
    let mut id = 0usize;
    while id < n {
        let rows = CHUNK.min(n - id);
        let mut raw = Vec::with_capacity(rows);
        let mut feat = Vec::with_capacity(rows);
        for _ in 0..rows {
            id += 1;
            raw.push(format!(
                "({id}, 'sandbox', '{id}', 'user{id}', '{{}}', '{:016x}', {now}, {now}, {})",
                rng.gen::<u64>(),
                now - rng.gen_range(0..90i64) * 86_400_000
            ));
            // Heavy-tailed audience (median ≈ 400), like the sandbox's.
            let followers =
                (rng.gen::<f64>().powi(4) * 200_000.0 + rng.gen_range(0.0..800.0)) as i64;
            let words: Vec<&str> = (0..rng.gen_range(8..20))
                .map(|_| VOCAB[rng.gen_range(0..VOCAB.len())])
                .collect();
            let last_post = if rng.gen_bool(0.9) {
                (now - rng.gen_range(0..200i64) * 86_400_000).to_string()
            } else {
                "NULL".to_string()
            };
            feat.push(format!(
                "({id}, 1, {followers}, {:.6}, {}, {}, {:.6}, {:.3}, {:.3}, {:.3}, {last_post}, {}, '{}', {}, {}, {}, '{}', '[]', {now})",
                ((followers + 1) as f64).ln(),
                rng.gen_range(0..3_000),
                rng.gen_range(0..2_000),
                rng.gen_range(0.0..0.12),
                rng.gen_range(0.0..500.0),
                rng.gen_range(0.0..40.0),
                rng.gen_range(0.0..14.0),
                rng.gen_range(1..4_000),
                LANGS[rng.gen_range(0..LANGS.len())],
                rng.gen_bool(0.03) as i64,
                rng.gen_bool(0.4) as i64,
                rng.gen_bool(0.1) as i64,
                words.join(" "),
            ));
        }
        let sql = format!(
            "INSERT INTO profiles_raw (id, platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) VALUES {}",
            raw.join(", ")
        );
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert profiles_raw");
        let sql = format!(
            "INSERT INTO profile_features (profile_id, feature_version, followers, log_followers, following, posts_count, \
             engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, \
             has_link, has_email, text, image_keys, updated_at) VALUES {}",
            feat.join(", ")
        );
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert profile_features");
    }
    tx.commit().await.expect("commit");
    // What the scrapes that stored these profiles would have done: write the search index
    // (SQLite writes it in bulk; a no-op on PostgreSQL).
    omni::db::profiles::index_search(db, 1)
        .await
        .expect("search index");
    if db.dialect() == omni::db::Dialect::Postgres {
        // Explicit ids skipped the sequence; later inserts must not collide. (Autovacuum would
        // analyze a fresh 1M-row table within a minute; do it now so runs are repeatable.)
        sqlx::raw_sql(
            "SELECT setval('profiles_raw_id_seq', (SELECT MAX(id) FROM profiles_raw)); ANALYZE",
        )
        .execute(db.pool())
        .await
        .expect("setval");
    }
    // SQLite gets no ANALYZE: the engine never runs one, so plans here are the ones users get.
    t.elapsed().as_secs_f64()
}

/// Ten campaign files of different selectivity (keywords, audience size, language, activity, `where`).
pub fn campaign_files() -> Vec<String> {
    let filters = [
        r#"keywords_any = ["food", "recipe", "cook"]
followers = { min = 100 }"#,
        r#"keywords_any = ["vegan", "baking"]
languages = ["en", "de"]"#,
        r#"keywords_any = ["travel", "hiking", "mountains"]
followers = { min = 1000, max = 100000 }"#,
        r#"keywords_any = ["photo", "camera"]
active_within_days = 30"#,
        r#"keywords_any = ["yoga", "fitness", "running"]
engagement_rate = { min = 0.02 }
exclude_bots = true"#,
        r#"keywords_any = ["rust", "code", "tech"]
where = "posts_per_week >= 1 and not has_email""#,
        r#"keywords_any = ["garden", "plants"]
keywords_none = ["giveaway"]"#,
        r#"keywords_any = ["ceramics", "pottery", "crafts", "knitting"]
followers = { min = 500 }"#,
        r#"languages = ["fr", "es", "it"]
followers = { min = 10000 }"#,
        r#"keywords_any = ["coffee", "tea", "wine"]
where = "followers >= 2k and language in (\"en\", \"nl\")""#,
    ];
    filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                r#"name = "Bench campaign {i}"
platform = "sandbox"
brief = "Creators who fit campaign {i}; not brands."
[filter]
{f}
[qualify]
shortlist_k = 1000
threshold = 60
daily_llm_calls = 100000
[outreach]
template = "Hi {{{{ display_name }}}}! {{{{ opener }}}}"
accounts = ["omni"]
"#
            )
        })
        .collect()
}

/// Turns every cron schedule off, so nothing but the bench's own work runs.
pub fn schedules_off(c: &mut Config) {
    c.schedule.qualify = "off".into();
    c.schedule.feedback_sweep = "off".into();
    c.schedule.weights_update = "off".into();
    c.schedule.candidates_maintain = "off".into();
}

/// A config for benches that only read and write the database: `url`, objects under `storage`, a
/// `sandbox` platform that is never called (port 9), no LLM, no schedules.
pub fn offline_config(url: &str, storage: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.database.url = url.to_string();
    c.storage.path = storage.to_path_buf();
    c.platforms = vec![PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        "http://127.0.0.1:9",
    )];
    c.llm = LlmConfig {
        provider: ProviderKind::None,
        ..LlmConfig::default()
    };
    schedules_off(&mut c);
    c
}

/// Enqueues `job` and waits (polling every `poll_ms`) until its whole job tree has finished,
/// asserting that nothing in it ended dead; returns the seconds taken.
pub async fn run_tree(engine: &Engine, job: NewJob, poll_ms: u64) -> f64 {
    let t = std::time::Instant::now();
    let root = engine.enqueue(job).await.expect("enqueue").id;
    loop {
        let c = engine.job_tree(root).await.expect("tree");
        if c.unfinished == 0 {
            assert_eq!(c.dead, 0, "dead jobs in the tree: {c:?}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(poll_ms)).await;
    }
    t.elapsed().as_secs_f64()
}

/// One integer from `sql` (a COUNT, a SUM) on the engine's database.
pub async fn scalar(engine: &Engine, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(engine.db().pool())
        .await
        .expect("scalar")
}
