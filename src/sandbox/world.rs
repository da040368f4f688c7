//! The sandbox world: creators, their bios, posts and hidden truth, generated from a seed.
//!
//! Only what search and the tag timelines need for every account at once is built eagerly (profile
//! records and a tag → status-id index); post text, counts and image bytes are regenerated on
//! demand from `(seed, account, post)`, so 20,000 profiles build in well under a second and
//! stay small in memory. Nothing here iterates a hash map, so output is a pure function of the seed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::rng::{hash_ints, stream, unit, Rng};
use super::vocab::{self, Niche, NICHES};

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// Low bits of a snowflake-like id that are not the timestamp.
pub const ID_LOW_BITS: u32 = 22;
/// Set in ids of statuses created at run time (direct messages and replies).
pub const DYNAMIC_FLAG: u64 = 1 << 21;
/// Mask for the account index (or sequence number) in the low bits.
pub const INDEX_MASK: u64 = (1 << 21) - 1;
/// Most accounts (profiles + senders) a world can hold, so the index fits in the id's low bits.
pub const MAX_ACCOUNTS: usize = (1 << 21) - 1;
/// Latest time a snowflake-like id can encode (2^41 ms, in 2039).
pub const MAX_TIME_MS: i64 = 1 << 41;
/// Account ids are snowflakes counted from this instant (2022-11-01), one second apart per index.
const ACCOUNT_EPOCH_MS: i64 = 1_667_260_800_000;
/// Most followers listed for an account (the rest live on "other servers").
pub const MAX_LISTED_FOLLOWERS: usize = 200;

/// The index of an account in the world (profiles first, then sender accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountIdx(pub u32);

impl AccountIdx {
    /// The public, snowflake-like id of this account.
    pub fn id(self) -> u64 {
        (((ACCOUNT_EPOCH_MS + i64::from(self.0) * 1000) as u64) << ID_LOW_BITS) | u64::from(self.0)
    }

    /// The account index an id denotes, if it is a well-formed account id.
    pub fn from_id(id: u64) -> Option<Self> {
        let idx = AccountIdx((id & INDEX_MASK) as u32);
        (idx.id() == id).then_some(idx)
    }
}

/// The snowflake-like id of a status created at `ms` by a generated account.
pub fn post_id(created_ms: i64, idx: AccountIdx) -> u64 {
    ((created_ms.max(0) as u64) << ID_LOW_BITS) | u64::from(idx.0)
}

/// The snowflake-like id of a status created at run time.
pub fn dynamic_id(created_ms: i64, seq: u64) -> u64 {
    ((created_ms.max(0) as u64) << ID_LOW_BITS) | DYNAMIC_FLAG | (seq & INDEX_MASK)
}

/// The largest id that can belong to something created at or before `ms`.
pub fn id_ceiling(ms: i64) -> u64 {
    ((ms.max(0) as u64) << ID_LOW_BITS) | ((1 << ID_LOW_BITS) - 1)
}

/// The creation time encoded in a snowflake-like id.
pub fn id_time_ms(id: u64) -> i64 {
    (id >> ID_LOW_BITS) as i64
}

/// What the simulation knows about a profile and the API never shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Truth {
    /// The creator's niche.
    pub niche: &'static str,
    /// How much of what they post is about the niche (0..1).
    pub niche_focus: f64,
    /// Probability that they answer a direct message (0..1).
    pub reply_propensity: f64,
    /// Probability that an answer asks us to stop writing (0..1).
    pub opt_out_rate: f64,
    /// Overall worth as a partner (0..1): focus, engagement, activity, not a bot.
    pub quality: f64,
    /// Average posts per week.
    pub posts_per_week: f64,
    /// Average favourites per post divided by followers.
    pub engagement_rate: f64,
}

