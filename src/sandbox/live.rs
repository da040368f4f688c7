//! What happens in the sandbox after it starts: its clock, profiles changing day by day, direct
//! statuses received from senders and the replies the simulated creators send back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::rng::{hash_bytes, hash_ints, stream, unit};
use super::vocab;
use super::world::{dynamic_id, id_ceiling, AccountIdx, PostMeta, World, DAY_MS};

/// Sandbox time: the start instant plus real elapsed time plus an offset the admin route advances.
#[derive(Debug)]
pub struct SandboxClock {
    start_ms: i64,
    started: Instant,
    offset_ms: AtomicI64,
}

impl SandboxClock {
    /// A clock reading `start_ms` now.
    pub fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            started: Instant::now(),
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Current sandbox time, unix ms.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX / 4);
        self.start_ms + elapsed + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Moves sandbox time forward.
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Total advance so far, ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

/// Who may see a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Everyone, listed.
    Public,
    /// Everyone, not listed.
    Unlisted,
    /// Followers only.
    Private,
    /// Mentioned accounts only.
    Direct,
}

impl Visibility {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "unlisted" => Some(Visibility::Unlisted),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

/// A profile change on one sandbox day.
#[derive(Debug, Clone)]
pub struct Change {
    /// When it happens.
    pub at_ms: i64,
    /// Sandbox day number (≥ 1).
    pub day: i64,
    /// The bio is rewritten.
    pub bio_edit: bool,
    /// A new post appears.
    pub post: Option<PostMeta>,
}

/// A status created at run time: a sender's message or a creator's reply.
#[derive(Debug, Clone)]
pub struct LiveStatus {
    /// Status id.
    pub id: u64,
    /// Author.
    pub author: AccountIdx,
    /// Creation time (for replies: when they become visible).
    pub created_ms: i64,
    /// Text as written.
    pub text: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Declared language.
    pub language: Option<String>,
    /// The status this answers and its author.
    pub in_reply_to: Option<(u64, AccountIdx)>,
    /// Mentioned accounts (the recipients).
    pub mentions: Vec<AccountIdx>,
    /// Content warning.
    pub spoiler_text: String,
    /// Marked sensitive.
    pub sensitive: bool,
    /// Posted through the API by a sender (carries an `application`).
    pub via_api: bool,
}

/// A reply the simulation decided to send.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedReply {
    /// Replying profile's handle.
    pub from: String,
    /// Reply status id.
    pub status_id: String,
    /// When it becomes visible.
    pub due_at: String,
    /// Whether it asks to stop contacting.
    pub opt_out: bool,
}

/// One received status, as the admin log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SentRecord {
    /// Status id.
    pub status_id: String,
    /// Sender handle.
    pub sender: String,
    /// Recipient handles (resolved mentions).
    pub recipients: Vec<String>,
    /// Text as received.
    pub body: String,
    /// Visibility.
    pub visibility: &'static str,
    /// `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Sandbox time of receipt.
    pub received_at: String,
    /// Replies scheduled for this status.
    pub planned_replies: Vec<PlannedReply>,
}

/// A validated request to create a status.
#[derive(Debug, Clone)]
pub struct NewStatus {
    /// Text.
    pub text: String,
    /// Visibility.
    pub visibility: Visibility,
    /// Language.
    pub language: Option<String>,
    /// Status being answered (already checked to exist).
    pub in_reply_to: Option<(u64, AccountIdx)>,
    /// Content warning.
    pub spoiler_text: String,
    /// Sensitive flag.
    pub sensitive: bool,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

/// Mutable sandbox state, behind one read-write lock (never held across an await).
#[derive(Debug, Default)]
pub struct Live {
    materialized_day: i64,
    changes: HashMap<AccountIdx, Vec<Change>>,
    change_tag_posts: Vec<Vec<u64>>,
    statuses: BTreeMap<u64, LiveStatus>,
    notifications: HashMap<AccountIdx, BTreeSet<u64>>,
    idempotency: HashMap<(AccountIdx, String), u64>,
    sent: Vec<SentRecord>,
    seq: u64,
    replies_planned: u64,
    changes_total: u64,
    /// Times of all materialized changes, ascending: how many are visible at a moment tells
    /// whether anything the directory orders by has moved since.
    change_times: Vec<i64>,
}

/// Sandbox day number of `now_ms` (0 = the day the world was created).
pub fn day_of(world: &World, now_ms: i64) -> i64 {
    (now_ms - world.anchor_ms).div_euclid(DAY_MS)
}

impl Live {
    /// Whether [`Live::materialize`] has work to do for `day` (checked under a shared lock).
    pub fn needs_materialize(&self, world: &World, day: i64) -> bool {
        self.change_tag_posts.len() != world.tags.len() || self.materialized_day < day
    }

