//! Candidate maintenance: which profiles match which active campaign, kept up to date incrementally
//! (changed profiles across every active campaign) and in full (one campaign, on create/edit and
//! hourly) — always as set-based SQL, never row by row in Rust.
//!
//! Incremental maintenance is batched. A scrape only records the profile it changed
//! ([`on_profiles_changed`]: rows in `candidates_pending`, inside the scrape's transaction) under
//! the open batch of its job tree; the batch's `candidates.pending` job, enqueued in the same
//! transaction and in the same tree (so `omni discover --wait` waits for it), later re-evaluates the
//! whole batch against every campaign in a few statements ([`drain`]). A batch closes when its job
//! starts; profiles changed after that go to a new batch and job.
//!
//! Writes are kept to what changed: the stored score's recency counts from the start of the UTC
//! day ([`score_epoch`](crate::engine::pipeline::score::score_epoch)), and the upsert rewrites a row
//! only when its score differs, so re-running a full maintenance rewrites nothing
//! that did not change.

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::db::campaigns::{self, Campaign, CampaignId};
use crate::db::profiles::ProfileId;
use crate::db::{bind_all, jobs, Db, DbError, Dialect, SqlValue};
use crate::engine::clock::Millis;
use crate::engine::criteria::compile::CompiledPredicate;
use crate::engine::pipeline::score::{score_sql, Weights};
use crate::engine::queue::{JobError, JobId, NewJob};
use crate::engine::service::Ctx;
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// The kind of the job that re-evaluates one batch of changed profiles.
pub const PENDING_KIND: &str = "candidates.pending";

/// Profiles re-evaluated per transaction by [`drain`]: large enough that the per-statement cost
/// (two statements per campaign) vanishes, small enough that a SQLite write lock is held for a
/// fraction of a second.
pub const DRAIN_CHUNK: usize = 2_000;

/// Registers `candidates.maintain` and `candidates.pending`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("candidates.maintain", maintain_job);
    registry.register(PENDING_KIND, pending_job);
}

#[derive(Debug, Deserialize)]
struct MaintainPayload {
    /// One campaign; absent = every active campaign (the hourly schedule).
    #[serde(default)]
    campaign_id: Option<i64>,
}

/// What a maintenance changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Maintained {
    /// Profiles re-evaluated (incremental), or the campaign's candidate rows afterwards (full).
    pub profiles: i64,
    /// Candidate rows inserted or rewritten (a new match, a changed score).
    pub written: u64,
    /// Candidate rows deleted (profiles that stopped matching).
    pub evicted: u64,
}

impl std::ops::AddAssign for Maintained {
    fn add_assign(&mut self, o: Self) {
        self.profiles += o.profiles;
        self.written += o.written;
        self.evicted += o.evicted;
    }
}

async fn maintain_job(ctx: JobCtx<Ctx>) -> JobResult {
    let p: MaintainPayload = ctx.payload()?;
    let now = ctx.ctx.clock.now_ms();
    let ids: Vec<CampaignId> = match p.campaign_id {
        Some(id) => vec![CampaignId(id)],
        None => {
            // Every campaign is about to be re-evaluated in full, so batches no job will drain
            // (cancelled, dead) can go first.
            let mut tx = ctx.ctx.db.begin_write().await.map_err(JobError::from)?;
            sweep_abandoned(&mut tx).await?;
            tx.commit().await.map_err(JobError::from)?;
            campaigns::list(&ctx.ctx.db, Some(campaigns::CampaignStatus::Active))
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect()
        }
    };
    let mut list = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(c) = campaigns::get(&ctx.ctx.db, *id).await? else {
            return Err(JobError::Permanent(format!("campaign {id} does not exist")));
        };
        list.push(c);
    }
    let mut total = Maintained::default();
    let n = list.len();
    let mut finished = 0;
    maintain_campaigns(&ctx.ctx.db, &list, now, |_, c, m| {
        total += m;
        finished += 1;
        let ctx = &ctx;
        let pct = (finished * 100 / n) as i64;
        let message = format!("campaign {}: {} candidates", c.id, m.profiles);
        async move {
            ctx.progress(pct, &message).await;
        }
    })
    .await?;
    Ok(Some(serde_json::json!({
        "campaigns": ids.len(),
        "candidates": total.profiles,
        "written": total.written,
        "evicted": total.evicted,
    })))
}

/// Enqueues a full maintenance of one campaign (on create and edit).
pub fn maintain_job_for(id: CampaignId) -> NewJob {
    NewJob::new(
        "candidates.maintain",
        serde_json::json!({ "campaign_id": id.0 }),
    )
    .unique(format!("candidates.maintain:{id}"))
    .campaign(id.0)
    .priority(10)
}

