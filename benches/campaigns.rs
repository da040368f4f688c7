//! Campaign candidates at scale: 1,000,000 synthetic `profile_features` rows and 10 campaigns of
//! different selectivity, on SQLite and (when OMNI_BENCH_DATABASE_URL or OMNI_TEST_DATABASE_URL is
//! set) PostgreSQL. Measures:
//!
//! - full maintenance of all 10 campaigns as the `candidates.maintain` job runs it
//!   (`maintain_campaigns`: planned on two read connections, applied by the writer): the first run
//!   (fresh campaigns, empty candidate sets), hourly re-runs with nothing changed, and the first run
//!   of a new UTC day (every score's recency moves by a day, so every row is rewritten once a day);
//! - incremental maintenance of changed profiles the way a scrape does it: each profile recorded
//!   in write transactions of SCRAPE_BATCH (`on_profiles_changed`), then its batch drained by the
//!   `candidates.pending` job's function (`drain`); and the batched `maintain_profiles`. Afterwards
//!   a full maintenance must find nothing to write or evict (incremental == full);
//! - the top-1,000 shortlist.
//!
//! `cargo bench --bench campaigns`; without `--bench` a 1,000-profile smoke pass. Sizes can be
//! overridden with OMNI_BENCH_PROFILES, OMNI_BENCH_REPS (full maintenance runs) and
//! OMNI_BENCH_CHANGED (profiles changed per incremental round; default profiles / 50);
//! OMNI_BENCH_SQLITE_DIR keeps the SQLite database there.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use omni::db::campaigns::Campaign;
use omni::db::profiles::ProfileId;
use omni::engine::pipeline::candidates::{
    drain, maintain_campaigns, maintain_profiles, on_profiles_changed, Maintained, PENDING_KIND,
};
use omni::engine::pipeline::ingest::SCRAPE_BATCH;
use omni::engine::pipeline::score::score_epoch;
use omni::engine::queue::JobId;
use omni::engine::{Engine, Mode};
use support::{median, peak_rss_mib};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A full maintenance of every campaign at `now` as the hourly job runs it ([`maintain_campaigns`]:
/// each campaign in its own write transaction, evictees looked up beside it on a read connection);
/// returns the seconds taken and the summed counts.
async fn full(engine: &Engine, campaigns: &[Campaign], now: i64) -> (f64, Vec<i64>, Maintained) {
    let t = Instant::now();
    let mut counts = vec![0; campaigns.len()];
    let mut total = Maintained::default();
    maintain_campaigns(engine.db(), campaigns, now, |i, _, m| {
        counts[i] = m.profiles;
        total += m;
        async {}
    })
    .await
    .expect("maintain");
    (t.elapsed().as_secs_f64(), counts, total)
}

/// Changes the features of every profile with `id % every == rest` (not timed): audience, engagement
/// and activity move, so scores change and some profiles start or stop matching. Returns their ids.
async fn change_profiles(engine: &Engine, n: usize, every: i64, rest: i64) -> Vec<ProfileId> {
    sqlx::query(
        "UPDATE profile_features SET followers = followers * 3 + 50, log_followers = log_followers + 1.0, \
         engagement_rate = engagement_rate * 0.7, posts_per_week = posts_per_week + 1.0 \
         WHERE profile_id % $1 = $2",
    )
    .bind(every)
    .bind(rest)
    .execute(engine.db().writer())
    .await
    .expect("change profiles");
    (1..=n as i64)
        .filter(|id| id % every == rest)
        .map(ProfileId)
        .collect()
}

struct Sizes {
    profiles: usize,
    reps: usize,
    changed: usize,
}

async fn bench(label: &str, url: &str, s: &Sizes) {
    let n = s.profiles;
    // Mid-morning UTC: hourly re-runs stay inside one score day.
    let now = score_epoch(chrono::Utc::now().timestamp_millis()) + 6 * HOUR_MS;
    let db = support::fresh_db(url, 4).await;
    sqlx::raw_sql("DELETE FROM candidates_pending; DELETE FROM candidates_batches")
        .execute(db.pool())
        .await
        .expect("clear batches");
    let seed_s = support::seed_profiles(&db, n, 42, now).await;
    db.close().await;
    println!(
        "{label:<9} seeded {n} profiles in {seed_s:.1}s ({:.0} rows/s)",
        n as f64 / seed_s
    );

    // Client mode: no workers, so the maintenance jobs enqueued here do not run behind our back.
    let store = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(support::offline_config(url, store.path()), Mode::Client)
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

    // Full maintenance: the first run fills empty candidate sets; hourly re-runs find nothing
    // changed; the first run of the next UTC day rescores every row.
    let (first, counts, m) = full(&engine, &campaigns, now).await;
    let total: i64 = counts.iter().sum();
    println!(
        "{label:<9} full maintenance, first (fresh campaigns): {first:.2}s  written {} evicted {}",
        m.written, m.evicted
    );
    println!("{label:<9} candidates per campaign: {counts:?} (total {total})");
    let mut reruns = Vec::new();
    for rep in 1..=s.reps {
        let (secs, _, m) = full(&engine, &campaigns, now + rep as i64 * HOUR_MS).await;
        println!(
            "{label:<9} full maintenance, hourly re-run {rep} (no profile changed): {secs:.2}s  written {} evicted {}",
            m.written, m.evicted
        );
        // Only evictions (profiles leaving `active_within_days` as time passes); no rewrite.
        assert_eq!(m.written, 0, "{label}: a re-run rewrote rows");
        reruns.push(secs);
    }
    let rerun = median(&mut reruns);
    let now = now + DAY_MS;
    let (next_day, _, m) = full(&engine, &campaigns, now).await;
    println!(
        "{label:<9} full maintenance, first run of the next day: {next_day:.2}s  written {} evicted {}",
        m.written, m.evicted
    );

    // Incremental, the scrape's path: the changed profiles recorded in write transactions of
    // SCRAPE_BATCH (what a `scrape.batch` job adds to its transaction), then the batch drained by
    // the job's function. Then the batched `maintain_profiles` (500 ids per statement) in one
    // transaction. Each is measured over `reps` rounds, each round changing other profiles.
    let every = (n / s.changed).max(1) as i64;
    let (mut drains, mut records, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..s.reps {
        let changed = change_profiles(&engine, n, every, (7 + 2 * rep as i64) % every).await;
        let root = JobId(1_000_000_000 + rep as i64);
        let t = Instant::now();
        for ids in changed.chunks(SCRAPE_BATCH) {
            let mut tx = engine.db().begin_write().await.expect("begin");
            on_profiles_changed(&mut tx, engine.services(), ids, Some(root), now)
                .await
                .expect("on_profiles_changed");
            tx.commit().await.expect("commit");
        }
        let record_s = t.elapsed().as_secs_f64();
        let batches: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE kind = $1 AND status = 'queued' ORDER BY id",
        )
        .bind(PENDING_KIND)
        .fetch_all(engine.db().pool())
        .await
        .expect("batches");
        assert_eq!(batches.len(), 1, "{label}: one open batch per tree");
        let t = Instant::now();
        let mut drained = Maintained::default();
        for job in &batches {
            drained += drain(engine.db(), JobId(*job), now).await.expect("drain");
        }
        let drain_s = t.elapsed().as_secs_f64();
        // Not a queue bench: the drained job is marked done by hand.
        sqlx::query("UPDATE jobs SET status = 'done' WHERE id = $1")
            .bind(batches[0])
            .execute(engine.db().writer())
            .await
            .expect("finish job");
        assert_eq!(drained.profiles as usize, changed.len());
        let k = changed.len() as f64;
        println!(
            "{label:<9} incremental (scrape path), round {}, {} changed profiles: record {:.0} µs/profile (tx of 20), \
             drain {:.0} profiles/s (written {} evicted {})",
            rep + 1,
            changed.len(),
            record_s * 1e6 / k,
            k / drain_s,
            drained.written,
            drained.evicted
        );
        drains.push(k / drain_s);
        records.push(record_s * 1e6 / k);

        let changed2 = change_profiles(&engine, n, every, (8 + 2 * rep as i64) % every).await;
        let t = Instant::now();
        let mut tx = engine.db().begin_write().await.expect("begin");
        let m2 = maintain_profiles(&mut tx, &changed2, now)
            .await
            .expect("maintain_profiles");
        tx.commit().await.expect("commit");
        let rate = changed2.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "{label:<9} incremental (maintain_profiles, one transaction), round {}, {} changed profiles: {rate:.0} profiles/s (written {} evicted {})",
            rep + 1,
            changed2.len(),
            m2.written,
            m2.evicted
        );
        batched.push(rate);
    }
    let drain_rate = median(&mut drains);
    let record_us = median(&mut records);
    let batched = median(&mut batched);
    // Incremental maintenance must agree with the full one: nothing left to write or evict.
    let (_, counts, m) = full(&engine, &campaigns, now).await;
    assert_eq!(
        (m.written, m.evicted),
        (0, 0),
        "{label}: incremental maintenance disagrees with the full one"
    );

    // Shortlist top-1,000 of each campaign, several times; median per call.
    let mut times = Vec::new();
    for _ in 0..s.reps.max(3) {
        for (i, c) in campaigns.iter().enumerate() {
            let t = Instant::now();
            let ids = engine.shortlist(c.id, 1_000).await.expect("shortlist");
            times.push(t.elapsed().as_secs_f64() * 1_000.0);
            assert_eq!(ids.len() as i64, counts[i].min(1_000));
        }
    }
    let worst = times.iter().cloned().fold(0.0, f64::max);
    let shortlist_ms = median(&mut times);
    println!(
        "{label:<9} profiles={n}  full maintenance (10 campaigns): first {first:.2}s, hourly re-run median {rerun:.2}s over {}, \
         next day {next_day:.2}s  incremental (median of {}): drain {drain_rate:.0} profiles/s (record {record_us:.0} µs/profile in the scrape's tx), \
         maintain_profiles {batched:.0} profiles/s  shortlist top-1000: median {shortlist_ms:.1} ms, worst {worst:.1} ms  peak RSS {:.0} MiB",
        s.reps,
        s.reps,
        peak_rss_mib()
    );
    engine.shutdown().await;
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let (profiles, reps) = if support::full() {
        (1_000_000, 3)
    } else {
        (1_000, 1)
    };
    let profiles = env_usize("OMNI_BENCH_PROFILES").unwrap_or(profiles);
    let sizes = Sizes {
        profiles,
        reps: env_usize("OMNI_BENCH_REPS").unwrap_or(reps).max(1),
        changed: env_usize("OMNI_BENCH_CHANGED")
            .unwrap_or(profiles / 50)
            .clamp(1, profiles),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        // OMNI_BENCH_SQLITE_DIR keeps the SQLite database for inspection (e.g. query plans).
        let path = std::env::var("OMNI_BENCH_SQLITE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| dir.path().to_path_buf())
            .join("campaigns.db");
        let _ = std::fs::remove_file(&path);
        let sqlite = format!("sqlite://{}", path.display());
        bench("sqlite", &sqlite, &sizes).await;
        match support::pg_url() {
            Some(url) => bench("postgres", &url, &sizes).await,
            None => println!(
                "postgres  skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"
            ),
        }
    });
}
