//! The `jobs` table: the durable queue's rows and every statement that moves a job between states.
//!
//! State machine: `queued` → `running` (claimed with a lease and a fencing token) → `succeeded`;
//! a failed attempt → `failed` (waits for its retry time, then claimable again) or `dead` once
//! `max_attempts` is spent; any unfinished job → `cancelled` on request. Every statement that acts for
//! a worker is fenced by `lease_token`: a worker that lost its lease changes nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, DbError, Dialect};
use crate::engine::clock::Millis;

/// A job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to be claimed.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Finished successfully.
    Succeeded,
    /// An attempt failed; claimable again at `run_at`.
    Failed,
    /// Out of attempts (or failed permanently); kept for inspection and retry.
    Dead,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True when the job will not run again unless someone retries it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            format!(
                "unknown job status `{s}`: expected one of queued, running, succeeded, failed, dead, cancelled"
            )
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What handler runs it, e.g. `scrape.profile`.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Deduplication key: a second enqueue with the same key makes no new job.
    pub unique_key: Option<String>,
    /// Keep the key after the job finishes (cron ticks); otherwise it is released when the job
    /// reaches a terminal state, so the same work can be enqueued again later.
    pub keep_unique: bool,
    /// Earliest run time; now when `None`.
    pub run_at: Option<Millis>,
    /// Higher runs first.
    pub priority: i64,
    /// Attempts before the job is `dead`.
    pub max_attempts: i64,
    /// The campaign the job works for, if any.
    pub campaign_id: Option<i64>,
    /// The job whose work this is part of (for waiting on a whole tree of jobs).
    pub root_id: Option<i64>,
}

impl NewJob {
    /// A job of `kind` with `payload` and default settings.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            unique_key: None,
            keep_unique: false,
            run_at: None,
            priority: 0,
            max_attempts: 5,
            campaign_id: None,
            root_id: None,
        }
    }

    /// Deduplicates on `key` while the job is unfinished.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self.keep_unique = false;
        self
    }

    /// Deduplicates on `key` forever (for cron ticks).
    pub fn unique_forever(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self.keep_unique = true;
        self
    }

    /// Sets the earliest run time.
    pub fn run_at(mut self, at: Millis) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, p: i64) -> Self {
        self.priority = p;
        self
    }

    /// Sets the attempt budget.
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Makes the job part of the tree rooted at `root`.
    pub fn root(mut self, root: JobId) -> Self {
        self.root_id = Some(root.0);
        self
    }

    /// Tags the job with a campaign.
    pub fn campaign(mut self, id: i64) -> Self {
        self.campaign_id = Some(id);
        self
    }
}

/// A job row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub priority: i64,
    pub run_at: Millis,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_token: Option<i64>,
    pub lease_until: Option<Millis>,
    pub worker_id: Option<String>,
    pub unique_key: Option<String>,
    pub progress: i64,
    pub progress_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub campaign_id: Option<i64>,
    pub root_id: Option<i64>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

const JOB_COLUMNS: &str = "id, kind, payload, status, priority, run_at, attempts, max_attempts, \
    lease_token, lease_until, worker_id, unique_key, progress, progress_message, result, error, \
    campaign_id, root_id, created_at, started_at, finished_at";

impl Job {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let payload: String = row.try_get("payload")?;
        let result: Option<String> = row.try_get("result")?;
        Ok(Job {
            id: JobId(row.try_get("id")?),
            kind: row.try_get("kind")?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            status: status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            priority: row.try_get("priority")?,
            run_at: row.try_get("run_at")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            lease_token: row.try_get("lease_token")?,
            lease_until: row.try_get("lease_until")?,
            worker_id: row.try_get("worker_id")?,
            unique_key: row.try_get("unique_key")?,
            progress: row.try_get("progress")?,
            progress_message: row.try_get("progress_message")?,
            result: result
                .map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r))),
            error: row.try_get("error")?,
            campaign_id: row.try_get("campaign_id")?,
            root_id: row.try_get("root_id")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// The proof that a worker holds a job: its id and the fencing token of this claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    pub job_id: JobId,
    pub token: i64,
}

/// What enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job (new, or the existing one holding the unique key).
    pub id: JobId,
    /// False when the unique key already named a job.
    pub created: bool,
}

/// Which jobs a claim may take.
#[derive(Debug, Clone)]
pub enum KindFilter {
    /// Only these kinds.
    Only(Vec<String>),
    /// Any of these kinds except those listed in `except`.
    AnyOf {
        kinds: Vec<String>,
        except: Vec<String>,
    },
}

