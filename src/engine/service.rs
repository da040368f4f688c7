//! The engine service: opens the database, runs the worker pool, the scheduler and the node
//! heartbeat, and offers the commands and queries the console, the HTTP API and the CLI call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::db::jobs::TreeCounts;
use crate::db::nodes::{self, Node};
use crate::db::{jobs, Db, DbError};
use crate::engine::clock::{self, SharedClock};
use crate::engine::events::{EngineEvent, EventBus};
use crate::engine::llm::{self, Llm};
use crate::engine::pipeline;
use crate::engine::platforms::{self, Platform};
use crate::engine::queue::JobError;
use crate::engine::queue::{Enqueued, Job, JobFilter, JobId, NewJob, Queue};
use crate::engine::scheduler::Scheduler;
use crate::engine::storage::Storage;
use crate::engine::worker::{PoolReport, Registry, WorkerPool};

/// What an engine runs besides the service API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Console with embedded engine: workers + scheduler.
    Console,
    /// Headless daemon: workers + scheduler (+ API, started by the caller).
    Daemon,
    /// Workers only.
    Worker,
    /// A CLI command that runs workers in-process until its jobs finish (`--wait` with no engine).
    Inline,
    /// Service API only (CLI reads and commands).
    Client,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Console => "console",
            Mode::Daemon => "daemon",
            Mode::Worker => "worker",
            Mode::Inline => "inline",
            Mode::Client => "client",
        }
    }
    fn runs_workers(self) -> bool {
        !matches!(self, Mode::Client)
    }
    fn runs_scheduler(self) -> bool {
        matches!(self, Mode::Console | Mode::Daemon)
    }
    fn advertises(self) -> bool {
        matches!(self, Mode::Console | Mode::Daemon | Mode::Worker)
    }
}

/// What pipeline handlers share: the database, the queue, the configuration and the clock.
#[derive(Debug)]
pub struct Services {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// The queue.
    pub queue: Queue,
    /// The clock.
    pub clock: SharedClock,
    /// The configured platforms, by name (empty for engines that run no workers).
    pub platforms: HashMap<String, Arc<dyn Platform>>,
    /// The object store (images).
    pub storage: Storage,
    /// The LLM that judges profiles.
    pub llm: Arc<dyn Llm>,
}

