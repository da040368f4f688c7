//! End-to-end ingest throughput: `crawl.seed` over the sandbox's directory → `scrape.batch` jobs of
//! listed accounts → posts, hash, images, features, candidates; then the same crawl again over
//! unchanged profiles (their listing matches the last scrape: only `last_seen` moves, no profile
//! is fetched). The sandbox runs in this process on loopback, so its work (generating posts and
//! encoding images) shares the machine with the engine.
//!
//! `cargo bench --bench ingest` ingests 20,000 profiles on SQLite (and PostgreSQL when
//! OMNI_BENCH_DATABASE_URL or OMNI_TEST_DATABASE_URL is set), with images and with image download
//! off (`[[platforms]] fetch_images = false`); without `--bench` it runs a 40-profile smoke pass.
//! OMNI_BENCH_WORKERS sets the engine's worker slots (default 32); OMNI_BENCH_QUICK=1 runs only
//! the pass with images (no fetch-only pass, no pass without images); OMNI_BENCH_PROFILES sets the
//! world's size (e.g. a small one to count instructions under `valgrind --tool=callgrind`).

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use omni::config::Config;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::pipeline::ingest::CrawlSeed;
use omni::engine::platforms::{DiscoverySource, PlatformConfig, PlatformKind};
use omni::engine::queue::NewJob;
use omni::engine::{Engine, Mode};
use omni::sandbox::{SandboxHandle, SandboxOptions};

/// A fixed sandbox day so every run serves the same world.
const SANDBOX_START: i64 = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;