/// A bio: plain sentences plus the decorations rendered into the HTML note.
#[derive(Debug, Clone)]
pub struct Bio {
    /// Sentences, plain text.
    pub text: String,
    /// Hashtags shown in the bio (tag ids).
    pub tags: Vec<u16>,
    /// A contact e-mail address shown in the bio.
    pub email: Option<String>,
    /// The creator's own site, linked in the bio.
    pub link: Option<String>,
}

/// One profile field (`fields` in the Account entity).
#[derive(Debug, Clone)]
pub struct Field {
    /// Field label.
    pub name: &'static str,
    /// Field value, HTML.
    pub value: String,
    /// When the link was verified (`rel=me`), if it is a verified link.
    pub verified_at_ms: Option<i64>,
}

/// A generated creator account.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Index in the world.
    pub idx: AccountIdx,
    /// Unique lower-case username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// First name used in greetings.
    pub first_name: &'static str,
    /// Language code of the profile.
    pub lang: &'static str,
    /// Niche index into [`NICHES`].
    pub niche: u8,
    /// A bio role ("home cook").
    pub role: &'static str,
    /// Followers.
    pub followers: u64,
    /// Following.
    pub following: u64,
    /// Automated account.
    pub bot: bool,
    /// Requires follow approval.
    pub locked: bool,
    /// Listed in the directory.
    pub discoverable: bool,
    /// When the account was created.
    pub created_ms: i64,
    /// The bio as generated at world creation.
    pub bio: Bio,
    /// The creator's site, if any (domain under `.example`).
    pub website: Option<String>,
    /// Profile fields.
    pub fields: Vec<Field>,
    /// Number of posts present at world creation.
    pub n_posts: u16,
    /// Time of the newest post at world creation.
    pub last_post_ms: i64,
    /// Mean time between posts.
    pub mean_gap_ms: i64,
    /// Hidden truth.
    pub truth: Truth,
    /// Lower-case text search matches against.
    pub haystack: String,
}

/// A sender account (the operator's own account, authenticated by a bearer token).
#[derive(Debug, Clone)]
pub struct Sender {
    /// Index in the world.
    pub idx: AccountIdx,
    /// Username.
    pub username: String,
    /// Bearer token.
    pub token: String,
    /// When the account was created.
    pub created_ms: i64,
}

/// One generated post, without its text (rendered on demand from `key`).
#[derive(Debug, Clone, Copy)]
pub struct PostMeta {
    /// Creation time.
    pub created_ms: i64,
    /// Seed for the text, counts and images.
    pub key: u64,
    /// Niche the post is about.
    pub niche: u8,
    /// Tag ids (first `n_tags` are used).
    pub tags: [u16; 3],
    /// How many tags.
    pub n_tags: u8,
    /// Number of image attachments.
    pub media: u8,
}

impl PostMeta {
    /// The post's tag ids.
    pub fn tag_ids(&self) -> &[u16] {
        &self.tags[..usize::from(self.n_tags)]
    }
}

/// Rendered text and counts of a post.
#[derive(Debug, Clone)]
pub struct PostBody {
    /// Language code.
    pub lang: &'static str,
    /// Plain sentence.
    pub sentence: String,
    /// Favourites.
    pub favourites: u64,
    /// Boosts.
    pub reblogs: u64,
    /// Replies.
    pub replies: u64,
    /// Per attachment: PNG (true) or JPEG (false).
    pub media_png: Vec<bool>,
}

/// Settings the world is generated from.
#[derive(Debug, Clone)]
pub struct WorldParams {
    /// Seed.
    pub seed: u64,
    /// Number of creator profiles.
    pub profiles: usize,
    /// `(handle, token)` sender accounts.
    pub senders: Vec<(String, String)>,
    /// Midnight (UTC) of the day the world is "now" at creation; posts are dated before it.
    pub anchor_ms: i64,
}

