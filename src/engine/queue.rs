//! The durable job queue (DESIGN §5): enqueue, claim with a lease and a fencing token, heartbeat,
//! complete, fail with exponential backoff and jitter, dead letters, cancel, retry, progress and
//! lease rescue — on SQLite and PostgreSQL alike. The worker pool lives in `worker.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use rand::Rng;
use serde::Deserialize;

pub use crate::db::jobs::{Enqueued, Job, JobFilter, JobId, JobStatus, KindFilter, Lease, NewJob};
use crate::db::{jobs, Db, DbError};
use crate::engine::clock::{Millis, SharedClock};
use crate::engine::events::{EngineEvent, EventBus};

/// Retry timing.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// Delay before the first retry, in milliseconds.
    pub base_ms: i64,
    /// Upper bound of any delay, in milliseconds.
    pub max_ms: i64,
    /// Random spread added on top, as a fraction of the delay (0.0–1.0).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_ms: 2_000,
            max_ms: 3_600_000,
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): base·2^(attempt-1), capped, plus jitter.
    pub fn delay_ms(&self, attempt: i64) -> i64 {
        let exp = (attempt.max(1) - 1).min(30) as u32;
        let raw = self.base_ms.saturating_mul(1i64 << exp).min(self.max_ms);
        let spread = (raw as f64 * self.jitter.clamp(0.0, 1.0)) as i64;
        let jitter = if spread > 0 {
            rand::thread_rng().gen_range(0..=spread)
        } else {
            0
        };
        (raw + jitter).min(self.max_ms.max(0))
    }
}

/// How a handler's attempt ended, when it did not succeed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum JobError {
    /// Try again later (counts an attempt).
    #[error("{0}")]
    Retryable(String),
    /// No retry can help (bad input); the job goes `dead` at once.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: put the job back until `until` without counting an attempt (a rate limit,
    /// a budget, a quiet hour).
    #[error("waiting until {until}: {reason}")]
    Snooze { until: Millis, reason: String },
}

impl JobError {
    /// A retryable failure from anything printable.
    pub fn retry(e: impl std::fmt::Display) -> Self {
        JobError::Retryable(e.to_string())
    }
    /// A permanent failure from anything printable.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        JobError::Permanent(e.to_string())
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Retryable(format!("database: {e}"))
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Retryable(format!("database: {e}"))
    }
}

/// The queue: the jobs table seen through the engine's clock, publishing events.
#[derive(Debug, Clone)]
pub struct Queue {
    db: Db,
    clock: SharedClock,
    events: EventBus,
    backoff: Backoff,
    /// Wakes this process's worker pools when a job is enqueued here.
    wake: Arc<Notify>,
}

