//! Platform adapters: the Platform trait and its implementations (mastodon first).
//!
//! Pipeline stages reach a social platform only through [`Platform`]: discover handles, fetch a
//! profile with recent posts, send a direct message, reconcile a send, poll replies and fetch media.
//! Adapters know nothing of campaigns. The `sandbox` kind speaks the Mastodon protocol, so it is
//! served by the same adapter over real HTTP.

pub mod http;
pub mod mastodon;
pub mod models;
pub mod transport;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::clock::Millis;
pub use models::{Account, Field, MediaAttachment, Mention, Notification, Status, Tag, Visibility};
pub use transport::TransportKind;

/// A boxed future, so [`Platform`] stays object-safe (`Arc<dyn Platform>`).
pub type PlatformFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, PlatformError>> + Send + 'a>>;

/// How long Mastodon remembers an `Idempotency-Key`: re-posting with the same key inside this
/// window returns the original status instead of creating a second one.
pub const IDEMPOTENCY_WINDOW_MS: Millis = 60 * 60 * 1000;

/// A social platform as the pipeline sees it.
pub trait Platform: Send + Sync + fmt::Debug {
    /// The configured name of this platform (`[[platforms]] name`).
    fn name(&self) -> &str;

    /// One page of accounts from a discovery source; pass the returned cursor to get the next.
    fn discover<'a>(
        &'a self,
        source: &'a DiscoverySource,
        cursor: Option<&'a Cursor>,
    ) -> PlatformFuture<'a, DiscoveryPage>;

    /// The account behind `handle` (`user` or `user@domain`, a leading `@` is fine) with up to
    /// `max_statuses` of its most recent own posts (boosts excluded), newest first.
    fn fetch_profile<'a>(
        &'a self,
        handle: &'a str,
        max_statuses: usize,
    ) -> PlatformFuture<'a, ProfileSnapshot>;

    /// Like [`Platform::fetch_profile`] for an account a discovery listing already returned in
    /// full: the listing's Account entity is used as is and only the recent posts are fetched
    /// (one request fewer per profile). The default fetches everything by handle.
    fn fetch_listed_profile<'a>(
        &'a self,
        account: &'a Account,
        max_statuses: usize,
    ) -> PlatformFuture<'a, ProfileSnapshot> {
        self.fetch_profile(&account.acct, max_statuses)
    }

    /// Sends a direct message to `recipient_acct` as the account owning `token`. The same
    /// `idempotency_key` within [`IDEMPOTENCY_WINDOW_MS`] returns the first send instead of a second.
    fn send_dm<'a>(
        &'a self,
        token: &'a AccessToken,
        recipient_acct: &'a str,
        body: &'a str,
        idempotency_key: &'a str,
    ) -> PlatformFuture<'a, SentMessage>;

    /// Whether a message we sent still exists: `None` when the platform has no such message.
    fn find_sent<'a>(
        &'a self,
        token: &'a AccessToken,
        platform_message_id: &'a str,
    ) -> PlatformFuture<'a, Option<SentMessage>>;

    /// Mentions (DM replies arrive as mentions) received after `since`, oldest first, and the
    /// cursor to pass next time. `None` reads the whole history the platform keeps.
    fn poll_replies<'a>(
        &'a self,
        token: &'a AccessToken,
        since: Option<&'a ReplyCursor>,
    ) -> PlatformFuture<'a, ReplyPage>;

    /// The bytes at a media URL, refusing bodies larger than `max_bytes`. No token is sent: media
    /// usually lives on another host (a CDN).
    fn fetch_media<'a>(&'a self, url: &'a str, max_bytes: u64) -> PlatformFuture<'a, Vec<u8>>;
}

/// Where to look for accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DiscoverySource {
    /// The instance's profile directory (offset paging).
    Directory,
    /// Authors of recent posts with this hashtag (`#` optional; Link paging).
    Hashtag(String),
    /// Account search (offset paging; pages past the first need a token).
    Search(String),
    /// The followers of this handle (Link paging).
    FollowersOf(String),
}

/// An opaque position in a discovery source; persist it with [`Cursor::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl Cursor {
    /// The persistable form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of discovered accounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryPage {
    /// The accounts on this page (de-duplicated within the page).
    pub accounts: Vec<Account>,
    /// Where the next page starts; `None` when the source is exhausted.
    pub next: Option<Cursor>,
}

/// An account and its recent posts, as fetched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileSnapshot {
    /// The account.
    pub account: Account,
    /// Recent own posts, newest first.
    pub statuses: Vec<Status>,
}

