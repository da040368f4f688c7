//! What the API needs from the engine beyond the job queue: campaigns, leads, batches,
//! do-not-contact and accounts. [`ApiBackend`] is that seam; its implementation for [`Engine`]
//! answers reads with SELECTs (`queries.rs`) and answers the commands the pipeline does not offer
//! yet with 501 `not_implemented`, to be filled in as the pipeline lands.

use std::future::Future;

use super::error::ApiError;
use super::extract::FileFormat;
use super::queries::{self, Cursor};
use super::types::{
    Account, Batch, Campaign, CampaignExplain, CampaignProgress, CampaignState, ClauseCount,
    DncEntry, JobAccepted, Lead, LeadDetail, LeadStatus, NewBatch, NewDnc, Removed,
};
use crate::db::campaigns::{CampaignId, CampaignStatus};
use crate::db::messages::BatchId;
use crate::engine::campaigns::CampaignFileError;
use crate::engine::outreach::{BatchOptions, OutreachError};
use crate::engine::queue::NewJob;
use crate::engine::Engine;

/// An outreach failure as the matching API error.
fn outreach_error(e: OutreachError) -> ApiError {
    match e {
        OutreachError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
        OutreachError::Conflict(why) => ApiError::conflict(why),
        OutreachError::Invalid(why) => ApiError::invalid("body", why),
        e @ OutreachError::Template { .. } => ApiError::invalid("outreach.template", e.to_string()),
        OutreachError::Engine(e) => e.into(),
    }
}

/// A refused campaign file as a 422 naming the first bad field (all errors in the message).
fn campaign_error(e: CampaignFileError) -> ApiError {
    match e {
        CampaignFileError::Invalid(errs) => {
            let field = errs.0.first().map(|e| e.path.clone()).unwrap_or_default();
            ApiError::invalid(field, errs.to_string())
        }
        CampaignFileError::Engine(e) => e.into(),
    }
}

