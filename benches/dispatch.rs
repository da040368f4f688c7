//! Dispatch throughput: messages per second through the send ledger (claim with limit checks,
//! `sending`, the DM to an in-process sandbox over loopback HTTP, `sent`) when the limits allow,
//! one at a time and with a worker pool, on SQLite and (when OMNI_BENCH_DATABASE_URL or
//! OMNI_TEST_DATABASE_URL is set) PostgreSQL.
//!
//! `cargo bench --bench dispatch` sends 2,000 messages per run; under `cargo test` it runs a
//! 20-message smoke pass.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use omni::config::Config;
use omni::db::campaigns::CampaignId;
use omni::engine::outreach::BatchOptions;
use omni::engine::pipeline::dispatch::{self, AccountConfig, Outcome};
use omni::engine::platforms::{PlatformConfig, PlatformKind};
use omni::engine::worker::WorkerConfig;
use omni::engine::{Engine, Mode};
use omni::sandbox::SandboxOptions;

const TOKEN_ENV: &str = "OMNI_BENCH_DISPATCH_TOKEN";

async fn setup(
    url: &str,
    sb_url: &str,
    objects: &std::path::Path,
    dispatch_workers: bool,
) -> Engine {
    let mut config = Config::defaults();
    config.database.url = url.to_string();
    config.storage.path = objects.to_path_buf();
    config.platforms = vec![PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        sb_url,
    )];
    config.accounts = vec![AccountConfig {
        platform: "sandbox".into(),
        handle: "omni".into(),
        token_env: TOKEN_ENV.into(),
        daily_cap: 10_000_000,
        hourly_cap: 10_000_000,
        min_gap_secs: 0,
        jitter_secs: 0,
        quiet_hours: None,
        timezone: "UTC".into(),
        warmup_days: 0,
    }];
    config.workers = WorkerConfig {
        concurrency: 16,
        poll_ms: 5,
        ..Default::default()
    };
    if !dispatch_workers {
        config.workers.per_kind = HashMap::from([(dispatch::KIND.to_string(), 0)]);
    }
    Engine::start(config, Mode::Worker).await.expect("engine")
}

/// A campaign with one approved lead per handle; returns its id.
async fn leads(engine: &Engine, handles: &[String], tag: &str) -> CampaignId {
    let src = format!(
        "name = \"bench {tag}\"\nplatform = \"sandbox\"\nbrief = \"Anyone.\"\n\n[outreach]\ntemplate = \"Hi {{{{ handle }}}}, a quick hello.\"\ncooldown_days = 0\n"
    );
    let c = engine
        .create_campaign("bench.toml", &src)
        .await
        .expect("campaign")
        .id;
    let db = engine.db();
    let mut tx = db.begin_write().await.expect("tx");
    let now = chrono::Utc::now().timestamp_millis();
    for h in handles {
        let pid: i64 = sqlx::query_scalar(
            "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
             VALUES ('sandbox', $1, $2, '{}', 'h', $3, $3, $3) ON CONFLICT (platform, external_id) DO UPDATE SET last_seen = excluded.last_seen RETURNING id",
        )
        .bind(format!("ext-{h}"))
        .bind(h)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .expect("profile");
        sqlx::query("INSERT INTO leads (campaign_id, profile_id, score, status, created_at, updated_at) VALUES ($1, $2, 90, 'approved', $3, $3)")
            .bind(c.0)
            .bind(pid)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("lead");
    }
    tx.commit().await.expect("commit");
    c
}

async fn bench(label: &str, url: &str, n: usize) {
    let sb = omni::sandbox::bind(
        SandboxOptions {
            profiles: n + 10,
            senders: vec![("omni".into(), "bench-token".into())],
            change_fraction: 0.0,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox");
    std::env::set_var(TOKEN_ENV, "bench-token");
    let handles: Vec<String> = sb
        .state()
        .world
        .profiles
        .iter()
        .filter(|p| !p.bot)
        .map(|p| p.username.clone())
        .collect();
    let half = handles.len().min(n) / 2;
    let dir = tempfile::tempdir().expect("tempdir");

    // One at a time: the ledger's latency.
    let engine = setup(url, sb.base_url(), dir.path(), false).await;
    let c = leads(&engine, &handles[..half], &format!("{label}-serial")).await;
    let batch = engine
        .create_batch(
            c,
            BatchOptions {
                limit: Some(n as i64),
                min_score: None,
            },
        )
        .await
        .expect("batch");
    let approved = engine.approve_batch(batch.batch.id).await.expect("approve");
    let t = Instant::now();
    for m in &approved.batch.messages {
        let out = dispatch::dispatch(engine.services(), m.message.id, false)
            .await
            .expect("dispatch");
        assert!(matches!(out, Outcome::Sent { .. }), "{out:?}");
    }
    let serial_s = t.elapsed().as_secs_f64();
    engine.shutdown().await;

    // A worker pool: the ledger under concurrency.
    let engine = setup(url, sb.base_url(), dir.path(), true).await;
    let c = leads(&engine, &handles[half..2 * half], &format!("{label}-pool")).await;
    let batch = engine
        .create_batch(
            c,
            BatchOptions {
                limit: Some(n as i64),
                min_score: None,
            },
        )
        .await
        .expect("batch");
    let t = Instant::now();
    let approved = engine.approve_batch(batch.batch.id).await.expect("approve");
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE batch_id = $1 AND status <> 'sent'",
        )
        .bind(approved.batch.batch.id.0)
        .fetch_one(engine.db().pool())
        .await
        .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pool_s = t.elapsed().as_secs_f64();
    engine.shutdown().await;
    let log: Vec<serde_json::Value> = reqwest::get(format!("{}/_sandbox/sent", sb.base_url()))
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let received = log.len();
    assert_eq!(received, 2 * half, "every message exactly once");
    println!(
        "{label:<10} messages={:>5}  serial {:>7.0} msg/s ({:.2}s)  pool(16) {:>7.0} msg/s ({:.2}s)",
        2 * half,
        half as f64 / serial_s,
        serial_s,
        half as f64 / pool_s,
        pool_s
    );
    let _ = sb.shutdown().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 2_000 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        bench("sqlite", &sqlite, n).await;
        match std::env::var("OMNI_BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("OMNI_TEST_DATABASE_URL"))
        {
            Ok(url) => bench("postgres", &url, n).await,
            Err(_) => println!(
                "postgres   skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"
            ),
        }
    });
}
