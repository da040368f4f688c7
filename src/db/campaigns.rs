//! `campaigns` and `campaign_weights`: what each campaign wants (spec, compiled predicate,
//! criteria hash), its status, and the versions of its learned score weights.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{Db, DbError};
use crate::engine::clock::Millis;
use crate::engine::criteria::{CampaignSpec, CompiledPredicate, Param};
use crate::engine::pipeline::score::Weights;

/// A campaign's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub i64);

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a campaign is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Maintained, qualified daily, messages sent.
    Active,
    /// Kept but not worked on.
    Paused,
    /// Done; kept for the record.
    Archived,
}

impl CampaignStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Archived => "archived",
        }
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "archived" => Ok(Self::Archived),
            _ => Err(format!(
                "unknown campaign status `{s}`: expected active, paused or archived"
            )),
        }
    }
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub platform: String,
    pub status: CampaignStatus,
    pub spec: CampaignSpec,
    /// The compiled predicate over `profile_features pf`, placeholders from `$1`.
    pub predicate: CompiledPredicate,
    pub criteria_hash: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const COLUMNS: &str = "id, name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Campaign, DbError> {
    let decode = |e: String| DbError::Sqlx(sqlx::Error::Decode(e.into()));
    let spec: String = r.try_get("spec")?;
    let params: String = r.try_get("compiled_params")?;
    let status: String = r.try_get("status")?;
    Ok(Campaign {
        id: CampaignId(r.try_get("id")?),
        name: r.try_get("name")?,
        platform: r.try_get("platform")?,
        status: status.parse().map_err(decode)?,
        spec: serde_json::from_str(&spec).map_err(|e| decode(format!("campaign spec: {e}")))?,
        predicate: CompiledPredicate {
            sql: r.try_get("compiled_where")?,
            params: serde_json::from_str::<Vec<Param>>(&params)
                .map_err(|e| decode(format!("compiled params: {e}")))?,
            first_param: 1,
        },
        criteria_hash: r.try_get("criteria_hash")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What to store for a new or edited campaign.
pub struct CampaignWrite<'a> {
    pub spec: &'a CampaignSpec,
    pub predicate: &'a CompiledPredicate,
    pub criteria_hash: &'a str,
}

/// Inserts a campaign; returns its id.
pub async fn insert(
    conn: &mut AnyConnection,
    w: &CampaignWrite<'_>,
    now: Millis,
) -> Result<CampaignId, DbError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(&w.spec.name)
    .bind(&w.spec.platform)
    .bind(serde_json::to_string(w.spec).unwrap_or_default())
    .bind(&w.predicate.sql)
    .bind(serde_json::to_string(&w.predicate.params).unwrap_or_default())
    .bind(w.criteria_hash)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(CampaignId(id))
}

/// Replaces a campaign's definition.
pub async fn update(
    conn: &mut AnyConnection,
    id: CampaignId,
    w: &CampaignWrite<'_>,
    now: Millis,
) -> Result<bool, DbError> {
    let r = sqlx::query(
        "UPDATE campaigns SET name = $1, platform = $2, spec = $3, compiled_where = $4, compiled_params = $5, \
         criteria_hash = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&w.spec.name)
    .bind(&w.spec.platform)
    .bind(serde_json::to_string(w.spec).unwrap_or_default())
    .bind(&w.predicate.sql)
    .bind(serde_json::to_string(&w.predicate.params).unwrap_or_default())
    .bind(w.criteria_hash)
    .bind(now)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets a campaign's status.
pub async fn set_status(
    db: &Db,
    id: CampaignId,
    status: CampaignStatus,
    now: Millis,
) -> Result<bool, DbError> {
    let r = sqlx::query("UPDATE campaigns SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(id.0)
        .execute(db.writer())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// One campaign.
pub async fn get(db: &Db, id: CampaignId) -> Result<Option<Campaign>, DbError> {
    get_on(&mut *db.pool().acquire().await?, id).await
}

/// [`get`] on a connection (e.g. inside a write transaction).
pub async fn get_on(
    conn: &mut sqlx::AnyConnection,
    id: CampaignId,
) -> Result<Option<Campaign>, DbError> {
    let r = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    r.as_ref().map(from_row).transpose()
}

/// All campaigns, or only those with `status`.
pub async fn list(db: &Db, status: Option<CampaignStatus>) -> Result<Vec<Campaign>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM campaigns WHERE ($1 IS NULL OR status = $1) ORDER BY id"
    ))
    .bind(status.map(|s| s.as_str().to_string()))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Active campaigns, read on `conn` (inside a caller's transaction).
pub async fn active_on(conn: &mut AnyConnection) -> Result<Vec<Campaign>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM campaigns WHERE status = 'active' ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The latest weights of a campaign, or the prior.
pub async fn weights_on(conn: &mut AnyConnection, id: CampaignId) -> Result<Weights, DbError> {
    let r = sqlx::query(
        "SELECT version, weights, intercept, feature_means, feature_stds FROM campaign_weights \
         WHERE campaign_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = r else {
        return Ok(Weights::prior());
    };
    let parse = |s: String| serde_json::from_str::<Vec<f64>>(&s).unwrap_or_default();
    let w = Weights {
        weights: parse(r.try_get("weights")?),
        intercept: r.try_get("intercept")?,
        means: parse(r.try_get("feature_means")?),
        stds: parse(r.try_get("feature_stds")?),
        version: r.try_get("version")?,
    };
    let prior = Weights::prior();
    Ok(
        if w.weights.len() == prior.weights.len()
            && w.means.len() == prior.means.len()
            && w.stds.len() == prior.stds.len()
        {
            w
        } else {
            prior
        },
    )
}

/// Stores a new weights version; returns it.
pub async fn insert_weights(
    db: &Db,
    id: CampaignId,
    w: &Weights,
    n_samples: i64,
    auc: Option<f64>,
    now: Millis,
) -> Result<i64, DbError> {
    let mut tx = db.begin_write().await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM campaign_weights WHERE campaign_id = $1",
    )
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO campaign_weights (campaign_id, version, weights, intercept, feature_means, feature_stds, n_samples, auc, trained_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.0)
    .bind(version)
    .bind(serde_json::to_string(&w.weights).unwrap_or_default())
    .bind(w.intercept)
    .bind(serde_json::to_string(&w.means).unwrap_or_default())
    .bind(serde_json::to_string(&w.stds).unwrap_or_default())
    .bind(n_samples)
    .bind(auc)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(version)
}
