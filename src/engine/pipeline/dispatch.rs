//! `dispatch.dm`: sends one approved message through the send ledger (DESIGN §5), so a message is
//! sent effectively once however often its job runs.
//!
//! 1. **Claim** (one write transaction): pick a sender account the limits allow now — rolling
//!    hourly and daily caps, minimum gap plus jitter, quiet hours in the account's time zone, the
//!    warm-up ramp, the circuit breaker — round-robin across the campaign's accounts; then, last,
//!    do-not-contact and the cross-campaign cooldown; then commit `sending`. Anything that cannot
//!    be decided blocks the send (fail closed); a limit snoozes the job until the next allowed time.
//! 2. **Call** the platform with the message's idempotency key.
//! 3. **Record** `sent` with the platform's id — or, for a 429 or an auth error, pause the account
//!    and put the message back; for a refusal, `failed`; for a transport error, leave it `sending`.
//!
//! A job that finds its message `sending` (a redelivery after a crash) reconciles: it asks the
//! platform by id, or re-posts with the same idempotency key inside the platform's idempotency
//! window (which returns the original); past the window it cannot tell, and the message becomes
//! `unknown` for the operator. It never sends blindly.

use std::fmt;
use std::str::FromStr;

use chrono::{TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing::{info, warn};

use crate::db::accounts::{self, AccountRow};
use crate::db::campaigns::{self, CampaignId};
use crate::db::messages::{self, MessageId, MessageStatus, Outgoing};
use crate::db::{dnc, DbError};
use crate::engine::clock::Millis;
use crate::engine::platforms::{AccessToken, PlatformError, SentMessage, IDEMPOTENCY_WINDOW_MS};
use crate::engine::queue::{JobError, NewJob};
use crate::engine::service::{Ctx, Services};
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// The job kind.
pub const KIND: &str = "dispatch.dm";

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 3_600_000;
const DAY_MS: Millis = 86_400_000;
/// Re-posting this close to the end of the idempotency window risks the platform having
/// forgotten the key by the time the request lands: treat it as outside.
const WINDOW_MARGIN_MS: Millis = 5 * MINUTE_MS;
/// The first pause after a 429 or an auth error; each further one doubles, up to a day.
const PAUSE_BASE_MS: Millis = 15 * MINUTE_MS;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `[[accounts]]`: a sender account and its sending limits. The token lives in the environment
/// variable `token_env`, never in the file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The `[[platforms]]` name the account is on.
    pub platform: String,
    /// The account's handle (`user`, no domain).
    pub handle: String,
    /// The environment variable holding the account's access token.
    pub token_env: String,
    /// Most messages in any rolling 24 hours (after warm-up).
    #[serde(default = "default_daily_cap")]
    pub daily_cap: u32,
    /// Most messages in any rolling hour.
    #[serde(default = "default_hourly_cap")]
    pub hourly_cap: u32,
    /// Least time between two messages, in seconds.
    #[serde(default = "default_min_gap_secs")]
    pub min_gap_secs: u32,
    /// Up to this many seconds added to each gap, so sends do not tick like a clock.
    #[serde(default = "default_jitter_secs")]
    pub jitter_secs: u32,
    /// Local hours with no sending, e.g. `"22:00-08:00"`.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// The account's IANA time zone for quiet hours, e.g. `"Europe/Berlin"`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The daily cap rises linearly over this many days from the account's first sync (0 = none).
    #[serde(default)]
    pub warmup_days: u32,
}

fn default_daily_cap() -> u32 {
    40
}
fn default_hourly_cap() -> u32 {
    8
}
fn default_min_gap_secs() -> u32 {
    120
}
fn default_jitter_secs() -> u32 {
    60
}
fn default_timezone() -> String {
    "UTC".into()
}

impl AccountConfig {
    /// The handle as stored (no `@`, lower-case).
    pub fn normalized_handle(&self) -> String {
        accounts::normalize(&self.handle)
    }

    /// Checks the values, saying which is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.platform.trim().is_empty() {
            return Err("platform must name a [[platforms]] entry".into());
        }
        if self.normalized_handle().is_empty() {
            return Err("handle must not be empty".into());
        }
        if self.token_env.trim().is_empty() {
            return Err("token_env must name the environment variable holding the token".into());
        }
        if self.daily_cap == 0 || self.hourly_cap == 0 {
            return Err(
                "daily_cap and hourly_cap must be at least 1 (remove the account to stop sending)"
                    .into(),
            );
        }
        Tz::from_str(&self.timezone).map_err(|_| {
            format!(
                "timezone {:?} is not an IANA time zone such as \"Europe/Berlin\" or \"UTC\"",
                self.timezone
            )
        })?;
        Ok(())
    }
}

