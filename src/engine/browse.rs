//! The console's service API: windowed reads over every list, detail reads, the lead decisions an
//! operator makes, and [`ConsoleBackend`], the one trait the console drives (so its commands that
//! the engine does not offer yet fail with a clear message instead of being missing).

use std::future::Future;
use std::path::PathBuf;

use crate::db::browse::{
    self, BatchDetail, BatchId, BrowseQuery, CampaignId, CampaignStats, LeadId, LeadStatus, Page,
    ProfileDetail, ProfileId,
};
use crate::engine::queue::{Job, JobId};
use crate::engine::service::{Engine, EngineError};

/// Errors from the console's backend.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The command exists in the console but not yet in this build's engine.
    #[error("{0}: not available in this build")]
    NotAvailable(&'static str),
    /// A command was refused (bad template, wrong state, …), with the engine's explanation.
    #[error("{0}")]
    Failed(String),
}

impl From<crate::db::DbError> for ConsoleError {
    fn from(e: crate::db::DbError) -> Self {
        ConsoleError::Engine(EngineError::Db(e))
    }
}

/// What saving an edited campaign file did.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignSaved {
    /// Created or updated.
    Saved(CampaignId),
    /// The file is not valid: one message per problem (`line 3: followers: expected a number`).
    Invalid(Vec<String>),
}

impl Engine {
    /// A window of one list (filtered and sorted in SQL). `total` (from [`Engine::browse_count`])
    /// lets deep windows be read from the far end.
    pub async fn browse(&self, q: &BrowseQuery, total: Option<i64>) -> Result<Page, EngineError> {
        Ok(browse::window(self.db(), q, total).await?)
    }

    /// How many rows the list behind `q` has (its scope and filter, no window).
    pub async fn browse_count(&self, q: &BrowseQuery) -> Result<i64, EngineError> {
        Ok(browse::count(self.db(), q).await?)
    }

    /// One profile with features, newest verdict, lead and message (in `campaign` when given).
    pub async fn profile_detail(
        &self,
        id: ProfileId,
        campaign: Option<CampaignId>,
    ) -> Result<ProfileDetail, EngineError> {
        browse::profile_detail(self.db(), id, campaign)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("profile {id}")))
    }

    /// One batch with every message as it will be sent.
    pub async fn batch_detail(&self, id: BatchId) -> Result<BatchDetail, EngineError> {
        browse::batch_detail(self.db(), id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("batch {id}")))
    }

    /// A campaign's funnel and its sends and replies per day over the last `days` days.
    pub async fn campaign_stats(
        &self,
        id: CampaignId,
        days: u32,
    ) -> Result<CampaignStats, EngineError> {
        Ok(browse::campaign_stats(self.db(), id, self.services().clock.now_ms(), days).await?)
    }

    /// Jobs finished per minute over the last `minutes` minutes, oldest first.
    pub async fn jobs_per_minute(&self, minutes: u32) -> Result<Vec<u64>, EngineError> {
        Ok(browse::jobs_per_minute(self.db(), self.services().clock.now_ms(), minutes).await?)
    }

    /// Approves or rejects leads (or puts them back to `new`). Only leads that are still an
    /// operator decision change; returns how many did.
    pub async fn set_lead_status(
        &self,
        ids: &[LeadId],
        status: LeadStatus,
    ) -> Result<u64, EngineError> {
        if !status.is_operator_decision() {
            return Err(EngineError::Conflict(format!(
                "leads can be set to new, approved or rejected by hand, not {status}"
            )));
        }
        Ok(browse::set_lead_status(self.db(), ids, status, self.services().clock.now_ms()).await?)
    }

    /// The bytes stored under an object key (sha256 hex), or `None` when absent.
    /// Objects live at `storage.path/<first 2 hex>/<sha256 hex>`.
    pub async fn load_object(&self, key: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let Some(path) = object_path(&self.services().config.storage.path, key) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::NotFound(format!(
                "object {key} ({}: {e})",
                path.display()
            ))),
        }
    }
}

/// Where the object store keeps `key`; `None` unless `key` is a sha256 hex digest (so a key from the
/// database can never name a path outside the store).
pub fn object_path(root: &std::path::Path, key: &str) -> Option<PathBuf> {
    let key = key.trim();
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = key.to_ascii_lowercase();
    Some(root.join(&key[..2]).join(&key))
}

