//! The command line: parse, call the engine service, print. Thin on purpose.
//!
//! Exit codes: 0 success; 1 an error (printed as `error: …`); 2 bad usage (from clap);
//! 3 a waited-for job ended dead or cancelled.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Sources};
use crate::db::jobs::TreeCounts;
use crate::engine::queue::{Job, JobFilter, JobId, JobStatus, NewJob};
use crate::engine::{Engine, Mode};

/// Omni: find, qualify and contact the right people on social platforms.
#[derive(Debug, Parser)]
#[command(name = "omni", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: ./omni.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the configuration (sqlite://PATH or postgres://…).
    #[arg(long, global = true, value_name = "URL", env = "OMNI_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (idempotent; every mode also does this on start).
    Migrate,
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Show a job, or retry / cancel / enqueue one.
    #[command(args_conflicts_with_subcommands = true)]
    Job(JobArgs),
    /// Run workers only (scale-out: any number of these on one database). Stops on SIGTERM/SIGINT.
    Worker,
    /// Run the engine, the scheduler and the HTTP API headless. Stops gracefully on SIGTERM/SIGINT.
    Daemon,
}

/// `omni jobs`
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this status (queued, running, succeeded, failed, dead, cancelled).
    #[arg(long)]
    pub status: Option<JobStatus>,
    /// Only jobs of this kind (e.g. scrape.profile).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// `omni job`
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job to show.
    pub id: Option<i64>,
    /// An action on a job.
    #[command(subcommand)]
    pub action: Option<JobAction>,
}

/// Actions on one job.
#[derive(Debug, Subcommand)]
pub enum JobAction {
    /// Re-queue a dead, failed or cancelled job with a fresh attempt budget.
    Retry {
        /// The job.
        id: i64,
    },
    /// Cancel a queued, failed or running job.
    Cancel {
        /// The job.
        id: i64,
    },
    /// Enqueue a job by kind (diagnostics: `system.sleep --payload '{"ms":1000}'`).
    Enqueue {
        /// The job kind.
        kind: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Deduplication key.
        #[arg(long)]
        unique: Option<String>,
        #[command(flatten)]
        wait: WaitArg,
    },
}