/// A daily span of local time with no sending; may wrap midnight (`22:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after local midnight.
    pub start_min: u16,
    /// End (exclusive), minutes after local midnight.
    pub end_min: u16,
}

impl QuietHours {
    /// Whether `minute` (after local midnight) is quiet.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&minute)
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }

    /// When the quiet span containing `t` ends, or `None` when `t` is not quiet.
    pub fn end_after(&self, t: Millis, tz: Tz) -> Option<Millis> {
        let local = Utc.timestamp_millis_opt(t).single()?.with_timezone(&tz);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        if !self.contains(minute) {
            return None;
        }
        let into_minute =
            i64::from(local.second()) * 1000 + i64::from(local.nanosecond() / 1_000_000).min(999);
        let minutes = (i64::from(self.end_min) - i64::from(minute)).rem_euclid(1440);
        Some(t - into_minute + minutes * MINUTE_MS)
    }
}

impl FromStr for QuietHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("quiet_hours {s:?} must look like \"22:00-08:00\" (local HH:MM-HH:MM, start and end differ)")
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let parse = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start_min, end_min) = (parse(a).ok_or_else(bad)?, parse(b).ok_or_else(bad)?);
        if start_min == end_min {
            return Err(bad());
        }
        Ok(Self { start_min, end_min })
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Limits (pure)
// ---------------------------------------------------------------------------------------------

/// An account's sending limits and breaker state, as the claim checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub daily_cap: i64,
    pub hourly_cap: i64,
    pub min_gap_ms: Millis,
    pub jitter_ms: Millis,
    pub quiet_hours: Option<QuietHours>,
    pub timezone: Tz,
    pub warmup_days: i64,
    /// When the account was first synced (the warm-up ramp starts here).
    pub created_at: Millis,
    pub paused_until: Option<Millis>,
}

/// What keeps an account from sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// Paused after a 429 or an auth error.
    Paused,
    /// The rolling hourly cap is spent.
    HourlyCap,
    /// The rolling daily cap (warm-up included) is spent.
    DailyCap,
    /// Too soon after the previous message.
    MinGap,
    /// Inside the account's quiet hours.
    QuietHours,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blocker::Paused => "paused after a platform error",
            Blocker::HourlyCap => "hourly cap reached",
            Blocker::DailyCap => "daily cap reached",
            Blocker::MinGap => "minimum gap between messages",
            Blocker::QuietHours => "quiet hours",
        })
    }
}

impl Limits {
    /// The limits of a stored account; an unreadable quiet-hours or time-zone value is an error
    /// (the account then sends nothing: fail closed).
    pub fn of(a: &AccountRow) -> Result<Self, String> {
        let quiet_hours = a.quiet_hours.as_deref().map(str::parse).transpose()?;
        let timezone = Tz::from_str(&a.timezone)
            .map_err(|_| format!("account @{}: unknown time zone {:?}", a.handle, a.timezone))?;
        Ok(Self {
            daily_cap: a.daily_cap,
            hourly_cap: a.hourly_cap,
            min_gap_ms: a.min_gap_secs.max(0) * 1000,
            jitter_ms: a.jitter_secs.max(0) * 1000,
            quiet_hours,
            timezone,
            warmup_days: a.warmup_days,
            created_at: a.created_at,
            paused_until: a.paused_until,
        })
    }

    /// The daily cap in force at `t`: during warm-up it rises linearly, day by day, from
    /// `daily_cap / warmup_days` on the first day to `daily_cap` on the last.
    pub fn daily_cap_at(&self, t: Millis) -> i64 {
        if self.warmup_days <= 0 {
            return self.daily_cap;
        }
        let day = ((t - self.created_at).max(0) / DAY_MS) + 1;
        if day >= self.warmup_days {
            return self.daily_cap;
        }
        ((self.daily_cap * day + self.warmup_days - 1) / self.warmup_days).max(1)
    }

