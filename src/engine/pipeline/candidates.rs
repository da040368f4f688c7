//! Candidate maintenance: which profiles match which active campaign, kept up to date incrementally
//! (one changed profile across every active campaign) and in full (one campaign, set-based SQL).

use sqlx::AnyConnection;

use crate::db::profiles::ProfileId;
use crate::db::DbError;
use crate::engine::clock::Millis;
use crate::engine::service::Ctx;

/// Re-evaluates one changed profile against every active campaign, inside the caller's transaction.
pub async fn on_profile_changed(conn: &mut AnyConnection, svc: &Ctx, id: ProfileId, now: Millis) -> Result<(), DbError> {
    let _ = (conn, svc, id, now);
    Ok(())
}
