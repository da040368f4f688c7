//! `weights.update` (DESIGN §7): per campaign, fits a logistic regression (linfa-logistic) of
//! "replied within the window" on the cheap score's features of the people we messaged, blends it
//! toward the prior while samples are few, stores it as a new `campaign_weights` version with its
//! AUC, and rescores the campaign's candidates with it.

use std::collections::HashMap;

use linfa::traits::Fit;
use linfa::Dataset;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tracing::info;

use crate::db::campaigns::{self, Campaign, CampaignId, CampaignStatus};
use crate::engine::clock::Millis;
use crate::engine::pipeline::candidates::maintain_campaign;
use crate::engine::pipeline::score::{raw_features, Weights, FEATURES};
use crate::engine::queue::{JobError, NewJob};
use crate::engine::service::{Ctx, Services};
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// The job kind.
pub const KIND: &str = "weights.update";

const DAY_MS: Millis = 86_400_000;
/// From this many samples on, the reported AUC is measured on held-out samples (every fifth).
const HOLDOUT_FROM: usize = 200;

/// `[learning]`: how score weights are learned.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// A reply counts when it comes within this many days of the message; messages younger than
    /// this (and not yet replied to) are left out until their window closes.
    pub reply_window_days: u32,
    /// Below this many samples the fit is blended toward the prior with weight n / (n + min_samples).
    pub min_samples: u32,
    /// L2 regularization strength of the fit.
    pub l2: f64,
}

impl Default for LearningConfig {
    fn default() -> Self {
        Self {
            reply_window_days: 7,
            min_samples: 30,
            l2: 1.0,
        }
    }
}

impl LearningConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(format!("l2 = {} must be a non-negative number", self.l2));
        }
        Ok(())
    }
}

/// The payload of `weights.update`: one campaign, or every active campaign when empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LearnPayload {
    /// Only this campaign.
    #[serde(default)]
    pub campaign_id: Option<i64>,
}

/// Registers `weights.update`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register(KIND, |ctx: JobCtx<Ctx>| async move {
        let p: LearnPayload = if ctx.job.payload.is_null() {
            LearnPayload::default()
        } else {
            ctx.payload()?
        };
        let ids: Vec<CampaignId> = match p.campaign_id {
            Some(id) => vec![CampaignId(id)],
            None => campaigns::list(&ctx.ctx.db, Some(CampaignStatus::Active))
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect(),
        };
        let mut reports = Vec::new();
        for id in ids {
            reports.push(update_weights(&ctx.ctx, id).await?);
        }
        let result: JobResult = Ok(Some(serde_json::to_value(&reports).unwrap_or_default()));
        result
    });
}

/// A learning run of one campaign, as a job.
pub fn job_for(id: CampaignId) -> NewJob {
    NewJob::new(KIND, serde_json::json!({ "campaign_id": id.0 }))
        .unique(format!("{KIND}:{id}"))
        .campaign(id.0)
}

/// What a learning run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnReport {
    pub campaign_id: CampaignId,
    /// Messaged people whose outcome is known.
    pub n_samples: usize,
    /// Of them, those who replied within the window.
    pub positives: usize,
    /// The weights in force before.
    pub previous: Weights,
    /// The new weights (None when nothing could be learned).
    pub new: Option<Weights>,
    /// AUC of the new weights.
    pub auc: Option<f64>,
    /// Where the AUC was measured: `training` or `held-out`.
    pub auc_on: &'static str,
    /// How much of the fit (vs. the prior) the new weights hold: n / (n + min_samples).
    pub blend: f64,
    /// Candidates rescored with the new weights.
    pub candidates: i64,
    /// Why nothing was learned, when so.
    pub skipped: Option<String>,
    /// The feature names, in weight order.
    pub features: Vec<&'static str>,
}

/// Errors of a learning run.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// No such campaign.
    #[error("campaign {0} not found")]
    NotFound(CampaignId),
    /// A database failure.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<sqlx::Error> for LearnError {
    fn from(e: sqlx::Error) -> Self {
        LearnError::Db(e.into())
    }
}

