//! `accounts`: the sender accounts from `[[accounts]]`, synced at start, with the state the
//! configuration does not hold — the circuit breaker (`paused_until`, `pause_count`), the reply
//! cursor and when the account was first seen (the warm-up ramp starts there).

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{Db, DbError, Dialect};
use crate::engine::clock::Millis;
use crate::engine::pipeline::dispatch::AccountConfig;

/// A sender account's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A stored sender account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRow {
    pub id: AccountId,
    pub platform: String,
    pub handle: String,
    pub token_env: String,
    pub daily_cap: i64,
    pub hourly_cap: i64,
    pub min_gap_secs: i64,
    pub jitter_secs: i64,
    pub quiet_hours: Option<String>,
    pub timezone: String,
    pub warmup_days: i64,
    pub paused_until: Option<Millis>,
    pub pause_count: i64,
    pub reply_cursor: Option<String>,
    /// False once the account left the configuration.
    pub enabled: bool,
    pub created_at: Millis,
}

const COLUMNS: &str = "id, platform, handle, token_env, daily_cap, hourly_cap, min_gap_secs, jitter_secs, quiet_hours, \
    timezone, warmup_days, paused_until, pause_count, reply_cursor, enabled, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<AccountRow, DbError> {
    Ok(AccountRow {
        id: AccountId(r.try_get("id")?),
        platform: r.try_get("platform")?,
        handle: r.try_get("handle")?,
        token_env: r.try_get("token_env")?,
        daily_cap: r.try_get("daily_cap")?,
        hourly_cap: r.try_get("hourly_cap")?,
        min_gap_secs: r.try_get("min_gap_secs")?,
        jitter_secs: r.try_get("jitter_secs")?,
        quiet_hours: r.try_get("quiet_hours")?,
        timezone: r.try_get("timezone")?,
        warmup_days: r.try_get("warmup_days")?,
        paused_until: r.try_get("paused_until")?,
        pause_count: r.try_get("pause_count")?,
        reply_cursor: r.try_get("reply_cursor")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// Brings the table in line with the configuration: inserts new accounts, updates the limits of
/// known ones (keeping their pause state, cursor and creation time) and disables the rest.
pub async fn sync(
    db: &Db,
    accounts: &[AccountConfig],
    now: Millis,
) -> Result<Vec<AccountRow>, DbError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE accounts SET enabled = 0")
        .execute(&mut *tx)
        .await?;
    for a in accounts {
        sqlx::query(
            "INSERT INTO accounts (platform, handle, token_env, daily_cap, hourly_cap, min_gap_secs, jitter_secs, quiet_hours, \
             timezone, warmup_days, pause_count, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 1, $11) \
             ON CONFLICT (platform, handle) DO UPDATE SET token_env = excluded.token_env, daily_cap = excluded.daily_cap, \
             hourly_cap = excluded.hourly_cap, min_gap_secs = excluded.min_gap_secs, jitter_secs = excluded.jitter_secs, \
             quiet_hours = excluded.quiet_hours, timezone = excluded.timezone, warmup_days = excluded.warmup_days, enabled = 1",
        )
        .bind(&a.platform)
        .bind(a.normalized_handle())
        .bind(&a.token_env)
        .bind(i64::from(a.daily_cap))
        .bind(i64::from(a.hourly_cap))
        .bind(i64::from(a.min_gap_secs))
        .bind(i64::from(a.jitter_secs))
        .bind(a.quiet_hours.map(|q| q.to_string()))
        .bind(&a.timezone)
        .bind(i64::from(a.warmup_days))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    list(db).await
}

/// Every account, enabled first, by id.
pub async fn list(db: &Db) -> Result<Vec<AccountRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY enabled DESC, id"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// One account.
pub async fn get(db: &Db, id: AccountId) -> Result<Option<AccountRow>, DbError> {
    let r = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(db.pool())
        .await?;
    r.as_ref().map(from_row).transpose()
}

/// The enabled accounts on `platform` (only those named in `handles`, unless it is empty), read
/// on `conn`. With `lock` inside a PostgreSQL transaction the rows stay locked until it ends, so
/// two workers checking one account's limits take turns (SQLite's write lock already does that).
pub async fn senders_on(
    conn: &mut AnyConnection,
    lock: Option<Dialect>,
    platform: &str,
    handles: &[String],
) -> Result<Vec<AccountRow>, DbError> {
    let lock = if lock == Some(Dialect::Postgres) {
        " FOR UPDATE"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE platform = $1 AND enabled = 1 ORDER BY id{lock}"
    ))
    .bind(platform)
    .fetch_all(&mut *conn)
    .await?;
    let all = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let wanted: Vec<String> = handles.iter().map(|h| normalize(h)).collect();
    Ok(all
        .into_iter()
        .filter(|a| wanted.is_empty() || wanted.contains(&a.handle))
        .collect())
}

/// Start times of the sends that count against an account's limits since `since` (ascending): every
/// message that reached or may have reached the platform.
pub async fn sends_since_on(
    conn: &mut AnyConnection,
    id: AccountId,
    since: Millis,
) -> Result<Vec<Millis>, DbError> {
    let v: Vec<i64> = sqlx::query_scalar(
        "SELECT sent_at FROM messages WHERE account_id = $1 AND sent_at IS NOT NULL AND sent_at > $2 \
         AND (status IN ('sending', 'sent', 'unknown') OR platform_message_id IS NOT NULL) ORDER BY sent_at",
    )
    .bind(id.0)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(v)
}

/// Pauses an account until `until` and counts the pause (the next one lasts longer).
pub async fn pause_on(
    conn: &mut AnyConnection,
    id: AccountId,
    until: Millis,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE accounts SET paused_until = $1, pause_count = pause_count + 1 WHERE id = $2",
    )
    .bind(until)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Closes the circuit breaker after a successful send.
pub async fn clear_pause_on(conn: &mut AnyConnection, id: AccountId) -> Result<(), DbError> {
    sqlx::query("UPDATE accounts SET pause_count = 0, paused_until = NULL WHERE id = $1 AND (pause_count <> 0 OR paused_until IS NOT NULL)")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores where reply polling got to.
pub async fn set_cursor_on(
    conn: &mut AnyConnection,
    id: AccountId,
    cursor: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE accounts SET reply_cursor = $1 WHERE id = $2")
        .bind(cursor.map(str::to_string))
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A handle as stored: without a leading `@`, lower-cased.
pub fn normalize(handle: &str) -> String {
    handle.trim().trim_start_matches('@').to_lowercase()
}
