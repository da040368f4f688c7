//! The HTTP API under load: `GET /campaigns/:id/leads?limit=100` over 100,000 leads of one campaign
//! on SQLite, served by a real `omni daemon` process on loopback and driven by `wrk` (Debian's
//! `wrk` package). Two URLs: the first page, and a page deep in the list (reached through the
//! cursor), so keyset pagination is shown not to slow down with depth.
//!
//! `cargo bench --bench api` (needs `wrk` on PATH); without `--bench` (under `cargo test`) a
//! 2,000-lead smoke pass walks every page with reqwest and checks order, page size and totals.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omni::engine::{Engine, Mode};
use rand::{Rng, SeedableRng};

/// Seeds `n` profiles, one campaign and one lead per profile; returns the campaign id.
async fn seed(url: &str, dir: &Path, n: usize) -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    let db = support::fresh_db(url, 2).await;
    let seed_s = support::seed_profiles(&db, n, 42, now).await;
    db.close().await;
    let engine = Engine::start(
        support::offline_config(url, &dir.join("objects")),
        Mode::Client,
    )
    .await
    .expect("engine");
    let file = &support::campaign_files()[0];
    let campaign = engine
        .create_campaign("bench.toml", file)
        .await
        .expect("campaign");
    let campaign_id = campaign.id.0;
    // The maintenance job the create enqueued is not what this bench measures.
    sqlx::query("DELETE FROM jobs")
        .execute(engine.db().writer())
        .await
        .expect("clear jobs");
    let t = Instant::now();
    let statuses = ["new", "new", "new", "new", "approved", "rejected", "sent"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut tx = engine.db().begin_write().await.expect("begin");
    let mut id = 0usize;
    while id < n {
        let rows = 1_000.min(n - id);
        // Literal values, all generated here (binding 7,000 parameters is the slow part).
        let mut values = Vec::with_capacity(rows);
        for _ in 0..rows {
            id += 1;
            let created = now - rng.gen_range(0..30 * 86_400_000i64);
            values.push(format!(
                "({campaign_id}, {id}, {}, '{}', {created}, {created})",
                rng.gen_range(0..=100),
                statuses[rng.gen_range(0..statuses.len())]
            ));
        }
        let sql = format!(
            "INSERT INTO leads (campaign_id, profile_id, score, status, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert leads");
    }
    tx.commit().await.expect("commit");
    println!(
        "seeded {n} profiles in {seed_s:.1}s and {n} leads in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    engine.shutdown().await;
    campaign_id
}

/// A running `omni daemon`, stopped with SIGTERM on drop.
struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    fn start(url: &str, dir: &Path) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_omni"))
            .current_dir(dir)
            .args(["--database", url, "daemon"])
            .env("OMNI__API__BIND", format!("127.0.0.1:{port}"))
            .env("OMNI__STORAGE__PATH", dir.join("objects"))
            .env("OMNI__SCHEDULE__QUALIFY", "off")
            .env("OMNI__SCHEDULE__FEEDBACK_SWEEP", "off")
            .env("OMNI__SCHEDULE__WEIGHTS_UPDATE", "off")
            .env("OMNI__SCHEDULE__CANDIDATES_MAINTAIN", "off")
            .env("OMNI_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn omni daemon");
        Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client, dir: &Path) {
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
                panic!("omni daemon exited ({status}) before it became healthy:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("omni daemon did not become healthy within 30 s");
    }

    /// The daemon's peak resident set (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon drains and exits 0; kill only if it hangs.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(serde::Deserialize)]
struct Page {
    items: Vec<Item>,
    next_cursor: Option<String>,
}

#[derive(serde::Deserialize)]
struct Item {
    id: i64,
    score: i64,
}

async fn page(http: &reqwest::Client, url: &str) -> Page {
    let r = http.get(url).send().await.expect("GET leads");
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.expect("lead page JSON")
}

/// Walks `pages` pages (all when None); returns the cursor after them and every (score, id) seen.
async fn walk(
    http: &reqwest::Client,
    base: &str,
    campaign: i64,
    pages: Option<usize>,
) -> (Option<String>, Vec<(i64, i64)>) {
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut n = 0;
    loop {
        let mut url = format!("{base}/campaigns/{campaign}/leads?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let p = page(http, &url).await;
        assert!(p.items.len() <= 100, "a page holds at most `limit` leads");
        seen.extend(p.items.iter().map(|i| (i.score, i.id)));
        n += 1;
        cursor = p.next_cursor;
        if cursor.is_none() || pages.is_some_and(|max| n >= max) {
            return (cursor, seen);
        }
    }
}

/// What one wrk run reported.
struct WrkRun {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

fn millis(s: &str) -> f64 {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().expect("wrk latency") * scale
}

fn wrk(url: &str, threads: u32, connections: u32, seconds: u32) -> WrkRun {
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("running wrk failed ({e}); install it with `apt-get install wrk`")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed:\n{text}");
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_string()))
    };
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{text}"));
    WrkRun {
        requests_per_s: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}")),
        p50_ms: millis(&field("50%").expect("p50 in wrk output")),
        p99_ms: millis(&field("99%").expect("p99 in wrk output")),
        requests,
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

#[tokio::main]
async fn main() {
    let full = support::full();
    let n = if full { 100_000 } else { 2_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("omni.db").display());
    let campaign = seed(&url, dir.path(), n).await;

    let http = reqwest::Client::new();
    let mut daemon = Daemon::start(&url, dir.path());
    daemon.wait_healthy(&http, dir.path()).await;
    let base = daemon.base.clone();

    if !full {
        // Smoke: every lead exactly once, best first, pages of 100.
        let (_, seen) = walk(&http, &base, campaign, None).await;
        assert_eq!(seen.len(), n, "every lead is listed once");
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "leads come best score first, then by id, with no repeats"
        );
        println!(
            "api smoke: {n} leads in {} pages, in order",
            n.div_ceil(100)
        );
        return;
    }

    // The cursor of page 500 (of 1,000): a deep page, reached by walking.
    let t = Instant::now();
    let (deep, seen) = walk(&http, &base, campaign, Some(500)).await;
    let deep = deep.expect("a cursor after page 500");
    let walk_s = t.elapsed().as_secs_f64();
    assert_eq!(seen.len(), 50_000);
    println!(
        "walked 500 pages sequentially in {walk_s:.2}s ({:.0} pages/s, one connection)",
        500.0 / walk_s
    );

    let first = format!("{base}/campaigns/{campaign}/leads?limit=100");
    let body = http
        .get(&first)
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    println!("one page of 100 leads: {} bytes of JSON", body.len());
    let deep_url = format!("{first}&cursor={deep}");
    // A short warm-up so the page cache and connection pool are as in steady state.
    wrk(&first, 1, 4, 2);
    for (label, url) in [("first page", &first), ("page 501", &deep_url)] {
        for (threads, conns) in [(1, 1), (2, 16), (2, 64)] {
            let r = wrk(url, threads, conns, 10);
            assert_eq!(r.non_2xx, 0, "every response is 200");
            println!(
                "{label:<10} wrk -t{threads} -c{conns:<2} -d10s  {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
                r.requests_per_s, r.p50_ms, r.p99_ms, r.requests
            );
        }
    }
    println!("daemon peak RSS: {:.0} MiB", daemon.peak_rss_mib());
}
