//! The outreach part of the engine service: sender accounts, approval batches (create, show with
//! the planned schedule, approve, cancel), do-not-contact, erasure of a person, and learning.

use std::collections::{BTreeSet, HashMap};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use sqlx::Row;

use crate::db::accounts::{self, AccountId, AccountRow};
use crate::db::campaigns::{Campaign, CampaignId};
use crate::db::dnc::{self, DncEntry};
use crate::db::messages::{self, BatchId, BatchRow, BatchStatus, MessageRow, MessageStatus};
use crate::db::DbError;
use crate::engine::clock::Millis;
use crate::engine::pipeline::dispatch::{self, next_allowed, Blocker, Limits};
use crate::engine::pipeline::feedback::{self, SweepReport};
use crate::engine::pipeline::learn::{self, LearnError, LearnReport};
use crate::engine::platforms::models::html_to_text;
use crate::engine::queue::{JobId, NewJob};
use crate::engine::service::{Engine, EngineError};
use crate::text::strip_control;

const HOUR_MS: Millis = 3_600_000;
const DAY_MS: Millis = 86_400_000;
/// Mastodon's status length; the adapter prepends `@handle ` to the body.
const MAX_STATUS_CHARS: usize = 500;

/// Errors of the outreach commands.
#[derive(Debug, thiserror::Error)]
pub enum OutreachError {
    /// An engine failure (database, …).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No such thing.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Bad input, with what to do about it.
    #[error("{0}")]
    Invalid(String),
    /// The campaign's template could not be rendered for some leads; nothing was written.
    #[error("campaign {campaign}: the message template cannot be rendered; nothing was written:\n  {}", .errors.join("\n  "))]
    Template {
        /// The campaign.
        campaign: CampaignId,
        /// One line per failing lead (or one for a template that does not parse).
        errors: Vec<String>,
    },
}

impl From<DbError> for OutreachError {
    fn from(e: DbError) -> Self {
        OutreachError::Engine(e.into())
    }
}

impl From<sqlx::Error> for OutreachError {
    fn from(e: sqlx::Error) -> Self {
        OutreachError::Engine(e.into())
    }
}

impl From<LearnError> for OutreachError {
    fn from(e: LearnError) -> Self {
        match e {
            LearnError::NotFound(id) => OutreachError::NotFound(format!("campaign {id}")),
            LearnError::Db(d) => d.into(),
        }
    }
}

/// A sender account and how its limits stand now.
#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    #[serde(flatten)]
    pub account: AccountRow,
    /// Sends started in the last hour.
    pub sent_last_hour: i64,
    /// Sends started in the last 24 hours.
    pub sent_last_day: i64,
    /// The daily cap in force now (warm-up included).
    pub daily_cap_now: i64,
    /// The earliest time the account may send (now when free).
    pub next_allowed_at: Option<Millis>,
    /// What holds it back now.
    pub blocked_by: Option<Blocker>,
    /// Whether the circuit breaker is open.
    pub paused: bool,
    /// Whether the token's environment variable is set.
    pub token_present: bool,
    /// Why the account's limits cannot be read (it then sends nothing).
    pub problem: Option<String>,
}

/// Options of `batch create`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// At most this many messages (default 50).
    pub limit: Option<i64>,
    /// Only leads with at least this score.
    pub min_score: Option<i64>,
}

/// A message of a batch with its planned schedule.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMessage {
    #[serde(flatten)]
    pub message: MessageRow,
    /// The account that sent it, is sending it, or would send it next.
    pub account: Option<String>,
    /// When it was sent, or the earliest time it could be, given every limit.
    pub planned_at: Option<Millis>,
}

/// A batch with its messages.
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    #[serde(flatten)]
    pub batch: BatchRow,
    pub campaign_name: String,
    pub messages: Vec<PlannedMessage>,
    /// Message counts by status.
    pub counts: HashMap<MessageStatus, i64>,
}

/// What approving a batch did.
#[derive(Debug, Clone, Serialize)]
pub struct Approved {
    pub batch: BatchView,
    /// The root of the batch's job tree (wait on it with [`Engine::wait_for`]).
    pub root_job: JobId,
}

