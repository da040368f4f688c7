//! LLM providers (Ollama, OpenAI-compatible, none), prompt building and the verdict schema: the
//! pipeline asks an [`Llm`] whether a profile fits a campaign brief and gets a validated [`Verdict`].

pub mod ollama;
pub mod openai;
pub mod prompt;
pub mod retry;
mod transport;
pub mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use prompt::{profile_hash, EvalRequest, ImageRef, ProfileForPrompt, Prompt};
pub use verdict::Verdict;

use retry::RetryPolicy;
use transport::{ApiKey, Transport};

/// A judge of profiles: one call evaluates one profile against one brief.
pub trait Llm: Send + Sync + std::fmt::Debug {
    /// Asks the model for a verdict; retries transient failures and repairs one invalid answer.
    fn evaluate<'a>(&'a self, req: &'a EvalRequest) -> BoxFuture<'a, Result<LlmAnswer, LlmError>>;
    /// The configured model name (part of a campaign's criteria hash).
    fn model(&self) -> &str;
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;
    /// True for the `none` provider: callers create leads marked "not LLM-checked" instead of calling.
    fn is_none(&self) -> bool {
        self.kind() == ProviderKind::None
    }
}

/// A validated verdict with what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmAnswer {
    /// The parsed, validated verdict.
    pub verdict: Verdict,
    /// The model that answered, as the server named it.
    pub model: String,
    /// Prompt tokens, summed over the first call and a repair call if there was one.
    pub prompt_tokens: i64,
    /// Completion tokens, summed like `prompt_tokens`.
    pub completion_tokens: i64,
    /// Wall time of the whole evaluation, retries and repair included.
    pub latency_ms: i64,
    /// The raw text of the accepted answer, kept for inspection.
    pub raw: String,
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The `[llm]` config is unusable.
    #[error("invalid LLM config: {0}")]
    Config(String),
    /// The environment variable that should hold the API key is unset or empty.
    #[error("the LLM API key variable {var} is not set or empty: export {var}=<your key>, or change llm.api_key_env")]
    MissingApiKey {
        /// The variable's name.
        var: String,
    },
    /// The `none` provider: no model is configured.
    #[error("no LLM is configured (llm.provider = \"none\"); create the lead as not LLM-checked")]
    Disabled,
    /// Every attempt timed out.
    #[error("the LLM did not answer within {timeout_secs}s ({attempts} attempts)")]
    Timeout {
        /// The per-request timeout.
        timeout_secs: u64,
        /// Requests made.
        attempts: u32,
    },
    /// The server could not be reached.
    #[error("cannot reach the LLM at {url}: {message} ({attempts} attempts)")]
    Transport {
        /// The endpoint.
        url: String,
        /// The connection error.
        message: String,
        /// Requests made.
        attempts: u32,
    },
    /// The server answered with an error status (after retries, if it was worth retrying).
    #[error("the LLM server answered HTTP {status}: {message} ({attempts} attempts)")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
        /// Requests made.
        attempts: u32,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The account is out of credit (OpenAI `insufficient_quota`); retrying cannot help.
    #[error(
        "the LLM account has no quota left ({message}); check the provider's plan and billing"
    )]
    InsufficientQuota {
        /// The server's message.
        message: String,
    },
    /// The model declined to answer.
    #[error("the model refused to answer: {refusal}")]
    Refused {
        /// The model's refusal text.
        refusal: String,
    },
    /// The server's answer did not have the protocol's shape.
    #[error("unexpected answer from the LLM server: {0}")]
    Protocol(String),
    /// The model's answer stayed invalid after one repair attempt.
    #[error("the model's answer is not a valid verdict: {detail}")]
    InvalidAnswer {
        /// The last raw answer.
        raw: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl LlmError {
    /// Whether trying the same evaluation later may succeed (the job should be retried), as
    /// opposed to a configuration, quota or model problem that needs a person.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Timeout { .. } | LlmError::Transport { .. } => true,
            LlmError::Http { status, .. } => retry::retryable_status(*status) || *status == 200,
            _ => false,
        }
    }
}

/// Which kind of server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama's native `/api/chat`.
    #[default]
    Ollama,
    /// Any OpenAI-compatible `/v1/chat/completions` (OpenAI, vLLM, llama.cpp, LM Studio, Ollama's /v1).
    #[serde(rename = "openai")]
    OpenAi,
    /// No LLM: leads are created without an LLM check.
    None,
}

