//! Queue throughput: enqueue N no-op jobs (batched), then drain them with worker pools, on SQLite
//! and (when OMNI_BENCH_DATABASE_URL or OMNI_TEST_DATABASE_URL is set) PostgreSQL.
//!
//! `cargo bench --bench queue` runs 100,000 jobs; under `cargo test` it runs a 500-job smoke pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omni::db::Db;
use omni::engine::clock::SystemClock;
use omni::engine::events::EventBus;
use omni::engine::queue::{Backoff, JobFilter, JobStatus, NewJob, Queue};
use omni::engine::worker::{JobCtx, Registry, WorkerConfig, WorkerPool};

async fn bench(label: &str, url: &str, n: usize, pools: usize, concurrency: usize) {
    let db = Db::connect(url, 16).await.expect("connect");
    db.migrate().await.expect("migrate");
    sqlx::query("DELETE FROM jobs")
        .execute(db.writer())
        .await
        .expect("clear jobs");
    let q = Queue::new(
        db.clone(),
        Arc::new(SystemClock),
        EventBus::default(),
        Backoff::default(),
    );

    let t = Instant::now();
    let batch: Vec<NewJob> = (0..1_000)
        .map(|i| NewJob::new("system.noop", serde_json::json!({ "i": i })))
        .collect();
    for _ in 0..n / 1_000 {
        q.enqueue_many(&batch).await.expect("enqueue");
    }
    let rest: Vec<NewJob> = batch[..n % 1_000].to_vec();
    if !rest.is_empty() {
        q.enqueue_many(&rest).await.expect("enqueue");
    }
    let enqueue_s = t.elapsed().as_secs_f64();

    let (tx, rx) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let mut handles = Vec::new();
    for p in 0..pools {
        let mut reg: Registry<()> = Registry::new();
        reg.register("system.noop", |_c: JobCtx<()>| async { Ok(None) });
        let cfg = WorkerConfig {
            concurrency,
            claim_batch: concurrency,
            poll_ms: 5,
            ..Default::default()
        };
        let pool = WorkerPool::new(q.clone(), reg, (), cfg, format!("bench-{p}"));
        handles.push(tokio::spawn(pool.run(rx.clone())));
    }
    loop {
        // Indexed existence checks: a COUNT(*) over all 100k rows every 20 ms cost as much CPU
        // as the queue itself on a 2-core machine. Each EXISTS matches one partial index
        // (jobs_claim, jobs_running); one `status IN (…3 statuses)` would not.
        let left: Option<i64> = sqlx::query_scalar(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'failed')) \
             OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running')",
        )
        .fetch_optional(db.pool())
        .await
        .expect("poll");
        if left.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = t.elapsed().as_secs_f64();
    tx.send(true).expect("stop pools");
    for h in handles {
        h.await.expect("pool");
    }
    let done = q
        .list(&JobFilter {
            status: Some(JobStatus::Succeeded),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(!done.is_empty());
    println!(
        "{label:<10} jobs={n:>7} pools={pools} concurrency={concurrency:>3}  enqueue {:>9.0} jobs/s  drain {:>8.0} jobs/s  ({:.2}s + {:.2}s)",
        n as f64 / enqueue_s,
        n as f64 / drain_s,
        enqueue_s,
        drain_s
    );
    db.close().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 100_000 } else { 500 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        for (pools, conc) in [(1, 32), (2, 32)] {
            bench("sqlite", &sqlite, n, pools, conc).await;
        }
        let pg = std::env::var("OMNI_BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("OMNI_TEST_DATABASE_URL"));
        match pg {
            Ok(url) => {
                for (pools, conc) in [(1, 32), (2, 32)] {
                    bench("postgres", &url, n, pools, conc).await;
                }
            }
            Err(_) => println!(
                "postgres   skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"
            ),
        }
    });
}
