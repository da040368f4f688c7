//! When and how long to wait before retrying an LLM call: which statuses are worth a retry, the
//! server's own hints (`retry-after-ms`, `Retry-After` in seconds or as an HTTP date,
//! `x-ratelimit-reset-*`, `x-should-retry`), and exponential backoff with jitter otherwise.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::HeaderMap;

/// How often and how patiently a provider retries one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` requests).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles with each further retry.
    pub base: Duration,
    /// Longest backoff between two attempts.
    pub cap: Duration,
    /// Longest server-requested wait we sit out; a longer one fails the call at once so the job
    /// queue can reschedule it instead of holding a worker.
    pub max_server_wait: Duration,
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0 for the first retry): `base · 2^retry`, capped, with
    /// "equal jitter" (half fixed, half random) so many workers do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << retry.min(20));
        let full = exp.min(self.cap);
        let half = full / 2;
        let jitter_ms = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// Statuses worth retrying: request timeout, conflict, rate limit and server errors (including
/// Ollama's 503 "server busy").
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// The server's explicit retry verdict (`x-should-retry: true|false`), which overrides the status.
pub fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// How long the server asked us to wait, from the first of: `retry-after-ms`, `Retry-After`
/// (seconds or an HTTP date), and the `x-ratelimit-reset-*` headers of exhausted limits.
pub fn server_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
    {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if let Some(v) = header_str(headers, "retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs));
            }
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(v) {
            return Some(until(at.with_timezone(&Utc), now));
        }
    }
    ratelimit_reset(headers, now)
}

/// The longest reset among rate limits that are exhausted (`x-ratelimit-remaining-<x>: 0`, or no
/// remaining header at all), e.g. `x-ratelimit-reset-tokens: 2.04s`.
fn ratelimit_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let mut longest: Option<Duration> = None;
    for (name, value) in headers {
        let Some(dim) = name.as_str().strip_prefix("x-ratelimit-reset") else {
            continue;
        };
        let remaining_name = format!("x-ratelimit-remaining{dim}");
        let exhausted = match header_str(headers, &remaining_name) {
            Some(r) => r.trim().parse::<f64>().map(|n| n <= 0.0).unwrap_or(true),
            None => true,
        };
        if !exhausted {
            continue;
        }
        let Some(wait) = value.to_str().ok().and_then(|v| parse_reset(v.trim(), now)) else {
            continue;
        };
        longest = Some(longest.map_or(wait, |l| l.max(wait)));
    }
    longest
}

/// A reset value in any of the forms providers use: a Go duration (`6m0s`, `12ms`), plain
/// seconds, unix seconds or milliseconds, or an RFC 3339 time.
fn parse_reset(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(n) = v.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let now_s = now.timestamp_millis() as f64 / 1000.0;
        return Some(if n > 1e12 {
            Duration::from_secs_f64((n / 1000.0 - now_s).max(0.0))
        } else if n > 1e9 {
            Duration::from_secs_f64((n - now_s).max(0.0))
        } else {
            Duration::from_secs_f64(n)
        });
    }
    if let Some(d) = parse_go_duration(v) {
        return Some(d);
    }
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|at| until(at.with_timezone(&Utc), now))
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// Parses a Go-style duration such as `1h2m3.5s`, `6m0s`, `2.04s`, `12ms`, `500us`, `0s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * secs_per_unit;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            parse_go_duration("2.04s"),
            Some(Duration::from_millis(2040))
        );
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration("5"), None);
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let h = headers(&[("retry-after-ms", "150"), ("retry-after", "2")]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_millis(150)));
    }

    #[test]
    fn retry_after_in_seconds_and_as_http_date() {
        assert_eq!(
            server_wait(&headers(&[("retry-after", "2")]), now()),
            Some(Duration::from_secs(2))
        );
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]);
        assert_eq!(server_wait(&past, now()), Some(Duration::ZERO));
    }

    #[test]
    fn ratelimit_reset_only_counts_exhausted_limits() {
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "2.04s"),
        ]);
        assert_eq!(server_wait(&h, now()), Some(Duration::from_millis(2040)));
        let none_exhausted = headers(&[
            ("x-ratelimit-remaining-tokens", "10"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(server_wait(&none_exhausted, now()), None);
        let epoch = headers(&[("x-ratelimit-reset", &(now().timestamp() + 5).to_string())]);
        assert_eq!(server_wait(&epoch, now()), Some(Duration::from_secs(5)));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            max_server_wait: Duration::from_secs(60),
        };
        for retry in 0..6 {
            let full = Duration::from_millis((100u64 << retry).min(1000));
            let d = p.backoff(retry);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn statuses() {
        for s in [408, 409, 429, 500, 502, 503] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!retryable_status(s), "{s}");
        }
        assert_eq!(
            should_retry_header(&headers(&[("x-should-retry", "false")])),
            Some(false)
        );
    }
}
