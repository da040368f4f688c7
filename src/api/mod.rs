//! The HTTP API (axum): router, handlers, auth, SSE events, metrics, OpenAPI.
//!
//! `omni daemon` serves it next to the engine ([`serve`]). It binds loopback by default and
//! refuses any other address unless a bearer token is configured (`[api] token_env`). On shutdown
//! it stops accepting, ends event streams, finishes in-flight requests, and returns.

pub mod auth;
pub mod backend;
pub mod error;
pub mod events;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod queries;
pub mod routes;
pub mod types;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ApiConfig;
use crate::engine::Engine;

pub use backend::ApiBackend;
pub use error::{ApiError, ErrorCode};

/// Request bodies larger than this are refused with 413 (1 MiB: campaign files are small).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Engine events kept for clients that reconnect with `Last-Event-ID`.
pub const DEFAULT_EVENT_BUFFER: usize = 4096;

/// Tunables that are not (yet) in the configuration file.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Events buffered for resuming SSE clients.
    pub event_buffer: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            event_buffer: DEFAULT_EVENT_BUFFER,
        }
    }
}

/// Why the API could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `[api] bind` is not `IP:PORT`.
    #[error("api.bind = {bind:?} is not an address: use IP:PORT, e.g. 127.0.0.1:8080")]
    BadAddress {
        /// The configured value.
        bind: String,
    },
    /// A non-loopback bind without a token.
    #[error(
        "api.bind = {bind} is not a loopback address, and no token is configured: set api.token_env to the \
         name of an environment variable holding a bearer token (and set that variable), or bind 127.0.0.1"
    )]
    InsecureBind {
        /// The configured value.
        bind: String,
    },
    /// `[api] token_env` names a variable that is unset or empty.
    #[error("api.token_env = {env}, but the environment variable {env} is not set or is empty")]
    TokenUnset {
        /// The variable's name.
        env: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {bind} (api.bind): {source}")]
    Bind {
        /// The address.
        bind: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine (service API and [`ApiBackend`]).
    pub engine: Engine,
    /// The bearer token, when one is required.
    pub token: Option<auth::Token>,
    /// Numbered engine events for `/events`.
    pub events: Arc<events::EventLog>,
    /// Request durations for `/metrics`.
    pub metrics: Arc<metrics::HttpMetrics>,
    /// The OpenAPI document, rendered once.
    pub openapi: Arc<String>,
    /// Turns true when the server begins shutting down (ends event streams).
    pub stopping: watch::Receiver<bool>,
}

/// A bound, not yet running API server.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    stop: watch::Sender<bool>,
    options: ApiOptions,
}

fn parse_bind(bind: &str) -> Result<SocketAddr, ServeError> {
    let bad = || ServeError::BadAddress {
        bind: bind.to_string(),
    };
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // `localhost` is the one name accepted: resolving others could silently bind a public address.
    match bind.rsplit_once(':') {
        Some(("localhost", port)) => Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

/// Reads the token named by `[api] token_env`, and refuses a non-loopback bind without one.
fn resolve_token(config: &ApiConfig, addr: SocketAddr) -> Result<Option<auth::Token>, ServeError> {
    let token = match &config.token_env {
        Some(env) => match std::env::var(env) {
            Ok(v) if !v.trim().is_empty() => Some(auth::Token::new(v.trim())),
            _ => return Err(ServeError::TokenUnset { env: env.clone() }),
        },
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::InsecureBind {
            bind: config.bind.clone(),
        });
    }
    Ok(token)
}

/// Checks `[api]` without binding: the address parses, and a token is configured (and set) when
/// the address is not loopback. The daemon calls this before starting its engine.
pub fn check(config: &ApiConfig) -> Result<(), ServeError> {
    resolve_token(config, parse_bind(&config.bind)?).map(|_| ())
}

impl Server {
    /// Checks the configuration and binds `[api] bind`, with default options.
    pub async fn bind(engine: Engine, config: &ApiConfig) -> Result<Self, ServeError> {
        Self::bind_with(engine, config, ApiOptions::default()).await
    }

    /// Checks the configuration and binds `[api] bind`. Starts numbering engine events at once,
    /// so events between binding and serving are not lost to `/events` clients.
    pub async fn bind_with(
        engine: Engine,
        config: &ApiConfig,
        options: ApiOptions,
    ) -> Result<Self, ServeError> {
        let addr = parse_bind(&config.bind)?;
        let token = resolve_token(config, addr)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                bind: config.bind.clone(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let first_id = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        let log = Arc::new(events::EventLog::new(options.event_buffer, first_id));
        tokio::spawn(events::pump(
            engine.subscribe(),
            log.clone(),
            stopping.clone(),
        ));
        let state = AppState {
            engine,
            token,
            events: log,
            metrics: Arc::new(metrics::HttpMetrics::default()),
            openapi: Arc::new(openapi::document()),
            stopping,
        };
        Ok(Server {
            listener,
            addr,
            state,
            stop,
            options,
        })
    }

    /// The bound address (the real port when `[api] bind` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends event streams and waits for
    /// in-flight requests to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            addr,
            state,
            stop,
            options,
        } = self;
        let stop = Arc::new(stop);
        let app = routes::router(state, options.body_limit);
        tracing::info!(%addr, "API listening");
        let signal_stop = stop.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("API: shutting down, finishing in-flight requests");
                let _ = signal_stop.send(true);
            })
            .await;
        let _ = stop.send(true);
        tracing::info!("API stopped");
        Ok(served?)
    }
}

/// Binds `[api] bind` and serves the API for `engine` until `shutdown` resolves.
pub async fn serve(
    engine: Engine,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(engine, config).await?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_parse() {
        assert_eq!(parse_bind("127.0.0.1:8080").unwrap().port(), 8080);
        assert!(parse_bind("localhost:9").unwrap().ip().is_loopback());
        assert!(parse_bind("[::1]:9").unwrap().ip().is_loopback());
        assert!(matches!(
            parse_bind("example.com:80"),
            Err(ServeError::BadAddress { .. })
        ));
        assert!(matches!(
            parse_bind("8080"),
            Err(ServeError::BadAddress { .. })
        ));
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let config = ApiConfig {
            bind: "0.0.0.0:0".into(),
            token_env: None,
        };
        let err = resolve_token(&config, parse_bind(&config.bind).unwrap()).unwrap_err();
        assert!(err.to_string().contains("api.token_env"), "{err}");
        let config = ApiConfig {
            bind: "0.0.0.0:0".into(),
            token_env: Some("OMNI_TEST_SURELY_UNSET_TOKEN".into()),
        };
        let err = resolve_token(&config, parse_bind(&config.bind).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("OMNI_TEST_SURELY_UNSET_TOKEN"),
            "{err}"
        );
    }
}
