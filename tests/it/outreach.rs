//! Outreach on every dialect, against the sandbox over real HTTP: the send ledger survives a crash
//! between the platform call and `sent`, limits hold under concurrent workers, do-not-contact,
//! quiet hours and 429 pauses stop sends, opt-out replies protect people for good, erasure leaves
//! no trace of a handle, and learning stores new weights.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omni::config::Config;
use omni::db::campaigns::CampaignId;
use omni::db::messages::{MessageId, MessageStatus};
use omni::engine::clock::ManualClock;
use omni::engine::outreach::BatchOptions;
use omni::engine::pipeline::dispatch::{self, AccountConfig, Claim, Outcome};
use omni::engine::pipeline::ingest::{scrape, ScrapeProfile};
use omni::engine::platforms::{PlatformConfig, PlatformKind};
use omni::engine::queue::{JobError, NewJob};
use omni::engine::service::Ctx;
use omni::engine::worker::WorkerConfig;
use omni::engine::{Engine, Mode};
use omni::sandbox::{SandboxHandle, SandboxOptions};
use sqlx::Row;

use crate::common::{dialects, fresh, TestDb};

const T0: i64 = 1_800_000_000_000; // 2027-01-15 08:00:00 UTC
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

static SEQ: AtomicU32 = AtomicU32::new(0);

