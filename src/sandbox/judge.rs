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

/// Score from which a verdict is `qualified` (Omni's rubric: 70 or more).
pub const QUALIFIED_SCORE: u8 = 70;

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
    let mut prompt = Prompt {
        system: Vec::new(),
        user: Vec::new(),
        images: 0,
    };
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

/// The text between the first `open` and the following `close` marker, with its byte range.
fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<(&'t str, usize, usize)> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some((&text[start..end], start, end))
}

/// Finds the profile a prompt is about and the campaign brief it is judged against.
///
/// The profile is named, in order of preference, by a JSON `"handle": "…"` field (how Omni's
/// prompt renders profiles), an `@handle` in a user message, or a bare username token. The brief
/// is the text inside `<brief>…</brief>` when present, else the system messages plus the user
/// text before the handle.
fn find_subject<'w>(world: &'w World, prompt: &Prompt) -> (Option<&'w Profile>, String) {
    let user = prompt.user.join("\n");
    let tagged = between(&user, "<brief>", "</brief>");
    let in_brief = |pos: usize| tagged.is_some_and(|(_, s, e)| pos >= s && pos < e);
    let profile_named = |name: &str| world.lookup(name).and_then(|idx| world.profile(idx));
    let mut found: Option<(usize, &Profile)> = None;
    // 1. "handle": "name" (JSON).
    let mut from = 0;
    while found.is_none() {
        let Some(off) = user[from..].find("\"handle\"") else {
            break;
        };
        let key_end = from + off + "\"handle\"".len();
        let rest = user[key_end..].trim_start();
        if let Some(value) = rest
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('"'))
        {
            let name: String = value.chars().take_while(|c| *c != '"').collect();
            if let Some(p) = profile_named(&name).filter(|_| !in_brief(key_end)) {
                found = Some((from + off, p));
            }
        }
        from = key_end;
    }
    // 2. @handle.
    if found.is_none() {
        found = mention_tokens(&user)
            .into_iter()
            .filter(|(pos, _)| !in_brief(*pos))
            .find_map(|(pos, name)| profile_named(&name).map(|p| (pos, p)));
    }
    // 3. A bare username (usernames are distinctive: they carry an underscore, digits or two words).
    if found.is_none() {
        let mut pos = 0;
        for token in user.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if token.len() >= 4 && !in_brief(pos) {
                if let Some(p) = profile_named(token) {
                    found = Some((pos, p));
                    break;
                }
            }
            pos += token.len() + 1;
        }
    }
    let brief = match tagged {
        Some((b, _, _)) => b.to_string(),
        None => {
            let cut = found.map_or(user.len(), |(pos, _)| pos);
            let mut brief = prompt.system.join("\n");
            brief.push('\n');
            brief.push_str(&user[..cut]);
            brief
        }
    };
    (found.map(|(_, p)| p), brief)
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
        let after_ok =
            end >= bytes.len() || !bytes[end].is_ascii_alphanumeric() || bytes[end] == b's';
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
    let prompt_chars: usize = prompt
        .system
        .iter()
        .chain(&prompt.user)
        .map(|s| s.chars().count())
        .sum();
    let prompt_tokens = prompt_chars / 4 + 85 * prompt.images + 8;
    let (subject, brief) = find_subject(world, &prompt);
    let brief_hash = hash_bytes(brief.as_bytes());
    let Some(p) = subject else {
        let score = (hash_ints(&[world.seed, stream::JUDGE, brief_hash]) % 12) as u8;
        return Ok((
            Verdict {
                qualified: false,
                score,
                reasons: vec![
                    "[simulated judge] no sandbox profile handle found in the prompt".into(),
                ],
                red_flags: vec!["[simulated judge] unknown profile: nothing to judge".into()],
                opener: String::new(),
            },
            prompt_tokens,
        ));
    };
    Ok((
        verdict_for(world, now_ms, p, &brief, brief_hash),
        prompt_tokens,
    ))
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
    let noise = (unit(hash_ints(&[
        world.seed,
        stream::JUDGE,
        u64::from(p.idx.0),
        brief_hash,
    ])) - 0.5)
        * 14.0;
    let raw = 100.0 * (0.5 * fit + 0.3 * propensity + 0.2 * t.quality) + noise;
    let mut score = raw.round().clamp(0.0, 100.0) as u8;
    let mut red_flags = Vec::new();
    if p.bot {
        score = score.min(12);
        red_flags.push("automated (bot) account".to_string());
    }
    if fit < 0.5 {
        red_flags.push(format!(
            "posts about {}, which the brief does not ask for",
            niche.name
        ));
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
        "[simulated judge] verdict generated by the Omni sandbox from hidden truth, not by a model"
            .to_string(),
        format!("niche: {} ({fit_text})", niche.name),
        format!("audience: {} followers", p.followers),
        format!("engagement: {:.1}% per post", t.engagement_rate * 100.0),
        format!("{reply_text} to a direct message"),
    ];
    Verdict {
        qualified: score >= QUALIFIED_SCORE && !p.bot && fit >= 0.5,
        score,
        reasons,
        red_flags,
        opener: opener(world, p),
    }
}

