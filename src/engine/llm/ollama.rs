//! The Ollama provider: the native `POST /api/chat` with `stream: false`, the verdict schema as
//! `format`, temperature 0, and images as raw base64 in `messages[].images`.

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::transport::Transport;
use super::{
    evaluate_with, verdict, ChatBackend, ChatReply, EvalRequest, FollowUp, Llm, LlmAnswer,
    LlmConfig, LlmError, Prompt, ProviderKind,
};

/// Talks to an Ollama server.
#[derive(Debug)]
pub struct OllamaLlm {
    transport: Transport,
    url: String,
    model: String,
    image_max_px: u32,
}

impl OllamaLlm {
    /// A provider for `cfg.base_url` (the server root, e.g. `http://127.0.0.1:11434`).
    pub fn new(cfg: &LlmConfig) -> Result<Self, LlmError> {
        Ok(Self {
            transport: cfg.transport()?,
            url: chat_url(&cfg.base_url),
            model: cfg.model.clone(),
            image_max_px: cfg.image_max_px,
        })
    }

    /// The `/api/chat` body for a conversation.
    pub(crate) fn request_body(&self, prompt: &Prompt, followups: &[FollowUp]) -> Value {
        let mut user = json!({ "role": "user", "content": prompt.user });
        if !prompt.images_base64.is_empty() {
            user["images"] = json!(prompt.images_base64);
        }
        let mut messages = vec![json!({ "role": "system", "content": prompt.system }), user];
        messages.extend(followups.iter().map(|f| match f {
            FollowUp::Assistant(text) => json!({ "role": "assistant", "content": text }),
            FollowUp::User(text) => json!({ "role": "user", "content": text }),
        }));
        json!({
            "model": self.model,
            "stream": false,
            "format": verdict::schema(),
            "options": { "temperature": 0 },
            "messages": messages,
        })
    }
}

/// `{base}/api/chat`, tolerating a trailing slash or `/api` on the base.
fn chat_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/api").unwrap_or(base);
    format!("{base}/api/chat")
}

fn parse_reply(v: &Value, requested_model: &str) -> Result<ChatReply, LlmError> {
    let content = v
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::Protocol("Ollama answer has no message.content".to_string()))?;
    Ok(ChatReply {
        content: content.to_string(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_string(),
        // Metric keys are omitempty in Ollama, so a missing count is zero.
        prompt_tokens: v
            .get("prompt_eval_count")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        completion_tokens: v.get("eval_count").and_then(Value::as_i64).unwrap_or(0),
    })
}

impl ChatBackend for OllamaLlm {
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

impl Llm for OllamaLlm {
    fn evaluate<'a>(&'a self, req: &'a EvalRequest) -> BoxFuture<'a, Result<LlmAnswer, LlmError>> {
        Box::pin(evaluate_with(self, req, self.image_max_px))
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Ollama
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_url_from_any_base() {
        assert_eq!(chat_url("http://h:11434"), "http://h:11434/api/chat");
        assert_eq!(chat_url("http://h:11434/"), "http://h:11434/api/chat");
        assert_eq!(chat_url("http://h:11434/api"), "http://h:11434/api/chat");
    }

    #[test]
    fn parses_the_reference_response() {
        let v = json!({"model": "llava", "message": {"role": "assistant", "content": "{}"}, "done": true,
                       "prompt_eval_count": 34, "eval_count": 12});
        let r = parse_reply(&v, "x").unwrap();
        assert_eq!(
            (r.model.as_str(), r.prompt_tokens, r.completion_tokens),
            ("llava", 34, 12)
        );
        assert!(parse_reply(&json!({"done": true}), "x").is_err());
    }
}
