//! The crawler service (crawler/, Python) as a platform transport: sandbox profiles fetched through
//! it parse to the same snapshots as the native transport, its token and SSRF refusals reach the
//! adapter as typed errors, and a small timing compares the two (`--nocapture` prints it).
//!
//! Needs crawler/.venv (made by scripts/crawler-test). Without it the tests skip with a note, except
//! under `CI=true`, where a missing venv is a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use omni::engine::platforms::{
    build, DiscoverySource, Platform, PlatformConfig, PlatformError, PlatformKind, TransportKind,
};
use omni::sandbox::{bind, SandboxHandle, SandboxOptions};
use serde_json::Value;

/// 2026-01-01T12:00:00Z: a pinned start so both transports see the same world.
const START_MS: i64 = 1_767_268_800_000;

/// The venv's python, or `None` (after a note) when the tests must skip.
fn venv_python() -> Option<PathBuf> {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crawler/.venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but {} is missing: run scripts/crawler-test first (it builds the venv)",
            py.display()
        );
    }
    eprintln!(
        "note: skipping the crawler transport test: {} is missing (run scripts/crawler-test first)",
        py.display()
    );
    None
}

/// A running crawler service; killed on drop.
struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Starts `python -m omni_crawler` on a free loopback port and waits for /healthz.
async fn start_service(py: &PathBuf, args: &[&str], envs: &[(&str, &str)]) -> Service {
    let port = free_port();
    let mut cmd = Command::new(py);
    cmd.args(["-m", "omni_crawler", "--port", &port.to_string()])
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crawler"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn the crawler service");
    let svc = Service {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let c = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(r) = c.get(format!("{}/healthz", svc.url)).send().await {
            if r.status().is_success() {
                return svc;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the crawler service did not answer /healthz within 15 s");
}

async fn sandbox(profiles: usize) -> SandboxHandle {
    let opts = SandboxOptions {
        seed: 7,
        profiles,
        start_ms: Some(START_MS),
        change_fraction: 0.0,
        ..SandboxOptions::default()
    };
    bind(opts, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("sandbox binds")
}

async fn sandbox_json(sb: &SandboxHandle, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sb.base_url()))
        .await
        .expect("sandbox answers")
        .json()
        .await
        .expect("sandbox JSON")
}

fn platform(sb: &SandboxHandle, service: Option<&Service>) -> Arc<dyn Platform> {
    let mut cfg = PlatformConfig {
        max_retries: 0,
        ..PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url())
    };
    if let Some(s) = service {
        cfg.transport = TransportKind::Service;
        cfg.crawler_url = Some(s.url.clone());
    }
    build(&cfg).expect("platform builds")
}

