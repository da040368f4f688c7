//! The API's request and response bodies (with their OpenAPI schemas). Kept apart from the engine's
//! own types so the wire format changes only on purpose.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::engine::queue::{Job, JobStatus};

/// Defines a lowercase string enum with `as_str`, `FromStr` (an error naming the allowed values)
/// and serde, for states stored as text in the database.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let allowed: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} `{s}`: expected one of {}", stringify!($name), allowed.join(", "))
                })
            }
        }
    };
}

text_enum!(
    /// A campaign's lifecycle state.
    CampaignState {
        /// Discovering, qualifying and sending.
        Active = "active",
        /// Kept, but no new work starts.
        Paused = "paused",
        /// Finished; read-only.
        Archived = "archived",
    }
);

text_enum!(
    /// Where a lead is on its way to a conversation.
    LeadStatus {
        /// Qualified, awaiting a decision.
        New = "new",
        /// Approved for messaging.
        Approved = "approved",
        /// Rejected by the operator.
        Rejected = "rejected",
        /// A message is queued.
        Queued = "queued",
        /// Messaged.
        Sent = "sent",
        /// Answered.
        Replied = "replied",
        /// Asked not to be contacted.
        OptedOut = "opted_out",
        /// Messaging failed.
        Failed = "failed",
    }
);

text_enum!(
    /// A DM batch's state.
    BatchStatus {
        /// Drafted, awaiting approval.
        Draft = "draft",
        /// Approved; messages will be dispatched.
        Approved = "approved",
        /// Messages are being sent.
        Dispatching = "dispatching",
        /// Every message is finished.
        Done = "done",
        /// Cancelled before every message was sent.
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// A message's place in the send ledger.
    MessageStatus {
        /// Rendered, not approved.
        Draft = "draft",
        /// Approved, not queued.
        Approved = "approved",
        /// Waiting for its account's next send slot.
        Queued = "queued",
        /// Handed to the platform; outcome not yet recorded.
        Sending = "sending",
        /// Delivered.
        Sent = "sent",
        /// Failed.
        Failed = "failed",
        /// The platform's answer was lost; the operator must check.
        Unknown = "unknown",
        /// Cancelled before sending.
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// A job's state (mirrors the queue's).
    JobState {
        /// Waiting to be claimed.
        Queued = "queued",
        /// Claimed by a worker.
        Running = "running",
        /// Finished successfully.
        Succeeded = "succeeded",
        /// An attempt failed; will be retried.
        Failed = "failed",
        /// Out of attempts; kept for inspection and retry.
        Dead = "dead",
        /// Cancelled by an operator.
        Cancelled = "cancelled",
    }
);

impl From<JobStatus> for JobState {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => JobState::Queued,
            JobStatus::Running => JobState::Running,
            JobStatus::Succeeded => JobState::Succeeded,
            JobStatus::Failed => JobState::Failed,
            JobStatus::Dead => JobState::Dead,
            JobStatus::Cancelled => JobState::Cancelled,
        }
    }
}

impl From<JobState> for JobStatus {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => JobStatus::Queued,
            JobState::Running => JobStatus::Running,
            JobState::Succeeded => JobStatus::Succeeded,
            JobState::Failed => JobStatus::Failed,
            JobState::Dead => JobStatus::Dead,
            JobState::Cancelled => JobStatus::Cancelled,
        }
    }
}

/// A job on the durable queue. Times are unix milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    /// The handler, e.g. `scrape.profile`.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    pub status: JobState,
    pub priority: i64,
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_until: Option<i64>,
    pub worker_id: Option<String>,
    pub unique_key: Option<String>,
    /// 0–100.
    pub progress: i64,
    pub progress_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub campaign_id: Option<i64>,
    /// The job whose work this is part of.
    pub root_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id.0,
            kind: j.kind,
            payload: j.payload,
            status: j.status.into(),
            priority: j.priority,
            run_at: j.run_at,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            lease_until: j.lease_until,
            worker_id: j.worker_id,
            unique_key: j.unique_key,
            progress: j.progress,
            progress_message: j.progress_message,
            result: j.result,
            error: j.error,
            campaign_id: j.campaign_id,
            root_id: j.root_id,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// A list of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobView>,
}

/// `GET /jobs` filters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only jobs in this state.
    pub status: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs working for this campaign.
    pub campaign_id: Option<i64>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Skip this many (for paging).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Work accepted: the job that will do it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    /// Follow it at `GET /jobs/{id}` or on `GET /events`.
    pub job_id: i64,
    /// False when an identical job was already queued (its id is returned).
    pub created: bool,
}

/// A campaign. Times are unix milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub platform: String,
    pub status: CampaignState,
    /// The campaign file, as JSON.
    pub spec: serde_json::Value,
    /// Hash of everything that changes a verdict (filters, brief, model, image count).
    pub criteria_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A list of campaigns, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<Campaign>,
}

/// `GET /campaigns` filters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignsQuery {
    /// Only campaigns in this state.
    pub status: Option<CampaignState>,
}

/// `PATCH /campaigns/{id}`: pause, resume (`active`) or archive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    /// The state to move to.
    pub status: CampaignState,
}

/// Where a campaign's pipeline stands: counts per stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CampaignProgress {
    pub campaign_id: i64,
    /// Profiles that pass the campaign's filters.
    pub candidates: i64,
    /// Candidates a qualify would send to the LLM now.
    pub shortlisted: i64,
    /// Verdicts stored for this campaign (same as `llm_scored`).
    pub scored: i64,
    /// Verdicts reused from the cache instead of a paid call.
    pub cache_hits: i64,
    /// LLM calls made today (UTC).
    pub llm_calls_today: i64,
    /// The daily LLM call budget.
    pub llm_budget: i64,
    /// Profiles the LLM has judged for this campaign.
    pub llm_scored: i64,
    /// Of those, how many it judged qualified.
    pub llm_qualified: i64,
    /// Leads per status.
    pub leads: BTreeMap<String, i64>,
    /// Messages per status.
    pub messages: BTreeMap<String, i64>,
    /// Jobs working for this campaign, per state.
    pub jobs: BTreeMap<String, i64>,
    /// Feedback events (replies, opt-outs, …) per kind.
    pub feedback: BTreeMap<String, i64>,
}