/// The generated world (immutable once built).
#[derive(Debug)]
pub struct World {
    /// Seed.
    pub seed: u64,
    /// Midnight (UTC) of the world's creation day.
    pub anchor_ms: i64,
    /// Creator profiles, index = `AccountIdx`.
    pub profiles: Vec<Profile>,
    /// Sender accounts, index = `AccountIdx - profiles.len()`.
    pub senders: Vec<Sender>,
    /// Tag names, index = tag id.
    pub tags: Vec<&'static str>,
    /// Per tag id: ids of generated posts with that tag, ascending; sorted on first use because
    /// sorting every list up front would dominate build time for large worlds.
    tag_index: Vec<OnceLock<Vec<u64>>>,
    /// Per tag id: the unsorted ids, taken out when the tag is first used.
    tag_raw: Mutex<Vec<Vec<u64>>>,
    by_username: HashMap<String, AccountIdx>,
    by_tag: HashMap<&'static str, u16>,
    /// Per niche: its tags' ids (same order as `Niche::tags`); avoids hashing in the hot loop.
    niche_tags: Vec<Vec<u16>>,
    general_tags: Vec<u16>,
    lang_weights: Vec<f64>,
    by_token: HashMap<String, AccountIdx>,
}

/// Normalises a handle as typed by a user: strips `@`, any `@domain`, and lower-cases it.
pub fn normalize_handle(handle: &str) -> String {
    let h = handle.trim().trim_start_matches('@');
    let user = h.split('@').next().unwrap_or(h);
    user.to_ascii_lowercase()
}

impl World {
    /// Generates the world.
    pub fn generate(params: &WorldParams) -> World {
        let seed = params.seed;
        let n = params
            .profiles
            .min(MAX_ACCOUNTS.saturating_sub(params.senders.len()));
        let mut tags: Vec<&'static str> = Vec::new();
        for niche in NICHES {
            for t in niche.tags {
                if !tags.contains(t) {
                    tags.push(t);
                }
            }
        }
        for t in vocab::GENERAL_TAGS {
            if !tags.contains(t) {
                tags.push(t);
            }
        }
        let by_tag: HashMap<&'static str, u16> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i as u16))
            .collect();
        let tag_pos = |t: &str| tags.iter().position(|x| *x == t).unwrap_or(0) as u16;
        let niche_tags: Vec<Vec<u16>> = NICHES
            .iter()
            .map(|n| n.tags.iter().map(|t| tag_pos(t)).collect())
            .collect();
        let general_tags: Vec<u16> = vocab::GENERAL_TAGS.iter().map(|t| tag_pos(t)).collect();
        let mut world = World {
            niche_tags,
            general_tags,
            lang_weights: vocab::LANGUAGES.iter().map(|(_, w)| *w).collect(),
            seed,
            anchor_ms: params.anchor_ms,
            profiles: Vec::with_capacity(n),
            senders: Vec::new(),
            tag_index: (0..tags.len()).map(|_| OnceLock::new()).collect(),
            tag_raw: Mutex::new(Vec::new()),
            tags,
            by_username: HashMap::with_capacity(n + params.senders.len()),
            by_tag,
            by_token: HashMap::new(),
        };
        let mut tag_raw: Vec<Vec<u64>> = vec![Vec::new(); world.tags.len()];
        for i in 0..n {
            let mut p = world.make_profile(AccountIdx(i as u32));
            world.by_username.insert(p.username.clone(), p.idx);
            let posts = world.skeleton(&p);
            let oldest = posts.last().map_or(p.last_post_ms, |x| x.created_ms);
            let age =
                hash_ints(&[seed, stream::PROFILE, u64::from(p.idx.0), 1]) % (900 * DAY_MS as u64);
            p.created_ms = oldest - DAY_MS - age as i64;
            for post in posts {
                let id = post_id(post.created_ms, p.idx);
                for t in post.tag_ids() {
                    tag_raw[usize::from(*t)].push(id);
                }
            }
            world.profiles.push(p);
        }
        world.tag_raw = Mutex::new(tag_raw);
        for (k, (handle, token)) in params.senders.iter().enumerate() {
            let idx = AccountIdx((n + k) as u32);
            let mut username = normalize_handle(handle);
            if username.is_empty() || world.by_username.contains_key(&username) {
                username = format!("{username}sender{k}");
            }
            world.by_username.insert(username.clone(), idx);
            world.by_token.insert(token.clone(), idx);
            world.senders.push(Sender {
                idx,
                username,
                token: token.clone(),
                created_ms: params.anchor_ms - 30 * DAY_MS + k as i64 * 1000,
            });
        }
        world
    }