/// Brings a campaign's candidates in line with its predicate and rescores them; returns the count.
pub async fn maintain_campaign(
    conn: &mut AnyConnection,
    c: &Campaign,
    now: Millis,
) -> Result<i64, DbError> {
    Ok(maintain_campaign_counted(conn, c, now).await?.profiles)
}

/// Rows a read connection lists for the writer at most; above this (a new campaign, a new day, a
/// narrowed filter) the writer runs the set-based statement itself.
const MAX_LISTED: usize = 20_000;

/// Read connections that plan a full maintenance beside the writer.
const PLANNERS: usize = 2;

/// What a read connection found for one campaign: the rows the writer has to touch.
#[derive(Debug)]
struct Plan {
    /// The weights version the plan was computed with.
    weights_version: i64,
    /// Matching profiles without a candidate row, or whose row's score differs
    /// (None: more than the limit).
    writes: Option<Vec<ProfileId>>,
    /// Candidates whose profile no longer matches (None: more than the limit).
    evictions: Option<Vec<ProfileId>>,
}

/// Full maintenance of `campaigns`, each in its own write transaction, planned on read
/// connections: [`PLANNERS`] of them evaluate the campaigns' predicates and scores over every
/// profile and list the candidate rows to insert, rewrite or delete — on an hourly run usually
/// none — while the writer applies the plans as they come. The writer re-evaluates every listed
/// profile inside its transaction (so a profile that changed in between is judged on what it is
/// now; one that changed after the read is a change, which the incremental path maintains), and
/// runs the set-based statements itself when a list would be long, the weights moved since the
/// plan, or the campaign was edited (it re-reads the campaign in its transaction; a deleted one is
/// skipped). The result equals [`maintain_campaign_counted`] on each campaign in turn; the scans, the
/// bulk of a full run, run on as many cores as there are planners instead of inside the one
/// SQLite writer.
///
/// `done(i, campaign, counts)` is awaited after campaign `i` commits (in the order plans finish).
pub async fn maintain_campaigns<F, Fut>(
    db: &Db,
    campaigns: &[Campaign],
    now: Millis,
    done: F,
) -> Result<(), DbError>
where
    F: FnMut(usize, &Campaign, Maintained) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    maintain_campaigns_listing(db, campaigns, now, MAX_LISTED, done).await
}

/// [`maintain_campaigns`] with the longest list a plan may hand the writer (tests use 0 to force
/// the set-based statements).
pub async fn maintain_campaigns_listing<F, Fut>(
    db: &Db,
    campaigns: &[Campaign],
    now: Millis,
    max_listed: usize,
    mut done: F,
) -> Result<(), DbError>
where
    F: FnMut(usize, &Campaign, Maintained) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (tx_plans, mut rx_plans) =
        tokio::sync::mpsc::channel::<(usize, Result<Plan, DbError>)>(PLANNERS);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shared: std::sync::Arc<Vec<Campaign>> = std::sync::Arc::new(campaigns.to_vec());
    let planners: Vec<_> = (0..PLANNERS.min(campaigns.len()))
        .map(|_| {
            let (pool, next, shared, tx_plans) = (
                db.pool().clone(),
                next.clone(),
                shared.clone(),
                tx_plans.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(c) = shared.get(index) else { return };
                    let planned = async {
                        let mut conn = pool.acquire().await?;
                        plan(&mut conn, c, now, max_listed).await
                    }
                    .await;
                    if tx_plans.send((index, planned)).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx_plans);
    // Dropping this future (a cancelled job, a lost lease) stops the planners too.
    let _planners = AbortOnDrop(planners);
    async {
        let mut applied = vec![false; campaigns.len()];
        while let Some(next) = applied.iter().position(|a| !a) {
            // A failed plan leaves its campaign to the writer's set-based statements (the planner's
            // error would say no more than the writer's own attempt), as does a planner that
            // stopped.
            let (index, planned) = match rx_plans.recv().await {
                Some((i, planned)) => (i, planned.ok()),
                None => (next, None),
            };
            if applied[index] {
                continue;
            }
            applied[index] = true;
            let mut tx = db.begin_write().await?;
            // The campaign as it is now: one deleted since the caller read it is skipped; one
            // edited since (another predicate or criteria hash) is maintained as it now reads, by
            // the set-based statements, since the plan was made for the old version.
            let Some(c) = campaigns::get_on(&mut tx, campaigns[index].id).await? else {
                continue;
            };
            let c = &c;
            let unchanged = c.criteria_hash == campaigns[index].criteria_hash
                && c.predicate == campaigns[index].predicate;
            let weights = campaigns::weights_on(&mut tx, c.id).await?;
            let planned = planned.filter(|p| unchanged && p.weights_version == weights.version);
            let written = match planned.as_ref().and_then(|p| p.writes.as_deref()) {
                Some(ids) => {
                    let mut n = 0;
                    for chunk in ids.chunks(PROFILES_PER_STATEMENT) {
                        n += upsert(&mut tx, c, &weights, Scope::Ids(chunk), now).await?;
                    }
                    n
                }
                None => upsert(&mut tx, c, &weights, Scope::All, now).await?,
            };
            let evicted = match planned.as_ref().and_then(|p| p.evictions.as_deref()) {
                Some(ids) => evict_listed(&mut tx, c, ids, now).await?,
                None => evict(&mut tx, c, Scope::All, now).await?,
            };
            let profiles: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1",
            )
            .bind(c.id.0)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            done(
                index,
                c,
                Maintained {
                    profiles,
                    written,
                    evicted,
                },
            )
            .await;
        }
        Ok(())
    }
    .await
}

