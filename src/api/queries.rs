//! Read-only SELECTs behind the API's list and detail endpoints (campaigns, leads, batches,
//! do-not-contact, accounts, health and metrics), on both dialects.

use std::collections::BTreeMap;
use std::str::FromStr;

use base64::Engine as _;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::types::{
    Account, Batch, Campaign, CampaignState, DncEntry, Feedback, Lead, LeadDetail, LeadStatus,
    Message, ProfileSummary, Verdict,
};
use crate::db::{bind_all, Db, SqlValue};

type Result<T> = std::result::Result<T, sqlx::Error>;

fn parse<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|e: String| sqlx::Error::Decode(e.into()))
}

/// Stored JSON text as a value (text that is not JSON stays a string).
fn json_text(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// A position in a list ordered by (key DESC, id DESC), opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key of the last item seen.
    pub key: i64,
    /// The id of the last item seen.
    pub id: i64,
}

impl Cursor {
    /// The opaque token.
    pub fn encode(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}.{}", self.key, self.id))
    }

    /// Reads a token made by [`Cursor::encode`].
    pub fn decode(token: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (key, id) = text.split_once('.')?;
        Some(Cursor {
            key: key.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

const CAMPAIGN_COLUMNS: &str =
    "id, name, platform, status, spec, criteria_hash, created_at, updated_at";

fn campaign_from_row(row: &AnyRow) -> Result<Campaign> {
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        platform: row.try_get("platform")?,
        status: parse(&row.try_get::<String, _>("status")?)?,
        spec: json_text(row.try_get("spec")?),
        criteria_hash: row.try_get("criteria_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Campaigns, newest first, optionally in one state.
pub async fn campaigns(db: &Db, status: Option<CampaignState>) -> Result<Vec<Campaign>> {
    let (filter, args) = match status {
        Some(s) => (
            " WHERE status = $1",
            vec![SqlValue::Text(s.as_str().into())],
        ),
        None => ("", vec![]),
    };
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns{filter} ORDER BY id DESC");
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(campaign_from_row).collect()
}

/// One campaign.
pub async fn campaign(db: &Db, id: i64) -> Result<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(db.pool()).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

const LEAD_SELECT: &str = "SELECT l.id, l.campaign_id, l.profile_id, p.platform, p.handle, l.score, l.status, \
    l.created_at, l.updated_at, l.llm_score_id FROM leads l JOIN profiles_raw p ON p.id = l.profile_id";

fn lead_from_row(row: &AnyRow) -> Result<Lead> {
    Ok(Lead {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        profile_id: row.try_get("profile_id")?,
        platform: row.try_get("platform")?,
        handle: row.try_get("handle")?,
        score: row.try_get("score")?,
        status: parse::<LeadStatus>(&row.try_get::<String, _>("status")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A page of a campaign's leads, best score first, after `cursor`; also the cursor of the next
/// page when there is one.
pub async fn leads_page(
    db: &Db,
    campaign_id: i64,
    status: Option<LeadStatus>,
    limit: i64,
    after: Option<Cursor>,
) -> Result<(Vec<Lead>, Option<Cursor>)> {
    let mut sql = format!("{LEAD_SELECT} WHERE l.campaign_id = $1");
    let mut args = vec![SqlValue::Int(campaign_id)];
    if let Some(s) = status {
        args.push(SqlValue::Text(s.as_str().into()));
        sql.push_str(&format!(" AND l.status = ${}", args.len()));
    }
    if let Some(c) = after {
        args.push(SqlValue::Int(c.key));
        args.push(SqlValue::Int(c.id));
        let (k, i) = (args.len() - 1, args.len());
        sql.push_str(&format!(
            " AND (l.score < ${k} OR (l.score = ${k} AND l.id < ${i}))"
        ));
    }
    // One extra row tells whether another page exists.
    args.push(SqlValue::Int(limit + 1));
    sql.push_str(&format!(
        " ORDER BY l.score DESC, l.id DESC LIMIT ${}",
        args.len()
    ));
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(db.pool())
        .await?;
    let mut leads = rows.iter().map(lead_from_row).collect::<Result<Vec<_>>>()?;
    let next = if leads.len() as i64 > limit {
        leads.truncate(limit as usize);
        leads.last().map(|l| Cursor {
            key: l.score,
            id: l.id,
        })
    } else {
        None
    };
    Ok((leads, next))
}

const MESSAGE_COLUMNS: &str =
    "id, lead_id, batch_id, account_id, body, status, platform_message_id, attempts, \
    error, not_before, sent_at";

fn message_from_row(row: &AnyRow) -> Result<Message> {
    Ok(Message {
        id: row.try_get("id")?,
        lead_id: row.try_get("lead_id")?,
        batch_id: row.try_get("batch_id")?,
        account_id: row.try_get("account_id")?,
        body: row.try_get("body")?,
        status: parse(&row.try_get::<String, _>("status")?)?,
        platform_message_id: row.try_get("platform_message_id")?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        not_before: row.try_get("not_before")?,
        sent_at: row.try_get("sent_at")?,
    })
}

/// One lead with its profile, verdict, messages and feedback.
pub async fn lead_detail(db: &Db, id: i64) -> Result<Option<LeadDetail>> {
    let Some(row) = sqlx::query(&format!("{LEAD_SELECT} WHERE l.id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let lead = lead_from_row(&row)?;
    let llm_score_id: Option<i64> = row.try_get("llm_score_id")?;
    let profile = sqlx::query(
        "SELECT followers, following, posts_count, engagement_rate, posts_per_week, last_post_at, language, is_bot \
         FROM profile_features WHERE profile_id = $1",
    )
    .bind(lead.profile_id)
    .fetch_optional(db.pool())
    .await?
    .map(|r| -> Result<ProfileSummary> {
        Ok(ProfileSummary {
            followers: r.try_get("followers")?,
            following: r.try_get("following")?,
            posts_count: r.try_get("posts_count")?,
            engagement_rate: r.try_get("engagement_rate")?,
            posts_per_week: r.try_get("posts_per_week")?,
            last_post_at: r.try_get("last_post_at")?,
            language: r.try_get("language")?,
            is_bot: r.try_get::<i64, _>("is_bot")? != 0,
        })
    })
    .transpose()?;
    let verdict = match llm_score_id {
        None => None,
        Some(sid) => sqlx::query(
            "SELECT model, score, qualified, reasons, red_flags, opener, created_at FROM llm_scores WHERE id = $1",
        )
        .bind(sid)
        .fetch_optional(db.pool())
        .await?
        .map(|r| -> Result<Verdict> {
            Ok(Verdict {
                model: r.try_get("model")?,
                score: r.try_get("score")?,
                qualified: r.try_get::<i64, _>("qualified")? != 0,
                reasons: json_text(r.try_get("reasons")?),
                red_flags: json_text(r.try_get("red_flags")?),
                opener: r.try_get("opener")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()?,
    };
    let messages = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE lead_id = $1 ORDER BY id"
    ))
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(message_from_row)
    .collect::<Result<Vec<_>>>()?;
    let feedback = sqlx::query(
        "SELECT id, kind, body, occurred_at FROM feedback_events WHERE lead_id = $1 ORDER BY occurred_at, id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| -> Result<Feedback> {
        Ok(Feedback {
            id: r.try_get("id")?,
            kind: r.try_get("kind")?,
            body: r.try_get("body")?,
            occurred_at: r.try_get("occurred_at")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(Some(LeadDetail {
        lead,
        profile,
        verdict,
        messages,
        feedback,
    }))
}

/// One DM batch with its messages.
pub async fn batch(db: &Db, id: i64) -> Result<Option<Batch>> {
    let Some(row) = sqlx::query(
        "SELECT id, campaign_id, status, created_at, approved_at FROM dm_batches WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let messages = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE batch_id = $1 ORDER BY id"
    ))
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(message_from_row)
    .collect::<Result<Vec<Message>>>()?;
    let mut counts = BTreeMap::new();
    for m in &messages {
        *counts.entry(m.status.as_str().to_string()).or_insert(0) += 1;
    }
    Ok(Some(Batch {
        id: row.try_get("id")?,
        campaign_id: row.try_get("campaign_id")?,
        status: parse(&row.try_get::<String, _>("status")?)?,
        created_at: row.try_get("created_at")?,
        approved_at: row.try_get("approved_at")?,
        counts,
        messages,
    }))
}

/// A page of do-not-contact entries in insertion order, after the entry with id `after`.
pub async fn dnc_page(
    db: &Db,
    platform: Option<&str>,
    limit: i64,
    after: Option<i64>,
) -> Result<(Vec<DncEntry>, Option<i64>)> {
    let mut sql = "SELECT id, platform, handle, external_id, reason, added_at FROM do_not_contact WHERE id > $1".to_string();
    let mut args = vec![SqlValue::Int(after.unwrap_or(0))];
    if let Some(p) = platform {
        args.push(SqlValue::Text(p.to_string()));
        sql.push_str(&format!(" AND platform = ${}", args.len()));
    }
    args.push(SqlValue::Int(limit + 1));
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", args.len()));
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(db.pool())
        .await?;
    let mut items = rows
        .iter()
        .map(|r| -> Result<DncEntry> {
            Ok(DncEntry {
                id: r.try_get("id")?,
                platform: r.try_get("platform")?,
                handle: r.try_get("handle")?,
                external_id: r.try_get("external_id")?,
                reason: r.try_get("reason")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok((items, next))
}

/// The sender accounts with their sends in the last hour and day before `now`.
pub async fn accounts(db: &Db, now: i64) -> Result<Vec<Account>> {
    let rows = sqlx::query(
        "SELECT a.id, a.platform, a.handle, a.daily_cap, a.hourly_cap, a.min_gap_secs, a.jitter_secs, a.quiet_hours, \
         a.timezone, a.warmup_days, a.paused_until, a.created_at, \
         (SELECT COUNT(*) FROM messages m WHERE m.account_id = a.id AND m.status = 'sent' AND m.sent_at >= $1) \
           AS sent_last_hour, \
         (SELECT COUNT(*) FROM messages m WHERE m.account_id = a.id AND m.status = 'sent' AND m.sent_at >= $2) \
           AS sent_last_day \
         FROM accounts a ORDER BY a.platform, a.handle",
    )
    .bind(now - 3_600_000)
    .bind(now - 86_400_000)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Account {
                id: r.try_get("id")?,
                platform: r.try_get("platform")?,
                handle: r.try_get("handle")?,
                daily_cap: r.try_get("daily_cap")?,
                hourly_cap: r.try_get("hourly_cap")?,
                min_gap_secs: r.try_get("min_gap_secs")?,
                jitter_secs: r.try_get("jitter_secs")?,
                quiet_hours: r.try_get("quiet_hours")?,
                timezone: r.try_get("timezone")?,
                warmup_days: r.try_get("warmup_days")?,
                paused_until: r.try_get("paused_until")?,
                sent_last_hour: r.try_get("sent_last_hour")?,
                sent_last_day: r.try_get("sent_last_day")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The oldest ready job's `run_at` (None when no job is ready) and how many jobs are ready at `now`.
pub async fn ready_jobs(db: &Db, now: i64) -> Result<(Option<i64>, i64)> {
    let row = sqlx::query(
        "SELECT MIN(run_at) AS oldest, COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'failed') AND run_at <= $1",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("oldest")?, row.try_get("n")?))
}

/// LLM usage per model: (model, calls, qualified, prompt tokens, completion tokens, latency ms).
pub async fn llm_usage(db: &Db) -> Result<Vec<(String, i64, i64, i64, i64, i64)>> {
    // CAST keeps SUM an integer on PostgreSQL (where SUM(BIGINT) is NUMERIC).
    let rows = sqlx::query(
        "SELECT model, COUNT(*) AS calls, \
         CAST(COALESCE(SUM(qualified), 0) AS BIGINT) AS qualified, \
         CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
         CAST(COALESCE(SUM(latency_ms), 0) AS BIGINT) AS latency_ms \
         FROM llm_scores GROUP BY model ORDER BY model",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("model")?,
                r.try_get("calls")?,
                r.try_get("qualified")?,
                r.try_get("prompt_tokens")?,
                r.try_get("completion_tokens")?,
                r.try_get("latency_ms")?,
            ))
        })
        .collect()
}

/// Messages per sender account and status: (platform, handle, status, count).
pub async fn messages_by_account(db: &Db) -> Result<Vec<(String, String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT a.platform, a.handle, m.status, COUNT(*) AS n FROM messages m JOIN accounts a ON a.id = m.account_id \
         GROUP BY a.platform, a.handle, m.status ORDER BY a.platform, a.handle, m.status",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("platform")?,
                r.try_get("handle")?,
                r.try_get("status")?,
                r.try_get("n")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { key: 87, id: 1234 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
