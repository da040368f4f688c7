//! `do_not_contact`: people who must never be messaged — added by hand, imported, by an opt-out
//! reply, or left behind as a hash by an erasure (so the person stays protected without the
//! database keeping their handle).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::{Db, DbError};
use crate::engine::clock::Millis;

/// One do-not-contact entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncEntry {
    pub id: i64,
    pub platform: String,
    /// The handle (lower-case, no `@`), or `sha256:<hex>` for an erased person.
    pub handle: String,
    pub external_id: Option<String>,
    pub reason: Option<String>,
    pub added_at: Millis,
}

/// A handle as stored: without a leading `@`, lower-cased.
pub fn normalize(handle: &str) -> String {
    super::accounts::normalize(handle)
}

/// The key an erased person is kept under: `sha256:` + hex of `platform:handle`, lower-cased.
pub fn erased_key(platform: &str, handle: &str) -> String {
    let text = format!("{}:{}", platform.trim(), normalize(handle)).to_lowercase();
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// Adds (or updates the reason of) an entry; true when it was new.
pub async fn add_on(
    conn: &mut AnyConnection,
    platform: &str,
    handle: &str,
    external_id: Option<&str>,
    reason: Option<&str>,
    now: Millis,
) -> Result<bool, DbError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO do_not_contact (platform, handle, external_id, reason, added_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (platform, handle) DO NOTHING RETURNING id",
    )
    .bind(platform)
    .bind(handle)
    .bind(external_id.map(str::to_string))
    .bind(reason.map(str::to_string))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(inserted.is_some())
}

/// Removes the entry for `handle` (plain or erased form); true when one was removed.
pub async fn remove(db: &Db, platform: &str, handle: &str) -> Result<bool, DbError> {
    let r = sqlx::query(
        "DELETE FROM do_not_contact WHERE platform = $1 AND (handle = $2 OR handle = $3)",
    )
    .bind(platform)
    .bind(normalize(handle))
    .bind(erased_key(platform, handle))
    .execute(db.writer())
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Every entry, newest first.
pub async fn list(db: &Db) -> Result<Vec<DncEntry>, DbError> {
    let rows = sqlx::query("SELECT id, platform, handle, external_id, reason, added_at FROM do_not_contact ORDER BY added_at DESC, id DESC")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DncEntry {
                id: r.try_get("id")?,
                platform: r.try_get("platform")?,
                handle: r.try_get("handle")?,
                external_id: r.try_get("external_id")?,
                reason: r.try_get("reason")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect()
}

/// Whether a person is on the list: by handle, by the hash an erasure left, or by platform id.
pub async fn is_blocked_on(
    conn: &mut AnyConnection,
    platform: &str,
    handle: &str,
    external_id: Option<&str>,
) -> Result<bool, DbError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM do_not_contact WHERE platform = $1 AND (handle = $2 OR handle = $3 \
         OR (external_id IS NOT NULL AND external_id = $4))",
    )
    .bind(platform)
    .bind(normalize(handle))
    .bind(erased_key(platform, handle))
    .bind(external_id.unwrap_or("").to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// [`is_blocked_on`] on the pool.
pub async fn is_blocked(
    db: &Db,
    platform: &str,
    handle: &str,
    external_id: Option<&str>,
) -> Result<bool, DbError> {
    let mut conn = db.pool().acquire().await?;
    is_blocked_on(&mut conn, platform, handle, external_id).await
}