/// A filter for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub campaign_id: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts a job on `conn` (which may be inside the caller's transaction).
pub async fn insert(
    conn: &mut AnyConnection,
    job: &NewJob,
    now: Millis,
) -> Result<Enqueued, DbError> {
    let payload = job.payload.to_string();
    // The conflict target names the predicate because PostgreSQL's unique index is partial
    // (migration 0006); SQLite's full UNIQUE index satisfies it as well.
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, status, priority, run_at, max_attempts, unique_key, keep_unique, \
         campaign_id, root_id, created_at) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(&job.kind)
    .bind(payload)
    .bind(job.priority)
    .bind(job.run_at.unwrap_or(now))
    .bind(job.max_attempts)
    .bind(job.unique_key.clone())
    .bind(job.keep_unique as i64)
    .bind(job.campaign_id)
    .bind(job.root_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = id {
        return Ok(Enqueued {
            id: JobId(id),
            created: true,
        });
    }
    let existing: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE unique_key = $1")
        .bind(job.unique_key.clone())
        .fetch_one(&mut *conn)
        .await?;
    Ok(Enqueued {
        id: JobId(existing),
        created: false,
    })
}

/// Inserts many jobs in one transaction, in order. On PostgreSQL, runs of jobs without a unique
/// key are inserted with one multi-row statement each (up to [`INSERT_CHUNK`] rows) instead of one
/// network round trip per job; a job with a key goes alone, so its conflict is reported exactly as
/// by [`insert`]. SQLite runs in-process (no round trips to save) and its multi-row insert with
/// thousands of `$N` parameters measured slower than single rows, so it inserts one by one.
pub async fn insert_many(db: &Db, jobs: &[NewJob], now: Millis) -> Result<Vec<Enqueued>, DbError> {
    let mut tx = db.begin_write().await?;
    let mut out = Vec::with_capacity(jobs.len());
    let multi_row = db.dialect() == Dialect::Postgres;
    let mut i = 0;
    while i < jobs.len() {
        if !multi_row || jobs[i].unique_key.is_some() {
            out.push(insert(&mut tx, &jobs[i], now).await?);
            i += 1;
            continue;
        }
        let run = jobs[i..]
            .iter()
            .take(INSERT_CHUNK)
            .take_while(|j| j.unique_key.is_none())
            .count();
        out.extend(insert_keyless(&mut tx, &jobs[i..i + run], now).await?);
        i += run;
    }
    tx.commit().await?;
    Ok(out)
}

/// Most jobs inserted by one statement (8 bound values each; SQLite allows 32,766).
const INSERT_CHUNK: usize = 1_000;

/// Inserts jobs that have no unique key (so none can conflict) in one statement.
async fn insert_keyless(
    conn: &mut AnyConnection,
    jobs: &[NewJob],
    now: Millis,
) -> Result<Vec<Enqueued>, DbError> {
    let values: Vec<String> = (0..jobs.len())
        .map(|r| {
            let p = 2 + 8 * r;
            format!(
                "(${}, ${}, 'queued', ${}, ${}, ${}, NULL, ${}, ${}, ${}, $1)",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO jobs (kind, payload, status, priority, run_at, max_attempts, unique_key, keep_unique, \
         campaign_id, root_id, created_at) VALUES {} RETURNING id",
        values.join(", ")
    );
    let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(now);
    for job in jobs {
        q = q
            .bind(job.kind.clone())
            .bind(job.payload.to_string())
            .bind(job.priority)
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(job.keep_unique as i64)
            .bind(job.campaign_id)
            .bind(job.root_id);
    }
    let mut ids = q.fetch_all(&mut *conn).await?;
    if ids.len() != jobs.len() {
        return Err(DbError::Sqlx(sqlx::Error::Protocol(format!(
            "inserted {} jobs but got {} ids back",
            jobs.len(),
            ids.len()
        ))));
    }
    // The rows of one INSERT … VALUES are inserted in list order, each taking the next id (from the
    // sequence on PostgreSQL, max(rowid) + 1 under the write lock on SQLite): whatever other
    // sessions take meanwhile, ours ascend in list order, whatever order RETURNING reports them in.
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|id| Enqueued {
            id: JobId(id),
            created: true,
        })
        .collect())
}

