//! Mastodon API entities (Account, Status, MediaAttachment, Notification) and how the sandbox
//! renders its world into them. Field order follows the real API so responses read familiarly.

use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::images::ImageKind;
use super::live::{Live, LiveStatus};
use super::world::{hashtag_html, html_escape, post_id, AccountIdx, PostMeta, Profile, World};

/// Formats unix ms as Mastodon does (`2019-12-05T11:34:47.196Z`).
pub fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Formats unix ms as a date (`last_status_at` is a date in Mastodon 4).
pub fn fmt_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Formats unix ms with an explicit offset (`verified_at` style).
pub fn fmt_offset(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string())
        .unwrap_or_default()
}

/// An entity rendered to JSON once and embedded verbatim wherever it recurs: a page of one
/// account's posts carries the same author entity (about 3 KB) in each of up to 40 statuses.
/// It writes the same bytes as serializing the entity in place with serde_json's compact writer,
/// which is the only writer the sandbox answers with.
#[derive(Debug, Clone)]
pub struct Embedded(Arc<RawValue>);

impl Embedded {
    /// Renders `entity` once.
    pub fn of<T: Serialize>(entity: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(entity).map(|raw| Self(Arc::from(raw)))
    }
}

impl Serialize for Embedded {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The author embedded in a Status: rendered in place, or rendered once and shared.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Author {
    /// Serialized where it stands.
    Inline(Box<AccountJson>),
    /// Already rendered.
    Shared(Embedded),
}

impl Author {
    /// Renders `account` once for sharing across statuses, or keeps it inline if it cannot be
    /// rendered on its own (it always can: an Account is strings, numbers and lists).
    pub fn shared(account: AccountJson) -> Self {
        match Embedded::of(&account) {
            Ok(e) => Self::Shared(e),
            Err(_) => Self::Inline(Box::new(account)),
        }
    }
}

/// Account field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldJson {
    name: String,
    value: String,
    verified_at: Option<String>,
}

/// The Account entity.
#[derive(Debug, Clone, Serialize)]
pub struct AccountJson {
    id: String,
    username: String,
    acct: String,
    display_name: String,
    locked: bool,
    bot: bool,
    discoverable: bool,
    group: bool,
    created_at: String,
    note: String,
    url: String,
    uri: String,
    avatar: String,
    avatar_static: String,
    header: String,
    header_static: String,
    followers_count: u64,
    following_count: u64,
    statuses_count: u64,
    last_status_at: Option<String>,
    emojis: Vec<serde_json::Value>,
    fields: Vec<FieldJson>,
}

/// Image dimensions in `meta`.
#[derive(Debug, Serialize)]
pub struct ImageMeta {
    width: u32,
    height: u32,
    size: String,
    aspect: f64,
}

/// `meta` of an image attachment.
#[derive(Debug, Serialize)]
pub struct MediaMeta {
    original: ImageMeta,
    small: ImageMeta,
}

/// The MediaAttachment entity.
#[derive(Debug, Serialize)]
pub struct MediaJson {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
    preview_url: String,
    remote_url: Option<String>,
    preview_remote_url: Option<String>,
    text_url: Option<String>,
    meta: MediaMeta,
    description: Option<String>,
    blurhash: Option<String>,
}

/// A mention inside a status.
#[derive(Debug, Serialize)]
pub struct MentionJson {
    id: String,
    username: String,
    url: String,
    acct: String,
}

/// A tag inside a status.
#[derive(Debug, Serialize)]
pub struct TagJson {
    name: String,
    url: String,
}

/// The posting application.
#[derive(Debug, Serialize)]
pub struct ApplicationJson {
    name: &'static str,
    website: Option<String>,
}

/// The Status entity.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    id: String,
    created_at: String,
    in_reply_to_id: Option<String>,
    in_reply_to_account_id: Option<String>,
    sensitive: bool,
    spoiler_text: String,
    visibility: &'static str,
    language: Option<String>,
    uri: String,
    url: String,
    replies_count: u64,
    reblogs_count: u64,
    favourites_count: u64,
    edited_at: Option<String>,
    favourited: bool,
    reblogged: bool,
    muted: bool,
    bookmarked: bool,
    content: String,
    filtered: Vec<serde_json::Value>,
    reblog: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application: Option<ApplicationJson>,
    account: Author,
    media_attachments: Vec<MediaJson>,
    mentions: Vec<MentionJson>,
    tags: Vec<TagJson>,
    emojis: Vec<serde_json::Value>,
    card: Option<serde_json::Value>,
    poll: Option<serde_json::Value>,
}

