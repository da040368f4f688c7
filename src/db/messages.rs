//! `dm_batches` and `messages`: approval batches and the send ledger.
//!
//! A message moves `draft` → `queued` (its batch approved, a `dispatch.dm` job enqueued) →
//! `sending` (committed before the platform call) → `sent`; or ends `failed` (the platform refused),
//! `unknown` (a send in doubt that could not be reconciled) or `cancelled` (by the operator, or by
//! do-not-contact / cooldown just before the call, with the reason in `error`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::accounts::AccountId;
use super::campaigns::CampaignId;
use super::{Db, DbError};
use crate::engine::clock::Millis;

/// A batch's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub i64);

/// A message's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
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
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} `{s}`: expected one of {}", stringify!($name), names.join(", "))
                })
            }
        }
    };
}

string_enum!(
    /// Where a batch is in its life.
    BatchStatus {
        /// Rendered, waiting for the operator.
        Draft = "draft",
        /// Approved; its messages are queued.
        Approved = "approved",
        /// At least one message is being sent.
        Dispatching = "dispatching",
        /// Every message reached an end state.
        Done = "done",
        /// Cancelled by the operator.
        Cancelled = "cancelled",
    }
);

string_enum!(
    /// Where a message is in the send ledger.
    MessageStatus {
        /// Rendered into a draft batch.
        Draft = "draft",
        /// Approved (not used for queued sends; kept for the schema's vocabulary).
        Approved = "approved",
        /// Waiting for its `dispatch.dm` job.
        Queued = "queued",
        /// Committed before the platform call; the outcome is not recorded yet.
        Sending = "sending",
        /// The platform has it (`platform_message_id`).
        Sent = "sent",
        /// The platform refused it.
        Failed = "failed",
        /// A send in doubt that could not be reconciled: check by hand.
        Unknown = "unknown",
        /// Not sent: by the operator, or do-not-contact / cooldown (see `error`).
        Cancelled = "cancelled",
    }
);

impl MessageStatus {
    /// True when nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MessageStatus::Sent
                | MessageStatus::Failed
                | MessageStatus::Unknown
                | MessageStatus::Cancelled
        )
    }
}

fn decode<T: FromStr<Err = String>>(s: String) -> Result<T, DbError> {
    s.parse()
        .map_err(|e: String| DbError::Sqlx(sqlx::Error::Decode(e.into())))
}

/// A stored batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRow {
    pub id: BatchId,
    pub campaign_id: CampaignId,
    pub status: BatchStatus,
    pub created_at: Millis,
    pub approved_at: Option<Millis>,
}

/// A message as listed in a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRow {
    pub id: MessageId,
    pub lead_id: i64,
    pub profile_id: i64,
    pub handle: String,
    pub score: i64,
    pub status: MessageStatus,
    pub account_id: Option<AccountId>,
    pub body: String,
    pub platform_message_id: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub not_before: Option<Millis>,
    pub sent_at: Option<Millis>,
}

/// Everything dispatch needs about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub id: MessageId,
    pub batch_id: BatchId,
    pub lead_id: i64,
    pub campaign_id: CampaignId,
    pub account_id: Option<AccountId>,
    pub body: String,
    pub status: MessageStatus,
    pub idempotency_key: String,
    pub platform_message_id: Option<String>,
    pub sent_at: Option<Millis>,
    pub profile_id: i64,
    pub platform: String,
    pub handle: String,
    pub external_id: String,
}

/// Creates a draft batch.
pub async fn insert_batch_on(
    conn: &mut AnyConnection,
    campaign: CampaignId,
    now: Millis,
) -> Result<BatchId, DbError> {
    let id: i64 = sqlx::query_scalar("INSERT INTO dm_batches (campaign_id, status, created_at) VALUES ($1, 'draft', $2) RETURNING id")
        .bind(campaign.0)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    Ok(BatchId(id))
}

/// Adds a draft message to a batch.
pub async fn insert_message_on(
    conn: &mut AnyConnection,
    batch: BatchId,
    lead_id: i64,
    body: &str,
    idempotency_key: &str,
) -> Result<MessageId, DbError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (lead_id, batch_id, body, status, idempotency_key, attempts) VALUES ($1, $2, $3, 'draft', $4, 0) RETURNING id",
    )
    .bind(lead_id)
    .bind(batch.0)
    .bind(body)
    .bind(idempotency_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(MessageId(id))
}

fn batch_from_row(r: &sqlx::any::AnyRow) -> Result<BatchRow, DbError> {
    Ok(BatchRow {
        id: BatchId(r.try_get("id")?),
        campaign_id: CampaignId(r.try_get("campaign_id")?),
        status: decode(r.try_get("status")?)?,
        created_at: r.try_get("created_at")?,
        approved_at: r.try_get("approved_at")?,
    })
}

