//! Qualification throughput against a local OpenAI-protocol server that answers every chat
//! completion with a valid verdict after 200 ms. With `llm.max_concurrency = 16` the ceiling is
//! 16 / 0.2 s = 80 verdicts/s; this measures verdicts/s end to end (shortlist, prompt with images,
//! HTTP, verdict parse, `llm_scores` + `leads` writes, queue), then a rerun on unchanged profiles,
//! which must make no call.
//!
//! Profiles come from the in-process sandbox (ingested first, not timed). `cargo bench --bench
//! qualify` judges 2,000 profiles on SQLite (and PostgreSQL when a URL is set); without `--bench`
//! a 40-profile smoke pass with a 20 ms answer delay.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use omni::config::Config;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::pipeline::ingest::CrawlSeed;
use omni::engine::pipeline::qualify::qualify_job_for;
use omni::engine::platforms::{DiscoverySource, PlatformConfig, PlatformKind};
use omni::engine::queue::NewJob;
use omni::engine::{Engine, Mode};
use omni::sandbox::{SandboxHandle, SandboxOptions};
use serde_json::{json, Value};

const SANDBOX_START: i64 = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;
const CONCURRENCY: usize = 16;

/// The fake LLM server's counters.
#[derive(Default)]
struct Llm {
    delay_ms: u64,
    calls: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
}

async fn chat(State(llm): State<Arc<Llm>>, Json(req): Json<Value>) -> Json<Value> {
    let n = llm.calls.fetch_add(1, Ordering::SeqCst);
    let now = llm.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    llm.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(llm.delay_ms)).await;
    llm.in_flight.fetch_sub(1, Ordering::SeqCst);
    // A spread of scores so some verdicts become leads and some do not.
    let score = (n * 37 % 101) as i64;
    let verdict = json!({
        "qualified": score >= 60,
        "score": score,
        "reasons": ["posts recipes with own photos", "active this week"],
        "red_flags": [],
        "opener": if score >= 60 { "Loved your lentil stew post!" } else { "" },
    });
    let model = req["model"].as_str().unwrap_or("bench-model").to_string();
    Json(json!({
        "id": format!("chatcmpl-bench{n}"),
        "object": "chat.completion",
        "created": 1_732_183_200,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": verdict.to_string(), "refusal": null, "annotations": [] },
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 1123, "completion_tokens": 48, "total_tokens": 1171 },
        "service_tier": "default",
        "system_fingerprint": "fp_bench"
    }))
}

async fn start_llm(delay_ms: u64) -> (String, Arc<Llm>) {
    let llm = Arc::new(Llm {
        delay_ms,
        ..Default::default()
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(llm.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), llm)
}

fn campaign(n: usize) -> String {
    format!(
        r#"name = "Everyone"
platform = "sandbox"
brief = "Home cooks and food creators who post recipes with their own photos; not brands."
[filter]
followers = {{ min = 0 }}
[qualify]
shortlist_k = {n}
threshold = 60
max_images = 3
daily_llm_calls = {n}
[outreach]
template = "Hi {{{{ display_name }}}}! {{{{ opener }}}}"
accounts = ["omni"]
"#
    )
}

fn config(url: &str, sb: &SandboxHandle, storage: &std::path::Path, llm_url: &str) -> Config {
    let mut c = Config::defaults();
    c.database.url = url.to_string();
    c.database.max_connections = 16;
    c.storage.path = storage.to_path_buf();
    let mut p = PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url());
    p.backoff_ms = 10;
    c.platforms = vec![p];
    c.llm = LlmConfig {
        provider: ProviderKind::OpenAi,
        base_url: llm_url.to_string(),
        model: "bench-model".into(),
        max_concurrency: CONCURRENCY,
        retry_base_ms: 10,
        ..LlmConfig::default()
    };
    // More workers than LLM slots, so the LLM limiter (not the pool) is what caps throughput.
    c.workers.concurrency = 32;
    c.workers.claim_batch = 32;
    c.workers.poll_ms = 20;
    support::schedules_off(&mut c);
    c
}

async fn bench(label: &str, url: &str, sb: &SandboxHandle, n: usize, delay_ms: u64) {
    support::fresh_db(url, 2).await.close().await;
    let (llm_url, llm) = start_llm(delay_ms).await;
    let store = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(config(url, sb, store.path(), &llm_url), Mode::Inline)
        .await
        .expect("engine");
    // The campaign exists before the crawl, so candidates arrive with each scrape.
    let c = engine
        .create_campaign("everyone.toml", &campaign(n))
        .await
        .expect("campaign");
    let seed = CrawlSeed {
        platform: "sandbox".into(),
        source: DiscoverySource::Directory,
        cursor: None,
        limit: n,
        seen: 0,
        fresh_secs: 0,
    };
    let ingest_s = support::run_tree(
        &engine,
        NewJob::new("crawl.seed", serde_json::to_value(seed).expect("seed")),
        20,
    )
    .await;
    // The directory lists only discoverable profiles; every ingested one is a candidate.
    let candidates = support::scalar(&engine, "SELECT COUNT(*) FROM campaign_candidates").await;
    assert_eq!(
        candidates,
        support::scalar(&engine, "SELECT COUNT(*) FROM profile_features").await,
        "{label}: every profile is a candidate"
    );
    assert!(
        candidates as f64 >= 0.8 * n as f64,
        "{label}: only {candidates} of {n} profiles ingested"
    );

    let qualify_s = support::run_tree(&engine, qualify_job_for(c.id, None), 20).await;
    let verdicts = support::scalar(&engine, "SELECT COUNT(*) FROM llm_scores").await;
    let leads = support::scalar(&engine, "SELECT COUNT(*) FROM leads").await;
    let calls = llm.calls.load(Ordering::SeqCst);
    assert_eq!(verdicts, candidates, "{label}: one verdict per candidate");
    assert_eq!(calls, candidates as u64, "{label}: one call per verdict");
    let ceiling = CONCURRENCY as f64 / (delay_ms as f64 / 1000.0);
    let rate = verdicts as f64 / qualify_s;

    let rerun_s = support::run_tree(&engine, qualify_job_for(c.id, None), 20).await;
    let rerun_calls = llm.calls.load(Ordering::SeqCst) - calls;
    assert_eq!(
        rerun_calls, 0,
        "{label}: unchanged profiles were judged again"
    );
    println!(
        "{label:<9} verdicts={verdicts} (leads {leads})  {rate:.1} verdicts/s = {:.0}% of the {ceiling:.0}/s limit ({qualify_s:.2}s, max {} calls in flight)  \
         rerun on unchanged: {rerun_calls} calls, {:.0} ms  (ingest before: {ingest_s:.1}s)",
        rate / ceiling * 100.0,
        llm.max_in_flight.load(Ordering::SeqCst),
        rerun_s * 1000.0
    );
    engine.shutdown().await;
}

fn main() {
    let full = support::full();
    let (n, delay_ms) = if full { (2_000, 200) } else { (40, 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let opts = SandboxOptions {
            seed: 5,
            profiles: n,
            start_ms: Some(SANDBOX_START),
            change_fraction: 0.0,
            ..Default::default()
        };
        let sb = omni::sandbox::bind(opts, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sandbox");
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("qualify.db").display());
        bench("sqlite", &sqlite, &sb, n, delay_ms).await;
        match support::pg_url() {
            Some(url) => bench("postgres", &url, &sb, n, delay_ms).await,
            None => println!(
                "postgres  skipped: set OMNI_BENCH_DATABASE_URL (scripts/with-postgres does)"
            ),
        }
        sb.shutdown().await.expect("sandbox shutdown");
    });
}