    /// The jitter added to the gap after a send at `last`: fixed per (account, send), so every
    /// check agrees on the same next time.
    pub fn jitter_after(&self, account_key: i64, last: Millis) -> Millis {
        if self.jitter_ms <= 0 {
            return 0;
        }
        (splitmix(account_key as u64 ^ (last as u64).rotate_left(17)) % (self.jitter_ms as u64 + 1))
            as Millis
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The earliest time at or after `now` when the account may send, given the start times of its
/// earlier sends (ascending; at least the last 24 hours), and what blocks it now (`None` = free
/// now). Each rule only ever pushes the time later, so the loop reaches the first time every rule
/// allows; should it not settle, the returned time is still later than `now` and nothing is sent.
pub fn next_allowed(
    l: &Limits,
    account_key: i64,
    sends: &[Millis],
    now: Millis,
) -> (Millis, Option<Blocker>) {
    let mut t = now;
    let mut first: Option<Blocker> = None;
    for _ in 0..64 {
        let mut next = t;
        let mut why = None;
        let mut push = |cand: Millis, b: Blocker, next: &mut Millis| {
            if cand > *next {
                *next = cand;
                why = Some(b);
            }
        };
        if let Some(p) = l.paused_until {
            push(p, Blocker::Paused, &mut next);
        }
        push(
            window_free_at(sends, t, HOUR_MS, l.hourly_cap),
            Blocker::HourlyCap,
            &mut next,
        );
        let cap = l.daily_cap_at(t);
        let mut daily = window_free_at(sends, t, DAY_MS, cap);
        if daily > t && l.warmup_days > 0 && cap < l.daily_cap {
            // The ramp raises the cap at the next day boundary, which may come first.
            let day = (t - l.created_at).max(0) / DAY_MS;
            daily = daily.min(l.created_at + (day + 1) * DAY_MS);
        }
        push(daily, Blocker::DailyCap, &mut next);
        if let Some(&last) = sends.last() {
            push(
                last + l.min_gap_ms + l.jitter_after(account_key, last),
                Blocker::MinGap,
                &mut next,
            );
        }
        if next == t {
            if let Some(end) = l.quiet_hours.and_then(|q| q.end_after(t, l.timezone)) {
                push(end, Blocker::QuietHours, &mut next);
            }
        }
        if next == t {
            return (t, first);
        }
        first = first.or(why);
        t = next;
    }
    (t.max(now + MINUTE_MS), first)
}

/// When a rolling window of `len` ending at `t` holds fewer than `cap` of `sends` (a send at `s`
/// counts while `t - s < len`).
fn window_free_at(sends: &[Millis], t: Millis, len: Millis, cap: i64) -> Millis {
    if cap <= 0 {
        return Millis::MAX / 2;
    }
    let inside: Vec<Millis> = sends
        .iter()
        .copied()
        .filter(|s| t - *s < len && *s <= t)
        .collect();
    let n = inside.len() as i64;
    if n < cap {
        return t;
    }
    inside[(n - cap) as usize] + len
}

/// How long the `pause_count`-th consecutive pause lasts (0-based): 15 minutes, doubling, ≤ a day.
pub fn pause_len(pause_count: i64) -> Millis {
    PAUSE_BASE_MS
        .saturating_mul(1i64 << pause_count.clamp(0, 16))
        .min(DAY_MS)
}

// ---------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------

/// The payload of `dispatch.dm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchPayload {
    /// The message to send.
    pub message_id: i64,
}

/// The `dispatch.dm` job for one message, runnable from `run_at`.
pub fn job_for(message: MessageId, campaign: CampaignId, run_at: Millis) -> NewJob {
    NewJob::new(KIND, serde_json::json!({ "message_id": message.0 }))
        .unique(format!("{KIND}:{message}"))
        .campaign(campaign.0)
        .run_at(run_at)
        .max_attempts(10)
}

/// Registers `dispatch.dm`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register(KIND, |ctx: JobCtx<Ctx>| async move {
        let p: DispatchPayload = ctx.payload()?;
        let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
        let outcome = dispatch(&ctx.ctx, MessageId(p.message_id), last_attempt).await?;
        let result: JobResult = Ok(Some(serde_json::to_value(&outcome).unwrap_or_default()));
        result
    });
}

/// What one dispatch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Sent now.
    Sent {
        platform_message_id: String,
        account: String,
    },
    /// A send in doubt turned out to have reached the platform (or was completed with the same
    /// idempotency key).
    Reconciled {
        platform_message_id: String,
        account: String,
    },
    /// A send in doubt that could not be reconciled.
    Unknown { reason: String },
    /// The platform refused the message.
    Failed { reason: String },
    /// Not sent (do-not-contact, cooldown, or cancelled by the operator).
    Cancelled { reason: String },
    /// The message had already reached `status`.
    AlreadyDone { status: MessageStatus },
    /// The message's batch is not approved.
    NotApproved,
    /// The message no longer exists (erased or its batch deleted).
    Gone,
}

