//! Shared test helpers: databases for both dialects.

use omni::db::Db;

/// A database under test: a fresh SQLite file, or a fresh PostgreSQL schema when
/// `OMNI_TEST_DATABASE_URL` is set.
#[allow(dead_code)]
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The dialects to run every test against: SQLite always; PostgreSQL when `OMNI_TEST_DATABASE_URL`
/// is set. Under `CI=true` a missing PostgreSQL is a failure, never a silent skip.
pub fn dialects() -> Vec<&'static str> {
    let mut v = vec!["sqlite"];
    if std::env::var("OMNI_TEST_DATABASE_URL").is_ok() {
        v.push("postgres");
    } else if std::env::var("CI").map(|c| c == "true").unwrap_or(false) {
        panic!("CI=true but OMNI_TEST_DATABASE_URL is not set: PostgreSQL tests cannot be skipped in CI");
    }
    v
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh, migrated database of the given dialect.
pub async fn fresh(dialect: &str) -> TestDb {
    match dialect {
        "sqlite" => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("omni.db").display());
            let db = Db::connect(&url, 8).await.expect("connect sqlite");
            db.migrate().await.expect("migrate");
            TestDb {
                db,
                url,
                _dir: Some(dir),
            }
        }
        "postgres" => {
            let base = std::env::var("OMNI_TEST_DATABASE_URL").expect("OMNI_TEST_DATABASE_URL");
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let name = format!(
                "omni_t{}_{}_{}",
                std::process::id(),
                n,
                rand::random::<u32>()
            );
            let admin = Db::connect(&base, 1).await.expect("connect postgres");
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(admin.pool())
                .await
                .expect("create database");
            admin.close().await;
            let url = replace_db_name(&base, &name);
            let db = Db::connect(&url, 8).await.expect("connect test database");
            db.migrate().await.expect("migrate");
            TestDb {
                db,
                url,
                _dir: None,
            }
        }
        other => panic!("unknown dialect {other}"),
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let cut = base.rfind('/').expect("database URL has a path");
    let mut out = format!("{}/{}", &base[..cut], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
