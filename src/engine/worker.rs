//! The worker pool: claims jobs for the kinds it has handlers for, runs each in its own task (a panic
//! fails that job only), heartbeats leases, rescues expired ones, and shuts down gracefully —
//! finished jobs committed, unfinished ones released so another worker can take them at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{debug, error, info, warn, Instrument};

use crate::engine::queue::{Job, JobError, JobId, JobStatus, KindFilter, Lease, Queue};

/// What a handler returns on success: an optional JSON result stored on the job.
pub type JobResult = Result<Option<serde_json::Value>, JobError>;

type Handler<C> = Arc<dyn Fn(JobCtx<C>) -> BoxFuture<'static, JobResult> + Send + Sync>;

/// Everything a handler gets: its job, its lease, the queue and the engine's shared context.
#[derive(Clone)]
pub struct JobCtx<C> {
    /// The job being run (attempts already counts this attempt).
    pub job: Job,
    /// The lease held for it.
    pub lease: Lease,
    /// The queue (to enqueue follow-up work, report progress).
    pub queue: Queue,
    /// The engine's shared services.
    pub ctx: C,
}

impl<C> JobCtx<C> {
    /// Reports progress (0–100) with a message; false when the lease was lost.
    pub async fn progress(&self, pct: i64, message: &str) -> bool {
        self.queue
            .progress(&self.job, self.lease, pct, message)
            .await
            .unwrap_or(false)
    }

    /// Deserializes the payload, failing permanently on a malformed one.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.payload.clone()).map_err(|e| {
            JobError::Permanent(format!("malformed payload for {}: {e}", self.job.kind))
        })
    }
}

/// The handlers a pool can run, by job kind.
pub struct Registry<C> {
    handlers: HashMap<String, Handler<C>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Registry<C> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for jobs of `kind`.
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F) -> &mut Self
    where
        F: Fn(JobCtx<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        self.handlers.insert(
            kind.to_string(),
            Arc::new(move |ctx| Box::pin(handler(ctx))),
        );
        self
    }

    /// The kinds with a handler, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}

/// How a pool behaves.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Jobs run at once by one pool.
    pub concurrency: usize,
    /// Per-kind caps, e.g. `{ "llm.evaluate" = 16, "dispatch.dm" = 2 }`.
    pub per_kind: HashMap<String, usize>,
    /// Lease length in milliseconds: a worker silent this long loses its jobs.
    pub lease_ms: u64,
    /// Heartbeat interval in milliseconds (well under the lease).
    pub heartbeat_ms: u64,
    /// Idle poll interval in milliseconds (work enqueued in-process wakes the pool at once).
    pub poll_ms: u64,
    /// How often to rescue expired leases, in milliseconds.
    pub rescue_ms: u64,
    /// On shutdown, how long in-flight jobs may take to finish before they are released, in ms.
    pub grace_ms: u64,
    /// Most jobs claimed in one statement.
    pub claim_batch: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            per_kind: HashMap::new(),
            lease_ms: 30_000,
            heartbeat_ms: 10_000,
            poll_ms: 500,
            rescue_ms: 2_000,
            grace_ms: 20_000,
            claim_batch: 64,
        }
    }
}

/// What a pool did, reported when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolReport {
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Attempts that failed (retry pending or dead).
    pub failed: u64,
    /// Jobs released unfinished at shutdown.
    pub released: u64,
    /// Jobs whose lease was lost while running.
    pub lost: u64,
}

enum Outcome {
    /// The handler succeeded; the pool records it together with its next claim.
    Succeeded(Option<serde_json::Value>),
    /// The attempt ended otherwise and is recorded: its status, or `None` when the lease was lost.
    Finished(Option<JobStatus>),
    /// The pool aborted the job (lease lost, or shutdown).
    Aborted,
}

/// A handler's success not yet recorded.
struct Pending {
    job: Job,
    lease: Lease,
    result: Option<serde_json::Value>,
}

struct InFlight {
    job: Job,
    lease: Lease,
    abort: AbortHandle,
}

