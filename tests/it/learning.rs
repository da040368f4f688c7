//! The loop learns (DESIGN §7): seven simulated days against the sandbox on a manual clock — each
//! day qualify K, approve, dispatch, advance a day, collect replies, fit the weights at night.
//! Messages of the last days must be answered more often than those of the first, and the cheap
//! score must rank the sandbox's hidden reply propensity better than the prior did.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use omni::db::campaigns::CampaignId;
use omni::engine::clock::{Clock, ManualClock};
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::outreach::BatchOptions;
use omni::engine::pipeline::dispatch::AccountConfig;
use omni::engine::pipeline::ingest::CrawlSeed;
use omni::engine::pipeline::qualify::qualify_job_for;
use omni::engine::platforms::DiscoverySource;
use omni::engine::queue::{JobId, NewJob};
use omni::engine::{Engine, Mode};
use sqlx::Row;

use crate::common::{dialects, fresh};
use crate::pipeline::{config_for, sandbox, SANDBOX_START};

const DAY_MS: i64 = 86_400_000;
const DAYS: usize = 7;
/// Profiles in the world and crawled once at the start.
const PROFILES: usize = 1200;
/// Leads qualified and messaged per day.
const K: i64 = 40;
const SENDER: &str = "omni_learn";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Broad: anyone with a follower who mentions one of the niches' words (which also feeds the
/// score's keyword-hits feature).
const CAMPAIGN: &str = r#"
name = "Creators"
platform = "sandbox"
brief = "Creators of any niche."
[filter]
followers = { min = 1 }
keywords_any = ["food", "cooking", "recipe", "fitness", "workout", "gym", "travel", "trip",
  "gaming", "games", "tech", "software", "fashion", "outfit", "music", "band", "artist",
  "illustration", "photography", "camera", "books", "reading", "dogs", "puppy", "garden", "plants"]
[qualify]
shortlist_k = 40
threshold = 0
daily_llm_calls = 100000
[outreach]
template = "Hi @{{ handle }}, we love what you post. Would you like to work with us?"
accounts = ["omni_learn"]
"#;

async fn run(engine: &Engine, jobs: Vec<NewJob>) {
    let mut ids = Vec::new();
    for j in jobs {
        ids.push(engine.enqueue(j).await.unwrap().id);
    }
    wait(engine, &ids).await;
}

async fn wait(engine: &Engine, ids: &[JobId]) {
    let counts =
        match tokio::time::timeout(Duration::from_secs(300), engine.wait_for(ids, |_| {})).await {
            Ok(c) => c.unwrap(),
            Err(_) => {
                // Say which jobs are stuck and why, rather than only that time ran out.
                let rows = sqlx::query(
                    "SELECT id, kind, status, attempts, run_at, error FROM jobs \
                 WHERE status NOT IN ('succeeded', 'cancelled') ORDER BY id LIMIT 20",
                )
                .fetch_all(engine.db().pool())
                .await
                .unwrap();
                let stuck: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "#{} {} {} attempts={} run_at={} error={:?}",
                            r.get::<i64, _>("id"),
                            r.get::<String, _>("kind"),
                            r.get::<String, _>("status"),
                            r.get::<i64, _>("attempts"),
                            r.get::<i64, _>("run_at"),
                            r.get::<Option<String>, _>("error"),
                        )
                    })
                    .collect();
                panic!(
                    "jobs {ids:?} did not finish in 300 s; unfinished:\n{}",
                    stuck.join("\n")
                );
            }
        };
    assert_eq!(counts.dead, 0, "{counts:?}");
}

/// (profile id, cheap score, hidden reply propensity) of every candidate.
async fn scored_candidates(
    engine: &Engine,
    id: CampaignId,
    truth: &HashMap<String, f64>,
) -> Vec<(i64, f64, f64)> {
    let rows = sqlx::query(
        "SELECT c.profile_id, c.cheap_score, p.external_id FROM campaign_candidates c \
         JOIN profiles_raw p ON p.id = c.profile_id WHERE c.campaign_id = $1 ORDER BY c.profile_id",
    )
    .bind(id.0)
    .fetch_all(engine.db().pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let ext: String = r.get("external_id");
            (r.get("profile_id"), r.get("cheap_score"), truth[&ext])
        })
        .collect()
}

/// AUC of `score` against the label "propensity above the median" (ties count half).
fn auc_vs_propensity(rows: &[(i64, f64, f64)]) -> f64 {
    let mut p: Vec<f64> = rows.iter().map(|r| r.2).collect();
    p.sort_by(f64::total_cmp);
    let median = p[p.len() / 2];
    let pos: Vec<f64> = rows.iter().filter(|r| r.2 > median).map(|r| r.1).collect();
    let neg: Vec<f64> = rows.iter().filter(|r| r.2 <= median).map(|r| r.1).collect();
    let mut wins = 0.0;
    for a in &pos {
        for b in &neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() as f64 * neg.len() as f64)
}

