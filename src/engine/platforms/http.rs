//! The one place platform adapters send HTTP: timeouts, `X-RateLimit-*` pacing, 429 waits,
//! retries with backoff and jitter, typed errors, Link-header pagination and capped downloads.
//!
//! Bytes move through a [`Transport`] (native reqwest or the crawler service), chosen per platform;
//! everything above one round trip (pacing, retries, classification) stays here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::transport::{bearer, NativeTransport, Transport, TransportError, TransportRequest};
use super::{AccessToken, PlatformError};
use crate::engine::clock::Millis;

/// How hard the client tries before giving up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (5xx, timeouts, connection errors, short 429s).
    pub max_retries: u32,
    /// The first backoff; doubles per retry.
    pub base_backoff: Duration,
    /// No single backoff is longer than this.
    pub max_backoff: Duration,
    /// The longest the client sleeps for a rate-limit reset; longer waits become
    /// [`PlatformError::RateLimited`] so the caller can reschedule instead of blocking a worker.
    pub max_rate_limit_wait: Duration,
}

/// A request, described independently of the transport.
#[derive(Debug)]
pub struct ApiRequest<'a> {
    /// GET, POST, …
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Sent as `Authorization: Bearer …` when present.
    pub token: Option<&'a AccessToken>,
    /// A JSON body.
    pub json: Option<serde_json::Value>,
    /// Sent as `Idempotency-Key`; also makes a POST safe to retry.
    pub idempotency_key: Option<&'a str>,
    /// Refuse bodies larger than this many bytes.
    pub max_body_bytes: u64,
}

impl<'a> ApiRequest<'a> {
    /// A GET of `url` with the default body cap.
    pub fn get(url: Url, token: Option<&'a AccessToken>) -> Self {
        Self {
            method: Method::GET,
            url,
            token,
            json: None,
            idempotency_key: None,
            max_body_bytes: DEFAULT_MAX_API_BODY,
        }
    }

    /// Whether resending after an ambiguous failure cannot create a duplicate.
    fn is_idempotent(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD || self.idempotency_key.is_some()
    }
}

/// API responses larger than this are refused (a directory page of 80 accounts is ~250 KB).
pub const DEFAULT_MAX_API_BODY: u64 = 16 * 1024 * 1024;

/// A successful (2xx) response with its body read.
#[derive(Debug)]
pub struct ApiResponse {
    /// The URL that answered.
    pub url: Url,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// Parses the body as JSON; a mismatch names the URL, the JSON path and the line/column.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PlatformError> {
        // Parsed without path tracking first: tracking records every key and index on the way
        // (an allocation per field), which made parsing a page of statuses about twice as slow.
        // Only a body that fails is parsed again, to name the path.
        if let Ok(v) = serde_json::from_slice(&self.body) {
            return Ok(v);
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            PlatformError::Malformed {
                url: self.url.to_string(),
                detail: format!("at `{path}`: {}", e.inner()),
            }
        })
    }

    /// The URL of the `Link` header entry with this `rel` (`next`, `prev`), if any.
    pub fn link(&self, rel: &str) -> Option<Url> {
        self.headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| parse_link_header(v, rel))
    }
}

/// Finds the URL with `rel="<rel>"` in a Link header value (RFC 8288, as Mastodon writes it).
pub fn parse_link_header(value: &str, rel: &str) -> Option<Url> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map_or(rest.len(), |i| close + i);
        let params = &rest[close + 1..params_end];
        let matches = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=").is_some_and(|v| {
                v.trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
            })
        });
        if matches {
            return Url::parse(target).ok();
        }
        rest = &rest[params_end..];
    }
    None
}

/// What the last response said about a token's rate-limit window.
#[derive(Debug, Clone, Copy)]
struct RateWindow {
    remaining: u64,
    reset_ms: Millis,
}

/// The HTTP client shared by one platform's adapter.
#[derive(Debug)]
pub struct HttpClient {
    transport: Transport,
    policy: RetryPolicy,
    /// Rate windows by server and token fingerprint (see `window_key`).
    windows: Mutex<HashMap<String, RateWindow>>,
}

/// How one attempt ended, before the retry decision.
enum Attempt {
    Done(ApiResponse),
    /// Retry after this long (or give up with the error when out of attempts).
    Retry(Duration, PlatformError),
    Fail(PlatformError),
}

impl HttpClient {
    /// A client using native reqwest with the given request timeout and retry policy.
    pub fn new(timeout: Duration, policy: RetryPolicy) -> Result<Self, PlatformError> {
        Ok(Self::with_transport(
            Transport::Native(NativeTransport::new(timeout)?),
            policy,
        ))
    }

