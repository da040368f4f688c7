//! Candidate maintenance: which profiles match which active campaign, kept up to date incrementally
//! (one changed profile across every active campaign, inside the scrape's transaction) and in full
//! (one campaign, on create/edit and hourly) — always as set-based SQL, never row by row in Rust.

use serde::Deserialize;
use sqlx::AnyConnection;

use crate::db::campaigns::{self, Campaign, CampaignId};
use crate::db::profiles::ProfileId;
use crate::db::{bind_all, DbError, SqlValue};
use crate::engine::clock::Millis;
use crate::engine::pipeline::score::{score_sql, Weights};
use crate::engine::queue::{JobError, NewJob};
use crate::engine::service::Ctx;
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// Registers `candidates.maintain`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("candidates.maintain", maintain_job);
}

#[derive(Debug, Deserialize)]
struct MaintainPayload {
    /// One campaign; absent = every active campaign (the hourly schedule).
    #[serde(default)]
    campaign_id: Option<i64>,
}

async fn maintain_job(ctx: JobCtx<Ctx>) -> JobResult {
    let p: MaintainPayload = ctx.payload()?;
    let now = ctx.ctx.clock.now_ms();
    let ids: Vec<CampaignId> = match p.campaign_id {
        Some(id) => vec![CampaignId(id)],
        None => campaigns::list(&ctx.ctx.db, Some(campaigns::CampaignStatus::Active))
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect(),
    };
    let mut total = 0;
    for (i, id) in ids.iter().enumerate() {
        let Some(c) = campaigns::get(&ctx.ctx.db, *id).await? else {
            return Err(JobError::Permanent(format!("campaign {id} does not exist")));
        };
        let mut tx = ctx.ctx.db.begin_write().await.map_err(JobError::from)?;
        let n = maintain_campaign(&mut tx, &c, now).await?;
        tx.commit().await.map_err(JobError::from)?;
        total += n;
        ctx.progress(
            ((i + 1) * 100 / ids.len()) as i64,
            &format!("campaign {id}: {n} candidates"),
        )
        .await;
    }
    Ok(Some(
        serde_json::json!({ "campaigns": ids.len(), "candidates": total }),
    ))
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
    let weights = campaigns::weights_on(conn, c.id).await?;
    evict(conn, c, None, now).await?;
    upsert(conn, c, &weights, None, now).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM campaign_candidates WHERE campaign_id = $1")
            .bind(c.id.0)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n)
}

/// Re-evaluates one changed profile against every active campaign, inside the caller's transaction.
pub async fn on_profile_changed(
    conn: &mut AnyConnection,
    _svc: &Ctx,
    id: ProfileId,
    now: Millis,
) -> Result<(), DbError> {
    maintain_profile(conn, id, now).await
}

/// Incremental maintenance of one profile across every active campaign.
pub async fn maintain_profile(
    conn: &mut AnyConnection,
    id: ProfileId,
    now: Millis,
) -> Result<(), DbError> {
    maintain_profiles(conn, &[id], now).await
}

/// Profiles re-evaluated per statement by [`maintain_profiles`] (well under both dialects'
/// bound-parameter limits).
const PROFILES_PER_STATEMENT: usize = 500;

/// Incremental maintenance of many changed profiles across every active campaign: two statements
/// per campaign per 500 profiles, each touching only those profiles' rows (through the primary keys).
pub async fn maintain_profiles(
    conn: &mut AnyConnection,
    ids: &[ProfileId],
    now: Millis,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    for c in campaigns::active_on(conn).await? {
        let weights = campaigns::weights_on(conn, c.id).await?;
        for chunk in ids.chunks(PROFILES_PER_STATEMENT) {
            evict(conn, &c, Some(chunk), now).await?;
            upsert(conn, &c, &weights, Some(chunk), now).await?;
        }
    }
    Ok(())
}

/// `col IN ($first, …)` for `only`, with its values; nothing for a whole campaign. The ids are
/// spelled out (not `$n < 0 OR col = $n`) so both planners can use the primary key.
fn only_clause(col: &str, only: Option<&[ProfileId]>, first: usize) -> (String, Vec<SqlValue>) {
    match only {
        Some(ids) => {
            let ps: Vec<String> = (first..first + ids.len())
                .map(|i| format!("${i}"))
                .collect();
            (
                format!(" AND {col} IN ({})", ps.join(", ")),
                ids.iter().map(|p| SqlValue::Int(p.0)).collect(),
            )
        }
        None => (String::new(), Vec::new()),
    }
}

async fn evict(
    conn: &mut AnyConnection,
    c: &Campaign,
    only: Option<&[ProfileId]>,
    now: Millis,
) -> Result<(), DbError> {
    let (only_sql, mut params) = only_clause("profile_id", only, 2);
    // NOT EXISTS … WHERE (pred) keeps exactly the rows whose predicate is TRUE (NULL evicts).
    let pred = c.predicate.renumbered(2 + params.len());
    let sql = format!(
        "DELETE FROM campaign_candidates WHERE campaign_id = $1{only_sql} AND NOT EXISTS \
         (SELECT 1 FROM profile_features pf WHERE pf.profile_id = campaign_candidates.profile_id AND ({}))",
        pred.sql
    );
    params.extend(pred.bind_params(now));
    bind_all(sqlx::query(&sql).bind(c.id.0), &params)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn upsert(
    conn: &mut AnyConnection,
    c: &Campaign,
    w: &Weights,
    only: Option<&[ProfileId]>,
    now: Millis,
) -> Result<(), DbError> {
    let (only_sql, mut params) = only_clause("pf.profile_id", only, 4);
    let (score, score_params) = score_sql(w, &c.spec.filter.keywords_any, now, 4 + params.len());
    let pred = c
        .predicate
        .renumbered(4 + params.len() + score_params.len());
    let sql = format!(
        "INSERT INTO campaign_candidates (campaign_id, profile_id, criteria_hash, cheap_score, added_at) \
         SELECT $1, pf.profile_id, $2, {score}, $3 FROM profile_features pf WHERE ({}){only_sql} \
         ON CONFLICT (campaign_id, profile_id) DO UPDATE SET criteria_hash = excluded.criteria_hash, cheap_score = excluded.cheap_score",
        pred.sql
    );
    let q = sqlx::query(&sql)
        .bind(c.id.0)
        .bind(c.criteria_hash.clone())
        .bind(now);
    params.extend(score_params);
    params.extend(pred.bind_params(now));
    bind_all(q, &params).execute(&mut *conn).await?;
    Ok(())
}