struct H {
    engine: Engine,
    sb: SandboxHandle,
    clock: Arc<ManualClock>,
    config: Config,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

fn account(token_env: &str) -> AccountConfig {
    AccountConfig {
        platform: "sandbox".into(),
        handle: "omni".into(),
        token_env: token_env.into(),
        daily_cap: 1000,
        hourly_cap: 1000,
        min_gap_secs: 0,
        jitter_secs: 0,
        quiet_hours: None,
        timezone: "UTC".into(),
        warmup_days: 0,
    }
}

/// An engine whose workers run everything but `dispatch.dm` (tests drive sends by hand), on a
/// manual clock, with a sandbox whose clock starts at the same instant.
async fn harness(
    dialect: &str,
    tune_account: impl FnOnce(&mut AccountConfig),
    tune_sandbox: impl FnOnce(&mut SandboxOptions),
) -> H {
    let t = fresh(dialect).await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let token = format!("tok-{}-{n}", std::process::id());
    let token_env = format!("OMNI_TEST_OUTREACH_TOKEN_{n}");
    std::env::set_var(&token_env, &token);
    let mut opts = SandboxOptions {
        seed: 11,
        profiles: 300,
        senders: vec![("omni".into(), token)],
        reply_delay_secs: 60,
        change_fraction: 0.0,
        start_ms: Some(T0),
        ..Default::default()
    };
    tune_sandbox(&mut opts);
    let sb = omni::sandbox::bind(opts, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.database.url = t.url.clone();
    config.storage.path = dir.path().join("objects");
    config.platforms = vec![PlatformConfig {
        max_rate_limit_wait_secs: 0,
        max_retries: 0,
        ..PlatformConfig::new("sandbox", PlatformKind::Sandbox, sb.base_url())
    }];
    let mut a = account(&token_env);
    tune_account(&mut a);
    config.accounts = vec![a];
    config.workers = WorkerConfig {
        concurrency: 4,
        lease_ms: 5_000,
        heartbeat_ms: 500,
        poll_ms: 20,
        rescue_ms: 200,
        grace_ms: 2_000,
        per_kind: HashMap::from([(dispatch::KIND.to_string(), 0)]),
        claim_batch: 64,
    };
    let clock = ManualClock::new(T0);
    let engine = Engine::start_with_clock(config.clone(), Mode::Worker, clock.clone())
        .await
        .unwrap();
    engine.sync_accounts().await.unwrap();
    H {
        engine,
        sb,
        clock,
        config,
        _db: t,
        _dir: dir,
    }
}

impl H {
    fn svc(&self) -> &Ctx {
        self.engine.services()
    }

    /// Moves the engine's and the sandbox's clocks together.
    fn advance(&self, ms: i64) {
        self.clock.advance(ms);
        self.sb.state().advance_ms(ms);
    }

    /// Another engine on the same database whose workers do run `dispatch.dm`.
    async fn dispatch_workers(&self, concurrency: usize) -> Engine {
        let mut c = self.config.clone();
        c.workers.per_kind.clear();
        c.workers.concurrency = concurrency;
        Engine::start_with_clock(c, Mode::Worker, self.clock.clone())
            .await
            .unwrap()
    }

    async fn sent_log(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/_sandbox/sent", self.sb.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_sandbox/stats", self.sb.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sandbox handles of real (non-bot) people, in world order.
    fn people(&self) -> Vec<String> {
        self.sb
            .state()
            .world
            .profiles
            .iter()
            .filter(|p| !p.bot)
            .map(|p| p.username.clone())
            .collect()
    }

    async fn campaign(&self, name: &str) -> CampaignId {
        self.campaign_with(name, "").await
    }

    async fn campaign_with(&self, name: &str, extra: &str) -> CampaignId {
        let src = format!(
            "name = \"{name}\"\nplatform = \"sandbox\"\nbrief = \"Anyone.\"\n{extra}\n[outreach]\ntemplate = \"Hi {{{{ display_name }}}}! {{{{ opener }}}}\"\naccounts = [\"omni\"]\n"
        );
        self.engine
            .create_campaign("test.toml", &src)
            .await
            .unwrap()
            .id
    }

    /// A profile for `handle` (created once) with a verdict and an approved lead in `campaign`.
    async fn lead(&self, campaign: CampaignId, handle: &str, keyword: bool) -> (i64, i64) {
        let db = self.svc().db.clone();
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM profiles_raw WHERE handle = $1")
                .bind(handle)
                .fetch_optional(db.pool())
                .await
                .unwrap();
        let pid = match existing {
            Some(id) => id,
            None => {
                let payload = serde_json::json!({ "account": { "display_name": format!("Display {handle}"), "note": "<p>I cook.</p>" }, "statuses": [] });
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
                     VALUES ('sandbox', $1, $2, $3, 'h', $4, $4, $4) RETURNING id",
                )
                .bind(format!("ext-{handle}"))
                .bind(handle)
                .bind(payload.to_string())
                .bind(T0)
                .fetch_one(db.pool())
                .await
                .unwrap();
                let text = if keyword {
                    "vegan recipes every day"
                } else {
                    "cars and engines"
                };
                sqlx::query(
                    "INSERT INTO profile_features (profile_id, feature_version, followers, log_followers, following, posts_count, engagement_rate, \
                     avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, text, image_keys, updated_at) \
                     VALUES ($1, 1, 1500, 7.3, 100, 200, 0.03, 40.0, 3.0, 3.0, $2, 400, 'en', 0, 0, 0, $3, '[]', $2)",
                )
                .bind(id)
                .bind(T0 - 86_400_000)
                .bind(text)
                .execute(db.pool())
                .await
                .unwrap();
                id
            }
        };
        let score_id: i64 = sqlx::query_scalar(
            "INSERT INTO llm_scores (profile_id, profile_hash, criteria_hash, campaign_id, model, score, qualified, reasons, red_flags, opener, created_at) \
             VALUES ($1, $2, $3, $4, 'sim', 80, 1, '[]', '[]', 'Loved your recipes.', $5) RETURNING id",
        )
        .bind(pid)
        .bind(format!("ph-{pid}"))
        .bind(format!("ch-{campaign}"))
        .bind(campaign.0)
        .bind(T0)
        .fetch_one(db.pool())
        .await
        .unwrap();
        let lead: i64 = sqlx::query_scalar(
            "INSERT INTO leads (campaign_id, profile_id, llm_score_id, score, status, created_at, updated_at) VALUES ($1, $2, $3, 80, 'approved', $4, $4) RETURNING id",
        )
        .bind(campaign.0)
        .bind(pid)
        .bind(score_id)
        .bind(T0)
        .fetch_one(db.pool())
        .await
        .unwrap();
        (pid, lead)
    }

    /// Creates and approves a batch of every lead of `campaign`; returns its message ids in order.
    async fn approved_batch(&self, campaign: CampaignId) -> Vec<MessageId> {
        let b = self
            .engine
            .create_batch(
                campaign,
                BatchOptions {
                    limit: Some(1000),
                    min_score: None,
                },
            )
            .await
            .unwrap();
        let a = self.engine.approve_batch(b.batch.id).await.unwrap();
        a.batch.messages.iter().map(|m| m.message.id).collect()
    }

    async fn status(&self, m: MessageId) -> (MessageStatus, Option<String>, Option<String>) {
        let o = omni::db::messages::outgoing(&self.svc().db, m)
            .await
            .unwrap()
            .unwrap();
        let err: Option<String> = sqlx::query_scalar("SELECT error FROM messages WHERE id = $1")
            .bind(m.0)
            .fetch_one(self.svc().db.pool())
            .await
            .unwrap();
        (o.status, o.platform_message_id, err)
    }

    async fn lead_status(&self, lead: i64) -> String {
        sqlx::query_scalar("SELECT status FROM leads WHERE id = $1")
            .bind(lead)
            .fetch_one(self.svc().db.pool())
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.engine.shutdown().await;
        let _ = self.sb.shutdown().await;
    }
}

fn received(log: &[serde_json::Value], recipient: &str) -> usize {
    log.iter()
        .filter(|r| {
            r["recipients"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == recipient))
        })
        .count()
}

#[tokio::test]
async fn a_send_killed_before_sent_is_reconciled_never_resent() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let c = h.campaign("crash").await;
        let people = h.people();
        h.lead(c, &people[0], true).await;
        h.lead(c, &people[1], true).await;
        let msgs = h.approved_batch(c).await;