fn opener(world: &World, p: &Profile) -> String {
    let name = if p.display_name.starts_with(p.first_name) {
        p.first_name
    } else {
        p.display_name.as_str()
    };
    let latest = world.skeleton(p).into_iter().next();
    let line = match latest {
        Some(post) => {
            let body = world.post_body(p, &post);
            let snippet: String = body.sentence.chars().take(90).collect();
            format!("Hi {name}, your recent post (\"{snippet}\") really stood out to me. I'd love to tell you about a collaboration that fits your {} work.", world.niche_of(p).name)
        }
        None => format!(
            "Hi {name}, I have been enjoying your {} posts and wanted to reach out.",
            world.niche_of(p).name
        ),
    };
    line.chars().take(300).collect()
}

/// The full `chat.completion` response for `body`.
pub fn completion(world: &World, now_ms: i64, body: &Value) -> Result<Value, BadRequest> {
    let (verdict, prompt_tokens) = judge(world, now_ms, body)?;
    let content = serde_json::to_string(&verdict).map_err(|e| BadRequest(e.to_string()))?;
    let completion_tokens = content.chars().count() / 4 + 1;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("sandbox-judge");
    let id = hash_ints(&[
        world.seed,
        stream::JUDGE,
        hash_bytes(body.to_string().as_bytes()),
    ]);
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
    use crate::sandbox::world::WorldParams;

    fn world() -> World {
        World::generate(&WorldParams {
            seed: 3,
            profiles: 200,
            senders: vec![],
            anchor_ms: 1_767_225_600_000,
        })
    }

    #[test]
    fn omni_style_prompts_name_the_profile_by_json_handle_and_the_brief_by_tags() {
        let w = world();
        let p = w
            .profiles
            .iter()
            .find(|p| NICHES[usize::from(p.niche)].name == "gaming")
            .expect("a gamer");
        let body = serde_json::json!({"messages": [
            {"role": "system", "content": "You are a careful analyst. Fashion model photography recipes."},
            {"role": "user", "content": format!(
                "Campaign brief:\n<brief>\nIndie game streamers for our gaming launch\n</brief>\n\nProfile:\n<profile>\n{{\"handle\": \"{}\", \"bio\": \"I love cooking recipes\"}}\n</profile>",
                p.username
            )}
        ]});
        assert_eq!(subject_of(&w, &body), Some(p.idx));
        let prompt = read_prompt(&body).expect("prompt");
        let (_, brief) = find_subject(&w, &prompt);
        assert_eq!(brief.trim(), "Indie game streamers for our gaming launch");
        let (verdict, _) = judge(&w, 1_767_225_600_000, &body).expect("verdict");
        assert!(
            verdict.reasons[1].contains("matches the brief"),
            "{:?}",
            verdict.reasons
        );
    }

    #[test]
    fn count_word_respects_word_boundaries_and_plurals() {
        assert_eq!(count_word("art and artists, art.", "art"), 2);
        assert_eq!(count_word("we want recipes", "recipe"), 1);
        assert_eq!(count_word("startup", "art"), 0);
    }
}
