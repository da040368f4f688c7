//! What the API needs from the engine beyond the job queue: campaigns, leads, batches,
//! do-not-contact and accounts. [`ApiBackend`] is that seam; its implementation for [`Engine`]
//! answers reads with SELECTs (`queries.rs`) and answers the commands the pipeline does not offer
//! yet with 501 `not_implemented`, to be filled in as the pipeline lands.

use std::future::Future;

use super::error::ApiError;
use super::extract::FileFormat;
use super::queries::{self, Cursor};
use super::types::{
    Account, Batch, Campaign, CampaignExplain, CampaignProgress, CampaignState, DncEntry,
    JobAccepted, Lead, LeadDetail, LeadStatus, NewBatch, NewDnc, Removed,
};
use crate::engine::Engine;

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
        _file: serde_json::Value,
        _format: FileFormat,
    ) -> Result<Campaign, ApiError> {
        Err(ApiError::not_implemented("creating a campaign"))
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
        _id: i64,
        _status: CampaignState,
    ) -> Result<Campaign, ApiError> {
        Err(ApiError::not_implemented("changing a campaign's status"))
    }

    async fn campaign_progress(&self, id: i64) -> Result<CampaignProgress, ApiError> {
        self.campaign(id).await?;
        Ok(queries::campaign_progress(self.db(), id).await?)
    }

    async fn explain_campaign(&self, _id: i64) -> Result<CampaignExplain, ApiError> {
        Err(ApiError::not_implemented("explaining a campaign"))
    }

    async fn discover(&self, _id: i64) -> Result<JobAccepted, ApiError> {
        Err(ApiError::not_implemented("discovery"))
    }

    async fn qualify(&self, _id: i64) -> Result<JobAccepted, ApiError> {
        Err(ApiError::not_implemented("qualification"))
    }

    async fn leads(
        &self,
        campaign_id: i64,
        status: Option<LeadStatus>,
        limit: i64,
        after: Option<Cursor>,
    ) -> Result<(Vec<Lead>, Option<Cursor>), ApiError> {
        self.campaign(campaign_id).await?;
        Ok(queries::leads_page(self.db(), campaign_id, status, limit, after).await?)
    }

    async fn lead(&self, id: i64) -> Result<LeadDetail, ApiError> {
        queries::lead_detail(self.db(), id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("lead {id} not found")))
    }

    async fn create_batch(&self, _campaign_id: i64, _req: NewBatch) -> Result<Batch, ApiError> {
        Err(ApiError::not_implemented("drafting a DM batch"))
    }

    async fn batch(&self, id: i64) -> Result<Batch, ApiError> {
        queries::batch(self.db(), id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("batch {id} not found")))
    }

    async fn approve_batch(&self, _id: i64) -> Result<Batch, ApiError> {
        Err(ApiError::not_implemented("approving a DM batch"))
    }

    async fn cancel_batch(&self, _id: i64) -> Result<Batch, ApiError> {
        Err(ApiError::not_implemented("cancelling a DM batch"))
    }

    async fn dnc(
        &self,
        platform: Option<String>,
        limit: i64,
        after: Option<i64>,
    ) -> Result<(Vec<DncEntry>, Option<i64>), ApiError> {
        Ok(queries::dnc_page(self.db(), platform.as_deref(), limit, after).await?)
    }

    async fn add_dnc(&self, _req: NewDnc) -> Result<DncEntry, ApiError> {
        Err(ApiError::not_implemented("adding to do-not-contact"))
    }

    async fn remove_dnc(&self, _platform: String, _handle: String) -> Result<Removed, ApiError> {
        Err(ApiError::not_implemented("removing from do-not-contact"))
    }

    async fn erase_person(&self, _platform: String, _handle: String) -> Result<Removed, ApiError> {
        Err(ApiError::not_implemented("erasing a person"))
    }

    async fn accounts(&self) -> Result<Vec<Account>, ApiError> {
        Ok(queries::accounts(self.db(), self.services().clock.now_ms()).await?)
    }
}
