//! How the platform HTTP client moves bytes: natively with reqwest (the default), or through the
//! crawler service (`crawler/`, `POST /fetch`), which fetches with a browser fingerprint, per-host
//! politeness and an optional proxy pool. The choice is per platform (`[[platforms]] transport`).
//!
//! [`super::http::HttpClient`] keeps the retry, rate-limit and error-classification logic; a
//! transport only performs one round trip and reports what happened below HTTP.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{AccessToken, PlatformConfig, PlatformError};

/// Which transport a platform uses (`[[platforms]] transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// reqwest, in process.
    #[default]
    Native,
    /// The crawler service at `crawler_url`.
    Service,
}

/// One HTTP request, as a transport sees it (headers already built, body already encoded).
#[derive(Debug, Clone)]
pub struct TransportRequest {
    /// GET, POST, …
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Request headers (Authorization, Idempotency-Key, Content-Type, …).
    pub headers: HeaderMap,
    /// The request body, if any.
    pub body: Option<Vec<u8>>,
    /// Refuse response bodies larger than this many bytes.
    pub max_body_bytes: u64,
}

/// One HTTP response with its body read (any status).
#[derive(Debug, Clone)]
pub struct TransportResponse {
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// Failures below HTTP, before the client's retry decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Timeouts, refused or reset connections, broken bodies, an unreachable crawler.
    #[error("{0}")]
    Retryable(String),
    /// The body exceeded the cap.
    #[error("response from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// A request that can never succeed (bad header, refused by the crawler's SSRF rule, …).
    #[error("{0}")]
    Fatal(String),
}

impl TransportError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_builder() {
            Self::Fatal(format!("invalid request: {e}"))
        } else if e.is_timeout() {
            Self::Retryable(format!("timed out: {e}"))
        } else {
            Self::Retryable(format!("{e}"))
        }
    }
}

/// A transport: native reqwest or the crawler service.
#[derive(Debug)]
pub enum Transport {
    /// reqwest, in process.
    Native(NativeTransport),
    /// `POST /fetch` to the crawler service.
    Service(ServiceTransport),
}

impl Transport {
    /// The transport `cfg` asks for; a service transport reads its token from `crawler_token_env`.
    pub fn for_config(cfg: &PlatformConfig) -> Result<Self, PlatformError> {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        match cfg.transport {
            TransportKind::Native => Ok(Self::Native(NativeTransport::new(timeout)?)),
            TransportKind::Service => {
                let url = cfg.crawler_url.as_deref().ok_or_else(|| {
                    PlatformError::Config(format!(
                        "platform {:?}: transport = \"service\" needs crawler_url",
                        cfg.name
                    ))
                })?;
                let token = cfg
                    .crawler_token_env
                    .as_deref()
                    .map(AccessToken::from_env)
                    .transpose()?;
                Ok(Self::Service(ServiceTransport::new(url, token, timeout)?))
            }
        }
    }

    /// One round trip.
    pub async fn send(&self, req: &TransportRequest) -> Result<TransportResponse, TransportError> {
        match self {
            Self::Native(t) => t.send(req).await,
            Self::Service(t) => t.send(req).await,
        }
    }
}

/// Fetches with reqwest.
#[derive(Debug)]
pub struct NativeTransport {
    client: reqwest::Client,
}

