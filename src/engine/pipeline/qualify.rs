//! Qualification: `qualify.campaign` shortlists a campaign's best candidates and, within the daily
//! budget, fans out one `llm.evaluate` per profile; each verdict is cached by (profile_hash,
//! criteria_hash), so a profile the model already judged for these criteria costs nothing again.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::db::campaigns::{self, Campaign, CampaignId, CampaignStatus};
use crate::db::profiles::{self, ProfileId};
use crate::db::DbError;
use crate::engine::clock::Millis;
use crate::engine::llm::{
    profile_hash, EvalRequest, ImageRef, LlmAnswer, LlmError, ProfileForPrompt, Verdict,
};
use crate::engine::platforms::models::html_to_text;
use crate::engine::platforms::ProfileSnapshot;
use crate::engine::queue::{JobError, JobId, NewJob};
use crate::engine::service::{Ctx, Services};
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// Registers `qualify.campaign` and `llm.evaluate`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("qualify.campaign", qualify_job);
    registry.register("llm.evaluate", evaluate_job);
}

/// The payload of `qualify.campaign`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QualifyPayload {
    /// The campaign; absent = every active campaign (the daily schedule).
    #[serde(default)]
    pub campaign_id: Option<i64>,
    /// Shortlist size override (default: the campaign's `shortlist_k`).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// The payload of `llm.evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluatePayload {
    pub campaign_id: i64,
    pub profile_id: i64,
}

/// `llm.evaluate` jobs enqueued together while a shortlist is prepared.
const EVALUATE_BATCH: usize = 32;

/// The `qualify.campaign` job for one campaign.
pub fn qualify_job_for(id: CampaignId, limit: Option<i64>) -> NewJob {
    NewJob::new(
        "qualify.campaign",
        serde_json::to_value(QualifyPayload {
            campaign_id: Some(id.0),
            limit,
        })
        .unwrap_or_default(),
    )
    .campaign(id.0)
    .priority(5)
}

async fn qualify_job(ctx: JobCtx<Ctx>) -> JobResult {
    let p: QualifyPayload = ctx.payload()?;
    let Some(id) = p.campaign_id else {
        // The daily tick: one qualify per active campaign, part of this job's tree.
        let root = JobId(ctx.job.root_id.unwrap_or(ctx.job.id.0));
        let active = campaigns::list(&ctx.ctx.db, Some(CampaignStatus::Active)).await?;
        let jobs: Vec<NewJob> = active
            .iter()
            .map(|c| qualify_job_for(c.id, None).root(root))
            .collect();
        ctx.queue.enqueue_many(&jobs).await?;
        return Ok(Some(serde_json::json!({ "campaigns": jobs.len() })));
    };
    let svc = &ctx.ctx;
    let c = campaigns::get(&svc.db, CampaignId(id))
        .await?
        .ok_or_else(|| JobError::Permanent(format!("campaign {id} does not exist")))?;
    if c.status != CampaignStatus::Active {
        return Ok(Some(
            serde_json::json!({ "skipped": format!("campaign is {}", c.status) }),
        ));
    }
    let k = p.limit.unwrap_or(c.spec.qualify.shortlist_k as i64).max(0);
    let shortlist = crate::engine::campaigns::shortlist(&svc.db, c.id, k).await?;
    let used = calls_today(svc, c.id).await?;
    let budget = (c.spec.qualify.daily_llm_calls as i64 - used).max(0);
    let root = JobId(ctx.job.root_id.unwrap_or(ctx.job.id.0));
    let (mut cache_hits, mut enqueued, mut over_budget, mut blocked) = (0i64, 0i64, 0i64, 0i64);
    let mut jobs = Vec::new();
    for (i, pid) in shortlist.iter().enumerate() {
        let prompt_profile =
            load_profile(svc, ProfileId(*pid), c.spec.qualify.max_images as usize).await?;
        let Some(prompt_profile) = prompt_profile else {
            continue;
        };
        // The shortlist's SQL matches do-not-contact by handle; this also honours the hashes an
        // erasure leaves, so a re-scraped erased person costs no LLM call.
        if crate::db::dnc::is_blocked(&svc.db, &c.platform, &prompt_profile.handle, None).await? {
            blocked += 1;
            continue;
        }
        let phash = profile_hash(&prompt_profile, c.spec.qualify.max_images as usize);
        if let Some(score_id) = cached(&svc.db, &phash, &c.criteria_hash).await? {
            let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
            lead_from_score(&mut tx, &c, ProfileId(*pid), score_id, svc.clock.now_ms()).await?;
            tx.commit().await.map_err(JobError::from)?;
            cache_hits += 1;
            continue;
        }
        if !svc.llm.is_none() && enqueued >= budget {
            over_budget += 1;
            continue;
        }
        enqueued += 1;
        jobs.push(
            NewJob::new(
                "llm.evaluate",
                serde_json::to_value(EvaluatePayload {
                    campaign_id: id,
                    profile_id: *pid,
                })
                .unwrap_or_default(),
            )
            .unique(format!("llm.evaluate:{id}:{pid}"))
            .campaign(id)
            .root(root)
            .max_attempts(4),
        );
        // Hand work to the LLM slots as it is found: preparing a long shortlist takes seconds,
        // and enqueueing only at the end would leave every slot idle meanwhile.
        if jobs.len() >= EVALUATE_BATCH {
            ctx.queue.enqueue_many(&jobs).await?;
            jobs.clear();
        }
        if i % 25 == 0 {
            ctx.progress(
                (i * 100 / shortlist.len().max(1)) as i64,
                &format!("shortlisted {} of {}", i + 1, shortlist.len()),
            )
            .await;
        }
    }
    ctx.queue.enqueue_many(&jobs).await?;
    let message = if over_budget > 0 {
        format!(
            "daily LLM budget spent ({} of {} calls): {} profiles wait for tomorrow",
            used + enqueued,
            c.spec.qualify.daily_llm_calls,
            over_budget
        )
    } else {
        format!(
            "{} shortlisted: {} to the LLM, {} from cache",
            shortlist.len(),
            enqueued,
            cache_hits
        )
    };
    ctx.progress(100, &message).await;
    Ok(Some(serde_json::json!({
        "shortlisted": shortlist.len(), "llm_calls": enqueued, "cache_hits": cache_hits,
        "over_budget": over_budget, "blocked": blocked, "message": message,
    })))
}

