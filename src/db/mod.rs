//! Database access for both dialects: the pool, migrations, bound values, and one module per aggregate.
//!
//! Omni speaks to SQLite and PostgreSQL through sqlx's `Any` driver. Every statement uses `$N`
//! placeholders, which both dialects accept, so one SQL text serves both; where the dialects differ
//! (claiming jobs, upserts) the module asks [`Db::dialect`].

pub mod accounts;
pub mod browse;
pub mod campaigns;
pub mod dnc;
pub mod feedback;
pub mod jobs;
pub mod messages;
pub mod nodes;
pub mod profiles;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Executor};

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (a single file; the default).
    Sqlite,
    /// PostgreSQL (scale-out with several workers).
    Postgres,
}

impl Dialect {
    /// The dialect `conn` speaks (for code handed a connection or transaction rather than a [`Db`]).
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        }
    }
}

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// sqlx reported an error.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration {version} ({dialect:?}) failed: {source}")]
    Migration {
        /// The migration's version.
        version: i64,
        /// The dialect.
        dialect: Dialect,
        /// What went wrong.
        source: sqlx::Error,
    },
}

/// A value bound to a placeholder: user values always travel this way, never spliced into SQL.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SqlValue {
    /// A 64-bit integer (also booleans, as 0/1, and timestamps in ms).
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(String),
    /// NULL.
    Null,
}

impl SqlValue {
    /// Binds this value to the next placeholder of `q`.
    pub fn bind_to<'q>(
        &self,
        q: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        match self {
            SqlValue::Int(v) => q.bind(*v),
            SqlValue::Float(v) => q.bind(*v),
            SqlValue::Text(v) => q.bind(v.clone()),
            SqlValue::Null => q.bind(Option::<i64>::None),
        }
    }
}

/// Binds every value in order.
pub fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    values: &[SqlValue],
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in values {
        q = v.bind_to(q);
    }
    q
}

/// A connection pool and the dialect it speaks.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite allows one writer at a time; funnelling writes through a one-connection pool queues
    /// them fairly in-process instead of spinning in SQLite's busy handler. On PostgreSQL this is
    /// the same pool as `pool`.
    writer: AnyPool,
    dialect: Dialect,
    /// SQLite: the task that checkpoints the WAL beside the writer (stopped with the last clone).
    checkpointer: Option<std::sync::Arc<Checkpointer>>,
}

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_claim_index.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_leads_score_index.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_candidates_pending.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_listing_fingerprint.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_jobs_lean_indexes.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_profile_search.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_candidates_narrow.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_search_pending.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_search_detail_none.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_claim_index.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_leads_score_index.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_candidates_pending.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_listing_fingerprint.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_jobs_lean_indexes.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_profile_search.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_candidates_narrow.sql"),
    ),
];

/// The pragmas of every SQLite connection, as a literal (for `concat!`). `journal_size_limit`
/// truncates the WAL back to 64 MiB after a checkpoint: long reads beside the writer (planning a
/// full maintenance) can keep it from restarting, and it would otherwise stay at its peak size.
macro_rules! sqlite_pragmas {
    () => {
        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;"
    };
}

/// Set on every SQLite connection.
const SQLITE_PRAGMAS: &str = sqlite_pragmas!();

/// Set on the one SQLite writer connection: [`SQLITE_PRAGMAS`] and a 32 MiB page cache (the
/// default is 2 MiB). Candidate maintenance and ingest rewrite rows spread over large indexes; with
/// the small cache their transactions spill dirty pages to the WAL before commit and re-read them.
/// Only the writer gets it: the memory is used as pages are touched, once per process.
///
/// `wal_autocheckpoint` is raised from 1,000 pages to 16,384 (64 MiB): the [`Checkpointer`] copies
/// the WAL back into the database on its own connection, so commits do not; the writer only
/// checkpoints itself, as before, if the WAL outgrows that.
const SQLITE_WRITER_PRAGMAS: &str = concat!(
    sqlite_pragmas!(),
    " PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 16384;"
);

/// How often the [`Checkpointer`] looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints a SQLite database's WAL on a connection of its own, every [`CHECKPOINT_EVERY`].
///
/// With SQLite's default, the connection that commits a transaction pushing the WAL past 1,000
/// pages runs the checkpoint itself, inside its commit: it copies every page written since the
/// last checkpoint back into the database file and syncs it, while every other write waits for
/// the one writer. Here that work runs beside the writer (a `PASSIVE` checkpoint never blocks it
/// or a reader; it copies what no reader still needs and leaves the rest for the next round). An
/// idle round reads the WAL header and returns. [`Db::close`] stops it and waits for its
/// connection to close; dropping the last [`Db`] clone aborts it.
#[derive(Debug)]
struct Checkpointer {
    stop: std::sync::Arc<tokio::sync::Notify>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the task on `url` (opened without `mode=rwc`: it never creates a database file).
    fn start(url: &str) -> Result<Self, DbError> {
        let url = url.replace("mode=rwc", "mode=rw");
        let options =
            sqlx::ConnectOptions::disable_statement_logging(AnyConnectOptions::from_str(&url)?);
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut conn: Option<sqlx::AnyConnection> = None;
            let mut failures = 0u32;
            loop {
                // After a failure, wait longer each time (up to a minute) before reconnecting.
                let pause = CHECKPOINT_EVERY * 2u32.saturating_pow(failures.min(9));
                tokio::select! {
                    _ = stopped.notified() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                if conn.is_none() {
                    match sqlx::ConnectOptions::connect(&options).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            failures += 1;
                            if failures == 1 {
                                tracing::warn!(error = %e, "WAL checkpointer cannot connect; retrying with backoff");
                            }
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                // A failure drops the connection; the writer's own autocheckpoint is the backstop.
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_optional(&mut *c)
                    .await
                {
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retrying with backoff");
                        }
                        conn = None;
                    }
                }
            }
            if let Some(c) = conn {
                let _ = sqlx::Connection::close(c).await;
            }
        });
        Ok(Self {
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// Stops the task and waits (up to 5 s) for its connection to close.
    async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(|t| t.take()) {
            task.abort();
        }
    }
}