impl From<LearnError> for JobError {
    fn from(e: LearnError) -> Self {
        match e {
            LearnError::NotFound(_) => JobError::Permanent(e.to_string()),
            LearnError::Db(d) => d.into(),
        }
    }
}

/// A stable bucket 0–4 for a sample (FNV-1a over its feature bits): bucket 0 is held out.
fn holdout_bucket(s: &Sample) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in &s.x {
        for b in x.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h % 5
}

/// One labelled example: raw features and whether the person replied in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub x: Vec<f64>,
    pub replied: bool,
}

/// The labelled examples of a campaign at `now`: one per messaged lead (its latest sent message),
/// labelled replied when a reply came within `window_days`; unreplied messages younger than the
/// window are left out.
pub async fn samples(
    svc: &Services,
    c: &Campaign,
    window_days: u32,
    now: Millis,
) -> Result<Vec<Sample>, LearnError> {
    let window = i64::from(window_days) * DAY_MS;
    let rows = sqlx::query(
        "SELECT l.id AS lead_id, l.status, m.sent_at, pf.log_followers, pf.engagement_rate, pf.posts_per_week, pf.last_post_at, \
         pf.text, pf.has_link, (SELECT MIN(fe.occurred_at) FROM feedback_events fe WHERE fe.lead_id = l.id \
         AND fe.kind IN ('replied', 'positive')) AS replied_at \
         FROM leads l JOIN messages m ON m.lead_id = l.id JOIN profile_features pf ON pf.profile_id = l.profile_id \
         WHERE l.campaign_id = $1 AND m.status = 'sent' AND m.sent_at IS NOT NULL ORDER BY l.id, m.sent_at",
    )
    .bind(c.id.0)
    .fetch_all(c_pool(svc))
    .await?;
    let mut by_lead: HashMap<i64, Sample> = HashMap::new();
    let mut order = Vec::new();
    for r in rows {
        let lead: i64 = r.try_get("lead_id")?;
        let status: String = r.try_get("status")?;
        let sent_at: i64 = r.try_get("sent_at")?;
        let replied_at: Option<i64> = r.try_get("replied_at")?;
        let replied = match replied_at {
            Some(t) => t - sent_at <= window,
            None => status == "replied",
        };
        if !replied && now - sent_at < window {
            continue;
        }
        let x = raw_features(
            r.try_get("log_followers")?,
            r.try_get("engagement_rate")?,
            r.try_get("posts_per_week")?,
            r.try_get("last_post_at")?,
            &r.try_get::<String, _>("text")?,
            r.try_get::<i64, _>("has_link")? != 0,
            &c.spec.filter.keywords_any,
            sent_at,
        );
        if by_lead.insert(lead, Sample { x, replied }).is_none() {
            order.push(lead);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|l| by_lead.remove(&l))
        .collect())
}

fn c_pool(svc: &Services) -> &sqlx::AnyPool {
    svc.db.pool()
}

