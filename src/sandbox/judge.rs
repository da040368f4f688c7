//! A simulated LLM judge on an OpenAI-compatible `/v1/chat/completions` route.
//!
//! It finds the sandbox profile a prompt is about (an `@handle` in a user message), reads the
//! campaign brief (system messages plus user text before the handle) for niche keywords, and
//! answers a verdict that follows the hidden truth with deterministic noise. Every verdict says
//! it is simulated, so it can never be mistaken for a real model's opinion.

use serde::Serialize;
use serde_json::Value;

use super::live::mention_tokens;
use super::rng::{hash_bytes, hash_ints, stream, unit};
use super::vocab::NICHES;
use super::world::{AccountIdx, Profile, World, DAY_MS};

/// The verdict the judge writes into `message.content`.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// Whether the profile fits.
    pub qualified: bool,
    /// 0–100.
    pub score: u8,
    /// Up to five short reasons; the first says the verdict is simulated.
    pub reasons: Vec<String>,
    /// Problems found.
    pub red_flags: Vec<String>,
    /// A personal first line for a message (≤ 300 characters).
    pub opener: String,
}

/// A request the judge could not understand, as an OpenAI-style error message.
#[derive(Debug)]
pub struct BadRequest(pub String);

/// The texts of a chat request: system/developer messages and user messages, in order.
struct Prompt {
    system: Vec<String>,
    user: Vec<String>,
    images: usize,
}

fn message_text(content: &Value, images: &mut usize) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = part.get("text").and_then(Value::as_str) {
                            out.push(t.to_string());
                        }
                    }
                    Some("image_url") => *images += 1,
                    _ => {}
                }
            }
            out.join("\n")
        }
        _ => String::new(),
    }
}

fn read_prompt(body: &Value) -> Result<Prompt, BadRequest> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| BadRequest("'messages' must be a non-empty array".into()))?;
    let mut prompt = Prompt { system: Vec::new(), user: Vec::new(), images: 0 };
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let text = message_text(m.get("content").unwrap_or(&Value::Null), &mut prompt.images);
        match role {
            "system" | "developer" => prompt.system.push(text),
            "user" => prompt.user.push(text),
            _ => {}
        }
    }
    Ok(prompt)
}

/// Finds the profile a prompt is about and the brief text that precedes it.
fn find_subject<'w>(world: &'w World, prompt: &Prompt) -> (Option<&'w Profile>, String) {
    let mut brief = prompt.system.join("\n");
    for (i, text) in prompt.user.iter().enumerate() {
        for (pos, name) in mention_tokens(text) {
            if let Some(p) = world.lookup(&name).and_then(|idx| world.profile(idx)) {
                for earlier in &prompt.user[..i] {
                    brief.push('\n');
                    brief.push_str(earlier);
                }
                brief.push('\n');
                brief.push_str(&text[..pos]);
                return (Some(p), brief);
            }
        }
    }
    // No @handle: accept a bare username token (usernames are distinctive enough).
    for text in &prompt.user {
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|t| t.len() >= 4) {
            if let Some(p) = world.lookup(token).and_then(|idx| world.profile(idx)) {
                let pos = text.find(token).unwrap_or(0);
                brief.push('\n');
                brief.push_str(&text[..pos]);
                return (Some(p), brief);
            }
        }
    }
    let all = prompt.user.join("\n");
    brief.push('\n');
    brief.push_str(&all);
    (None, brief)
}

/// How often each niche's keywords occur in `text` (whole words, case-insensitive).
fn niche_hits(text: &str) -> Vec<usize> {
    let lower = text.to_lowercase();
    NICHES
        .iter()
        .map(|n| n.keywords.iter().map(|k| count_word(&lower, k)).sum())
        .collect()
}

fn count_word(hay: &str, word: &str) -> usize {
    let bytes = hay.as_bytes();
    let mut count = 0;
    let mut from = 0;
    while let Some(off) = hay[from..].find(word) {
        let start = from + off;
        let end = start + word.len();
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric() || bytes[end] == b's';
        if before_ok && after_ok {
            count += 1;
        }
        from = end;
    }
    count
}

/// Judges the profile in `body` and returns the verdict with token counts.
pub fn judge(world: &World, now_ms: i64, body: &Value) -> Result<(Verdict, usize), BadRequest> {
    let prompt = read_prompt(body)?;
    let prompt_chars: usize = prompt.system.iter().chain(&prompt.user).map(|s| s.chars().count()).sum();
    let prompt_tokens = prompt_chars / 4 + 85 * prompt.images + 8;
    let (subject, brief) = find_subject(world, &prompt);
    let brief_hash = hash_bytes(brief.as_bytes());
    let Some(p) = subject else {
        let score = (hash_ints(&[world.seed, stream::JUDGE, brief_hash]) % 12) as u8;
        return Ok((
            Verdict {
                qualified: false,
                score,
                reasons: vec!["[simulated judge] no sandbox profile handle found in the prompt".into()],
                red_flags: vec!["[simulated judge] unknown profile: nothing to judge".into()],
                opener: String::new(),
            },
            prompt_tokens,
        ));
    };
    Ok((verdict_for(world, now_ms, p, &brief, brief_hash), prompt_tokens))
}

