//! The OpenAI-compatible provider (OpenAI, vLLM, llama.cpp, LM Studio, Ollama's /v1):
//! `POST /v1/chat/completions` with a strict `json_schema` response format, temperature 0, and
//! images as `data:image/jpeg;base64,…` image_url parts.

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::transport::Transport;
use super::{
    evaluate_with, verdict, ChatBackend, ChatReply, EvalRequest, FollowUp, Llm, LlmAnswer,
    LlmConfig, LlmError, Prompt, ProviderKind,
};

/// Talks to an OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiLlm {
    transport: Transport,
    url: String,
    model: String,
    image_max_px: u32,
}

impl OpenAiLlm {
    /// A provider for `cfg.base_url`, with or without a trailing `/v1`.
    pub fn new(cfg: &LlmConfig) -> Result<Self, LlmError> {
        Ok(Self {
            transport: cfg.transport()?,
            url: completions_url(&cfg.base_url),
            model: cfg.model.clone(),
            image_max_px: cfg.image_max_px,
        })
    }

    /// The `/v1/chat/completions` body for a conversation.
    pub(crate) fn request_body(&self, prompt: &Prompt, followups: &[FollowUp]) -> Value {
        // Plain string content when there are no images: some local servers accept only that.
        let user_content = if prompt.images_base64.is_empty() {
            json!(prompt.user)
        } else {
            let mut parts = vec![json!({ "type": "text", "text": prompt.user })];
            parts.extend(prompt.images_base64.iter().map(|b64| {
                // "low" detail: the images are already downscaled, and it caps the token cost.
                json!({ "type": "image_url", "image_url": { "url": format!("data:image/jpeg;base64,{b64}"), "detail": "low" } })
            }));
            Value::Array(parts)
        };
        let mut messages = vec![
            json!({ "role": "system", "content": prompt.system }),
            json!({ "role": "user", "content": user_content }),
        ];
        messages.extend(followups.iter().map(|f| match f {
            FollowUp::Assistant(text) => json!({ "role": "assistant", "content": text }),
            FollowUp::User(text) => json!({ "role": "user", "content": text }),
        }));
        json!({
            "model": self.model,
            "temperature": 0,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": verdict::SCHEMA_NAME, "strict": true, "schema": verdict::schema() }
            },
        })
    }
}

/// The completions endpoint for a base given as the server root, `…/v1`, or the full endpoint.
fn completions_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

fn parse_reply(v: &Value, requested_model: &str) -> Result<ChatReply, LlmError> {
    let message = v.pointer("/choices/0/message").ok_or_else(|| {
        LlmError::Protocol("chat completion has no choices[0].message".to_string())
    })?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        return Err(LlmError::Refused {
            refusal: refusal.to_string(),
        });
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::Protocol("chat completion has no message content".to_string()))?;
    Ok(ChatReply {
        content: content.to_string(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_string(),
        prompt_tokens: v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        completion_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
}

impl ChatBackend for OpenAiLlm {
    fn chat<'a>(
        &'a self,
        prompt: &'a Prompt,
        followups: &'a [FollowUp],
    ) -> BoxFuture<'a, Result<ChatReply, LlmError>> {
        Box::pin(async move {
            let body = self.request_body(prompt, followups);
            let v = self.transport.post_json(&self.url, &body).await?;
            parse_reply(&v, &self.model)
        })
    }
}

impl Llm for OpenAiLlm {
    fn evaluate<'a>(&'a self, req: &'a EvalRequest) -> BoxFuture<'a, Result<LlmAnswer, LlmError>> {
        Box::pin(evaluate_with(self, req, self.image_max_px))
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_url_with_or_without_v1() {
        assert_eq!(
            completions_url("https://api.openai.com"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            completions_url("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            completions_url("http://h:8000/v1/chat/completions"),
            "http://h:8000/v1/chat/completions"
        );
    }

    #[test]
    fn parses_usage_and_refusals() {
        let v = json!({"model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "message": {"role": "assistant",
                       "content": "{}", "refusal": null}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1123, "completion_tokens": 24}});
        let r = parse_reply(&v, "x").unwrap();
        assert_eq!((r.prompt_tokens, r.completion_tokens), (1123, 24));
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "I can't help with that."}}]});
        assert!(matches!(
            parse_reply(&refused, "x"),
            Err(LlmError::Refused { .. })
        ));
    }
}
