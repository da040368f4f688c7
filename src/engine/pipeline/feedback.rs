//! `feedback.sweep`: polls each sender account's replies from its stored cursor, stores one
//! `feedback_events` row per platform event (a second sweep adds nothing), matches replies to our
//! messages (by the message they answer, else by the sender's handle), marks leads `replied` or
//! `opted_out`, and puts people who ask to stop on do-not-contact.

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::db::accounts::{self, AccountId, AccountRow};
use crate::db::dnc;
use crate::db::feedback::{self, FeedbackKind, NewEvent};
use crate::db::messages::{self, MessageId};
use crate::engine::platforms::{AccessToken, Reply, ReplyCursor};
use crate::engine::queue::{JobError, NewJob};
use crate::engine::service::{Ctx, Services};
use crate::engine::worker::{JobCtx, JobResult, Registry};
use sqlx::Row;

/// The job kind.
pub const KIND: &str = "feedback.sweep";

/// The payload of `feedback.sweep`: one account, or every enabled account when empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepPayload {
    /// Only this account.
    #[serde(default)]
    pub account_id: Option<i64>,
}

/// Registers `feedback.sweep`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register(KIND, |ctx: JobCtx<Ctx>| async move {
        let p: SweepPayload = if ctx.job.payload.is_null() {
            SweepPayload::default()
        } else {
            ctx.payload()?
        };
        let report = sweep(&ctx.ctx, p.account_id.map(AccountId)).await?;
        let result: JobResult = Ok(Some(serde_json::to_value(&report).unwrap_or_default()));
        result
    });
}

/// A sweep of every account, as a job.
pub fn job() -> NewJob {
    NewJob::new(KIND, serde_json::json!({}))
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    /// Accounts polled.
    pub accounts: usize,
    /// Replies the platform returned.
    pub replies: usize,
    /// Events stored for the first time.
    pub new_events: usize,
    /// Leads marked replied.
    pub replied: usize,
    /// People who opted out (and went onto do-not-contact).
    pub opted_out: usize,
    /// Replies that matched none of our messages.
    pub unmatched: usize,
    /// Accounts that could not be polled, with why.
    pub errors: Vec<String>,
}

/// Polls replies for one account or every enabled account. An account that cannot be polled is
/// reported and skipped; the sweep fails (to be retried) only when every account failed.
pub async fn sweep(svc: &Services, only: Option<AccountId>) -> Result<SweepReport, JobError> {
    let mut all = accounts::list(&svc.db).await?;
    if all.is_empty() && !svc.config.accounts.is_empty() {
        all = accounts::sync(&svc.db, &svc.config.accounts, svc.clock.now_ms()).await?;
    }
    let targets: Vec<AccountRow> = all
        .into_iter()
        .filter(|a| a.enabled && only.is_none_or(|id| a.id == id))
        .collect();
    let mut report = SweepReport::default();
    for a in &targets {
        match sweep_account(svc, a, &mut report).await {
            Ok(()) => report.accounts += 1,
            Err(e) => {
                warn!(account = %a.handle, error = %e, "reply polling failed");
                report.errors.push(format!("@{}: {e}", a.handle));
            }
        }
    }
    if !targets.is_empty() && report.accounts == 0 {
        return Err(JobError::Retryable(format!(
            "no account could be polled: {}",
            report.errors.join("; ")
        )));
    }
    Ok(report)
}

async fn sweep_account(
    svc: &Services,
    a: &AccountRow,
    report: &mut SweepReport,
) -> Result<(), JobError> {
    let platform = svc.platform(&a.platform)?;
    let token = AccessToken::from_env(&a.token_env).map_err(JobError::retry)?;
    let cursor = a.reply_cursor.clone().map(ReplyCursor);
    let page = platform
        .poll_replies(&token, cursor.as_ref())
        .await
        .map_err(JobError::retry)?;
    report.replies += page.replies.len();
    let now = svc.clock.now_ms();
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    for r in &page.replies {
        ingest_reply(&mut tx, a, r, now, report).await?;
    }
    if page.cursor != cursor {
        accounts::set_cursor_on(&mut tx, a.id, page.cursor.as_ref().map(ReplyCursor::as_str))
            .await?;
    }
    tx.commit().await.map_err(JobError::from)?;
    Ok(())
}