fn verdict_for(world: &World, now_ms: i64, p: &Profile, brief: &str, brief_hash: u64) -> Verdict {
    let niche = world.niche_of(p);
    let hits = niche_hits(brief);
    let max_hits = hits.iter().copied().max().unwrap_or(0);
    let own = hits[usize::from(p.niche)];
    let fit = if max_hits == 0 {
        0.5
    } else if own > 0 {
        0.6 + 0.4 * own as f64 / max_hits as f64
    } else {
        0.05
    };
    let t = &p.truth;
    let propensity = (t.reply_propensity / 0.45).min(1.0);
    let noise = (unit(hash_ints(&[world.seed, stream::JUDGE, u64::from(p.idx.0), brief_hash])) - 0.5) * 14.0;
    let raw = 100.0 * (0.5 * fit + 0.3 * propensity + 0.2 * t.quality) + noise;
    let mut score = raw.round().clamp(0.0, 100.0) as u8;
    let mut red_flags = Vec::new();
    if p.bot {
        score = score.min(12);
        red_flags.push("automated (bot) account".to_string());
    }
    if fit < 0.5 {
        red_flags.push(format!("posts about {}, which the brief does not ask for", niche.name));
    }
    if p.followers < 50 {
        red_flags.push(format!("very small audience ({} followers)", p.followers));
    }
    let idle_days = (now_ms - p.last_post_ms) / DAY_MS;
    if idle_days > 45 {
        red_flags.push(format!("no posts for {idle_days} days"));
    }
    let fit_text = match fit {
        f if f >= 0.6 => "matches the brief",
        f if f >= 0.5 => "brief names no niche",
        _ => "does not match the brief",
    };
    let reply_text = match t.reply_propensity {
        r if r >= 0.3 => "likely to reply",
        r if r >= 0.12 => "may reply",
        _ => "unlikely to reply",
    };
    let reasons = vec![
        "[simulated judge] verdict generated by the Omni sandbox from hidden truth, not by a model".to_string(),
        format!("niche: {} ({fit_text})", niche.name),
        format!("audience: {} followers", p.followers),
        format!("engagement: {:.1}% per post", t.engagement_rate * 100.0),
        format!("{reply_text} to a direct message"),
    ];
    Verdict { qualified: score >= 60 && !p.bot, score, reasons, red_flags, opener: opener(world, p) }
}

fn opener(world: &World, p: &Profile) -> String {
    let name = if p.display_name.starts_with(p.first_name) { p.first_name } else { p.display_name.as_str() };
    let latest = world.skeleton(p).into_iter().next();
    let line = match latest {
        Some(post) => {
            let body = world.post_body(p, &post);
            let snippet: String = body.sentence.chars().take(90).collect();
            format!("Hi {name}, your recent post (\"{snippet}\") really stood out to me, and I think you would be a great fit for what we are building in {}.", world.niche_of(p).name)
        }
        None => format!("Hi {name}, I have been enjoying your {} posts and wanted to reach out.", world.niche_of(p).name),
    };
    line.chars().take(300).collect()
}

/// The full `chat.completion` response for `body`.
pub fn completion(world: &World, now_ms: i64, body: &Value) -> Result<Value, BadRequest> {
    let (verdict, prompt_tokens) = judge(world, now_ms, body)?;
    let content = serde_json::to_string(&verdict).map_err(|e| BadRequest(e.to_string()))?;
    let completion_tokens = content.chars().count() / 4 + 1;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("sandbox-judge");
    let id = hash_ints(&[world.seed, stream::JUDGE, hash_bytes(body.to_string().as_bytes())]);
    Ok(serde_json::json!({
        "id": format!("chatcmpl-sandbox{id:016x}"),
        "object": "chat.completion",
        "created": now_ms / 1000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_omni_sandbox"
    }))
}

/// The account the judge would pick for a prompt (for tests and diagnostics).
pub fn subject_of(world: &World, body: &Value) -> Option<AccountIdx> {
    let prompt = read_prompt(body).ok()?;
    find_subject(world, &prompt).0.map(|p| p.idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_word_respects_word_boundaries_and_plurals() {
        assert_eq!(count_word("art and artists, art.", "art"), 2);
        assert_eq!(count_word("we want recipes", "recipe"), 1);
        assert_eq!(count_word("startup", "art"), 0);
    }
}
