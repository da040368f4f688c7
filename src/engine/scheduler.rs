//! Cron schedules: each due tick becomes a job with unique key `schedule:<name>:<tick ms>`, so any
//! number of engines on one database fire each tick exactly once. After downtime, only the latest
//! missed tick fires (at most one catch-up).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use croner::Cron;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{error, info};

use crate::db::DbError;
use crate::engine::clock::Millis;
use crate::engine::queue::{Enqueued, NewJob, Queue};

/// How far back a starting scheduler looks for a missed tick to catch up on.
const CATCH_UP_WINDOW_MS: Millis = 2 * 24 * 3600 * 1000;

/// The `[schedule]` section: a cron expression (5 fields, UTC) per scheduled job, or `"off"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Daily shortlist + LLM qualification of every active campaign.
    pub qualify: String,
    /// Polling replies.
    pub feedback_sweep: String,
    /// Nightly re-fit of score weights.
    pub weights_update: String,
    /// Full candidate maintenance of every active campaign.
    pub candidates_maintain: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            qualify: "0 6 * * *".into(),
            feedback_sweep: "*/10 * * * *".into(),
            weights_update: "30 2 * * *".into(),
            candidates_maintain: "0 * * * *".into(),
        }
    }
}

/// A cron expression that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("schedule.{name}: `{expr}` is not a valid cron expression ({detail}); use 5 fields like \"0 6 * * *\", or \"off\"")]
pub struct ScheduleError {
    /// The config key.
    pub name: String,
    /// The expression.
    pub expr: String,
    /// The parser's complaint.
    pub detail: String,
}

/// One schedule: a name, when, and the job it enqueues.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The schedule's name (used in the unique key).
    pub name: String,
    /// The job kind each tick enqueues.
    pub kind: String,
    cron: Cron,
}

impl Schedule {
    /// A schedule named `name` firing `kind` on `expr`.
    pub fn new(name: &str, kind: &str, expr: &str) -> Result<Self, ScheduleError> {
        let cron = Cron::new(expr)
            .with_seconds_optional()
            .parse()
            .map_err(|e| ScheduleError {
                name: name.to_string(),
                expr: expr.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            name: name.to_string(),
            kind: kind.to_string(),
            cron,
        })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let t = Utc.timestamp_millis_opt(after).single()?;
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .map(|d| d.timestamp_millis())
    }

    /// The latest tick at or before `now`, searching no earlier than `since` (exclusive).
    pub fn latest_at_or_before(&self, now: Millis, since: Millis) -> Option<Millis> {
        let mut latest = None;
        let mut cursor = since;
        while let Some(next) = self.next_after(cursor) {
            if next > now {
                break;
            }
            latest = Some(next);
            cursor = next;
        }
        latest
    }

    /// The unique key of the tick at `tick`.
    pub fn unique_key(&self, tick: Millis) -> String {
        format!("schedule:{}:{}", self.name, tick)
    }
}

impl ScheduleConfig {
    /// The configured schedules (skipping those set to "off").
    pub fn schedules(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let table = [
            ("qualify", "qualify.campaign", &self.qualify),
            ("feedback_sweep", "feedback.sweep", &self.feedback_sweep),
            ("weights_update", "weights.update", &self.weights_update),
            (
                "candidates_maintain",
                "candidates.maintain",
                &self.candidates_maintain,
            ),
        ];
        table
            .into_iter()
            .filter(|(_, _, expr)| !matches!(expr.trim(), "" | "off" | "never"))
            .map(|(name, kind, expr)| Schedule::new(name, kind, expr))
            .collect()
    }
}

/// Enqueues due ticks of its schedules.
#[derive(Debug)]
pub struct Scheduler {
    queue: Queue,
    schedules: Vec<(Schedule, Option<Millis>)>,
}

impl Scheduler {
    /// A scheduler for `schedules` on `queue`.
    pub fn new(queue: Queue, schedules: Vec<Schedule>) -> Self {
        Self {
            queue,
            schedules: schedules.into_iter().map(|s| (s, None)).collect(),
        }
    }

    /// Enqueues, for each schedule, the latest tick at or before now that this scheduler has not
    /// fired yet. Returns what was enqueued (`created` false when another engine got there first).
    pub async fn run_due(&mut self) -> Result<Vec<(String, Millis, Enqueued)>, DbError> {
        let now = self.queue.now();
        let mut out = Vec::new();
        for (schedule, last) in &mut self.schedules {
            let since = last.unwrap_or(now - CATCH_UP_WINDOW_MS);
            let Some(tick) = schedule.latest_at_or_before(now, since) else {
                continue;
            };
            let job = NewJob::new(
                schedule.kind.clone(),
                serde_json::json!({ "schedule": schedule.name, "tick": tick }),
            )
            .unique_forever(schedule.unique_key(tick))
            .max_attempts(3);
            let e = self.queue.enqueue(job).await?;
            if e.created {
                info!(schedule = %schedule.name, tick, job = %e.id, "schedule fired");
            }
            *last = Some(tick);
            out.push((schedule.name.clone(), tick, e));
        }
        Ok(out)
    }

    /// The next tick of any schedule after now.
    pub fn next_tick(&self) -> Option<Millis> {
        let now = self.queue.now();
        self.schedules
            .iter()
            .filter_map(|(s, _)| s.next_after(now))
            .min()
    }

    /// Fires due ticks until `shutdown` turns true, checking at least every `max_sleep`.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>, max_sleep: Duration) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.run_due().await {
                error!(error = %e, "scheduler could not enqueue a tick");
            }
            let wait = self
                .next_tick()
                .map(|t| Duration::from_millis((t - self.queue.now()).max(0) as u64))
                .unwrap_or(max_sleep)
                .min(max_sleep)
                .max(Duration::from_millis(10));
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
