//! The verdict an LLM returns for one profile: its JSON schema (sent to both providers) and the
//! parser that turns a raw answer into a validated [`Verdict`] or says exactly what was wrong.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Highest score a verdict may carry.
pub const MAX_SCORE: i64 = 100;
/// Most reasons a verdict may list.
pub const MAX_REASONS: usize = 5;
/// Longest a single reason may be, in characters (reasons are meant to be short).
pub const MAX_REASON_CHARS: usize = 200;
/// Most red flags a verdict may list.
pub const MAX_RED_FLAGS: usize = 10;
/// Longest a single red flag may be, in characters.
pub const MAX_RED_FLAG_CHARS: usize = 200;
/// Longest the DM opener may be, in characters.
pub const MAX_OPENER_CHARS: usize = 300;
/// The name the schema is sent under (OpenAI's `json_schema.name`).
pub const SCHEMA_NAME: &str = "profile_verdict";

/// A validated LLM judgement of one profile against one campaign brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the profile fits the brief.
    pub qualified: bool,
    /// Fit from 0 (none) to 100 (perfect).
    pub score: i64,
    /// Up to five short reasons for the score.
    pub reasons: Vec<String>,
    /// Reasons for caution (bot-like, off-topic, brand account, …); may be empty.
    pub red_flags: Vec<String>,
    /// A personal first line for the DM, at most 300 characters; may be empty when not qualified.
    pub opener: String,
}

/// The verdict's JSON schema, usable as Ollama's `format` and as OpenAI's strict
/// `response_format.json_schema.schema`: every object closes `additionalProperties` and lists all
/// its properties as required. String lengths are stated in descriptions rather than `maxLength`,
/// which OpenAI's strict mode rejects; [`parse`] enforces them.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "qualified": {
                "type": "boolean",
                "description": "true when the profile fits the campaign brief"
            },
            "score": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_SCORE,
                "description": "fit from 0 (none) to 100 (perfect), following the rubric"
            },
            "reasons": {
                "type": "array",
                "items": { "type": "string", "description": "one short sentence" },
                "maxItems": MAX_REASONS,
                "description": "up to 5 short reasons for the score"
            },
            "red_flags": {
                "type": "array",
                "items": { "type": "string", "description": "one short phrase" },
                "maxItems": MAX_RED_FLAGS,
                "description": "reasons for caution; empty when there are none"
            },
            "opener": {
                "type": "string",
                "description": "a personal first line for a direct message, at most 300 characters; empty when not qualified"
            }
        },
        "required": ["qualified", "score", "reasons", "red_flags", "opener"],
        "additionalProperties": false
    })
}

/// Parses a raw model answer (tolerating a Markdown code fence or prose around the object) and
/// validates it against the schema's rules. The error is a human-readable list of problems, meant
/// to be sent back to the model in a repair request.
pub fn parse(raw: &str) -> Result<Verdict, String> {
    let value = extract_json(raw)?;
    let obj = value
        .as_object()
        .ok_or_else(|| "the answer must be a single JSON object".to_string())?;
    let mut problems = Vec::new();

    let qualified = match obj.get("qualified") {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push("\"qualified\" must be true or false".to_string());
            false
        }
        None => {
            problems.push("\"qualified\" is missing".to_string());
            false
        }
    };
    let score = match obj.get("score") {
        Some(v) => match integral(v) {
            Some(n) if (0..=MAX_SCORE).contains(&n) => n,
            Some(n) => {
                problems.push(format!(
                    "\"score\" is {n}, but must be an integer from 0 to {MAX_SCORE}"
                ));
                0
            }
            None => {
                problems.push(format!(
                    "\"score\" is {v}, but must be an integer from 0 to {MAX_SCORE}"
                ));
                0
            }
        },
        None => {
            problems.push("\"score\" is missing".to_string());
            0
        }
    };
    let reasons = string_list(
        obj.get("reasons"),
        "reasons",
        MAX_REASONS,
        MAX_REASON_CHARS,
        &mut problems,
    );
    let red_flags = string_list(
        obj.get("red_flags"),
        "red_flags",
        MAX_RED_FLAGS,
        MAX_RED_FLAG_CHARS,
        &mut problems,
    );
    let opener = match obj.get("opener") {
        Some(Value::String(s)) => {
            let s = clean(s);
            let n = s.chars().count();
            if n > MAX_OPENER_CHARS {
                problems.push(format!(
                    "\"opener\" has {n} characters, but must have at most {MAX_OPENER_CHARS}"
                ));
            }
            s
        }
        Some(_) => {
            problems.push("\"opener\" must be a string".to_string());
            String::new()
        }
        None => {
            problems.push("\"opener\" is missing".to_string());
            String::new()
        }
    };

    if problems.is_empty() {
        Ok(Verdict {
            qualified,
            score,
            reasons,
            red_flags,
            opener,
        })
    } else {
        Err(problems.join("; "))
    }
}