/// What a do-not-contact import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub already_listed: usize,
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErasureReport {
    pub profiles: u64,
    pub leads: u64,
    pub messages: u64,
    pub llm_scores: u64,
    pub feedback_events: u64,
    pub jobs: u64,
    pub images_deleted: usize,
    /// Platforms on whose do-not-contact list the person is now kept as a hash.
    pub protected_on: Vec<String>,
}

fn new_idempotency_key() -> String {
    format!("omni-{}", hex::encode(rand::random::<[u8; 16]>()))
}

impl Engine {
    fn now(&self) -> Millis {
        self.services().clock.now_ms()
    }

    /// Brings the `accounts` table in line with `[[accounts]]` (done on demand by every outreach
    /// command and by the workers; call it at start to show accounts before any send).
    pub async fn sync_accounts(&self) -> Result<Vec<AccountRow>, OutreachError> {
        Ok(accounts::sync(self.db(), &self.services().config.accounts, self.now()).await?)
    }

    /// Every sender account with its recent sends, next allowed time and pause state.
    pub async fn accounts(&self) -> Result<Vec<AccountStatus>, OutreachError> {
        let rows = self.sync_accounts().await?;
        let now = self.now();
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(EngineError::from)?;
        let mut out = Vec::new();
        for a in rows {
            let sends = accounts::sends_since_on(&mut conn, a.id, now - DAY_MS).await?;
            let sent_last_hour = sends.iter().filter(|s| now - **s < HOUR_MS).count() as i64;
            let token_present = std::env::var(&a.token_env).is_ok_and(|v| !v.trim().is_empty());
            let (daily_cap_now, next, blocked_by, problem) = match Limits::of(&a) {
                Ok(l) => {
                    let (t, why) = next_allowed(&l, a.id.0, &sends, now);
                    (l.daily_cap_at(now), Some(t), why, None)
                }
                Err(e) => (0, None, None, Some(e)),
            };
            let problem = problem.or_else(|| {
                (!token_present).then(|| format!("environment variable {} is not set", a.token_env))
            });
            out.push(AccountStatus {
                paused: a.paused_until.is_some_and(|p| p > now),
                sent_last_hour,
                sent_last_day: sends.len() as i64,
                daily_cap_now,
                next_allowed_at: next,
                blocked_by,
                token_present,
                problem,
                account: a,
            });
        }
        Ok(out)
    }

    async fn senders_for(&self, c: &Campaign) -> Result<Vec<AccountRow>, OutreachError> {
        let handles = c
            .spec
            .outreach
            .as_ref()
            .map(|o| o.accounts.clone())
            .unwrap_or_default();
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(EngineError::from)?;
        Ok(accounts::senders_on(&mut conn, None, &c.platform, &handles).await?)
    }

