//! The pipeline end to end against the sandbox over real HTTP: discover → scrape → hash → images →
//! features → candidates → shortlist → LLM verdicts (the sandbox's simulated judge) → leads.

use std::time::Duration;

use omni::config::Config;
use omni::db::campaigns::CampaignId;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::pipeline::ingest::CrawlSeed;
use omni::engine::platforms::{DiscoverySource, PlatformConfig, PlatformKind};
use omni::engine::queue::{JobFilter, JobStatus, NewJob};
use omni::engine::{Engine, Mode};
use omni::sandbox::{SandboxHandle, SandboxOptions};
use sqlx::Row;

use crate::common::{dialects, fresh, TestDb};

/// A fixed sandbox start (midnight UTC) so worlds are identical across runs.
pub const SANDBOX_START: i64 = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;

pub async fn sandbox(profiles: usize, tweak: impl FnOnce(&mut SandboxOptions)) -> SandboxHandle {
    let mut opts = SandboxOptions {
        seed: 7,
        profiles,
        start_ms: Some(SANDBOX_START),
        ..Default::default()
    };
    tweak(&mut opts);
    omni::sandbox::bind(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox")
}

pub fn config_for(t: &TestDb, sb: &SandboxHandle, storage: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.database.url = t.url.clone();
    c.storage.path = storage.to_path_buf();
    let mut p = PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url());
    p.backoff_ms = 10;
    p.max_retries = 6;
    c.platforms = vec![p];
    c.llm = LlmConfig {
        provider: ProviderKind::OpenAi,
        base_url: sb.base_url().to_string(),
        model: "simulated-judge".into(),
        retry_base_ms: 10,
        ..LlmConfig::default()
    };
    c.workers.poll_ms = 20;
    c.workers.concurrency = 16;
    c.queue.backoff.base_ms = 10;
    c.queue.backoff.max_ms = 100;
    c.schedule.qualify = "off".into();
    c.schedule.feedback_sweep = "off".into();
    c.schedule.weights_update = "off".into();
    c.schedule.candidates_maintain = "off".into();
    c
}

async fn run(engine: &Engine, jobs: Vec<NewJob>) -> omni::db::jobs::TreeCounts {
    let mut ids = Vec::new();
    for j in jobs {
        ids.push(engine.enqueue(j).await.unwrap().id);
    }
    tokio::time::timeout(Duration::from_secs(120), engine.wait_for(&ids, |_| {}))
        .await
        .expect("jobs finish in time")
        .unwrap()
}

fn crawl(limit: usize) -> NewJob {
    let seed = CrawlSeed {
        platform: "sandbox".into(),
        source: DiscoverySource::Directory,
        cursor: None,
        limit,
        seen: 0,
        fresh_secs: 0,
    };
    NewJob::new("crawl.seed", serde_json::to_value(seed).unwrap())
}