    /// A client sending through `transport` (native or the crawler service).
    pub fn with_transport(transport: Transport, policy: RetryPolicy) -> Self {
        Self {
            transport,
            policy,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request, pacing by the rate-limit window and retrying what is worth retrying.
    /// Returns the 2xx response; every other outcome is a typed error.
    pub async fn send(&self, req: &ApiRequest<'_>) -> Result<ApiResponse, PlatformError> {
        let key = window_key(&req.url, req.token);
        let mut attempt: u32 = 0;
        loop {
            self.wait_for_window(&key, &req.url).await?;
            let outcome = match self.send_once(req).await {
                Ok(resp) => {
                    self.record_window(&key, &resp.headers);
                    self.classify(req, attempt, resp)
                }
                Err(e) => self.classify_transport_error(req, attempt, e),
            };
            match outcome {
                Attempt::Done(resp) => return Ok(resp),
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry(wait, err) => {
                    if attempt >= self.policy.max_retries {
                        return Err(err);
                    }
                    attempt += 1;
                    tracing::debug!(url = %req.url, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying platform request");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One round trip through the configured transport (the single send path).
    async fn send_once(&self, req: &ApiRequest<'_>) -> Result<ApiResponse, TransportError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = req.token {
            headers.insert(AUTHORIZATION, bearer(token)?);
        }
        if let Some(key) = req.idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| {
                TransportError::Fatal("the idempotency key is not a valid header value".into())
            })?;
            headers.insert("Idempotency-Key", value);
        }
        let body = match &req.json {
            Some(json) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Some(serde_json::to_vec(json).map_err(|e| {
                    TransportError::Fatal(format!("cannot encode the JSON body: {e}"))
                })?)
            }
            None => None,
        };
        let resp = self
            .transport
            .send(&TransportRequest {
                method: req.method.clone(),
                url: req.url.clone(),
                headers,
                body,
                max_body_bytes: req.max_body_bytes,
            })
            .await?;
        Ok(ApiResponse {
            url: resp.url,
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
        })
    }

    /// Decides what a complete HTTP response means.
    fn classify(&self, req: &ApiRequest<'_>, attempt: u32, resp: ApiResponse) -> Attempt {
        let status = resp.status;
        if status.is_success() {
            return Attempt::Done(resp);
        }
        let url = req.url.to_string();
        let detail = error_detail(&resp.body, status);
        match status {
            StatusCode::UNAUTHORIZED => Attempt::Fail(PlatformError::Unauthorized { url, detail }),
            StatusCode::FORBIDDEN => Attempt::Fail(PlatformError::Forbidden { url, detail }),
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                Attempt::Fail(PlatformError::NotFound { url })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let now = now_ms();
                let until = retry_after_ms(&resp.headers, now).or_else(|| reset_ms(&resp.headers));
                match until {
                    Some(until)
                        if until - now > self.policy.max_rate_limit_wait.as_millis() as i64 =>
                    {
                        Attempt::Fail(PlatformError::RateLimited { until })
                    }
                    Some(until) => {
                        // A reset already in the past means our clock is ahead of the server's;
                        // back off anyway rather than hammering it.
                        let wait = Duration::from_millis(until.saturating_sub(now).max(0) as u64)
                            .max(self.backoff(attempt));
                        Attempt::Retry(
                            wait,
                            PlatformError::RateLimited {
                                until: until.max(now + wait.as_millis() as i64),
                            },
                        )
                    }
                    None => {
                        // No hint at all: back off and report when we would try again.
                        let wait = self.backoff(attempt);
                        Attempt::Retry(
                            wait,
                            PlatformError::RateLimited {
                                until: now + wait.as_millis() as i64,
                            },
                        )
                    }
                }
            }
            s if s.is_server_error() => {
                let err = PlatformError::Transient {
                    url,
                    detail: format!("HTTP {}: {detail}", s.as_u16()),
                };
                if req.is_idempotent() {
                    Attempt::Retry(self.backoff(attempt), err)
                } else {
                    Attempt::Fail(err)
                }
            }
            s => Attempt::Fail(PlatformError::Rejected {
                url,
                status: s.as_u16(),
                detail,
            }),
        }
    }

    /// Decides what a failure below HTTP (timeout, refused connection, oversize body) means.
    fn classify_transport_error(
        &self,
        req: &ApiRequest<'_>,
        attempt: u32,
        e: TransportError,
    ) -> Attempt {
        let url = req.url.to_string();
        match e {
            TransportError::TooLarge { url, limit } => {
                Attempt::Fail(PlatformError::TooLarge { url, limit })
            }
            TransportError::Fatal(detail) => Attempt::Fail(PlatformError::InvalidInput(detail)),
            TransportError::Retryable(detail) => {
                let err = PlatformError::Transient { url, detail };
                if req.is_idempotent() {
                    Attempt::Retry(self.backoff(attempt), err)
                } else {
                    Attempt::Fail(err)
                }
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.policy.base_backoff.as_millis() as u64;
        let cap = self.policy.max_backoff.as_millis() as u64;
        let full = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        let half = full / 2;
        Duration::from_millis(half + rand::thread_rng().gen_range(0..=full - half))
    }

    /// Stores the window a response reported for this token.
    fn record_window(&self, key: &str, headers: &HeaderMap) {
        let remaining =
            header_str(headers, "x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(remaining), Some(reset_ms)) = (remaining, reset_ms(headers)) else {
            return;
        };
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.insert(
            key.to_string(),
            RateWindow {
                remaining,
                reset_ms,
            },
        );
    }

    /// Sleeps until the reset when the last response said the window is spent; a wait longer than
    /// the policy allows is returned as `RateLimited` without sending anything.
    async fn wait_for_window(&self, key: &str, url: &Url) -> Result<(), PlatformError> {
        let window = {
            let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            windows.get(key).copied()
        };
        let Some(window) = window else { return Ok(()) };
        let now = now_ms();
        if window.remaining > 0 || window.reset_ms <= now {
            return Ok(());
        }
        if window.reset_ms - now > self.policy.max_rate_limit_wait.as_millis() as i64 {
            return Err(PlatformError::RateLimited {
                until: window.reset_ms,
            });
        }
        let wait = Duration::from_millis((window.reset_ms - now) as u64);
        tracing::info!(url = %url, wait_ms = wait.as_millis() as u64, "rate-limit window spent; waiting for its reset");
        tokio::time::sleep(wait).await;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // Only forget the window we waited for; a newer response may have replaced it.
        if windows
            .get(key)
            .is_some_and(|w| w.reset_ms == window.reset_ms)
        {
            windows.remove(key);
        }
        Ok(())
    }
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The rate-limit window a request counts against: Mastodon counts per token (or per IP when
/// anonymous) on one server. The token is hashed so the window map holds no secrets.
fn window_key(url: &Url, token: Option<&AccessToken>) -> String {
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    );
    match token {
        Some(t) => format!(
            "{host}|{}",
            hex::encode(&Sha256::digest(t.expose().as_bytes())[..8])
        ),
        None => host,
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `X-RateLimit-Reset`: ISO 8601 with fractional seconds (not epoch seconds).
fn reset_ms(headers: &HeaderMap) -> Option<Millis> {
    let v = header_str(headers, "x-ratelimit-reset")?;
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `Retry-After`: delay seconds or an HTTP date. Mastodon does not send it; proxies might.
fn retry_after_ms(headers: &HeaderMap, now: Millis) -> Option<Millis> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(now + (secs as i64).saturating_mul(1000));
    }
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Mastodon's error body `{"error": "...", "error_description": "..."}`, else a short excerpt.
fn error_detail(body: &[u8], status: StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        error_description: Option<String>,
    }
    if let Ok(ErrorBody {
        error: Some(error),
        error_description,
    }) = serde_json::from_slice::<ErrorBody>(body)
    {
        return match error_description {
            Some(d) if !d.is_empty() => crate::text::strip_control(&format!("{error}: {d}")),
            _ => crate::text::strip_control(&error),
        };
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(200).collect();
    if excerpt.trim().is_empty() {
        status.canonical_reason().unwrap_or("no detail").to_string()
    } else {
        crate::text::strip_control(excerpt.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_finds_next_and_prev() {
        let v = "<https://m.example/api/v1/timelines/tag/cats?max_id=103>; rel=\"next\", <https://m.example/api/v1/timelines/tag/cats?min_id=106>; rel=\"prev\"";
        assert_eq!(
            parse_link_header(v, "next").unwrap().as_str(),
            "https://m.example/api/v1/timelines/tag/cats?max_id=103"
        );
        assert_eq!(
            parse_link_header(v, "prev").unwrap().as_str(),
            "https://m.example/api/v1/timelines/tag/cats?min_id=106"
        );
        assert!(parse_link_header(v, "last").is_none());
    }

    #[test]
    fn reset_header_is_iso8601_with_microseconds() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2026-07-02T12:35:00.000000Z"),
        );
        assert_eq!(
            reset_ms(&h),
            Some(
                chrono::DateTime::parse_from_rfc3339("2026-07-02T12:35:00Z")
                    .unwrap()
                    .timestamp_millis()
            )
        );
    }

    #[test]
    fn error_detail_reads_mastodon_error_bodies() {
        assert_eq!(
            error_detail(br#"{"error":"Record not found"}"#, StatusCode::NOT_FOUND),
            "Record not found"
        );
        assert_eq!(error_detail(b"", StatusCode::BAD_GATEWAY), "Bad Gateway");
    }
}