/// CPU seconds (user + system) used by this whole process so far (engine and sandbox together).
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The sandbox and the platform adapter alone, no database or queue: every handle fetched
/// (profile + 40 posts, and up to 3 images when `images`) by 32 concurrent tasks. An upper bound
/// for the pipeline on this machine, and the share of the CPU the sandbox takes.
async fn fetch_only(sb: &SandboxHandle, images: bool) -> (usize, f64, f64) {
    let handles: Vec<String> = reqwest::get(format!("{}/_sandbox/handles", sb.base_url()))
        .await
        .expect("handles")
        .json()
        .await
        .expect("json");
    let platform = omni::engine::platforms::build(&PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        sb.base_url(),
    ))
    .expect("platform");
    let queue = std::sync::Arc::new(std::sync::Mutex::new(handles.clone()));
    let (t, cpu) = (Instant::now(), cpu_s());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (queue, platform) = (queue.clone(), platform.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(h) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let snap = platform
                    .fetch_profile(&h, omni::engine::pipeline::ingest::MAX_STATUSES)
                    .await
                    .expect("fetch");
                if images {
                    for url in omni::engine::pipeline::features::image_urls(
                        &snap,
                        omni::engine::pipeline::ingest::MAX_IMAGES,
                    ) {
                        platform
                            .fetch_media(&url, omni::engine::pipeline::ingest::MAX_IMAGE_BYTES)
                            .await
                            .expect("media");
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("fetch task");
    }
    (handles.len(), t.elapsed().as_secs_f64(), cpu_s() - cpu)
}

fn config(url: &str, sb: &SandboxHandle, storage: &std::path::Path, images: bool) -> Config {
    let mut c = Config::defaults();
    c.database.url = url.to_string();
    c.database.max_connections = 16;
    c.storage.path = storage.to_path_buf();
    let mut p = PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url());
    p.backoff_ms = 10;
    p.fetch_images = images;
    // The directory serves up to 80 accounts per page (Mastodon's cap there).
    p.page_size = 80;
    c.platforms = vec![p];
    c.llm = LlmConfig {
        provider: ProviderKind::None,
        ..LlmConfig::default()
    };
    // OMNI_BENCH_WORKERS overrides the worker slots (default 32).
    let workers = std::env::var("OMNI_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    c.workers.concurrency = workers;
    c.workers.claim_batch = workers;
    c.workers.poll_ms = 20;
    support::schedules_off(&mut c);
    c
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
    NewJob::new(
        "crawl.seed",
        serde_json::to_value(seed).expect("seed serializes"),
    )
}

/// Runs one crawl to the end of its job tree; returns the seconds it took. Polls the tree every
/// 50 ms (cheap) rather than on every job event.
async fn reset(url: &str) {
    if url.starts_with("postgres") {
        let db = omni::db::Db::connect(url, 2).await.expect("connect");
        db.migrate().await.expect("migrate");
        sqlx::raw_sql(
            "TRUNCATE jobs, campaign_candidates, leads, llm_scores, profile_features, profiles_raw, campaigns RESTART IDENTITY CASCADE",
        )
        .execute(db.pool())
        .await
        .expect("truncate");
        db.close().await;
    }
}

/// Runs one pass and returns its object store, which the caller keeps until every pass is done:
/// removing tens of thousands of files makes ext4 (without a journal, as on this machine) skip
/// those inodes for 1–6 minutes in every later file creation, which took up to 15 % of a later
/// pass's CPU (BENCHMARKS.md §2, "2026-12-05").
async fn bench(
    label: &str,
    url: &str,
    sb: &SandboxHandle,
    n: usize,
    images: bool,
) -> tempfile::TempDir {
    reset(url).await;
    let store = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(config(url, sb, store.path(), images), Mode::Inline)
        .await
        .expect("engine");
    let cpu0 = cpu_s();
    let t = Instant::now();
    support::run_tree(&engine, crawl(n), 50).await;
    // The search index is written in bulk (SQLite); the profiles still waiting for it are part of
    // the ingest's cost, so they are indexed inside the timed run.
    omni::db::profiles::index_search(engine.db(), 1)
        .await
        .expect("search index");
    let new_s = t.elapsed().as_secs_f64();
    let new_cpu = cpu_s() - cpu0;
    // The directory lists only discoverable profiles (most of them).
    let stored = support::scalar(&engine, "SELECT COUNT(*) FROM profile_features").await;
    assert!(
        stored as f64 >= 0.8 * n as f64,
        "{label}: only {stored} of {n} profiles ingested"
    );
    let with_images = support::scalar(
        &engine,
        "SELECT COUNT(*) FROM profile_features WHERE image_keys <> '[]'",
    )
    .await;
    let hashes_before = support::scalar(
        &engine,
        "SELECT COUNT(DISTINCT content_hash) FROM profiles_raw",
    )
    .await;
    let cpu0 = cpu_s();
    let recrawl_s = support::run_tree(&engine, crawl(n), 50).await;
    let recrawl_cpu = cpu_s() - cpu0;
    assert_eq!(
        support::scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
        stored
    );
    let changed = support::scalar(
        &engine,
        "SELECT COUNT(*) FROM profiles_raw WHERE last_changed <> first_seen",
    )
    .await;
    assert_eq!(changed, 0, "{label}: an unchanged re-crawl changed content");
    assert_eq!(
        support::scalar(
            &engine,
            "SELECT COUNT(DISTINCT content_hash) FROM profiles_raw"
        )
        .await,
        hashes_before
    );
    println!(
        "{label:<9} images={:<3} profiles={stored:>6} ({with_images} with images)  new {:>5.0}/s ({new_s:>6.2}s, {:.2} CPU-ms/profile)  \
         unchanged re-crawl {:>5.0}/s ({recrawl_s:>6.2}s, {:.2} CPU-ms/profile)  peak RSS so far {:.0} MiB",
        if images { "on" } else { "off" },
        stored as f64 / new_s,
        new_cpu * 1000.0 / stored as f64,
        stored as f64 / recrawl_s,
        recrawl_cpu * 1000.0 / stored as f64,
        support::peak_rss_mib()
    );
    engine.shutdown().await;
    store
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("OMNI_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20_000 } else { 40 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let opts = SandboxOptions { seed: 11, profiles: n, start_ms: Some(SANDBOX_START), change_fraction: 0.0, ..Default::default() };
        let sb = omni::sandbox::bind(opts, "127.0.0.1:0".parse().expect("addr")).await.expect("sandbox");
        println!("sandbox: {n} profiles at {} (in-process); rss after world generation {:.0} MiB", sb.base_url(), support::peak_rss_mib());
        // OMNI_BENCH_QUICK=1: only the SQLite pass with images (for comparing builds).
        let quick = std::env::var("OMNI_BENCH_QUICK").is_ok_and(|v| v == "1");
        for images in if quick { vec![] } else { vec![true, false] } {
            let (n, s, cpu) = fetch_only(&sb, images).await;
            println!(
                "fetch only (adapter + sandbox, no DB/queue) images={:<3} {n} profiles  {:>5.0}/s ({s:.2}s, {:.2} CPU-ms/profile)",
                if images { "on" } else { "off" },
                n as f64 / s,
                cpu * 1000.0 / n as f64
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = std::env::var("OMNI_BENCH_DATABASE_URL").or_else(|_| std::env::var("OMNI_TEST_DATABASE_URL")).ok();
        // The smoke pass (cargo test) only checks the image path end to end.
        let mut stores = Vec::new();
        for images in if full && !quick { vec![true, false] } else { vec![true] } {
            let sqlite = format!("sqlite://{}", dir.path().join(format!("ingest-{images}.db")).display());
            stores.push(bench("sqlite", &sqlite, &sb, n, images).await);
            match &pg {
                Some(url) => stores.push(bench("postgres", url, &sb, n, images).await),
                None if images => println!("postgres  skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"),
                None => {}
            }
        }
        // The stores go only now, after every measurement, and are synced so that a run started
        // a minute later does not find their inodes still skipped (see `bench`).
        drop(stores);
        drop(dir);
        // SAFETY: sync takes no arguments and only flushes the kernel's buffers.
        unsafe { libc::sync() };
        println!("peak RSS (VmHWM, whole process incl. sandbox): {:.0} MiB", support::peak_rss_mib());
        sb.shutdown().await.expect("sandbox shutdown");
    });
}
