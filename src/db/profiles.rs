//! `profiles_raw` and `profile_features`: what was scraped, its content hash, and the typed features
//! campaigns filter on.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{Db, DbError};
use crate::engine::clock::Millis;
use crate::engine::pipeline::features::{Features, FEATURE_VERSION};

/// A profile's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProfileId(pub i64);

/// What we know of a stored profile's last version.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub id: ProfileId,
    pub content_hash: String,
}

/// The stored profile with this platform id.
pub async fn find(db: &Db, platform: &str, external_id: &str) -> Result<Option<Known>, DbError> {
    let row = sqlx::query(
        "SELECT id, content_hash FROM profiles_raw WHERE platform = $1 AND external_id = $2",
    )
    .bind(platform)
    .bind(external_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(match row {
        Some(r) => Some(Known {
            id: ProfileId(r.try_get("id")?),
            content_hash: r.try_get("content_hash")?,
        }),
        None => None,
    })
}

/// The stored profiles with these platform ids, by platform id (one query for a batch, where
/// [`find`] would take one per profile).
pub async fn find_many(
    db: &Db,
    platform: &str,
    external_ids: &[&str],
) -> Result<std::collections::HashMap<String, Known>, DbError> {
    let mut out = std::collections::HashMap::with_capacity(external_ids.len());
    if external_ids.is_empty() {
        return Ok(out);
    }
    let external_ids = distinct(external_ids);
    let sql = by_external_ids(
        db.dialect(),
        "id, external_id, content_hash",
        external_ids.len(),
        false,
    );
    let mut q = sqlx::query(&sql).bind(platform);
    for id in external_ids {
        q = q.bind(id);
    }
    for r in q.fetch_all(db.pool()).await? {
        out.insert(
            r.try_get("external_id")?,
            Known {
                id: ProfileId(r.try_get("id")?),
                content_hash: r.try_get("content_hash")?,
            },
        );
    }
    Ok(out)
}

/// What a discovery listing needs to know of a stored profile to decide whether to scrape it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingState {
    pub id: ProfileId,
    pub external_id: String,
    pub last_seen: Millis,
    /// The listing fingerprint at the last full scrape (None: scraped before fingerprints).
    pub account_hash: Option<String>,
    /// When the last full scrape ran (None: before this was recorded).
    pub scraped_at: Option<Millis>,
}

/// `(…), (…), …`: `rows` rows of `cols` placeholders each, for a multi-row VALUES whose values
/// are bound row by row, each exactly once. PostgreSQL gets `$1, $2, …`; SQLite gets anonymous
/// `?`, numbered in order. SQLite keeps `$N` names in a list that it searches once per name when
/// it parses and that sqlx searches once per value when it binds, which is quadratic in a
/// statement of 80 rows × 19 columns (≈ 2 % of an ingest's CPU; BENCHMARKS.md §2).
fn value_rows(dialect: super::Dialect, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * (cols * 6 + 4));
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            match dialect {
                super::Dialect::Sqlite => out.push('?'),
                super::Dialect::Postgres => {
                    out.push('$');
                    out.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        out.push(')');
    }
    out
}

/// `$first, $first+1, …` for `n` bound values (placeholders only; the values are bound).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ids` sorted, each once (a lookup by [`by_external_ids`] returns a row per id it is given).
fn distinct<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// A query for the columns `cols` (a fixed list, never user input) of the profiles of platform
/// `$1` with the `n` platform ids bound as `$2…`; with `lock`, it also locks their rows
/// (PostgreSQL), in the order the ids are bound.
///
/// On PostgreSQL each id is its own probe of the `(platform, external_id)` unique index: a VALUES
/// list joined LATERAL to a lookup that `LIMIT 1` keeps from being flattened into a join. The
/// plain `platform = $1 AND external_id IN (…)` depends on the table's statistics: before the
/// first ANALYZE (a new database's first minutes of ingest) PostgreSQL takes `platform = $1` to
/// be selective, scans every row of the platform through `profiles_raw_handle` and compares each
/// with all the ids; a cached generic plan keeps doing so (30 ms per listing page at 18,000
/// profiles: re-crawl 2,200 profiles/s instead of 15,000; BENCHMARKS.md §2, "2026-12-06"). SQLite
/// plans the unique index either way.
pub fn by_external_ids(dialect: super::Dialect, cols: &str, n: usize, lock: bool) -> String {
    match dialect {
        super::Dialect::Postgres => {
            let ids = (2..n + 2)
                .map(|i| format!("(${i})"))
                .collect::<Vec<_>>()
                .join(", ");
            let lock = if lock { " FOR UPDATE" } else { "" };
            format!(
                "SELECT p.* FROM (VALUES {ids}) AS x(external_id) CROSS JOIN LATERAL \
                 (SELECT {cols} FROM profiles_raw \
                  WHERE platform = $1 AND external_id = x.external_id LIMIT 1{lock}) p"
            )
        }
        super::Dialect::Sqlite => format!(
            "SELECT {cols} FROM profiles_raw WHERE platform = $1 AND external_id IN ({})",
            placeholders(2, n)
        ),
    }
}