/// Finds the JSON object in a raw answer: as is, inside a ```json fence, or between the first `{`
/// and the last `}` (some models add a sentence before or after).
fn extract_json(raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the answer was empty; reply with a JSON object".to_string());
    }
    let first_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Some(inner) = strip_fence(trimmed) {
        if let Ok(v) = serde_json::from_str::<Value>(inner) {
            return Ok(v);
        }
    }
    if let (Some(start), Some(end)) = (trimmed.find('{'), trimmed.rfind('}')) {
        if start < end {
            if let Ok(v) = serde_json::from_str::<Value>(&trimmed[start..=end]) {
                return Ok(v);
            }
        }
    }
    Err(format!("the answer is not valid JSON ({first_error})"))
}

/// The body of a Markdown code fence (```json … ``` or ``` … ```), if the text is one.
fn strip_fence(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("```")?;
    // The info string (e.g. `json`) runs to the end of the first line.
    let body_start = rest.find('\n')?;
    let body = &rest[body_start + 1..];
    let body = body.trim_end();
    Some(body.strip_suffix("```").unwrap_or(body).trim())
}

/// An integer, also accepting a float with no fractional part (`82.0`), which some models emit.
fn integral(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // The range check keeps the cast exact; anything larger is out of range anyway.
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Some(f as i64)
    } else {
        None
    }
}

fn string_list(
    v: Option<&Value>,
    name: &str,
    max_items: usize,
    max_chars: usize,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let Some(v) = v else {
        problems.push(format!("\"{name}\" is missing"));
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        problems.push(format!("\"{name}\" must be an array of strings"));
        return Vec::new();
    };
    if items.len() > max_items {
        problems.push(format!(
            "\"{name}\" has {} items, but must have at most {max_items}",
            items.len()
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => {
                let s = clean(s);
                let n = s.chars().count();
                if n > max_chars {
                    problems.push(format!(
                        "\"{name}\"[{i}] has {n} characters, but must have at most {max_chars}"
                    ));
                }
                out.push(s);
            }
            None => problems.push(format!("\"{name}\"[{i}] must be a string")),
        }
    }
    out
}

/// Model output is shown in the console and sent in DMs: drop terminal escapes and trim.
fn clean(s: &str) -> String {
    crate::text::strip_control(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Value {
        json!({"qualified": true, "score": 82, "reasons": ["ceramics studio owner"], "red_flags": [], "opener": "Loved your glaze tests!"})
    }

    #[test]
    fn parses_a_plain_answer() {
        let v = parse(&good().to_string()).unwrap();
        assert_eq!(v.score, 82);
        assert!(v.qualified);
        assert_eq!(v.reasons, vec!["ceramics studio owner"]);
    }

    #[test]
    fn tolerates_a_json_fence_and_surrounding_prose() {
        let fenced = format!("```json\n{}\n```", good());
        assert_eq!(parse(&fenced).unwrap().score, 82);
        let prose = format!("Here is my verdict: {} Hope this helps.", good());
        assert_eq!(parse(&prose).unwrap().score, 82);
    }

    #[test]
    fn accepts_an_integral_float_score_but_not_a_fraction() {
        let mut v = good();
        v["score"] = json!(82.0);
        assert_eq!(parse(&v.to_string()).unwrap().score, 82);
        v["score"] = json!(0.82);
        assert!(parse(&v.to_string()).unwrap_err().contains("score"));
    }

    #[test]
    fn rejects_out_of_range_values_with_a_precise_message() {
        let mut v = good();
        v["score"] = json!(150);
        v["reasons"] = json!(["a", "b", "c", "d", "e", "f"]);
        v["opener"] = json!("x".repeat(301));
        let err = parse(&v.to_string()).unwrap_err();
        assert!(err.contains("\"score\" is 150"), "{err}");
        assert!(err.contains("\"reasons\" has 6 items"), "{err}");
        assert!(err.contains("\"opener\" has 301 characters"), "{err}");
    }

    #[test]
    fn reports_missing_fields_and_non_json() {
        let err = parse(r#"{"qualified": true}"#).unwrap_err();
        assert!(
            err.contains("\"score\" is missing") && err.contains("\"opener\" is missing"),
            "{err}"
        );
        assert!(parse("I think this profile is great")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse("").is_err());
        assert!(parse("[1,2]").unwrap_err().contains("single JSON object"));
    }

    #[test]
    fn strips_terminal_escapes_from_strings() {
        let mut v = good();
        v["opener"] = json!("Hi\u{1b}[31m there ");
        assert_eq!(parse(&v.to_string()).unwrap().opener, "Hi there");
    }

    #[test]
    fn schema_is_strict_mode_compatible() {
        let s = schema();
        assert_eq!(s["additionalProperties"], json!(false));
        let props: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(props.len(), required.len());
        for p in props {
            assert!(required.contains(&p.as_str()), "{p} not required");
        }
    }
}
