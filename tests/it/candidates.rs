//! Candidate maintenance: batched incremental maintenance through `candidates_pending` and the
//! `candidates.pending` job, re-runs of the full maintenance that write nothing, and the stored
//! cheap score agreeing with its Rust mirror (recency counted from the start of the UTC day).

use std::time::Duration;

use omni::config::Config;
use omni::db::campaigns::Campaign;
use omni::db::profiles::ProfileId;
use omni::engine::llm::{LlmConfig, ProviderKind};
use omni::engine::pipeline::candidates::{
    self, drain, evict_listed, maintain_campaign_counted, maintain_campaigns,
    maintain_campaigns_listing, on_profiles_changed, sweep_abandoned, Maintained, PENDING_KIND,
};
use omni::engine::pipeline::score::{raw_features, Weights};
use omni::engine::platforms::{PlatformConfig, PlatformKind};
use omni::engine::queue::{JobId, NewJob};
use omni::engine::{Engine, Mode};
use sqlx::Row;

use crate::common::{dialects, fresh, TestDb};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 09:00 UTC on some day.
const T0: i64 = 20_400 * DAY + 9 * HOUR;

const CAMPAIGN: &str = r#"
name = "Vegan cooks"
platform = "sandbox"
brief = "Home cooks who post vegan recipes; not brands."
[filter]
followers = { min = 1000 }
keywords_any = ["vegan", "recipe"]
[qualify]
shortlist_k = 100
threshold = 60
daily_llm_calls = 100
[outreach]
template = "Hi {{ display_name }}! {{ opener }}"
accounts = ["omni"]
"#;

fn config(t: &TestDb, storage: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.database.url = t.url.clone();
    c.storage.path = storage.to_path_buf();
    c.platforms = vec![PlatformConfig::new(
        "sandbox",
        PlatformKind::Sandbox,
        "http://127.0.0.1:9",
    )];
    c.llm = LlmConfig {
        provider: ProviderKind::None,
        ..LlmConfig::default()
    };
    c.workers.poll_ms = 20;
    c.schedule.candidates_maintain = "off".into();
    c
}

/// Inserts a profile with these features; returns its id.
async fn profile(
    t: &TestDb,
    handle: &str,
    followers: i64,
    last_post_at: Option<i64>,
    text: &str,
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
         VALUES ('sandbox', $1, $1, '{}', 'h', 0, 0, 0) RETURNING id",
    )
    .bind(handle)
    .fetch_one(t.db.writer())
    .await
    .unwrap();
    let n = handle.len() as f64;
    sqlx::query(
        "INSERT INTO profile_features (profile_id, feature_version, followers, log_followers, following, posts_count, \
         engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, \
         is_bot, has_link, has_email, text, image_keys, updated_at) \
         VALUES ($1, 1, $2, $3, 10, 10, $4, 1.0, 1.0, $5, $6, 100, 'en', 0, $7, 0, $8, '[]', 0)",
    )
    .bind(id)
    .bind(followers)
    .bind(((followers + 1) as f64).ln())
    .bind(0.01 * n)
    .bind(n / 2.0)
    .bind(last_post_at)
    .bind((id % 2) as i64)
    .bind(text)
    .execute(t.db.writer())
    .await
    .unwrap();
    id
}

async fn candidate_set(engine: &Engine, c: &Campaign) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT profile_id FROM campaign_candidates WHERE campaign_id = $1 ORDER BY profile_id",
    )
    .bind(c.id.0)
    .fetch_all(engine.db().pool())
    .await
    .unwrap()
}

async fn scalar(engine: &Engine, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(engine.db().pool())
        .await
        .unwrap()
}

async fn wait(engine: &Engine, ids: &[JobId]) {
    let counts = tokio::time::timeout(Duration::from_secs(60), engine.wait_for(ids, |_| {}))
        .await
        .expect("jobs finish in time")
        .unwrap();
    assert_eq!(counts.dead + counts.cancelled, 0, "{counts:?}");
}

/// Every stored score equals the Rust logit of the same features at `now` (prior weights).
async fn assert_scores_agree(engine: &Engine, c: &Campaign, now: i64, d: &str) {
    assert_scores_agree_with(engine, c, &Weights::prior(), now, d).await
}

/// Every stored score of `c` equals the Rust logit under `w` of the same features at `now`.
async fn assert_scores_agree_with(engine: &Engine, c: &Campaign, w: &Weights, now: i64, d: &str) {
    let rows = sqlx::query(
        "SELECT cc.cheap_score, pf.log_followers, pf.engagement_rate, pf.posts_per_week, pf.last_post_at, \
         pf.text, pf.has_link FROM campaign_candidates cc JOIN profile_features pf ON pf.profile_id = cc.profile_id \
         WHERE cc.campaign_id = $1",
    )
    .bind(c.id.0)
    .fetch_all(engine.db().pool())
    .await
    .unwrap();
    assert!(!rows.is_empty(), "{d}: no candidates");
    for r in rows {
        let x = raw_features(
            r.get("log_followers"),
            r.get("engagement_rate"),
            r.get("posts_per_week"),
            r.get("last_post_at"),
            &r.get::<String, _>("text"),
            r.get::<i64, _>("has_link") != 0,
            &c.spec.filter.keywords_any,
            now,
        );
        let stored: f64 = r.get("cheap_score");
        assert!(
            (w.logit(&x) - stored).abs() < 1e-9,
            "{d}: SQL score {stored} != Rust {} for {x:?}",
            w.logit(&x)
        );
    }
}