impl NativeTransport {
    /// A reqwest client with this request timeout.
    pub fn new(timeout: Duration) -> Result<Self, PlatformError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("omni/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PlatformError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// One round trip, reading at most `max_body_bytes`.
    pub async fn send(&self, req: &TransportRequest) -> Result<TransportResponse, TransportError> {
        let mut builder = self
            .client
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let mut resp = builder.send().await.map_err(TransportError::from_reqwest)?;
        let url = resp.url().clone();
        let status = resp.status();
        let headers = resp.headers().clone();
        let too_large = || TransportError::TooLarge {
            url: url.to_string(),
            limit: req.max_body_bytes,
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > req.max_body_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(TransportError::from_reqwest)? {
            if (body.len() + chunk.len()) as u64 > req.max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(TransportResponse {
            url,
            status,
            headers,
            body,
        })
    }
}

/// Fetches through the crawler service's `POST /fetch`.
#[derive(Debug)]
pub struct ServiceTransport {
    client: reqwest::Client,
    fetch_url: Url,
    token: Option<AccessToken>,
    timeout: Duration,
}

/// `POST /fetch` body item (the wire shape in crawler/omni_crawler/app.py).
#[derive(Serialize)]
struct WireRequest<'a> {
    url: &'a str,
    method: &'a str,
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
    timeout_ms: u64,
}

/// `POST /fetch` response item.
#[derive(Deserialize)]
struct WireResponse {
    final_url: String,
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body_b64: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_kind: Option<String>,
}

#[derive(Deserialize)]
struct WireBatch {
    responses: Vec<WireResponse>,
}

impl ServiceTransport {
    /// A transport posting to `base_url` (e.g. `http://127.0.0.1:8700`), with an optional shared
    /// token; `timeout` is the per-request fetch timeout the service is asked to apply.
    pub fn new(
        base_url: &str,
        token: Option<AccessToken>,
        timeout: Duration,
    ) -> Result<Self, PlatformError> {
        let bad =
            |detail: String| PlatformError::Config(format!("crawler_url {base_url:?}: {detail}"));
        let base = Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("must be an http(s) URL".into()));
        }
        let fetch_url = base.join("fetch").map_err(|e| bad(e.to_string()))?;
        // The service retries connection errors and may wait out politeness delays, so the call to
        // it gets more time than one fetch.
        let client = reqwest::Client::builder()
            .timeout(timeout.saturating_mul(4) + Duration::from_secs(10))
            .build()
            .map_err(|e| PlatformError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            fetch_url,
            token,
            timeout,
        })
    }

    /// One round trip (a batch of one).
    pub async fn send(&self, req: &TransportRequest) -> Result<TransportResponse, TransportError> {
        let mut all = self.send_batch(std::slice::from_ref(req)).await?;
        all.pop().unwrap_or_else(|| {
            Err(TransportError::Retryable(
                "the crawler answered an empty batch".into(),
            ))
        })
    }

    /// Many round trips in one call; results are in request order. The outer error is a failure
    /// to reach the service (or a refusal of the whole batch).
    pub async fn send_batch(
        &self,
        reqs: &[TransportRequest],
    ) -> Result<Vec<Result<TransportResponse, TransportError>>, TransportError> {
        let wire = reqs
            .iter()
            .map(|r| self.wire_request(r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut call = self
            .client
            .post(self.fetch_url.clone())
            .json(&serde_json::json!({ "requests": wire }));
        if let Some(t) = &self.token {
            call = call.bearer_auth(t.expose());
        }
        let resp = call.send().await.map_err(|e| {
            TransportError::Retryable(format!("crawler at {} unreachable: {e}", self.fetch_url))
        })?;
        let status = resp.status();
        let text = resp.bytes().await.map_err(TransportError::from_reqwest)?;
        if !status.is_success() {
            let detail = format!(
                "crawler answered HTTP {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&text[..text.len().min(200)])
            );
            return Err(if status.is_server_error() {
                TransportError::Retryable(detail)
            } else {
                TransportError::Fatal(detail)
            });
        }
        let batch: WireBatch = serde_json::from_slice(&text).map_err(|e| {
            TransportError::Retryable(format!("crawler answered malformed JSON: {e}"))
        })?;
        if batch.responses.len() != reqs.len() {
            return Err(TransportError::Retryable(format!(
                "crawler answered {} responses for {} requests",
                batch.responses.len(),
                reqs.len()
            )));
        }
        Ok(reqs
            .iter()
            .zip(batch.responses)
            .map(|(req, w)| from_wire(req, w))
            .collect())
    }

    fn wire_request<'a>(&self, r: &'a TransportRequest) -> Result<WireRequest<'a>, TransportError> {
        let mut headers = serde_json::Map::new();
        for (name, value) in &r.headers {
            let value = value.to_str().map_err(|_| {
                TransportError::Fatal(format!("header {name} is not visible ASCII"))
            })?;
            // Repeated request headers are joined as HTTP allows for list-valued fields.
            let joined = match headers.get(name.as_str()).and_then(|v| v.as_str()) {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            };
            headers.insert(name.as_str().to_string(), joined.into());
        }
        Ok(WireRequest {
            url: r.url.as_str(),
            method: r.method.as_str(),
            headers,
            body_b64: r.body.as_ref().map(|b| B64.encode(b)),
            timeout_ms: self.timeout.as_millis() as u64,
        })
    }
}