    /// Number of creator profiles.
    pub fn n_profiles(&self) -> usize {
        self.profiles.len()
    }

    /// The profile at `idx`, if it is a creator.
    pub fn profile(&self, idx: AccountIdx) -> Option<&Profile> {
        self.profiles.get(idx.0 as usize)
    }

    /// The sender at `idx`, if it is a sender account.
    pub fn sender(&self, idx: AccountIdx) -> Option<&Sender> {
        (idx.0 as usize)
            .checked_sub(self.profiles.len())
            .and_then(|k| self.senders.get(k))
    }

    /// Whether `idx` names any account.
    pub fn exists(&self, idx: AccountIdx) -> bool {
        (idx.0 as usize) < self.profiles.len() + self.senders.len()
    }

    /// Username of any account.
    pub fn username(&self, idx: AccountIdx) -> &str {
        if let Some(p) = self.profile(idx) {
            &p.username
        } else if let Some(s) = self.sender(idx) {
            &s.username
        } else {
            ""
        }
    }

    /// Finds an account by handle (`name`, `@name`, `name@domain`).
    pub fn lookup(&self, handle: &str) -> Option<AccountIdx> {
        self.by_username.get(&normalize_handle(handle)).copied()
    }

    /// Finds a sender account by its bearer token.
    pub fn sender_by_token(&self, token: &str) -> Option<AccountIdx> {
        self.by_token.get(token).copied()
    }

    /// Ids of generated posts tagged `t`, ascending.
    pub fn tag_posts(&self, t: u16) -> &[u64] {
        let Some(cell) = self.tag_index.get(usize::from(t)) else {
            return &[];
        };
        cell.get_or_init(|| {
            let mut raw = self.tag_raw.lock().unwrap_or_else(|e| e.into_inner());
            let mut ids = raw
                .get_mut(usize::from(t))
                .map(std::mem::take)
                .unwrap_or_default();
            ids.sort_unstable();
            ids
        })
    }

    /// Tag id of a tag name (case-insensitive).
    pub fn tag_id(&self, name: &str) -> Option<u16> {
        self.by_tag.get(name.to_ascii_lowercase().as_str()).copied()
    }