/// Learns new weights for one campaign now, stores them as a new version and rescores the
/// campaign's candidates. Nothing is stored when the samples hold only one class.
pub async fn update_weights(svc: &Services, id: CampaignId) -> Result<LearnReport, LearnError> {
    let cfg = &svc.config.learning;
    let now = svc.clock.now_ms();
    let c = campaigns::get(&svc.db, id)
        .await?
        .ok_or(LearnError::NotFound(id))?;
    let previous = {
        let mut conn = svc.db.pool().acquire().await?;
        campaigns::weights_on(&mut conn, id).await?
    };
    let samples = samples(svc, &c, cfg.reply_window_days, now).await?;
    let positives = samples.iter().filter(|s| s.replied).count();
    let mut report = LearnReport {
        campaign_id: id,
        n_samples: samples.len(),
        positives,
        previous,
        new: None,
        auc: None,
        auc_on: "training",
        blend: 0.0,
        candidates: 0,
        skipped: None,
        features: FEATURES.to_vec(),
    };
    if positives == 0 || positives == samples.len() {
        report.skipped = Some(format!(
            "need both replies and non-replies to learn: {positives} of {} messaged people replied within {} days",
            samples.len(),
            cfg.reply_window_days
        ));
        return Ok(report);
    }
    let prior = Weights::prior();
    let fitted = match fit_blended(&samples, &prior, cfg.min_samples, cfg.l2) {
        Ok(w) => w,
        Err(e) => {
            report.skipped = Some(format!("the fit failed: {e}"));
            return Ok(report);
        }
    };
    report.blend = blend_weight(samples.len(), cfg.min_samples);
    let (auc, on) = if samples.len() >= HOLDOUT_FROM {
        // Split by a hash of each sample's content, not its position: the order samples come in
        // depends on how concurrent jobs finished, and the reported AUC must be repeatable.
        let (test, train): (Vec<Sample>, Vec<Sample>) = samples
            .iter()
            .cloned()
            .partition(|s| holdout_bucket(s) == 0);
        match fit_blended(&train, &prior, cfg.min_samples, cfg.l2) {
            Ok(w) => (auc(&w, &test), "held-out"),
            Err(_) => (auc(&fitted, &samples), "training"),
        }
    } else {
        (auc(&fitted, &samples), "training")
    };
    let version =
        campaigns::insert_weights(&svc.db, id, &fitted, samples.len() as i64, auc, now).await?;
    let mut tx = svc.db.begin_write().await?;
    report.candidates = maintain_campaign(&mut tx, &c, now).await?;
    tx.commit().await?;
    let mut stored = fitted;
    stored.version = version;
    info!(campaign = %id, version, n = samples.len(), positives, auc = ?auc, "score weights updated");
    report.new = Some(stored);
    report.auc = auc;
    report.auc_on = on;
    Ok(report)
}

/// n / (n + min_samples): how far the fit moves away from the prior.
pub fn blend_weight(n: usize, min_samples: u32) -> f64 {
    let n = n as f64;
    n / (n + f64::from(min_samples)).max(1.0)
}