/// Aborts the tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Plans one campaign's full maintenance on a read connection (see [`maintain_campaigns`]).
async fn plan(
    conn: &mut AnyConnection,
    c: &Campaign,
    now: Millis,
    max_listed: usize,
) -> Result<Plan, DbError> {
    let weights = campaigns::weights_on(conn, c.id).await?;
    let limit = max_listed as i64 + 1;
    // Rows to write: what the upsert's DO UPDATE … WHERE would not skip.
    let (score, score_params) = score_sql(&weights, &c.spec.filter.keywords_any, now, 3);
    let pred = predicate(conn, c, 3 + score_params.len());
    let sql = format!(
        "SELECT pf.profile_id FROM profile_features pf LEFT JOIN campaign_candidates cc \
         ON cc.campaign_id = $1 AND cc.profile_id = pf.profile_id \
         WHERE ({}) AND (cc.profile_id IS NULL OR cc.cheap_score <> {score}) \
         LIMIT $2",
        pred.sql
    );
    let mut params = score_params;
    params.extend(pred.bind_params(now));
    let q = sqlx::query(&sql).bind(c.id.0).bind(limit);
    let writes = ids_below_limit(
        bind_all(q, &params).fetch_all(&mut *conn).await?,
        max_listed,
    );
    // Rows to delete: candidates whose profile no longer matches.
    let pred = predicate(conn, c, 3);
    let sql = format!(
        "SELECT profile_id FROM campaign_candidates WHERE campaign_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM profile_features pf WHERE pf.profile_id = campaign_candidates.profile_id AND ({})) \
         LIMIT $2",
        pred.sql
    );
    let q = sqlx::query(&sql).bind(c.id.0).bind(limit);
    let evictions = ids_below_limit(
        bind_all(q, &pred.bind_params(now))
            .fetch_all(&mut *conn)
            .await?,
        max_listed,
    );
    Ok(Plan {
        weights_version: weights.version,
        writes,
        evictions,
    })
}

/// The profile ids in `rows` (column 0), or None when there are more than `max`.
fn ids_below_limit(rows: Vec<sqlx::any::AnyRow>, max: usize) -> Option<Vec<ProfileId>> {
    (rows.len() <= max).then(|| rows.iter().map(|r| ProfileId(r.get(0))).collect())
}

/// Deletes those of the campaign's candidates among `ids` whose profile does not match now; `ids`
/// may be stale (read earlier, elsewhere): each is judged on its current features.
pub async fn evict_listed(
    conn: &mut AnyConnection,
    c: &Campaign,
    ids: &[ProfileId],
    now: Millis,
) -> Result<u64, DbError> {
    let mut evicted = 0;
    for chunk in ids.chunks(PROFILES_PER_STATEMENT) {
        evicted += evict(conn, c, Scope::Ids(chunk), now).await?;
    }
    Ok(evicted)
}

/// [`maintain_campaign`], also telling how many rows it wrote and evicted (`profiles` is the
/// candidate count afterwards). Rows whose score is unchanged are not written.
pub async fn maintain_campaign_counted(
    conn: &mut AnyConnection,
    c: &Campaign,
    now: Millis,
) -> Result<Maintained, DbError> {
    let weights = campaigns::weights_on(conn, c.id).await?;
    let evicted = evict(conn, c, Scope::All, now).await?;
    let written = upsert(conn, c, &weights, Scope::All, now).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1")
            .bind(c.id.0)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Maintained {
        profiles: n,
        written,
        evicted,
    })
}

/// Records, inside the caller's (the scrape's) transaction, that the profiles `ids` changed: they
/// join the open batch of job tree `root` (None: outside any tree). When the tree has no open
/// batch, one is opened and its `candidates.pending` job enqueued in the same transaction and tree,
/// so a profile is maintained if and only if its scrape commits, before the tree is finished.
///
/// Call it once per transaction, after the transaction's other writes: on PostgreSQL it locks the
/// batch row, and a transaction that held that lock while still writing profiles could close a
/// cycle with another scrape (waiting on one of those profile rows) and the batch's job (waiting to
/// close the batch) — a deadlock.
pub async fn on_profiles_changed(
    conn: &mut AnyConnection,
    svc: &Ctx,
    ids: &[ProfileId],
    root: Option<JobId>,
    now: Millis,
) -> Result<(), DbError> {
    record_changes(conn, svc.db.dialect(), ids, root, now).await
}