    fn make_profile(&self, idx: AccountIdx) -> Profile {
        let seed = self.seed;
        let mut rng = Rng::for_parts(&[seed, stream::PROFILE, u64::from(idx.0)]);
        let niche_id = rng.below(NICHES.len()) as u8;
        let niche = &NICHES[usize::from(niche_id)];
        let lang = vocab::LANGUAGES[rng.weighted(&self.lang_weights)].0;
        let bot = rng.chance(0.04);
        let first_name = rng.pick(vocab::FIRST_NAMES);
        let last_name = rng.pick(vocab::LAST_NAMES);
        let role = rng.pick(niche.roles);
        let brand = !bot && rng.chance(0.15);

        // Heavy-tailed audience: log-normal with a long right tail (median ≈ 400).
        let followers = if bot {
            rng.log_normal(3.5, 1.2)
        } else {
            rng.log_normal(6.0, 1.9)
        }
        .min(5_000_000.0) as u64;
        let following = rng.log_normal(5.2, 1.1).min(20_000.0) as u64;

        let display_name = if bot {
            format!("{} Bot", capitalize(niche.name))
        } else if brand {
            format!(
                "{} {}",
                capitalize(rng.pick(niche.tags)),
                rng.pick(niche.brand_words)
            )
        } else {
            match rng.below(4) {
                0 => format!("{first_name} {last_name}"),
                1 => format!("{first_name} {}", rng.pick(niche.emojis)),
                2 => format!("{first_name} {last_name} {}", rng.pick(niche.emojis)),
                _ => first_name.to_string(),
            }
        };
        let base_username = if bot {
            format!("{}_bot", niche.tags[0])
        } else if brand {
            display_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        } else {
            match rng.below(3) {
                0 => format!(
                    "{}_{}",
                    first_name.to_ascii_lowercase(),
                    niche.tags[rng.below(niche.tags.len())]
                ),
                1 => format!(
                    "{}{}",
                    first_name.to_ascii_lowercase(),
                    last_name.to_ascii_lowercase()
                ),
                _ => format!(
                    "{}_{}",
                    first_name.to_ascii_lowercase(),
                    last_name.to_ascii_lowercase()
                ),
            }
        };
        let mut username = base_username.clone();
        while self.by_username.contains_key(&username) {
            username = format!("{base_username}{}", rng.range(2, 9999));
        }

        let website =
            (!bot && rng.chance(0.45)).then(|| format!("{}.example", username.replace('_', "")));
        let with_email = !bot && rng.chance(0.3);
        let niche_focus = if bot {
            0.9
        } else {
            (0.3 + 0.65 * rng.f64().powf(0.7)).min(0.97)
        };
        let posts_per_week = if bot {
            rng.range(20, 80) as f64
        } else {
            rng.log_normal(3.0f64.ln(), 0.9).clamp(0.1, 40.0)
        };
        let engagement_rate = if bot {
            0.001
        } else {
            rng.log_normal(0.02f64.ln(), 0.7).clamp(0.001, 0.2)
        };
        let n_posts = rng.log_normal(20.0f64.ln(), 0.6).round().clamp(5.0, 60.0) as u16;
        let mean_gap_ms = ((7.0 / posts_per_week) * DAY_MS as f64) as i64;
        let recency_days = if rng.chance(0.1) {
            rng.range(60, 400) as f64
        } else {
            rng.exponential(0.8 * 7.0 / posts_per_week).min(90.0)
        };
        let last_post_ms =
            self.anchor_ms - (recency_days * DAY_MS as f64) as i64 - rng.range(1, 3_600_000);
        // Fixed up by `generate` once the oldest post is known.
        let created_ms = last_post_ms;
        let locked = rng.chance(0.03);
        let discoverable = rng.chance(0.9);

        // Mid-size audiences answer most: big accounts drown in messages, tiny ones are often idle.
        let log_f = ((followers + 1) as f64).log10();
        let size_factor = (-((log_f - 3.2).powi(2)) / (2.0 * 0.9 * 0.9)).exp();
        let activity = (posts_per_week / 7.0).min(1.0);
        let reply_propensity = if bot {
            0.0
        } else {
            (0.02
                + 0.62 * size_factor * (0.3 + 0.7 * niche_focus) * (0.4 + 0.6 * activity)
                + 0.05 * rng.normal())
            .clamp(0.0, 0.95)
        };
        let opt_out_rate =
            (0.1 + 0.35 * (1.0 - niche_focus) + 0.08 * rng.normal()).clamp(0.03, 0.7);
        let quality = if bot {
            0.05
        } else {
            (0.3 * niche_focus
                + 0.3 * (engagement_rate / 0.05).min(1.0)
                + 0.2 * activity
                + 0.1 * f64::from(u8::from(website.is_some()))
                + 0.1 * size_factor)
                .clamp(0.0, 1.0)
        };

        let mut fields = Vec::new();
        if let Some(site) = &website {
            let verified = rng
                .chance(0.5)
                .then(|| self.anchor_ms - rng.range(DAY_MS, 300 * DAY_MS));
            fields.push(Field {
                name: rng.pick(vocab::LINK_FIELD_NAMES),
                value: link_html(&format!("https://{site}")),
                verified_at_ms: verified,
            });
        }
        for (name, values) in vocab::TEXT_FIELDS {
            if !bot && rng.chance(0.3) {
                fields.push(Field {
                    name,
                    value: html_escape(rng.pick(values)),
                    verified_at_ms: None,
                });
            }
        }

        let mut profile = Profile {
            idx,
            username,
            display_name,
            first_name,
            lang,
            niche: niche_id,
            role,
            followers,
            following,
            bot,
            locked,
            discoverable,
            created_ms,
            bio: Bio {
                text: String::new(),
                tags: Vec::new(),
                email: None,
                link: None,
            },
            website,
            fields,
            n_posts,
            last_post_ms,
            mean_gap_ms,
            truth: Truth {
                niche: niche.name,
                niche_focus: round3(niche_focus),
                reply_propensity: round3(reply_propensity),
                opt_out_rate: round3(opt_out_rate),
                quality: round3(quality),
                posts_per_week: round3(posts_per_week),
                engagement_rate: round3(engagement_rate * 1000.0) / 1000.0,
            },
            haystack: String::new(),
        };
        profile.bio = self.make_bio(&profile, 0, with_email);
        profile.haystack = self.haystack(&profile, &profile.bio);
        profile
    }

