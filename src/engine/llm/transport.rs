//! The HTTP side shared by both providers: one JSON POST with a timeout, under the provider's
//! concurrency limit, retried with backoff on transient failures and classified into [`LlmError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::retry::{retryable_status, server_wait, should_retry_header, RetryPolicy};
use super::LlmError;

/// An API key read from the environment; never printed.
#[derive(Clone)]
pub(crate) struct ApiKey(pub(crate) String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A JSON-over-HTTP client with retries and a concurrency limit.
#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    /// Shared by every call of one provider instance, so a burst of evaluations cannot exceed
    /// what the server (or the account's rate limit) can take.
    limiter: Arc<Semaphore>,
    policy: RetryPolicy,
    api_key: Option<ApiKey>,
    timeout: Duration,
}

/// Why one attempt failed, before deciding whether to try again.
#[derive(Debug)]
enum Failure {
    Timeout,
    Connect(String),
    Status {
        status: u16,
        message: String,
        quota: bool,
    },
    /// HTTP 200 whose body is an error object (Ollama reports model crashes this way).
    ErrorBody(String),
    Protocol(String),
}

struct Attempt {
    failure: Failure,
    retryable: bool,
    server_wait: Option<Duration>,
}

impl Transport {
    /// A transport with its own connection pool and concurrency limit.
    pub(crate) fn new(
        timeout: Duration,
        max_concurrency: usize,
        policy: RetryPolicy,
        api_key: Option<ApiKey>,
    ) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            limiter: Arc::new(Semaphore::new(max_concurrency.max(1))),
            policy,
            api_key,
            timeout,
        })
    }

    /// POSTs `body` to `url` and returns the parsed JSON of the first successful answer, retrying
    /// transient failures (timeouts, connection errors, 408/409/429/5xx) per the policy.
    pub(crate) async fn post_json(&self, url: &str, body: &Value) -> Result<Value, LlmError> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let result = {
                // The semaphore is never closed, so acquire only fails on a broken invariant.
                let _permit = self.limiter.acquire().await.map_err(|_| {
                    LlmError::Config("the LLM concurrency limiter was closed".to_string())
                })?;
                self.attempt(url, body).await
            };
            let attempt = match result {
                Ok(v) => return Ok(v),
                Err(a) => a,
            };
            let retries_used = attempts - 1;
            if !attempt.retryable || retries_used >= self.policy.max_retries {
                return Err(self.to_error(url, attempt, attempts));
            }
            let wait = match attempt.server_wait {
                Some(w) if w > self.policy.max_server_wait => {
                    return Err(self.to_error(url, attempt, attempts))
                }
                Some(w) if !w.is_zero() => w,
                _ => self.policy.backoff(retries_used),
            };
            tracing::warn!(
                url,
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                failure = ?attempt.failure,
                "LLM call failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, url: &str, body: &Value) -> Result<Value, Attempt> {
        let mut req = self.http.post(url).json(body);
        if let Some(key) = &self.api_key {
            req = req.header(AUTHORIZATION, format!("Bearer {}", key.0));
        }
        let resp = req.send().await.map_err(transport_failure)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(transport_failure)?;
        let json: Option<Value> = serde_json::from_str(&text).ok();

        if !(200..300).contains(&status) {
            let message = error_message(json.as_ref()).unwrap_or_else(|| snippet(&text));
            let quota = is_insufficient_quota(json.as_ref());
            let retryable =
                !quota && should_retry_header(&headers).unwrap_or_else(|| retryable_status(status));
            return Err(Attempt {
                failure: Failure::Status {
                    status,
                    message,
                    quota,
                },
                retryable,
                server_wait: wait_hint(&headers),
            });
        }
        let Some(json) = json else {
            return Err(Attempt {
                failure: Failure::Protocol(format!(
                    "HTTP {status} with a body that is not JSON: {}",
                    snippet(&text)
                )),
                retryable: false,
                server_wait: None,
            });
        };
        // A 200 that only carries an error (Ollama: "an error was encountered while running the
        // model") is a server-side failure, worth another try.
        if json.get("error").is_some()
            && json.get("message").is_none()
            && json.get("choices").is_none()
        {
            let message = error_message(Some(&json)).unwrap_or_else(|| snippet(&text));
            return Err(Attempt {
                failure: Failure::ErrorBody(message),
                retryable: true,
                server_wait: None,
            });
        }
        Ok(json)
    }

    fn to_error(&self, url: &str, attempt: Attempt, attempts: u32) -> LlmError {
        match attempt.failure {
            Failure::Timeout => LlmError::Timeout {
                timeout_secs: self.timeout.as_secs(),
                attempts,
            },
            Failure::Connect(message) => LlmError::Transport {
                url: url.to_string(),
                message,
                attempts,
            },
            Failure::Status {
                message,
                quota: true,
                ..
            } => LlmError::InsufficientQuota { message },
            Failure::Status {
                status, message, ..
            } => LlmError::Http {
                status,
                message,
                attempts,
                retry_after: attempt.server_wait,
            },
            Failure::ErrorBody(message) => LlmError::Http {
                status: 200,
                message,
                attempts,
                retry_after: None,
            },
            Failure::Protocol(message) => LlmError::Protocol(message),
        }
    }
}

fn transport_failure(e: reqwest::Error) -> Attempt {
    let failure = if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connect(error_chain(&e))
    };
    Attempt {
        failure,
        retryable: true,
        server_wait: None,
    }
}

fn wait_hint(headers: &HeaderMap) -> Option<Duration> {
    server_wait(headers, chrono::Utc::now())
}

/// reqwest's top-level message is often just "error sending request"; the cause says why.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The error text of an OpenAI-style (`{"error": {"message": …}}`) or Ollama-style
/// (`{"error": "…"}`) body.
fn error_message(json: Option<&Value>) -> Option<String> {
    let err = json?.get("error")?;
    match err {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// OpenAI's "you are out of credit" 429: retrying cannot help, so it must not be retried.
fn is_insufficient_quota(json: Option<&Value>) -> bool {
    let Some(err) = json.and_then(|j| j.get("error")) else {
        return false;
    };
    ["code", "type"]
        .iter()
        .any(|k| err.get(*k).and_then(Value::as_str) == Some("insufficient_quota"))
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &t[..at]),
        None => t.to_string(),
    }
}
