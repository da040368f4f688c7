//! Campaign candidates at scale: 1,000,000 synthetic `profile_features` rows and 10 campaigns of
//! different selectivity, on SQLite and (when OMNI_BENCH_DATABASE_URL or OMNI_TEST_DATABASE_URL is
//! set) PostgreSQL. Measures a full maintenance of all 10 campaigns, incremental maintenance of
//! single profiles (`maintain_profile`, as a scrape does), and the top-1,000 shortlist.
//!
//! `cargo bench --bench campaigns`; without `--bench` a 1,000-profile smoke pass.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use omni::config::Config;
use omni::db::profiles::ProfileId;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::pipeline::candidates::{maintain_campaign, maintain_profile, maintain_profiles};
use omni::engine::platforms::{PlatformConfig, PlatformKind};
use omni::engine::{Engine, Mode};
use rand::{Rng, SeedableRng};
use support::{median, peak_rss_mib};

fn config(url: &str, storage: &std::path::Path) -> Config {
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
    c
}

async fn bench(label: &str, url: &str, n: usize, incremental: usize, reps: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    let db = support::fresh_db(url, 4).await;
    let seed_s = support::seed_profiles(&db, n, 42, now).await;
    db.close().await;
    println!(
        "{label:<9} seeded {n} profiles in {seed_s:.1}s ({:.0} rows/s)",
        n as f64 / seed_s
    );

    // Client mode: no workers, so the maintenance job each create enqueues does not run behind our back.
    let store = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(config(url, store.path()), Mode::Client)
        .await
        .expect("engine");
    let mut campaigns = Vec::new();
    for (i, file) in support::campaign_files().iter().enumerate() {
        campaigns.push(
            engine
                .create_campaign(&format!("c{i}.toml"), file)
                .await
                .expect("campaign"),
        );
    }

    // Full maintenance of all 10: the first run fills empty candidate sets, later runs rescore.
    let mut full_runs = Vec::new();
    let mut counts = Vec::new();
    for rep in 0..reps {
        let t = Instant::now();
        counts.clear();
        for c in &campaigns {
            let mut tx = engine.db().begin_write().await.expect("begin");
            counts.push(maintain_campaign(&mut tx, c, now).await.expect("maintain"));
            tx.commit().await.expect("commit");
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{label:<9} full maintenance of 10 campaigns, run {}: {s:.2}s",
            rep + 1
        );
        full_runs.push(s);
    }
    let first = full_runs[0];
    let full_median = median(&mut full_runs);
    let total: i64 = counts.iter().sum();
    println!("{label:<9} candidates per campaign: {counts:?} (total {total})");

    // Incremental: one profile across all 10 active campaigns, each in its own write transaction
    // (the scrape's shape), then the same profiles all inside one transaction (the statements' cost).
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ids: Vec<i64> = (0..incremental)
        .map(|_| rng.gen_range(1..=n as i64))
        .collect();
    let t = Instant::now();
    for id in &ids {
        let mut tx = engine.db().begin_write().await.expect("begin");
        maintain_profile(&mut tx, ProfileId(*id), now)
            .await
            .expect("maintain_profile");
        tx.commit().await.expect("commit");
    }
    let per_tx = incremental as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tx = engine.db().begin_write().await.expect("begin");
    for id in &ids {
        maintain_profile(&mut tx, ProfileId(*id), now)
            .await
            .expect("maintain_profile");
    }
    tx.commit().await.expect("commit");
    let one_tx = incremental as f64 / t.elapsed().as_secs_f64();
    // Batched: the same profiles through `maintain_profiles` (500 per statement), one transaction.
    let batch: Vec<ProfileId> = ids.iter().map(|i| ProfileId(*i)).collect();
    let t = Instant::now();
    let mut tx = engine.db().begin_write().await.expect("begin");
    maintain_profiles(&mut tx, &batch, now)
        .await
        .expect("maintain_profiles");
    tx.commit().await.expect("commit");
    let batched = incremental as f64 / t.elapsed().as_secs_f64();
    // Incremental maintenance must agree with the full one.
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM campaign_candidates")
        .fetch_one(engine.db().pool())
        .await
        .expect("count");
    assert_eq!(
        after, total,
        "{label}: incremental maintenance changed the candidate sets"
    );

    // Shortlist top-1,000 of each campaign, several times; median per call.
    let mut times = Vec::new();
    for _ in 0..reps.max(3) {
        for c in &campaigns {
            let t = Instant::now();
            let ids = engine.shortlist(c.id, 1_000).await.expect("shortlist");
            times.push(t.elapsed().as_secs_f64() * 1_000.0);
            assert!(ids.len() as i64 == counts[(c.id.0 - campaigns[0].id.0) as usize].min(1_000));
        }
    }
    let worst = times.iter().cloned().fold(0.0, f64::max);
    let shortlist_ms = median(&mut times);
    println!(
        "{label:<9} profiles={n}  full maintenance (10 campaigns): first {first:.2}s, median {full_median:.2}s over {reps}  \
         incremental: {per_tx:.0} profiles/s (own tx each), {one_tx:.0} profiles/s (one tx), {batched:.0} profiles/s (batched)  \
         shortlist top-1000: median {shortlist_ms:.1} ms, worst {worst:.1} ms  peak RSS {:.0} MiB",
        peak_rss_mib()
    );
    engine.shutdown().await;
}

fn main() {
    let full = support::full();
    let (n, incremental, reps) = if full {
        (1_000_000, 5_000, 3)
    } else {
        (1_000, 50, 1)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("campaigns.db").display());
        bench("sqlite", &sqlite, n, incremental, reps).await;
        match support::pg_url() {
            Some(url) => bench("postgres", &url, n, incremental, reps).await,
            None => println!(
                "postgres  skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"
            ),
        }
    });
}