/// The kinds a claim with `kinds` may take (empty: nothing to claim).
fn claimable_kinds(kinds: &KindFilter) -> Vec<String> {
    match kinds {
        KindFilter::Only(k) => k.clone(),
        KindFilter::AnyOf { kinds, except } => kinds
            .iter()
            .filter(|k| !except.contains(k))
            .cloned()
            .collect(),
    }
}

/// The claim statement: `$1` now, `$2` limit, `$3` lease end, `$4` worker id, then (SQLite only)
/// the batch's fencing token, then `n_kinds` kinds. Returns the SQL and the first kind's number.
fn claim_sql(dialect: Dialect, n_kinds: usize) -> (String, usize) {
    // SQLite serializes writers (BEGIN IMMEDIATE), so a plain subselect is safe; PostgreSQL lets
    // concurrent claimers skip each other's rows.
    // The partial index `jobs_claim` is in claim order, so a claim reads `limit` ready rows instead
    // of sorting every ready job. SQLite's planner (no ANALYZE) prefers other indexes and a sort,
    // O(ready jobs) per claim, hence INDEXED BY; PostgreSQL picks it by itself.
    let (token_sql, lock, first_kind, hint) = match dialect {
        Dialect::Sqlite => ("$5", "", 6, " INDEXED BY jobs_claim"),
        Dialect::Postgres => ("nextval('job_lease_seq')", " FOR UPDATE SKIP LOCKED", 5, ""),
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = {token_sql}, \
         lease_until = $3, worker_id = $4, started_at = $1 \
         WHERE id IN (SELECT id FROM jobs{hint} WHERE status IN ('queued', 'failed') AND run_at <= $1 \
         AND kind IN ({kinds}) ORDER BY priority DESC, run_at, id LIMIT $2{lock}) RETURNING {JOB_COLUMNS}",
        kinds = placeholders(first_kind, n_kinds),
    );
    (sql, first_kind + n_kinds)
}

/// The completion statement for `n` leases: `$now` is the finish time, and each lease binds
/// (id, token, result) from `$first` on. Every row is fenced by its own lease token.
fn complete_sql(now: usize, first: usize, n: usize) -> String {
    // VALUES columns are column1.. in both dialects.
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p = first + 3 * i;
            format!("(${}, ${}, ${})", p, p + 1, p + 2)
        })
        .collect();
    format!(
        "UPDATE jobs SET status = 'succeeded', progress = 100, result = v.column3, finished_at = ${now}, \
         lease_until = NULL, unique_key = CASE WHEN keep_unique = 1 THEN unique_key ELSE NULL END \
         FROM (VALUES {}) AS v WHERE jobs.id = v.column1 AND jobs.lease_token = v.column2 \
         AND jobs.status = 'running' RETURNING jobs.id",
        values.join(", ")
    )
}

/// Most leases completed by one statement (PostgreSQL allows 65,535 bound values).
const COMPLETE_CHUNK: usize = 256;

/// How many VALUES rows a completion statement for `n` leases has: `n` rounded up to a power of
/// two, so a pool cycles through a handful of statement texts (each prepared once per connection)
/// instead of one per batch size, which would overflow the prepared-statement cache.
fn padded(n: usize) -> usize {
    n.next_power_of_two().min(COMPLETE_CHUNK.max(n))
}

/// Binds `done` as (id, token, result) triples, padded to [`padded`] rows with a job id no row has.
fn bind_completions<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    done: &[(Lease, Option<&serde_json::Value>)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for (lease, result) in done {
        q = q
            .bind(lease.job_id.0)
            .bind(lease.token)
            .bind(result.map(|r| r.to_string()));
    }
    for _ in done.len()..padded(done.len()) {
        q = q.bind(-1_i64).bind(-1_i64).bind(None::<String>);
    }
    q
}