#[tokio::test]
async fn changed_profiles_are_maintained_by_the_pending_job_within_the_tree() {
    for d in dialects() {
        let t = fresh(d).await;
        let dir = tempfile::tempdir().unwrap();
        let a = profile(&t, "anna", 5_000, Some(T0 - 2 * DAY), "vegan recipes").await;
        let b = profile(&t, "bert", 2_000, Some(T0 - 9 * DAY), "a recipe a day").await;
        let c_id = profile(&t, "cleo", 50, Some(T0 - DAY), "vegan baking").await;
        let other = profile(&t, "dora", 9_000, None, "cars").await;
        let engine = Engine::start(config(&t, dir.path()), Mode::Inline)
            .await
            .unwrap();
        let c = engine.create_campaign("c.toml", CAMPAIGN).await.unwrap();
        let maintain: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE kind = 'candidates.maintain'")
                .fetch_all(engine.db().pool())
                .await
                .unwrap();
        wait(
            &engine,
            &maintain.into_iter().map(JobId).collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(candidate_set(&engine, &c).await, vec![a, b], "{d}");

        // One "scrape" in a discover's tree: anna stops matching, cleo starts, bert's score moves.
        let root = engine
            .enqueue(NewJob::new("system.noop", serde_json::json!({})))
            .await
            .unwrap()
            .id;
        let now = engine.services().clock.now_ms();
        let mut tx = engine.db().begin_write().await.unwrap();
        for (id, followers) in [(a, 10), (b, 40_000), (c_id, 3_000)] {
            sqlx::query("UPDATE profile_features SET followers = $1, log_followers = $2 WHERE profile_id = $3")
                .bind(followers)
                .bind(((followers + 1) as f64).ln())
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let changed = [ProfileId(a), ProfileId(b), ProfileId(c_id)];
        on_profiles_changed(&mut tx, engine.services(), &changed, Some(root), now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // One batch, one job, in the tree: waiting for the tree waits for the candidates.
        let jobs = sqlx::query("SELECT id, root_id FROM jobs WHERE kind = $1")
            .bind(PENDING_KIND)
            .fetch_all(engine.db().pool())
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1, "{d}");
        assert_eq!(
            jobs[0].get::<Option<i64>, _>("root_id"),
            Some(root.0),
            "{d}"
        );
        wait(&engine, &[root]).await;
        assert_eq!(
            candidate_set(&engine, &c).await,
            vec![b, c_id],
            "{d}: anna evicted, cleo added"
        );
        assert!(!candidate_set(&engine, &c).await.contains(&other));
        assert_scores_agree(&engine, &c, now, d).await;
        let result: String = sqlx::query_scalar("SELECT result FROM jobs WHERE kind = $1")
            .bind(PENDING_KIND)
            .fetch_one(engine.db().pool())
            .await
            .unwrap();
        let result: serde_json::Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["profiles"], 3, "{d}: {result}");
        assert_eq!(result["evicted"], 1, "{d}: {result}");
        assert_eq!(result["written"], 2, "{d}: {result}");
        // The batch is gone.
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM candidates_pending").await,
            0,
            "{d}"
        );
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM candidates_batches").await,
            0,
            "{d}"
        );
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn batches_close_when_their_job_starts_and_abandoned_ones_are_not_joined() {
    for d in dialects() {
        let t = fresh(d).await;
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for (h, f) in [("p1", 5_000), ("p2", 6_000), ("p3", 7_000), ("p4", 8_000)] {
            ids.push(ProfileId(profile(&t, h, f, Some(T0 - DAY), "vegan").await));
        }
        // Client mode: no worker runs the jobs; the test plays the job's part.
        let engine = Engine::start(config(&t, dir.path()), Mode::Client)
            .await
            .unwrap();
        let c = engine.create_campaign("c.toml", CAMPAIGN).await.unwrap();
        let (r1, r2) = (JobId(900_001), JobId(900_002));
        let record = |id: ProfileId, root: JobId| {
            let engine = &engine;
            async move {
                let mut tx = engine.db().begin_write().await.unwrap();
                on_profiles_changed(&mut tx, engine.services(), &[id], Some(root), T0)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        };
        let open_jobs = || async {
            let v: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE kind = $1 AND status = 'queued' ORDER BY id",
            )
            .bind(PENDING_KIND)
            .fetch_all(engine.db().pool())
            .await
            .unwrap();
            v
        };
        // Two profiles in tree 1 share a batch; tree 2 gets its own.
        record(ids[0], r1).await;
        record(ids[1], r1).await;
        record(ids[0], r2).await;
        let jobs = open_jobs().await;
        assert_eq!(jobs.len(), 2, "{d}");
        assert_eq!(
            scalar(&engine, "SELECT COUNT(*) FROM candidates_pending").await,
            3,
            "{d}"
        );
        // Draining closes the batch: the next change in tree 1 opens another.
        let m = drain(engine.db(), JobId(jobs[0]), T0).await.unwrap();
        assert_eq!((m.profiles, m.written), (2, 2), "{d}");
        assert_eq!(candidate_set(&engine, &c).await, vec![ids[0].0, ids[1].0]);
        record(ids[2], r1).await;
        let j3 = *open_jobs().await.last().unwrap();
        assert!(j3 > jobs[1], "{d}: a closed batch was joined");
        // A batch whose job was cancelled is not joined, and the hourly sweep forgets it.
        assert!(engine.queue().cancel(JobId(j3)).await.unwrap());
        record(ids[3], r1).await;
        let j4 = *open_jobs().await.last().unwrap();
        assert!(j4 > j3, "{d}: joined a cancelled batch");
        let mut tx = engine.db().begin_write().await.unwrap();
        assert_eq!(sweep_abandoned(&mut tx).await.unwrap(), 1, "{d}");
        tx.commit().await.unwrap();
        let left: Vec<i64> =
            sqlx::query_scalar("SELECT job_id FROM candidates_batches ORDER BY job_id")
                .fetch_all(engine.db().pool())
                .await
                .unwrap();
        assert_eq!(left, vec![jobs[1], j4], "{d}");
        // Draining twice (a retried job) is harmless.
        let m = drain(engine.db(), JobId(j4), T0).await.unwrap();
        assert_eq!((m.profiles, m.written), (1, 1), "{d}");
        let m = drain(engine.db(), JobId(j4), T0).await.unwrap();
        assert_eq!(m.profiles, 0, "{d}");
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn a_rerun_of_full_maintenance_rewrites_nothing_and_scores_match_rust() {
    for d in dialects() {
        let t = fresh(d).await;
        let dir = tempfile::tempdir().unwrap();
        let day_start = T0 - 9 * HOUR;
        let mut ids = Vec::new();
        for i in 0..40i64 {
            let last = match i % 5 {
                0 => None,
                1 => Some(day_start + HOUR), // later today: counts as 0 days
                2 => Some(T0 - 400 * DAY),   // beyond the 365-day cap
                _ => Some(T0 - i * DAY - i * 1_234_567),
            };
            let text = if i % 3 == 0 {
                "vegan recipe"
            } else {
                "recipes"
            };
            ids.push(profile(&t, &format!("user{i:02}"), 500 + i * 100, last, text).await);
        }
        let engine = Engine::start(config(&t, dir.path()), Mode::Client)
            .await
            .unwrap();
        let c = engine.create_campaign("c.toml", CAMPAIGN).await.unwrap();
        let run = |now: i64| {
            let (engine, c) = (&engine, &c);
            async move {
                let mut tx = engine.db().begin_write().await.unwrap();
                let m = maintain_campaign_counted(&mut tx, c, now).await.unwrap();
                tx.commit().await.unwrap();
                m
            }
        };
        let first = run(T0).await;
        assert_eq!(first.written as i64, first.profiles, "{d}");
        assert_eq!(first.profiles, 35, "{d}: followers ≥ 1000");
        assert_scores_agree(&engine, &c, T0, d).await;
        // Later the same day: nothing to rewrite, the scores are those of any time today.
        let again = run(T0 + 5 * HOUR).await;
        assert_eq!((again.written, again.evicted), (0, 0), "{d}");
        assert_scores_agree(&engine, &c, T0 + 5 * HOUR, d).await;
        // A changed profile rewrites its own row only.
        sqlx::query("UPDATE profile_features SET posts_per_week = 30.0 WHERE profile_id = $1")
            .bind(ids[20])
            .execute(engine.db().writer())
            .await
            .unwrap();
        assert_eq!(run(T0 + 6 * HOUR).await.written, 1, "{d}");
        // The next day every row with a recent post moves by one day of recency.
        let next = run(T0 + DAY).await;
        let dated = 35 - 7 - 7; // minus never-posted and beyond-the-cap candidates
        assert_eq!(next.written, dated, "{d}");
        assert_scores_agree(&engine, &c, T0 + DAY, d).await;
        // `maintain_campaign` still reports the candidate count.
        let mut tx = engine.db().begin_write().await.unwrap();
        let n = candidates::maintain_campaign(&mut tx, &c, T0 + DAY)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(n, 35, "{d}");
        engine.shutdown().await;
    }
}

/// 30 profiles `cook00`…`cook29` with 500 + 100 i followers, all matching the keywords, and two
/// campaigns over them: "Vegan cooks" (≥ 1,000 followers: 25 profiles) and "Big vegan cooks"
/// (≥ 2,000: 15). Returns the engine (Client mode), the profile ids in order and the campaigns.
async fn cooks_and_two_campaigns(
    t: &TestDb,
    storage: &std::path::Path,
) -> (Engine, Vec<i64>, Campaign, Campaign) {
    let mut ids = Vec::new();
    for i in 0..30i64 {
        let text = if i % 2 == 0 {
            "vegan recipe"
        } else {
            "recipes"
        };
        ids.push(
            profile(
                t,
                &format!("cook{i:02}"),
                500 + i * 100,
                Some(T0 - DAY),
                text,
            )
            .await,
        );
    }
    let engine = Engine::start(config(t, storage), Mode::Client)
        .await
        .unwrap();
    let a = engine.create_campaign("a.toml", CAMPAIGN).await.unwrap();
    let b = engine
        .create_campaign(
            "b.toml",
            &CAMPAIGN
                .replace("Vegan cooks", "Big vegan cooks")
                .replace("min = 1000", "min = 2000"),
        )
        .await
        .unwrap();
    (engine, ids, a, b)
}

/// The hourly job's [`maintain_campaigns`] (planned on read connections, applied by the writer)
/// gives what maintaining each campaign in turn gives, and a stale list of evictees never evicts a
/// profile that matches by the time of the delete.
#[tokio::test]
async fn campaigns_planned_on_read_connections_equal_one_at_a_time_and_evictees_are_rechecked() {
    for d in dialects() {
        let t = fresh(d).await;
        let dir = tempfile::tempdir().unwrap();
        let (engine, ids, a, b) = cooks_and_two_campaigns(&t, dir.path()).await;
        let both = vec![a.clone(), b.clone()];
        let run = |now: i64| {
            let (engine, both) = (&engine, &both);
            async move {
                let mut out: Vec<(usize, Maintained)> = Vec::new();
                maintain_campaigns(engine.db(), both, now, |i, _, m| {
                    out.push((i, m));
                    async {}
                })
                .await
                .unwrap();
                // Reported as each campaign commits, in the order the plans finish.
                out.sort_by_key(|(i, _)| *i);
                out.into_iter().map(|(_, m)| m).collect::<Vec<_>>()
            }
        };
        let first = run(T0).await;
        // followers = 500 + 100 i: ≥ 1000 from i = 5 (25 profiles), ≥ 2000 from i = 15 (15).
        let counts: Vec<i64> = first.iter().map(|m| m.profiles).collect();
        assert_eq!(counts, vec![25, 15], "{d}");
        // Six profiles stop matching both campaigns, two stop matching only the larger one.
        let set_followers = |id: i64, f: i64| {
            let engine = &engine;
            async move {
                sqlx::query("UPDATE profile_features SET followers = $1 WHERE profile_id = $2")
                    .bind(f)
                    .bind(id)
                    .execute(engine.db().writer())
                    .await
                    .unwrap();
            }
        };
        for &id in &ids[20..26] {
            set_followers(id, 10).await;
        }
        for &id in &ids[16..18] {
            set_followers(id, 1500).await;
        }
        let second = run(T0 + HOUR).await;
        let got: Vec<(i64, u64, u64)> = second
            .iter()
            .map(|m| (m.profiles, m.written, m.evicted))
            .collect();
        assert_eq!(got, vec![(19, 0, 6), (7, 0, 8)], "{d}");
        // A score that moves is rewritten, in both campaigns the profile belongs to.
        sqlx::query("UPDATE profile_features SET posts_per_week = 40.0 WHERE profile_id = $1")
            .bind(ids[28])
            .execute(engine.db().writer())
            .await
            .unwrap();
        let third = run(T0 + 2 * HOUR).await;
        let got: Vec<(i64, u64, u64)> = third
            .iter()
            .map(|m| (m.profiles, m.written, m.evicted))
            .collect();
        assert_eq!(got, vec![(19, 1, 0), (7, 1, 0)], "{d}");
        // The same as maintaining each campaign on its own: a re-run finds nothing to do.
        for c in &both {
            let mut tx = engine.db().begin_write().await.unwrap();
            let m = maintain_campaign_counted(&mut tx, c, T0 + 2 * HOUR)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!((m.written, m.evicted), (0, 0), "{d}: campaign {}", c.name);
        }
        // A campaign edited while the run is under way is maintained as it now reads: after the
        // first campaign commits, the other one's filter is narrowed (its plan is then stale).
        let mut first = true;
        let mut edited = None;
        let mut counts = [0i64; 2];
        maintain_campaigns(engine.db(), &both, T0 + 2 * HOUR, |i, _, m| {
            counts[i] = m.profiles;
            let edit = std::mem::replace(&mut first, false);
            let other = &both[1 - i];
            if edit {
                edited = Some(1 - i);
            }
            let engine = &engine;
            async move {
                if edit {
                    let file = if other.id == a.id {
                        CAMPAIGN.replace("min = 1000", "min = 2500")
                    } else {
                        CAMPAIGN
                            .replace("Vegan cooks", "Big vegan cooks")
                            .replace("min = 1000", "min = 2500")
                    };
                    engine
                        .edit_campaign(other.id, "edited.toml", &file)
                        .await
                        .unwrap();
                }
            }
        })
        .await
        .unwrap();
        let edited = edited.unwrap();
        // followers ≥ 2500: i ≥ 20, minus the six set to 10 followers (20..26): 4 profiles.
        assert_eq!(counts[edited], 4, "{d}: edited campaign {edited}");
        // Put campaign a back as it was for what follows.
        if both[edited].id == a.id {
            engine
                .edit_campaign(a.id, "a.toml", CAMPAIGN)
                .await
                .unwrap();
            let mut tx = engine.db().begin_write().await.unwrap();
            let a_now = omni::db::campaigns::get_on(&mut tx, a.id)
                .await
                .unwrap()
                .unwrap();
            maintain_campaign_counted(&mut tx, &a_now, T0 + 2 * HOUR)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let a = omni::db::campaigns::get(engine.db(), a.id)
            .await
            .unwrap()
            .unwrap();
        // A stale list naming every profile (all 19 candidates included): only the one that does
        // not match now goes.
        set_followers(ids[10], 10).await;
        let all: Vec<ProfileId> = ids.iter().map(|&id| ProfileId(id)).collect();
        let mut tx = engine.db().begin_write().await.unwrap();
        let evicted = evict_listed(&mut tx, &a, &all, T0 + 2 * HOUR)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(evicted, 1, "{d}: only the profile that stopped matching");
        let kept: Vec<i64> = sqlx::query_scalar(
            "SELECT profile_id FROM campaign_candidates WHERE campaign_id = $1 ORDER BY profile_id",
        )
        .bind(a.id.0)
        .fetch_all(engine.db().pool())
        .await
        .unwrap();
        assert!(!kept.contains(&ids[10]), "{d}");
        assert_eq!(kept.len(), 18, "{d}");
        engine.shutdown().await;
    }
}

/// The writer's fallbacks in [`maintain_campaigns`]: lists too long to hand over (here: any list)
/// and weights that moved between the plan and the write both run the set-based statements, with
/// the weights as they are at the write.
#[tokio::test]
async fn planned_maintenance_falls_back_to_set_based_statements() {
    for d in dialects() {
        let t = fresh(d).await;
        let dir = tempfile::tempdir().unwrap();
        let (engine, _, a, b) = cooks_and_two_campaigns(&t, dir.path()).await;
        let both = vec![a.clone(), b.clone()];
        // Nothing may be listed: every campaign goes through the set-based statements.
        let mut counts = [(0i64, 0u64); 2];
        maintain_campaigns_listing(engine.db(), &both, T0, 0, |i, _, m| {
            counts[i] = (m.profiles, m.written);
            async {}
        })
        .await
        .unwrap();
        assert_eq!(counts, [(25, 25), (15, 15)], "{d}");
        // New weights for whichever campaign comes second, stored after the first commits: its plan
        // (made with the old weights: nothing to write) is dropped and every row rescored.
        let mut first = true;
        let mut second = None;
        let mut written = [0u64; 2];
        maintain_campaigns(engine.db(), &both, T0 + HOUR, |i, _, m| {
            written[i] = m.written;
            let bump = std::mem::replace(&mut first, false);
            if bump {
                second = Some(1 - i);
            }
            let (engine, other) = (&engine, both[1 - i].id);
            async move {
                if bump {
                    let mut w = Weights::prior();
                    w.intercept += 1.0;
                    omni::db::campaigns::insert_weights(engine.db(), other, &w, 10, None, T0)
                        .await
                        .unwrap();
                }
            }
        })
        .await
        .unwrap();
        let second = second.unwrap();
        assert_eq!(
            written[1 - second],
            0,
            "{d}: the first campaign had nothing to rewrite"
        );
        assert_eq!(
            written[second],
            [25, 15][second],
            "{d}: every candidate of the second campaign rescored with its new weights"
        );
        // And the rows agree with a full maintenance under the new weights.
        for c in &both {
            let mut tx = engine.db().begin_write().await.unwrap();
            let m = maintain_campaign_counted(&mut tx, c, T0 + HOUR)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!((m.written, m.evicted), (0, 0), "{d}: campaign {}", c.name);
        }
        engine.shutdown().await;
    }
}

/// Inserts a row with `sql` and returns its id.
async fn insert_id(t: &TestDb, sql: &str, args: Vec<omni::db::SqlValue>) -> i64 {
    let sql = format!("{sql} RETURNING id");
    omni::db::bind_all(sqlx::query(&sql), &args)
        .fetch_one(t.db.writer())
        .await
        .expect(&sql)
        .get(0)
}

/// The shortlist cuts the campaign's best-scored candidates first (there is no score index) and
/// excludes after the cut: when more of the top rows are excluded than its first cut allows for —
/// verdicts given under this criteria hash by another campaign (a copy with the same criteria) do
/// not count towards that allowance — it must look deeper rather than return fewer than K.
#[tokio::test]
async fn the_shortlist_looks_past_excluded_top_candidates() {
    use omni::db::campaigns::CampaignId;
    use omni::db::SqlValue::{Int, Text};
    for d in dialects() {
        let t = fresh(d).await;
        let mut campaign_ids = Vec::new();
        for (name, hash) in [("c1", "h1"), ("twin", "h1")] {
            campaign_ids.push(
                insert_id(
                    &t,
                    "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
                     VALUES ($1, 'sandbox', 'active', '{}', '1 = 1', '[]', $2, $3, $3)",
                    vec![Text(name.into()), Text(hash.into()), Int(T0)],
                )
                .await,
            );
        }
        let (campaign, twin) = (campaign_ids[0], campaign_ids[1]);
        // 40 candidates; profile i scores i, so the best are 39, 38, 37, …
        let mut profiles = Vec::new();
        for i in 0..40i64 {
            let id = insert_id(
                &t,
                "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
                 VALUES ('sandbox', $1, $2, '{}', $3, $4, $4, $4)",
                vec![Text(format!("x{i}")), Text(format!("user{i}")), Text(format!("h{i}")), Int(T0 - DAY)],
            )
            .await;
            sqlx::query("INSERT INTO campaign_candidates (campaign_id, profile_id, cheap_score, added_at) VALUES ($1, $2, $3, $4)")
                .bind(campaign)
                .bind(id)
                .bind(i as f64)
                .bind(T0)
                .execute(t.db.writer())
                .await
                .unwrap();
            profiles.push(id);
        }
        let verdict = |profile: i64, hash: &str, by: Option<i64>, at: i64| {
            let sql = "INSERT INTO llm_scores (profile_id, profile_hash, criteria_hash, campaign_id, model, score, qualified, \
                       reasons, red_flags, opener, created_at) VALUES ($1, $2, $3, $4, 'm', 50, 1, '[]', '[]', '', $5)";
            let q = sqlx::query(sql)
                .bind(profile)
                .bind(format!("ph{profile}-{hash}"))
                .bind(hash.to_string())
                .bind(by)
                .bind(at);
            let db = t.db.clone();
            async move { q.execute(db.writer()).await.unwrap() }
        };
        // The 20 best have current verdicts under h1, given by the twin campaign.
        for &p in &profiles[20..40] {
            verdict(p, "h1", Some(twin), T0).await;
        }
        // Not exclusions: a verdict under other criteria, one older than the profile's last change.
        verdict(profiles[19], "h0", Some(campaign), T0).await;
        verdict(profiles[18], "h1", Some(campaign), T0 - 2 * DAY).await;
        // Exclusions: a lead in this campaign, a do-not-contact entry by handle (any case).
        sqlx::query("INSERT INTO leads (campaign_id, profile_id, score, created_at, updated_at) VALUES ($1, $2, 80, $3, $3)")
            .bind(campaign)
            .bind(profiles[17])
            .bind(T0)
            .execute(t.db.writer())
            .await
            .unwrap();
        sqlx::query("INSERT INTO do_not_contact (platform, handle, added_at) VALUES ('sandbox', 'USER16', $1)")
            .bind(T0)
            .execute(t.db.writer())
            .await
            .unwrap();
        let got = omni::engine::campaigns::shortlist(&t.db, CampaignId(campaign), 5)
            .await
            .unwrap();
        let want: Vec<i64> = [19, 18, 15, 14, 13].iter().map(|&i| profiles[i]).collect();
        assert_eq!(got, want, "{d}");
        // Asking for more than there are returns all that are left, best first.
        let all = omni::engine::campaigns::shortlist(&t.db, CampaignId(campaign), 100)
            .await
            .unwrap();
        let want: Vec<i64> = (0..20)
            .rev()
            .filter(|i| ![17, 16].contains(i))
            .map(|i| profiles[i])
            .collect();
        assert_eq!(all, want, "{d}");
    }
}

/// Migration 8 narrows `campaign_candidates` (no per-row criteria hash, no score index; on SQLite a
/// rebuilt WITHOUT ROWID table): candidates stored before it keep their scores.
#[tokio::test]
async fn the_narrowing_migration_keeps_stored_candidates() {
    use omni::db::SqlValue::{Int, Text};
    for d in dialects() {
        let t = fresh(d).await;
        let campaign = insert_id(
            &t,
            "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
             VALUES ('c', 'sandbox', 'active', '{}', '1 = 1', '[]', 'h1', $1, $1)",
            vec![Int(T0)],
        )
        .await;
        let mut profiles = Vec::new();
        for i in 0..3i64 {
            profiles.push(
                insert_id(
                    &t,
                    "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
                     VALUES ('sandbox', $1, $2, '{}', 'h', $3, $3, $3)",
                    vec![Text(format!("x{i}")), Text(format!("u{i}")), Int(T0)],
                )
                .await,
            );
        }
        // The table as migration 1 made it, holding three candidates.
        let old_shape = match d {
            "sqlite" => {
                "DROP TABLE campaign_candidates; \
                 CREATE TABLE campaign_candidates (campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE, \
                 profile_id INTEGER NOT NULL REFERENCES profiles_raw (id) ON DELETE CASCADE, criteria_hash TEXT NOT NULL, \
                 cheap_score REAL NOT NULL, added_at INTEGER NOT NULL, PRIMARY KEY (campaign_id, profile_id)); \
                 CREATE INDEX campaign_candidates_score ON campaign_candidates (campaign_id, cheap_score DESC); \
                 CREATE INDEX campaign_candidates_profile ON campaign_candidates (profile_id); \
                 DELETE FROM schema_migrations WHERE version = 8"
            }
            _ => {
                "ALTER TABLE campaign_candidates ADD COLUMN criteria_hash TEXT NOT NULL DEFAULT 'h1'; \
                 CREATE INDEX campaign_candidates_score ON campaign_candidates (campaign_id, cheap_score DESC); \
                 DELETE FROM schema_migrations WHERE version = 8"
            }
        };
        sqlx::raw_sql(old_shape)
            .execute(t.db.writer())
            .await
            .unwrap();
        for (i, p) in profiles.iter().enumerate() {
            sqlx::query("INSERT INTO campaign_candidates (campaign_id, profile_id, criteria_hash, cheap_score, added_at) VALUES ($1, $2, 'h1', $3, $4)")
                .bind(campaign)
                .bind(p)
                .bind(i as f64 - 0.5)
                .bind(T0 + i as i64)
                .execute(t.db.writer())
                .await
                .unwrap();
        }
        t.db.migrate().await.unwrap();
        let rows: Vec<(i64, f64, i64)> = sqlx::query(
            "SELECT profile_id, cheap_score, added_at FROM campaign_candidates WHERE campaign_id = $1 ORDER BY profile_id",
        )
        .bind(campaign)
        .fetch_all(t.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        let want: Vec<(i64, f64, i64)> = profiles
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as f64 - 0.5, T0 + i as i64))
            .collect();
        assert_eq!(rows, want, "{d}");
        let leftovers: i64 = match d {
            "sqlite" => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('campaign_candidates_score', 'campaign_candidates_v2') \
                 OR (name = 'campaign_candidates' AND sql NOT LIKE '%WITHOUT ROWID%')",
            ),
            _ => sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'campaign_candidates_score') \
                 + (SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'campaign_candidates' \
                    AND column_name = 'criteria_hash' AND table_schema = current_schema())",
            ),
        }
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        assert_eq!(
            leftovers, 0,
            "{d}: the old index, column or table shape is gone"
        );
        let profile_index: i64 = match d {
            "sqlite" => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'campaign_candidates_profile' \
                 AND tbl_name = 'campaign_candidates'",
            ),
            _ => sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'campaign_candidates_profile' \
                 AND schemaname = current_schema()",
            ),
        }
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        assert_eq!(profile_index, 1, "{d}: the profile index is there");
        if d == "sqlite" {
            let broken = sqlx::query("PRAGMA foreign_key_check(campaign_candidates)")
                .fetch_all(t.db.pool())
                .await
                .unwrap();
            assert!(broken.is_empty(), "{d}: foreign keys hold");
        }
        // The foreign keys still cascade: a deleted profile and a deleted campaign take their rows.
        let count = || {
            let db = t.db.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM campaign_candidates")
                    .fetch_one(db.pool())
                    .await
                    .unwrap()
            }
        };
        sqlx::query("DELETE FROM profiles_raw WHERE id = $1")
            .bind(profiles[0])
            .execute(t.db.writer())
            .await
            .unwrap();
        assert_eq!(count().await, 2, "{d}");
        sqlx::query("DELETE FROM campaigns WHERE id = $1")
            .bind(campaign)
            .execute(t.db.writer())
            .await
            .unwrap();
        assert_eq!(count().await, 0, "{d}");
    }
}

