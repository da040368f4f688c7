//! `feedback_events`: what people did after we messaged them (replied, opted out), one row per
//! platform event, so polling the same notifications twice stores nothing new.

use std::fmt;

use serde::Serialize;
use sqlx::AnyConnection;

use super::messages::MessageId;
use super::DbError;
use crate::engine::clock::Millis;

/// What a feedback event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// A reply.
    Replied,
    /// A reply that is clearly interested.
    Positive,
    /// A reply that is clearly not interested (but did not ask to stop).
    Negative,
    /// A reply asking not to be contacted again.
    OptedOut,
    /// The message could not be delivered.
    Bounced,
}

impl FeedbackKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Replied => "replied",
            FeedbackKind::Positive => "positive",
            FeedbackKind::Negative => "negative",
            FeedbackKind::OptedOut => "opted_out",
            FeedbackKind::Bounced => "bounced",
        }
    }
}

impl fmt::Display for FeedbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A feedback event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Globally unique: `platform:account:notification id`.
    pub platform_event_id: &'a str,
    pub message_id: Option<MessageId>,
    pub lead_id: Option<i64>,
    pub kind: FeedbackKind,
    pub body: &'a str,
    pub occurred_at: Millis,
}

/// Stores an event; false when its platform event id was already stored.
pub async fn insert_on(
    conn: &mut AnyConnection,
    e: &NewEvent<'_>,
    now: Millis,
) -> Result<bool, DbError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO feedback_events (platform_event_id, message_id, lead_id, kind, body, occurred_at, ingested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (platform_event_id) DO NOTHING RETURNING id",
    )
    .bind(e.platform_event_id)
    .bind(e.message_id.map(|m| m.0))
    .bind(e.lead_id)
    .bind(e.kind.as_str())
    .bind(e.body)
    .bind(e.occurred_at)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.is_some())
}