fn jobs_in_claim_order(rows: &[AnyRow]) -> Result<Vec<Job>, DbError> {
    let mut jobs = rows
        .iter()
        .map(Job::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(jobs)
}

/// Claims up to `limit` ready jobs for `worker_id`, leasing them until `lease_until`.
pub async fn claim(
    db: &Db,
    kinds: &KindFilter,
    limit: i64,
    worker_id: &str,
    now: Millis,
    lease_until: Millis,
) -> Result<Vec<Job>, DbError> {
    let (_, claimed) =
        complete_and_claim(db, &[], kinds, limit, worker_id, now, lease_until).await?;
    Ok(claimed)
}

/// Records the successes in `done` (as [`complete_batch`]) and claims up to `limit` ready jobs (as
/// [`claim`]) in one transaction — on PostgreSQL in one statement, so a worker pool pays one round
/// trip and one commit (one WAL flush) per cycle instead of two. Returns, per lease in `done`,
/// whether it was still held, and the claimed jobs in claim order.
///
/// Atomic: on an error neither the completions nor the claim happened.
pub async fn complete_and_claim(
    db: &Db,
    done: &[(Lease, Option<&serde_json::Value>)],
    kinds: &KindFilter,
    limit: i64,
    worker_id: &str,
    now: Millis,
    lease_until: Millis,
) -> Result<(Vec<bool>, Vec<Job>), DbError> {
    let kind_values = claimable_kinds(kinds);
    if kind_values.is_empty() || limit <= 0 {
        return Ok((complete_batch(db, done, now).await?, Vec::new()));
    }
    let (claim, next_param) = claim_sql(db.dialect(), kind_values.len());
    match db.dialect() {
        Dialect::Postgres if done.len() <= COMPLETE_CHUNK => {
            // One statement, committed on its own (no BEGIN/COMMIT round trips). Both data-modifying
            // CTEs run exactly once on the same snapshot; they cannot touch the same row, since
            // `done` only changes running jobs and the claim only queued or failed ones.
            let sql = if done.is_empty() {
                claim
            } else {
                format!(
                    "WITH done AS ({}), claimed AS ({claim}) \
                     SELECT d.done_ids, c.* FROM (SELECT string_agg(id::text, ',') AS done_ids FROM done) AS d \
                     LEFT JOIN claimed AS c ON true",
                    complete_sql(1, next_param, padded(done.len()))
                )
            };
            let mut q = sqlx::query(&sql)
                .bind(now)
                .bind(limit)
                .bind(lease_until)
                .bind(worker_id);
            for k in &kind_values {
                q = q.bind(k.clone());
            }
            let rows = bind_completions(q, done).fetch_all(db.writer()).await?;
            if done.is_empty() {
                return Ok((Vec::new(), jobs_in_claim_order(&rows)?));
            }
            // One row per claimed job, or a single row with NULL job columns when none was.
            let done_ids: Option<String> = match rows.first() {
                Some(r) => r.try_get("done_ids")?,
                None => None,
            };
            let held: std::collections::HashSet<i64> = done_ids
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect();
            let mut claimed_rows = Vec::with_capacity(rows.len());
            for r in rows {
                if r.try_get::<Option<i64>, _>("id")?.is_some() {
                    claimed_rows.push(r);
                }
            }
            Ok((
                done.iter()
                    .map(|(l, _)| held.contains(&l.job_id.0))
                    .collect(),
                jobs_in_claim_order(&claimed_rows)?,
            ))
        }
        dialect => {
            let mut tx = db.begin_write().await?;
            let held = complete_on(&mut tx, done, now).await?;
            let mut q = sqlx::query(&claim)
                .bind(now)
                .bind(limit)
                .bind(lease_until)
                .bind(worker_id);
            if dialect == Dialect::Sqlite {
                // One fencing token per claim batch: (job id, token) stays unique, and any later
                // claim of the same job gets a larger token.
                let token: i64 = sqlx::query_scalar(
                    "UPDATE queue_state SET lease_seq = lease_seq + 1 WHERE id = 1 RETURNING lease_seq",
                )
                .fetch_one(&mut *tx)
                .await?;
                q = q.bind(token);
            }
            for k in &kind_values {
                q = q.bind(k.clone());
            }
            let rows = q.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok((held, jobs_in_claim_order(&rows)?))
        }
    }
}

/// Extends many leases to `lease_until` in one statement (per [`COMPLETE_CHUNK`] leases); returns
/// the job ids whose lease is still held (the others were lost: expired and rescued, cancelled or
/// re-claimed). One statement instead of one per job matters on SQLite, where every statement
/// waits for the one writer connection: behind long write transactions, heartbeating N jobs one
/// by one took N of those waits and could outlast the lease.
pub async fn heartbeat_many(
    db: &Db,
    leases: &[Lease],
    lease_until: Millis,
) -> Result<Vec<JobId>, DbError> {
    let mut held = Vec::with_capacity(leases.len());
    for chunk in leases.chunks(COMPLETE_CHUNK) {
        let n = padded(chunk.len());
        let values: Vec<String> = (0..n)
            .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
            .collect();
        let sql = format!(
            "UPDATE jobs SET lease_until = $1 FROM (VALUES {}) AS v \
             WHERE jobs.id = v.column1 AND jobs.lease_token = v.column2 AND jobs.status = 'running' \
             RETURNING jobs.id",
            values.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(lease_until);
        for l in chunk {
            q = q.bind(l.job_id.0).bind(l.token);
        }
        for _ in chunk.len()..n {
            q = q.bind(-1_i64).bind(-1_i64);
        }
        held.extend(q.fetch_all(db.writer()).await?.into_iter().map(JobId));
    }
    Ok(held)
}

/// Records progress (0–100 and a message) under the lease.
pub async fn progress(
    db: &Db,
    lease: Lease,
    pct: i64,
    message: Option<&str>,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET progress = $1, progress_message = $2 \
         WHERE id = $3 AND lease_token = $4 AND status = 'running'",
    )
    .bind(pct.clamp(0, 100))
    .bind(message.map(str::to_string))
    .bind(lease.job_id.0)
    .bind(lease.token)
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks a job succeeded under its lease. False when the lease was lost.
pub async fn complete(
    conn: &mut AnyConnection,
    lease: Lease,
    result: Option<&serde_json::Value>,
    now: Millis,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'succeeded', progress = 100, result = $1, finished_at = $2, \
         lease_until = NULL, unique_key = CASE WHEN keep_unique = 1 THEN unique_key ELSE NULL END \
         WHERE id = $3 AND lease_token = $4 AND status = 'running'",
    )
    .bind(result.map(|r| r.to_string()))
    .bind(now)
    .bind(lease.job_id.0)
    .bind(lease.token)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Completes many leases in one transaction; returns how many were still held.
pub async fn complete_many(db: &Db, leases: &[Lease], now: Millis) -> Result<u64, DbError> {
    let mut tx = db.begin_write().await?;
    let mut n = 0;
    for lease in leases {
        if complete(&mut tx, *lease, None, now).await? {
            n += 1;
        }
    }
    tx.commit().await?;
    Ok(n)
}

/// Completes several leases, each with its result, in one statement per 256 jobs (one round trip
/// and one commit instead of one per job). Returns, per lease, whether it was still held; every
/// row is fenced by its own lease token exactly as in [`complete`].
pub async fn complete_batch(
    db: &Db,
    done: &[(Lease, Option<&serde_json::Value>)],
    now: Millis,
) -> Result<Vec<bool>, DbError> {
    if done.is_empty() {
        return Ok(Vec::new());
    }
    if db.dialect() == Dialect::Postgres && done.len() <= COMPLETE_CHUNK {
        // One statement commits by itself: no BEGIN/COMMIT round trips.
        let mut conn = db.writer().acquire().await?;
        return complete_on(&mut conn, done, now).await;
    }
    let mut tx = db.begin_write().await?;
    let held = complete_on(&mut tx, done, now).await?;
    tx.commit().await?;
    Ok(held)
}

/// [`complete_batch`] on `conn` (a transaction when `done` has more than one chunk).
async fn complete_on(
    conn: &mut AnyConnection,
    done: &[(Lease, Option<&serde_json::Value>)],
    now: Millis,
) -> Result<Vec<bool>, DbError> {
    let mut held_ids = std::collections::HashSet::new();
    for chunk in done.chunks(COMPLETE_CHUNK) {
        let sql = complete_sql(1, 2, padded(chunk.len()));
        let q = bind_completions(sqlx::query(&sql).bind(now), chunk);
        for row in q.fetch_all(&mut *conn).await? {
            held_ids.insert(row.try_get::<i64, _>(0)?);
        }
    }
    Ok(done
        .iter()
        .map(|(l, _)| held_ids.contains(&l.job_id.0))
        .collect())
}

/// Records a failed attempt under the lease: `dead` when `dead`, else `failed` until `retry_at`.
pub async fn fail(
    db: &Db,
    lease: Lease,
    error: &str,
    dead: bool,
    retry_at: Millis,
    now: Millis,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET status = $1, error = $2, run_at = $3, lease_until = NULL, \
         finished_at = CASE WHEN $1 = 'dead' THEN $4 ELSE NULL END, \
         unique_key = CASE WHEN $1 = 'dead' AND keep_unique = 0 THEN NULL ELSE unique_key END \
         WHERE id = $5 AND lease_token = $6 AND status = 'running'",
    )
    .bind(if dead { "dead" } else { "failed" })
    .bind(error)
    .bind(retry_at)
    .bind(now)
    .bind(lease.job_id.0)
    .bind(lease.token)
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Puts a held job back to `queued` at `run_at` without counting the attempt (shutdown release,
/// or a handler that asked to wait, e.g. for a rate limit).
pub async fn release(
    db: &Db,
    lease: Lease,
    run_at: Millis,
    note: Option<&str>,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
         run_at = $1, lease_until = NULL, worker_id = NULL, progress_message = COALESCE($2, progress_message) \
         WHERE id = $3 AND lease_token = $4 AND status = 'running'",
    )
    .bind(run_at)
    .bind(note.map(str::to_string))
    .bind(lease.job_id.0)
    .bind(lease.token)
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Rescues running jobs whose lease expired before `now`: back to `failed` (claimable at once), or
/// `dead` when out of attempts. Returns the rescued jobs' ids.
pub async fn rescue_expired(db: &Db, now: Millis) -> Result<Vec<JobId>, DbError> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END, \
         error = 'lease expired: the worker stopped heartbeating (killed or stalled)', \
         run_at = $1, lease_until = NULL, \
         finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END \
         WHERE status = 'running' AND lease_until < $1 RETURNING id",
    )
    .bind(now)
    .fetch_all(db.writer())
    .await?;
    Ok(rows.into_iter().map(JobId).collect())
}

/// Cancels an unfinished job. False when it had already finished.
pub async fn cancel(db: &Db, id: JobId, now: Millis) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = $1, lease_until = NULL, \
         unique_key = CASE WHEN keep_unique = 1 THEN unique_key ELSE NULL END \
         WHERE id = $2 AND status IN ('queued', 'failed', 'running')",
    )
    .bind(now)
    .bind(id.0)
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Re-queues a dead, failed or cancelled job with a fresh attempt budget.
pub async fn retry(db: &Db, id: JobId, now: Millis) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, error = NULL, finished_at = NULL, \
         progress = 0, progress_message = NULL \
         WHERE id = $2 AND status IN ('dead', 'failed', 'cancelled')",
    )
    .bind(now)
    .bind(id.0)
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One job.
pub async fn get(db: &Db, id: JobId) -> Result<Option<Job>, DbError> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(Job::from_row).transpose()?)
}