/// A message committed `sending` (or found `sending`) on an account.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The message (its `account_id` and `sent_at` are set).
    pub message: Outgoing,
    /// The sending account.
    pub account: AccountRow,
}

/// The result of the claim step.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Committed `sending`: call the platform now.
    Send(Attempt),
    /// Found `sending` from an earlier attempt: reconcile, never resend blindly.
    Reconcile(Attempt),
    /// Nothing to send.
    Done(Outcome),
}

/// Runs the whole ledger for one message: claim, call, record — or reconcile. On the job's last
/// attempt a send still in doubt becomes `unknown` instead of staying `sending`.
pub async fn dispatch(
    svc: &Services,
    id: MessageId,
    last_attempt: bool,
) -> Result<Outcome, JobError> {
    match claim(svc, id).await? {
        Claim::Done(o) => Ok(o),
        Claim::Send(a) => {
            let result = call_platform(svc, &a).await;
            record(svc, &a, result, true, last_attempt).await
        }
        Claim::Reconcile(a) => reconcile(svc, &a, last_attempt).await,
    }
}

fn token_of(a: &AccountRow) -> Result<AccessToken, PlatformError> {
    AccessToken::from_env(&a.token_env)
}

/// Step 1: checks the limits, do-not-contact and the cooldown, and commits `sending` on the chosen
/// account — or says why not (`Snooze` until the next allowed time for a limit).
pub async fn claim(svc: &Services, id: MessageId) -> Result<Claim, JobError> {
    let Some(m) = messages::outgoing(&svc.db, id).await? else {
        return Ok(Claim::Done(Outcome::Gone));
    };
    match m.status {
        MessageStatus::Sending => {
            let account = match m.account_id {
                Some(a) => accounts::get(&svc.db, a).await?,
                None => None,
            };
            let Some(account) = account else {
                // A `sending` row always names its account; without it nothing can be asked.
                return mark_unknown(
                    svc,
                    &m,
                    "the sending account no longer exists; cannot reconcile",
                )
                .await
                .map(Claim::Done);
            };
            return Ok(Claim::Reconcile(Attempt {
                message: m,
                account,
            }));
        }
        MessageStatus::Queued | MessageStatus::Approved => {}
        MessageStatus::Draft => return Ok(Claim::Done(Outcome::NotApproved)),
        status => return Ok(Claim::Done(Outcome::AlreadyDone { status })),
    }
    let campaign = campaigns::get(&svc.db, m.campaign_id)
        .await?
        .ok_or_else(|| {
            JobError::Permanent(format!(
                "campaign {} of message {id} is gone",
                m.campaign_id
            ))
        })?;
    let (handles, cooldown_days) = match &campaign.spec.outreach {
        Some(o) => (o.accounts.clone(), i64::from(o.cooldown_days)),
        None => (
            Vec::new(),
            i64::from(crate::engine::criteria::spec::default_cooldown_days()),
        ),
    };

    let mut synced = false;
    loop {
        let now = svc.clock.now_ms();
        let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
        // Re-read under the write lock: another worker may have moved the message meanwhile.
        let Some(m) = messages::outgoing_on(&mut tx, id).await? else {
            return Ok(Claim::Done(Outcome::Gone));
        };
        if !matches!(m.status, MessageStatus::Queued | MessageStatus::Approved) {
            return Ok(Claim::Done(Outcome::AlreadyDone { status: m.status }));
        }
        let senders =
            accounts::senders_on(&mut tx, Some(svc.db.dialect()), &m.platform, &handles).await?;
        if senders.is_empty() {
            drop(tx);
            if !synced {
                // Workers may run in a process that never synced `[[accounts]]`: do it once.
                accounts::sync(&svc.db, &svc.config.accounts, now).await?;
                synced = true;
                continue;
            }
            let want = if handles.is_empty() {
                "any account".to_string()
            } else {
                format!("the accounts {}", handles.join(", "))
            };
            let reason = format!(
                "no enabled sender account on platform `{}` ({want}): add it under [[accounts]]",
                m.platform
            );
            return finish_unsent(svc, &m, MessageStatus::Failed, &reason)
                .await
                .map(|_| Claim::Done(Outcome::Failed { reason }));
        }

        // Limits, checked for every candidate account; fail closed on anything unreadable.
        let mut best: Option<(AccountRow, Millis)> = None;
        let mut earliest: Option<(Millis, String)> = None;
        let mut problems = Vec::new();
        for a in senders {
            if let Err(e) = token_of(&a) {
                problems.push(format!("@{}: {e}", a.handle));
                continue;
            }
            let limits = match Limits::of(&a) {
                Ok(l) => l,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let sends = accounts::sends_since_on(&mut tx, a.id, now - DAY_MS).await?;
            let (at, why) = next_allowed(&limits, a.id.0, &sends, now);
            if at <= now {
                let last = sends.last().copied().unwrap_or(Millis::MIN);
                // Round-robin: the allowed account that sent least recently goes next.
                if best
                    .as_ref()
                    .is_none_or(|(b, l)| last < *l || (last == *l && a.id < b.id))
                {
                    best = Some((a, last));
                }
            } else if earliest.as_ref().is_none_or(|(t, _)| at < *t) {
                let why = why
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "limits".into());
                earliest = Some((at, format!("@{}: {why}", a.handle)));
            }
        }
        let Some((account, _)) = best else {
            drop(tx);
            return Err(match earliest {
                Some((until, reason)) => JobError::Snooze { until, reason },
                None => JobError::Retryable(format!(
                    "no sender account can send: {}",
                    problems.join("; ")
                )),
            });
        };

        // Last, just before the call: do-not-contact and the cooldown across campaigns.
        if dnc::is_blocked_on(&mut tx, &m.platform, &m.handle, Some(&m.external_id)).await? {
            let reason = "on the do-not-contact list".to_string();
            cancel_in(&mut tx, &m, &reason, now).await?;
            tx.commit().await.map_err(JobError::from)?;
            info!(message = %id, "not sent: do-not-contact");
            return Ok(Claim::Done(Outcome::Cancelled { reason }));
        }
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages m JOIN leads l ON l.id = m.lead_id WHERE l.profile_id = $1 AND m.id <> $2 \
             AND m.sent_at IS NOT NULL AND m.sent_at > $3 AND (m.status IN ('sending', 'sent', 'unknown') OR m.platform_message_id IS NOT NULL)",
        )
        .bind(m.profile_id)
        .bind(id.0)
        .bind(now - cooldown_days * DAY_MS)
        .fetch_one(&mut *tx)
        .await?;
        if recent > 0 {
            let reason =
                format!("already messaged within the last {cooldown_days} days (cooldown)");
            cancel_in(&mut tx, &m, &reason, now).await?;
            tx.commit().await.map_err(JobError::from)?;
            return Ok(Claim::Done(Outcome::Cancelled { reason }));
        }

        let r = sqlx::query(
            "UPDATE messages SET status = 'sending', account_id = $1, sent_at = $2, attempts = attempts + 1, error = NULL \
             WHERE id = $3 AND status IN ('queued', 'approved')",
        )
        .bind(account.id.0)
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(Claim::Done(Outcome::AlreadyDone { status: m.status }));
        }
        sqlx::query(
            "UPDATE dm_batches SET status = 'dispatching' WHERE id = $1 AND status = 'approved'",
        )
        .bind(m.batch_id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(JobError::from)?;
        let mut message = m;
        message.status = MessageStatus::Sending;
        message.account_id = Some(account.id);
        message.sent_at = Some(now);
        return Ok(Claim::Send(Attempt { message, account }));
    }
}