/// The stored state of the profiles with these platform ids (one query for a listing page).
pub async fn listing_states(
    db: &Db,
    platform: &str,
    external_ids: &[&str],
) -> Result<Vec<ListingState>, DbError> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let external_ids = distinct(external_ids);
    let sql = by_external_ids(
        db.dialect(),
        "id, external_id, last_seen, account_hash, scraped_at",
        external_ids.len(),
        false,
    );
    let mut q = sqlx::query(&sql).bind(platform);
    for id in external_ids {
        q = q.bind(id);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(ListingState {
                id: ProfileId(r.try_get("id")?),
                external_id: r.try_get("external_id")?,
                last_seen: r.try_get("last_seen")?,
                account_hash: r.try_get("account_hash")?,
                scraped_at: r.try_get("scraped_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// Profiles noted for the search index at which a scrape writes them in (SQLite): one FTS5 segment
/// per this many profiles rather than one per scrape transaction.
pub const SEARCH_BACKLOG: i64 = 2_000;

/// Moves the profiles noted in `search_pending` into the `profile_search` index (SQLite; see
/// migration 0009), when at least `min_backlog` are waiting; returns how many notes it cleared.
/// Their old entries are replaced and the notes cleared in one write transaction; until then a
/// search matches the noted profiles on their current handle and text (`browse`). A no-op on
/// PostgreSQL, whose trigram indexes are part of its tables.
pub async fn index_search(db: &Db, min_backlog: i64) -> Result<u64, DbError> {
    if db.dialect() != super::Dialect::Sqlite {
        return Ok(0);
    }
    let min = min_backlog.max(1);
    // Read first, on a reader: most calls find too little waiting and take no write lock.
    if search_backlog(&mut *db.pool().acquire().await?, min).await? < min {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    // Again under the write lock: batches finishing together each saw the backlog, and only the
    // first should write it (each later one would add a small segment).
    if search_backlog(&mut tx, min).await? < min {
        return Ok(0);
    }
    let cleared = index_search_on(&mut tx).await?;
    tx.commit().await?;
    Ok(cleared)
}

/// How many profiles wait for the search index, counting no further than `limit`.
async fn search_backlog(conn: &mut AnyConnection, limit: i64) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM search_pending LIMIT $1)")
            .bind(limit)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// [`index_search`]'s writes, in the caller's transaction.
async fn index_search_on(conn: &mut AnyConnection) -> Result<u64, DbError> {
    sqlx::query(
        "DELETE FROM profile_search WHERE rowid IN (SELECT profile_id FROM search_pending)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO profile_search (rowid, handle, text) \
         SELECT p.id, p.handle, f.text FROM search_pending s \
         JOIN profiles_raw p ON p.id = s.profile_id \
         JOIN profile_features f ON f.profile_id = s.profile_id",
    )
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query("DELETE FROM search_pending")
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Records that these profiles were seen unchanged in a listing (one statement for a page).
pub async fn touch_many(db: &Db, ids: &[ProfileId], now: Millis) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE profiles_raw SET last_seen = $1, fetch_error = NULL WHERE id IN ({})",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(now);
    for id in ids {
        q = q.bind(id.0);
    }
    q.execute(db.writer()).await?;
    Ok(())
}

/// Records that a full scrape found a profile unchanged: it was seen, scraped, and its listing
/// fingerprint is `account_hash`.
pub async fn touch(
    conn: &mut AnyConnection,
    id: ProfileId,
    account_hash: &str,
    now: Millis,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE profiles_raw SET last_seen = $1, scraped_at = $1, account_hash = $2, fetch_error = NULL WHERE id = $3",
    )
    .bind(now)
    .bind(account_hash)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that fetching a known profile failed.
pub async fn record_fetch_error(
    db: &Db,
    platform: &str,
    handle: &str,
    error: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE profiles_raw SET fetch_error = $1 WHERE platform = $2 AND handle = $3")
        .bind(error)
        .bind(platform)
        .bind(handle)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// A new or changed profile version.
pub struct NewVersion<'a> {
    pub platform: &'a str,
    pub external_id: &'a str,
    pub handle: &'a str,
    pub payload: &'a str,
    pub content_hash: &'a str,
    /// The listing fingerprint of the account as scraped.
    pub account_hash: &'a str,
}

/// Inserts or updates the raw profile; returns its id.
pub async fn upsert_raw(
    conn: &mut AnyConnection,
    v: &NewVersion<'_>,
    now: Millis,
) -> Result<ProfileId, DbError> {
    Ok(upsert_raw_many(conn, &[(v, now)]).await?[0])
}

/// Inserts or updates raw profiles in one statement, each with its own time; returns their ids in
/// the order given. The versions must name distinct (platform, external_id) pairs (PostgreSQL
/// refuses to update one row twice in a statement).
pub async fn upsert_raw_many(
    conn: &mut AnyConnection,
    versions: &[(&NewVersion<'_>, Millis)],
) -> Result<Vec<ProfileId>, DbError> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed, \
         account_hash, scraped_at) VALUES {} \
         ON CONFLICT (platform, external_id) DO UPDATE SET handle = excluded.handle, payload = excluded.payload, \
         content_hash = excluded.content_hash, last_seen = excluded.last_seen, last_changed = excluded.last_changed, \
         account_hash = excluded.account_hash, scraped_at = excluded.scraped_at, fetch_error = NULL \
         RETURNING id, platform, external_id",
        value_rows(super::Dialect::of(conn), versions.len(), 10)
    );
    let mut q = sqlx::query(&sql);
    for (v, at) in versions {
        q = q
            .bind(v.platform)
            .bind(v.external_id)
            .bind(v.handle)
            .bind(v.payload)
            .bind(v.content_hash)
            .bind(*at)
            .bind(*at)
            .bind(*at)
            .bind(v.account_hash)
            .bind(*at);
    }
    // RETURNING promises no order: match the rows back by their key.
    let returned: std::collections::HashMap<(String, String), i64> = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok::<_, sqlx::Error>((
                (r.try_get("platform")?, r.try_get("external_id")?),
                r.try_get("id")?,
            ))
        })
        .collect::<Result<_, _>>()?;
    versions
        .iter()
        .map(|(v, _)| {
            returned
                .get(&(v.platform.to_string(), v.external_id.to_string()))
                .map(|id| ProfileId(*id))
                .ok_or_else(|| {
                    DbError::Sqlx(sqlx::Error::Protocol(format!(
                        "upsert of {}:{} returned no row",
                        v.platform, v.external_id
                    )))
                })
        })
        .collect()
}

/// Inserts or replaces a profile's features.
pub async fn upsert_features(
    conn: &mut AnyConnection,
    id: ProfileId,
    f: &Features,
    now: Millis,
) -> Result<(), DbError> {
    upsert_features_many(conn, &[(id, f, now)]).await
}

/// Inserts or replaces the features of several (distinct) profiles in one statement.
pub async fn upsert_features_many(
    conn: &mut AnyConnection,
    rows: &[(ProfileId, &Features, Millis)],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO profile_features (profile_id, feature_version, followers, log_followers, following, posts_count, engagement_rate, \
         avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, \
         text, image_keys, updated_at) VALUES {} \
         ON CONFLICT (profile_id) DO UPDATE SET feature_version = excluded.feature_version, followers = excluded.followers, \
         log_followers = excluded.log_followers, \
         following = excluded.following, posts_count = excluded.posts_count, engagement_rate = excluded.engagement_rate, \
         avg_likes = excluded.avg_likes, avg_comments = excluded.avg_comments, posts_per_week = excluded.posts_per_week, \
         last_post_at = excluded.last_post_at, account_age_days = excluded.account_age_days, language = excluded.language, \
         is_bot = excluded.is_bot, has_link = excluded.has_link, has_email = excluded.has_email, text = excluded.text, \
         image_keys = excluded.image_keys, updated_at = excluded.updated_at",
        value_rows(super::Dialect::of(conn), rows.len(), 19)
    );
    let mut q = sqlx::query(&sql);
    for (id, f, now) in rows {
        q = q
            .bind(id.0)
            .bind(FEATURE_VERSION)
            .bind(f.followers)
            .bind((f.followers.max(0) as f64).ln_1p())
            .bind(f.following)
            .bind(f.posts_count)
            .bind(f.engagement_rate)
            .bind(f.avg_likes)
            .bind(f.avg_comments)
            .bind(f.posts_per_week)
            .bind(f.last_post_at)
            .bind(f.account_age_days)
            .bind(f.language.clone())
            .bind(f.is_bot as i64)
            .bind(f.has_link as i64)
            .bind(f.has_email as i64)
            .bind(f.text.as_str())
            .bind(serde_json::to_string(&f.image_keys).unwrap_or_else(|_| "[]".into()))
            .bind(*now);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// A profile as listed by `omni profiles`.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileRow {
    pub id: ProfileId,
    pub platform: String,
    pub handle: String,
    pub external_id: String,
    pub content_hash: String,
    pub first_seen: Millis,
    pub last_seen: Millis,
    pub last_changed: Millis,
    pub fetch_error: Option<String>,
    pub followers: Option<i64>,
    pub language: Option<String>,
    pub posts_per_week: Option<f64>,
    pub engagement_rate: Option<f64>,
}

const ROW_SQL: &str =
    "SELECT p.id, p.platform, p.handle, p.external_id, p.content_hash, p.first_seen, p.last_seen, \
    p.last_changed, p.fetch_error, f.followers, f.language, f.posts_per_week, f.engagement_rate \
    FROM profiles_raw p LEFT JOIN profile_features f ON f.profile_id = p.id";

fn row(r: &sqlx::any::AnyRow) -> Result<ProfileRow, sqlx::Error> {
    Ok(ProfileRow {
        id: ProfileId(r.try_get("id")?),
        platform: r.try_get("platform")?,
        handle: r.try_get("handle")?,
        external_id: r.try_get("external_id")?,
        content_hash: r.try_get("content_hash")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        last_changed: r.try_get("last_changed")?,
        fetch_error: r.try_get("fetch_error")?,
        followers: r.try_get("followers")?,
        language: r.try_get("language")?,
        posts_per_week: r.try_get("posts_per_week")?,
        engagement_rate: r.try_get("engagement_rate")?,
    })
}

/// The most recently changed profiles.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<ProfileRow>, DbError> {
    let rows = sqlx::query(&format!(
        "{ROW_SQL} ORDER BY p.last_changed DESC, p.id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
}

/// A profile by handle (any platform when `platform` is None).
pub async fn by_handle(db: &Db, handle: &str) -> Result<Option<ProfileRow>, DbError> {
    let handle = handle.trim_start_matches('@');
    let r = sqlx::query(&format!(
        "{ROW_SQL} WHERE p.handle = $1 ORDER BY p.id LIMIT 1"
    ))
    .bind(handle)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(row).transpose()?)
}

/// The stored payload and image keys of a profile.
pub async fn payload(db: &Db, id: ProfileId) -> Result<Option<(String, Vec<String>)>, DbError> {
    let r = sqlx::query(
        "SELECT p.payload, f.image_keys FROM profiles_raw p LEFT JOIN profile_features f ON f.profile_id = p.id WHERE p.id = $1",
    )
    .bind(id.0)
    .fetch_optional(db.pool())
    .await?;
    Ok(match r {
        Some(r) => {
            let keys: Option<String> = r.try_get("image_keys")?;
            let keys = keys
                .and_then(|k| serde_json::from_str(&k).ok())
                .unwrap_or_default();
            Some((r.try_get("payload")?, keys))
        }
        None => None,
    })
}