/// What the platform recorded for a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The platform's id for the message (a status id on Mastodon).
    pub platform_message_id: String,
    /// When the platform created it (unix ms; 0 if it sent no parseable time).
    pub created_at: Millis,
    /// The `acct`s the message reaches (for a direct status: those mentioned).
    pub recipients: Vec<String>,
}

/// A reply (or any mention) received by a sender account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// A stable id for de-duplication (the notification id).
    pub platform_event_id: String,
    /// The id of the replying message itself.
    pub status_id: String,
    /// Who wrote it (`user` or `user@domain`).
    pub from_acct: String,
    /// The message it answers (one of ours, when it is a reply to a DM).
    pub in_reply_to_id: Option<String>,
    /// The body as plain text.
    pub body_text: String,
    /// Whether it was sent privately (a DM) or in public.
    pub visibility: Visibility,
    /// When it was written (unix ms).
    pub created_at: Millis,
}

/// Where reply polling got to; persist it with [`ReplyCursor::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplyCursor(pub String);

impl ReplyCursor {
    /// The persistable form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The result of one reply poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyPage {
    /// New replies, oldest first.
    pub replies: Vec<Reply>,
    /// The cursor for the next poll (unchanged when nothing new arrived).
    pub cursor: Option<ReplyCursor>,
}

/// An access token; its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a token from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, PlatformError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Self(v.trim().to_string())),
            _ => Err(PlatformError::MissingToken {
                env: var.to_string(),
            }),
        }
    }

    /// The secret, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// Why a platform call failed, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform's rate limit is spent until `until` (unix ms); reschedule then.
    #[error("rate limited until {until} (unix ms)")]
    RateLimited {
        /// When the window resets.
        until: Millis,
    },
    /// The token is missing, invalid or revoked (HTTP 401). Not retried.
    #[error("unauthorized at {url}: {detail}")]
    Unauthorized {
        /// The request URL.
        url: String,
        /// The platform's message.
        detail: String,
    },
    /// The token may not do this (HTTP 403), e.g. a missing scope or a suspended account.
    #[error("forbidden at {url}: {detail}")]
    Forbidden {
        /// The request URL.
        url: String,
        /// The platform's message.
        detail: String,
    },
    /// No such account, status or page (HTTP 404/410).
    #[error("not found: {url}")]
    NotFound {
        /// The request URL.
        url: String,
    },
    /// The platform refused the request (another 4xx, e.g. 422 validation).
    #[error("rejected with HTTP {status} at {url}: {detail}")]
    Rejected {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The platform's message.
        detail: String,
    },
    /// A 5xx, timeout or connection failure that persisted through the retries.
    #[error("transient failure at {url}: {detail}")]
    Transient {
        /// The request URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The response was not the JSON we expect.
    #[error("malformed response from {url}: {detail}")]
    Malformed {
        /// The request URL.
        url: String,
        /// The parse error with its JSON path and line/column.
        detail: String,
    },
    /// The response body exceeded the size cap.
    #[error("response from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// A direct message was created but the platform did not address it to the recipient (the
    /// handle did not resolve); the stray message is `platform_message_id`.
    #[error("message {platform_message_id} was created but does not reach {recipient}")]
    RecipientNotReached {
        /// The intended recipient.
        recipient: String,
        /// The created message.
        platform_message_id: String,
    },
    /// An argument the platform can never accept (an empty handle, a non-http media URL).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A discovery cursor that this source did not produce.
    #[error("invalid cursor {cursor:?}: {detail}")]
    BadCursor {
        /// The cursor as given.
        cursor: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// The environment variable that should hold a token is unset or empty.
    #[error("environment variable {env} (named in the platform config) is not set")]
    MissingToken {
        /// The variable's name.
        env: String,
    },
    /// The platform configuration is unusable.
    #[error("platform config: {0}")]
    Config(String),
}

impl PlatformError {
    /// Whether trying the same call later may succeed (rate limits and transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// When to retry at the earliest, if the platform said (rate limits).
    pub fn retry_at(&self) -> Option<Millis> {
        match self {
            Self::RateLimited { until } => Some(*until),
            _ => None,
        }
    }
}

/// Which protocol a platform speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// A Mastodon (or Mastodon-API-compatible) server.
    #[default]
    Mastodon,
    /// Omni's simulated platform; speaks the Mastodon protocol.
    Sandbox,
}

impl PlatformKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mastodon => "mastodon",
            Self::Sandbox => "sandbox",
        }
    }
}