/// What a qualify run would do, before any money is spent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CampaignExplain {
    pub campaign_id: i64,
    /// The compiled predicate over `profile_features` (values are bound parameters).
    pub compiled_where: String,
    /// The bound parameter values, in order.
    pub params: Vec<serde_json::Value>,
    /// How many profiles each clause keeps on its own.
    pub clauses: Vec<ClauseCount>,
    /// Profiles passing every clause.
    pub candidates: i64,
    /// The shortlist a qualify would send to the LLM (profile ids, best first).
    pub shortlist: Vec<i64>,
    /// LLM calls a qualify would make (shortlist minus cached verdicts).
    pub llm_calls: i64,
}

/// One clause of a compiled filter and how many profiles it keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ClauseCount {
    pub clause: String,
    pub kept: i64,
}

/// A lead: a profile the LLM qualified for a campaign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lead {
    pub id: i64,
    pub campaign_id: i64,
    pub profile_id: i64,
    pub platform: String,
    pub handle: String,
    /// 0–100.
    pub score: i64,
    pub status: LeadStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A page of leads, best score first; pass `next_cursor` as `cursor` for the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /campaigns/{id}/leads` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadsQuery {
    /// Only leads in this status.
    pub status: Option<LeadStatus>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A lead with its profile, the LLM's verdict, its messages and the feedback received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LeadDetail {
    #[serde(flatten)]
    pub lead: Lead,
    pub profile: Option<ProfileSummary>,
    pub verdict: Option<Verdict>,
    pub messages: Vec<Message>,
    pub feedback: Vec<Feedback>,
}

/// The numbers the filters and the cheap score see.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileSummary {
    pub followers: i64,
    pub following: i64,
    pub posts_count: i64,
    pub engagement_rate: f64,
    pub posts_per_week: f64,
    pub last_post_at: Option<i64>,
    pub language: Option<String>,
    pub is_bot: bool,
}

/// The LLM's judgement of a profile for a campaign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    pub model: String,
    /// 0–100.
    pub score: i64,
    pub qualified: bool,
    pub reasons: serde_json::Value,
    pub red_flags: serde_json::Value,
    /// A suggested first line for the message.
    pub opener: String,
    pub created_at: i64,
}

/// A direct message in the send ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: i64,
    pub lead_id: i64,
    pub batch_id: i64,
    pub account_id: Option<i64>,
    pub body: String,
    pub status: MessageStatus,
    pub platform_message_id: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub not_before: Option<i64>,
    pub sent_at: Option<i64>,
}

/// Something the platform told us about a message or a lead.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Feedback {
    pub id: i64,
    /// replied, positive, negative, opted_out or bounced.
    pub kind: String,
    pub body: Option<String>,
    pub occurred_at: i64,
}

/// `POST /campaigns/{id}/batches`: draft messages for the best unmessaged leads.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    /// How many leads to include, best first (1–1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub size: i64,
    /// Only leads scoring at least this (0–100).
    #[schema(minimum = 0, maximum = 100)]
    pub min_score: Option<i64>,
    /// Send from this account only (default: spread over the platform's accounts).
    pub account_id: Option<i64>,
}

/// A DM batch and its messages.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Batch {
    pub id: i64,
    pub campaign_id: i64,
    pub status: BatchStatus,
    pub created_at: i64,
    pub approved_at: Option<i64>,
    /// Messages per status.
    pub counts: BTreeMap<String, i64>,
    pub messages: Vec<Message>,
}

/// A do-not-contact entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncEntry {
    pub id: i64,
    pub platform: String,
    pub handle: String,
    pub external_id: Option<String>,
    pub reason: Option<String>,
    pub added_at: i64,
}

/// A page of do-not-contact entries, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DncPage {
    pub items: Vec<DncEntry>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /dnc` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncQuery {
    /// Only entries for this platform.
    pub platform: Option<String>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `POST /dnc`: never contact this person.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDnc {
    pub platform: String,
    pub handle: String,
    pub external_id: Option<String>,
    pub reason: Option<String>,
}

/// `DELETE /dnc` parameters: the entry to remove.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DncKey {
    pub platform: String,
    pub handle: String,
}

/// What a removal or erasure deleted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// Rows deleted per table.
    pub deleted: BTreeMap<String, i64>,
}

/// A sender account with its limits and recent sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: i64,
    pub platform: String,
    pub handle: String,
    pub daily_cap: i64,
    pub hourly_cap: i64,
    pub min_gap_secs: i64,
    pub jitter_secs: i64,
    pub quiet_hours: Option<String>,
    pub timezone: String,
    pub warmup_days: i64,
    /// Paused by the circuit breaker until then (unix ms).
    pub paused_until: Option<i64>,
    pub sent_last_hour: i64,
    pub sent_last_day: i64,
    pub created_at: i64,
}

/// The sender accounts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountList {
    pub items: Vec<Account>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the database cannot be reached.
    pub status: String,
    /// `ok`, or what went wrong reaching it.
    pub database: String,
    /// Age of the oldest job that is ready to run, in seconds (0 when none waits).
    pub queue_lag_seconds: f64,
    /// Jobs ready to run now.
    pub ready_jobs: i64,
    /// This engine's node id.
    pub node: String,
}