/// Jobs matching `filter`, newest first.
pub async fn list(db: &Db, filter: &JobFilter) -> Result<Vec<Job>, DbError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR kind = $2) \
         AND ($3 IS NULL OR campaign_id = $3) ORDER BY id DESC LIMIT $4 OFFSET $5"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.status.map(|s| s.as_str().to_string()))
        .bind(filter.kind.clone())
        .bind(filter.campaign_id)
        .bind(if filter.limit > 0 { filter.limit } else { 100 })
        .bind(filter.offset.max(0))
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(Job::from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Counts jobs by (kind, status).
pub async fn counts(db: &Db) -> Result<Vec<(String, JobStatus, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status",
    )
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        out.push((
            row.try_get("kind")?,
            status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            row.try_get("n")?,
        ));
    }
    Ok(out)
}

/// The statuses of the given jobs (missing ids are left out).
pub async fn statuses(db: &Db, ids: &[JobId]) -> Result<Vec<(JobId, JobStatus)>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, status FROM jobs WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id.0);
    }
    let rows = q.fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        out.push((
            JobId(row.try_get("id")?),
            status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        ));
    }
    Ok(out)
}

/// How the tree of jobs rooted at `root` stands: (unfinished, succeeded, dead, cancelled) counts.
pub async fn tree_counts(db: &Db, root: JobId) -> Result<TreeCounts, DbError> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM jobs WHERE id = $1 OR root_id = $1 GROUP BY status",
    )
    .bind(root.0)
    .fetch_all(db.pool())
    .await?;
    let mut c = TreeCounts::default();
    for row in rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        match status
            .parse::<JobStatus>()
            .map_err(|e| sqlx::Error::Decode(e.into()))?
        {
            JobStatus::Queued | JobStatus::Running | JobStatus::Failed => c.unfinished += n,
            JobStatus::Succeeded => c.succeeded += n,
            JobStatus::Dead => c.dead += n,
            JobStatus::Cancelled => c.cancelled += n,
        }
    }
    Ok(c)
}

/// Counts of a job tree by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TreeCounts {
    pub unfinished: i64,
    pub succeeded: i64,
    pub dead: i64,
    pub cancelled: i64,
}