/// Turns one service response into a transport result.
fn from_wire(req: &TransportRequest, w: WireResponse) -> Result<TransportResponse, TransportError> {
    if let Some(error) = w.error {
        let detail = format!("via crawler: {error}");
        return Err(match w.error_kind.as_deref() {
            Some("too_large") => TransportError::TooLarge {
                url: req.url.to_string(),
                limit: req.max_body_bytes,
            },
            Some("refused" | "invalid" | "too_many_redirects") => TransportError::Fatal(detail),
            _ => TransportError::Retryable(detail),
        });
    }
    let body = B64
        .decode(w.body_b64.as_bytes())
        .map_err(|e| TransportError::Retryable(format!("crawler body is not base64: {e}")))?;
    if body.len() as u64 > req.max_body_bytes {
        return Err(TransportError::TooLarge {
            url: req.url.to_string(),
            limit: req.max_body_bytes,
        });
    }
    let status = StatusCode::from_u16(w.status)
        .map_err(|_| TransportError::Retryable(format!("crawler status {} invalid", w.status)))?;
    let mut headers = HeaderMap::new();
    for (k, v) in w.headers {
        // A header the service relays that HTTP cannot represent is dropped, not fatal.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    let url = Url::parse(&w.final_url).unwrap_or_else(|_| req.url.clone());
    Ok(TransportResponse {
        url,
        status,
        headers,
        body,
    })
}

/// Builds the headers the client sends: the bearer token (marked sensitive so it is never logged).
pub(crate) fn bearer(token: &AccessToken) -> Result<HeaderValue, TransportError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        TransportError::Fatal("the access token contains characters not allowed in a header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> TransportRequest {
        TransportRequest {
            method: Method::GET,
            url: Url::parse("https://m.example/api/v1/accounts/1").unwrap(),
            headers: HeaderMap::new(),
            body: None,
            max_body_bytes: 4,
        }
    }

    fn wire(error_kind: Option<&str>, body: &[u8]) -> WireResponse {
        WireResponse {
            final_url: "https://m.example/api/v1/accounts/1".into(),
            status: if error_kind.is_some() { 0 } else { 200 },
            headers: vec![
                ("Link".into(), "<a>; rel=\"next\"".into()),
                ("Link".into(), "<b>; rel=\"prev\"".into()),
            ],
            body_b64: B64.encode(body),
            error: error_kind.map(|k| format!("{k} happened")),
            error_kind: error_kind.map(str::to_string),
        }
    }

    #[test]
    fn service_errors_map_to_transport_errors() {
        assert!(matches!(
            from_wire(&req(), wire(Some("refused"), b"")),
            Err(TransportError::Fatal(_))
        ));
        assert!(matches!(
            from_wire(&req(), wire(Some("connect"), b"")),
            Err(TransportError::Retryable(_))
        ));
        assert!(matches!(
            from_wire(&req(), wire(Some("too_large"), b"")),
            Err(TransportError::TooLarge { limit: 4, .. })
        ));
        // The client's own cap applies even when the service's is larger.
        assert!(matches!(
            from_wire(&req(), wire(None, b"12345")),
            Err(TransportError::TooLarge { .. })
        ));
    }

    #[test]
    fn service_responses_keep_repeated_headers() {
        let r = from_wire(&req(), wire(None, b"{}")).unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, b"{}");
        assert_eq!(r.headers.get_all("link").iter().count(), 2);
    }
}