/// One batch.
pub async fn batch(db: &Db, id: BatchId) -> Result<Option<BatchRow>, DbError> {
    let r = sqlx::query(
        "SELECT id, campaign_id, status, created_at, approved_at FROM dm_batches WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(db.pool())
    .await?;
    r.as_ref().map(batch_from_row).transpose()
}

/// Batches, newest first (of one campaign, or all).
pub async fn batches(db: &Db, campaign: Option<CampaignId>) -> Result<Vec<BatchRow>, DbError> {
    let rows = sqlx::query("SELECT id, campaign_id, status, created_at, approved_at FROM dm_batches WHERE ($1 < 0 OR campaign_id = $1) ORDER BY id DESC")
        .bind(campaign.map(|c| c.0).unwrap_or(-1))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(batch_from_row).collect()
}

/// A batch's messages in id order.
pub async fn batch_messages(db: &Db, id: BatchId) -> Result<Vec<MessageRow>, DbError> {
    let rows = sqlx::query(
        "SELECT m.id, m.lead_id, l.profile_id, p.handle, l.score, m.status, m.account_id, m.body, m.platform_message_id, \
         m.attempts, m.error, m.not_before, m.sent_at FROM messages m JOIN leads l ON l.id = m.lead_id \
         JOIN profiles_raw p ON p.id = l.profile_id WHERE m.batch_id = $1 ORDER BY m.id",
    )
    .bind(id.0)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MessageRow {
                id: MessageId(r.try_get("id")?),
                lead_id: r.try_get("lead_id")?,
                profile_id: r.try_get("profile_id")?,
                handle: r.try_get("handle")?,
                score: r.try_get("score")?,
                status: decode(r.try_get("status")?)?,
                account_id: r.try_get::<Option<i64>, _>("account_id")?.map(AccountId),
                body: r.try_get("body")?,
                platform_message_id: r.try_get("platform_message_id")?,
                attempts: r.try_get("attempts")?,
                error: r.try_get("error")?,
                not_before: r.try_get("not_before")?,
                sent_at: r.try_get("sent_at")?,
            })
        })
        .collect()
}

/// One message with its lead's person, read on `conn`.
pub async fn outgoing_on(
    conn: &mut AnyConnection,
    id: MessageId,
) -> Result<Option<Outgoing>, DbError> {
    let r = sqlx::query(
        "SELECT m.id, m.batch_id, m.lead_id, l.campaign_id, m.account_id, m.body, m.status, m.idempotency_key, \
         m.platform_message_id, m.sent_at, l.profile_id, p.platform, p.handle, p.external_id \
         FROM messages m JOIN leads l ON l.id = m.lead_id JOIN profiles_raw p ON p.id = l.profile_id WHERE m.id = $1",
    )
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(Outgoing {
        id: MessageId(r.try_get("id")?),
        batch_id: BatchId(r.try_get("batch_id")?),
        lead_id: r.try_get("lead_id")?,
        campaign_id: CampaignId(r.try_get("campaign_id")?),
        account_id: r.try_get::<Option<i64>, _>("account_id")?.map(AccountId),
        body: r.try_get("body")?,
        status: decode(r.try_get("status")?)?,
        idempotency_key: r.try_get("idempotency_key")?,
        platform_message_id: r.try_get("platform_message_id")?,
        sent_at: r.try_get("sent_at")?,
        profile_id: r.try_get("profile_id")?,
        platform: r.try_get("platform")?,
        handle: r.try_get("handle")?,
        external_id: r.try_get("external_id")?,
    }))
}

/// [`outgoing_on`] on the pool.
pub async fn outgoing(db: &Db, id: MessageId) -> Result<Option<Outgoing>, DbError> {
    let mut conn = db.pool().acquire().await?;
    outgoing_on(&mut conn, id).await
}

/// Moves a message from `from` to `to` with an optional note; false when it was not in `from`
/// (someone else moved it: the caller must not act on it).
pub async fn transition_on(
    conn: &mut AnyConnection,
    id: MessageId,
    from: MessageStatus,
    to: MessageStatus,
    error: Option<&str>,
) -> Result<bool, DbError> {
    let r =
        sqlx::query("UPDATE messages SET status = $1, error = $2 WHERE id = $3 AND status = $4")
            .bind(to.as_str())
            .bind(error.map(str::to_string))
            .bind(id.0)
            .bind(from.as_str())
            .execute(&mut *conn)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets a lead's status (leads are owned by the qualify stage; outreach moves them along).
pub async fn set_lead_status_on(
    conn: &mut AnyConnection,
    lead_id: i64,
    status: &str,
    only_from: &[&str],
    now: Millis,
) -> Result<bool, DbError> {
    let allowed = only_from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // `only_from` holds status names from this crate, never user input.
    let guard = if only_from.is_empty() {
        String::new()
    } else {
        format!(" AND status IN ({allowed})")
    };
    let r = sqlx::query(&format!(
        "UPDATE leads SET status = $1, updated_at = $2 WHERE id = $3{guard}"
    ))
    .bind(status)
    .bind(now)
    .bind(lead_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks a batch `done` once none of its messages can still change.
pub async fn settle_batch_on(conn: &mut AnyConnection, id: BatchId) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE dm_batches SET status = 'done' WHERE id = $1 AND status IN ('approved', 'dispatching') AND NOT EXISTS \
         (SELECT 1 FROM messages WHERE batch_id = $1 AND status IN ('draft', 'approved', 'queued', 'sending'))",
    )
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Counts of a batch's messages by status.
pub async fn status_counts(db: &Db, id: BatchId) -> Result<Vec<(MessageStatus, i64)>, DbError> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM messages WHERE batch_id = $1 GROUP BY status ORDER BY status")
        .bind(id.0)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((decode(r.try_get("status")?)?, r.try_get("n")?)))
        .collect()
}