impl Queue {
    /// A queue over `db`.
    pub fn new(db: Db, clock: SharedClock, events: EventBus, backoff: Backoff) -> Self {
        Self {
            db,
            clock,
            events,
            backoff,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notified when this process enqueues work (workers also poll, for other processes' jobs).
    pub fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    fn publish(&self, job: &Job) {
        self.events.publish(EngineEvent::Job {
            id: job.id,
            kind: job.kind.clone(),
            status: job.status,
            progress: job.progress,
            message: job.progress_message.clone().or_else(|| job.error.clone()),
        });
    }

    fn publish_status(&self, id: JobId, kind: &str, status: JobStatus, message: Option<String>) {
        self.events.publish(EngineEvent::Job {
            id,
            kind: kind.to_string(),
            status,
            progress: if status == JobStatus::Succeeded {
                100
            } else {
                0
            },
            message,
        });
    }

    /// Enqueues a job (deduplicated by its unique key).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, DbError> {
        let mut conn = self.db.writer().acquire().await?;
        let e = jobs::insert(&mut conn, &job, self.now()).await?;
        if e.created {
            self.publish_status(e.id, &job.kind, JobStatus::Queued, None);
            self.wake.notify_waiters();
        }
        Ok(e)
    }

    /// Enqueues a job inside the caller's transaction (outbox): it exists if and only if the
    /// caller's writes commit.
    pub async fn enqueue_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        job: &NewJob,
    ) -> Result<Enqueued, DbError> {
        jobs::insert(conn, job, self.now()).await
    }

    /// Enqueues many jobs in one transaction.
    pub async fn enqueue_many(&self, batch: &[NewJob]) -> Result<Vec<Enqueued>, DbError> {
        let out = jobs::insert_many(&self.db, batch, self.now()).await?;
        self.wake.notify_waiters();
        Ok(out)
    }

    /// Claims up to `limit` ready jobs, leased for `lease`.
    pub async fn claim(
        &self,
        kinds: &KindFilter,
        limit: i64,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Vec<(Job, Lease)>, DbError> {
        let now = self.now();
        let claimed = jobs::claim(
            &self.db,
            kinds,
            limit,
            worker_id,
            now,
            now + lease.as_millis() as i64,
        )
        .await?;
        Ok(self.leased(claimed))
    }

    /// Records the successes in `done` and claims up to `limit` ready jobs in one transaction (one
    /// statement on PostgreSQL): what a worker pool does between two rounds of work. Returns, per
    /// job in `done`, whether its lease was still held, and the claimed jobs with their leases.
    pub async fn complete_and_claim(
        &self,
        done: &[(&Job, Lease, Option<&serde_json::Value>)],
        kinds: &KindFilter,
        limit: i64,
        worker_id: &str,
        lease: Duration,
    ) -> Result<(Vec<bool>, Vec<(Job, Lease)>), DbError> {
        let now = self.now();
        let rows: Vec<(Lease, Option<&serde_json::Value>)> =
            done.iter().map(|(_, l, r)| (*l, *r)).collect();
        let (held, claimed) = jobs::complete_and_claim(
            &self.db,
            &rows,
            kinds,
            limit,
            worker_id,
            now,
            now + lease.as_millis() as i64,
        )
        .await?;
        for ((job, _, _), ok) in done.iter().zip(&held) {
            if *ok {
                self.publish_status(job.id, &job.kind, JobStatus::Succeeded, None);
            }
        }
        Ok((held, self.leased(claimed)))
    }

    fn leased(&self, claimed: Vec<Job>) -> Vec<(Job, Lease)> {
        claimed
            .into_iter()
            .map(|job| {
                let lease = Lease {
                    job_id: job.id,
                    token: job.lease_token.unwrap_or_default(),
                };
                self.publish(&job);
                (job, lease)
            })
            .collect()
    }

    /// Extends a lease; false when the worker no longer holds it and must stop.
    pub async fn heartbeat(&self, lease: Lease, lease_for: Duration) -> Result<bool, DbError> {
        let held = self.heartbeat_many(&[lease], lease_for).await?;
        Ok(held.contains(&lease.job_id))
    }

    /// Extends every lease in `leases` by `lease_for` in one statement; returns the jobs whose
    /// lease is still held.
    pub async fn heartbeat_many(
        &self,
        leases: &[Lease],
        lease_for: Duration,
    ) -> Result<Vec<JobId>, DbError> {
        jobs::heartbeat_many(&self.db, leases, self.now() + lease_for.as_millis() as i64).await
    }

    /// Reports progress (0–100) with a message.
    pub async fn progress(
        &self,
        job: &Job,
        lease: Lease,
        pct: i64,
        message: &str,
    ) -> Result<bool, DbError> {
        let held = jobs::progress(&self.db, lease, pct, Some(message)).await?;
        if held {
            self.events.publish(EngineEvent::Job {
                id: job.id,
                kind: job.kind.clone(),
                status: JobStatus::Running,
                progress: pct.clamp(0, 100),
                message: Some(message.to_string()),
            });
        }
        Ok(held)
    }

    /// Marks a job succeeded; false when the lease was lost (the result is then discarded).
    pub async fn complete(
        &self,
        job: &Job,
        lease: Lease,
        result: Option<&serde_json::Value>,
    ) -> Result<bool, DbError> {
        let mut conn = self.db.writer().acquire().await?;
        let held = jobs::complete(&mut conn, lease, result, self.now()).await?;
        if held {
            self.publish_status(job.id, &job.kind, JobStatus::Succeeded, None);
        }
        Ok(held)
    }

    /// Marks several jobs succeeded in one transaction; per job, false when its lease was lost.
    pub async fn complete_batch(
        &self,
        done: &[(&Job, Lease, Option<&serde_json::Value>)],
    ) -> Result<Vec<bool>, DbError> {
        let rows: Vec<(Lease, Option<&serde_json::Value>)> =
            done.iter().map(|(_, l, r)| (*l, *r)).collect();
        let held = jobs::complete_batch(&self.db, &rows, self.now()).await?;
        for ((job, _, _), ok) in done.iter().zip(&held) {
            if *ok {
                self.publish_status(job.id, &job.kind, JobStatus::Succeeded, None);
            }
        }
        Ok(held)
    }

    /// Records a failed attempt: retried after a backoff, or `dead` when permanent or out of attempts.
    /// Returns the status the job ended in, or `None` when the lease was lost.
    pub async fn fail(
        &self,
        job: &Job,
        lease: Lease,
        error: &JobError,
    ) -> Result<Option<JobStatus>, DbError> {
        let now = self.now();
        match error {
            JobError::Snooze { until, reason } => {
                let held = jobs::release(&self.db, lease, *until, Some(reason)).await?;
                if held {
                    self.publish_status(job.id, &job.kind, JobStatus::Queued, Some(reason.clone()));
                }
                Ok(held.then_some(JobStatus::Queued))
            }
            JobError::Retryable(msg) | JobError::Permanent(msg) => {
                let dead =
                    matches!(error, JobError::Permanent(_)) || job.attempts >= job.max_attempts;
                let retry_at = now
                    + if dead {
                        0
                    } else {
                        self.backoff.delay_ms(job.attempts)
                    };
                let status = if dead {
                    JobStatus::Dead
                } else {
                    JobStatus::Failed
                };
                let held = jobs::fail(&self.db, lease, msg, dead, retry_at, now).await?;
                if held {
                    self.publish_status(job.id, &job.kind, status, Some(msg.clone()));
                }
                Ok(held.then_some(status))
            }
        }
    }

    /// Gives a held job back, claimable at once, without counting the attempt (graceful shutdown).
    pub async fn release(&self, job: &Job, lease: Lease) -> Result<bool, DbError> {
        let held = jobs::release(&self.db, lease, self.now(), Some("released at shutdown")).await?;
        if held {
            self.publish_status(job.id, &job.kind, JobStatus::Queued, None);
        }
        Ok(held)
    }

    /// Rescues jobs whose lease expired; returns their ids.
    pub async fn rescue_expired(&self) -> Result<Vec<JobId>, DbError> {
        jobs::rescue_expired(&self.db, self.now()).await
    }

    /// Cancels an unfinished job.
    pub async fn cancel(&self, id: JobId) -> Result<bool, DbError> {
        let done = jobs::cancel(&self.db, id, self.now()).await?;
        if done {
            if let Some(job) = jobs::get(&self.db, id).await? {
                self.publish(&job);
            }
        }
        Ok(done)
    }

    /// Re-queues a dead, failed or cancelled job.
    pub async fn retry(&self, id: JobId) -> Result<bool, DbError> {
        let done = jobs::retry(&self.db, id, self.now()).await?;
        if done {
            if let Some(job) = jobs::get(&self.db, id).await? {
                self.publish(&job);
            }
        }
        Ok(done)
    }

    /// One job.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, DbError> {
        jobs::get(&self.db, id).await
    }

    /// Jobs matching a filter, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, DbError> {
        jobs::list(&self.db, filter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
            jitter: 0.0,
        };
        assert_eq!(b.delay_ms(1), 100);
        assert_eq!(b.delay_ms(2), 200);
        assert_eq!(b.delay_ms(4), 800);
        assert_eq!(b.delay_ms(10), 1_000);
    }

    #[test]
    fn backoff_jitter_stays_within_spread() {
        let b = Backoff {
            base_ms: 1_000,
            max_ms: 100_000,
            jitter: 0.5,
        };
        for _ in 0..100 {
            let d = b.delay_ms(1);
            assert!((1_000..=1_500).contains(&d), "{d}");
        }
    }
}
