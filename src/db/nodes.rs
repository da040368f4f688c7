//! The `engine_nodes` table: a heartbeat row per running engine, so a console can attach to a live
//! daemon instead of starting a second engine, and `--wait` knows whether someone will run its jobs.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError};
use crate::engine::clock::Millis;

/// A running engine as recorded in the database.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    pub id: String,
    pub mode: String,
    pub host: String,
    pub pid: i64,
    pub started_at: Millis,
    pub seen_at: Millis,
}

/// Records (or refreshes) a node's heartbeat.
pub async fn beat(db: &Db, node: &Node) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO engine_nodes (id, mode, host, pid, started_at, seen_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
    )
    .bind(&node.id)
    .bind(&node.mode)
    .bind(&node.host)
    .bind(node.pid)
    .bind(node.started_at)
    .bind(node.seen_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Removes a node's row (graceful stop).
pub async fn remove(db: &Db, id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM engine_nodes WHERE id = $1")
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Nodes seen at or after `fresh_since` whose mode runs workers.
pub async fn live(db: &Db, fresh_since: Millis) -> Result<Vec<Node>, DbError> {
    let rows = sqlx::query(
        "SELECT id, mode, host, pid, started_at, seen_at FROM engine_nodes WHERE seen_at >= $1 ORDER BY started_at",
    )
    .bind(fresh_since)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Node {
                id: r.try_get("id")?,
                mode: r.try_get("mode")?,
                host: r.try_get("host")?,
                pid: r.try_get("pid")?,
                started_at: r.try_get("started_at")?,
                seen_at: r.try_get("seen_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(DbError::from)
}