/// Fetches every handle with `concurrency` in flight; returns the snapshots in handle order.
async fn fetch_all(
    p: &Arc<dyn Platform>,
    handles: &[String],
    concurrency: usize,
) -> Vec<omni::engine::platforms::ProfileSnapshot> {
    let mut out: Vec<_> = stream::iter(handles.iter().enumerate())
        .map(|(i, h)| {
            let p = p.clone();
            async move { (i, p.fetch_profile(h, 5).await.expect("profile fetch")) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sandbox_profiles_through_the_service_match_native() {
    let Some(py) = venv_python() else { return };
    let svc = start_service(&py, &["--allow", "127.0.0.0/8", "--per-host", "8"], &[]).await;
    let sb = sandbox(300).await;
    let handles: Vec<String> = sandbox_json(&sb, "/_sandbox/handles")
        .await
        .as_array()
        .expect("handle list")
        .iter()
        .take(60)
        .map(|h| h.as_str().expect("handle").to_string())
        .collect();
    assert_eq!(handles.len(), 60);
    let native = platform(&sb, None);
    let service = platform(&sb, Some(&svc));

    // Discovery: the same first directory page.
    let a = native
        .discover(&DiscoverySource::Directory, None)
        .await
        .expect("native discover");
    let b = service
        .discover(&DiscoverySource::Directory, None)
        .await
        .expect("service discover");
    assert!(!a.accounts.is_empty());
    assert_eq!(a, b, "directory page differs between transports");

    // Profiles: identical parsed snapshots; timed with 8 in flight on each transport.
    let count = |sb: &SandboxHandle| {
        let sb = sb.base_url().to_string();
        async move {
            reqwest::get(format!("{sb}/_sandbox/stats"))
                .await
                .expect("stats")
                .json::<Value>()
                .await
                .expect("stats JSON")["api_requests"]
                .as_u64()
                .expect("api_requests")
        }
    };
    let mut rates = Vec::new();
    let mut results = Vec::new();
    for (name, p) in [("native", &native), ("service", &service)] {
        let before = count(&sb).await;
        let t = Instant::now();
        let snaps = fetch_all(p, &handles, 8).await;
        let secs = t.elapsed().as_secs_f64();
        let pages = count(&sb).await - before;
        rates.push((name, pages, secs, pages as f64 / secs));
        results.push(snaps);
    }
    assert_eq!(results[0].len(), handles.len());
    assert!(results[0].iter().all(|s| !s.account.acct.is_empty()));
    assert_eq!(results[0], results[1], "profiles differ between transports");
    for (name, pages, secs, rate) in rates {
        println!(
            "crawler bench: {name:<7} {pages} sandbox pages ({} profiles, 8 in flight) in {secs:.3} s = {rate:.1} pages/s",
            handles.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_token_and_ssrf_refusals_become_typed_errors() {
    let Some(py) = venv_python() else { return };
    let sb = sandbox(20).await;
    let handle = sandbox_json(&sb, "/_sandbox/handles").await[0]
        .as_str()
        .expect("handle")
        .to_string();

    // With a token: the right one works, a wrong one is a non-retryable error.
    let token_var = "OMNI_TEST_CRAWLER_TOKEN_IT";
    let svc = start_service(
        &py,
        &["--allow", "127.0.0.0/8", "--token-env", token_var],
        &[(token_var, "right-token")],
    )
    .await;
    std::env::set_var(token_var, "right-token");
    let mut cfg = PlatformConfig {
        max_retries: 0,
        transport: TransportKind::Service,
        crawler_url: Some(svc.url.clone()),
        crawler_token_env: Some(token_var.to_string()),
        ..PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url())
    };
    let snap = build(&cfg)
        .expect("builds")
        .fetch_profile(&handle, 2)
        .await
        .expect("fetch with the right token");
    assert!(!snap.account.id.is_empty());
    let wrong_var = "OMNI_TEST_CRAWLER_TOKEN_IT_WRONG";
    std::env::set_var(wrong_var, "wrong-token");
    cfg.crawler_token_env = Some(wrong_var.to_string());
    let err = build(&cfg)
        .expect("builds")
        .fetch_profile(&handle, 2)
        .await
        .expect_err("a wrong token is refused");
    assert!(
        matches!(&err, PlatformError::InvalidInput(d) if d.contains("401")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    drop(svc);

    // Without --allow the loopback sandbox is refused by the SSRF rule, and not retried.
    let svc = start_service(&py, &[], &[]).await;
    let p = platform(&sb, Some(&svc));
    let err = p
        .fetch_profile(&handle, 2)
        .await
        .expect_err("loopback is refused");
    assert!(
        matches!(&err, PlatformError::InvalidInput(d) if d.contains("non-public address")),
        "{err:?}"
    );

    // A service transport without crawler_url is a config error naming the fix.
    let bad = PlatformConfig {
        transport: TransportKind::Service,
        ..PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url())
    };
    let err = build(&bad).expect_err("crawler_url is required");
    assert!(
        matches!(&err, PlatformError::Config(d) if d.contains("crawler_url")),
        "{err:?}"
    );
}