async fn scalar(engine: &Engine, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(engine.db().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn crawl_ingests_profiles_with_features_and_deduplicated_images() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(300, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let counts = run(&engine, vec![crawl(120)]).await;
        assert_eq!(counts.dead, 0, "{d}: {counts:?}");
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profiles_raw").await,
            120,
            "{d}"
        );
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
            120,
            "{d}"
        );
        // Pagination: the directory serves at most 80 per page, so this took several crawl.seed jobs.
        let seeds = engine
            .jobs(&JobFilter {
                kind: Some("crawl.seed".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(seeds.len() >= 2, "{d}: {} pages", seeds.len());
        // Images: stored under their sha256, each at most once.
        let keys: Vec<String> = sqlx::query_scalar("SELECT image_keys FROM profile_features")
            .fetch_all(engine.db().pool())
            .await
            .unwrap();
        let mut all: Vec<String> = keys
            .iter()
            .flat_map(|k| serde_json::from_str::<Vec<String>>(k).unwrap())
            .collect();
        assert!(!all.is_empty(), "{d}: no images stored");
        all.sort();
        all.dedup();
        for k in &all {
            let bytes = engine
                .services()
                .storage
                .get(k)
                .await
                .unwrap()
                .expect("image stored");
            assert_eq!(&omni::engine::storage::key_of(&bytes), k);
            image::load_from_memory(&bytes).expect("a real image");
        }
        let files = walk(dir.path());
        assert_eq!(files, all.len(), "{d}: one file per distinct image");
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|e| if e.is_dir() { walk(&e) } else { 1 })
        .sum()
}

#[tokio::test]
async fn recrawl_of_unchanged_profiles_moves_only_last_seen_and_an_edit_changes_the_hash() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(120, |o| o.change_fraction = 0.5).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        run(&engine, vec![crawl(60)]).await;
        let before = snapshot(&engine).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        run(&engine, vec![crawl(60)]).await;
        let after = snapshot(&engine).await;
        assert_eq!(before.len(), 60);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                (b.0, &b.1, b.2),
                (a.0, &a.1, a.2),
                "{d}: unchanged profile changed hash or last_changed"
            );
            assert!(a.3 > b.3, "{d}: last_seen did not move");
        }
        // Two sandbox days pass (changes land at random times within a day): about half the
        // profiles edit their bio or post.
        assert!(sb.state().advance(2 * 86_400), "{d}: sandbox time moved");
        // Re-scrape exactly the same handles (the directory's order follows activity, so it moved).
        let handles: Vec<String> =
            sqlx::query_scalar("SELECT handle FROM profiles_raw ORDER BY id")
                .fetch_all(engine.db().pool())
                .await
                .unwrap();
        let jobs = handles
            .iter()
            .map(|h| {
                NewJob::new(
                    "scrape.profile",
                    serde_json::json!({"platform": "sandbox", "handle": h}),
                )
            })
            .collect();
        let counts = run(&engine, jobs).await;
        assert_eq!(counts.dead, 0, "{d}: {counts:?}");
        let changed = snapshot(&engine).await;
        let n_changed = before
            .iter()
            .zip(&changed)
            .filter(|(b, c)| b.1 != c.1)
            .count();
        assert!(n_changed > 5, "{d}: only {n_changed} profiles changed");
        for (b, c) in before.iter().zip(&changed) {
            if b.1 != c.1 {
                assert!(c.2 > b.2, "{d}: a new hash must move last_changed");
            }
        }
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

/// The stored content hash of every profile, by handle.
async fn stored_hashes(engine: &Engine) -> Vec<(String, String)> {
    let rows = sqlx::query("SELECT handle, content_hash FROM profiles_raw ORDER BY handle")
        .fetch_all(engine.db().pool())
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get("handle"), r.get("content_hash")))
        .collect()
}

/// What a full scrape of every stored handle would hash now (straight from the platform).
async fn fresh_hashes(sb: &SandboxHandle, handles: &[(String, String)]) -> Vec<(String, String)> {
    let platform = omni::engine::platforms::build(&PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        sb.base_url(),
    ))
    .unwrap();
    let mut out = Vec::new();
    for (h, _) in handles {
        let snap = platform
            .fetch_profile(h, omni::engine::pipeline::ingest::MAX_STATUSES)
            .await
            .unwrap();
        out.push((
            h.clone(),
            omni::engine::pipeline::features::content_hash(&snap),
        ));
    }
    out
}