impl Services {
    /// The platform configured as `name`, or a permanent job error naming the choices.
    pub fn platform(&self, name: &str) -> Result<Arc<dyn Platform>, JobError> {
        self.platforms.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.platforms.keys().map(String::as_str).collect();
            known.sort();
            JobError::Permanent(format!(
                "no platform named `{name}` is configured (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// The handler context type.
pub type Ctx = Arc<Services>;

/// Errors from the engine service.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A platform could not be set up.
    #[error(transparent)]
    Platform(#[from] crate::engine::platforms::PlatformError),
    /// The LLM provider could not be set up.
    #[error(transparent)]
    Llm(#[from] crate::engine::llm::LlmError),
    /// The object store could not be opened.
    #[error(transparent)]
    Storage(#[from] crate::engine::storage::StorageError),
    /// No such thing.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        EngineError::Db(DbError::Sqlx(e))
    }
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    services: Ctx,
    events: EventBus,
    node: Node,
    mode: Mode,
    shutdown: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<Option<PoolReport>>>>,
}

impl Engine {
    /// Connects, migrates and starts what `mode` runs, on the system clock.
    pub async fn start(config: Config, mode: Mode) -> Result<Self, EngineError> {
        Self::start_with_clock(config, mode, clock::system()).await
    }

    /// Like [`Engine::start`] with a given clock (tests run days in seconds with a manual clock).
    pub async fn start_with_clock(
        config: Config,
        mode: Mode,
        clock: SharedClock,
    ) -> Result<Self, EngineError> {
        let db = Db::connect(&config.database_url(), config.database.max_connections).await?;
        db.migrate().await?;
        let events = EventBus::default();
        let queue = Queue::new(
            db.clone(),
            clock.clone(),
            events.clone(),
            config.queue.backoff,
        );
        let host = hostname();
        let pid = std::process::id() as i64;
        let now = clock.now_ms();
        let node = Node {
            id: format!("{host}-{pid}-{:08x}", rand::random::<u32>()),
            mode: mode.as_str().to_string(),
            host,
            pid,
            started_at: now,
            seen_at: now,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut platform_map = HashMap::new();
        if mode.runs_workers() {
            for p in &config.platforms {
                platform_map.insert(p.name.clone(), platforms::build(p)?);
            }
        }
        let storage = Storage::local(&config.storage.path)?;
        let llm = llm::build(&config.llm)?;
        let services = Arc::new(Services {
            config: config.clone(),
            db: db.clone(),
            queue: queue.clone(),
            clock,
            platforms: platform_map,
            storage,
            llm,
        });
        let engine = Engine {
            inner: Arc::new(Inner {
                services: services.clone(),
                events,
                node: node.clone(),
                mode,
                shutdown,
                tasks: tokio::sync::Mutex::new(Vec::new()),
            }),
        };
        let mut tasks = Vec::new();
        if mode.runs_workers() {
            let mut registry = Registry::new();
            pipeline::register(&mut registry);
            let pool = WorkerPool::new(
                queue.clone(),
                registry,
                services.clone(),
                config.workers.clone(),
                node.id.clone(),
            );
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move { Some(pool.run(rx).await) }));
        }
        if mode.runs_scheduler() {
            let schedules =
                config
                    .schedule
                    .schedules()
                    .map_err(|e| crate::config::ConfigError::Invalid {
                        key: format!("schedule.{}", e.name),
                        value: e.expr.clone(),
                        allowed: e.detail.clone(),
                    })?;
            let scheduler = Scheduler::new(queue.clone(), schedules);
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                scheduler.run(rx, Duration::from_secs(1)).await;
                None
            }));
        }
        if mode.advertises() {
            nodes::beat(&db, &node).await?;
            let db = db.clone();
            let mut node = node.clone();
            let every = Duration::from_millis(config.engine.node_heartbeat_ms);
            let clock = services.clock.clone();
            let mut rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = rx.changed() => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                    node.seen_at = clock.now_ms();
                    if let Err(e) = nodes::beat(&db, &node).await {
                        warn!(error = %e, "engine heartbeat failed");
                    }
                }
                let _ = nodes::remove(&db, &node.id).await;
                None
            }));
        }
        *engine.inner.tasks.lock().await = tasks;
        if mode.runs_workers() && !config.accounts.is_empty() {
            if let Err(e) = engine.sync_accounts().await {
                warn!(error = %e, "could not sync [[accounts]] to the database");
            }
        }
        info!(node = %engine.inner.node.id, mode = mode.as_str(), "engine started");
        Ok(engine)
    }

    /// Stops claiming, lets in-flight jobs finish within the grace period, releases the rest, and
    /// waits for every task. Returns the worker pool's report.
    pub async fn shutdown(&self) -> PoolReport {
        let _ = self.inner.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().await);
        let mut report = PoolReport::default();
        for t in tasks {
            if let Ok(Some(r)) = t.await {
                report = r;
            }
        }
        info!(node = %self.inner.node.id, "engine stopped");
        report
    }

    /// A receiver that turns true when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// The shared services (for pipeline code and tests).
    pub fn services(&self) -> &Ctx {
        &self.inner.services
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.services.db
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.inner.services.queue
    }

    /// This engine's node record.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Whether this engine runs workers.
    pub fn runs_workers(&self) -> bool {
        self.inner.mode.runs_workers()
    }

    /// Future engine events.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    /// Other engines with a fresh heartbeat on this database.
    pub async fn live_nodes(&self) -> Result<Vec<Node>, EngineError> {
        let stale = self.inner.services.config.engine.node_stale_ms as i64;
        let since = self.inner.services.clock.now_ms() - stale;
        Ok(nodes::live(self.db(), since)
            .await?
            .into_iter()
            .filter(|n| n.id != self.inner.node.id)
            .collect())
    }

    /// Enqueues a job.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, EngineError> {
        Ok(self.queue().enqueue(job).await?)
    }

    /// Lists jobs.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, EngineError> {
        Ok(self.queue().list(filter).await?)
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<Job, EngineError> {
        self.queue()
            .get(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("job {id}")))
    }

    /// Re-queues a dead, failed or cancelled job.
    pub async fn retry_job(&self, id: JobId) -> Result<Job, EngineError> {
        let job = self.job(id).await?;
        if !self.queue().retry(id).await? {
            return Err(EngineError::Conflict(format!(
                "job {id} is {}: only dead, failed or cancelled jobs can be retried",
                job.status
            )));
        }
        self.job(id).await
    }

    /// Cancels an unfinished job.
    pub async fn cancel_job(&self, id: JobId) -> Result<Job, EngineError> {
        let job = self.job(id).await?;
        if !self.queue().cancel(id).await? {
            return Err(EngineError::Conflict(format!(
                "job {id} is already {}",
                job.status
            )));
        }
        self.job(id).await
    }

    /// How the tree of jobs rooted at `root` stands.
    pub async fn job_tree(&self, root: JobId) -> Result<TreeCounts, EngineError> {
        Ok(jobs::tree_counts(self.db(), root).await?)
    }

    /// Waits until every job in the trees rooted at `roots` is finished, calling `on_progress`
    /// after each check. Returns the combined counts.
    pub async fn wait_for(
        &self,
        roots: &[JobId],
        mut on_progress: impl FnMut(&TreeCounts),
    ) -> Result<TreeCounts, EngineError> {
        let mut events = self.subscribe();
        loop {
            let mut total = TreeCounts::default();
            for root in roots {
                let c = self.job_tree(*root).await?;
                total.unfinished += c.unfinished;
                total.succeeded += c.succeeded;
                total.dead += c.dead;
                total.cancelled += c.cancelled;
            }
            on_progress(&total);
            if total.unfinished == 0 {
                return Ok(total);
            }
            // Wake on local job events, or poll for other processes' progress.
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
