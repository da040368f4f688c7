//! Typed configuration: built-in defaults (the repo's `omni.toml`, embedded) < `--config FILE`
//! (else `./omni.toml`) < environment `OMNI__SECTION__KEY` < command-line flags. Secrets never live
//! here: the file names the environment variable that holds each one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::llm::LlmConfig;
use crate::engine::pipeline::dispatch::AccountConfig;
use crate::engine::pipeline::learn::LearningConfig;
use crate::engine::platforms::PlatformConfig;
use crate::engine::queue::Backoff;
use crate::engine::scheduler::ScheduleConfig;
use crate::engine::worker::WorkerConfig;

/// The embedded default configuration (the repository's `omni.toml`).
pub const DEFAULT_TOML: &str = include_str!("../omni.toml");

/// Everything Omni can be configured with.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[workers]`
    #[serde(default)]
    pub workers: WorkerConfig,
    /// `[queue]`
    #[serde(default)]
    pub queue: QueueConfig,
    /// `[schedule]`
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// `[engine]`
    #[serde(default)]
    pub engine: EngineConfig,
    /// `[api]`
    #[serde(default)]
    pub api: ApiConfig,
    /// `[llm]`
    #[serde(default)]
    pub llm: LlmConfig,
    /// `[[platforms]]`
    #[serde(default)]
    pub platforms: Vec<PlatformConfig>,
    /// `[[accounts]]`: sender accounts and their limits.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// `[learning]`
    #[serde(default)]
    pub learning: LearningConfig,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB` (a password belongs in `password_env`).
    pub url: String,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Environment variable holding the PostgreSQL password, if any.
    #[serde(default)]
    pub password_env: Option<String>,
}

fn default_max_connections() -> u32 {
    8
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for images and other objects.
    pub path: PathBuf,
}

/// `[queue]`
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Retry backoff.
    pub backoff: Backoff,
}

/// `[engine]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How often a running engine refreshes its `engine_nodes` row, in ms.
    pub node_heartbeat_ms: u64,
    /// A node not seen for this long is considered gone, in ms.
    pub node_stale_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_heartbeat_ms: 2_000,
            node_stale_ms: 10_000,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the daemon's HTTP API binds.
    pub bind: String,
    /// Environment variable holding the bearer token (required for a non-loopback bind).
    pub token_env: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            token_env: None,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    /// The `config` crate could not read or deserialize a source.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of its allowed range.
    #[error("configuration: {key} = {value}: {allowed}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Where configuration comes from besides the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`; else `./omni.toml` when present.
    pub file: Option<PathBuf>,
    /// Read `OMNI__SECTION__KEY` variables.
    pub env: bool,
    /// `(dotted key, value)` overrides from flags, applied last.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// Loads the layered configuration.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        match &sources.file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Missing(path.clone()));
                }
                b = b.add_source(
                    config::File::from(path.as_path()).format(config::FileFormat::Toml),
                );
            }
            None => {
                let local = Path::new("omni.toml");
                if local.exists() {
                    b = b.add_source(config::File::from(local).format(config::FileFormat::Toml));
                }
            }
        }
        if sources.env {
            b = b.add_source(
                config::Environment::with_prefix("OMNI")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        for (k, v) in &sources.overrides {
            b = b.set_override(k.as_str(), v.as_str())?;
        }
        let cfg: Config = b.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads only the built-in defaults.
    pub fn defaults() -> Self {
        // The embedded file is part of the binary and covered by tests, so it always parses.
        Self::load(&Sources::default()).expect("the embedded omni.toml is valid")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, allowed: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            allowed: allowed.into(),
        };
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(invalid(
                "database.url",
                url.clone(),
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.workers.concurrency == 0 {
            return Err(invalid(
                "workers.concurrency",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.workers.heartbeat_ms >= self.workers.lease_ms {
            return Err(invalid(
                "workers.heartbeat_ms",
                self.workers.heartbeat_ms.to_string(),
                &format!(
                    "must be less than workers.lease_ms ({})",
                    self.workers.lease_ms
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.queue.backoff.jitter) {
            return Err(invalid(
                "queue.backoff.jitter",
                self.queue.backoff.jitter.to_string(),
                "must be between 0.0 and 1.0",
            ));
        }
        self.schedule
            .schedules()
            .map_err(|e| invalid(&format!("schedule.{}", e.name), e.expr.clone(), &e.detail))?;
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.platforms.iter().enumerate() {
            p.validate()
                .map_err(|e| invalid(&format!("platforms[{i}]"), p.name.clone(), &e.to_string()))?;
            if !names.insert(p.name.as_str()) {
                return Err(invalid(
                    &format!("platforms[{i}].name"),
                    p.name.clone(),
                    "is used by another platform",
                ));
            }
        }
        let mut handles = std::collections::HashSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            a.validate()
                .map_err(|e| invalid(&format!("accounts[{i}]"), a.handle.clone(), &e))?;
            if !self.platforms.is_empty() && !self.platforms.iter().any(|p| p.name == a.platform) {
                return Err(invalid(
                    &format!("accounts[{i}].platform"),
                    a.platform.clone(),
                    "must name a [[platforms]] entry",
                ));
            }
            if !handles.insert((a.platform.clone(), a.normalized_handle())) {
                return Err(invalid(
                    &format!("accounts[{i}].handle"),
                    a.handle.clone(),
                    "is listed twice for this platform",
                ));
            }
        }
        self.learning
            .validate()
            .map_err(|e| invalid("learning", format!("{:?}", self.learning), &e))?;
        self.llm
            .validate()
            .map_err(|e| invalid("llm", format!("{:?}", self.llm.provider), &e.to_string()))?;
        if let Some(env) = &self.database.password_env {
            if std::env::var(env).is_err() {
                return Err(invalid(
                    "database.password_env",
                    env.clone(),
                    "names an environment variable that is not set",
                ));
            }
        }
        Ok(())
    }

    /// The database URL with the password from `password_env` filled in.
    pub fn database_url(&self) -> String {
        match (
            &self.database.password_env,
            self.database.url.split_once("://"),
        ) {
            (Some(env), Some((scheme, rest))) if scheme.starts_with("postgres") => {
                let password = std::env::var(env).unwrap_or_default();
                match rest.split_once('@') {
                    Some((user, host)) if !user.contains(':') => {
                        format!("{scheme}://{user}:{}@{host}", urlencode(&password))
                    }
                    _ => self.database.url.clone(),
                }
            }
            _ => self.database.url.clone(),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let c = Config::defaults();
        assert!(c.database.url.starts_with("sqlite://"));
        assert_eq!(c.schedule.qualify, "0 6 * * *");
    }

    #[test]
    fn bad_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[workers]\nconcurrency = \"many\"\n").unwrap();
        let err = Config::load(&Sources {
            file: Some(f),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("workers.concurrency"), "{err}");
    }

    #[test]
    fn flags_override_env_and_file() {
        let c = Config::load(&Sources {
            overrides: vec![("database.url".into(), "sqlite://x.db".into())],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.database.url, "sqlite://x.db");
    }

    #[test]
    fn invalid_cron_is_rejected_with_key() {
        let err = Config::load(&Sources {
            overrides: vec![("schedule.qualify".into(), "every day".into())],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("schedule.qualify"), "{err}");
    }
}