/// The campaign, lead, batch, do-not-contact and account operations behind the HTTP API.
///
/// Errors are [`ApiError`]s so an implementation decides the status: 404 for a missing id, 409
/// for a state conflict, 422 naming the field for invalid input (see
/// [`super::extract::from_value`]), 501 for what the engine cannot do yet.
pub trait ApiBackend: Send + Sync {
    /// Creates a campaign from its file (sent as JSON or TOML, given here as JSON).
    fn create_campaign(
        &self,
        file: serde_json::Value,
        format: FileFormat,
    ) -> impl Future<Output = Result<Campaign, ApiError>> + Send;
    /// Campaigns, newest first.
    fn campaigns(
        &self,
        status: Option<CampaignState>,
    ) -> impl Future<Output = Result<Vec<Campaign>, ApiError>> + Send;
    /// One campaign.
    fn campaign(&self, id: i64) -> impl Future<Output = Result<Campaign, ApiError>> + Send;
    /// Pauses, resumes or archives a campaign.
    fn set_campaign_status(
        &self,
        id: i64,
        status: CampaignState,
    ) -> impl Future<Output = Result<Campaign, ApiError>> + Send;
    /// Counts per pipeline stage.
    fn campaign_progress(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<CampaignProgress, ApiError>> + Send;
    /// What a qualify would do, before any money is spent.
    fn explain_campaign(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<CampaignExplain, ApiError>> + Send;
    /// Starts discovery for a campaign.
    fn discover(&self, id: i64) -> impl Future<Output = Result<JobAccepted, ApiError>> + Send;
    /// Starts a qualify run for a campaign.
    fn qualify(&self, id: i64) -> impl Future<Output = Result<JobAccepted, ApiError>> + Send;
    /// A page of a campaign's leads, best first (404 when the campaign does not exist).
    fn leads(
        &self,
        campaign_id: i64,
        status: Option<LeadStatus>,
        limit: i64,
        after: Option<Cursor>,
    ) -> impl Future<Output = Result<(Vec<Lead>, Option<Cursor>), ApiError>> + Send;
    /// One lead in detail.
    fn lead(&self, id: i64) -> impl Future<Output = Result<LeadDetail, ApiError>> + Send;
    /// Drafts a DM batch for a campaign.
    fn create_batch(
        &self,
        campaign_id: i64,
        req: NewBatch,
    ) -> impl Future<Output = Result<Batch, ApiError>> + Send;
    /// One batch with its messages.
    fn batch(&self, id: i64) -> impl Future<Output = Result<Batch, ApiError>> + Send;
    /// Approves a draft batch (its messages get dispatched within the accounts' limits).
    fn approve_batch(&self, id: i64) -> impl Future<Output = Result<Batch, ApiError>> + Send;
    /// Cancels a batch's unsent messages.
    fn cancel_batch(&self, id: i64) -> impl Future<Output = Result<Batch, ApiError>> + Send;
    /// A page of do-not-contact entries after the entry with id `after`.
    fn dnc(
        &self,
        platform: Option<String>,
        limit: i64,
        after: Option<i64>,
    ) -> impl Future<Output = Result<(Vec<DncEntry>, Option<i64>), ApiError>> + Send;
    /// Adds a do-not-contact entry (idempotent: an existing entry is returned).
    fn add_dnc(&self, req: NewDnc) -> impl Future<Output = Result<DncEntry, ApiError>> + Send;
    /// Removes a do-not-contact entry.
    fn remove_dnc(
        &self,
        platform: String,
        handle: String,
    ) -> impl Future<Output = Result<Removed, ApiError>> + Send;
    /// Erases everything stored about a person (profile, features, scores, leads, messages, images)
    /// and adds them to do-not-contact.
    fn erase_person(
        &self,
        platform: String,
        handle: String,
    ) -> impl Future<Output = Result<Removed, ApiError>> + Send;
    /// The sender accounts with their recent sends.
    fn accounts(&self) -> impl Future<Output = Result<Vec<Account>, ApiError>> + Send;
}

impl ApiBackend for Engine {
    async fn create_campaign(
        &self,
        file: serde_json::Value,
        format: FileFormat,
    ) -> Result<Campaign, ApiError> {
        // One validator for every entry point: the body goes through the campaign-file parser.
        let name = match format {
            FileFormat::Json => "request body (JSON)",
            FileFormat::Toml => "request body (TOML)",
        };
        let text = toml::to_string(&file)
            .map_err(|e| ApiError::invalid("body", format!("not a campaign file: {e}")))?;
        let created = Engine::create_campaign(self, name, &text)
            .await
            .map_err(campaign_error)?;
        ApiBackend::campaign(self, created.id.0).await
    }

    async fn campaigns(&self, status: Option<CampaignState>) -> Result<Vec<Campaign>, ApiError> {
        Ok(queries::campaigns(self.db(), status).await?)
    }

    async fn campaign(&self, id: i64) -> Result<Campaign, ApiError> {
        queries::campaign(self.db(), id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("campaign {id} not found")))
    }

    async fn set_campaign_status(
        &self,
        id: i64,
        status: CampaignState,
    ) -> Result<Campaign, ApiError> {
        let status = match status {
            CampaignState::Active => CampaignStatus::Active,
            CampaignState::Paused => CampaignStatus::Paused,
            CampaignState::Archived => CampaignStatus::Archived,
        };
        Engine::set_campaign_status(self, CampaignId(id), status).await?;
        ApiBackend::campaign(self, id).await
    }

    async fn campaign_progress(&self, id: i64) -> Result<CampaignProgress, ApiError> {
        let r = self.campaign_status(CampaignId(id)).await?;
        Ok(CampaignProgress {
            campaign_id: r.campaign_id,
            candidates: r.candidates,
            shortlisted: r.shortlisted,
            scored: r.scored,
            cache_hits: r.cache_hits,
            llm_calls_today: r.llm_calls_today,
            llm_budget: r.llm_budget,
            llm_scored: r.scored,
            llm_qualified: r.qualified,
            leads: r.leads,
            messages: r.messages,
            jobs: r.jobs,
            feedback: r.feedback,
        })
    }

    async fn explain_campaign(&self, id: i64) -> Result<CampaignExplain, ApiError> {
        let e = self.explain(CampaignId(id)).await?;
        let c = Engine::campaign(self, CampaignId(id)).await?;
        let shortlist = self
            .shortlist(CampaignId(id), c.spec.qualify.shortlist_k as i64)
            .await?;
        Ok(CampaignExplain {
            campaign_id: id,
            compiled_where: e.sql,
            params: e
                .params
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
            clauses: e
                .clauses
                .into_iter()
                .map(|c| ClauseCount {
                    clause: c.clause,
                    kept: c.keeps,
                })
                .collect(),
            candidates: e.candidates,
            shortlist,
            llm_calls: e.llm_calls,
        })
    }

    async fn discover(&self, id: i64) -> Result<JobAccepted, ApiError> {
        let c = Engine::campaign(self, CampaignId(id)).await?;
        // One root job so the whole discovery can be followed with a single id.
        let root = self
            .enqueue(NewJob::new("system.noop", serde_json::json!({ "discover": id })).campaign(id))
            .await?;
        for job in crate::engine::campaigns::discovery_jobs(&c) {
            self.enqueue(job.root(root.id)).await?;
        }
        Ok(JobAccepted {
            job_id: root.id.0,
            created: true,
        })
    }

    async fn qualify(&self, id: i64) -> Result<JobAccepted, ApiError> {
        Engine::campaign(self, CampaignId(id)).await?;
        let e = self
            .enqueue(crate::engine::pipeline::qualify::qualify_job_for(
                CampaignId(id),
                None,
            ))
            .await?;
        Ok(JobAccepted {
            job_id: e.id.0,
            created: e.created,
        })
    }

    async fn leads(
        &self,
        campaign_id: i64,
        status: Option<LeadStatus>,
        limit: i64,
        after: Option<Cursor>,
    ) -> Result<(Vec<Lead>, Option<Cursor>), ApiError> {
        ApiBackend::campaign(self, campaign_id).await?;
        Ok(queries::leads_page(self.db(), campaign_id, status, limit, after).await?)
    }

    async fn lead(&self, id: i64) -> Result<LeadDetail, ApiError> {
        queries::lead_detail(self.db(), id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("lead {id} not found")))
    }