impl FromStr for PlatformKind {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mastodon" => Ok(Self::Mastodon),
            "sandbox" => Ok(Self::Sandbox),
            other => Err(PlatformError::Config(format!(
                "unknown platform kind {other:?}; expected \"mastodon\" or \"sandbox\""
            ))),
        }
    }
}

/// One platform in `omni.toml` (`[[platforms]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// The name campaigns and accounts refer to (e.g. `"mastodon.social"`, `"sandbox"`).
    pub name: String,
    /// The protocol.
    #[serde(default)]
    pub kind: PlatformKind,
    /// The server's base URL, e.g. `https://mastodon.social`.
    pub base_url: String,
    /// The environment variable holding a read token for discovery and scraping (optional; search
    /// past the first page and some instances' directories need one).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries after the first attempt on 5xx, timeouts, connection errors and short 429s.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry backoff in milliseconds (doubles per retry, with jitter).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest a request waits for a rate-limit reset before failing with `RateLimited`.
    #[serde(default = "default_max_rate_limit_wait_secs")]
    pub max_rate_limit_wait_secs: u64,
    /// Items requested per page (Mastodon caps at 40 for most lists, 80 for the directory).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Download post images (stored for the console and vision prompts). Off: profiles are
    /// ingested text-only, for text-only models or a cheaper first pass.
    #[serde(default = "default_fetch_images")]
    pub fetch_images: bool,
    /// How long a full scrape vouches for a profile whose discovery listing still shows the same
    /// account (bio, fields, counts, last post date): within it a re-crawl only moves `last_seen`,
    /// without fetching the profile again. Changes a listing cannot show (edits to old posts,
    /// engagement on them) are picked up by the scrape once the window has passed. 0: always
    /// scrape.
    #[serde(default = "default_listing_trust_secs")]
    pub listing_trust_secs: u64,
    /// How requests travel: `native` (reqwest, the default) or `service` (the crawler service).
    #[serde(default)]
    pub transport: TransportKind,
    /// The crawler service's base URL (e.g. `http://127.0.0.1:8700`); needed for `service`.
    #[serde(default)]
    pub crawler_url: Option<String>,
    /// The environment variable holding the crawler's shared bearer token (optional).
    #[serde(default)]
    pub crawler_token_env: Option<String>,
}

fn default_fetch_images() -> bool {
    true
}
fn default_listing_trust_secs() -> u64 {
    24 * 3600
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_max_retries() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_max_rate_limit_wait_secs() -> u64 {
    60
}
fn default_page_size() -> u32 {
    40
}

impl PlatformConfig {
    /// A config for `base_url` with every default.
    pub fn new(name: impl Into<String>, kind: PlatformKind, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            token_env: None,
            timeout_secs: default_timeout_secs(),
            max_retries: default_max_retries(),
            backoff_ms: default_backoff_ms(),
            max_rate_limit_wait_secs: default_max_rate_limit_wait_secs(),
            page_size: default_page_size(),
            fetch_images: default_fetch_images(),
            listing_trust_secs: default_listing_trust_secs(),
            transport: TransportKind::Native,
            crawler_url: None,
            crawler_token_env: None,
        }
    }

    /// Checks the values, saying which one is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), PlatformError> {
        let bad = |msg: String| {
            Err(PlatformError::Config(format!(
                "platform {:?}: {msg}",
                self.name
            )))
        };
        if self.name.trim().is_empty() {
            return bad("name must not be empty".into());
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return bad(format!(
                    "base_url {:?} must be an http(s) URL such as https://mastodon.social",
                    self.base_url
                ))
            }
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be at least 1".into());
        }
        if self.transport == TransportKind::Service {
            match self.crawler_url.as_deref().map(reqwest::Url::parse) {
                Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return bad(format!(
                        "transport = \"service\" needs crawler_url, an http(s) URL such as \
                         http://127.0.0.1:8700 (got {:?})",
                        self.crawler_url
                    ))
                }
            }
        }
        if !(1..=80).contains(&self.page_size) {
            return bad(format!(
                "page_size {} must be between 1 and 80",
                self.page_size
            ));
        }
        Ok(())
    }
}

/// The adapter for a configured platform. Reads the token from `token_env` now, so a missing
/// secret is reported at start-up rather than on the first job.
pub fn build(cfg: &PlatformConfig) -> Result<Arc<dyn Platform>, PlatformError> {
    cfg.validate()?;
    let token = cfg
        .token_env
        .as_deref()
        .map(AccessToken::from_env)
        .transpose()?;
    match cfg.kind {
        PlatformKind::Mastodon | PlatformKind::Sandbox => {
            Ok(Arc::new(mastodon::MastodonPlatform::new(cfg, token)?))
        }
    }
}