/// Stores one reply received by account `a` and acts on it, inside the caller's transaction.
pub async fn ingest_reply(
    tx: &mut sqlx::AnyConnection,
    a: &AccountRow,
    r: &Reply,
    now: i64,
    report: &mut SweepReport,
) -> Result<(), JobError> {
    let matched = match_reply(tx, a, r).await?;
    let kind = classify(&r.body_text);
    let event_id = format!("{}:{}:{}", a.platform, a.handle, r.platform_event_id);
    let new = feedback::insert_on(
        tx,
        &NewEvent {
            platform_event_id: &event_id,
            message_id: matched.as_ref().map(|m| m.message_id),
            lead_id: matched.as_ref().map(|m| m.lead_id),
            kind,
            body: &crate::text::strip_control(&r.body_text),
            occurred_at: r.created_at,
        },
        now,
    )
    .await?;
    if !new {
        return Ok(());
    }
    report.new_events += 1;
    if matched.is_none() {
        report.unmatched += 1;
    }
    match kind {
        FeedbackKind::OptedOut => {
            if let Some(m) = &matched {
                messages::set_lead_status_on(tx, m.lead_id, "opted_out", &[], now).await?;
            }
            let (handle, external_id) = match &matched {
                Some(m) => (m.handle.clone(), Some(m.external_id.clone())),
                None => (r.from_acct.clone(), None),
            };
            // Anyone who asks us to stop goes on the list, matched to a lead or not.
            dnc::add_on(
                tx,
                &a.platform,
                &dnc::normalize(&handle),
                external_id.as_deref(),
                Some("opted out by reply"),
                now,
            )
            .await?;
            report.opted_out += 1;
        }
        _ => {
            if let Some(m) = &matched {
                if messages::set_lead_status_on(
                    tx,
                    m.lead_id,
                    "replied",
                    &["new", "approved", "queued", "sent", "failed"],
                    now,
                )
                .await?
                {
                    report.replied += 1;
                }
            }
        }
    }
    Ok(())
}

struct Matched {
    message_id: MessageId,
    lead_id: i64,
    handle: String,
    external_id: String,
}

async fn match_reply(
    tx: &mut sqlx::AnyConnection,
    a: &AccountRow,
    r: &Reply,
) -> Result<Option<Matched>, JobError> {
    const SELECT: &str = "SELECT m.id, m.lead_id, p.handle, p.external_id FROM messages m JOIN leads l ON l.id = m.lead_id \
                          JOIN profiles_raw p ON p.id = l.profile_id";
    let row_to = |row: sqlx::any::AnyRow| -> Result<Matched, sqlx::Error> {
        Ok(Matched {
            message_id: MessageId(row.try_get("id")?),
            lead_id: row.try_get("lead_id")?,
            handle: row.try_get("handle")?,
            external_id: row.try_get("external_id")?,
        })
    };
    if let Some(parent) = r.in_reply_to_id.as_deref().filter(|s| !s.is_empty()) {
        let row = sqlx::query(&format!("{SELECT} WHERE m.platform_message_id = $1 AND m.account_id = $2 ORDER BY m.id DESC LIMIT 1"))
            .bind(parent)
            .bind(a.id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = row {
            return Ok(Some(row_to(row)?));
        }
    }
    let row = sqlx::query(&format!(
        "{SELECT} WHERE m.account_id = $1 AND p.platform = $2 AND LOWER(p.handle) = $3 \
         AND m.status IN ('sent', 'unknown', 'sending') ORDER BY m.sent_at DESC, m.id DESC LIMIT 1"
    ))
    .bind(a.id.0)
    .bind(&a.platform)
    .bind(accounts::normalize(&r.from_acct))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(row_to).transpose()?)
}