/// Everything the console asks of the engine. Implemented by [`Engine`]; the console's tests may
/// implement it with fixed data. Methods whose engine side is still being built return
/// [`ConsoleError::NotAvailable`] (the lead wires them).
pub trait ConsoleBackend: Clone + Send + Sync + 'static {
    /// Engine events (job progress, notices) for live updates.
    fn events(&self) -> tokio::sync::broadcast::Receiver<crate::engine::events::EngineEvent>;
    /// A window of one list.
    fn browse(
        &self,
        q: BrowseQuery,
        total: Option<i64>,
    ) -> impl Future<Output = Result<Page, ConsoleError>> + Send;
    /// The row count behind a query.
    fn count(&self, q: BrowseQuery) -> impl Future<Output = Result<i64, ConsoleError>> + Send;
    /// One profile.
    fn profile(
        &self,
        id: ProfileId,
        campaign: Option<CampaignId>,
    ) -> impl Future<Output = Result<ProfileDetail, ConsoleError>> + Send;
    /// One batch with its messages.
    fn batch(&self, id: BatchId) -> impl Future<Output = Result<BatchDetail, ConsoleError>> + Send;
    /// A campaign's funnel and reply rate.
    fn campaign_stats(
        &self,
        id: CampaignId,
    ) -> impl Future<Output = Result<CampaignStats, ConsoleError>> + Send;
    /// Jobs finished per minute, last hour.
    fn jobs_per_minute(&self) -> impl Future<Output = Result<Vec<u64>, ConsoleError>> + Send;
    /// Stored object bytes.
    fn object(
        &self,
        key: String,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, ConsoleError>> + Send;
    /// Sets lead statuses; returns how many changed.
    fn set_lead_status(
        &self,
        ids: Vec<LeadId>,
        status: LeadStatus,
    ) -> impl Future<Output = Result<u64, ConsoleError>> + Send;
    /// Re-queues a job.
    fn retry_job(&self, id: JobId) -> impl Future<Output = Result<Job, ConsoleError>> + Send;
    /// Cancels a job.
    fn cancel_job(&self, id: JobId) -> impl Future<Output = Result<Job, ConsoleError>> + Send;
    /// Builds a draft DM batch from the campaign's approved leads.
    fn create_batch(
        &self,
        campaign: CampaignId,
    ) -> impl Future<Output = Result<BatchId, ConsoleError>> + Send;
    /// Approves a batch for sending (the console has already asked for confirmation).
    fn approve_batch(
        &self,
        batch: BatchId,
    ) -> impl Future<Output = Result<(), ConsoleError>> + Send;
    /// The commented template a new campaign file starts from.
    fn campaign_template(&self) -> impl Future<Output = Result<String, ConsoleError>> + Send;
    /// A campaign's file, for editing.
    fn campaign_source(
        &self,
        id: CampaignId,
    ) -> impl Future<Output = Result<String, ConsoleError>> + Send;
    /// Validates and saves a campaign file (creates when `id` is `None`).
    fn save_campaign(
        &self,
        id: Option<CampaignId>,
        text: String,
    ) -> impl Future<Output = Result<CampaignSaved, ConsoleError>> + Send;
    /// `omni campaign explain`: compiled SQL, clause counts, shortlist, planned LLM calls.
    fn explain_campaign(
        &self,
        id: CampaignId,
    ) -> impl Future<Output = Result<String, ConsoleError>> + Send;
    /// Starts discovery for a campaign; returns a one-line summary.
    fn discover(&self, id: CampaignId)
        -> impl Future<Output = Result<String, ConsoleError>> + Send;
    /// Starts qualification now; returns a one-line summary.
    fn qualify(&self, id: CampaignId) -> impl Future<Output = Result<String, ConsoleError>> + Send;
    /// Retrains the campaign's weights now; returns a one-line summary.
    fn learn(&self, id: CampaignId) -> impl Future<Output = Result<String, ConsoleError>> + Send;
}

