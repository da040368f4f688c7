//! The cheap score (DESIGN §7): a logistic model over standardized profile features, evaluated in
//! SQL for whole campaigns at once and in Rust for learning. `cheap_score` stores the logit
//! w·z + b; σ of it is the estimated reply probability (ranking is the same either way).
//!
//! Recency (`days_since_post`) is measured from the start of the current UTC day
//! ([`score_epoch`]), not from the current millisecond: a stored score then stays the same all day
//! unless the profile's features or the weights change, so a re-run of the hourly full maintenance
//! finds nothing to rewrite.

use serde::{Deserialize, Serialize};

use crate::db::SqlValue;
use crate::engine::clock::Millis;
use crate::engine::criteria::compile::like_pattern;

/// The features the score uses, in weight order.
pub const FEATURES: [&str; 6] = [
    "log_followers",
    "engagement_rate",
    "posts_per_week",
    "days_since_post",
    "keyword_hits",
    "has_link",
];

const DAY_MS: f64 = 86_400_000.0;
const DAY_MS_INT: Millis = 86_400_000;
/// A profile that never posted counts as this many days since its last post.
const NEVER_POSTED_DAYS: f64 = 365.0;

/// A campaign's score weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// One weight per standardized feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Feature means used to standardize.
    pub means: Vec<f64>,
    /// Feature standard deviations used to standardize.
    pub stds: Vec<f64>,
    /// The `campaign_weights` version (0 = the prior).
    pub version: i64,
}

impl Weights {
    /// The prior every campaign starts from: active, engaged, on-topic, not-too-famous people reply.
    pub fn prior() -> Self {
        Self {
            weights: vec![-0.3, 0.4, 0.3, -0.6, 0.8, 0.1],
            intercept: -2.0,
            means: vec![7.0, 0.03, 3.0, 30.0, 0.5, 0.5],
            stds: vec![2.0, 0.03, 3.0, 60.0, 0.7, 0.5],
            version: 0,
        }
    }

    /// The logit for raw feature values `x`.
    pub fn logit(&self, x: &[f64]) -> f64 {
        self.intercept
            + x.iter()
                .zip(&self.weights)
                .zip(self.means.iter().zip(&self.stds))
                .map(|((x, w), (m, s))| w * (x - m) / s.max(1e-9))
                .sum::<f64>()
    }
}

/// The instant recency is measured from at `now`: the start of its UTC day.
pub fn score_epoch(now: Millis) -> Millis {
    now - now.rem_euclid(DAY_MS_INT)
}

/// σ(x).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Raw feature values of one profile at `now` (the Rust mirror of [`score_sql`]'s expressions;
/// recency counts from [`score_epoch`]`(now)`).
#[allow(clippy::too_many_arguments)]
pub fn raw_features(
    log_followers: f64,
    engagement_rate: f64,
    posts_per_week: f64,
    last_post_at: Option<Millis>,
    text: &str,
    has_link: bool,
    keywords: &[String],
    now: Millis,
) -> Vec<f64> {
    let epoch = score_epoch(now);
    let days = last_post_at
        .map(|t| ((epoch - t) as f64 / DAY_MS).clamp(0.0, NEVER_POSTED_DAYS))
        .unwrap_or(NEVER_POSTED_DAYS);
    let text = text.to_lowercase();
    let hits = keywords
        .iter()
        .filter(|k| text.contains(&k.to_lowercase()))
        .count() as f64;
    vec![
        log_followers,
        engagement_rate.min(0.25),
        posts_per_week.min(50.0),
        days,
        hits,
        has_link as u8 as f64,
    ]
}

/// A SQL expression over `pf` computing the logit at `now` (recency from [`score_epoch`]), with
/// placeholders from `first_param`, and its values.
pub fn score_sql(
    w: &Weights,
    keywords: &[String],
    now: Millis,
    first_param: usize,
) -> (String, Vec<SqlValue>) {
    let mut params = Vec::new();
    let mut next = first_param;
    let mut p = |v: SqlValue, params: &mut Vec<SqlValue>| {
        params.push(v);
        next += 1;
        format!("${}", next - 1)
    };
    let epoch_p = p(SqlValue::Int(score_epoch(now)), &mut params);
    let mut hits = Vec::new();
    for k in keywords {
        let ph = p(SqlValue::Text(like_pattern(&k.to_lowercase())), &mut params);
        hits.push(format!(
            "(CASE WHEN pf.text LIKE {ph} ESCAPE '\\' THEN 1.0 ELSE 0.0 END)"
        ));
    }
    let hits = if hits.is_empty() {
        "0.0".to_string()
    } else {
        hits.join(" + ")
    };
    let exprs = [
        "pf.log_followers".to_string(),
        "(CASE WHEN pf.engagement_rate > 0.25 THEN 0.25 ELSE pf.engagement_rate END)".to_string(),
        "(CASE WHEN pf.posts_per_week > 50.0 THEN 50.0 ELSE pf.posts_per_week END)".to_string(),
        format!(
            "(CASE WHEN pf.last_post_at IS NULL THEN 365.0 WHEN ({epoch_p} - pf.last_post_at) / 86400000.0 > 365.0 THEN 365.0 \
             WHEN pf.last_post_at > {epoch_p} THEN 0.0 ELSE ({epoch_p} - pf.last_post_at) / 86400000.0 END)"
        ),
        format!("({hits})"),
        "(pf.has_link * 1.0)".to_string(),
    ];
    let mut terms = vec![p(SqlValue::Float(w.intercept), &mut params)];
    for (i, e) in exprs.iter().enumerate() {
        let scale = w.weights[i] / w.stds[i].max(1e-9);
        let a = p(SqlValue::Float(scale), &mut params);
        let m = p(SqlValue::Float(w.means[i]), &mut params);
        terms.push(format!("{a} * ({e} - {m})"));
    }
    (format!("({})", terms.join(" + ")), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_prefers_active_on_topic_profiles() {
        let w = Weights::prior();
        let now = 100 * 86_400_000;
        let kw = vec!["vegan".to_string()];
        let active = raw_features(
            7.0,
            0.05,
            5.0,
            Some(now - 86_400_000),
            "vegan food",
            true,
            &kw,
            now,
        );
        let idle = raw_features(7.0, 0.01, 0.1, None, "cars", false, &kw, now);
        assert!(w.logit(&active) > w.logit(&idle));
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn recency_counts_from_the_start_of_the_utc_day() {
        let day = 86_400_000;
        let midnight = 20_000 * day;
        assert_eq!(score_epoch(midnight), midnight);
        assert_eq!(score_epoch(midnight + day - 1), midnight);
        assert_eq!(score_epoch(-1), -day);
        let at = |now| {
            raw_features(
                7.0,
                0.05,
                5.0,
                Some(midnight - 3 * day),
                "",
                false,
                &[],
                now,
            )
        };
        // The same all day long, one more day at the next midnight.
        assert_eq!(at(midnight), at(midnight + 13 * 3_600_000));
        assert_eq!(at(midnight)[3], 3.0);
        assert_eq!(at(midnight + day)[3], 4.0);
        // A post later the same day counts as today's.
        let later = raw_features(
            7.0,
            0.05,
            5.0,
            Some(midnight + 3_600_000),
            "",
            false,
            &[],
            midnight + 7_200_000,
        );
        assert_eq!(later[3], 0.0);
    }
}