/// Phrases that ask us to stop, lower-case, in English, German, French, Spanish, Portuguese,
/// Italian and Japanese. Matched on word boundaries after punctuation is folded to spaces.
const OPT_OUT_PHRASES: &[&str] = &[
    // English
    "stop messaging",
    "stop contacting",
    "stop sending",
    "stop writing",
    "please stop",
    "unsubscribe",
    "not interested",
    "don't contact",
    "do not contact",
    "don't message",
    "do not message",
    "leave me alone",
    "remove me",
    "opt out",
    // German
    "kein interesse",
    "nicht mehr schreiben",
    "keine nachrichten",
    "nicht kontaktieren",
    "abmelden",
    "hör auf",
    "hören sie auf",
    // French
    "pas intéressé",
    "pas intéressée",
    "pas interesse",
    "ne plus me contacter",
    "ne me contactez plus",
    "arrête de m'écrire",
    "arrêtez de m'écrire",
    "désabonner",
    "desabonner",
    "laissez-moi tranquille",
    // Spanish
    "no me interesa",
    "no me escribas",
    "no me escriba",
    "no me contactes",
    "basta de mensajes",
    "darme de baja",
    "dejen de escribir",
    // Portuguese, Italian
    "não tenho interesse",
    "pare de me enviar",
    "non mi interessa",
    "non scrivermi",
];

/// Whole messages that mean "stop" on their own.
const OPT_OUT_WORDS: &[&str] = &[
    "stop",
    "stopp",
    "unsubscribe",
    "basta",
    "arrête",
    "arrêtez",
    "alto",
];

/// Whether a reply asks not to be contacted again, else a plain reply.
pub fn classify(body: &str) -> FeedbackKind {
    let text = normalize_text(body);
    if text.contains("興味ありません") || text.contains("連絡しないで") {
        return FeedbackKind::OptedOut;
    }
    let padded = format!(" {text} ");
    if OPT_OUT_PHRASES
        .iter()
        .any(|p| padded.contains(&format!(" {p} ")))
        || OPT_OUT_WORDS.contains(&text.as_str())
    {
        FeedbackKind::OptedOut
    } else {
        FeedbackKind::Replied
    }
}

/// Lower-case words separated by single spaces: mentions dropped, punctuation (except apostrophes
/// and hyphens inside words) folded to spaces, typographic apostrophes made plain.
fn normalize_text(body: &str) -> String {
    let lower = body.to_lowercase().replace(['’', '‘'], "'");
    let words = lower
        .split_whitespace()
        .filter(|w| !w.starts_with('@'))
        .flat_map(|w| {
            w.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
                .map(|p| p.trim_matches(|c| c == '\'' || c == '-').to_string())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_outs_are_recognized_in_several_languages() {
        for s in [
            "@omni Please stop messaging me.",
            "@omni Not interested, thanks.",
            "Unsubscribe.",
            "Please don’t contact me again.",
            "stop",
            "STOP!",
            "Bitte nicht mehr schreiben.",
            "Kein Interesse, danke.",
            "Bitte keine Nachrichten mehr.",
            "Arrête de m'écrire, merci.",
            "Pas intéressé.",
            "Merci de ne plus me contacter.",
            "No me interesa, gracias.",
            "Por favor, no me escribas más.",
            "Basta de mensajes.",
            "Não tenho interesse, obrigado.",
            "Non mi interessa, grazie.",
            "もう連絡しないでください。",
        ] {
            assert_eq!(classify(s), FeedbackKind::OptedOut, "{s}");
        }
    }

    #[test]
    fn ordinary_replies_are_not_opt_outs() {
        for s in [
            "@omni Hi! Thanks for reaching out, this sounds interesting. Tell me more?",
            "I can't stop smiling, happy to chat!",
            "Hallo! Danke für die Nachricht, klingt spannend. Erzähl mehr!",
            "Bonjour ! Merci pour le message, ça m'intéresse. Dites-m'en plus ?",
            "¡Hola! Gracias por escribir, suena interesante. ¿Me cuentas más?",
            "Sounds fun. Can you send details by email?",
        ] {
            assert_eq!(classify(s), FeedbackKind::Replied, "{s}");
        }
    }
}
