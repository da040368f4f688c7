//! `omni demo`: the whole loop offline in one command — the sandbox platform in-process, a
//! throw-away SQLite database, a demo sender account, the simulated LLM judge, two sample
//! campaigns with discovery already started — then the console.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::engine::campaigns::discovery_jobs;
use crate::engine::llm::{LlmConfig, ProviderKind};
use crate::engine::pipeline::dispatch::AccountConfig;
use crate::engine::platforms::{PlatformConfig, PlatformKind};
use crate::engine::{Engine, Mode};
use crate::sandbox::SandboxOptions;

/// The demo sender account's handle on the sandbox.
pub const DEMO_SENDER: &str = "omni_team";
/// The environment variable the demo's sender token is read from (secrets come from the
/// environment, even in the demo).
pub const DEMO_TOKEN_ENV: &str = "OMNI_DEMO_SENDER_TOKEN";
const DEMO_TOKEN: &str = "omni-demo-token";

/// The sample campaigns the demo creates.
pub const SAMPLE_CAMPAIGNS: [(&str, &str); 2] = [
    (
        "food-creators.toml",
        include_str!("../examples/food-creators.toml"),
    ),
    (
        "fitness-coaches.toml",
        include_str!("../examples/fitness-coaches.toml"),
    ),
];

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Profiles in the simulated world.
    pub profiles: usize,
    /// World seed.
    pub seed: u64,
    /// Keep the database and images in this folder instead of a temporary one.
    pub dir: Option<PathBuf>,
    /// Start everything but no console; wait for SIGTERM/SIGINT (for scripted runs).
    pub headless: bool,
    /// Console options.
    pub tui: crate::tui::TuiOptions,
}

/// Sets the demo sender token in the environment. Call before any thread starts.
pub fn prepare_environment() {
    if std::env::var_os(DEMO_TOKEN_ENV).is_none() {
        // SAFETY-free in edition 2021, but still only sound while single-threaded: `cli::main`
        // calls this before building the async runtime.
        std::env::set_var(DEMO_TOKEN_ENV, DEMO_TOKEN);
    }
}

/// Runs the demo.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let token = std::env::var(DEMO_TOKEN_ENV).unwrap_or_else(|_| DEMO_TOKEN.to_string());
    let sandbox = crate::sandbox::bind(
        SandboxOptions {
            seed: opts.seed,
            profiles: opts.profiles,
            senders: vec![(DEMO_SENDER.to_string(), token)],
            reply_delay_secs: 45,
            ..Default::default()
        },
        "127.0.0.1:0".parse().context("loopback address")?,
    )
    .await
    .context("starting the sandbox platform")?;
    let (dir, temporary) = match &opts.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("omni-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = demo_config(&dir, sandbox.base_url())?;

    let setup = Engine::start(config.clone(), Mode::Client)
        .await
        .context("opening the demo database")?;
    let mut started = Vec::new();
    if setup.campaigns().await?.is_empty() {
        for (name, text) in SAMPLE_CAMPAIGNS {
            let c = setup
                .create_campaign(name, text)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let mut roots = Vec::new();
            for job in discovery_jobs(&c) {
                roots.push(setup.enqueue(job).await?.id);
            }
            started.push((c.id, roots));
        }
    }
    // Qualify each campaign as soon as its discovery is done, so leads appear within seconds
    // rather than at the next scheduled tick.
    let follow = setup.clone();
    let kick = tokio::spawn(async move {
        for (id, roots) in started {
            if follow.wait_for(&roots, |_| {}).await.is_ok() {
                let _ = follow
                    .enqueue(crate::engine::pipeline::qualify::qualify_job_for(id, None))
                    .await;
            }
        }
    });

    let result = if opts.headless {
        eprintln!(
            "omni demo: sandbox on {}, database {}; engine running (Ctrl-C to stop)",
            sandbox.base_url(),
            dir.display()
        );
        let engine = Engine::start(config, Mode::Daemon).await?;
        crate::cli::wait_for_signal().await?;
        engine.shutdown().await;
        Ok(())
    } else {
        crate::tui::run(config, opts.tui).await
    };
    kick.abort();
    setup.db().close().await;
    sandbox.shutdown().await.ok();
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The demo's configuration: everything local, fast schedules so the loop turns within minutes.
pub fn demo_config(dir: &std::path::Path, sandbox_url: &str) -> Result<Config> {
    let mut c = Config::defaults();
    c.database.url = format!("sqlite://{}", dir.join("omni-demo.db").display());
    c.storage.path = dir.join("objects");
    c.platforms = vec![PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        sandbox_url,
    )];
    c.llm = LlmConfig {
        provider: ProviderKind::OpenAi,
        base_url: sandbox_url.to_string(),
        model: "simulated-judge".into(),
        max_concurrency: 8,
        ..LlmConfig::default()
    };
    c.accounts = vec![AccountConfig {
        platform: "sandbox".into(),
        handle: DEMO_SENDER.into(),
        token_env: DEMO_TOKEN_ENV.into(),
        daily_cap: 500,
        hourly_cap: 120,
        min_gap_secs: 1,
        jitter_secs: 1,
        quiet_hours: None,
        timezone: "UTC".into(),
        warmup_days: 0,
    }];
    c.workers.poll_ms = 100;
    c.schedule.qualify = "* * * * *".into();
    c.schedule.feedback_sweep = "* * * * *".into();
    c.schedule.candidates_maintain = "*/5 * * * *".into();
    Ok(c)
}