    /// Applies the deterministic profile changes of every day up to `day`.
    pub fn materialize(&mut self, world: &World, day: i64, fraction: f64) {
        if self.change_tag_posts.len() != world.tags.len() {
            self.change_tag_posts = vec![Vec::new(); world.tags.len()];
        }
        if fraction <= 0.0 {
            self.materialized_day = self.materialized_day.max(day);
            return;
        }
        while self.materialized_day < day {
            self.materialized_day += 1;
            let d = self.materialized_day;
            let mut new_tag_ids: Vec<(u16, u64)> = Vec::new();
            for p in &world.profiles {
                let Some((at_ms, bio_edit, has_post)) = world.change_on(p.idx, d, fraction) else {
                    continue;
                };
                let post = has_post.then(|| world.change_post(p, d, at_ms));
                if let Some(post) = &post {
                    let id = super::world::post_id(post.created_ms, p.idx);
                    for t in post.tag_ids() {
                        new_tag_ids.push((*t, id));
                    }
                }
                self.changes.entry(p.idx).or_default().push(Change {
                    at_ms,
                    day: d,
                    bio_edit,
                    post,
                });
                self.changes_total += 1;
                self.change_times.push(at_ms);
            }
            // Every post of day d is newer than everything before it, so sorting the day's batch
            // keeps each per-tag list ascending.
            self.change_times.sort_unstable();
            new_tag_ids.sort_unstable();
            for (t, id) in new_tag_ids {
                self.change_tag_posts[usize::from(t)].push(id);
            }
        }
    }

    /// How many changes (bio edits and new posts, any account) are visible at `now_ms`; grows
    /// exactly when some profile's rendered state changes.
    pub fn visible_changes(&self, now_ms: i64) -> usize {
        self.change_times.partition_point(|t| *t <= now_ms)
    }

    /// Changes of one account (oldest first).
    pub fn changes(&self, idx: AccountIdx) -> &[Change] {
        self.changes.get(&idx).map_or(&[], Vec::as_slice)
    }

    /// Ids of change posts with tag `t` (ascending; includes not-yet-visible ones).
    pub fn change_tag_posts(&self, t: u16) -> &[u64] {
        self.change_tag_posts
            .get(usize::from(t))
            .map_or(&[], Vec::as_slice)
    }

    /// The latest bio edit of `idx` visible at `now_ms`, as its day number.
    pub fn bio_version(&self, idx: AccountIdx, now_ms: i64) -> Option<i64> {
        self.changes(idx)
            .iter()
            .rev()
            .find(|c| c.bio_edit && c.at_ms <= now_ms)
            .map(|c| c.day)
    }

    /// Change posts of `idx` visible at `now_ms`, oldest first.
    pub fn visible_change_posts(
        &self,
        idx: AccountIdx,
        now_ms: i64,
    ) -> impl Iterator<Item = &PostMeta> {
        self.changes(idx)
            .iter()
            .filter(move |c| c.at_ms <= now_ms)
            .filter_map(|c| c.post.as_ref())
    }

    /// A run-time status visible at `now_ms`.
    pub fn status(&self, id: u64, now_ms: i64) -> Option<&LiveStatus> {
        self.statuses.get(&id).filter(|s| s.created_ms <= now_ms)
    }

    /// Notification (reply status) ids of a sender visible at `now_ms`, ascending.
    pub fn notification_ids(&self, sender: AccountIdx, now_ms: i64) -> Vec<u64> {
        let ceiling = id_ceiling(now_ms);
        self.notifications
            .get(&sender)
            .map_or_else(Vec::new, |set| set.range(..=ceiling).copied().collect())
    }

    /// The log of received statuses.
    pub fn sent(&self) -> &[SentRecord] {
        &self.sent
    }

    /// Counters for the stats route: (received, replies planned, replies visible, changes).
    pub fn counters(&self, now_ms: i64) -> (usize, u64, usize, u64) {
        let ceiling = id_ceiling(now_ms);
        let visible: usize = self
            .notifications
            .values()
            .map(|s| s.range(..=ceiling).count())
            .sum();
        (
            self.sent.len(),
            self.replies_planned,
            visible,
            self.changes_total,
        )
    }