#[tokio::test]
async fn seven_days_of_replies_teach_the_cheap_score() {
    for d in dialects() {
        let t = fresh(d).await;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let token = format!("learn-tok-{}-{n}", std::process::id());
        let token_env = format!("OMNI_TEST_LEARNING_TOKEN_{n}");
        std::env::set_var(&token_env, &token);
        let sb = sandbox(PROFILES, |o| {
            o.seed = 7;
            o.senders = vec![(SENDER.into(), token.clone())];
            o.reply_delay_secs = 3_600;
            o.change_fraction = 0.0;
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(&t, &sb, dir.path());
        config.llm = LlmConfig {
            provider: ProviderKind::None,
            ..LlmConfig::default()
        };
        config.accounts = vec![AccountConfig {
            platform: "sandbox".into(),
            handle: SENDER.into(),
            token_env: token_env.clone(),
            daily_cap: 1000,
            hourly_cap: 1000,
            min_gap_secs: 0,
            jitter_secs: 0,
            quiet_hours: None,
            timezone: "UTC".into(),
            warmup_days: 0,
        }];
        // A day's messages are labelled by the next night: replies land within 1.5 h.
        config.learning.reply_window_days = 1;
        let t0 = SANDBOX_START;
        let clock = ManualClock::new(t0);
        let engine = Engine::start_with_clock(config, Mode::Inline, clock.clone())
            .await
            .unwrap();
        engine.sync_accounts().await.unwrap();
        let c = engine
            .create_campaign("creators.toml", CAMPAIGN)
            .await
            .unwrap();
        let seed = CrawlSeed {
            platform: "sandbox".into(),
            source: DiscoverySource::Directory,
            cursor: None,
            limit: PROFILES,
            seen: 0,
            fresh_secs: 0,
        };
        run(
            &engine,
            vec![NewJob::new(
                "crawl.seed",
                serde_json::to_value(seed).unwrap(),
            )],
        )
        .await;

        // The hidden truth of every candidate, by external id.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT p.external_id FROM campaign_candidates c JOIN profiles_raw p ON p.id = c.profile_id WHERE c.campaign_id = $1",
        )
        .bind(c.id.0)
        .fetch_all(engine.db().pool())
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let mut truth = HashMap::new();
        for id in &ids {
            let v: serde_json::Value = http
                .get(format!("{}/_sandbox/truth/{id}", sb.base_url()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            truth.insert(id.clone(), v["reply_propensity"].as_f64().unwrap());
        }
        let prior_auc = auc_vs_propensity(&scored_candidates(&engine, c.id, &truth).await);
        assert!(
            ids.len() as i64 >= 3 * K * DAYS as i64,
            "{d}: only {} candidates",
            ids.len()
        );
        eprintln!(
            "{d}: {} candidates; prior AUC vs propensity {prior_auc:.3}",
            ids.len()
        );

        let mut sent = [0i64; DAYS];
        let mut replied = [0i64; DAYS];
        let mut aucs = Vec::new();
        for day in 0..DAYS {
            // Each morning around 09:00: qualify K, approve them, send.
            let morning = t0 + 9 * 3_600_000 + day as i64 * (DAY_MS + 120_000);
            let step = morning - clock.now_ms();
            clock.advance(step);
            sb.state().advance_ms(step);
            run(&engine, vec![qualify_job_for(c.id, Some(K))]).await;
            let batch = engine
                .create_batch(
                    c.id,
                    BatchOptions {
                        limit: Some(K),
                        min_score: None,
                    },
                )
                .await
                .unwrap();
            let approved = engine.approve_batch(batch.batch.id).await.unwrap();
            wait(&engine, &[approved.root_job]).await;
            let lead_ids: Vec<i64> = approved
                .batch
                .messages
                .iter()
                .map(|m| m.message.lead_id)
                .collect();
            // The fit runs a day after the sends, before the next morning's qualify: every reply
            // is in (they land within 1.5 h) and the 1-day window of today's messages has closed.
            clock.advance(DAY_MS + 60_000);
            sb.state().advance_ms(DAY_MS + 60_000);
            engine.sweep_feedback(None).await.unwrap();
            for lead in &lead_ids {
                let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE id = $1")
                    .bind(lead)
                    .fetch_one(engine.db().pool())
                    .await
                    .unwrap();
                sent[day] += 1;
                if matches!(status.as_str(), "replied" | "opted_out") {
                    replied[day] += 1;
                }
            }
            let report = engine.learn(c.id).await.unwrap();
            let auc = auc_vs_propensity(&scored_candidates(&engine, c.id, &truth).await);
            eprintln!(
                "{d} day {}: sent {} replied {} ({:.3}); fit n={} pos={} auc(fit)={:?} skipped={:?}; candidate AUC vs propensity {auc:.3}",
                day + 1,
                sent[day],
                replied[day],
                replied[day] as f64 / sent[day] as f64,
                report.n_samples,
                report.positives,
                report.auc,
                report.skipped,
            );
            aucs.push(auc);
        }
        let rate = |r: std::ops::Range<usize>| {
            replied[r.clone()].iter().sum::<i64>() as f64 / sent[r].iter().sum::<i64>() as f64
        };
        let early = rate(0..2);
        let late = rate(4..7);
        let learned_auc = *aucs.last().unwrap();
        eprintln!(
            "{d}: reply rate days 1–2 {early:.3}, days 5–7 {late:.3}, ratio {:.2}; AUC prior {prior_auc:.3} → learned {learned_auc:.3}",
            late / early
        );
        assert!(
            late >= 1.3 * early,
            "{d}: reply rate days 5–7 {late:.3} < 1.3 × days 1–2 {early:.3}"
        );
        assert!(
            learned_auc > prior_auc,
            "{d}: learned AUC {learned_auc:.3} ≤ prior {prior_auc:.3}"
        );
        engine.shutdown().await;
        sb.shutdown().await.unwrap();
    }
}