impl ProviderKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Ollama => "ollama",
            ProviderKind::OpenAi => "openai",
            ProviderKind::None => "none",
        }
    }
}

/// The `[llm]` section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `ollama`, `openai` or `none`.
    pub provider: ProviderKind,
    /// Server root, e.g. `http://127.0.0.1:11434` or `https://api.openai.com` (a trailing `/v1` is fine).
    pub base_url: String,
    /// Model name as the server knows it.
    pub model: String,
    /// Name of the environment variable holding the API key (sent as `Authorization: Bearer`).
    pub api_key_env: Option<String>,
    /// Most requests in flight at once, across all evaluations of this provider.
    pub max_concurrency: usize,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// Backoff before the first retry, in milliseconds (doubles per retry, capped at 8 s).
    pub retry_base_ms: u64,
    /// Images are downscaled to at most this many pixels on the long side.
    pub image_max_px: u32,
    /// Price in USD per million prompt tokens, for cost estimates.
    pub price_prompt_per_mtok: Option<f64>,
    /// Price in USD per million completion tokens, for cost estimates.
    pub price_completion_per_mtok: Option<f64>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Ollama,
            base_url: "http://127.0.0.1:11434".to_string(),
            model: "llama3.2-vision".to_string(),
            api_key_env: None,
            max_concurrency: 4,
            timeout_secs: 120,
            max_retries: 4,
            retry_base_ms: 500,
            image_max_px: 512,
            price_prompt_per_mtok: None,
            price_completion_per_mtok: None,
        }
    }
}

/// Longest backoff between two attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// Longest `Retry-After` we sit out inside one call; longer ones go back to the job queue.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(60);

impl LlmConfig {
    /// Checks the values, with messages that say which key is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), LlmError> {
        if self.provider == ProviderKind::None {
            return Ok(());
        }
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            LlmError::Config(format!(
                "llm.base_url {:?} is not a URL: {e}",
                self.base_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "llm.base_url {:?} must start with http:// or https://",
                self.base_url
            )));
        }
        if self.model.trim().is_empty() {
            return Err(LlmError::Config(
                "llm.model is empty: name the model to use".to_string(),
            ));
        }
        if self.max_concurrency == 0 {
            return Err(LlmError::Config(
                "llm.max_concurrency must be at least 1".to_string(),
            ));
        }
        if self.timeout_secs == 0 {
            return Err(LlmError::Config(
                "llm.timeout_secs must be at least 1".to_string(),
            ));
        }
        if self.image_max_px < 16 {
            return Err(LlmError::Config(
                "llm.image_max_px must be at least 16".to_string(),
            ));
        }
        for (key, price) in [
            ("price_prompt_per_mtok", self.price_prompt_per_mtok),
            ("price_completion_per_mtok", self.price_completion_per_mtok),
        ] {
            if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
                return Err(LlmError::Config(format!(
                    "llm.{key} must be a non-negative number"
                )));
            }
        }
        Ok(())
    }

    /// Estimated cost in USD of a call, when prices are configured.
    pub fn cost_usd(&self, prompt_tokens: i64, completion_tokens: i64) -> Option<f64> {
        if self.price_prompt_per_mtok.is_none() && self.price_completion_per_mtok.is_none() {
            return None;
        }
        let p = self.price_prompt_per_mtok.unwrap_or(0.0) * prompt_tokens.max(0) as f64;
        let c = self.price_completion_per_mtok.unwrap_or(0.0) * completion_tokens.max(0) as f64;
        Some((p + c) / 1_000_000.0)
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base: Duration::from_millis(self.retry_base_ms),
            cap: BACKOFF_CAP,
            max_server_wait: MAX_SERVER_WAIT,
        }
    }

    /// The API key from the environment variable the config names, if it names one.
    fn api_key(&self) -> Result<Option<ApiKey>, LlmError> {
        let Some(var) = self
            .api_key_env
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(ApiKey(key.trim().to_string()))),
            _ => Err(LlmError::MissingApiKey {
                var: var.to_string(),
            }),
        }
    }

    pub(crate) fn transport(&self) -> Result<Transport, LlmError> {
        Transport::new(
            Duration::from_secs(self.timeout_secs),
            self.max_concurrency,
            self.retry_policy(),
            self.api_key()?,
        )
    }
}