/// Pending rows inserted per statement by [`record_changes`].
const PENDING_ROWS_PER_STATEMENT: usize = 400;

/// [`on_profiles_changed`] for a connection of `dialect`.
pub async fn record_changes(
    conn: &mut AnyConnection,
    dialect: Dialect,
    ids: &[ProfileId],
    root: Option<JobId>,
    now: Millis,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let batch = open_batch(conn, dialect, root, now).await?;
    for chunk in ids.chunks(PENDING_ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${})", i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO candidates_pending (job_id, profile_id) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(batch);
        for id in chunk {
            q = q.bind(id.0);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The job id of `root`'s open batch, opening one (and enqueueing its job) when there is none.
async fn open_batch(
    conn: &mut AnyConnection,
    dialect: Dialect,
    root: Option<JobId>,
    now: Millis,
) -> Result<i64, DbError> {
    let root_key = root.map_or(0, |r| r.0);
    // A batch is open until its job starts. On PostgreSQL the row lock orders this transaction
    // against the job's closing UPDATE: either the job waits for this commit (and then sees the
    // profile), or this transaction waits for the close and then no longer finds the batch open.
    // SQLite runs one write transaction at a time. A batch whose job can no longer run (cancelled,
    // dead) is not joined.
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE OF b",
        Dialect::Sqlite => "",
    };
    let open: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT b.job_id FROM candidates_batches b JOIN jobs j ON j.id = b.job_id \
         WHERE b.root_key = $1 AND b.started = 0 AND j.status IN ('queued', 'running', 'failed') \
         ORDER BY b.job_id DESC LIMIT 1{lock}"
    ))
    .bind(root_key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = open {
        return Ok(job);
    }
    // Same (default) priority as the scrapes: the job runs after the scrapes queued before it,
    // by which time they have joined its batch.
    let mut job = NewJob::new(PENDING_KIND, serde_json::json!({}));
    if let Some(r) = root {
        job = job.root(r);
    }
    let job = jobs::insert(conn, &job, now).await?.id.0;
    sqlx::query("INSERT INTO candidates_batches (job_id, root_key, started) VALUES ($1, $2, 0)")
        .bind(job)
        .bind(root_key)
        .execute(&mut *conn)
        .await?;
    Ok(job)
}

async fn pending_job(ctx: JobCtx<Ctx>) -> JobResult {
    let now = ctx.ctx.clock.now_ms();
    let m = drain(&ctx.ctx.db, ctx.job.id, now).await?;
    Ok(Some(serde_json::json!({
        "profiles": m.profiles,
        "written": m.written,
        "evicted": m.evicted,
    })))
}