/// Score-, date- and profile-sorted windows of the Candidates list (cut from the candidate rows
/// alone, then joined) page through exactly the rows and order of a plain sort, in both
/// directions, forwards and from the end, with tied scores.
#[tokio::test]
async fn candidate_windows_page_like_a_plain_sort() {
    use omni::db::browse::{self, BrowseQuery, CampaignId, Rows, Table};
    use omni::db::SqlValue::Int;
    for d in dialects() {
        let t = fresh(d).await;
        let campaign = insert_id(
            &t,
            "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
             VALUES ('c', 'sandbox', 'active', '{}', '1 = 1', '[]', 'h1', $1, $1)",
            vec![Int(T0)],
        )
        .await;
        // (profile, score, added): scores tie in fives, dates in threes.
        let mut rows = Vec::new();
        for i in 0..25i64 {
            let p = profile(&t, &format!("w{i:02}"), 100 + i, Some(T0), "text").await;
            let (score, added) = ((i % 5) as f64 - 1.5, T0 + i % 3);
            sqlx::query("INSERT INTO campaign_candidates (campaign_id, profile_id, cheap_score, added_at) VALUES ($1, $2, $3, $4)")
                .bind(campaign)
                .bind(p)
                .bind(score)
                .bind(added)
                .execute(t.db.writer())
                .await
                .unwrap();
            rows.push((p, score, added));
        }
        for sort in ["score", "added", "profile"] {
            for desc in [true, false] {
                let mut want = rows.clone();
                want.sort_by(|a, b| {
                    let key = match sort {
                        "score" => a.1.partial_cmp(&b.1).unwrap(),
                        "added" => a.2.cmp(&b.2),
                        _ => std::cmp::Ordering::Equal,
                    }
                    .then(a.0.cmp(&b.0));
                    if desc {
                        key.reverse()
                    } else {
                        key
                    }
                });
                let want: Vec<i64> = want.iter().map(|r| r.0).collect();
                for total in [None, Some(25)] {
                    let mut got = Vec::new();
                    for offset in (0..25).step_by(7) {
                        let mut q = BrowseQuery::new(Table::Candidates);
                        q.campaign = Some(CampaignId(campaign));
                        q.sort = Some(sort.into());
                        q.desc = desc;
                        q.offset = offset;
                        q.limit = 7;
                        let page = browse::window(&t.db, &q, total).await.unwrap();
                        let Rows::Candidates(r) = page.rows else {
                            panic!("not candidate rows")
                        };
                        assert!(r.iter().all(|r| r.handle.starts_with('w')), "{d}: joined");
                        got.extend(r.iter().map(|r| r.profile.0));
                    }
                    assert_eq!(got, want, "{d}: sort {sort} desc {desc} total {total:?}");
                }
            }
        }
    }
}