    /// Renders a draft batch for a campaign's leads (approved ones first, then new ones, by score),
    /// skipping people already messaged or on do-not-contact. A template that references a field
    /// a lead lacks fails the whole batch, naming the leads; nothing is written then.
    pub async fn create_batch(
        &self,
        id: CampaignId,
        opts: BatchOptions,
    ) -> Result<BatchView, OutreachError> {
        let c = self.campaign(id).await?;
        let Some(outreach) = c.spec.outreach.clone() else {
            return Err(OutreachError::Conflict(format!(
                "campaign {id} has no [outreach] section: add one with a `template` to message its leads"
            )));
        };
        self.sync_accounts().await?;
        let senders = self.senders_for(&c).await?;
        if senders.is_empty() {
            let which = if outreach.accounts.is_empty() {
                "any account".into()
            } else {
                outreach.accounts.join(", ")
            };
            return Err(OutreachError::Conflict(format!(
                "campaign {id} has no sender account on platform `{}` ({which}): add it under [[accounts]] in omni.toml",
                c.platform
            )));
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned("message", outreach.template.clone())
            .map_err(|e| OutreachError::Template {
                campaign: id,
                errors: vec![format!("the template does not parse: {e:#}")],
            })?;
        let tmpl = env
            .get_template("message")
            .map_err(|e| OutreachError::Template {
                campaign: id,
                errors: vec![e.to_string()],
            })?;

        let limit = opts.limit.unwrap_or(50).max(0);
        let rows = sqlx::query(
            "SELECT l.id AS lead_id, l.score, l.status, p.platform, p.handle, p.external_id, p.payload, pf.followers, pf.following, \
             pf.posts_count, pf.language, pf.engagement_rate, pf.posts_per_week, s.opener \
             FROM leads l JOIN profiles_raw p ON p.id = l.profile_id LEFT JOIN profile_features pf ON pf.profile_id = p.id \
             LEFT JOIN llm_scores s ON s.id = l.llm_score_id \
             WHERE l.campaign_id = $1 AND l.status IN ('approved', 'new') AND l.score >= $2 \
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.lead_id = l.id AND m.status NOT IN ('cancelled', 'failed')) \
             AND NOT EXISTS (SELECT 1 FROM do_not_contact d WHERE d.platform = p.platform AND (d.handle = LOWER(p.handle) OR d.external_id = p.external_id)) \
             ORDER BY CASE WHEN l.status = 'approved' THEN 0 ELSE 1 END, l.score DESC, l.id",
        )
        .bind(id.0)
        .bind(opts.min_score.unwrap_or(i64::MIN))
        .fetch_all(self.db().pool())
        .await?;

        let mut rendered: Vec<(i64, String)> = Vec::new();
        let mut errors = Vec::new();
        for r in rows {
            if rendered.len() as i64 >= limit {
                break;
            }
            let lead: i64 = r.try_get("lead_id")?;
            let platform: String = r.try_get("platform")?;
            let handle: String = r.try_get("handle")?;
            let external_id: String = r.try_get("external_id")?;
            // The erased-person hash cannot be computed in SQL.
            if dnc::is_blocked(self.db(), &platform, &handle, Some(&external_id)).await? {
                continue;
            }
            let payload: String = r.try_get("payload")?;
            let snap: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
            let mut fields: HashMap<&str, Value> = HashMap::new();
            let mut text = |k: &'static str, v: Option<String>| {
                if let Some(v) = v.map(|v| strip_control(v.trim())).filter(|v| !v.is_empty()) {
                    fields.insert(k, Value::from(v));
                }
            };
            text("handle", Some(handle.clone()));
            text(
                "display_name",
                snap["account"]["display_name"].as_str().map(str::to_string),
            );
            text("bio", snap["account"]["note"].as_str().map(html_to_text));
            text("url", snap["account"]["url"].as_str().map(str::to_string));
            text("language", r.try_get("language")?);
            text("opener", r.try_get("opener")?);
            text("campaign_name", Some(c.name.clone()));
            if let Some(v) = r.try_get::<Option<i64>, _>("followers")? {
                fields.insert("followers", Value::from(v));
            }
            if let Some(v) = r.try_get::<Option<i64>, _>("following")? {
                fields.insert("following", Value::from(v));
            }
            if let Some(v) = r.try_get::<Option<i64>, _>("posts_count")? {
                fields.insert("posts_count", Value::from(v));
            }
            if let Some(v) = r.try_get::<Option<f64>, _>("engagement_rate")? {
                fields.insert("engagement_rate", Value::from(v));
            }
            if let Some(v) = r.try_get::<Option<f64>, _>("posts_per_week")? {
                fields.insert("posts_per_week", Value::from(v));
            }
            fields.insert("score", Value::from(r.try_get::<i64, _>("score")?));
            fields.insert(
                "campaign",
                Value::from_pairs([
                    ("name", Value::from(c.name.clone())),
                    ("id", Value::from(c.id.0)),
                ]),
            );
            match tmpl.render(Value::from_pairs(fields)) {
                Ok(body) => {
                    let body = body.trim().to_string();
                    let room = MAX_STATUS_CHARS.saturating_sub(handle.chars().count() + 2);
                    if body.is_empty() {
                        errors.push(format!(
                            "lead {lead} (@{handle}): the message renders empty"
                        ));
                    } else if body.chars().count() > room {
                        errors.push(format!(
                            "lead {lead} (@{handle}): the message is {} characters; at most {room} fit in one message with the mention",
                            body.chars().count()
                        ));
                    } else {
                        rendered.push((lead, body));
                    }
                }
                Err(e) => {
                    errors.push(format!("lead {lead} (@{handle}): {e}"));
                    // One pass over enough leads to show the pattern is enough.
                    if errors.len() >= 10 {
                        break;
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(OutreachError::Template {
                campaign: id,
                errors,
            });
        }
        if rendered.is_empty() {
            return Err(OutreachError::Conflict(format!(
                "campaign {id} has no new or approved leads to message{} (leads already messaged or on do-not-contact are skipped)",
                opts.min_score.map(|s| format!(" with score ≥ {s}")).unwrap_or_default()
            )));
        }
        let now = self.now();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        let batch = messages::insert_batch_on(&mut tx, id, now).await?;
        for (lead, body) in &rendered {
            messages::insert_message_on(&mut tx, batch, *lead, body, &new_idempotency_key())
                .await?;
        }
        tx.commit().await.map_err(EngineError::from)?;
        self.batch(batch).await
    }

    /// Batches, newest first (of one campaign, or all).
    pub async fn batches(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<BatchRow>, OutreachError> {
        Ok(messages::batches(self.db(), campaign).await?)
    }

    /// A batch with its messages and the planned send schedule: for each message not yet sent, the
    /// account and earliest time it could go out given every limit of every account (the accounts'
    /// real recent sends plus the batch's earlier messages, in order).
    pub async fn batch(&self, id: BatchId) -> Result<BatchView, OutreachError> {
        let batch = messages::batch(self.db(), id)
            .await?
            .ok_or_else(|| OutreachError::NotFound(format!("batch {id}")))?;
        let c = self.campaign(batch.campaign_id).await?;
        let rows = messages::batch_messages(self.db(), id).await?;
        let senders = self.senders_for(&c).await?;
        let by_id: HashMap<AccountId, String> = accounts::list(self.db())
            .await?
            .into_iter()
            .map(|a| (a.id, a.handle))
            .collect();
        let now = self.now();
        // Simulated state per account: its limits and its send times (real, then planned).
        let mut conn = self
            .db()
            .pool()
            .acquire()
            .await
            .map_err(EngineError::from)?;
        let mut sim: Vec<(AccountRow, Limits, Vec<Millis>)> = Vec::new();
        for a in senders {
            if let Ok(l) = Limits::of(&a) {
                let sends = accounts::sends_since_on(&mut conn, a.id, now - DAY_MS).await?;
                sim.push((a, l, sends));
            }
        }
        drop(conn);
        let mut counts: HashMap<MessageStatus, i64> = HashMap::new();
        let mut planned = Vec::with_capacity(rows.len());
        for m in rows {
            *counts.entry(m.status).or_default() += 1;
            let assigned = m.account_id.and_then(|a| by_id.get(&a).cloned());
            let (account, at) = match m.status {
                MessageStatus::Draft | MessageStatus::Approved | MessageStatus::Queued => {
                    let mut best: Option<(usize, Millis)> = None;
                    for (i, (a, l, sends)) in sim.iter().enumerate() {
                        let from = sends.last().map_or(now, |last| now.max(*last));
                        let (t, _) = next_allowed(l, a.id.0, sends, from);
                        if best.is_none_or(|(_, bt)| t < bt) {
                            best = Some((i, t));
                        }
                    }
                    match best {
                        Some((i, t)) => {
                            sim[i].2.push(t);
                            (Some(sim[i].0.handle.clone()), Some(t))
                        }
                        None => (None, None),
                    }
                }
                _ => (assigned, m.sent_at),
            };
            planned.push(PlannedMessage {
                message: m,
                account,
                planned_at: at,
            });
        }
        Ok(BatchView {
            batch,
            campaign_name: c.name,
            messages: planned,
            counts,
        })
    }

    /// Approves a draft batch: its messages become `queued` and one `dispatch.dm` per message is
    /// enqueued in the same transaction, each runnable from its planned time.
    pub async fn approve_batch(&self, id: BatchId) -> Result<Approved, OutreachError> {
        self.sync_accounts().await?;
        let view = self.batch(id).await?;
        if view.batch.status != BatchStatus::Draft {
            return Err(OutreachError::Conflict(format!(
                "batch {id} is {}: only a draft batch can be approved",
                view.batch.status
            )));
        }
        let campaign = view.batch.campaign_id;
        let now = self.now();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        let r = sqlx::query("UPDATE dm_batches SET status = 'approved', approved_at = $1 WHERE id = $2 AND status = 'draft'")
            .bind(now)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(OutreachError::Conflict(format!(
                "batch {id} was approved or cancelled meanwhile"
            )));
        }
        let root = self
            .queue()
            .enqueue_in(
                &mut tx,
                &NewJob::new("system.noop", serde_json::json!({ "batch_id": id.0 }))
                    .campaign(campaign.0),
            )
            .await?;
        for p in &view.messages {
            if p.message.status != MessageStatus::Draft {
                continue;
            }
            let at = p.planned_at.unwrap_or(now).max(now);
            sqlx::query("UPDATE messages SET status = 'queued', not_before = $1 WHERE id = $2 AND status = 'draft'")
                .bind(at)
                .bind(p.message.id.0)
                .execute(&mut *tx)
                .await?;
            messages::set_lead_status_on(
                &mut tx,
                p.message.lead_id,
                "queued",
                &["new", "approved"],
                now,
            )
            .await?;
            self.queue()
                .enqueue_in(
                    &mut tx,
                    &dispatch::job_for(p.message.id, campaign, at).root(root.id),
                )
                .await?;
        }
        tx.commit().await.map_err(EngineError::from)?;
        self.queue().wake().notify_waiters();
        Ok(Approved {
            batch: self.batch(id).await?,
            root_job: root.id,
        })
    }

    /// Cancels what has not been sent: draft and queued messages become `cancelled` (their leads
    /// go back to `approved`) and their jobs are cancelled. A message already `sending` finishes.
    pub async fn cancel_batch(&self, id: BatchId) -> Result<BatchView, OutreachError> {
        let batch = messages::batch(self.db(), id)
            .await?
            .ok_or_else(|| OutreachError::NotFound(format!("batch {id}")))?;
        if matches!(batch.status, BatchStatus::Done | BatchStatus::Cancelled) {
            return Err(OutreachError::Conflict(format!(
                "batch {id} is already {}",
                batch.status
            )));
        }
        let now = self.now();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        let cancelled: Vec<(i64, i64)> = sqlx::query(
            "SELECT id, lead_id FROM messages WHERE batch_id = $1 AND status IN ('draft', 'approved', 'queued')",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("lead_id")?)))
        .collect::<Result<_, sqlx::Error>>()?;
        for (mid, lead) in &cancelled {
            sqlx::query("UPDATE messages SET status = 'cancelled', error = 'cancelled by the operator' WHERE id = $1 AND status IN ('draft', 'approved', 'queued')")
                .bind(mid)
                .execute(&mut *tx)
                .await?;
            messages::set_lead_status_on(&mut tx, *lead, "approved", &["queued"], now).await?;
        }
        sqlx::query("UPDATE dm_batches SET status = 'cancelled' WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(EngineError::from)?;
        for (mid, _) in cancelled {
            let job: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE unique_key = $1")
                .bind(format!("{}:{mid}", dispatch::KIND))
                .fetch_optional(self.db().pool())
                .await?;
            if let Some(j) = job {
                // A job already finished or running stays as it is; its claim sees `cancelled`.
                let _ = self.queue().cancel(JobId(j)).await;
            }
        }
        self.batch(id).await
    }

    /// Adds a person to do-not-contact on `platform`; true when they were not listed yet.
    pub async fn dnc_add(
        &self,
        platform: &str,
        handle: &str,
        reason: Option<&str>,
    ) -> Result<bool, OutreachError> {
        let h = dnc::normalize(handle);
        if h.is_empty() {
            return Err(OutreachError::Invalid(
                "give a handle such as `alice` or `alice@example.social`".into(),
            ));
        }
        let mut conn = self
            .db()
            .writer()
            .acquire()
            .await
            .map_err(EngineError::from)?;
        Ok(dnc::add_on(&mut conn, platform, &h, None, reason, self.now()).await?)
    }

    /// Removes a person from do-not-contact; false when they were not listed.
    pub async fn dnc_remove(&self, platform: &str, handle: &str) -> Result<bool, OutreachError> {
        Ok(dnc::remove(self.db(), platform, handle).await?)
    }

    /// The do-not-contact list, newest first.
    pub async fn dnc_list(&self) -> Result<Vec<DncEntry>, OutreachError> {
        Ok(dnc::list(self.db()).await?)
    }

    /// Imports handles, one per line (`#` starts a comment), onto do-not-contact on `platform`.
    pub async fn dnc_import(
        &self,
        platform: &str,
        text: &str,
        reason: Option<&str>,
    ) -> Result<ImportReport, OutreachError> {
        let now = self.now();
        let mut report = ImportReport::default();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        for line in text.lines() {
            let h = dnc::normalize(line.split('#').next().unwrap_or(""));
            if h.is_empty() {
                continue;
            }
            if dnc::add_on(&mut tx, platform, &h, None, reason, now).await? {
                report.added += 1;
            } else {
                report.already_listed += 1;
            }
        }
        tx.commit().await.map_err(EngineError::from)?;
        Ok(report)
    }

    /// Erases a person (a GDPR erasure request): their profiles and everything derived from them
    /// (features, candidacies, verdicts, leads, messages, feedback), jobs that mention them, and the
    /// images only they use. They stay protected by a `sha256:` hash on do-not-contact, so no row
    /// keeps their handle. `platform` limits the erasure to one platform.
    pub async fn erase(
        &self,
        handle: &str,
        platform: Option<&str>,
    ) -> Result<ErasureReport, OutreachError> {
        let h = dnc::normalize(handle);
        if h.is_empty() {
            return Err(OutreachError::Invalid(
                "give the handle of the person to erase".into(),
            ));
        }
        let pool = self.db().pool();
        let profiles: Vec<(i64, String)> = sqlx::query("SELECT id, platform FROM profiles_raw WHERE LOWER(handle) = $1 AND ($2 = '' OR platform = $2)")
            .bind(&h)
            .bind(platform.unwrap_or(""))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("platform")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let ids: Vec<i64> = profiles.iter().map(|p| p.0).collect();
        let mut platforms: BTreeSet<String> = profiles.iter().map(|p| p.1.clone()).collect();
        let listed: Vec<String> =
            sqlx::query_scalar("SELECT platform FROM do_not_contact WHERE handle = $1")
                .bind(&h)
                .fetch_all(pool)
                .await?;
        platforms.extend(listed);
        match platform {
            Some(p) => {
                platforms.retain(|x| x == p);
                platforms.insert(p.to_string());
            }
            None if platforms.is_empty() => {
                let cfg = &self.services().config;
                platforms.extend(cfg.platforms.iter().map(|p| p.name.clone()));
                platforms.extend(cfg.accounts.iter().map(|a| a.platform.clone()));
            }
            None => {}
        }
        let mut image_keys: BTreeSet<String> = BTreeSet::new();
        for id in &ids {
            let keys: Option<String> =
                sqlx::query_scalar("SELECT image_keys FROM profile_features WHERE profile_id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            image_keys.extend(
                keys.and_then(|k| serde_json::from_str::<Vec<String>>(&k).ok())
                    .unwrap_or_default(),
            );
        }
        // Jobs that mention the handle as a word (scrapes, crawls), found by LIKE and confirmed here.
        let pattern = crate::engine::criteria::compile::like_pattern(&h);
        let job_rows = sqlx::query(
            "SELECT id, payload, COALESCE(result, '') AS result, COALESCE(error, '') AS error, COALESCE(unique_key, '') AS unique_key, \
             COALESCE(progress_message, '') AS progress_message FROM jobs WHERE LOWER(payload) LIKE $1 ESCAPE '\\' \
             OR LOWER(COALESCE(result, '')) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(error, '')) LIKE $1 ESCAPE '\\' \
             OR LOWER(COALESCE(unique_key, '')) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(progress_message, '')) LIKE $1 ESCAPE '\\'",
        )
        .bind(&pattern)
        .fetch_all(pool)
        .await?;
        let mut job_ids = Vec::new();
        for r in &job_rows {
            let texts: [String; 5] = [
                r.try_get("payload")?,
                r.try_get("result")?,
                r.try_get("error")?,
                r.try_get("unique_key")?,
                r.try_get("progress_message")?,
            ];
            if texts.iter().any(|t| mentions(t, &h)) {
                job_ids.push(r.try_get::<i64, _>("id")?);
            }
        }

        let now = self.now();
        let mut report = ErasureReport::default();
        let mut tx = self.db().begin_write().await.map_err(EngineError::from)?;
        for id in &ids {
            let leads: Vec<i64> = sqlx::query_scalar("SELECT id FROM leads WHERE profile_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            for lead in &leads {
                let msgs: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM messages WHERE lead_id = $1")
                        .bind(lead)
                        .fetch_all(&mut *tx)
                        .await?;
                for m in &msgs {
                    report.feedback_events +=
                        sqlx::query("DELETE FROM feedback_events WHERE message_id = $1")
                            .bind(m)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    report.jobs += sqlx::query(
                        "DELETE FROM jobs WHERE unique_key = $1 OR (kind = $2 AND payload = $3)",
                    )
                    .bind(format!("{}:{m}", dispatch::KIND))
                    .bind(dispatch::KIND)
                    .bind(serde_json::json!({ "message_id": m }).to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                report.feedback_events +=
                    sqlx::query("DELETE FROM feedback_events WHERE lead_id = $1")
                        .bind(lead)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                report.messages += sqlx::query("DELETE FROM messages WHERE lead_id = $1")
                    .bind(lead)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            report.leads += sqlx::query("DELETE FROM leads WHERE profile_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            report.llm_scores += sqlx::query("DELETE FROM llm_scores WHERE profile_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM campaign_candidates WHERE profile_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM profile_features WHERE profile_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            report.profiles += sqlx::query("DELETE FROM profiles_raw WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for j in &job_ids {
            report.jobs += sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(j)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("DELETE FROM do_not_contact WHERE handle = $1 AND ($2 = '' OR platform = $2)")
            .bind(&h)
            .bind(platform.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        for p in &platforms {
            dnc::add_on(
                &mut tx,
                p,
                &dnc::erased_key(p, &h),
                None,
                Some("erased on request; kept only as a hash"),
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(EngineError::from)?;
        report.protected_on = platforms.into_iter().collect();

        // Images: delete those no remaining profile uses (keys are content hashes, so shared).
        for key in image_keys {
            let still: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM profile_features WHERE image_keys LIKE $1",
            )
            .bind(format!("%{key}%"))
            .fetch_one(pool)
            .await?;
            if still == 0 {
                self.services().storage.delete(&key).await.map_err(|e| {
                    OutreachError::Conflict(format!(
                        "the database rows are erased but image {key} could not be deleted: {e}"
                    ))
                })?;
                report.images_deleted += 1;
            }
        }
        Ok(report)
    }

    /// Polls replies now (one account, or every enabled one); see `feedback.sweep`.
    pub async fn sweep_feedback(
        &self,
        account: Option<AccountId>,
    ) -> Result<SweepReport, OutreachError> {
        self.sync_accounts().await?;
        feedback::sweep(self.services(), account)
            .await
            .map_err(|e| OutreachError::Conflict(format!("reply polling failed: {e}")))
    }

    /// Fits a campaign's score weights now; see `weights.update`.
    pub async fn learn(&self, id: CampaignId) -> Result<LearnReport, OutreachError> {
        Ok(learn::update_weights(self.services(), id).await?)
    }
}

/// Whether `text` (any case) mentions `handle` as a whole word (not inside a longer name).
fn mentions(text: &str, handle: &str) -> bool {
    let text = text.to_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut from = 0;
    while let Some(pos) = text[from..].find(handle) {
        let start = from + pos;
        let end = start + handle.len();
        if !word(text[..start].chars().next_back()) && !word(text[end..].chars().next()) {
            return true;
        }
        from = start + handle.len().max(1);
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_needs_word_boundaries() {
        assert!(mentions(r#"{"handle":"Anna"}"#, "anna"));
        assert!(mentions("sandbox:anna@x.social", "anna@x.social"));
        assert!(!mentions("joanna", "anna"));
        assert!(!mentions("anna_b", "anna"));
    }
}