/// Closes the batch of `job` and re-evaluates its profiles against every active campaign,
/// [`DRAIN_CHUNK`] profiles per transaction (through [`maintain_profiles`]). Safe to repeat: a
/// retry finishes what is left.
///
/// The ids are bound as lists rather than read by a subquery on `candidates_pending`: with the
/// subquery, PostgreSQL's plans for the evict flipped with the (often missing) statistics of that
/// small, fast-changing table, from milliseconds to seconds per statement; an IN list of bound
/// ids is estimated exactly.
pub async fn drain(db: &Db, job: JobId, now: Millis) -> Result<Maintained, DbError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE candidates_batches SET started = 1 WHERE job_id = $1")
        .bind(job.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    // Closed: from here on no profile joins this batch, so its id set is fixed.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT profile_id FROM candidates_pending WHERE job_id = $1 ORDER BY profile_id",
    )
    .bind(job.0)
    .fetch_all(db.writer())
    .await?;
    // PostgreSQL runs chunks on several connections at once: they cover disjoint profiles, so
    // they write disjoint rows, and one chunk's statements keep one backend busy (evaluating the
    // predicates, updating rows) while the drain's own process mostly waits. SQLite has one writer.
    let parallel = match db.dialect() {
        Dialect::Sqlite => 1,
        Dialect::Postgres => PG_DRAIN_PARALLEL,
    };
    let mut total = Maintained::default();
    // Owned chunks and Db: a borrowing future trips the compiler's higher-ranked lifetime
    // inference for `buffer_unordered` futures that must be Send.
    let chunks: Vec<Vec<i64>> = ids.chunks(DRAIN_CHUNK).map(<[i64]>::to_vec).collect();
    let mut chunks = futures::stream::iter(chunks)
        .map(|chunk| {
            let db = db.clone();
            async move { drain_chunk(&db, job, &chunk, now).await }
        })
        .buffer_unordered(parallel);
    // On an error the other chunks still run to the end (each commits or rolls back on its own),
    // then the error is returned: no connection is dropped mid-statement, and a retry redoes only
    // what was not committed.
    let mut failed = None;
    while let Some(m) = chunks.next().await {
        match m {
            Ok(m) => total += m,
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    sqlx::query("DELETE FROM candidates_batches WHERE job_id = $1")
        .bind(job.0)
        .execute(db.writer())
        .await?;
    total.profiles = ids.len() as i64;
    Ok(total)
}

/// Chunks of one drain that PostgreSQL maintains at the same time (on as many connections).
const PG_DRAIN_PARALLEL: usize = 2;

/// One transaction of [`drain`]: maintains `chunk` (sorted profile ids) and forgets it from the
/// batch.
async fn drain_chunk(
    db: &Db,
    job: JobId,
    chunk: &[i64],
    now: Millis,
) -> Result<Maintained, DbError> {
    let (lo, hi) = (chunk[0], chunk[chunk.len() - 1]);
    let ids: Vec<ProfileId> = chunk.iter().map(|&id| ProfileId(id)).collect();
    let mut tx = db.begin_write().await?;
    let m = maintain_profiles(&mut tx, &ids, now).await?;
    sqlx::query(
        "DELETE FROM candidates_pending WHERE job_id = $1 AND profile_id BETWEEN $2 AND $3",
    )
    .bind(job.0)
    .bind(lo)
    .bind(hi)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(m)
}

/// Forgets batches whose job will never run (cancelled, dead or purged); returns the profiles
/// dropped. Only safe right before a full maintenance of every campaign, which covers them.
pub async fn sweep_abandoned(conn: &mut AnyConnection) -> Result<u64, DbError> {
    const ABANDONED: &str = "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = b.job_id \
                             AND j.status IN ('queued', 'running', 'failed'))";
    let dropped = sqlx::query(&format!(
        "DELETE FROM candidates_pending WHERE job_id IN \
         (SELECT b.job_id FROM candidates_batches b WHERE {ABANDONED})"
    ))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(&format!(
        "DELETE FROM candidates_batches WHERE job_id IN \
         (SELECT b.job_id FROM candidates_batches b WHERE {ABANDONED})"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(dropped)
}

/// Incremental maintenance of one profile across every active campaign.
pub async fn maintain_profile(
    conn: &mut AnyConnection,
    id: ProfileId,
    now: Millis,
) -> Result<(), DbError> {
    maintain_profiles(conn, &[id], now).await.map(|_| ())
}

/// Profiles re-evaluated per statement by [`maintain_profiles`] (well under both dialects'
/// bound-parameter limits).
const PROFILES_PER_STATEMENT: usize = 500;

/// Incremental maintenance of many changed profiles across every active campaign, in the
/// caller's transaction: two statements per 500 profiles cover up to 16 campaigns at once
/// ([`evict_all`], [`upsert_all`]), so each changed profile's features are read once rather than
/// once per campaign, and every statement touches only those profiles' rows (through the primary
/// keys and the profile index).
pub async fn maintain_profiles(
    conn: &mut AnyConnection,
    ids: &[ProfileId],
    now: Millis,
) -> Result<Maintained, DbError> {
    let mut total = Maintained::default();
    if ids.is_empty() {
        return Ok(total);
    }
    let active = campaigns::active_on(conn).await?;
    let mut weights = Vec::with_capacity(active.len());
    for c in &active {
        weights.push(campaigns::weights_on(conn, c.id).await?);
    }
    for chunk in ids.chunks(PROFILES_PER_STATEMENT) {
        for (cs, ws) in active
            .chunks(CAMPAIGNS_PER_STATEMENT)
            .zip(weights.chunks(CAMPAIGNS_PER_STATEMENT))
        {
            total.evicted += evict_all(conn, cs, chunk, now).await?;
            total.written += upsert_all(conn, cs, ws, chunk, now).await?;
        }
    }
    total.profiles = ids.len() as i64;
    Ok(total)
}

/// Campaigns evaluated together by one statement of [`evict_all`] or [`upsert_all`].
const CAMPAIGNS_PER_STATEMENT: usize = 16;

/// The JSON array of `ids`, bound as one parameter and read with `json_each` (SQLite).
fn json_ids(ids: impl Iterator<Item = i64>) -> SqlValue {
    let list: Vec<String> = ids.map(|id| id.to_string()).collect();
    SqlValue::Text(format!("[{}]", list.join(",")))
}

/// `CASE {col} WHEN <campaign id> THEN (<its expression>) … ELSE {otherwise} END`, one branch per
/// campaign, with placeholders from `params.len() + 1` (values appended to `params`).
/// `expr(campaign, index, first)` returns a campaign's expression and its values.
fn per_campaign_case(
    col: &str,
    campaigns: &[Campaign],
    otherwise: &str,
    params: &mut Vec<SqlValue>,
    expr: impl FnMut(&Campaign, usize, usize) -> (String, Vec<SqlValue>),
) -> String {
    per_campaign_case_at(col, campaigns, otherwise, params, &mut Vec::new(), expr)
}

/// [`per_campaign_case`], also listing in `whens` the placeholder bound to each campaign's id.
fn per_campaign_case_at(
    col: &str,
    campaigns: &[Campaign],
    otherwise: &str,
    params: &mut Vec<SqlValue>,
    whens: &mut Vec<usize>,
    mut expr: impl FnMut(&Campaign, usize, usize) -> (String, Vec<SqlValue>),
) -> String {
    let mut sql = format!("CASE {col}");
    for (i, c) in campaigns.iter().enumerate() {
        params.push(SqlValue::Int(c.id.0));
        let when = params.len();
        whens.push(when);
        let (e, values) = expr(c, i, params.len() + 1);
        params.extend(values);
        sql.push_str(&format!(" WHEN ${when} THEN ({e})"));
    }
    sql.push_str(&format!(" ELSE {otherwise} END"));
    sql
}

/// Deletes the candidate rows of `campaigns` for the profiles `ids` whose profile no longer
/// matches that campaign's predicate, in one statement; returns the count.
async fn evict_all(
    conn: &mut AnyConnection,
    campaigns: &[Campaign],
    ids: &[ProfileId],
    now: Millis,
) -> Result<u64, DbError> {
    let sqlite = Dialect::of(conn) == Dialect::Sqlite;
    let pred = |c: &Campaign, first: usize| {
        let pred = if sqlite {
            sqlite_predicate(c, first)
        } else {
            c.predicate.renumbered(first)
        };
        let values = pred.bind_params(now);
        (pred.sql, values)
    };
    let mut params = Vec::new();
    let sql = if sqlite {
        params.push(json_ids(ids.iter().map(|p| p.0)));
        params.push(json_ids(campaigns.iter().map(|c| c.id.0)));
        // NOT EXISTS … WHERE (pred) keeps exactly the rows whose predicate is TRUE (NULL evicts);
        // a row of a campaign outside the list (impossible: the IN above) would be kept. The unary
        // `+` keeps the campaign list out of the index lookup: one probe of the profile index per
        // profile finds its few candidate rows, rather than one probe per (profile, campaign).
        let case = per_campaign_case(
            "campaign_candidates.campaign_id",
            campaigns,
            "TRUE",
            &mut params,
            |c, _, first| pred(c, first),
        );
        format!(
            "DELETE FROM campaign_candidates WHERE profile_id IN (SELECT value FROM json_each($1)) \
             AND +campaign_id IN (SELECT value FROM json_each($2)) AND NOT EXISTS \
             (SELECT 1 FROM profile_features pf WHERE pf.profile_id = campaign_candidates.profile_id AND {case})"
        )
    } else {
        // PostgreSQL: the matching (campaign, profile) pairs once, through the primary keys, then
        // a plain NOT IN (a correlated NOT EXISTS could be planned as an anti-join against a full
        // scan of profile_features; see `evict`).
        let ids_sql = in_list(&mut params, ids.iter().map(|p| p.0));
        let cs_sql = in_list(&mut params, campaigns.iter().map(|c| c.id.0));
        let (cm, case) = pg_campaign_rows(campaigns, "FALSE", &mut params, |c, _, first| {
            pred(c, first)
        });
        let pf_ids = in_list(&mut params, ids.iter().map(|p| p.0));
        format!(
            "DELETE FROM campaign_candidates WHERE profile_id IN ({ids_sql}) AND campaign_id IN ({cs_sql}) \
             AND (campaign_id, profile_id) NOT IN (SELECT cm.id, pf.profile_id FROM profile_features pf \
             CROSS JOIN {cm} WHERE pf.profile_id IN ({pf_ids}) AND {case})"
        )
    };
    Ok(bind_all(sqlx::query(&sql), &params)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Inserts the profiles `ids` into each of `campaigns` they match and rescores existing
/// candidates, in one statement (each profile's features read once for all the campaigns),
/// writing only rows whose score changed; returns the rows written.
async fn upsert_all(
    conn: &mut AnyConnection,
    campaigns: &[Campaign],
    weights: &[Weights],
    ids: &[ProfileId],
    now: Millis,
) -> Result<u64, DbError> {
    let sqlite = Dialect::of(conn) == Dialect::Sqlite;
    let score = |c: &Campaign, i: usize, first: usize| {
        score_sql(&weights[i], &c.spec.filter.keywords_any, now, first)
    };
    let pred = |c: &Campaign, _: usize, first: usize| {
        let pred = if sqlite {
            sqlite_predicate(c, first)
        } else {
            c.predicate.renumbered(first)
        };
        let values = pred.bind_params(now);
        (pred.sql, values)
    };
    let mut params = vec![SqlValue::Int(now)];
    // The profiles drive the loop (primary-key probes); each is evaluated against every campaign
    // of the list. The DO UPDATE's WHERE skips unchanged rows, as in `upsert`.
    let (from, score, pred) = if sqlite {
        params.push(json_ids(ids.iter().map(|p| p.0)));
        params.push(json_ids(campaigns.iter().map(|c| c.id.0)));
        let score = per_campaign_case("cm.id", campaigns, "NULL", &mut params, score);
        let pred = per_campaign_case("cm.id", campaigns, "FALSE", &mut params, pred);
        (
            "FROM profile_features pf, (SELECT value AS id FROM json_each($3)) cm \
             WHERE pf.profile_id IN (SELECT value FROM json_each($2))"
                .to_string(),
            score,
            pred,
        )
    } else {
        let ids_sql = in_list(&mut params, ids.iter().map(|p| p.0));
        let (cm, score) = pg_campaign_rows(campaigns, "NULL", &mut params, score);
        let pred = per_campaign_case("cm.id", campaigns, "FALSE", &mut params, pred);
        (
            format!("FROM profile_features pf CROSS JOIN {cm} WHERE pf.profile_id IN ({ids_sql})"),
            score,
            pred,
        )
    };
    let sql = format!(
        "INSERT INTO campaign_candidates (campaign_id, profile_id, cheap_score, added_at) \
         SELECT cm.id, pf.profile_id, {score}, $1 {from} AND {pred} \
         ON CONFLICT (campaign_id, profile_id) DO UPDATE SET cheap_score = excluded.cheap_score \
         WHERE campaign_candidates.cheap_score <> excluded.cheap_score"
    );
    Ok(bind_all(sqlx::query(&sql), &params)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// `$a, $b, …` for `values`, appended to `params`.
fn in_list(params: &mut Vec<SqlValue>, values: impl Iterator<Item = i64>) -> String {
    let mut names = Vec::new();
    for v in values {
        params.push(SqlValue::Int(v));
        names.push(format!("${}", params.len()));
    }
    names.join(", ")
}

/// PostgreSQL: the campaigns as rows, `(VALUES ($a::bigint), ($b), …) AS cm (id)`, reusing the
/// placeholders that [`per_campaign_case`] bound for its WHEN branches, and that CASE over `cm.id`.
fn pg_campaign_rows(
    campaigns: &[Campaign],
    otherwise: &str,
    params: &mut Vec<SqlValue>,
    expr: impl FnMut(&Campaign, usize, usize) -> (String, Vec<SqlValue>),
) -> (String, String) {
    let mut whens = Vec::new();
    let case = per_campaign_case_at("cm.id", campaigns, otherwise, params, &mut whens, expr);
    let rows: Vec<String> = whens.iter().map(|n| format!("(${n}::bigint)")).collect();
    (format!("(VALUES {}) AS cm (id)", rows.join(", ")), case)
}

/// Which profiles a maintenance statement covers.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// Every profile (a full maintenance).
    All,
    /// These profiles (bound one by one on PostgreSQL, as one JSON array on SQLite).
    Ids(&'a [ProfileId]),
}

/// The clause restricting `col` to `scope`, with placeholders from `first`, and its values.
///
/// PostgreSQL gets the ids spelled out as `col IN ($first, …)` (not `$n < 0 OR col = $n`), which it
/// estimates exactly and runs through the primary keys. SQLite gets them as one bound JSON array,
/// `col IN (SELECT value FROM json_each($first))`, which it runs as the same primary-key probes:
/// SQLite resolves each `$N` by a linear search of the statement's parameter names, when it
/// prepares the statement and again when sqlx binds it, so 500 separate placeholders cost
/// quadratic time per statement (≈ 15 % of an incremental drain's CPU before this).
fn scope_clause(
    col: &str,
    scope: Scope<'_>,
    first: usize,
    sqlite: bool,
) -> (String, Vec<SqlValue>) {
    match scope {
        Scope::All => (String::new(), Vec::new()),
        Scope::Ids(ids) if sqlite => {
            let list: Vec<String> = ids.iter().map(|p| p.0.to_string()).collect();
            (
                format!(" AND {col} IN (SELECT value FROM json_each(${first}))"),
                vec![SqlValue::Text(format!("[{}]", list.join(",")))],
            )
        }
        Scope::Ids(ids) => {
            let ps: Vec<String> = (first..first + ids.len())
                .map(|i| format!("${i}"))
                .collect();
            (
                format!(" AND {col} IN ({})", ps.join(", ")),
                ids.iter().map(|p| SqlValue::Int(p.0)).collect(),
            )
        }
    }
}

/// The campaign's predicate with placeholders from `first`, in its cheapest form for `conn`.
///
/// On SQLite `LOWER(col) LIKE p` is spelled `col LIKE p`: SQLite's LIKE already ignores the case of
/// ASCII letters and its LOWER() folds nothing else, so both select exactly the same rows, and the
/// LOWER() copies were most of the per-row cost of a full maintenance (2.5× on a 200k-row scan).
/// The rewrite is textual, which is safe because the compiled SQL holds no user text.
fn predicate(conn: &AnyConnection, c: &Campaign, first: usize) -> CompiledPredicate {
    match Dialect::of(conn) {
        Dialect::Sqlite => sqlite_predicate(c, first),
        Dialect::Postgres => c.predicate.renumbered(first),
    }
}

/// [`predicate`] on SQLite.
fn sqlite_predicate(c: &Campaign, first: usize) -> CompiledPredicate {
    let mut pred = c.predicate.renumbered(first);
    pred.sql = pred.sql.replace("LOWER(pf.", "(pf.");
    pred
}

/// Deletes the campaign's candidates in `scope` whose profile no longer matches; returns the count.
async fn evict(
    conn: &mut AnyConnection,
    c: &Campaign,
    scope: Scope<'_>,
    now: Millis,
) -> Result<u64, DbError> {
    let postgres = Dialect::of(conn) == Dialect::Postgres;
    let (scope_sql, mut params) = scope_clause("profile_id", scope, 2, !postgres);
    let sql = match (scope, postgres) {
        (Scope::Ids(_), true) => {
            // PostgreSQL: the matching ids once (through the primary key), then a plain NOT IN,
            // leaving no join order to get wrong (the correlated NOT EXISTS sometimes became a
            // hash anti-join against a full scan of profile_features: seconds per statement).
            // SQLite keeps the NOT EXISTS, which it always runs as primary-key probes and which
            // evaluates the predicate for existing candidates only (4× faster there).
            let (pf_scope, pf_params) =
                scope_clause("pf.profile_id", scope, 2 + params.len(), false);
            params.extend(pf_params);
            let pred = predicate(conn, c, 2 + params.len());
            let sql = format!(
                "DELETE FROM campaign_candidates WHERE campaign_id = $1{scope_sql} AND profile_id NOT IN \
                 (SELECT pf.profile_id FROM profile_features pf WHERE ({}){pf_scope})",
                pred.sql
            );
            params.extend(pred.bind_params(now));
            sql
        }
        _ => {
            // NOT EXISTS … WHERE (pred) keeps exactly the rows whose predicate is TRUE (NULL evicts).
            let pred = predicate(conn, c, 2 + params.len());
            let sql = format!(
                "DELETE FROM campaign_candidates WHERE campaign_id = $1{scope_sql} AND NOT EXISTS \
                 (SELECT 1 FROM profile_features pf WHERE pf.profile_id = campaign_candidates.profile_id AND ({}))",
                pred.sql
            );
            params.extend(pred.bind_params(now));
            sql
        }
    };
    Ok(bind_all(sqlx::query(&sql).bind(c.id.0), &params)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Inserts the campaign's matching profiles in `scope` and rescores existing candidates, writing
/// only rows whose score changed; returns the rows written.
async fn upsert(
    conn: &mut AnyConnection,
    c: &Campaign,
    w: &Weights,
    scope: Scope<'_>,
    now: Millis,
) -> Result<u64, DbError> {
    let sqlite = Dialect::of(conn) == Dialect::Sqlite;
    let (scope_sql, mut params) = scope_clause("pf.profile_id", scope, 3, sqlite);
    let (score, score_params) = score_sql(w, &c.spec.filter.keywords_any, now, 3 + params.len());
    let pred = predicate(conn, c, 3 + params.len() + score_params.len());
    // The DO UPDATE's WHERE skips unchanged rows: the same inputs give the same score bit for bit
    // (the recency term only moves at midnight UTC), so a re-run rewrites nothing.
    let sql = format!(
        "INSERT INTO campaign_candidates (campaign_id, profile_id, cheap_score, added_at) \
         SELECT $1, pf.profile_id, {score}, $2 FROM profile_features pf WHERE ({}){scope_sql} \
         ON CONFLICT (campaign_id, profile_id) DO UPDATE SET cheap_score = excluded.cheap_score \
         WHERE campaign_candidates.cheap_score <> excluded.cheap_score",
        pred.sql
    );
    let q = sqlx::query(&sql).bind(c.id.0).bind(now);
    params.extend(score_params);
    params.extend(pred.bind_params(now));
    Ok(bind_all(q, &params)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}