/// Every candidate row as (campaign, profile, score bits).
async fn all_rows(engine: &Engine) -> Vec<(i64, i64, u64)> {
    sqlx::query(
        "SELECT campaign_id, profile_id, cheap_score FROM campaign_candidates ORDER BY campaign_id, profile_id",
    )
    .fetch_all(engine.db().pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get::<f64, _>(2).to_bits()))
    .collect()
}

/// Incremental maintenance of changed profiles (on SQLite one statement per direction for up to 16
/// campaigns and 500 profiles at once) leaves exactly what a full maintenance of each campaign
/// leaves, over rounds of random feature updates that move profiles in and out of 18 campaigns
/// with different filters (ranges, keywords, a `where` with a duration and a language list, NULLs)
/// and different score weights; the first round changes all 600 profiles (more than one
/// statement's worth). A paused campaign's rows are not touched.
#[tokio::test]
async fn incremental_maintenance_equals_full_after_random_updates_across_campaigns() {
    use omni::db::campaigns::{set_status, CampaignStatus};
    use rand::{Rng, SeedableRng};
    const WORDS: [&str; 8] = [
        "vegan", "recipe", "giveaway", "tofu", "bread", "climbing", "Vegan", "travel",
    ];
    let now = T0;
    for d in dialects() {
        let t = fresh(d).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ids = Vec::new();
        for i in 0..600i64 {
            let text = format!(
                "{} {}",
                WORDS[rng.gen_range(0..WORDS.len())],
                WORDS[rng.gen_range(0..WORDS.len())]
            )
            .to_lowercase();
            let last = rng.gen_bool(0.8).then(|| now - rng.gen_range(0..60) * DAY);
            ids.push(
                profile(
                    &t,
                    &format!("p{i:03}"),
                    rng.gen_range(0..5_000),
                    last,
                    &text,
                )
                .await,
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config(&t, dir.path()), Mode::Client)
            .await
            .unwrap();
        let files = [
            CAMPAIGN.to_string(),
            CAMPAIGN
                .replace("Vegan cooks", "Recent")
                .replace("min = 1000", "min = 100, max = 4000")
                .replace(
                    "keywords_any = [\"vegan\", \"recipe\"]",
                    "keywords_none = [\"giveaway\"]\nwhere = 'last_post_at within 20d and language in (\"en\", \"de\")'",
                ),
            CAMPAIGN
                .replace("Vegan cooks", "Bakers")
                .replace("keywords_any = [\"vegan\", \"recipe\"]", "keywords_any = [\"bread\"]"),
            CAMPAIGN.replace("Vegan cooks", "Paused"),
        ];
        // Six copies of the first three filters, each with its own weights, then the paused one.
        let mut campaigns = Vec::new();
        let mut weights = Vec::new();
        for i in 0..19 {
            let file = if i == 18 {
                files[3].clone()
            } else {
                files[i % 3].replace("name = \"", &format!("name = \"{i} "))
            };
            let c = engine
                .create_campaign(&format!("c{i}.toml"), &file)
                .await
                .unwrap();
            let mut w = Weights::prior();
            for (k, x) in w.weights.iter_mut().enumerate() {
                *x *= 1.0 + 0.1 * ((i + k) % 5) as f64;
            }
            w.intercept += 0.05 * i as f64;
            omni::db::campaigns::insert_weights(engine.db(), c.id, &w, 10, None, now)
                .await
                .unwrap();
            weights.push(w);
            campaigns.push(c);
        }
        for c in &campaigns {
            let mut tx = engine.db().begin_write().await.unwrap();
            maintain_campaign_counted(&mut tx, c, now).await.unwrap();
            tx.commit().await.unwrap();
        }
        let paused = campaigns.pop().unwrap();
        set_status(engine.db(), paused.id, CampaignStatus::Paused, now)
            .await
            .unwrap();
        let paused_rows: Vec<_> = all_rows(&engine)
            .await
            .into_iter()
            .filter(|r| r.0 == paused.id.0)
            .collect();
        assert!(!paused_rows.is_empty(), "{d}");
        let mut moved = 0;
        for round in 0..6 {
            let before = all_rows(&engine).await;
            let share = if round == 0 { 1.0 } else { 0.3 };
            let changed: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|_| rng.gen_bool(share))
                .collect();
            let mut tx = engine.db().begin_write().await.unwrap();
            for id in &changed {
                let followers = rng.gen_range(0..5_000i64);
                let text = format!(
                    "{} {}",
                    WORDS[rng.gen_range(0..WORDS.len())],
                    WORDS[rng.gen_range(0..WORDS.len())]
                )
                .to_lowercase();
                let last = rng.gen_bool(0.8).then(|| now - rng.gen_range(0..60) * DAY);
                sqlx::query(
                    "UPDATE profile_features SET followers = $1, log_followers = $2, text = $3, last_post_at = $4, \
                     language = $5, posts_per_week = $6 WHERE profile_id = $7",
                )
                .bind(followers)
                .bind(((followers + 1) as f64).ln())
                .bind(text)
                .bind(last)
                .bind(["en", "de", "fr"][rng.gen_range(0..3)])
                .bind(rng.gen_range(0.0..10.0))
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            let ids: Vec<ProfileId> = changed.iter().map(|&id| ProfileId(id)).collect();
            let m = candidates::maintain_profiles(&mut tx, &ids, now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(m.profiles, ids.len() as i64, "{d}");
            moved += m.written + m.evicted;
            let incremental = all_rows(&engine).await;
            assert_ne!(incremental, before, "{d}: round {round} changed nothing");
            for c in &campaigns {
                let mut tx = engine.db().begin_write().await.unwrap();
                let m = maintain_campaign_counted(&mut tx, c, now).await.unwrap();
                tx.commit().await.unwrap();
                assert_eq!(
                    (m.written, m.evicted),
                    (0, 0),
                    "{d}: round {round}: full maintenance of {} disagrees",
                    c.name
                );
            }
            assert_eq!(all_rows(&engine).await, incremental, "{d}: round {round}");
            let paused_now: Vec<_> = incremental
                .iter()
                .filter(|r| r.0 == paused.id.0)
                .copied()
                .collect();
            assert_eq!(
                paused_now, paused_rows,
                "{d}: the paused campaign was touched"
            );
        }
        assert!(moved > 1000, "{d}: only {moved} rows moved");
        for (c, w) in campaigns.iter().zip(&weights) {
            assert_scores_agree_with(&engine, c, w, now, d).await;
        }
        engine.shutdown().await;
    }
}

/// A batch larger than one drain chunk (PostgreSQL drains chunks on two connections at once)
/// ends exactly where full maintenance would, and is forgotten once drained.
#[tokio::test]
async fn a_drain_of_several_chunks_equals_full_maintenance() {
    let n = 2 * candidates::DRAIN_CHUNK as i64 + 700;
    for d in dialects() {
        let t = fresh(d).await;
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
             SELECT 'sandbox', 'b' || i, 'b' || i, '{}', 'h', 0, 0, 0 FROM n",
        )
        .bind(n)
        .execute(t.db.writer())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO profile_features (profile_id, feature_version, followers, log_followers, following, posts_count, \
             engagement_rate, avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, \
             is_bot, has_link, has_email, text, image_keys, updated_at) \
             SELECT id, 1, (id * 37) % 5000, ((id * 37) % 5000) / 500.0, 10, 10, 0.02, 1.0, 1.0, 2.0, $1, 100, 'en', \
             0, 0, 0, CASE id % 3 WHEN 0 THEN 'vegan tofu' WHEN 1 THEN 'bread recipe' ELSE 'travel' END, '[]', 0 \
             FROM profiles_raw",
        )
        .bind(T0 - DAY)
        .execute(t.db.writer())
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::start(config(&t, dir.path()), Mode::Client)
            .await
            .unwrap();
        let mut campaigns = Vec::new();
        for file in [
            CAMPAIGN.to_string(),
            CAMPAIGN
                .replace("Vegan cooks", "Bakers")
                .replace("min = 1000", "min = 200, max = 3000")
                .replace("[\"vegan\", \"recipe\"]", "[\"bread\"]"),
        ] {
            let c = engine.create_campaign("c.toml", &file).await.unwrap();
            let mut tx = engine.db().begin_write().await.unwrap();
            maintain_campaign_counted(&mut tx, &c, T0).await.unwrap();
            tx.commit().await.unwrap();
            campaigns.push(c);
        }
        let before = all_rows(&engine).await;
        // Every profile changes: audiences move and a third of them change topic.
        sqlx::query(
            "UPDATE profile_features SET followers = (profile_id * 53) % 5000, \
             log_followers = ((profile_id * 53) % 5000) / 500.0, \
             text = CASE profile_id % 4 WHEN 0 THEN 'bread' WHEN 1 THEN 'vegan' ELSE text END",
        )
        .execute(t.db.writer())
        .await
        .unwrap();
        let ids: Vec<ProfileId> = sqlx::query_scalar("SELECT id FROM profiles_raw ORDER BY id")
            .fetch_all(t.db.writer())
            .await
            .unwrap()
            .into_iter()
            .map(ProfileId)
            .collect();
        assert_eq!(ids.len() as i64, n, "{d}");
        let mut tx = engine.db().begin_write().await.unwrap();
        on_profiles_changed(&mut tx, engine.services(), &ids, Some(JobId(900_001)), T0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let job: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1")
            .bind(PENDING_KIND)
            .fetch_one(engine.db().pool())
            .await
            .unwrap();
        let m = drain(engine.db(), JobId(job), T0).await.unwrap();
        assert_eq!(m.profiles, n, "{d}");
        assert!(m.written > 1000 && m.evicted > 500, "{d}: {m:?}");
        let drained = all_rows(&engine).await;
        assert_ne!(drained, before, "{d}");
        for table in ["candidates_pending", "candidates_batches"] {
            assert_eq!(
                scalar(&engine, &format!("SELECT COUNT(*) FROM {table}")).await,
                0,
                "{d}: {table} not emptied"
            );
        }
        for c in &campaigns {
            let mut tx = engine.db().begin_write().await.unwrap();
            let full = maintain_campaign_counted(&mut tx, c, T0).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!((full.written, full.evicted), (0, 0), "{d}: {}", c.name);
        }
        assert_eq!(all_rows(&engine).await, drained, "{d}");
        engine.shutdown().await;
    }
}
