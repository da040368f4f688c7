//! Shared by the bench binaries (included with `#[path]`): timing helpers, peak RSS, the
//! PostgreSQL URL, and a fast generator of synthetic profiles for the large-table benches.
#![allow(dead_code)] // each bench binary uses a different subset

use omni::db::{Db, SqlValue};
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
pub async fn seed_profiles(db: &Db, n: usize, seed: u64, now: i64) -> f64 {
    let t = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tx = db.begin_write().await.expect("begin");
    const CHUNK: usize = 500;
    let mut id = 0usize;
    while id < n {
        let rows = CHUNK.min(n - id);
        let mut raw: Vec<SqlValue> = Vec::with_capacity(rows * 8);
        let mut feat: Vec<SqlValue> = Vec::with_capacity(rows * 18);
        for _ in 0..rows {
            id += 1;
            let i = id as i64;
            let handle = format!("user{id}");
            raw.extend([
                SqlValue::Int(i),
                SqlValue::Text(id.to_string()),
                SqlValue::Text(handle),
                SqlValue::Text(format!("{:016x}", rng.gen::<u64>())),
                SqlValue::Int(now - rng.gen_range(0..90) * 86_400_000),
            ]);
            // Heavy-tailed audience (median ≈ 400), like the sandbox's.
            let followers =
                (rng.gen::<f64>().powi(4) * 200_000.0 + rng.gen_range(0.0..800.0)) as i64;
            let posts = rng.gen_range(0..2_000i64);
            let words: Vec<&str> = (0..rng.gen_range(8..20))
                .map(|_| VOCAB[rng.gen_range(0..VOCAB.len())])
                .collect();
            let last_post = if rng.gen_bool(0.9) {
                SqlValue::Int(now - rng.gen_range(0..200) * 86_400_000)
            } else {
                SqlValue::Null
            };
            feat.extend([
                SqlValue::Int(i),
                SqlValue::Int(followers),
                SqlValue::Float(((followers + 1) as f64).ln()),
                SqlValue::Int(rng.gen_range(0..3_000)),
                SqlValue::Int(posts),
                SqlValue::Float(rng.gen_range(0.0..0.12)),
                SqlValue::Float(rng.gen_range(0.0..500.0)),
                SqlValue::Float(rng.gen_range(0.0..40.0)),
                SqlValue::Float(rng.gen_range(0.0..14.0)),
                last_post,
                SqlValue::Int(rng.gen_range(1..4_000)),
                SqlValue::Text(LANGS[rng.gen_range(0..LANGS.len())].to_string()),
                SqlValue::Int(rng.gen_bool(0.03) as i64),
                SqlValue::Int(rng.gen_bool(0.4) as i64),
                SqlValue::Int(rng.gen_bool(0.1) as i64),
                SqlValue::Text(words.join(" ")),
            ]);
        }
        let values = |per: usize, fixed: &str| {
            (0..rows)
                .map(|r| {
                    let ps: Vec<String> = (1..=per).map(|c| format!("${}", r * per + c)).collect();
                    format!("({}, {fixed})", ps.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "INSERT INTO profiles_raw (id, external_id, handle, content_hash, last_changed, platform, payload, first_seen, last_seen) VALUES {}",
            values(5, &format!("'sandbox', '{{}}', {now}, {now}"))
        );
        omni::db::bind_all(sqlx::query(&sql), &raw)
            .execute(&mut *tx)
            .await
            .expect("insert profiles_raw");
        let sql = format!(
            "INSERT INTO profile_features (profile_id, followers, log_followers, following, posts_count, engagement_rate, avg_likes, \
             avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, text, \
             feature_version, image_keys, updated_at) VALUES {}",
            values(16, &format!("1, '[]', {now}"))
        );
        omni::db::bind_all(sqlx::query(&sql), &feat)
            .execute(&mut *tx)
            .await
            .expect("insert profile_features");
    }
    tx.commit().await.expect("commit");
    if db.dialect() == omni::db::Dialect::Postgres {
        // Explicit ids skipped the sequence; later inserts must not collide.
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