/// `--wait` for commands that enqueue work.
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitArg {
    /// Wait until the work is done: with no engine running on this database, run workers
    /// in-process; otherwise follow the running engine's progress. Exits 3 if a job ends dead.
    #[arg(long)]
    pub wait: bool,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(long_running: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if long_running { "info,sqlx=warn" } else { "warn" };
    let filter = EnvFilter::try_from_env("OMNI_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if long_running && !std::io::stderr().is_terminal() {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut overrides = Vec::new();
    if let Some(url) = &cli.database {
        overrides.push(("database.url".to_string(), url.clone()));
    }
    Ok(Config::load(&Sources { file: cli.config.clone(), env: true, overrides })?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    init_tracing(matches!(cli.command, Command::Worker | Command::Daemon));
    let config = load_config(&cli)?;
    match &cli.command {
        Command::Migrate => {
            let db = crate::db::Db::connect(&config.database_url(), 1).await?;
            db.migrate().await.context("migrating the database")?;
            if cli.json {
                println!("{}", serde_json::json!({ "migrated": true }));
            } else {
                println!("database is up to date");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs(args) => {
            let engine = Engine::start(config, Mode::Client).await?;
            let jobs = engine
                .jobs(&JobFilter {
                    status: args.status,
                    kind: args.kind.clone(),
                    limit: args.limit,
                    ..Default::default()
                })
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print_jobs(&jobs);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Job(args) => job_command(&cli, config, args).await,
        Command::Worker => serve(config, Mode::Worker).await,
        Command::Daemon => serve(config, Mode::Daemon).await,
    }
}

async fn job_command(cli: &Cli, config: Config, args: &JobArgs) -> Result<ExitCode> {
    match (&args.action, args.id) {
        (Some(JobAction::Enqueue { kind, payload, unique, wait }), _) => {
            let payload: serde_json::Value =
                serde_json::from_str(payload).with_context(|| format!("--payload is not valid JSON: {payload}"))?;
            let mut job = NewJob::new(kind.clone(), payload);
            if let Some(u) = unique {
                job = job.unique(u.clone());
            }
            enqueue_and_maybe_wait(cli, config, vec![job], *wait).await
        }
        (Some(JobAction::Retry { id }), _) => {
            let engine = Engine::start(config, Mode::Client).await?;
            let job = engine.retry_job(JobId(*id)).await?;
            print_job(cli, &job)?;
            Ok(ExitCode::SUCCESS)
        }
        (Some(JobAction::Cancel { id }), _) => {
            let engine = Engine::start(config, Mode::Client).await?;
            let job = engine.cancel_job(JobId(*id)).await?;
            print_job(cli, &job)?;
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(id)) => {
            let engine = Engine::start(config, Mode::Client).await?;
            let job = engine.job(JobId(id)).await?;
            print_job(cli, &job)?;
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => anyhow::bail!("give a job id (`omni job 42`) or an action (`omni job retry 42`); see `omni job --help`"),
    }
}

/// Enqueues `jobs`; with `--wait`, waits for their whole trees as described on [`WaitArg`].
pub async fn enqueue_and_maybe_wait(cli: &Cli, config: Config, jobs: Vec<NewJob>, wait: WaitArg) -> Result<ExitCode> {
    let client = Engine::start(config.clone(), Mode::Client).await?;
    let live = client.live_nodes().await?;
    let engine = if wait.wait && live.is_empty() {
        Engine::start(config, Mode::Inline).await?
    } else {
        client
    };
    let mut ids = Vec::new();
    for job in jobs {
        let e = engine.enqueue(job).await?;
        ids.push(e.id);
    }
    if !wait.wait {
        if cli.json {
            println!("{}", serde_json::json!({ "jobs": ids }));
        } else {
            for id in &ids {
                println!("enqueued job {id}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !live.is_empty() && !cli.json {
        eprintln!("following engine {} ({})", live[0].id, live[0].mode);
    }
    let tty = std::io::stderr().is_terminal() && !cli.json;
    let counts = engine
        .wait_for(&ids, |c| {
            if tty {
                eprint!(
                    "\r\x1b[2K{} running/queued, {} succeeded, {} dead, {} cancelled",
                    c.unfinished, c.succeeded, c.dead, c.cancelled
                );
            }
        })
        .await?;
    if tty {
        eprintln!();
    }
    engine.shutdown().await;
    report_wait(cli, &ids, &counts)
}

fn report_wait(cli: &Cli, ids: &[JobId], c: &TreeCounts) -> Result<ExitCode> {
    if cli.json {
        println!("{}", serde_json::json!({ "jobs": ids, "counts": c }));
    } else {
        println!("done: {} succeeded, {} dead, {} cancelled", c.succeeded, c.dead, c.cancelled);
    }
    if c.dead > 0 || c.cancelled > 0 {
        if !cli.json {
            eprintln!("some jobs did not succeed: see `omni jobs --status dead`");
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs an engine in `mode` until SIGTERM or SIGINT, then shuts down gracefully.
async fn serve(config: Config, mode: Mode) -> Result<ExitCode> {
    if mode == Mode::Daemon {
        crate::api::check(&config.api)?;
    }
    let engine = Engine::start(config.clone(), mode).await?;
    if mode == Mode::Daemon {
        // The API stops accepting on the signal and finishes in-flight requests; then the engine drains.
        let signal = async {
            if let Err(e) = wait_for_signal().await {
                tracing::error!(error = %e, "cannot wait for signals: stopping");
            }
        };
        if let Err(e) = crate::api::serve(engine.clone(), &config.api, signal).await {
            engine.shutdown().await;
            return Err(e.into());
        }
    } else {
        wait_for_signal().await?;
    }
    tracing::info!("signal received: draining");
    let report = engine.shutdown().await;
    tracing::info!(?report, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn print_job(cli: &Cli, job: &Job) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(job)?);
        return Ok(());
    }
    println!("job {}  {}  {}", job.id, job.kind, job.status);
    println!("  attempts   {}/{}", job.attempts, job.max_attempts);
    println!("  progress   {}%{}", job.progress, job.progress_message.as_deref().map(|m| format!("  {m}")).unwrap_or_default());
    println!("  run_at     {}", fmt_time(Some(job.run_at)));
    println!("  created    {}", fmt_time(Some(job.created_at)));
    println!("  started    {}", fmt_time(job.started_at));
    println!("  finished   {}", fmt_time(job.finished_at));
    if let Some(w) = &job.worker_id {
        println!("  worker     {w}");
    }
    if let Some(k) = &job.unique_key {
        println!("  unique     {k}");
    }
    println!("  payload    {}", job.payload);
    if let Some(r) = &job.result {
        println!("  result     {r}");
    }
    if let Some(e) = &job.error {
        println!("  error      {}", crate::text::strip_control(e));
    }
    Ok(())
}

fn print_jobs(jobs: &[Job]) {
    println!("{:>8}  {:<22} {:<10} {:>8} {:>5}  {:<20} ERROR", "ID", "KIND", "STATUS", "ATTEMPTS", "PROG", "CREATED");
    for j in jobs {
        let err = j.error.as_deref().map(crate::text::strip_control).unwrap_or_default();
        let err: String = err.chars().take(60).collect();
        println!(
            "{:>8}  {:<22} {:<10} {:>8} {:>4}%  {:<20} {}",
            j.id,
            j.kind,
            j.status,
            format!("{}/{}", j.attempts, j.max_attempts),
            j.progress,
            fmt_time(Some(j.created_at)),
            err
        );
    }
}

/// Formats unix ms as UTC `YYYY-MM-DD HH:MM:SS`, or `-`.
pub fn fmt_time(ms: Option<i64>) -> String {
    ms.and_then(|ms| chrono::DateTime::from_timestamp_millis(ms))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}
