//! `GET /metrics` in the Prometheus text format: HTTP request durations (recorded by a middleware),
//! and, read from the database at scrape time, jobs by kind and status, queue lag, LLM usage and
//! messages per sender account.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::jobs;
use crate::engine::Engine;

use super::queries;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request durations by (route, method, status).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl HttpMetrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        // Recording must never fail a request; a poisoned lock only means another recorder
        // panicked mid-update of plain counters.
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let h = series
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    fn render(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# HELP omni_http_request_duration_seconds HTTP request durations by route, method and status.\n");
        out.push_str("# TYPE omni_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in &series {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{status}\"",
                escape(route),
                escape(method)
            );
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "omni_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "omni_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "omni_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "omni_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition: HTTP metrics plus what the database says now.
pub async fn render(engine: &Engine, http: &HttpMetrics) -> Result<String, crate::db::DbError> {
    let db = engine.db();
    let now = engine.services().clock.now_ms();
    let mut out = String::new();

    header(&mut out, "omni_jobs", "gauge", "Jobs by kind and status.");
    for (kind, status, n) in jobs::counts(db).await? {
        let _ = writeln!(
            out,
            "omni_jobs{{kind=\"{}\",status=\"{status}\"}} {n}",
            escape(&kind)
        );
    }

    let (oldest, ready) = queries::ready_jobs(db, now).await?;
    header(
        &mut out,
        "omni_queue_ready_jobs",
        "gauge",
        "Jobs ready to run now.",
    );
    let _ = writeln!(out, "omni_queue_ready_jobs {ready}");
    header(
        &mut out,
        "omni_queue_lag_seconds",
        "gauge",
        "Age of the oldest job that is ready to run.",
    );
    let lag = oldest
        .map(|t| (now - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    let _ = writeln!(out, "omni_queue_lag_seconds {lag}");

    let llm = queries::llm_usage(db).await?;
    header(
        &mut out,
        "omni_llm_calls_total",
        "counter",
        "LLM verdicts stored, by model.",
    );
    for (model, calls, ..) in &llm {
        let _ = writeln!(
            out,
            "omni_llm_calls_total{{model=\"{}\"}} {calls}",
            escape(model)
        );
    }
    header(
        &mut out,
        "omni_llm_qualified_total",
        "counter",
        "LLM verdicts that qualified the profile, by model.",
    );
    for (model, _, qualified, ..) in &llm {
        let _ = writeln!(
            out,
            "omni_llm_qualified_total{{model=\"{}\"}} {qualified}",
            escape(model)
        );
    }
    header(
        &mut out,
        "omni_llm_tokens_total",
        "counter",
        "LLM tokens by model and direction.",
    );
    for (model, _, _, prompt, completion, _) in &llm {
        let m = escape(model);
        let _ = writeln!(
            out,
            "omni_llm_tokens_total{{model=\"{m}\",direction=\"prompt\"}} {prompt}"
        );
        let _ = writeln!(
            out,
            "omni_llm_tokens_total{{model=\"{m}\",direction=\"completion\"}} {completion}"
        );
    }
    header(
        &mut out,
        "omni_llm_latency_seconds_total",
        "counter",
        "Total LLM call latency, by model.",
    );
    for (model, .., latency_ms) in &llm {
        let _ = writeln!(
            out,
            "omni_llm_latency_seconds_total{{model=\"{}\"}} {}",
            escape(model),
            *latency_ms as f64 / 1000.0
        );
    }

    header(
        &mut out,
        "omni_messages",
        "gauge",
        "Messages by sender account and status.",
    );
    for (platform, handle, status, n) in queries::messages_by_account(db).await? {
        let _ = writeln!(
            out,
            "omni_messages{{platform=\"{}\",account=\"{}\",status=\"{}\"}} {n}",
            escape(&platform),
            escape(&handle),
            escape(&status)
        );
    }

    http.render(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = HttpMetrics::default();
        m.observe("/jobs", "GET", 200, Duration::from_millis(3));
        m.observe("/jobs", "GET", 200, Duration::from_millis(300));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(r#"omni_http_request_duration_seconds_bucket{route="/jobs",method="GET",status="200",le="0.005"} 1"#), "{out}");
        assert!(out.contains(r#"omni_http_request_duration_seconds_bucket{route="/jobs",method="GET",status="200",le="0.5"} 2"#), "{out}");
        assert!(out.contains(r#"omni_http_request_duration_seconds_count{route="/jobs",method="GET",status="200"} 2"#), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