#[tokio::test]
async fn recrawl_trusts_unchanged_listings_and_scrapes_exactly_the_changed_profiles() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(150, |o| o.change_fraction = 0.5).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        // Profiles handed to scrape jobs so far (batches count their accounts).
        let scrapes = |engine: &Engine| {
            let db = engine.db().clone();
            async move {
                let payloads: Vec<String> = sqlx::query_scalar(
                    "SELECT payload FROM jobs WHERE kind IN ('scrape.batch', 'scrape.profile')",
                )
                .fetch_all(db.pool())
                .await
                .unwrap();
                payloads
                    .iter()
                    .map(|p| {
                        let v: serde_json::Value = serde_json::from_str(p).unwrap();
                        v["accounts"].as_array().map_or(1, Vec::len) as i64
                    })
                    .sum::<i64>()
            }
        };
        run(&engine, vec![crawl(1000)]).await;
        let n = scalar(&engine, "SELECT COUNT(*) FROM profiles_raw").await;
        assert!(n > 100, "{d}: {n} profiles");
        assert_eq!(scrapes(&engine).await, n, "{d}: one scrape per new profile");
        let before = snapshot(&engine).await;
        // Unchanged listings: no scrape at all, every profile seen again.
        tokio::time::sleep(Duration::from_millis(5)).await;
        run(&engine, vec![crawl(1000)]).await;
        assert_eq!(
            scrapes(&engine).await,
            n,
            "{d}: an unchanged listing was scraped"
        );
        let after = snapshot(&engine).await;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((b.0, &b.1, b.2), (a.0, &a.1, a.2), "{d}");
            assert!(a.3 > b.3, "{d}: last_seen did not move");
        }
        // Two sandbox days: about half the profiles edit their bio or post. The re-crawl scrapes
        // those (their listing moved) and afterwards every stored hash is what a full scrape of
        // every profile gives now: no change was missed.
        assert!(sb.state().advance(2 * 86_400), "{d}: sandbox time moved");
        run(&engine, vec![crawl(1000)]).await;
        let rescraped = scrapes(&engine).await - n;
        let stored = stored_hashes(&engine).await;
        assert_eq!(
            stored,
            fresh_hashes(&sb, &stored).await,
            "{d}: a change was missed"
        );
        let changed = snapshot(&engine)
            .await
            .iter()
            .zip(&before)
            .filter(|(a, b)| a.1 != b.1)
            .count() as i64;
        assert!(changed > 10, "{d}: only {changed} profiles changed");
        assert!(
            rescraped >= changed && rescraped < n,
            "{d}: {rescraped} scrapes for {changed} changed of {n}"
        );
        // A listing vouches only within the trust window: past it, every profile is scraped
        // again (and found unchanged).
        sqlx::query("UPDATE profiles_raw SET scraped_at = 0")
            .execute(engine.db().pool())
            .await
            .unwrap();
        let hashes = stored_hashes(&engine).await;
        let before = scrapes(&engine).await;
        run(&engine, vec![crawl(1000)]).await;
        assert_eq!(scrapes(&engine).await - before, n, "{d}");
        assert_eq!(stored_hashes(&engine).await, hashes, "{d}");
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_failing_profile_in_a_scrape_batch_does_not_lose_the_others() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(40, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let platform = omni::engine::platforms::build(&PlatformConfig::new(
            "sandbox",
            PlatformKind::Sandbox,
            sb.base_url(),
        ))
        .unwrap();
        let mut accounts = platform
            .discover(&DiscoverySource::Directory, None)
            .await
            .unwrap()
            .accounts;
        accounts.truncate(10);
        // An account the platform does not have (deleted since it was listed): 404.
        let mut ghost = accounts[0].clone();
        ghost.id = "999999999".into();
        ghost.acct = "ghost".into();
        ghost.username = "ghost".into();
        accounts.insert(4, ghost);
        let batch = NewJob::new(
            "scrape.batch",
            serde_json::to_value(omni::engine::pipeline::ingest::ScrapeBatch {
                platform: "sandbox".into(),
                accounts,
            })
            .unwrap(),
        );
        let counts = run(&engine, vec![batch]).await;
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
            10,
            "{d}: the good profiles are stored"
        );
        // The bad one went to its own job, which failed on its own with a clear error.
        assert_eq!(counts.dead, 1, "{d}: {counts:?}");
        let dead = engine
            .jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1, "{d}");
        assert_eq!(dead[0].kind, "scrape.profile", "{d}");
        assert_eq!(dead[0].payload["handle"], "ghost", "{d}");
        assert!(
            dead[0].error.as_deref().unwrap_or("").contains("not found"),
            "{d}: {:?}",
            dead[0].error
        );
        let batches = engine
            .jobs(&JobFilter {
                kind: Some("scrape.batch".into()),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(batches[0].status, JobStatus::Succeeded, "{d}");
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn listing_trust_off_scrapes_every_profile_again() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(60, |o| o.change_fraction = 0.0).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&t, &sb, dir.path());
        config.platforms[0].listing_trust_secs = 0;
        let engine = Engine::start(config, Mode::Inline).await.unwrap();
        run(&engine, vec![crawl(40)]).await;
        let t = chrono::Utc::now().timestamp_millis();
        run(&engine, vec![crawl(40)]).await;
        let rescraped: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM profiles_raw WHERE scraped_at >= $1")
                .bind(t)
                .fetch_one(engine.db().pool())
                .await
                .unwrap();
        assert_eq!(rescraped, 40, "{d}");
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

async fn snapshot(engine: &Engine) -> Vec<(i64, String, i64, i64)> {
    let rows = sqlx::query(
        "SELECT id, content_hash, last_changed, last_seen FROM profiles_raw ORDER BY id",
    )
    .fetch_all(engine.db().pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("content_hash"),
                r.get("last_changed"),
                r.get("last_seen"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_flaky_platform_still_ingests_every_profile() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(150, |o| o.error_rate = 0.2).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let counts = run(&engine, vec![crawl(80)]).await;
        assert_eq!(counts.dead, 0, "{d}: {counts:?}");
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
            80,
            "{d}"
        );
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn malformed_json_fails_the_scrape_clearly_and_writes_nothing() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(50, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&t, &sb, dir.path());
        config.platforms[0].max_retries = 0;
        let engine = Engine::start(config, Mode::Inline).await.unwrap();
        let handles: Vec<String> = reqwest::get(format!("{}/_sandbox/handles", sb.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reqwest::Client::new()
            .post(format!("{}/_sandbox/fail_next", sb.base_url()))
            .json(&serde_json::json!({"count": 1}))
            .send()
            .await
            .unwrap();
        let job = NewJob::new(
            "scrape.profile",
            serde_json::json!({"platform": "sandbox", "handle": handles[0]}),
        )
        .max_attempts(1);
        let counts = run(&engine, vec![job]).await;
        assert_eq!(counts.dead, 1, "{d}");
        let dead = engine
            .jobs(&JobFilter {
                status: Some(JobStatus::Dead),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        let err = dead[0].error.clone().unwrap();
        assert!(
            err.to_lowercase().contains("json") || err.contains("malformed"),
            "{d}: unclear error: {err}"
        );
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profiles_raw").await,
            0,
            "{d}: partial write"
        );
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
            0,
            "{d}"
        );
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

pub const CAMPAIGN: &str = r#"
name = "Food creators"
platform = "sandbox"
brief = "Home cooks and food creators who post recipes with their own photos; not brands."
[filter]
followers = { min = 10 }
keywords_any = ["food", "recipe", "cook", "vegan", "baking"]
[qualify]
shortlist_k = 500
threshold = 60
daily_llm_calls = 500
[outreach]
template = "Hi {{ display_name }}! {{ opener }}"
accounts = ["omni"]
"#;

/// Concurrent scrape batches and the candidates job they feed share one batch row. On PostgreSQL a
/// scrape used to lock it per changed profile, in the middle of its writes, which closed lock cycles
/// with another scrape and the job closing the batch: "deadlock detected", a failed job and a
/// retry (on a manual clock, a tree that never finished). Every job must now succeed first time.
#[tokio::test]
async fn a_crawl_feeding_a_campaign_fails_no_job_on_the_way() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(1200, |o| o.seed = 7).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let c = engine
            .create_campaign("any.toml", "name = \"Anyone\"\nplatform = \"sandbox\"\nbrief = \"Anyone.\"\n[filter]\nfollowers = { min = 1 }\n")
            .await
            .unwrap();
        let counts = run(&engine, vec![crawl(1200)]).await;
        assert_eq!(counts.dead, 0, "{d}: {counts:?}");
        let retried: Vec<(i64, String, i64, Option<String>)> = sqlx::query(
            "SELECT id, kind, attempts, error FROM jobs WHERE attempts > 1 OR error IS NOT NULL ORDER BY id",
        )
        .fetch_all(engine.db().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), r.get("kind"), r.get("attempts"), r.get("error")))
        .collect();
        assert!(
            retried.is_empty(),
            "{d}: jobs failed on the way: {retried:?}"
        );
        assert!(
            scalar(&engine, "SELECT COUNT(*) FROM candidates_pending").await == 0,
            "{d}: pending profiles left"
        );
        let candidates = candidate_set(&engine, c.id).await.len() as i64;
        let matching = scalar(
            &engine,
            "SELECT COUNT(*) FROM profile_features WHERE followers >= 1",
        )
        .await;
        assert_eq!(candidates, matching, "{d}");
        assert!(candidates > 1000, "{d}: {candidates} candidates");
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn campaign_candidates_incremental_equals_full_and_qualify_caches_verdicts() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(200, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        // The campaign exists before the crawl: candidates arrive incrementally with each scrape.
        let c = engine.create_campaign("food.toml", CAMPAIGN).await.unwrap();
        run(&engine, vec![crawl(150)]).await;
        let incremental = candidate_set(&engine, c.id).await;
        assert!(!incremental.is_empty(), "{d}: no candidates");
        // A full maintenance recomputes the same set.
        let mut tx = engine.db().begin_write().await.unwrap();
        omni::engine::pipeline::candidates::maintain_campaign(
            &mut tx,
            &c,
            engine.services().clock.now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            candidate_set(&engine, c.id).await,
            incremental,
            "{d}: incremental != full"
        );
        // Every candidate matches; every non-candidate does not.
        let matching: Vec<i64> = sqlx::query_scalar(
            "SELECT profile_id FROM profile_features WHERE followers >= 10 AND (text LIKE '%food%' OR text LIKE '%recipe%' OR text LIKE '%cook%' OR text LIKE '%vegan%' OR text LIKE '%baking%') ORDER BY profile_id",
        )
        .fetch_all(engine.db().pool())
        .await
        .unwrap();
        assert_eq!(incremental, matching, "{d}");
        // A profile whose features stop matching is evicted.
        let victim = incremental[0];
        let mut tx = engine.db().begin_write().await.unwrap();
        sqlx::query("UPDATE profile_features SET followers = 0 WHERE profile_id = $1")
            .bind(victim)
            .execute(&mut *tx)
            .await
            .unwrap();
        omni::engine::pipeline::candidates::maintain_profile(
            &mut tx,
            omni::db::profiles::ProfileId(victim),
            0,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(
            !candidate_set(&engine, c.id).await.contains(&victim),
            "{d}: not evicted"
        );

        // Qualify: the simulated judge scores the whole shortlist; leads for scores ≥ threshold.
        let candidates = candidate_set(&engine, c.id).await.len() as i64;
        let counts = run(
            &engine,
            vec![omni::engine::pipeline::qualify::qualify_job_for(c.id, None)],
        )
        .await;
        assert_eq!(counts.dead, 0, "{d}: {counts:?}");
        let scored = scalar(&engine, "SELECT COUNT(*) FROM llm_scores").await;
        assert_eq!(scored, candidates, "{d}");
        assert_eq!(judge_calls(&sb).await, scored, "{d}: one call per verdict");
        let leads = scalar(&engine, "SELECT COUNT(*) FROM leads").await;
        let qualified = scalar(&engine, "SELECT COUNT(*) FROM llm_scores WHERE score >= 60").await;
        assert_eq!(leads, qualified, "{d}");
        assert!(
            leads > 0 && leads < scored,
            "{d}: the judge should qualify some, not all ({leads} of {scored})"
        );

        // A second qualify on unchanged profiles makes no LLM call.
        run(
            &engine,
            vec![omni::engine::pipeline::qualify::qualify_job_for(c.id, None)],
        )
        .await;
        assert_eq!(
            judge_calls(&sb).await,
            scored,
            "{d}: cached verdicts were paid for again"
        );

        // A follower count +1 (a re-scrape that changed only that) makes none either.
        // (The first rejected profile whose count stays in its log-scale bucket: which profile
        // gets which id depends on the order scrapes finish in.)
        let rows = sqlx::query(
            "SELECT p.id, p.payload FROM profiles_raw p JOIN llm_scores s ON s.profile_id = p.id \
             WHERE s.score < 60 ORDER BY p.id",
        )
        .fetch_all(engine.db().pool())
        .await
        .unwrap();
        let (pid, mut v, f) = rows
            .iter()
            .find_map(|r| {
                let v: serde_json::Value =
                    serde_json::from_str(&r.get::<String, _>("payload")).unwrap();
                let f = v["account"]["followers_count"].as_i64().unwrap();
                let bucket = omni::engine::llm::prompt::bucket_count;
                (bucket(f) == bucket(f + 1)).then(|| (r.get::<i64, _>("id"), v, f))
            })
            .expect("a rejected profile");
        v["account"]["followers_count"] = serde_json::json!(f + 1);
        sqlx::query("UPDATE profiles_raw SET payload = $1, content_hash = 'x', last_changed = $2 WHERE id = $3")
            .bind(v.to_string())
            .bind(engine.services().clock.now_ms() + 1_000)
            .bind(pid)
            .execute(engine.db().writer())
            .await
            .unwrap();
        run(
            &engine,
            vec![omni::engine::pipeline::qualify::qualify_job_for(c.id, None)],
        )
        .await;
        assert_eq!(
            judge_calls(&sb).await,
            scored,
            "{d}: a follower tick bought a new verdict"
        );

        // Editing the brief changes the criteria: every candidate is judged again.
        let edited = CAMPAIGN.replace("not brands.", "not brands or resellers.");
        let c2 = engine
            .edit_campaign(c.id, "food.toml", &edited)
            .await
            .unwrap();
        assert_ne!(c2.criteria_hash, c.criteria_hash);
        let mut tx = engine.db().begin_write().await.unwrap();
        omni::engine::pipeline::candidates::maintain_campaign(
            &mut tx,
            &c2,
            engine.services().clock.now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // Existing leads stay leads; the rest are judged anew.
        run(
            &engine,
            vec![omni::engine::pipeline::qualify::qualify_job_for(c.id, None)],
        )
        .await;
        assert_eq!(
            judge_calls(&sb).await,
            scored + (candidates - leads),
            "{d}: a new brief must be judged"
        );
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

async fn judge_calls(sb: &SandboxHandle) -> i64 {
    let stats: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["judge_calls"]
        .as_i64()
        .or_else(|| stats["judge_requests"].as_i64())
        .unwrap_or_else(|| panic!("no judge call count in {stats}"))
}

async fn candidate_set(engine: &Engine, id: CampaignId) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT profile_id FROM campaign_candidates WHERE campaign_id = $1 ORDER BY profile_id",
    )
    .bind(id.0)
    .fetch_all(engine.db().pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn an_erased_person_scraped_again_costs_no_llm_call() {
    for d in dialects() {
        let t = fresh(d).await;
        let sb = sandbox(120, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t, &sb, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let c = engine.create_campaign("food.toml", CAMPAIGN).await.unwrap();
        run(&engine, vec![crawl(80)]).await;
        let top: String = sqlx::query_scalar(
            "SELECT p.handle FROM campaign_candidates c JOIN profiles_raw p ON p.id = c.profile_id \
             WHERE c.campaign_id = $1 ORDER BY c.cheap_score DESC, c.profile_id LIMIT 1",
        )
        .bind(c.id.0)
        .fetch_one(engine.db().pool())
        .await
        .unwrap();
        // A GDPR erasure: only a hash stays on do-not-contact. Then the crawler finds them again.
        engine.erase(&top, Some("sandbox")).await.unwrap();
        let job = NewJob::new(
            "scrape.profile",
            serde_json::json!({"platform": "sandbox", "handle": top}),
        );
        run(&engine, vec![job]).await;
        run(
            &engine,
            vec![omni::engine::pipeline::qualify::qualify_job_for(c.id, None)],
        )
        .await;
        let judged: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM llm_scores s JOIN profiles_raw p ON p.id = s.profile_id WHERE p.handle = $1",
        )
        .bind(&top)
        .fetch_one(engine.db().pool())
        .await
        .unwrap();
        assert_eq!(judged, 0, "{d}: an erased person was sent to the LLM");
        assert!(
            scalar(&engine, "SELECT COUNT(*) FROM llm_scores").await > 0,
            "{d}: others were judged"
        );
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}

/// A scrape batch writes its profiles with one multi-row statement per table, and RETURNING
/// promises no row order: every version must get its own profile's id back (new and existing
/// ones mixed, keys not in id order), and its features must land on that id.
#[tokio::test]
async fn a_batch_upsert_gives_each_profile_its_own_id_and_features() {
    use omni::db::profiles::{self, NewVersion, ProfileId};
    use omni::engine::pipeline::features::Features;
    for dialect in dialects() {
        let t = fresh(dialect).await;
        let version = |ext: &'static str| NewVersion {
            platform: "sandbox",
            external_id: ext,
            handle: ext,
            payload: "{}",
            content_hash: ext,
            account_hash: ext,
        };
        let features = |followers: i64| Features {
            followers,
            following: 1,
            posts_count: 2,
            engagement_rate: 0.1,
            avg_likes: 1.0,
            avg_comments: 0.5,
            posts_per_week: 3.0,
            last_post_at: Some(1_000),
            account_age_days: 10,
            language: Some("en".into()),
            is_bot: false,
            has_link: false,
            has_email: false,
            text: format!("text {followers}"),
            image_keys: vec![],
        };
        let mut conn = t.db.writer().acquire().await.unwrap();
        let (b, a) = (version("b"), version("a"));
        let existing = profiles::upsert_raw_many(&mut conn, &[(&b, 1), (&a, 1)])
            .await
            .unwrap();
        let (z, b2, m, a2) = (version("z"), version("b"), version("m"), version("a"));
        let ids = profiles::upsert_raw_many(&mut conn, &[(&z, 2), (&b2, 2), (&m, 2), (&a2, 2)])
            .await
            .unwrap();
        assert_eq!(ids[1], existing[0], "{dialect}: b keeps its id");
        assert_eq!(ids[3], existing[1], "{dialect}: a keeps its id");
        let (f0, f1, f2, f3) = (features(10), features(11), features(12), features(13));
        let rows: Vec<(ProfileId, &Features, i64)> = vec![
            (ids[0], &f0, 2),
            (ids[1], &f1, 2),
            (ids[2], &f2, 2),
            (ids[3], &f3, 2),
        ];
        profiles::upsert_features_many(&mut conn, &rows)
            .await
            .unwrap();
        for (ext, followers) in [("z", 10), ("b", 11), ("m", 12), ("a", 13)] {
            let row = sqlx::query(
                "SELECT f.followers, f.text, r.last_seen FROM profiles_raw r \
                 JOIN profile_features f ON f.profile_id = r.id WHERE r.external_id = $1",
            )
            .bind(ext)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            assert_eq!(row.get::<i64, _>(0), followers, "{dialect}: {ext}");
            assert_eq!(row.get::<String, _>(1), format!("text {followers}"));
            assert_eq!(row.get::<i64, _>(2), 2, "{dialect}: {ext} last_seen");
        }
    }
}

/// The per-page and per-batch lookups by platform id (`find_many`, `listing_states`, the batch's
/// row locks) return one row per stored profile among the ids given (duplicates and unknown ids
/// included), and on PostgreSQL probe the unique index even before the table was ever analyzed:
/// a new database's first ingest otherwise scans every profile of the platform for each listing
/// page (BENCHMARKS.md §2, "2026-12-06").
#[tokio::test]
async fn lookups_by_platform_id_probe_the_unique_index_even_before_analyze() {
    use omni::db::profiles;
    use omni::db::Dialect;
    for dialect in dialects() {
        let t = fresh(dialect).await;
        sqlx::query(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) \
             INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, \
             first_seen, last_seen, last_changed) \
             SELECT 'sandbox', 'x' || CAST(n AS TEXT), 'user' || CAST(n AS TEXT), '{}', \
             'h' || CAST(n AS TEXT), 1, n, 1 FROM g",
        )
        .execute(t.db.pool())
        .await
        .unwrap();
        let asked = ["x42", "nope", "x7", "x42", "x4999"];
        let found = profiles::find_many(&t.db, "sandbox", &asked).await.unwrap();
        let mut keys: Vec<&str> = found.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["x42", "x4999", "x7"], "{dialect}");
        assert_eq!(found["x7"].content_hash, "h7", "{dialect}");
        assert!(
            profiles::find_many(&t.db, "other", &asked)
                .await
                .unwrap()
                .is_empty(),
            "{dialect}: another platform's ids are not these"
        );
        let mut states = profiles::listing_states(&t.db, "sandbox", &asked)
            .await
            .unwrap();
        states.sort_by_key(|s| s.last_seen);
        let seen: Vec<(&str, i64)> = states
            .iter()
            .map(|s| (s.external_id.as_str(), s.last_seen))
            .collect();
        assert_eq!(seen, [("x7", 7), ("x42", 42), ("x4999", 4999)], "{dialect}");
        if t.db.dialect() != Dialect::Postgres {
            continue;
        }
        // A page's worth of ids, on a table PostgreSQL has no statistics for yet.
        let ids: Vec<String> = (1..=80).map(|i| format!("x{}", i * 61)).collect();
        for lock in [false, true] {
            let sql = profiles::by_external_ids(Dialect::Postgres, "id", ids.len(), lock);
            let mut conn = t.db.pool().begin().await.unwrap();
            let explain = format!("EXPLAIN {sql}");
            let mut q = sqlx::query(&explain).bind("sandbox");
            for id in &ids {
                q = q.bind(id);
            }
            let plan: Vec<String> = q
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains("profiles_raw_platform_external_id_key")
                    && plan.contains("external_id = ")
                    && !plan.contains("profiles_raw_handle"),
                "lock={lock}: each id should be one probe of the unique index:\n{plan}"
            );
            let mut q = sqlx::query(&sql).bind("sandbox");
            for id in &ids {
                q = q.bind(id);
            }
            assert_eq!(
                q.fetch_all(&mut *conn).await.unwrap().len(),
                80,
                "lock={lock}"
            );
            conn.rollback().await.unwrap();
        }
    }
}