async fn calls_today(svc: &Services, id: CampaignId) -> Result<i64, DbError> {
    let now = svc.clock.now_ms();
    let midnight = now - now.rem_euclid(86_400_000);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM llm_scores WHERE campaign_id = $1 AND created_at >= $2 AND model <> 'none'")
        .bind(id.0)
        .bind(midnight)
        .fetch_one(svc.db.pool())
        .await?;
    Ok(n)
}

async fn cached(
    db: &crate::db::Db,
    profile_hash: &str,
    criteria_hash: &str,
) -> Result<Option<i64>, DbError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM llm_scores WHERE profile_hash = $1 AND criteria_hash = $2",
    )
    .bind(profile_hash)
    .bind(criteria_hash)
    .fetch_optional(db.pool())
    .await?;
    Ok(id)
}

/// What the model sees of a stored profile: texts from the payload, images from the object store.
pub async fn load_profile(
    svc: &Services,
    id: ProfileId,
    max_images: usize,
) -> Result<Option<ProfileForPrompt>, JobError> {
    let Some((payload, keys)) = profiles::payload(&svc.db, id).await? else {
        return Ok(None);
    };
    let snap: ProfileSnapshot = serde_json::from_str(&payload)
        .map_err(|e| JobError::Permanent(format!("stored profile {} is unreadable: {e}", id.0)))?;
    let a = &snap.account;
    let mut images = Vec::new();
    for key in keys.iter().take(max_images) {
        if let Some(bytes) = svc.storage.get(key).await.map_err(JobError::retry)? {
            images.push(ImageRef {
                content_hash: key.clone(),
                bytes: bytes.to_vec(),
            });
        }
    }
    Ok(Some(ProfileForPrompt {
        handle: a.acct.clone(),
        display_name: a.display_name.clone(),
        bio: html_to_text(&a.note),
        fields: a
            .fields
            .iter()
            .map(|f| (f.name.clone(), html_to_text(&f.value)))
            .collect(),
        posts: snap
            .statuses
            .iter()
            .filter(|s| s.reblog.is_none())
            .map(|s| s.content_text())
            .collect(),
        followers: a.followers_count.max(0),
        following: a.following_count.max(0),
        posts_count: a.statuses_count.max(0),
        images,
    }))
}