/// Step 2: the platform call (the only step with an effect outside the database).
pub async fn call_platform(svc: &Services, a: &Attempt) -> Result<SentMessage, PlatformError> {
    let platform = svc
        .platform(&a.message.platform)
        .map_err(|e| PlatformError::Config(e.to_string()))?;
    let token = token_of(&a.account)?;
    platform
        .send_dm(
            &token,
            &a.message.handle,
            &a.message.body,
            &a.message.idempotency_key,
        )
        .await
}

/// Step 3: records what the platform said. `fresh` is false when re-posting to reconcile (then a
/// 429 keeps the message `sending`: the first attempt may have landed).
pub async fn record(
    svc: &Services,
    a: &Attempt,
    result: Result<SentMessage, PlatformError>,
    fresh: bool,
    last_attempt: bool,
) -> Result<Outcome, JobError> {
    let m = &a.message;
    let now = svc.clock.now_ms();
    match result {
        Ok(sent) => {
            let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
            let r = sqlx::query("UPDATE messages SET status = 'sent', platform_message_id = $1, error = NULL WHERE id = $2 AND status = 'sending'")
                .bind(&sent.platform_message_id)
                .bind(m.id.0)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 1 {
                messages::set_lead_status_on(
                    &mut tx,
                    m.lead_id,
                    "sent",
                    &["new", "approved", "queued", "failed"],
                    now,
                )
                .await?;
                accounts::clear_pause_on(&mut tx, a.account.id).await?;
                messages::settle_batch_on(&mut tx, m.batch_id).await?;
            }
            tx.commit().await.map_err(JobError::from)?;
            info!(message = %m.id, account = %a.account.handle, platform_id = %sent.platform_message_id, "message sent");
            let (platform_message_id, account) =
                (sent.platform_message_id, a.account.handle.clone());
            Ok(if fresh {
                Outcome::Sent {
                    platform_message_id,
                    account,
                }
            } else {
                Outcome::Reconciled {
                    platform_message_id,
                    account,
                }
            })
        }
        Err(
            e @ (PlatformError::RateLimited { .. }
            | PlatformError::Unauthorized { .. }
            | PlatformError::Forbidden { .. }),
        ) => {
            // The platform refused before creating anything: pause the account instead of
            // hammering it, and give the message back (to this or another account later).
            let len = pause_len(a.account.pause_count);
            let said = e
                .retry_at()
                .map(|u| u - now)
                .filter(|d| *d > 0 && *d <= DAY_MS)
                .unwrap_or(0);
            let until = now + len.max(said);
            let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
            accounts::pause_on(&mut tx, a.account.id, until).await?;
            if fresh {
                sqlx::query(
                    "UPDATE messages SET status = 'queued', account_id = NULL, sent_at = NULL, error = $1 WHERE id = $2 AND status = 'sending'",
                )
                .bind(format!("not sent: {e}; account @{} paused", a.account.handle))
                .bind(m.id.0)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await.map_err(JobError::from)?;
            warn!(account = %a.account.handle, until, error = %e, "sender account paused");
            if !fresh
                && until - m.sent_at.unwrap_or(now) >= IDEMPOTENCY_WINDOW_MS - WINDOW_MARGIN_MS
            {
                return mark_unknown(svc, m, &format!("could not confirm the send before the platform's idempotency window closed ({e})")).await;
            }
            // Re-check at once: another account may take it; otherwise the claim snoozes until the pause ends.
            Err(JobError::Snooze {
                until: if fresh { now } else { until },
                reason: format!("account @{} paused: {e}", a.account.handle),
            })
        }
        Err(PlatformError::RecipientNotReached {
            recipient,
            platform_message_id,
        }) => {
            let reason = format!("the platform created message {platform_message_id} but it does not reach @{recipient}");
            let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
            sqlx::query("UPDATE messages SET status = 'failed', platform_message_id = $1, error = $2 WHERE id = $3 AND status = 'sending'")
                .bind(&platform_message_id)
                .bind(&reason)
                .bind(m.id.0)
                .execute(&mut *tx)
                .await?;
            messages::set_lead_status_on(
                &mut tx,
                m.lead_id,
                "failed",
                &["new", "approved", "queued"],
                now,
            )
            .await?;
            messages::settle_batch_on(&mut tx, m.batch_id).await?;
            tx.commit().await.map_err(JobError::from)?;
            Ok(Outcome::Failed { reason })
        }
        Err(
            e @ (PlatformError::Transient { .. }
            | PlatformError::Malformed { .. }
            | PlatformError::TooLarge { .. }),
        ) => {
            // The request may or may not have landed: leave `sending` for the next attempt to
            // reconcile — unless there is none.
            if last_attempt {
                return mark_unknown(
                    svc,
                    m,
                    &format!("the send is in doubt and no attempts are left: {e}"),
                )
                .await;
            }
            Err(JobError::Retryable(format!(
                "send in doubt, will reconcile: {e}"
            )))
        }
        Err(e) => {
            let reason = format!("the platform refused the message: {e}");
            finish_unsent(svc, m, MessageStatus::Failed, &reason).await?;
            Ok(Outcome::Failed { reason })
        }
    }
}

/// A redelivered job found the message `sending`: find out whether it reached the platform.
pub async fn reconcile(
    svc: &Services,
    a: &Attempt,
    last_attempt: bool,
) -> Result<Outcome, JobError> {
    let m = &a.message;
    let now = svc.clock.now_ms();
    let token = match token_of(&a.account) {
        Ok(t) => t,
        Err(e) => {
            return Err(JobError::Retryable(format!(
                "cannot reconcile message {}: {e}",
                m.id
            )))
        }
    };
    let platform = svc.platform(&m.platform)?;
    if let Some(pid) = &m.platform_message_id {
        return match platform.find_sent(&token, pid).await {
            Ok(Some(sent)) => record(svc, a, Ok(sent), false, last_attempt).await,
            Ok(None) => mark_unknown(svc, m, &format!("the platform has no message {pid}")).await,
            Err(e) if last_attempt || !e.is_retryable() => {
                mark_unknown(svc, m, &format!("could not look up message {pid}: {e}")).await
            }
            Err(e) => Err(JobError::Retryable(format!("reconcile: {e}"))),
        };
    }
    let started = m.sent_at.unwrap_or(0);
    if now - started >= IDEMPOTENCY_WINDOW_MS - WINDOW_MARGIN_MS {
        return mark_unknown(
            svc,
            m,
            "the send started but its outcome was not recorded, and the platform's idempotency window has passed: check the conversation by hand",
        )
        .await;
    }
    // A re-post with the same key returns the original if the first attempt landed. If it did
    // not land, this re-post is the send — so do-not-contact is checked again first.
    let mut conn = svc.db.pool().acquire().await?;
    if dnc::is_blocked_on(&mut conn, &m.platform, &m.handle, Some(&m.external_id)).await? {
        return mark_unknown(svc, m, "in doubt whether the first attempt landed, and the person is now on do-not-contact: not re-posted").await;
    }
    drop(conn);
    let result = platform
        .send_dm(&token, &m.handle, &m.body, &m.idempotency_key)
        .await;
    record(svc, a, result, false, last_attempt).await
}

async fn mark_unknown(svc: &Services, m: &Outgoing, reason: &str) -> Result<Outcome, JobError> {
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    messages::transition_on(
        &mut tx,
        m.id,
        MessageStatus::Sending,
        MessageStatus::Unknown,
        Some(reason),
    )
    .await?;
    messages::settle_batch_on(&mut tx, m.batch_id).await?;
    tx.commit().await.map_err(JobError::from)?;
    warn!(message = %m.id, reason, "message outcome unknown");
    Ok(Outcome::Unknown {
        reason: reason.to_string(),
    })
}

/// Ends a message that was not sent (`failed` or `cancelled`) with its reason.
async fn finish_unsent(
    svc: &Services,
    m: &Outgoing,
    status: MessageStatus,
    reason: &str,
) -> Result<(), JobError> {
    let now = svc.clock.now_ms();
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    sqlx::query("UPDATE messages SET status = $1, error = $2 WHERE id = $3 AND status IN ('queued', 'approved', 'sending')")
        .bind(status.as_str())
        .bind(reason)
        .bind(m.id.0)
        .execute(&mut *tx)
        .await?;
    messages::set_lead_status_on(
        &mut tx,
        m.lead_id,
        "failed",
        &["new", "approved", "queued"],
        now,
    )
    .await?;
    messages::settle_batch_on(&mut tx, m.batch_id).await?;
    tx.commit().await.map_err(JobError::from)?;
    Ok(())
}

async fn cancel_in(
    tx: &mut sqlx::AnyConnection,
    m: &Outgoing,
    reason: &str,
    now: Millis,
) -> Result<(), DbError> {
    sqlx::query("UPDATE messages SET status = 'cancelled', error = $1 WHERE id = $2 AND status IN ('queued', 'approved')")
        .bind(reason)
        .bind(m.id.0)
        .execute(&mut *tx)
        .await?;
    messages::set_lead_status_on(
        tx,
        m.lead_id,
        "rejected",
        &["new", "approved", "queued"],
        now,
    )
    .await?;
    messages::settle_batch_on(tx, m.batch_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_800_000_000_000; // 2027-01-15 08:00:00 UTC

    fn limits() -> Limits {
        Limits {
            daily_cap: 100,
            hourly_cap: 5,
            min_gap_ms: 0,
            jitter_ms: 0,
            quiet_hours: None,
            timezone: Tz::UTC,
            warmup_days: 0,
            created_at: T0,
            paused_until: None,
        }
    }

    #[test]
    fn quiet_hours_parse_wrap_and_end() {
        let q: QuietHours = "22:00-08:00".parse().unwrap();
        assert!(q.contains(23 * 60) && q.contains(0) && q.contains(7 * 60 + 59));
        assert!(!q.contains(8 * 60) && !q.contains(12 * 60));
        assert_eq!(q.to_string(), "22:00-08:00");
        assert!("22:00-22:00".parse::<QuietHours>().is_err());
        assert!("25:00-08:00".parse::<QuietHours>().is_err());
        // 2027-01-15 23:30 in Berlin (UTC+1) is 22:30 UTC; quiet ends at 08:00 Berlin = 07:00 UTC.
        let t = Utc
            .with_ymd_and_hms(2027, 1, 15, 22, 30, 0)
            .unwrap()
            .timestamp_millis();
        let end = q.end_after(t, chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(
            end,
            Utc.with_ymd_and_hms(2027, 1, 16, 7, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn hourly_cap_waits_for_the_oldest_send_to_leave_the_window() {
        let l = limits();
        let sends: Vec<Millis> = (0..5).map(|i| T0 + i * 60_000).collect();
        let (t, why) = next_allowed(&l, 1, &sends, T0 + 10 * 60_000);
        assert_eq!(t, T0 + HOUR_MS);
        assert_eq!(why, Some(Blocker::HourlyCap));
        assert_eq!(
            next_allowed(&l, 1, &sends, T0 + HOUR_MS),
            (T0 + HOUR_MS, None)
        );
    }

    #[test]
    fn gap_jitter_is_bounded_and_stable() {
        let l = Limits {
            min_gap_ms: 60_000,
            jitter_ms: 30_000,
            ..limits()
        };
        let (t1, _) = next_allowed(&l, 7, &[T0], T0);
        let (t2, _) = next_allowed(&l, 7, &[T0], T0 + 1);
        assert_eq!(t1, t2);
        assert!((T0 + 60_000..=T0 + 90_000).contains(&t1), "{t1}");
    }

    #[test]
    fn warmup_ramps_the_daily_cap() {
        let l = Limits {
            daily_cap: 50,
            warmup_days: 10,
            ..limits()
        };
        assert_eq!(l.daily_cap_at(T0), 5);
        assert_eq!(l.daily_cap_at(T0 + 4 * DAY_MS), 25);
        assert_eq!(l.daily_cap_at(T0 + 20 * DAY_MS), 50);
        let sends: Vec<Millis> = (0..5).map(|i| T0 + i).collect();
        // Day one is full: the next send waits for day two's higher cap.
        assert_eq!(next_allowed(&l, 1, &sends, T0 + HOUR_MS * 2).0, T0 + DAY_MS);
    }

    #[test]
    fn paused_and_quiet_combine() {
        let q: QuietHours = "09:00-10:00".parse().unwrap();
        let l = Limits {
            paused_until: Some(T0 + 30 * 60_000),
            quiet_hours: Some(q),
            ..limits()
        };
        // Paused until 08:30, then quiet 09:00-10:00 does not apply at 08:30.
        assert_eq!(
            next_allowed(&l, 1, &[], T0),
            (T0 + 30 * 60_000, Some(Blocker::Paused))
        );
        let l = Limits {
            paused_until: Some(T0 + 90 * 60_000),
            ..l
        };
        assert_eq!(next_allowed(&l, 1, &[], T0).0, T0 + 2 * HOUR_MS);
    }

    #[test]
    fn pauses_grow_and_cap() {
        assert_eq!(pause_len(0), 15 * MINUTE_MS);
        assert_eq!(pause_len(1), 30 * MINUTE_MS);
        assert_eq!(pause_len(30), DAY_MS);
    }

    proptest::proptest! {
        /// Sending at every time `next_allowed` permits never puts more than the cap in any
        /// rolling hour or day, and never breaks the gap.
        #[test]
        fn greedy_sending_respects_every_window(hourly in 1i64..8, daily in 1i64..30, gap_s in 0i64..900, jitter_s in 0i64..300, steps in proptest::collection::vec(0i64..1_800_000, 1..60)) {
            let l = Limits { hourly_cap: hourly, daily_cap: daily, min_gap_ms: gap_s * 1000, jitter_ms: jitter_s * 1000, ..limits() };
            let mut now = T0;
            let mut sends: Vec<Millis> = Vec::new();
            for step in steps {
                let (t, _) = next_allowed(&l, 3, &sends, now);
                if t == now {
                    if let Some(&last) = sends.last() { proptest::prop_assert!(now - last >= l.min_gap_ms); }
                    sends.push(now);
                }
                now += step;
            }
            for &s in &sends {
                let in_hour = sends.iter().filter(|&&x| x <= s && s - x < HOUR_MS).count() as i64;
                let in_day = sends.iter().filter(|&&x| x <= s && s - x < DAY_MS).count() as i64;
                proptest::prop_assert!(in_hour <= hourly && in_day <= daily);
            }
        }
    }
}