/// Standardizes, fits a regularized logistic regression and blends it with `prior` (in raw feature
/// space, since the two are standardized differently). The result is standardized by the samples.
pub fn fit_blended(
    samples: &[Sample],
    prior: &Weights,
    min_samples: u32,
    l2: f64,
) -> Result<Weights, String> {
    let n = samples.len();
    let k = prior.weights.len();
    if n == 0 || samples.iter().any(|s| s.x.len() != k) {
        return Err(format!("need samples with {k} features"));
    }
    let means: Vec<f64> = (0..k)
        .map(|j| samples.iter().map(|s| s.x[j]).sum::<f64>() / n as f64)
        .collect();
    let stds: Vec<f64> = (0..k)
        .map(|j| {
            let var = samples
                .iter()
                .map(|s| (s.x[j] - means[j]).powi(2))
                .sum::<f64>()
                / n as f64;
            if var.sqrt() > 1e-9 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let x = Array2::from_shape_fn((n, k), |(i, j)| (samples[i].x[j] - means[j]) / stds[j]);
    let y: Array1<bool> = samples.iter().map(|s| s.replied).collect();
    let model = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(200)
        .fit(&Dataset::new(x, y))
        .map_err(|e| e.to_string())?;
    // linfa calls the more frequent class "positive"; we want the log-odds of a reply.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    let fit_w: Vec<f64> = model.params().iter().map(|w| sign * w).collect();
    let fit_b = sign * model.intercept();

    // Both models as raw-space linear functions: logit = c + Σ a_j x_j.
    let raw = |w: &[f64], b: f64, m: &[f64], s: &[f64]| -> (Vec<f64>, f64) {
        let a: Vec<f64> = w.iter().zip(s).map(|(w, s)| w / s.max(1e-9)).collect();
        let c = b - a.iter().zip(m).map(|(a, m)| a * m).sum::<f64>();
        (a, c)
    };
    let (a_fit, c_fit) = raw(&fit_w, fit_b, &means, &stds);
    let (a_pri, c_pri) = raw(&prior.weights, prior.intercept, &prior.means, &prior.stds);
    let lambda = blend_weight(n, min_samples);
    let a: Vec<f64> = a_fit
        .iter()
        .zip(&a_pri)
        .map(|(f, p)| lambda * f + (1.0 - lambda) * p)
        .collect();
    let c = lambda * c_fit + (1.0 - lambda) * c_pri;
    // Back into this sample's standardization.
    let weights: Vec<f64> = a.iter().zip(&stds).map(|(a, s)| a * s).collect();
    let intercept = c + a.iter().zip(&means).map(|(a, m)| a * m).sum::<f64>();
    if !weights
        .iter()
        .chain(std::iter::once(&intercept))
        .all(|v| v.is_finite())
    {
        return Err("the fit did not converge to finite weights".into());
    }
    Ok(Weights {
        weights,
        intercept,
        means,
        stds,
        version: 0,
    })
}

/// The area under the ROC curve of `w` on `samples` (ties count half); None with one class.
pub fn auc(w: &Weights, samples: &[Sample]) -> Option<f64> {
    let mut scored: Vec<(f64, bool)> = samples.iter().map(|s| (w.logit(&s.x), s.replied)).collect();
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney: sum of positive ranks, with tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j + 1 < scored.len() && scored[j + 1].0 == scored[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * scored[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies depend on keyword hits (feature 4) and nothing else.
    fn synthetic(n: usize) -> Vec<Sample> {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let hits = (next() * 3.0).floor();
                let x = vec![
                    5.0 + next() * 4.0,
                    next() * 0.1,
                    next() * 10.0,
                    next() * 60.0,
                    hits,
                    (next() > 0.5) as u8 as f64,
                ];
                let p = 1.0 / (1.0 + (-(2.0 * hits - 3.0)).exp());
                Sample {
                    x,
                    replied: next() < p,
                }
            })
            .collect()
    }

    #[test]
    fn fit_finds_the_signal_and_ranks_well() {
        let s = synthetic(400);
        let w = fit_blended(&s, &Weights::prior(), 30, 1.0).unwrap();
        let hits_weight = w.weights[4];
        assert!(hits_weight > 0.5, "{w:?}");
        assert!(w
            .weights
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != 4)
            .all(|(_, v)| v.abs() < hits_weight));
        let a = auc(&w, &s).unwrap();
        assert!(a > 0.75, "auc {a}");
    }

    #[test]
    fn few_samples_stay_near_the_prior() {
        let s = synthetic(6);
        let prior = Weights::prior();
        let w = fit_blended(&s, &prior, 30, 1.0).unwrap();
        // On the prior's own standardization point, the blended logit is mostly the prior's.
        let x = prior.means.clone();
        let lambda = blend_weight(6, 30);
        assert!(lambda < 0.2);
        assert!(
            (w.logit(&x) - prior.logit(&x)).abs() < 2.0,
            "{} vs {}",
            w.logit(&x),
            prior.logit(&x)
        );
    }

    #[test]
    fn auc_counts_ties_half() {
        let w = Weights {
            weights: vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            intercept: 0.0,
            means: vec![0.0; 6],
            stds: vec![1.0; 6],
            version: 0,
        };
        let s = |v: f64, r: bool| Sample {
            x: vec![v, 0.0, 0.0, 0.0, 0.0, 0.0],
            replied: r,
        };
        assert_eq!(auc(&w, &[s(1.0, true), s(0.0, false)]), Some(1.0));
        assert_eq!(auc(&w, &[s(0.0, true), s(1.0, false)]), Some(0.0));
        assert_eq!(auc(&w, &[s(1.0, true), s(1.0, false)]), Some(0.5));
        assert_eq!(auc(&w, &[s(1.0, true)]), None);
    }
}