        // Attempt one: `sending` committed, the sandbox accepts the DM, and the worker dies before
        // writing `sent` (we simply stop after the call).
        let Claim::Send(a) = dispatch::claim(h.svc(), msgs[0]).await.unwrap() else {
            panic!("{d}: expected a send")
        };
        let accepted = dispatch::call_platform(h.svc(), &a).await.unwrap();
        assert_eq!(h.status(msgs[0]).await.0, MessageStatus::Sending, "{d}");

        // The job is redelivered to a real worker pool, which reconciles.
        let workers = h.dispatch_workers(4).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !h.status(msgs[0]).await.0.is_final() || !h.status(msgs[1]).await.0.is_final() {
            assert!(
                std::time::Instant::now() < deadline,
                "{d}: messages not finished: {:?}",
                h.status(msgs[0]).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        workers.shutdown().await;
        let (status, pid, _) = h.status(msgs[0]).await;
        assert_eq!(status, MessageStatus::Sent, "{d}");
        assert_eq!(
            pid.as_deref(),
            Some(accepted.platform_message_id.as_str()),
            "{d}"
        );
        let log = h.sent_log().await;
        assert_eq!(received(&log, &people[0]), 1, "{d}: sent twice: {log:#?}");
        assert_eq!(received(&log, &people[1]), 1, "{d}");
        // Running the job once more changes nothing.
        assert_eq!(
            dispatch::dispatch(h.svc(), msgs[0], false).await.unwrap(),
            Outcome::AlreadyDone {
                status: MessageStatus::Sent
            }
        );
        assert_eq!(h.sent_log().await.len(), 2, "{d}");
        h.stop().await;
    }
}

#[tokio::test]
async fn a_send_in_doubt_past_the_idempotency_window_becomes_unknown() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let c = h.campaign("late").await;
        let people = h.people();
        h.lead(c, &people[2], true).await;
        let msgs = h.approved_batch(c).await;
        let Claim::Send(a) = dispatch::claim(h.svc(), msgs[0]).await.unwrap() else {
            panic!()
        };
        dispatch::call_platform(h.svc(), &a).await.unwrap();
        h.advance(2 * HOUR);
        let out = dispatch::dispatch(h.svc(), msgs[0], false).await.unwrap();
        assert!(matches!(out, Outcome::Unknown { .. }), "{d}: {out:?}");
        assert_eq!(h.status(msgs[0]).await.0, MessageStatus::Unknown, "{d}");
        assert_eq!(received(&h.sent_log().await, &people[2]), 1, "{d}");
        h.stop().await;
    }
}