impl ConsoleBackend for Engine {
    fn events(&self) -> tokio::sync::broadcast::Receiver<crate::engine::events::EngineEvent> {
        self.subscribe()
    }
    async fn browse(&self, q: BrowseQuery, total: Option<i64>) -> Result<Page, ConsoleError> {
        Ok(Engine::browse(self, &q, total).await?)
    }
    async fn count(&self, q: BrowseQuery) -> Result<i64, ConsoleError> {
        Ok(self.browse_count(&q).await?)
    }
    async fn profile(
        &self,
        id: ProfileId,
        campaign: Option<CampaignId>,
    ) -> Result<ProfileDetail, ConsoleError> {
        Ok(self.profile_detail(id, campaign).await?)
    }
    async fn batch(&self, id: BatchId) -> Result<BatchDetail, ConsoleError> {
        Ok(self.batch_detail(id).await?)
    }
    async fn campaign_stats(&self, id: CampaignId) -> Result<CampaignStats, ConsoleError> {
        Ok(Engine::campaign_stats(self, id, 14).await?)
    }
    async fn jobs_per_minute(&self) -> Result<Vec<u64>, ConsoleError> {
        Ok(Engine::jobs_per_minute(self, 60).await?)
    }
    async fn object(&self, key: String) -> Result<Option<Vec<u8>>, ConsoleError> {
        Ok(self.load_object(&key).await?)
    }
    async fn set_lead_status(
        &self,
        ids: Vec<LeadId>,
        status: LeadStatus,
    ) -> Result<u64, ConsoleError> {
        Ok(Engine::set_lead_status(self, &ids, status).await?)
    }
    async fn retry_job(&self, id: JobId) -> Result<Job, ConsoleError> {
        Ok(Engine::retry_job(self, id).await?)
    }
    async fn cancel_job(&self, id: JobId) -> Result<Job, ConsoleError> {
        Ok(Engine::cancel_job(self, id).await?)
    }
    // The lead replaces these stubs with the engine's implementations as they land.
    async fn create_batch(&self, campaign: CampaignId) -> Result<BatchId, ConsoleError> {
        let view = Engine::create_batch(
            self,
            crate::db::campaigns::CampaignId(campaign.0),
            crate::engine::outreach::BatchOptions::default(),
        )
        .await
        .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        Ok(BatchId(view.batch.id.0))
    }
    async fn approve_batch(&self, batch: BatchId) -> Result<(), ConsoleError> {
        Engine::approve_batch(self, crate::db::messages::BatchId(batch.0))
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        Ok(())
    }
    async fn campaign_template(&self) -> Result<String, ConsoleError> {
        Ok(crate::engine::campaigns::CAMPAIGN_TEMPLATE.to_string())
    }
    async fn campaign_source(&self, id: CampaignId) -> Result<String, ConsoleError> {
        let c = Engine::campaign(self, crate::db::campaigns::CampaignId(id.0)).await?;
        Ok(crate::engine::campaigns::campaign_to_toml(&c.spec))
    }
    async fn save_campaign(
        &self,
        id: Option<CampaignId>,
        text: String,
    ) -> Result<CampaignSaved, ConsoleError> {
        use crate::engine::campaigns::CampaignFileError;
        let result = match id {
            Some(id) => {
                self.edit_campaign(
                    crate::db::campaigns::CampaignId(id.0),
                    "campaign.toml",
                    &text,
                )
                .await
            }
            None => Engine::create_campaign(self, "campaign.toml", &text).await,
        };
        match result {
            Ok(c) => Ok(CampaignSaved::Saved(CampaignId(c.id.0))),
            Err(CampaignFileError::Invalid(errs)) => Ok(CampaignSaved::Invalid(
                errs.0.iter().map(|e| e.to_string()).collect(),
            )),
            Err(CampaignFileError::Engine(e)) => Err(e.into()),
        }
    }
    async fn explain_campaign(&self, id: CampaignId) -> Result<String, ConsoleError> {
        Ok(self
            .explain(crate::db::campaigns::CampaignId(id.0))
            .await?
            .render())
    }
    async fn discover(&self, id: CampaignId) -> Result<String, ConsoleError> {
        let jobs = Engine::discover(self, crate::db::campaigns::CampaignId(id.0)).await?;
        Ok(format!("discovery started: {} crawl jobs", jobs.len()))
    }
    async fn qualify(&self, id: CampaignId) -> Result<String, ConsoleError> {
        let e = self
            .enqueue(crate::engine::pipeline::qualify::qualify_job_for(
                crate::db::campaigns::CampaignId(id.0),
                None,
            ))
            .await?;
        Ok(format!("qualify started: job {}", e.id))
    }
    async fn learn(&self, id: CampaignId) -> Result<String, ConsoleError> {
        let r = Engine::learn(self, crate::db::campaigns::CampaignId(id.0))
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        Ok(match (&r.skipped, &r.new) {
            (Some(why), _) => format!("nothing learned: {why}"),
            (None, Some(w)) => format!(
                "weights v{} from {} samples ({} replied), AUC {}",
                w.version,
                r.n_samples,
                r.positives,
                r.auc
                    .map(|a| format!("{a:.3}"))
                    .unwrap_or_else(|| "-".into())
            ),
            (None, None) => "no weights were produced".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_path_accepts_only_sha256_hex() {
        let root = std::path::Path::new("/store");
        let key = "ab".repeat(32);
        assert_eq!(object_path(root, &key), Some(root.join("ab").join(&key)));
        assert_eq!(object_path(root, "../../etc/passwd"), None);
        assert_eq!(object_path(root, &"zz".repeat(32)), None);
    }
}