    /// The bio of `p` in `version` (0 = at creation; n = edited on sandbox day n).
    pub fn make_bio(&self, p: &Profile, version: u32, with_email: bool) -> Bio {
        let niche = &NICHES[usize::from(p.niche)];
        let mut rng = Rng::for_parts(&[
            self.seed,
            stream::BIO,
            u64::from(p.idx.0),
            u64::from(version),
        ]);
        if p.bot {
            let text = rng.pick(vocab::BOT_BIOS).replace("{topic}", niche.name);
            return Bio {
                text,
                tags: vec![self.niche_tags[usize::from(p.niche)][0]],
                email: None,
                link: None,
            };
        }
        let texts = vocab::texts_for(p.lang);
        let role = if version == 0 {
            p.role
        } else {
            rng.pick(niche.roles)
        };
        let mut text = rng.pick(texts.bio).replace("{role}", role);
        text = capitalize(&text);
        text.push(' ');
        text.push_str(rng.pick(niche.emojis));
        if rng.chance(0.6) {
            text.push(' ');
            text.push_str(rng.pick(texts.bio_extra));
        }
        if version > 0 && rng.chance(0.5) {
            text.push_str(" ✨ New: ");
            text.push_str(rng.pick(niche.subjects));
            text.push('.');
        }
        let n_tags = rng.below(3);
        let mut tags = Vec::new();
        for _ in 0..n_tags {
            let t = rng.pick(&self.niche_tags[usize::from(p.niche)]);
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        // An edit keeps the address most of the time, sometimes adds or removes it.
        let email_now = if version == 0 {
            with_email
        } else {
            rng.chance(0.35)
        };
        let email = email_now.then(|| match &p.website {
            Some(site) if rng.chance(0.5) => format!("hello@{site}"),
            _ => format!("{}@mail.example", p.username.replace('_', ".")),
        });
        let link = p
            .website
            .as_ref()
            .filter(|_| rng.chance(0.7))
            .map(|s| format!("https://{s}"));
        Bio {
            text,
            tags,
            email,
            link,
        }
    }

    /// Lower-case text that search matches: username, display name, bio, tags and niche.
    pub fn haystack(&self, p: &Profile, bio: &Bio) -> String {
        let mut s = format!(
            "{} {} {} {} {}",
            p.username,
            p.display_name,
            bio.text,
            p.role,
            NICHES[usize::from(p.niche)].name
        );
        for t in &bio.tags {
            s.push_str(" #");
            s.push_str(self.tags[usize::from(*t)]);
        }
        s.to_lowercase()
    }

    /// Renders a bio as Mastodon note HTML.
    pub fn bio_html(&self, bio: &Bio, base_url: &str) -> String {
        let mut html = format!("<p>{}</p>", html_escape(&bio.text));
        if !bio.tags.is_empty() {
            let tags: Vec<String> = bio
                .tags
                .iter()
                .map(|t| hashtag_html(base_url, self.tags[usize::from(*t)]))
                .collect();
            html.push_str(&format!("<p>{}</p>", tags.join(" ")));
        }
        let mut contact = Vec::new();
        if let Some(email) = &bio.email {
            contact.push(format!("📧 {}", html_escape(email)));
        }
        if let Some(link) = &bio.link {
            contact.push(link_html(link));
        }
        if !contact.is_empty() {
            html.push_str(&format!("<p>{}</p>", contact.join(" · ")));
        }
        html
    }

    /// The posts of `p` present at world creation, newest first.
    pub fn skeleton(&self, p: &Profile) -> Vec<PostMeta> {
        let mut rng = Rng::for_parts(&[self.seed, stream::POSTS, u64::from(p.idx.0)]);
        let mut t = p.last_post_ms;
        let mut out = Vec::with_capacity(usize::from(p.n_posts));
        for _ in 0..p.n_posts {
            out.push(self.post_meta(p, &mut rng, t));
            // Strictly decreasing times keep (time, account) ids unique.
            t -= rng.exponential(p.mean_gap_ms as f64) as i64 + 60_000;
        }
        out
    }

    /// A post of `p` created at `created_ms`, drawing its shape from `rng`.
    pub fn post_meta(&self, p: &Profile, rng: &mut Rng, created_ms: i64) -> PostMeta {
        let on_niche = rng.chance(p.truth.niche_focus);
        let niche_id = if on_niche {
            p.niche
        } else {
            rng.below(NICHES.len()) as u8
        };
        let niche = &NICHES[usize::from(niche_id)];
        let mut tags = [0u16; 3];
        let mut n_tags = 0u8;
        let want = 1 + rng.below(3);
        for _ in 0..want {
            let t = if rng.chance(0.85) {
                rng.pick(&self.niche_tags[usize::from(niche_id)])
            } else {
                rng.pick(&self.general_tags)
            };
            if !tags[..usize::from(n_tags)].contains(&t) {
                tags[usize::from(n_tags)] = t;
                n_tags += 1;
            }
        }
        let media = if p.bot {
            0
        } else if rng.chance(niche.photo_rate) {
            1 + u8::from(rng.chance(0.3))
        } else {
            0
        };
        PostMeta {
            created_ms,
            key: rng.next_u64(),
            niche: niche_id,
            tags,
            n_tags,
            media,
        }
    }

    /// Text and counts of a post.
    pub fn post_body(&self, p: &Profile, post: &PostMeta) -> PostBody {
        let mut rng = Rng::for_parts(&[self.seed, stream::POST, post.key]);
        let niche = &NICHES[usize::from(post.niche)];
        let lang = if rng.chance(0.85) { p.lang } else { "en" };
        let texts = vocab::texts_for(lang);
        let mut sentence = rng
            .pick(texts.posts)
            .replace("{subject}", rng.pick(niche.subjects));
        sentence.push(' ');
        sentence.push_str(rng.pick(niche.emojis));
        let expected = p.followers as f64 * p.truth.engagement_rate;
        let favourites = (expected * rng.log_normal(0.0, 0.6)).round() as u64;
        let reblogs = (favourites as f64 * (0.05 + 0.25 * rng.f64())).round() as u64;
        let replies =
            (favourites as f64 * (0.02 + 0.13 * rng.f64()) * (0.5 + p.truth.reply_propensity))
                .round() as u64;
        let media_png = (0..post.media).map(|_| rng.chance(0.5)).collect();
        PostBody {
            lang,
            sentence,
            favourites,
            reblogs,
            replies,
            media_png,
        }
    }

    /// Up to [`MAX_LISTED_FOLLOWERS`] followers of `p` among the world's profiles, by id descending.
    pub fn followers(&self, p: &Profile) -> Vec<AccountIdx> {
        let n = self.profiles.len();
        let want = (p.followers as usize)
            .min(n.saturating_sub(1))
            .min(MAX_LISTED_FOLLOWERS);
        let mut rng = Rng::for_parts(&[self.seed, stream::FOLLOWERS, u64::from(p.idx.0)]);
        let mut out: Vec<u32> = Vec::with_capacity(want);
        let mut attempts = 0;
        while out.len() < want && attempts < want * 20 {
            attempts += 1;
            let f = rng.below(n) as u32;
            if f != p.idx.0 && !out.contains(&f) {
                out.push(f);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        out.into_iter().map(AccountIdx).collect()
    }

    /// Whether profile `idx` changes on sandbox day `day` (≥ 1), and how: `(at_ms, edits bio, new post)`.
    pub fn change_on(&self, idx: AccountIdx, day: i64, fraction: f64) -> Option<(i64, bool, bool)> {
        let h = hash_ints(&[self.seed, stream::CHANGE, u64::from(idx.0), day as u64]);
        if unit(h) >= fraction {
            return None;
        }
        let kind = unit(hash_ints(&[h, 1]));
        let bot = self.profile(idx).is_some_and(|p| p.bot);
        let (bio, post) = if bot {
            (false, true)
        } else if kind < 0.3 {
            (true, false)
        } else if kind < 0.8 {
            (false, true)
        } else {
            (true, true)
        };
        let at_ms = self.anchor_ms + day * DAY_MS + (hash_ints(&[h, 2]) % DAY_MS as u64) as i64;
        Some((at_ms, bio, post))
    }

    /// The post `p` publishes on sandbox day `day`.
    pub fn change_post(&self, p: &Profile, day: i64, at_ms: i64) -> PostMeta {
        let mut rng = Rng::for_parts(&[
            self.seed,
            stream::CHANGE_POST,
            u64::from(p.idx.0),
            day as u64,
        ]);
        self.post_meta(p, &mut rng, at_ms)
    }

    /// The niche of `p`.
    pub fn niche_of(&self, p: &Profile) -> &'static Niche {
        &NICHES[usize::from(p.niche)]
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Upper-cases the first character.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A hashtag link as Mastodon renders it.
pub fn hashtag_html(base_url: &str, tag: &str) -> String {
    format!("<a href=\"{base_url}/tags/{tag}\" class=\"mention hashtag\" rel=\"tag\">#<span>{tag}</span></a>")
}

/// An external link as Mastodon renders it (scheme hidden, host shown).
pub fn link_html(url: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .map(|(s, r)| (format!("{s}://"), r))
        .unwrap_or_default();
    format!(
        "<a href=\"{url}\" rel=\"me nofollow noopener noreferrer\" target=\"_blank\"><span class=\"invisible\">{scheme}</span><span class=\"\">{rest}</span><span class=\"invisible\"></span></a>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64, n: usize) -> WorldParams {
        WorldParams {
            seed,
            profiles: n,
            senders: vec![("omni".into(), "tok".into())],
            anchor_ms: 1_750_000_000_000 / DAY_MS * DAY_MS,
        }
    }

    #[test]
    fn ids_round_trip_and_sort_by_index() {
        let a = AccountIdx(5);
        assert_eq!(AccountIdx::from_id(a.id()), Some(a));
        assert!(AccountIdx(6).id() > a.id());
        assert_eq!(AccountIdx::from_id(a.id() + 1), None);
    }

    #[test]
    fn usernames_are_unique_and_posts_are_in_range() {
        let w = World::generate(&params(7, 2000));
        let mut names: Vec<&str> = w.profiles.iter().map(|p| p.username.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 2000);
        for p in &w.profiles {
            assert!((5..=60).contains(&p.n_posts));
            let posts = w.skeleton(p);
            assert!(posts.windows(2).all(|x| x[0].created_ms > x[1].created_ms));
            assert!(posts[0].created_ms < w.anchor_ms);
        }
        assert_eq!(w.lookup("@omni"), Some(AccountIdx(2000)));
    }
}