    async fn create_batch(&self, campaign_id: i64, req: NewBatch) -> Result<Batch, ApiError> {
        if req.account_id.is_some() {
            return Err(ApiError::invalid("account_id", "choosing one account is not supported: messages are spread over the campaign's [outreach] accounts"));
        }
        let view = Engine::create_batch(
            self,
            CampaignId(campaign_id),
            BatchOptions {
                limit: Some(req.size),
                min_score: req.min_score,
            },
        )
        .await
        .map_err(outreach_error)?;
        ApiBackend::batch(self, view.batch.id.0).await
    }

    async fn batch(&self, id: i64) -> Result<Batch, ApiError> {
        queries::batch(self.db(), id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("batch {id} not found")))
    }

    async fn approve_batch(&self, id: i64) -> Result<Batch, ApiError> {
        Engine::approve_batch(self, BatchId(id))
            .await
            .map_err(outreach_error)?;
        ApiBackend::batch(self, id).await
    }

    async fn cancel_batch(&self, id: i64) -> Result<Batch, ApiError> {
        Engine::cancel_batch(self, BatchId(id))
            .await
            .map_err(outreach_error)?;
        ApiBackend::batch(self, id).await
    }

    async fn dnc(
        &self,
        platform: Option<String>,
        limit: i64,
        after: Option<i64>,
    ) -> Result<(Vec<DncEntry>, Option<i64>), ApiError> {
        Ok(queries::dnc_page(self.db(), platform.as_deref(), limit, after).await?)
    }

    async fn add_dnc(&self, req: NewDnc) -> Result<DncEntry, ApiError> {
        if req.handle.trim().is_empty() {
            return Err(ApiError::invalid("handle", "must not be empty"));
        }
        self.dnc_add(&req.platform, &req.handle, req.reason.as_deref())
            .await
            .map_err(outreach_error)?;
        let (entries, _) = queries::dnc_page(self.db(), Some(&req.platform), 10_000, None).await?;
        let wanted = req.handle.trim().trim_start_matches('@').to_lowercase();
        entries
            .into_iter()
            .find(|e| e.handle.to_lowercase() == wanted)
            .ok_or_else(|| ApiError::internal("the do-not-contact entry was not stored"))
    }

    async fn remove_dnc(&self, platform: String, handle: String) -> Result<Removed, ApiError> {
        let removed = self
            .dnc_remove(&platform, &handle)
            .await
            .map_err(outreach_error)?;
        if !removed {
            return Err(ApiError::not_found(format!(
                "{handle} is not on the do-not-contact list of {platform}"
            )));
        }
        Ok(Removed {
            deleted: [("do_not_contact".to_string(), 1)].into_iter().collect(),
        })
    }

    async fn erase_person(&self, platform: String, handle: String) -> Result<Removed, ApiError> {
        let r = self
            .erase(&handle, Some(&platform))
            .await
            .map_err(outreach_error)?;
        let deleted = [
            ("profiles_raw", r.profiles as i64),
            ("leads", r.leads as i64),
            ("messages", r.messages as i64),
            ("llm_scores", r.llm_scores as i64),
            ("feedback_events", r.feedback_events as i64),
            ("jobs", r.jobs as i64),
            ("images", r.images_deleted as i64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(Removed { deleted })
    }

    async fn accounts(&self) -> Result<Vec<Account>, ApiError> {
        Ok(queries::accounts(self.db(), self.services().clock.now_ms()).await?)
    }
}