async fn evaluate_job(ctx: JobCtx<Ctx>) -> JobResult {
    let p: EvaluatePayload = ctx.payload()?;
    let svc = &ctx.ctx;
    let c = campaigns::get(&svc.db, CampaignId(p.campaign_id))
        .await?
        .ok_or_else(|| JobError::Permanent(format!("campaign {} does not exist", p.campaign_id)))?;
    let max_images = c.spec.qualify.max_images as usize;
    let Some(profile) = load_profile(svc, ProfileId(p.profile_id), max_images).await? else {
        return Ok(Some(
            serde_json::json!({ "skipped": "profile no longer exists" }),
        ));
    };
    let phash = profile_hash(&profile, max_images);
    if let Some(score_id) = cached(&svc.db, &phash, &c.criteria_hash).await? {
        let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
        let lead = lead_from_score(
            &mut tx,
            &c,
            ProfileId(p.profile_id),
            score_id,
            svc.clock.now_ms(),
        )
        .await?;
        tx.commit().await.map_err(JobError::from)?;
        return Ok(Some(serde_json::json!({ "cache_hit": true, "lead": lead })));
    }
    let model = c.spec.qualify.effective_model(svc.llm.model()).to_string();
    let started = Instant::now();
    let answer = if svc.llm.is_none() {
        LlmAnswer {
            verdict: Verdict {
                qualified: true,
                score: 0,
                reasons: vec!["not LLM-checked: no LLM configured; review manually".into()],
                red_flags: Vec::new(),
                opener: String::new(),
            },
            model: "none".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0,
            raw: String::new(),
        }
    } else {
        let req = EvalRequest {
            brief: c.spec.brief.clone(),
            profile,
            max_images,
        };
        svc.llm.evaluate(&req).await.map_err(llm_error)?
    };
    let latency = if answer.latency_ms > 0 {
        answer.latency_ms
    } else {
        started.elapsed().as_millis() as i64
    };
    let cost = svc
        .config
        .llm
        .cost_usd(answer.prompt_tokens, answer.completion_tokens);
    let now = svc.clock.now_ms();
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    let score_id: i64 = sqlx::query_scalar(
        "INSERT INTO llm_scores (profile_id, profile_hash, criteria_hash, campaign_id, model, score, qualified, reasons, red_flags, \
         opener, prompt_tokens, completion_tokens, latency_ms, cost_usd, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (profile_hash, criteria_hash) DO UPDATE SET profile_id = excluded.profile_id RETURNING id",
    )
    .bind(p.profile_id)
    .bind(&phash)
    .bind(&c.criteria_hash)
    .bind(c.id.0)
    .bind(if svc.llm.is_none() { "none".to_string() } else { model })
    .bind(answer.verdict.score)
    .bind(answer.verdict.qualified as i64)
    .bind(serde_json::to_string(&answer.verdict.reasons).unwrap_or_default())
    .bind(serde_json::to_string(&answer.verdict.red_flags).unwrap_or_default())
    .bind(&answer.verdict.opener)
    .bind(answer.prompt_tokens)
    .bind(answer.completion_tokens)
    .bind(latency)
    .bind(cost)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(JobError::from)?;
    let lead = lead_from_score(&mut tx, &c, ProfileId(p.profile_id), score_id, now).await?;
    tx.commit().await.map_err(JobError::from)?;
    Ok(Some(
        serde_json::json!({ "score": answer.verdict.score, "qualified": answer.verdict.qualified, "lead": lead }),
    ))
}

fn llm_error(e: LlmError) -> JobError {
    match &e {
        LlmError::InvalidAnswer { raw, .. } => {
            let raw: String = crate::text::strip_control(raw).chars().take(2000).collect();
            JobError::Permanent(format!("{e}; raw answer kept for inspection: {raw}"))
        }
        _ if e.is_transient() => JobError::Retryable(e.to_string()),
        _ => JobError::Permanent(e.to_string()),
    }
}

/// Creates the lead for a verdict when it qualifies (score ≥ threshold, or no LLM configured).
/// Idempotent: a second call finds the lead already there. Returns whether a lead exists now.
async fn lead_from_score(
    conn: &mut AnyConnection,
    c: &Campaign,
    profile: ProfileId,
    score_id: i64,
    now: Millis,
) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT score, model FROM llm_scores WHERE id = $1")
        .bind(score_id)
        .fetch_one(&mut *conn)
        .await?;
    let score: i64 = row.try_get("score")?;
    let model: String = row.try_get("model")?;
    if model != "none" && score < c.spec.qualify.threshold as i64 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO leads (campaign_id, profile_id, llm_score_id, score, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'new', $5, $5) ON CONFLICT (campaign_id, profile_id) DO NOTHING",
    )
    .bind(c.id.0)
    .bind(profile.0)
    .bind(score_id)
    .bind(score)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}