    /// The status a previous request with the same key and sender created.
    pub fn idempotent(&self, sender: AccountIdx, key: &str) -> Option<u64> {
        self.idempotency.get(&(sender, key.to_string())).copied()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores a sender's status, plans the recipients' replies and logs it; returns its id.
    pub fn receive(
        &mut self,
        world: &World,
        cfg: &ReplyConfig,
        sender: AccountIdx,
        new: NewStatus,
        now_ms: i64,
    ) -> u64 {
        let mentions = parse_mentions(world, &new.text);
        let seq = self.next_seq();
        let id = dynamic_id(now_ms, seq);
        let sender_name = world.username(sender).to_string();
        let mut planned = Vec::new();
        if new.visibility == Visibility::Direct {
            for r in mentions.iter().copied().filter(|r| *r != sender) {
                if let Some(reply) = self.plan_reply(world, cfg, sender, r, id, &new.text, now_ms) {
                    planned.push(reply);
                }
            }
        }
        self.sent.push(SentRecord {
            status_id: id.to_string(),
            sender: sender_name,
            recipients: mentions
                .iter()
                .map(|m| world.username(*m).to_string())
                .collect(),
            body: new.text.clone(),
            visibility: new.visibility.as_str(),
            idempotency_key: new.idempotency_key.clone(),
            received_at: super::entities::fmt_ms(now_ms),
            planned_replies: planned,
        });
        if let Some(key) = &new.idempotency_key {
            self.idempotency.insert((sender, key.clone()), id);
        }
        self.statuses.insert(
            id,
            LiveStatus {
                id,
                author: sender,
                created_ms: now_ms,
                text: new.text,
                visibility: new.visibility,
                language: new.language,
                in_reply_to: new.in_reply_to,
                mentions,
                spoiler_text: new.spoiler_text,
                sensitive: new.sensitive,
                via_api: true,
            },
        );
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_reply(
        &mut self,
        world: &World,
        cfg: &ReplyConfig,
        sender: AccountIdx,
        recipient: AccountIdx,
        status_id: u64,
        text: &str,
        now_ms: i64,
    ) -> Option<PlannedReply> {
        let p = world.profile(recipient)?;
        // Keyed by content, not by the status id (which depends on the wall clock), so the same
        // message to the same person gets the same fate in every run with this seed.
        let sender_name = world.username(sender).to_string();
        let h = hash_ints(&[
            world.seed,
            stream::REPLY,
            u64::from(recipient.0),
            hash_bytes(sender_name.as_bytes()),
            hash_bytes(text.as_bytes()),
        ]);
        if p.bot || unit(h) >= p.truth.reply_propensity {
            return None;
        }
        let opt_out = unit(hash_ints(&[h, 1])) < p.truth.opt_out_rate;
        let jitter = unit(hash_ints(&[h, 2]));
        let delay_ms = (cfg.reply_delay_secs.max(0) as f64 * 1000.0 * (1.0 + 0.5 * jitter)) as i64;
        let due_ms = now_ms + delay_ms.max(1);
        let texts = vocab::texts_for(p.lang);
        let lines = if opt_out {
            texts.opt_outs
        } else {
            texts.replies
        };
        let line = lines[(hash_ints(&[h, 3]) % lines.len() as u64) as usize];
        let seq = self.next_seq();
        let reply_id = dynamic_id(due_ms, seq);
        self.statuses.insert(
            reply_id,
            LiveStatus {
                id: reply_id,
                author: recipient,
                created_ms: due_ms,
                text: format!("@{sender_name} {line}"),
                visibility: Visibility::Direct,
                language: Some(p.lang.to_string()),
                in_reply_to: Some((status_id, sender)),
                mentions: vec![sender],
                spoiler_text: String::new(),
                sensitive: false,
                via_api: false,
            },
        );
        self.notifications
            .entry(sender)
            .or_default()
            .insert(reply_id);
        self.replies_planned += 1;
        Some(PlannedReply {
            from: p.username.clone(),
            status_id: reply_id.to_string(),
            due_at: super::entities::fmt_ms(due_ms),
            opt_out,
        })
    }
}

/// Reply-model settings.
#[derive(Debug, Clone, Copy)]
pub struct ReplyConfig {
    /// Base delay before a reply becomes visible (replies land within 1–1.5× this).
    pub reply_delay_secs: i64,
}

/// Accounts `@mentioned` in `text` (`@name` or `@name@domain`), in order of first mention.
pub fn parse_mentions(world: &World, text: &str) -> Vec<AccountIdx> {
    let mut out = Vec::new();
    for (start, name) in mention_tokens(text) {
        let _ = start;
        if let Some(idx) = world.lookup(&name) {
            if !out.contains(&idx) {
                out.push(idx);
            }
        }
    }
    out
}

/// `(byte offset, handle)` of every `@handle` token in `text`; the handle keeps any `@domain`.
pub fn mention_tokens(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b'@');
        if bytes[i] == b'@' && boundary {
            let start = i;
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i + 1 {
                let mut end = j;
                // An optional @domain part.
                if end < bytes.len() && bytes[end] == b'@' {
                    let mut k = end + 1;
                    while k < bytes.len()
                        && (bytes[k].is_ascii_alphanumeric()
                            || bytes[k] == b'.'
                            || bytes[k] == b'-')
                    {
                        k += 1;
                    }
                    if k > end + 1 {
                        end = k;
                    }
                }
                let token = text[start + 1..end]
                    .trim_end_matches(['.', '-'])
                    .to_string();
                out.push((start, token));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_tokens_find_local_and_remote_handles() {
        let t = mention_tokens("hi @anna_food and @bob@mastodon.example. mail me@x.y");
        let names: Vec<&str> = t.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, vec!["anna_food", "bob@mastodon.example"]);
    }
}