/// Builds the configured provider. Reads the API key now, so a missing key fails at start-up.
pub fn build(cfg: &LlmConfig) -> Result<Arc<dyn Llm>, LlmError> {
    cfg.validate()?;
    Ok(match cfg.provider {
        ProviderKind::Ollama => Arc::new(ollama::OllamaLlm::new(cfg)?),
        ProviderKind::OpenAi => Arc::new(openai::OpenAiLlm::new(cfg)?),
        ProviderKind::None => Arc::new(NoLlm),
    })
}

/// The `none` provider: never calls anything; [`Llm::is_none`] tells callers to skip the check.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLlm;

impl Llm for NoLlm {
    fn evaluate<'a>(&'a self, _req: &'a EvalRequest) -> BoxFuture<'a, Result<LlmAnswer, LlmError>> {
        Box::pin(async { Err(LlmError::Disabled) })
    }

    fn model(&self) -> &str {
        "none"
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::None
    }
}

/// A turn after the first user message (used by the repair request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FollowUp {
    /// What the model said.
    Assistant(String),
    /// What we said back.
    User(String),
}

/// One chat completion, whatever the protocol.
#[derive(Debug, Clone)]
pub(crate) struct ChatReply {
    pub(crate) content: String,
    pub(crate) model: String,
    pub(crate) prompt_tokens: i64,
    pub(crate) completion_tokens: i64,
}

/// The protocol-specific half of a provider: send one conversation, get one reply.
pub(crate) trait ChatBackend: Send + Sync {
    fn chat<'a>(
        &'a self,
        prompt: &'a Prompt,
        followups: &'a [FollowUp],
    ) -> BoxFuture<'a, Result<ChatReply, LlmError>>;
}

/// The protocol-independent half: build the prompt, ask, validate, repair once.
pub(crate) async fn evaluate_with(
    backend: &dyn ChatBackend,
    req: &EvalRequest,
    image_max_px: u32,
) -> Result<LlmAnswer, LlmError> {
    let started = Instant::now();
    let owned = req.clone();
    let prompt = tokio::task::spawn_blocking(move || prompt::build(&owned, image_max_px))
        .await
        .map_err(|e| LlmError::Protocol(format!("building the prompt failed: {e}")))?;

    let first = backend.chat(&prompt, &[]).await?;
    let detail = match verdict::parse(&first.content) {
        Ok(verdict) => return Ok(answer(verdict, &first, None, started)),
        Err(detail) => detail,
    };
    tracing::warn!(model = %first.model, %detail, "invalid LLM answer; asking for a repair");
    let followups = [
        FollowUp::Assistant(first.content.clone()),
        FollowUp::User(prompt::repair_message(&detail)),
    ];
    let second = backend.chat(&prompt, &followups).await?;
    match verdict::parse(&second.content) {
        Ok(verdict) => Ok(answer(verdict, &second, Some(&first), started)),
        Err(detail) => Err(LlmError::InvalidAnswer {
            raw: second.content,
            detail,
        }),
    }
}

fn answer(
    verdict: Verdict,
    accepted: &ChatReply,
    earlier: Option<&ChatReply>,
    started: Instant,
) -> LlmAnswer {
    LlmAnswer {
        verdict,
        model: accepted.model.clone(),
        prompt_tokens: accepted.prompt_tokens + earlier.map_or(0, |e| e.prompt_tokens),
        completion_tokens: accepted.completion_tokens + earlier.map_or(0, |e| e.completion_tokens),
        latency_ms: started.elapsed().as_millis() as i64,
        raw: accepted.content.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let cfg: LlmConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, LlmConfig::default());
        assert_eq!(cfg.max_concurrency, 4);
        let cfg: LlmConfig =
            toml::from_str("provider = \"openai\"\nmodel = \"gpt-4o-mini\"").unwrap();
        assert_eq!(cfg.provider, ProviderKind::OpenAi);
        let err = toml::from_str::<LlmConfig>("modle = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("modle"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_key() {
        let cfg = LlmConfig {
            base_url: "localhost:11434".into(),
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("llm.base_url"), "{err}");
        let cfg = LlmConfig {
            max_concurrency: 0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_concurrency"));
    }

    #[test]
    fn cost_needs_a_price() {
        let cfg = LlmConfig::default();
        assert_eq!(cfg.cost_usd(1000, 100), None);
        let cfg = LlmConfig {
            price_prompt_per_mtok: Some(0.15),
            price_completion_per_mtok: Some(0.6),
            ..cfg
        };
        let cost = cfg.cost_usd(1_000_000, 1_000_000).unwrap();
        assert!((cost - 0.75).abs() < 1e-9);
    }
}