/// A pool of workers on one queue.
pub struct WorkerPool<C> {
    queue: Queue,
    registry: Arc<Registry<C>>,
    ctx: C,
    config: WorkerConfig,
    worker_id: String,
}

impl<C: Clone + Send + Sync + 'static> WorkerPool<C> {
    /// A pool named `worker_id` running `registry`'s handlers with `ctx`.
    pub fn new(
        queue: Queue,
        registry: Registry<C>,
        ctx: C,
        config: WorkerConfig,
        worker_id: String,
    ) -> Self {
        Self {
            queue,
            registry: Arc::new(registry),
            ctx,
            config,
            worker_id,
        }
    }

    fn groups(&self, inflight: &HashMap<JobId, InFlight>) -> Vec<(KindFilter, i64)> {
        let kinds = self.registry.kinds();
        let free_total = self.config.concurrency.saturating_sub(inflight.len());
        if free_total == 0 {
            return Vec::new();
        }
        let mut running: HashMap<&str, usize> = HashMap::new();
        for f in inflight.values() {
            *running.entry(f.job.kind.as_str()).or_default() += 1;
        }
        let mut groups = Vec::new();
        let mut capped = Vec::new();
        for (kind, cap) in &self.config.per_kind {
            if !kinds.contains(kind) {
                continue;
            }
            capped.push(kind.clone());
            let free = cap
                .saturating_sub(running.get(kind.as_str()).copied().unwrap_or(0))
                .min(free_total);
            if free > 0 {
                groups.push((KindFilter::Only(vec![kind.clone()]), free as i64));
            }
        }
        groups.push((
            KindFilter::AnyOf {
                kinds,
                except: capped,
            },
            free_total as i64,
        ));
        groups
    }

    /// Runs until `shutdown` turns true, then drains within the grace period.
    ///
    /// Successes are recorded by the pool itself, in the same transaction as its next claim (one
    /// statement on PostgreSQL): whatever finished while the previous round trip was under way is
    /// written in one batch, each row fenced by its own lease token, and its slots are refilled by
    /// that same round trip. A success counts as finished once that transaction commits.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> PoolReport {
        let lease_len = Duration::from_millis(self.config.lease_ms);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(JobId, Outcome)>();
        let mut inflight: HashMap<JobId, InFlight> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut report = PoolReport::default();
        let mut last_rescue = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut last_heartbeat = tokio::time::Instant::now();
        let wake = self.queue.wake().clone();
        info!(worker = %self.worker_id, kinds = ?self.registry.kinds(), "worker pool started");

        loop {
            if *shutdown.borrow() {
                break;
            }
            // Register interest before claiming so an enqueue during the claim is not missed.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            if last_rescue.elapsed() >= Duration::from_millis(self.config.rescue_ms) {
                last_rescue = tokio::time::Instant::now();
                match self.queue.rescue_expired().await {
                    Ok(ids) if !ids.is_empty() => {
                        warn!(jobs = ?ids, "rescued jobs with expired leases")
                    }
                    Ok(_) => {}
                    Err(e) => error!(error = %e, "lease rescue failed"),
                }
            }
            if last_heartbeat.elapsed() >= Duration::from_millis(self.config.heartbeat_ms) {
                last_heartbeat = tokio::time::Instant::now();
                self.heartbeat_all(&mut inflight, lease_len, &mut report)
                    .await;
            }

            // Account for everything that finished first, so one claim fills all the free slots
            // instead of one claim per finished job.
            while let Ok((id, outcome)) = done_rx.try_recv() {
                Self::account(&mut inflight, &mut pending, id, outcome, &mut report);
            }
            let mut to_record = std::mem::take(&mut pending);
            let mut claimed_full = false;
            for (filter, free) in self.groups(&inflight) {
                let limit = free.min(self.config.claim_batch as i64);
                let items: Vec<(&Job, Lease, Option<&serde_json::Value>)> = to_record
                    .iter()
                    .map(|p| (&p.job, p.lease, p.result.as_ref()))
                    .collect();
                let outcome = self
                    .queue
                    .complete_and_claim(&items, &filter, limit, &self.worker_id, lease_len)
                    .await;
                drop(items);
                match outcome {
                    Ok((held, jobs)) => {
                        Self::tally(&held, &mut report);
                        to_record.clear();
                        claimed_full |= jobs.len() as i64 == limit;
                        for (job, lease) in jobs {
                            self.spawn_job(job, lease, &done_tx, &mut inflight);
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "claim failed");
                        break;
                    }
                }
            }
            // Successes no claim took (no free group, or the claim failed).
            self.record(to_record, &mut report).await;

            if claimed_full && inflight.len() < self.config.concurrency {
                continue;
            }
            let poll = Duration::from_millis(self.config.poll_ms);
            let until_heartbeat = Duration::from_millis(self.config.heartbeat_ms)
                .saturating_sub(last_heartbeat.elapsed())
                .max(Duration::from_millis(1));
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = &mut notified => {}
                _ = tokio::time::sleep(poll.min(until_heartbeat)) => {}
                Some((id, outcome)) = done_rx.recv() => {
                    Self::account(&mut inflight, &mut pending, id, outcome, &mut report);
                }
            }
        }

        // Graceful drain: no more claims; in-flight jobs get the grace period (heartbeating on),
        // and every success is committed as it arrives.
        info!(worker = %self.worker_id, in_flight = inflight.len(), "worker pool stopping");
        while let Ok((id, outcome)) = done_rx.try_recv() {
            Self::account(&mut inflight, &mut pending, id, outcome, &mut report);
        }
        self.record(std::mem::take(&mut pending), &mut report).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.grace_ms);
        while !inflight.is_empty() {
            let beat = tokio::time::sleep(Duration::from_millis(self.config.heartbeat_ms));
            tokio::select! {
                Some((id, outcome)) = done_rx.recv() => {
                    Self::account(&mut inflight, &mut pending, id, outcome, &mut report);
                    while let Ok((id, outcome)) = done_rx.try_recv() {
                        Self::account(&mut inflight, &mut pending, id, outcome, &mut report);
                    }
                    self.record(std::mem::take(&mut pending), &mut report).await;
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = beat => self.heartbeat_all(&mut inflight, lease_len, &mut report).await,
            }
        }
        for (_, f) in inflight.drain() {
            f.abort.abort();
            match self.queue.release(&f.job, f.lease).await {
                Ok(true) => report.released += 1,
                Ok(false) => {}
                Err(e) => error!(job = %f.job.id, error = %e, "could not release job at shutdown"),
            }
        }
        info!(worker = %self.worker_id, ?report, "worker pool stopped");
        report
    }

    /// Takes a finished job out of the running set; a success waits in `pending` to be recorded.
    fn account(
        inflight: &mut HashMap<JobId, InFlight>,
        pending: &mut Vec<Pending>,
        id: JobId,
        outcome: Outcome,
        report: &mut PoolReport,
    ) {
        let Some(f) = inflight.remove(&id) else {
            // Already given up (lease lost, counted then): nothing of it is recorded.
            return;
        };
        match outcome {
            Outcome::Succeeded(result) => pending.push(Pending {
                job: f.job,
                lease: f.lease,
                result,
            }),
            Outcome::Finished(Some(JobStatus::Succeeded)) => report.succeeded += 1,
            Outcome::Finished(Some(_)) => report.failed += 1,
            Outcome::Finished(None) => report.lost += 1,
            Outcome::Aborted => {}
        }
    }

    /// Counts recorded successes: held leases succeeded, the others had lost their lease.
    fn tally(held: &[bool], report: &mut PoolReport) {
        for h in held {
            if *h {
                report.succeeded += 1;
            } else {
                report.lost += 1;
            }
        }
    }

    /// Records successes without a claim: in one batch, or one by one if the batch fails (one bad
    /// row must not cost the others their success). A success that cannot be written at all stays
    /// `running`; its lease expires and the job runs again (at-least-once).
    async fn record(&self, pending: Vec<Pending>, report: &mut PoolReport) {
        if pending.is_empty() {
            return;
        }
        let items: Vec<(&Job, Lease, Option<&serde_json::Value>)> = pending
            .iter()
            .map(|p| (&p.job, p.lease, p.result.as_ref()))
            .collect();
        match self.queue.complete_batch(&items).await {
            Ok(held) => Self::tally(&held, report),
            Err(e) => {
                warn!(error = %e, jobs = pending.len(), "batched completion failed; completing one by one");
                for p in &pending {
                    match self
                        .queue
                        .complete(&p.job, p.lease, p.result.as_ref())
                        .await
                    {
                        Ok(h) => Self::tally(&[h], report),
                        Err(e) => {
                            error!(job = %p.job.id, error = %e, "could not record success; the lease will expire and the job rerun");
                            report.lost += 1;
                        }
                    }
                }
            }
        }
    }

    async fn heartbeat_all(
        &self,
        inflight: &mut HashMap<JobId, InFlight>,
        lease_len: Duration,
        report: &mut PoolReport,
    ) {
        if inflight.is_empty() {
            return;
        }
        let leases: Vec<Lease> = inflight.values().map(|f| f.lease).collect();
        let lost: Vec<JobId> = match self.queue.heartbeat_many(&leases, lease_len).await {
            Ok(held) => inflight
                .keys()
                .filter(|id| !held.contains(id))
                .copied()
                .collect(),
            Err(e) => {
                warn!(jobs = inflight.len(), error = %e, "heartbeat failed");
                Vec::new()
            }
        };
        for id in lost {
            if let Some(f) = inflight.remove(&id) {
                warn!(job = %id, kind = %f.job.kind, "lease lost (expired, cancelled or re-claimed): stopping the job");
                f.abort.abort();
                report.lost += 1;
            }
        }
    }

    fn spawn_job(
        &self,
        job: Job,
        lease: Lease,
        done_tx: &mpsc::UnboundedSender<(JobId, Outcome)>,
        inflight: &mut HashMap<JobId, InFlight>,
    ) {
        let Some(handler) = self.registry.handlers.get(&job.kind).cloned() else {
            // Unreachable by construction (we only claim registered kinds); fail loudly if not.
            error!(kind = %job.kind, "claimed a job with no handler");
            return;
        };
        let ctx = JobCtx {
            job: job.clone(),
            lease,
            queue: self.queue.clone(),
            ctx: self.ctx.clone(),
        };
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts, campaign = ?job.campaign_id);
        let inner = tokio::spawn(handler(ctx).instrument(span.clone()));
        let abort = inner.abort_handle();
        let queue = self.queue.clone();
        let done = done_tx.clone();
        let running = job.clone();
        tokio::spawn(
            async move {
                let outcome = match inner.await {
                    // Recorded by the pool, batched with its next claim.
                    Ok(Ok(value)) => Outcome::Succeeded(value),
                    Ok(Err(err)) => {
                        debug!(error = %err, "job attempt failed");
                        Outcome::Finished(match queue.fail(&running, lease, &err).await {
                            Ok(s) => s,
                            Err(e) => {
                                error!(error = %e, "could not record failure");
                                None
                            }
                        })
                    }
                    Err(e) if e.is_panic() => {
                        let msg = panic_message(e.into_panic());
                        error!(panic = %msg, "job handler panicked");
                        let err = JobError::Retryable(format!("handler panicked: {msg}"));
                        Outcome::Finished(queue.fail(&running, lease, &err).await.unwrap_or(None))
                    }
                    Err(_) => Outcome::Aborted,
                };
                if let Err(mpsc::error::SendError((_, Outcome::Succeeded(value)))) =
                    done.send((running.id, outcome))
                {
                    // The pool is gone: record the success here.
                    if let Err(e) = queue.complete(&running, lease, value.as_ref()).await {
                        error!(error = %e, "could not record success; the lease will expire and the job rerun");
                    }
                }
            }
            .instrument(span),
        );
        inflight.insert(job.id, InFlight { job, lease, abort });
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