async fn wait_quiet(h: &H) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut calm = 0;
    while calm < 3 {
        let now = h.clock.now_ms();
        let busy: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'dispatch.dm' AND (status = 'running' OR (status IN ('queued', 'failed') AND run_at <= $1))",
        )
        .bind(now)
        .fetch_one(h.svc().db.pool())
        .await
        .unwrap();
        calm = if busy == 0 { calm + 1 } else { 0 };
        assert!(
            std::time::Instant::now() < deadline,
            "dispatch jobs did not settle"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

use omni::engine::clock::Clock;

#[tokio::test]
async fn twenty_concurrent_workers_never_exceed_the_hourly_cap() {
    for d in dialects() {
        let h = harness(d, |a| a.hourly_cap = 5, |_| {}).await;
        let c = h.campaign("cap").await;
        let people = h.people();
        for p in &people[..20] {
            h.lead(c, p, true).await;
        }
        let msgs = h.approved_batch(c).await;
        assert_eq!(msgs.len(), 20);
        // Stress: every job wakes at once instead of at its planned slot.
        sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'dispatch.dm'")
            .bind(T0)
            .execute(h.svc().db.pool())
            .await
            .unwrap();
        let w1 = h.dispatch_workers(10).await;
        let w2 = h.dispatch_workers(10).await;
        for _ in 0..40 {
            wait_quiet(&h).await;
            let sent: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'sent'")
                    .fetch_one(h.svc().db.pool())
                    .await
                    .unwrap();
            if sent == 20 {
                break;
            }
            h.advance(10 * MIN);
        }
        w1.shutdown().await;
        w2.shutdown().await;
        let log = h.sent_log().await;
        assert_eq!(log.len(), 20, "{d}: every message sent exactly once");
        let times: Vec<i64> = log
            .iter()
            .map(|r| {
                chrono::DateTime::parse_from_rfc3339(r["received_at"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis()
            })
            .collect();
        for &t in &times {
            let in_hour = times.iter().filter(|&&x| x <= t && t - x < HOUR).count();
            assert!(
                in_hour <= 5,
                "{d}: {in_hour} sends in the hour before {t}: {times:?}"
            );
        }
        h.stop().await;
    }
}

#[tokio::test]
async fn do_not_contact_added_after_approval_stops_the_send() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let c = h.campaign("dnc").await;
        let people = h.people();
        let (_, lead0) = h.lead(c, &people[3], true).await;
        h.lead(c, &people[4], true).await;
        let msgs = h.approved_batch(c).await;
        assert!(h
            .engine
            .dnc_add(
                "sandbox",
                &format!("@{}", people[3].to_uppercase()),
                Some("asked by email")
            )
            .await
            .unwrap());
        let first = dispatch::dispatch(h.svc(), msgs[0], false).await.unwrap();
        assert!(
            matches!(&first, Outcome::Cancelled { reason } if reason.contains("do-not-contact")),
            "{d}: {first:?}"
        );
        assert!(
            matches!(
                dispatch::dispatch(h.svc(), msgs[1], false).await.unwrap(),
                Outcome::Sent { .. }
            ),
            "{d}"
        );
        let log = h.sent_log().await;
        assert_eq!(received(&log, &people[3]), 0, "{d}");
        assert_eq!(received(&log, &people[4]), 1, "{d}");
        assert_eq!(h.status(msgs[0]).await.0, MessageStatus::Cancelled);
        assert_eq!(h.lead_status(lead0).await, "rejected");
        h.stop().await;
    }
}

#[tokio::test]
async fn nothing_is_sent_inside_quiet_hours() {
    for d in dialects() {
        let h = harness(
            d,
            |a| {
                a.quiet_hours = Some("22:00-08:00".parse().unwrap());
                a.timezone = "Europe/Berlin".into();
            },
            |_| {},
        )
        .await;
        let c = h.campaign("quiet").await;
        let people = h.people();
        h.lead(c, &people[5], true).await;
        let msgs = h.approved_batch(c).await;
        // 21:30 UTC = 22:30 in Berlin (winter): quiet until 08:00 Berlin = 07:00 UTC next day.
        h.advance(13 * HOUR + 30 * MIN);
        let err = dispatch::dispatch(h.svc(), msgs[0], false)
            .await
            .unwrap_err();
        let JobError::Snooze { until, reason } = err else {
            panic!("{d}: expected a snooze, got {err:?}")
        };
        assert_eq!(until, T0 + 23 * HOUR, "{d}: {reason}");
        assert!(reason.contains("quiet"), "{reason}");
        assert!(h.sent_log().await.is_empty(), "{d}");
        h.advance(until - h.clock.now_ms());
        assert!(
            matches!(
                dispatch::dispatch(h.svc(), msgs[0], false).await.unwrap(),
                Outcome::Sent { .. }
            ),
            "{d}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn a_429_pauses_the_account_without_a_burst_afterwards() {
    for d in dialects() {
        let h = harness(d, |a| a.min_gap_secs = 60, |s| s.rate_limit = Some(3)).await;
        let c = h.campaign("429").await;
        let people = h.people();
        for p in &people[6..10] {
            h.lead(c, p, true).await;
        }
        let m = h.approved_batch(c).await;
        assert!(matches!(
            dispatch::dispatch(h.svc(), m[0], false).await.unwrap(),
            Outcome::Sent { .. }
        ));
        // The minimum gap holds the second message back.
        assert!(matches!(
            dispatch::dispatch(h.svc(), m[1], false).await,
            Err(JobError::Snooze { .. })
        ));
        h.advance(61_000);
        assert!(matches!(
            dispatch::dispatch(h.svc(), m[1], false).await.unwrap(),
            Outcome::Sent { .. }
        ));
        h.advance(61_000);
        // Someone else spends the window's last request with the same token, so the adapter's own
        // pacing cannot see it coming: the next send is a real 429, which pauses the account.
        let token = std::env::var(&h.config.accounts[0].token_env).unwrap();
        let other = reqwest::Client::new()
            .get(format!("{}/api/v1/notifications", h.sb.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(other.status().is_success());
        let e = dispatch::dispatch(h.svc(), m[2], false).await.unwrap_err();
        assert!(matches!(e, JobError::Snooze { .. }), "{d}: {e:?}");
        assert_eq!(
            h.status(m[2]).await.0,
            MessageStatus::Queued,
            "{d}: a refused message goes back to the queue"
        );
        let acc = &h.engine.accounts().await.unwrap()[0];
        assert!(acc.paused && acc.account.pause_count == 1, "{d}: {acc:?}");
        let paused_until = acc.account.paused_until.unwrap();
        assert_eq!(paused_until, h.clock.now_ms() + 15 * MIN);
        // While paused, nothing reaches the platform however often the jobs run. (The adapter may
        // have refused the third request itself, from the rate-limit headers, before a real 429.)
        let requests = h.stats().await["api_requests"].as_u64().unwrap();
        for _ in 0..3 {
            for id in &m[2..] {
                match dispatch::dispatch(h.svc(), *id, false).await {
                    Err(JobError::Snooze { until, .. }) => assert_eq!(until, paused_until),
                    other => panic!("{d}: {other:?}"),
                }
            }
        }
        let stats = h.stats().await;
        assert_eq!(
            stats["api_requests"].as_u64().unwrap(),
            requests,
            "{d}: the platform was hammered: {stats}"
        );
        assert_eq!(stats["rate_limited"], 1, "{d}: {stats}");
        // After the pause: at most one message goes out (or one more 429, doubling the pause).
        h.advance(15 * MIN);
        let third = dispatch::dispatch(h.svc(), m[2], false).await;
        let fourth = dispatch::dispatch(h.svc(), m[3], false).await;
        assert!(
            matches!(fourth, Err(JobError::Snooze { .. })),
            "{d}: burst after the pause: {third:?} then {fourth:?}"
        );
        if matches!(third, Err(JobError::Snooze { .. })) {
            let acc = &h.engine.accounts().await.unwrap()[0];
            assert_eq!(acc.account.pause_count, 2);
            assert_eq!(
                acc.account.paused_until,
                Some(h.clock.now_ms() + 30 * MIN),
                "{d}: the second pause is longer"
            );
        }
        assert_eq!(
            h.sent_log().await.len() as i64,
            2 + matches!(third, Ok(Outcome::Sent { .. })) as i64,
            "{d}"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn an_opt_out_reply_protects_the_person_in_every_campaign() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let c1 = h.campaign("first").await;
        let c2 = h.campaign("second").await;
        // People likeliest to answer "stop" (the sandbox's hidden truth), so the test has some.
        let mut ranked: Vec<(f64, String)> =
            h.sb.state()
                .world
                .profiles
                .iter()
                .filter(|p| !p.bot)
                .map(|p| {
                    (
                        p.truth.reply_propensity * p.truth.opt_out_rate,
                        p.username.clone(),
                    )
                })
                .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let chosen: Vec<String> = ranked.into_iter().take(25).map(|r| r.1).collect();
        let mut leads1 = HashMap::new();
        for p in &chosen {
            leads1.insert(p.clone(), h.lead(c1, p, true).await.1);
        }
        for m in h.approved_batch(c1).await {
            assert!(matches!(
                dispatch::dispatch(h.svc(), m, false).await.unwrap(),
                Outcome::Sent { .. }
            ));
        }
        let log = h.sent_log().await;
        let mut opted = Vec::new();
        let mut replied = Vec::new();
        for r in &log {
            for p in r["planned_replies"].as_array().unwrap() {
                let who = p["from"].as_str().unwrap().to_string();
                if p["opt_out"] == true {
                    opted.push(who)
                } else {
                    replied.push(who)
                }
            }
        }
        assert!(
            !opted.is_empty(),
            "{d}: the chosen people should include an opt-out"
        );
        // A second campaign already queued a message to someone who is about to opt out.
        let (_, lead2) = h.lead(c2, &opted[0], true).await;
        let later = h.approved_batch(c2).await;

        h.advance(2 * MIN);
        let report = h.engine.sweep_feedback(None).await.unwrap();
        assert_eq!(report.opted_out, opted.len(), "{d}: {report:?}");
        assert_eq!(report.replied, replied.len(), "{d}: {report:?}");
        assert_eq!(report.unmatched, 0);
        assert_eq!(
            h.engine.sweep_feedback(None).await.unwrap().new_events,
            0,
            "{d}: a second sweep adds nothing"
        );
        for who in &opted {
            assert_eq!(h.lead_status(leads1[who]).await, "opted_out", "{d}: {who}");
            assert!(
                omni::db::dnc::is_blocked(&h.svc().db, "sandbox", who, None)
                    .await
                    .unwrap(),
                "{d}: {who} not on do-not-contact"
            );
        }
        for who in &replied {
            assert_eq!(h.lead_status(leads1[who]).await, "replied", "{d}: {who}");
        }
        // Never messaged again: the queued message is cancelled at dispatch, and new batches skip them.
        let out = dispatch::dispatch(h.svc(), later[0], false).await.unwrap();
        assert!(
            matches!(&out, Outcome::Cancelled { reason } if reason.contains("do-not-contact")),
            "{d}: {out:?}"
        );
        assert_eq!(h.lead_status(lead2).await, "rejected");
        sqlx::query("UPDATE leads SET status = 'approved' WHERE id = $1")
            .bind(lead2)
            .execute(h.svc().db.pool())
            .await
            .unwrap();
        assert!(
            h.engine
                .create_batch(c2, BatchOptions::default())
                .await
                .is_err(),
            "{d}: a new batch must skip opted-out people"
        );
        assert_eq!(received(&h.sent_log().await, &opted[0]), 1, "{d}");
        h.stop().await;
    }
}

/// Every (table, text column) of the schema.
async fn text_columns(db: &omni::db::Db) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match db.dialect() {
        omni::db::Dialect::Sqlite => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .fetch_all(db.pool())
                .await
                .unwrap();
            for t in tables {
                for r in sqlx::query(&format!("SELECT name, type FROM pragma_table_info('{t}')")).fetch_all(db.pool()).await.unwrap() {
                    let ty: String = r.try_get("type").unwrap();
                    if ty.eq_ignore_ascii_case("text") {
                        out.push((t.clone(), r.try_get("name").unwrap()));
                    }
                }
            }
        }
        omni::db::Dialect::Postgres => {
            for r in sqlx::query("SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns WHERE table_schema = current_schema() AND data_type = 'text'")
                .fetch_all(db.pool())
                .await
                .unwrap()
            {
                out.push((r.try_get("t").unwrap(), r.try_get("c").unwrap()));
            }
        }
    }
    out
}

async fn rows_mentioning(db: &omni::db::Db, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let cols = text_columns(db).await;
    assert!(cols.len() > 20, "the scan must see the schema: {cols:?}");
    for (t, c) in cols {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {t} WHERE LOWER({c}) LIKE $1"
        ))
        .bind(format!("%{}%", needle.to_lowercase()))
        .fetch_one(db.pool())
        .await
        .unwrap();
        if n > 0 {
            hits.push(format!("{t}.{c} ({n})"));
        }
    }
    hits
}

#[tokio::test]
async fn erase_leaves_no_row_with_the_handle_and_deletes_their_images() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let platform = h.svc().platform("sandbox").unwrap();
        let people = h.people();
        let (gone, kept) = (people[10].clone(), people[11].clone());
        for p in [&gone, &kept] {
            scrape(
                h.svc(),
                platform.as_ref(),
                &ScrapeProfile {
                    platform: "sandbox".into(),
                    handle: p.clone(),
                },
                None,
            )
            .await
            .unwrap();
        }
        let keys = |handle: String| {
            let db = h.svc().db.clone();
            async move {
                let k: String = sqlx::query_scalar("SELECT f.image_keys FROM profile_features f JOIN profiles_raw p ON p.id = f.profile_id WHERE p.handle = $1")
                    .bind(handle)
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                serde_json::from_str::<Vec<String>>(&k).unwrap()
            }
        };
        let (gone_keys, kept_keys) = (keys(gone.clone()).await, keys(kept.clone()).await);
        assert!(
            !gone_keys.is_empty(),
            "{d}: the scraped profile should have images"
        );
        let c = h.campaign("erase").await;
        h.lead(c, &gone, true).await;
        h.lead(c, &kept, true).await;
        for m in h.approved_batch(c).await {
            dispatch::dispatch(h.svc(), m, false).await.unwrap();
        }
        h.advance(2 * MIN);
        h.engine.sweep_feedback(None).await.unwrap();
        h.engine
            .dnc_add("sandbox", &gone, Some("asked"))
            .await
            .unwrap();
        h.engine
            .enqueue(NewJob::new(
                "test.note",
                serde_json::json!({ "handle": gone }),
            ))
            .await
            .unwrap();
        assert!(!rows_mentioning(&h.svc().db, &gone).await.is_empty());

        let report = h.engine.erase(&gone, None).await.unwrap();
        assert_eq!(report.profiles, 1, "{d}: {report:?}");
        let left = rows_mentioning(&h.svc().db, &gone).await;
        assert!(left.is_empty(), "{d}: rows still mention @{gone}: {left:?}");
        for k in &gone_keys {
            assert_eq!(
                h.svc().storage.contains(k).await.unwrap(),
                kept_keys.contains(k),
                "{d}: image {k}"
            );
        }
        for k in &kept_keys {
            assert!(
                h.svc().storage.contains(k).await.unwrap(),
                "{d}: someone else's image was deleted"
            );
        }
        assert!(
            omni::db::dnc::is_blocked(&h.svc().db, "sandbox", &gone, None)
                .await
                .unwrap(),
            "{d}: the hash must keep them protected"
        );
        assert!(
            !rows_mentioning(&h.svc().db, &kept).await.is_empty(),
            "{d}: the other person is untouched"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn learning_stores_a_new_version_that_ranks_repliers_first() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let c = h
            .campaign_with("learn", "[filter]\nkeywords_any = [\"vegan\"]\n")
            .await;
        let db = h.svc().db.clone();
        let batch: i64 = sqlx::query_scalar("INSERT INTO dm_batches (campaign_id, status, created_at) VALUES ($1, 'done', $2) RETURNING id")
            .bind(c.0)
            .bind(T0)
            .fetch_one(db.pool())
            .await
            .unwrap();
        // The people with the keyword reply (mostly); the others do not.
        for i in 0..40 {
            let keyword = i % 2 == 0;
            let (_, lead) = h.lead(c, &format!("learner{i}"), keyword).await;
            let replied = if keyword { i % 10 != 0 } else { i % 10 == 1 };
            sqlx::query("INSERT INTO messages (lead_id, batch_id, body, status, idempotency_key, attempts, sent_at) VALUES ($1, $2, 'hi', 'sent', $3, 1, $4)")
                .bind(lead)
                .bind(batch)
                .bind(format!("k{i}"))
                .bind(T0)
                .execute(db.pool())
                .await
                .unwrap();
            if replied {
                sqlx::query("UPDATE leads SET status = 'replied' WHERE id = $1")
                    .bind(lead)
                    .execute(db.pool())
                    .await
                    .unwrap();
            }
        }
        // Inside the reply window, unreplied messages are not labelled yet.
        let early = h.engine.learn(c).await.unwrap();
        assert!(
            early.n_samples < 40 && early.new.is_none(),
            "{d}: {early:?}"
        );
        h.advance(8 * 86_400_000);
        let r = h.engine.learn(c).await.unwrap();
        assert_eq!(r.n_samples, 40, "{d}");
        let new = r.new.expect("weights learned");
        assert_eq!(new.version, 1);
        assert!(r.auc.unwrap() > 0.7, "{d}: auc {:?}", r.auc);
        assert!(
            new.weights[4] > r.previous.weights[4] * 0.5,
            "{d}: keyword weight {new:?}"
        );
        let stored: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM campaign_weights WHERE campaign_id = $1")
                .bind(c.0)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(stored, 1);
        let again = h.engine.learn(c).await.unwrap();
        assert_eq!(
            again.new.unwrap().version,
            2,
            "{d}: each fit is a new version"
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn a_template_field_a_lead_lacks_fails_the_batch() {
    for d in dialects() {
        let h = harness(d, |_| {}, |_| {}).await;
        let src = "name = \"strict\"\nplatform = \"sandbox\"\nbrief = \"Anyone.\"\n\n[outreach]\ntemplate = \"Hi {{ first_name }}!\"\n";
        let c = h
            .engine
            .create_campaign("strict.toml", src)
            .await
            .unwrap()
            .id;
        let people = h.people();
        h.lead(c, &people[12], true).await;
        let err = h
            .engine
            .create_batch(c, BatchOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("first_name") && err.contains(&people[12]),
            "{d}: {err}"
        );
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(h.svc().db.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        h.stop().await;
    }
}

#[tokio::test]
async fn batch_show_plans_each_send_at_the_earliest_time_the_limits_allow() {
    for d in dialects() {
        let h = harness(
            d,
            |a| {
                a.hourly_cap = 3;
                a.min_gap_secs = 600;
            },
            |_| {},
        )
        .await;
        let c = h.campaign("plan").await;
        for p in &h.people()[..5] {
            h.lead(c, p, true).await;
        }
        let b = h
            .engine
            .create_batch(c, BatchOptions::default())
            .await
            .unwrap();
        let planned: Vec<i64> = b.messages.iter().map(|m| m.planned_at.unwrap()).collect();
        // Ten minutes apart, three per rolling hour: the fourth waits for the first to age out.
        assert_eq!(
            planned,
            vec![
                T0,
                T0 + 10 * MIN,
                T0 + 20 * MIN,
                T0 + HOUR,
                T0 + HOUR + 10 * MIN
            ],
            "{d}"
        );
        assert!(b
            .messages
            .iter()
            .all(|m| m.account.as_deref() == Some("omni")));
        let approved = h.engine.approve_batch(b.batch.id).await.unwrap();
        let run_at: Vec<i64> =
            sqlx::query_scalar("SELECT run_at FROM jobs WHERE kind = 'dispatch.dm' ORDER BY id")
                .fetch_all(h.svc().db.pool())
                .await
                .unwrap();
        assert_eq!(run_at, planned, "{d}: each job wakes at its planned time");
        assert_eq!(approved.batch.counts.get(&MessageStatus::Queued), Some(&5));
        let cancelled = h.engine.cancel_batch(b.batch.id).await.unwrap();
        assert_eq!(
            cancelled.counts.get(&MessageStatus::Cancelled),
            Some(&5),
            "{d}"
        );
        h.stop().await;
    }
}
