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
use crate::db::campaigns::{CampaignId, CampaignStatus};
use crate::db::jobs::TreeCounts;
use crate::engine::pipeline::ingest::CrawlSeed;
use crate::engine::platforms::DiscoverySource;
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
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "OMNI_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do (default: the operator console, `omni tui`).
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// The whole loop offline: the sandbox platform, a throw-away database, a demo sender, the
    /// simulated LLM judge and two sample campaigns, then the console.
    Demo(DemoArgs),
    /// Serve the simulated Mastodon-compatible platform on loopback (for demos, tests, benchmarks).
    Sandbox(SandboxArgs),
    /// Discover profiles from one source and scrape them.
    Crawl(CrawlArgs),
    /// List scraped profiles, most recently changed first.
    Profiles {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one scraped profile: payload summary, features, images, first/last seen.
    Profile {
        /// The handle (`user` or `user@domain`).
        handle: String,
    },
    /// Create, list, show, edit, pause, resume, archive or explain campaigns.
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Discover profiles for a campaign from its `[discovery]` sources.
    Discover {
        /// The campaign id.
        id: i64,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Shortlist a campaign's best candidates and ask the LLM about each (within the daily budget).
    Qualify {
        /// The campaign id.
        id: i64,
        /// Shortlist size (default: the campaign's `shortlist_k`).
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// A campaign's leads, best first (`--csv` for a CRM import).
    Leads {
        /// The campaign id.
        id: i64,
        /// Only leads in this status (new, approved, rejected, queued, sent, replied, opted_out, failed).
        #[arg(long)]
        status: Option<String>,
        /// Write CSV (handle, profile URL, score, reasons, status).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Where a campaign stands: candidates, shortlist, verdicts, cache hits, LLM budget, leads.
    Status {
        /// The campaign id.
        id: i64,
    },
    /// A campaign's candidates by cheap score.
    Candidates {
        /// The campaign id.
        id: i64,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Open the operator console (also what `omni` alone does). Attaches to an engine already
    /// serving this database, or runs one in-process.
    Tui(TuiArgs),
    /// Sender accounts: sends in the last hour and day, the next allowed send, pause state.
    Accounts,
    /// Approval batches of messages: create, list, show (with the send schedule), approve, cancel.
    #[command(subcommand)]
    Batch(BatchCmd),
    /// The do-not-contact list: add, list, remove, import.
    #[command(subcommand)]
    Dnc(DncCmd),
    /// Erase a person from every table and their images from the object store (a GDPR erasure
    /// request); only a hash stays on do-not-contact so they are never messaged again.
    Erase {
        /// The handle (`user` or `user@domain`).
        handle: String,
        /// Only on this platform (default: every platform).
        #[arg(long)]
        platform: Option<String>,
    },
    /// Fit a campaign's score weights now (what the nightly weights.update does); prints the old
    /// and new weights and the AUC.
    Learn {
        /// The campaign id.
        id: i64,
    },
}

/// `omni batch …`
#[derive(Debug, Subcommand)]
pub enum BatchCmd {
    /// Render a draft batch for a campaign's approved (then new) leads; prints its id.
    Create {
        /// The campaign id.
        campaign: i64,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only leads with at least this score (0-100).
        #[arg(long)]
        min_score: Option<i64>,
    },
    /// List batches, newest first.
    List {
        /// Only this campaign's.
        #[arg(long)]
        campaign: Option<i64>,
    },
    /// Show a batch's messages with the planned send schedule (account and earliest time).
    Show {
        /// The batch id.
        id: i64,
    },
    /// Approve a draft batch: one dispatch job per message.
    Approve {
        /// The batch id.
        id: i64,
        /// Wait until every message is sent, failed, unknown or cancelled.
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Cancel what has not been sent yet.
    Cancel {
        /// The batch id.
        id: i64,
    },
}

/// `omni dnc …`
#[derive(Debug, Subcommand)]
pub enum DncCmd {
    /// Add a handle.
    Add {
        /// The handle (`user` or `user@domain`).
        handle: String,
        /// Why (shown in `dnc list`).
        #[arg(long)]
        reason: Option<String>,
        /// The platform (default: the only configured one).
        #[arg(long)]
        platform: Option<String>,
    },
    /// List every entry, newest first.
    List,
    /// Remove a handle.
    Remove {
        /// The handle.
        handle: String,
        /// The platform (default: the only configured one).
        #[arg(long)]
        platform: Option<String>,
    },
    /// Import handles from a file: one per line, `#` starts a comment.
    Import {
        /// The file.
        file: PathBuf,
        /// The platform (default: the only configured one).
        #[arg(long)]
        platform: Option<String>,
        /// Why (shown in `dnc list`).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `omni campaign …`
#[derive(Debug, Subcommand)]
pub enum CampaignCmd {
    /// Create a campaign from a campaign file (see examples/vegan.toml); prints its id.
    Create {
        /// The campaign file (TOML).
        file: PathBuf,
    },
    /// List campaigns.
    List,
    /// Show a campaign.
    Show {
        /// The campaign id.
        id: i64,
    },
    /// Replace a campaign's definition with a campaign file.
    Edit {
        /// The campaign id.
        id: i64,
        /// The campaign file (TOML).
        file: PathBuf,
    },
    /// Pause a campaign (no qualification or sending).
    Pause {
        /// The campaign id.
        id: i64,
    },
    /// Resume a paused campaign.
    Resume {
        /// The campaign id.
        id: i64,
    },
    /// Archive a campaign.
    Archive {
        /// The campaign id.
        id: i64,
    },
    /// Show the compiled SQL, its parameters, per-clause counts, candidates, the shortlist and the
    /// LLM calls a qualify would make — before any money is spent.
    Explain {
        /// The campaign id.
        id: i64,
    },
}

/// `omni demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Profiles in the simulated world.
    #[arg(long, default_value_t = 3000)]
    pub profiles: usize,
    /// World seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the demo's database and images in this folder (default: a temporary one, removed on exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// No console: run the engine until SIGTERM/SIGINT (for scripted runs).
    #[arg(long)]
    pub headless: bool,
    /// Read-only console.
    #[arg(long)]
    pub readonly: bool,
    /// Capture the mouse.
    #[arg(long)]
    pub mouse: bool,
}

/// `omni sandbox`
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8800)]
    pub port: u16,
    /// Number of creator profiles in the world.
    #[arg(long, default_value_t = 5000)]
    pub profiles: usize,
    /// World seed (same seed → byte-identical responses).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A sender account as HANDLE=TOKEN (repeatable); default omni=omni-sandbox-token.
    #[arg(long = "sender", value_name = "HANDLE=TOKEN")]
    pub senders: Vec<String>,
    /// Latency added to every API request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of API requests answered with a 5xx (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Requests allowed per 5 minutes per token (unlimited when absent).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Sandbox seconds before a reply to a DM appears.
    #[arg(long, default_value_t = 3600)]
    pub reply_delay_secs: i64,
    /// Fraction of profiles that change per sandbox day.
    #[arg(long, default_value_t = 0.05)]
    pub change_fraction: f64,
}

/// `omni crawl`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["directory", "hashtag", "search", "followers_of"])))]
pub struct CrawlArgs {
    /// The `[[platforms]]` name to crawl.
    #[arg(long)]
    pub platform: String,
    /// Page the instance's profile directory.
    #[arg(long)]
    pub directory: bool,
    /// Authors of posts with this hashtag.
    #[arg(long, value_name = "TAG")]
    pub hashtag: Option<String>,
    /// Accounts matching a search.
    #[arg(long, value_name = "QUERY")]
    pub search: Option<String>,
    /// Followers of this handle.
    #[arg(long, value_name = "HANDLE")]
    pub followers_of: Option<String>,
    /// Stop after this many handles.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    #[command(flatten)]
    pub wait: WaitArg,
}

/// `omni tui`
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct TuiArgs {
    /// Read-only: keys that change data are not bound at all.
    #[arg(long)]
    pub readonly: bool,
    /// Capture the mouse (the wheel scrolls). Off by default so the terminal can select text.
    #[arg(long)]
    pub mouse: bool,
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
    // Like other Unix tools, stop quietly when the reader of our output goes away (`omni jobs | head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Demo(_))) {
        // Before any thread exists: the demo's sender token lives in the environment like any secret.
        crate::demo::prepare_environment();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
    let default = if long_running {
        "info,sqlx=warn"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("OMNI_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
    Ok(Config::load(&Sources {
        file: cli.config.clone(),
        env: true,
        overrides,
    })?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let default_tui = Command::Tui(TuiArgs::default());
    let command = cli.command.as_ref().unwrap_or(&default_tui);
    // The console owns the terminal and keeps its logs in memory: no stderr subscriber for it.
    if !matches!(
        command,
        Command::Tui(_)
            | Command::Demo(DemoArgs {
                headless: false,
                ..
            })
    ) {
        init_tracing(matches!(
            command,
            Command::Worker | Command::Daemon | Command::Sandbox(_)
        ));
    }
    let config = load_config(&cli)?;
    match command {
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
        Command::Sandbox(args) => sandbox_command(args).await,
        Command::Demo(args) => {
            crate::demo::run(crate::demo::DemoOptions {
                profiles: args.profiles,
                seed: args.seed,
                dir: args.dir.clone(),
                headless: args.headless,
                tui: crate::tui::TuiOptions {
                    readonly: args.readonly,
                    mouse: args.mouse,
                },
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crawl(args) => {
            if !config.platforms.iter().any(|p| p.name == args.platform) {
                let known: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
                anyhow::bail!(
                    "no platform named `{}` in the configuration (known: {}); add a [[platforms]] entry",
                    args.platform,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                );
            }
            let source = if args.directory {
                DiscoverySource::Directory
            } else if let Some(t) = &args.hashtag {
                DiscoverySource::Hashtag(t.trim_start_matches('#').to_string())
            } else if let Some(q) = &args.search {
                DiscoverySource::Search(q.clone())
            } else if let Some(h) = &args.followers_of {
                DiscoverySource::FollowersOf(h.clone())
            } else {
                anyhow::bail!(
                    "give one source: --directory, --hashtag, --search or --followers-of"
                );
            };
            let seed = CrawlSeed {
                platform: args.platform.clone(),
                source,
                cursor: None,
                limit: args.limit,
                seen: 0,
                fresh_secs: 6 * 3600,
            };
            let job = NewJob::new("crawl.seed", serde_json::to_value(seed)?);
            enqueue_and_maybe_wait(&cli, config, vec![job], args.wait).await
        }
        Command::Profiles { limit } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let rows = crate::db::profiles::list(engine.db(), *limit).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:>7}  {:<28} {:>10} {:<4} {:>7} {:>8}  {:<19}  LAST CHANGED",
                    "ID", "HANDLE", "FOLLOWERS", "LANG", "POSTS/W", "ENGAGE", "LAST SEEN"
                );
                for r in rows {
                    println!(
                        "{:>7}  {:<28} {:>10} {:<4} {:>7.1} {:>7.2}%  {:<19}  {}",
                        r.id.0,
                        crate::text::strip_control(&r.handle),
                        r.followers.unwrap_or(0),
                        r.language.as_deref().unwrap_or("-"),
                        r.posts_per_week.unwrap_or(0.0),
                        r.engagement_rate.unwrap_or(0.0) * 100.0,
                        fmt_time(Some(r.last_seen)),
                        fmt_time(Some(r.last_changed))
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile { handle } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let detail = crate::engine::pipeline::ingest::profile_detail(engine.db(), handle)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no scraped profile with handle `{handle}`; see `omni profiles`"
                    )
                })?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print!("{}", crate::text::strip_control(&detail.render()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Campaign(cmd) => campaign_command(&cli, config, cmd).await,
        Command::Discover { id, wait } => {
            let client = Engine::start(config.clone(), Mode::Client).await?;
            let c = client.campaign(CampaignId(*id)).await?;
            drop(client);
            let jobs = crate::engine::campaigns::discovery_jobs(&c);
            enqueue_and_maybe_wait(&cli, config, jobs, *wait).await
        }
        Command::Qualify { id, limit, wait } => {
            let client = Engine::start(config.clone(), Mode::Client).await?;
            let c = client.campaign(CampaignId(*id)).await?;
            drop(client);
            let job = crate::engine::pipeline::qualify::qualify_job_for(c.id, *limit);
            enqueue_and_maybe_wait(&cli, config, vec![job], *wait).await
        }
        Command::Leads {
            id,
            status,
            csv,
            limit,
        } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let rows = engine
                .lead_rows(CampaignId(*id), status.as_deref(), *limit)
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if *csv {
                print!("{}", leads_csv(&rows));
            } else {
                println!(
                    "{:>6}  {:<30} {:>5}  {:<10} {:<15} REASONS",
                    "LEAD", "HANDLE", "SCORE", "STATUS", "CHECKED"
                );
                for r in rows {
                    println!(
                        "{:>6}  {:<30} {:>5}  {:<10} {:<15} {}",
                        r.id,
                        crate::text::strip_control(&r.handle),
                        r.score,
                        r.status,
                        r.checked,
                        crate::text::strip_control(&r.reasons.join("; "))
                            .chars()
                            .take(100)
                            .collect::<String>()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { id } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let r = engine.campaign_status(CampaignId(*id)).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("campaign {}", r.campaign_id);
                println!("  candidates       {}", r.candidates);
                println!("  shortlisted      {}", r.shortlisted);
                println!(
                    "  scored           {} ({} qualified, {} from cache)",
                    r.scored, r.qualified, r.cache_hits
                );
                println!(
                    "  LLM calls today  {} of {}",
                    r.llm_calls_today, r.llm_budget
                );
                let fmt = |m: &std::collections::BTreeMap<String, i64>| {
                    if m.is_empty() {
                        "-".to_string()
                    } else {
                        m.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                println!("  leads            {}", fmt(&r.leads));
                println!("  messages         {}", fmt(&r.messages));
                println!("  feedback         {}", fmt(&r.feedback));
                println!("  jobs             {}", fmt(&r.jobs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Candidates { id, limit } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let rows = engine.candidates(CampaignId(*id), *limit).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:>8}  {:<30} {:>10} {:<4} {:>8} {:>7}",
                    "PROFILE", "HANDLE", "FOLLOWERS", "LANG", "SCORE", "P(REPLY)"
                );
                for r in rows {
                    println!(
                        "{:>8}  {:<30} {:>10} {:<4} {:>8.3} {:>6.1}%",
                        r.profile_id,
                        crate::text::strip_control(&r.handle),
                        r.followers
                            .map_or_else(|| "-".to_string(), |f| f.to_string()),
                        r.language.as_deref().unwrap_or("-"),
                        r.cheap_score,
                        r.reply_probability * 100.0
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Accounts => accounts_command(&cli, config).await,
        Command::Batch(cmd) => batch_command(&cli, config, cmd).await,
        Command::Dnc(cmd) => dnc_command(&cli, config, cmd).await,
        Command::Erase { handle, platform } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let r = engine.erase(handle, platform.as_deref()).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "erased: {} profiles, {} leads, {} messages, {} verdicts, {} feedback events, {} jobs, {} images",
                    r.profiles, r.leads, r.messages, r.llm_scores, r.feedback_events, r.jobs, r.images_deleted
                );
                println!(
                    "kept only as a hash on do-not-contact on: {}",
                    r.protected_on.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Learn { id } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let r = engine.learn(CampaignId(*id)).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "campaign {}: {} messaged people with a known outcome, {} replied",
                r.campaign_id, r.n_samples, r.positives
            );
            if let Some(why) = &r.skipped {
                println!("nothing learned: {why}");
                return Ok(ExitCode::SUCCESS);
            }
            let new = r
                .new
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no weights were produced"))?;
            println!(
                "{:<18} {:>10} {:>10}",
                "FEATURE",
                format!("v{}", r.previous.version),
                format!("v{}", new.version)
            );
            for (i, f) in r.features.iter().enumerate() {
                println!(
                    "{:<18} {:>10.3} {:>10.3}",
                    f, r.previous.weights[i], new.weights[i]
                );
            }
            println!(
                "{:<18} {:>10.3} {:>10.3}",
                "intercept", r.previous.intercept, new.intercept
            );
            println!(
                "AUC {} ({}), fit weight {:.2}, {} candidates rescored",
                r.auc
                    .map(|a| format!("{a:.3}"))
                    .unwrap_or_else(|| "-".into()),
                r.auc_on,
                r.blend,
                r.candidates
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker => serve(config, Mode::Worker).await,
        Command::Daemon => serve(config, Mode::Daemon).await,
        Command::Tui(args) => {
            crate::tui::run(
                config,
                crate::tui::TuiOptions {
                    readonly: args.readonly,
                    mouse: args.mouse,
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
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
pub async fn enqueue_and_maybe_wait(
    cli: &Cli,
    config: Config,
    jobs: Vec<NewJob>,
    wait: WaitArg,
) -> Result<ExitCode> {
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
        println!(
            "done: {} succeeded, {} dead, {} cancelled",
            c.succeeded, c.dead, c.cancelled
        );
    }
    if c.dead > 0 || c.cancelled > 0 {
        if !cli.json {
            eprintln!("some jobs did not succeed: see `omni jobs --status dead`");
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

async fn campaign_command(cli: &Cli, config: Config, cmd: &CampaignCmd) -> Result<ExitCode> {
    let engine = Engine::start(config, Mode::Client).await?;
    let read = |file: &PathBuf| -> Result<(String, String)> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        Ok((file.display().to_string(), text))
    };
    let campaign = match cmd {
        CampaignCmd::Create { file } => {
            let (name, text) = read(file)?;
            let c = engine
                .create_campaign(&name, &text)
                .await
                .map_err(campaign_error)?;
            if !cli.json {
                println!("{}", c.id);
                return Ok(ExitCode::SUCCESS);
            }
            c
        }
        CampaignCmd::Edit { id, file } => {
            let (name, text) = read(file)?;
            engine
                .edit_campaign(CampaignId(*id), &name, &text)
                .await
                .map_err(campaign_error)?
        }
        CampaignCmd::List => {
            let all = engine.campaigns().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:>4}  {:<36} {:<10} {:<9} {:<17} UPDATED",
                    "ID", "NAME", "PLATFORM", "STATUS", "CRITERIA"
                );
                for c in all {
                    println!(
                        "{:>4}  {:<36} {:<10} {:<9} {:<17} {}",
                        c.id,
                        c.name,
                        c.platform,
                        c.status,
                        &c.criteria_hash[..16],
                        fmt_time(Some(c.updated_at))
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        CampaignCmd::Show { id } => engine.campaign(CampaignId(*id)).await?,
        CampaignCmd::Pause { id } => {
            engine
                .set_campaign_status(CampaignId(*id), CampaignStatus::Paused)
                .await?
        }
        CampaignCmd::Resume { id } => {
            engine
                .set_campaign_status(CampaignId(*id), CampaignStatus::Active)
                .await?
        }
        CampaignCmd::Archive { id } => {
            engine
                .set_campaign_status(CampaignId(*id), CampaignStatus::Archived)
                .await?
        }
        CampaignCmd::Explain { id } => {
            let e = engine.explain(CampaignId(*id)).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{}", e.render());
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&campaign)?);
    } else {
        println!(
            "campaign {}  {}  [{}]  platform {}",
            campaign.id, campaign.name, campaign.status, campaign.platform
        );
        println!("  criteria  {}", campaign.criteria_hash);
        println!("  brief     {}", campaign.spec.brief.trim());
        println!("  predicate {}", campaign.predicate.sql);
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 4180 CSV of leads; cells that a spreadsheet would run as a formula get a `'` prefix.
fn leads_csv(rows: &[crate::engine::campaigns::LeadRow]) -> String {
    fn cell(s: &str) -> String {
        let s = crate::text::strip_control(s);
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from("handle,profile_url,score,reasons,status\n");
    for r in rows {
        out += &format!(
            "{},{},{},{},{}\n",
            cell(&r.handle),
            cell(&r.profile_url),
            r.score,
            cell(&r.reasons.join("; ")),
            cell(&r.status)
        );
    }
    out
}

async fn accounts_command(cli: &Cli, config: Config) -> Result<ExitCode> {
    let engine = Engine::start(config, Mode::Client).await?;
    let rows = engine.accounts().await?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no sender accounts: add [[accounts]] entries to omni.toml");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>4}  {:<24} {:<12} {:>9} {:>9}  {:<19}  {:<28} PROBLEM",
        "ID", "HANDLE", "PLATFORM", "LAST HOUR", "LAST DAY", "NEXT SEND", "STATE"
    );
    for s in rows {
        let a = &s.account;
        let state = if !a.enabled {
            "disabled (not in config)".to_string()
        } else if s.paused {
            format!(
                "paused until {} (#{})",
                fmt_time(a.paused_until),
                a.pause_count
            )
        } else {
            s.blocked_by
                .map(|b| b.to_string())
                .unwrap_or_else(|| "ready".into())
        };
        println!(
            "{:>4}  {:<24} {:<12} {:>9} {:>9}  {:<19}  {:<28} {}",
            a.id,
            format!("@{}", a.handle),
            a.platform,
            format!("{}/{}", s.sent_last_hour, a.hourly_cap),
            format!("{}/{}", s.sent_last_day, s.daily_cap_now),
            fmt_time(s.next_allowed_at),
            state,
            s.problem.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_batch(cli: &Cli, v: &crate::engine::outreach::BatchView) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let b = &v.batch;
    println!(
        "batch {}  campaign {} ({})  [{}]  created {}  approved {}",
        b.id,
        b.campaign_id,
        v.campaign_name,
        b.status,
        fmt_time(Some(b.created_at)),
        fmt_time(b.approved_at)
    );
    let mut counts: Vec<String> = v.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    counts.sort();
    println!("  {}", counts.join(", "));
    println!(
        "{:>7}  {:<28} {:>5} {:<10} {:<16} {:<19}  MESSAGE / ERROR",
        "MSG", "TO", "SCORE", "STATUS", "ACCOUNT", "WHEN"
    );
    for p in &v.messages {
        let m = &p.message;
        let body: String = crate::text::strip_control(&m.body)
            .replace('\n', " ")
            .chars()
            .take(60)
            .collect();
        let note = m
            .error
            .as_deref()
            .map(crate::text::strip_control)
            .unwrap_or(body);
        println!(
            "{:>7}  {:<28} {:>5} {:<10} {:<16} {:<19}  {}",
            m.id,
            format!("@{}", crate::text::strip_control(&m.handle)),
            m.score,
            m.status,
            p.account
                .as_deref()
                .map(|a| format!("@{a}"))
                .unwrap_or_else(|| "-".into()),
            fmt_time(p.planned_at),
            note
        );
    }
    Ok(())
}

async fn batch_command(cli: &Cli, config: Config, cmd: &BatchCmd) -> Result<ExitCode> {
    use crate::db::messages::BatchId;
    use crate::engine::outreach::BatchOptions;
    match cmd {
        BatchCmd::Create {
            campaign,
            limit,
            min_score,
        } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let v = engine
                .create_batch(
                    CampaignId(*campaign),
                    BatchOptions {
                        limit: Some(*limit),
                        min_score: *min_score,
                    },
                )
                .await?;
            if cli.json {
                print_batch(cli, &v)?;
            } else {
                println!("{}", v.batch.id);
                eprintln!("draft batch {} with {} messages: review with `omni batch show {}`, then `omni batch approve {}`", v.batch.id, v.messages.len(), v.batch.id, v.batch.id);
            }
        }
        BatchCmd::List { campaign } => {
            let engine = Engine::start(config, Mode::Client).await?;
            let rows = engine.batches(campaign.map(CampaignId)).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:>6}  {:>8}  {:<11} {:<19}  APPROVED",
                    "ID", "CAMPAIGN", "STATUS", "CREATED"
                );
                for b in rows {
                    println!(
                        "{:>6}  {:>8}  {:<11} {:<19}  {}",
                        b.id,
                        b.campaign_id,
                        b.status,
                        fmt_time(Some(b.created_at)),
                        fmt_time(b.approved_at)
                    );
                }
            }
        }
        BatchCmd::Show { id } => {
            let engine = Engine::start(config, Mode::Client).await?;
            print_batch(cli, &engine.batch(BatchId(*id)).await?)?;
        }
        BatchCmd::Cancel { id } => {
            let engine = Engine::start(config, Mode::Client).await?;
            print_batch(cli, &engine.cancel_batch(BatchId(*id)).await?)?;
        }
        BatchCmd::Approve { id, wait } => {
            let client = Engine::start(config.clone(), Mode::Client).await?;
            let live = client.live_nodes().await?;
            let engine = if wait.wait && live.is_empty() {
                Engine::start(config, Mode::Inline).await?
            } else {
                client
            };
            let approved = engine.approve_batch(BatchId(*id)).await?;
            if !wait.wait {
                print_batch(cli, &approved.batch)?;
                return Ok(ExitCode::SUCCESS);
            }
            if !live.is_empty() && !cli.json {
                eprintln!("following engine {} ({})", live[0].id, live[0].mode);
            }
            let tty = std::io::stderr().is_terminal() && !cli.json;
            let counts = engine
                .wait_for(&[approved.root_job], |c| {
                    if tty {
                        eprint!(
                            "\r\x1b[2K{} to send, {} done, {} dead",
                            c.unfinished, c.succeeded, c.dead
                        );
                    }
                })
                .await?;
            if tty {
                eprintln!();
            }
            let view = engine.batch(BatchId(*id)).await?;
            engine.shutdown().await;
            print_batch(cli, &view)?;
            if counts.dead > 0 {
                eprintln!(
                    "some dispatch jobs died: see `omni jobs --status dead --kind dispatch.dm`"
                );
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dnc_platform(config: &Config, given: &Option<String>) -> Result<String> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    match config.platforms.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Ok("sandbox".into()),
        many => anyhow::bail!(
            "several platforms are configured ({}): say which with --platform",
            many.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn dnc_command(cli: &Cli, config: Config, cmd: &DncCmd) -> Result<ExitCode> {
    let engine = Engine::start(config.clone(), Mode::Client).await?;
    match cmd {
        DncCmd::Add {
            handle,
            reason,
            platform,
        } => {
            let p = dnc_platform(&config, platform)?;
            let added = engine.dnc_add(&p, handle, reason.as_deref()).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "added": added }));
            } else if added {
                println!("added @{} on {p}", crate::db::dnc::normalize(handle));
            } else {
                println!(
                    "@{} was already on the list for {p}",
                    crate::db::dnc::normalize(handle)
                );
            }
        }
        DncCmd::Remove { handle, platform } => {
            let p = dnc_platform(&config, platform)?;
            let removed = engine.dnc_remove(&p, handle).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "removed": removed }));
            } else if removed {
                println!("removed @{} on {p}", crate::db::dnc::normalize(handle));
            } else {
                anyhow::bail!(
                    "@{} is not on the do-not-contact list for {p}",
                    crate::db::dnc::normalize(handle)
                );
            }
        }
        DncCmd::List => {
            let rows = engine.dnc_list().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<12} {:<40} {:<19}  REASON",
                    "PLATFORM", "HANDLE", "ADDED"
                );
                for r in rows {
                    println!(
                        "{:<12} {:<40} {:<19}  {}",
                        r.platform,
                        crate::text::strip_control(&r.handle),
                        fmt_time(Some(r.added_at)),
                        r.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        DncCmd::Import {
            file,
            platform,
            reason,
        } => {
            let p = dnc_platform(&config, platform)?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let r = engine.dnc_import(&p, &text, reason.as_deref()).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "imported {} handles on {p} ({} were already listed)",
                    r.added, r.already_listed
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn campaign_error(e: crate::engine::campaigns::CampaignFileError) -> anyhow::Error {
    match e {
        crate::engine::campaigns::CampaignFileError::Invalid(errs) => {
            anyhow::anyhow!("the campaign file is invalid; nothing was written:\n{errs}")
        }
        other => other.into(),
    }
}

async fn sandbox_command(args: &SandboxArgs) -> Result<ExitCode> {
    let mut senders = Vec::new();
    for s in &args.senders {
        let (h, t) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--sender {s:?}: expected HANDLE=TOKEN"))?;
        senders.push((h.trim_start_matches('@').to_string(), t.to_string()));
    }
    let mut opts = crate::sandbox::SandboxOptions {
        seed: args.seed,
        profiles: args.profiles,
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        rate_limit: args.rate_limit,
        reply_delay_secs: args.reply_delay_secs,
        change_fraction: args.change_fraction,
        ..Default::default()
    };
    if !senders.is_empty() {
        opts.senders = senders;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "sandbox (simulated Mastodon-compatible platform) on http://{addr}: {} profiles, seed {}; senders: {}",
        opts.profiles,
        opts.seed,
        opts.senders.iter().map(|(h, _)| format!("@{h}")).collect::<Vec<_>>().join(", ")
    );
    crate::sandbox::serve(opts, listener, async {
        let _ = wait_for_signal().await;
    })
    .await
    .context("sandbox server")?;
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
    println!(
        "  progress   {}%{}",
        job.progress,
        job.progress_message
            .as_deref()
            .map(|m| format!("  {m}"))
            .unwrap_or_default()
    );
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
    println!(
        "{:>8}  {:<22} {:<10} {:>8} {:>5}  {:<20} ERROR",
        "ID", "KIND", "STATUS", "ATTEMPTS", "PROG", "CREATED"
    );
    for j in jobs {
        let err = j
            .error
            .as_deref()
            .map(crate::text::strip_control)
            .unwrap_or_default();
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
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}