/// The Notification entity.
#[derive(Debug, Serialize)]
pub struct NotificationJson {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    group_key: String,
    created_at: String,
    account: AccountJson,
    status: StatusJson,
}

/// Where a media file lives: which status, which attachment, which size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaSize {
    /// Full size (64×64).
    Original,
    /// Preview (32×32).
    Small,
}

impl MediaSize {
    /// Pixel edge length.
    pub fn edge(self) -> u32 {
        match self {
            MediaSize::Original => 64,
            MediaSize::Small => 32,
        }
    }

    /// Path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaSize::Original => "original",
            MediaSize::Small => "small",
        }
    }
}

/// A generated post together with its author.
#[derive(Debug, Clone, Copy)]
pub struct PostRef<'a> {
    /// Author.
    pub profile: &'a Profile,
    /// The post.
    pub meta: PostMeta,
}

/// Renders world and live state into API entities as seen at `now`.
pub struct View<'a> {
    /// The world.
    pub world: &'a World,
    /// Live state.
    pub live: &'a Live,
    /// Public base URL (no trailing slash).
    pub base: &'a str,
    /// Sandbox time.
    pub now: i64,
}

impl<'a> View<'a> {
    /// Finds a generated post (base or change post) by status id, if visible now.
    pub fn find_post(&self, id: u64) -> Option<PostRef<'a>> {
        if id & super::world::DYNAMIC_FLAG != 0 {
            return None;
        }
        let idx = AccountIdx((id & super::world::INDEX_MASK) as u32);
        let profile = self.world.profile(idx)?;
        let created = super::world::id_time_ms(id);
        if created > self.now {
            return None;
        }
        let meta = if created < self.world.anchor_ms {
            self.world
                .skeleton(profile)
                .into_iter()
                .find(|p| p.created_ms == created)?
        } else {
            *self
                .live
                .visible_change_posts(idx, self.now)
                .find(|p| p.created_ms == created)?
        };
        Some(PostRef { profile, meta })
    }

    /// All visible generated posts of a profile, ascending by id.
    pub fn post_ids(&self, p: &Profile) -> Vec<(u64, PostMeta)> {
        let mut out: Vec<(u64, PostMeta)> = self
            .world
            .skeleton(p)
            .into_iter()
            .rev()
            .map(|m| (post_id(m.created_ms, p.idx), m))
            .collect();
        out.extend(
            self.live
                .visible_change_posts(p.idx, self.now)
                .map(|m| (post_id(m.created_ms, p.idx), *m)),
        );
        out
    }

    /// `(statuses_count, newest post time)` of a profile now.
    pub fn post_stats(&self, p: &Profile) -> (u64, Option<i64>) {
        let mut count = u64::from(p.n_posts);
        let mut last = Some(p.last_post_ms);
        for m in self.live.visible_change_posts(p.idx, self.now) {
            count += 1;
            last = last.max(Some(m.created_ms));
        }
        (count, last)
    }

    /// The current bio of a profile (after any visible edit).
    pub fn bio(&self, p: &Profile) -> super::world::Bio {
        match self.live.bio_version(p.idx, self.now) {
            Some(day) => self.world.make_bio(p, day as u32, false),
            None => p.bio.clone(),
        }
    }

    /// URL of an account's profile page.
    pub fn account_url(&self, idx: AccountIdx) -> String {
        format!("{}/@{}", self.base, self.world.username(idx))
    }

    /// Avatar URL of an account.
    pub fn avatar_url(&self, idx: AccountIdx) -> String {
        format!(
            "{}/system/accounts/avatars/{}/original.png",
            self.base,
            idx.id()
        )
    }

    /// Header image URL of an account.
    pub fn header_url(&self, idx: AccountIdx) -> String {
        format!(
            "{}/system/accounts/headers/{}/original.jpg",
            self.base,
            idx.id()
        )
    }

    /// The Account entity for any account.
    pub fn account(&self, idx: AccountIdx) -> AccountJson {
        let username = self.world.username(idx).to_string();
        let avatar = self.avatar_url(idx);
        let header = self.header_url(idx);
        let url = self.account_url(idx);
        let uri = format!("{}/users/{}", self.base, username);
        if let Some(p) = self.world.profile(idx) {
            let (statuses_count, last) = self.post_stats(p);
            let bio = self.bio(p);
            return AccountJson {
                id: idx.id().to_string(),
                acct: username.clone(),
                username,
                display_name: p.display_name.clone(),
                locked: p.locked,
                bot: p.bot,
                discoverable: p.discoverable,
                group: false,
                created_at: fmt_ms(p.created_ms - p.created_ms.rem_euclid(super::world::DAY_MS)),
                note: self.world.bio_html(&bio, self.base),
                url,
                uri,
                avatar: avatar.clone(),
                avatar_static: avatar,
                header: header.clone(),
                header_static: header,
                followers_count: p.followers,
                following_count: p.following,
                statuses_count,
                last_status_at: last.map(fmt_date),
                emojis: Vec::new(),
                fields: p
                    .fields
                    .iter()
                    .map(|f| FieldJson {
                        name: f.name.to_string(),
                        value: f.value.clone(),
                        verified_at: f.verified_at_ms.map(fmt_offset),
                    })
                    .collect(),
            };
        }
        let created = self
            .world
            .sender(idx)
            .map_or(self.world.anchor_ms, |s| s.created_ms);
        AccountJson {
            id: idx.id().to_string(),
            acct: username.clone(),
            display_name: username.clone(),
            username,
            locked: false,
            bot: false,
            discoverable: false,
            group: false,
            created_at: fmt_ms(created - created.rem_euclid(super::world::DAY_MS)),
            note: String::new(),
            url,
            uri,
            avatar: avatar.clone(),
            avatar_static: avatar,
            header: header.clone(),
            header_static: header,
            followers_count: 0,
            following_count: 0,
            statuses_count: 0,
            last_status_at: None,
            emojis: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// URL of a post's media file.
    pub fn media_url(&self, status_id: u64, k: usize, size: MediaSize, kind: ImageKind) -> String {
        format!(
            "{}/system/media_attachments/{}/{}/{}.{}",
            self.base,
            status_id,
            k,
            size.as_str(),
            kind.ext()
        )
    }

    /// The Status entity of a generated post.
    pub fn post_status(&self, post: &PostRef<'_>) -> StatusJson {
        self.post_status_by(
            post,
            Author::Inline(Box::new(self.account(post.profile.idx))),
        )
    }

    /// The Status entity of a generated post whose author entity is already rendered (a page of
    /// one account's posts renders the author once, not once per post).
    pub fn post_status_by(&self, post: &PostRef<'_>, account: Author) -> StatusJson {
        let p = post.profile;
        let id = post_id(post.meta.created_ms, p.idx);
        let body = self.world.post_body(p, &post.meta);
        let tag_names: Vec<&str> = post
            .meta
            .tag_ids()
            .iter()
            .map(|t| self.world.tags[usize::from(*t)])
            .collect();
        let tag_links: Vec<String> = tag_names
            .iter()
            .map(|t| hashtag_html(self.base, t))
            .collect();
        let content = format!(
            "<p>{}</p><p>{}</p>",
            html_escape(&body.sentence),
            tag_links.join(" ")
        );
        let niche = &super::vocab::NICHES[usize::from(post.meta.niche)];
        let media = body
            .media_png
            .iter()
            .enumerate()
            .map(|(k, png)| {
                let kind = if *png {
                    ImageKind::Png
                } else {
                    ImageKind::Jpeg
                };
                let dim = |size: MediaSize| ImageMeta {
                    width: size.edge(),
                    height: size.edge(),
                    size: format!("{0}x{0}", size.edge()),
                    aspect: 1.0,
                };
                MediaJson {
                    // Bit 21 is free in generated-post ids (it marks run-time statuses), so it
                    // tells a post's two attachments apart while staying a valid u64.
                    id: (id | ((k as u64) << 21)).to_string(),
                    kind: "image",
                    url: self.media_url(id, k, MediaSize::Original, kind),
                    preview_url: self.media_url(id, k, MediaSize::Small, kind),
                    remote_url: None,
                    preview_remote_url: None,
                    text_url: None,
                    meta: MediaMeta {
                        original: dim(MediaSize::Original),
                        small: dim(MediaSize::Small),
                    },
                    description: Some(format!("A {} picture", niche.name)),
                    blurhash: None,
                }
            })
            .collect();
        StatusJson {
            id: id.to_string(),
            created_at: fmt_ms(post.meta.created_ms),
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            sensitive: false,
            spoiler_text: String::new(),
            visibility: "public",
            language: Some(body.lang.to_string()),
            uri: format!("{}/users/{}/statuses/{}", self.base, p.username, id),
            url: format!("{}/@{}/{}", self.base, p.username, id),
            replies_count: body.replies,
            reblogs_count: body.reblogs,
            favourites_count: body.favourites,
            edited_at: None,
            favourited: false,
            reblogged: false,
            muted: false,
            bookmarked: false,
            content,
            filtered: Vec::new(),
            reblog: None,
            application: None,
            account,
            media_attachments: media,
            mentions: Vec::new(),
            tags: tag_names
                .iter()
                .map(|t| TagJson {
                    name: t.to_string(),
                    url: format!("{}/tags/{}", self.base, t),
                })
                .collect(),
            emojis: Vec::new(),
            card: None,
            poll: None,
        }
    }

    /// The Status entity of a run-time status (a DM or a reply).
    pub fn live_status(&self, s: &LiveStatus) -> StatusJson {
        let username = self.world.username(s.author);
        StatusJson {
            id: s.id.to_string(),
            created_at: fmt_ms(s.created_ms),
            in_reply_to_id: s.in_reply_to.map(|(id, _)| id.to_string()),
            in_reply_to_account_id: s.in_reply_to.map(|(_, a)| a.id().to_string()),
            sensitive: s.sensitive,
            spoiler_text: s.spoiler_text.clone(),
            visibility: s.visibility.as_str(),
            language: s.language.clone(),
            uri: format!("{}/users/{}/statuses/{}", self.base, username, s.id),
            url: format!("{}/@{}/{}", self.base, username, s.id),
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
            edited_at: None,
            favourited: false,
            reblogged: false,
            muted: false,
            bookmarked: false,
            content: self.text_html(&s.text),
            filtered: Vec::new(),
            reblog: None,
            application: s.via_api.then_some(ApplicationJson {
                name: "omni",
                website: None,
            }),
            account: Author::Inline(Box::new(self.account(s.author))),
            media_attachments: Vec::new(),
            mentions: s
                .mentions
                .iter()
                .map(|m| MentionJson {
                    id: m.id().to_string(),
                    username: self.world.username(*m).to_string(),
                    url: self.account_url(*m),
                    acct: self.world.username(*m).to_string(),
                })
                .collect(),
            tags: Vec::new(),
            emojis: Vec::new(),
            card: None,
            poll: None,
        }
    }

    /// Plain text as status HTML: escaped, known `@mentions` linked as h-cards, lines as `<br>`.
    pub fn text_html(&self, text: &str) -> String {
        let mut html = String::new();
        let mut last = 0;
        for (start, name) in super::live::mention_tokens(text) {
            let Some(idx) = self.world.lookup(&name) else {
                continue;
            };
            let end = start + 1 + name.len();
            html.push_str(&html_escape(&text[last..start]));
            let user = self.world.username(idx);
            html.push_str(&format!(
                "<span class=\"h-card\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>",
                self.account_url(idx),
                user
            ));
            last = end;
        }
        html.push_str(&html_escape(&text[last..]));
        format!("<p>{}</p>", html.replace('\n', "<br>"))
    }

    /// The Notification entity for a reply status.
    pub fn notification(&self, s: &LiveStatus) -> NotificationJson {
        NotificationJson {
            id: s.id.to_string(),
            kind: "mention",
            group_key: format!("ungrouped-{}", s.id),
            created_at: fmt_ms(s.created_ms),
            account: self.account(s.author),
            status: self.live_status(s),
        }
    }
}