impl Db {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) with a pool of at most `max_connections`.
    ///
    /// SQLite files are created if missing and opened in WAL mode with a busy timeout and foreign keys on.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        };
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool_options = |n: u32, pragmas: &'static str| {
            AnyPoolOptions::new()
                .max_connections(n.max(1))
                .acquire_timeout(Duration::from_secs(60))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if dialect == Dialect::Sqlite {
                            conn.execute(pragmas).await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = pool_options(max_connections, SQLITE_PRAGMAS)
            .connect_with(options.clone())
            .await?;
        let (writer, checkpointer) = match dialect {
            Dialect::Sqlite => (
                pool_options(1, SQLITE_WRITER_PRAGMAS)
                    .connect_with(options.clone())
                    .await?,
                Some(std::sync::Arc::new(Checkpointer::start(&url)?)),
            ),
            Dialect::Postgres => (pool.clone(), None),
        };
        Ok(Self {
            pool,
            writer,
            dialect,
            checkpointer,
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for statements that write (one connection on SQLite; see the field's note).
    /// Never acquire it while holding a write transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Applies every migration not yet applied. Safe to run concurrently and repeatedly.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let (migrations, lock, unlock) = match self.dialect {
            Dialect::Sqlite => (SQLITE_MIGRATIONS, "BEGIN IMMEDIATE", "COMMIT"),
            Dialect::Postgres => (
                POSTGRES_MIGRATIONS,
                "SELECT pg_advisory_lock(727274)",
                "SELECT pg_advisory_unlock(727274)",
            ),
        };
        let mut conn = self.writer.acquire().await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::raw_sql(lock).execute(&mut *conn).await?;
        let result = async {
            for (version, sql) in migrations {
                let done: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(*version)
                        .fetch_optional(&mut *conn)
                        .await?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(sql)
                    .execute(&mut *conn)
                    .await
                    .map_err(|source| DbError::Migration {
                        version: *version,
                        dialect: self.dialect,
                        source,
                    })?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(chrono::Utc::now().timestamp_millis())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        let release = if result.is_err() && self.dialect == Dialect::Sqlite {
            "ROLLBACK"
        } else {
            unlock
        };
        sqlx::raw_sql(release).execute(&mut *conn).await?;
        result
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up front, so a
    /// read-then-write never fails on a stale snapshot), a plain `BEGIN` on PostgreSQL.
    /// Dropping it without `commit` rolls back.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.writer.begin().await,
        }
    }

    /// Closes the pools and stops the checkpointer.
    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop().await;
        }
        self.pool.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` builds the bundled SQLite without the page-cache group that every
    /// connection of the process would share behind one mutex, and the writer has its own cache.
    #[tokio::test]
    async fn sqlite_is_built_without_the_shared_page_cache_and_the_writer_has_its_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        let opts: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert!(opts.iter().any(|o| o == "THREADSAFE=1"), "{opts:?}");
        assert!(
            !opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "LIBSQLITE3_FLAGS from .cargo/config.toml not applied: {opts:?}"
        );
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(db.writer())
            .await
            .unwrap();
        assert_eq!(cache, -32768);
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(cache, -2000, "readers keep SQLite's default");
    }

    /// The background checkpointer copies committed pages from the WAL into the database file
    /// without any commit doing it: the writer's own autocheckpoint is set to 64 MiB, far above
    /// what this test writes, so without the task the file would stay at its first few pages.
    #[tokio::test]
    async fn the_checkpointer_moves_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(db.writer())
            .await
            .unwrap();
        assert_eq!(auto, 16384);
        sqlx::raw_sql("CREATE TABLE t (b BLOB NOT NULL)")
            .execute(db.writer())
            .await
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let mut tx = db.begin_write().await.unwrap();
        for _ in 0..64 {
            sqlx::query("INSERT INTO t (b) VALUES (zeroblob(65536))")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        // 4 MiB committed, ≈ 1,030 pages: in the WAL until a checkpoint copies them.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let len = std::fs::metadata(&path).unwrap().len();
            if len >= 4 << 20 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "database file still {len} bytes (was {before}): nothing checkpointed the WAL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        db.close().await;
        assert!(
            db.checkpointer
                .as_ref()
                .unwrap()
                .task
                .lock()
                .unwrap()
                .is_none(),
            "close() stops the checkpointer and waits for it"
        );
        // The checkpointer never creates a database: on a path that does not exist it only retries.
        let missing = dir.path().join("never.db");
        let c = Checkpointer::start(&format!("sqlite://{}?mode=rwc", missing.display())).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.stop().await;
        assert!(
            !missing.exists(),
            "the checkpointer created a database file"
        );
    }
}
