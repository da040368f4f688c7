//! Typed serde models of the Mastodon client-API entities the adapters read (Account, Status,
//! MediaAttachment, Tag, Field, Mention, Notification), tolerant of what real servers omit or null.
//!
//! Every field has a default and `null` reads as that default, because real instances (and other
//! fediverse software speaking the same API) drop fields, send `null` where the docs promise a
//! value, and add fields of their own (ignored). Timestamps stay strings as sent — Mastodon mixes
//! full RFC 3339 times with bare dates (`last_status_at: "2022-08-30"`) — and are parsed on demand.
//!
//! The entities a content hash covers (Account, Status and what they contain) declare their fields
//! in the byte order of their JSON names: the hash writes them straight in canonical (sorted-key)
//! form (`pipeline::canonical`), which checks that order and otherwise takes a slower route to the
//! same bytes.

use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::clock::Millis;

/// Reads `null` as the type's default, so one odd field never rejects a whole page.
fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Reads an id sent as a JSON string (Mastodon) or a number (some compatible servers).
fn id_string<'de, D>(de: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    struct IdVisitor;
    impl<'de> serde::de::Visitor<'de> for IdVisitor {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an id (a string or an integer)")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<String, D::Error> {
            de.deserialize_any(IdVisitor)
        }
    }
    // A visitor rather than an untagged enum, which would buffer every id before trying each
    // variant.
    de.deserialize_option(IdVisitor)
}

/// Like [`id_string`] for ids that may legitimately be absent (`in_reply_to_id`).
fn opt_id_string<'de, D>(de: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let s = id_string(de)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

/// Parses a Mastodon timestamp: RFC 3339 (`2019-11-23T07:49:02.064Z`) or a bare date
/// (`2022-08-30`, read as midnight UTC), into unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<Millis> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// A user account (`Account` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    /// `user` for local accounts, `user@domain` for remote ones: the handle to mention.
    #[serde(deserialize_with = "nullable")]
    pub acct: String,
    /// The avatar image URL.
    #[serde(deserialize_with = "nullable")]
    pub avatar: String,
    /// The non-animated avatar URL.
    #[serde(deserialize_with = "nullable")]
    pub avatar_static: String,
    /// Whether the account says it is automated.
    #[serde(deserialize_with = "nullable")]
    pub bot: bool,
    /// When the account was created (RFC 3339).
    #[serde(deserialize_with = "nullable")]
    pub created_at: String,
    /// Whether the account opted into discovery features; `None` when the server does not say.
    pub discoverable: Option<bool>,
    /// The display name (may be empty).
    #[serde(deserialize_with = "nullable")]
    pub display_name: String,
    /// Custom emoji used in the name and bio.
    #[serde(deserialize_with = "nullable")]
    pub emojis: Vec<CustomEmoji>,
    /// Profile metadata fields (name/value pairs).
    #[serde(deserialize_with = "nullable")]
    pub fields: Vec<Field>,
    /// Followers; `-1` when the account hides its counts (see [`Account::followers`]).
    #[serde(deserialize_with = "nullable")]
    pub followers_count: i64,
    /// Follows; `-1` when hidden.
    #[serde(deserialize_with = "nullable")]
    pub following_count: i64,
    /// Whether the account is a group actor.
    #[serde(deserialize_with = "nullable")]
    pub group: bool,
    /// The header image URL.
    #[serde(deserialize_with = "nullable")]
    pub header: String,
    /// The non-animated header URL.
    #[serde(deserialize_with = "nullable")]
    pub header_static: String,
    /// Server-local id (a numeric string on Mastodon).
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Whether the account opted into search indexing; `None` when the server does not say.
    pub indexable: Option<bool>,
    /// The day (or time) of the last status; `null` for accounts that never posted.
    pub last_status_at: Option<String>,
    /// Whether follows need approval.
    #[serde(deserialize_with = "nullable")]
    pub locked: bool,
    /// The bio, as HTML.
    #[serde(deserialize_with = "nullable")]
    pub note: String,
    /// Statuses posted; `-1` when hidden.
    #[serde(deserialize_with = "nullable")]
    pub statuses_count: i64,
    /// The profile page.
    #[serde(deserialize_with = "nullable")]
    pub url: String,
    /// The username without a domain.
    #[serde(deserialize_with = "nullable")]
    pub username: String,
}

impl Account {
    /// Whether this is the empty default (no id, no handle): an author left out.
    pub fn is_unset(&self) -> bool {
        self.id.is_empty() && self.acct.is_empty()
    }

    /// Followers, or `None` when the account hides the count.
    pub fn followers(&self) -> Option<u64> {
        u64::try_from(self.followers_count).ok()
    }

    /// Follows, or `None` when hidden.
    pub fn following(&self) -> Option<u64> {
        u64::try_from(self.following_count).ok()
    }

    /// Statuses posted, or `None` when hidden.
    pub fn statuses(&self) -> Option<u64> {
        u64::try_from(self.statuses_count).ok()
    }

    /// Account creation time in unix milliseconds, when the server sent a parseable one.
    pub fn created_at_ms(&self) -> Option<Millis> {
        parse_timestamp(&self.created_at)
    }

    /// Last post time in unix milliseconds (a bare date reads as midnight UTC).
    pub fn last_status_at_ms(&self) -> Option<Millis> {
        self.last_status_at.as_deref().and_then(parse_timestamp)
    }

    /// The bio as plain text.
    pub fn note_text(&self) -> String {
        html_to_text(&self.note)
    }
}

/// A profile metadata field (`Field` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Field {
    /// The label.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The value, as HTML.
    #[serde(deserialize_with = "nullable")]
    pub value: String,
    /// When the server verified a `rel="me"` link in the value; `None` if unverified.
    pub verified_at: Option<String>,
}

/// A custom emoji (`CustomEmoji` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomEmoji {
    /// The `:shortcode:` without colons.
    #[serde(deserialize_with = "nullable")]
    pub shortcode: String,
    /// The image URL.
    #[serde(deserialize_with = "nullable")]
    pub url: String,
}

/// Who may see a status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone, on public timelines.
    #[default]
    Public,
    /// Everyone, but not on public timelines.
    Unlisted,
    /// Followers only.
    Private,
    /// Only the mentioned accounts: a direct message.
    Direct,
    /// A value this version does not know (e.g. a fork's `local`).
    #[serde(other)]
    Other,
}

/// A post (`Status` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The author. Empty (and not serialized) in a [`super::ProfileSnapshot`]'s own statuses,
    /// whose author is the snapshot's account (see [`Status::parse_own`]).
    #[serde(deserialize_with = "author", skip_serializing_if = "Account::is_unset")]
    pub account: Account,
    /// The body, as HTML.
    #[serde(deserialize_with = "nullable")]
    pub content: String,
    /// When it was posted (RFC 3339).
    #[serde(deserialize_with = "nullable")]
    pub created_at: String,
    /// When it was last edited, if ever.
    pub edited_at: Option<String>,
    /// Custom emoji used.
    #[serde(deserialize_with = "nullable")]
    pub emojis: Vec<CustomEmoji>,
    /// Favourites received.
    #[serde(deserialize_with = "nullable")]
    pub favourites_count: i64,
    /// Server-local id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The account this replies to.
    #[serde(deserialize_with = "opt_id_string")]
    pub in_reply_to_account_id: Option<String>,
    /// The status this replies to.
    #[serde(deserialize_with = "opt_id_string")]
    pub in_reply_to_id: Option<String>,
    /// ISO 639 language code, when known.
    pub language: Option<String>,
    /// Attached media.
    #[serde(deserialize_with = "nullable")]
    pub media_attachments: Vec<MediaAttachment>,
    /// Accounts mentioned (for a direct status: its recipients).
    #[serde(deserialize_with = "nullable")]
    pub mentions: Vec<Mention>,
    /// The boosted status, when this is a boost.
    #[serde(deserialize_with = "reblog")]
    pub reblog: Option<Box<Status>>,
    /// Boosts received.
    #[serde(deserialize_with = "nullable")]
    pub reblogs_count: i64,
    /// Replies received.
    #[serde(deserialize_with = "nullable")]
    pub replies_count: i64,
    /// Whether the media is marked sensitive.
    #[serde(deserialize_with = "nullable")]
    pub sensitive: bool,
    /// The content warning (empty when none).
    #[serde(deserialize_with = "nullable")]
    pub spoiler_text: String,
    /// Hashtags used.
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
    /// The ActivityPub id.
    #[serde(deserialize_with = "nullable")]
    pub uri: String,
    /// The HTML page, when there is one.
    pub url: Option<String>,
    /// Who may see it.
    #[serde(deserialize_with = "nullable")]
    pub visibility: Visibility,
}

/// While [`Status::parse_own`] parses on this thread: the id of the account whose statuses these
/// are, and whether a status named another author.
struct OwnParse {
    account_id: String,
    foreign: bool,
}

thread_local! {
    static OWN_PARSE: std::cell::RefCell<Option<OwnParse>> = const { std::cell::RefCell::new(None) };
}

/// A status's embedded author: parsed like any nullable field; inside [`Status::parse_own`] only
/// its id is read (the rest skipped over) and the author is left as the empty default.
fn author<'de, D>(de: D) -> Result<Account, D::Error>
where
    D: Deserializer<'de>,
{
    if OWN_PARSE.with_borrow(Option::is_none) {
        return nullable(de);
    }
    #[derive(Deserialize)]
    struct AuthorId {
        #[serde(default, deserialize_with = "id_string")]
        id: String,
    }
    if let Some(author) = Option::<AuthorId>::deserialize(de)? {
        OWN_PARSE.with_borrow_mut(|own| {
            if let Some(own) = own.as_mut() {
                own.foreign |= author.id != own.account_id;
            }
        });
    }
    Ok(Account::default())
}

/// A boost's original status, with its author parsed in full even inside [`Status::parse_own`]:
/// that author is not the account's.
fn reblog<'de, D>(de: D) -> Result<Option<Box<Status>>, D::Error>
where
    D: Deserializer<'de>,
{
    let own = OWN_PARSE.take();
    let parsed = Option::<Box<Status>>::deserialize(de);
    OWN_PARSE.set(own);
    parsed
}

impl Status {
    /// Runs `parse`, a synchronous parse of statuses posted by the account `account_id` (a page of
    /// `/api/v1/accounts/:id/statuses`), without building their embedded authors: each status
    /// repeats the whole Account entity, which the caller already has. Only each author's id is
    /// read, and the statuses come back with the empty default author. Skipping the authors saves
    /// about a fifth of the parse (BENCHMARKS.md §2).
    ///
    /// The result is what a plain parse followed by clearing the authors whose id is
    /// `account_id` gives: a boost keeps its original author, and if any status names another
    /// author, `parse` runs again in full and only the matching authors are cleared. One
    /// difference: an author object that is malformed beyond its id no longer fails the page,
    /// since it is not read. Other parses are unaffected: the setting is this thread's and lasts
    /// for the call only (also when `parse` panics).
    pub fn parse_own<E>(
        account_id: &str,
        parse: impl Fn() -> Result<Vec<Status>, E>,
    ) -> Result<Vec<Status>, E> {
        struct Reset(Option<OwnParse>);
        impl Drop for Reset {
            fn drop(&mut self) {
                OWN_PARSE.set(self.0.take());
            }
        }
        let (statuses, foreign) = {
            let _reset = Reset(OWN_PARSE.replace(Some(OwnParse {
                account_id: account_id.to_string(),
                foreign: false,
            })));
            let statuses = parse()?;
            let foreign = OWN_PARSE.with_borrow(|own| own.as_ref().is_some_and(|o| o.foreign));
            (statuses, foreign)
        };
        if !foreign {
            return Ok(statuses);
        }
        // A status names another author: parse again in full, and clear only the account's own.
        let _reset = Reset(OWN_PARSE.take());
        let mut statuses = parse()?;
        for s in &mut statuses {
            if s.account.id == account_id {
                s.account = Account::default();
            }
        }
        Ok(statuses)
    }

    /// Post time in unix milliseconds, when parseable.
    pub fn created_at_ms(&self) -> Option<Millis> {
        parse_timestamp(&self.created_at)
    }

    /// The body as plain text.
    pub fn content_text(&self) -> String {
        html_to_text(&self.content)
    }
}

/// The kind of an attachment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A looping silent video.
    Gifv,
    /// A video.
    Video,
    /// An audio track.
    Audio,
    /// Not recognised (Mastodon's own `unknown`, or anything newer).
    #[default]
    #[serde(other)]
    Unknown,
}

/// An attachment (`MediaAttachment` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaAttachment {
    /// A blurhash placeholder.
    pub blurhash: Option<String>,
    /// Alt text.
    pub description: Option<String>,
    /// Server-local id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// A small preview.
    pub preview_url: Option<String>,
    /// The original on the remote server.
    pub remote_url: Option<String>,
    /// What it is.
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: MediaKind,
    /// The full-size file; `None` while a remote file is not cached yet.
    pub url: Option<String>,
}

impl MediaAttachment {
    /// The best URL to fetch: the full file, else the remote original, else the preview.
    pub fn best_url(&self) -> Option<&str> {
        self.url
            .as_deref()
            .or(self.remote_url.as_deref())
            .or(self.preview_url.as_deref())
            .filter(|u| !u.is_empty())
    }
}

/// A hashtag used in a status (`Status::Tag`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tag {
    /// The tag without `#`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The tag's page.
    #[serde(deserialize_with = "nullable")]
    pub url: String,
}

/// An account mentioned in a status (`Status::Mention`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mention {
    /// `user` or `user@domain`.
    #[serde(deserialize_with = "nullable")]
    pub acct: String,
    /// Server-local account id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The profile page.
    #[serde(deserialize_with = "nullable")]
    pub url: String,
    /// The username without a domain.
    #[serde(deserialize_with = "nullable")]
    pub username: String,
}

/// The kind of a notification; only mentions matter to the adapter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Someone mentioned the account (DM replies arrive as mentions).
    Mention,
    /// Any other kind (follow, favourite, reblog, poll, …).
    #[default]
    #[serde(other)]
    Other,
}

/// A notification (`Notification` entity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Notification {
    /// Server-local id, increasing with time.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// What happened.
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: NotificationKind,
    /// When it happened (RFC 3339).
    #[serde(deserialize_with = "nullable")]
    pub created_at: String,
    /// Who did it.
    #[serde(deserialize_with = "nullable")]
    pub account: Account,
    /// The status involved, for mentions.
    pub status: Option<Status>,
}

/// The body of `GET /api/v2/search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchResults {
    /// Matching accounts.
    #[serde(deserialize_with = "nullable")]
    pub accounts: Vec<Account>,
    /// Matching statuses.
    #[serde(deserialize_with = "nullable")]
    pub statuses: Vec<Status>,
}

/// Orders two Mastodon ids: numeric ids by value (a longer digit string is larger), others as text.
pub fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if numeric(a) && numeric(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

/// Turns Mastodon's status/bio HTML into plain text: paragraphs and `<br>` become newlines, tags
/// go, entities are decoded, and control characters are stripped.
pub fn html_to_text(html: &str) -> String {
    // Written into one buffer, without a string per text run or tag: it runs on the bio and
    // every caption of every scraped profile.
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        decode_entities_into(&mut out, &rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            // An unclosed `<` is text, not a tag.
            decode_entities_into(&mut out, &rest[lt..]);
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim();
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/', '\t', '\n'])
            .next()
            .unwrap_or("");
        // The "invisible" spans Mastodon wraps around URL parts stay in: they are part of the URL.
        if name.eq_ignore_ascii_case("br") || (closing && name.eq_ignore_ascii_case("p")) {
            out.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    decode_entities_into(&mut out, rest);
    crate::text::strip_control(out.trim_end_matches('\n'))
}

/// Appends `s` to `out` with the HTML entities Mastodon emits (named basics and numeric
/// references) decoded.
fn decode_entities_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &after[..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_to_text_keeps_paragraphs_and_decodes_entities() {
        let html = "<p>&quot;Hi&quot; &amp; <a href=\"x\">@<span>bob</span></a></p><p>line<br>two &#39;x&#x27;</p>";
        assert_eq!(html_to_text(html), "\"Hi\" & @bob\nline\ntwo 'x'");
    }

    #[test]
    fn html_to_text_treats_a_stray_ampersand_and_angle_as_text() {
        assert_eq!(html_to_text("a & b < c"), "a & b < c");
    }

    #[test]
    fn html_to_text_reads_tag_names_in_any_case() {
        let html = "<P>one<BR/>two</P ><p class=\"x\">three &AMP; &#x41;</p><pre>/p</pre>";
        assert_eq!(html_to_text(html), "one\ntwo\nthree &AMP; A\n/p");
    }

    #[test]
    fn timestamps_accept_rfc3339_and_bare_dates() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    /// `parse_own` gives what a full parse gives with the account's own embedded authors cleared:
    /// a boost keeps its author, a status by another author keeps that author (a second, full
    /// parse), and the setting ends with the call, also when the parse fails.
    #[test]
    fn own_statuses_are_parsed_without_their_authors() {
        let page = |second_author: &str| {
            format!(
                r#"[{{"id":"1","content":"<p>hi</p>","account":{{"id":"7","acct":"anna",
                "note":"<p>bio</p>","fields":[{{"name":"a","value":"b"}}]}},
                "reblog":{{"id":"2","account":{{"id":"8","acct":"bob"}}}},"tags":[{{"name":"x"}}]}},
                {{"id":"3","account":{{"id":{second_author},"acct":"who"}}}},{{"id":"4","account":null}}]"#
            )
        };
        // The reference: a full parse, then the account's own authors cleared.
        let reference = |json: &str| {
            let mut all: Vec<Status> = serde_json::from_str(json).unwrap();
            for s in &mut all {
                if s.account.id == "7" {
                    s.account = Account::default();
                }
            }
            all
        };
        for second in ["\"7\"", "7", "\"9\""] {
            let json = page(second);
            let own =
                Status::parse_own("7", || serde_json::from_str::<Vec<Status>>(&json)).unwrap();
            assert_eq!(own, reference(&json), "second author {second}");
            assert!(own[0].account.is_unset());
            assert_eq!(own[0].reblog.as_ref().unwrap().account.acct, "bob");
            assert_eq!(
                own[1].account.acct,
                if second == "\"9\"" { "who" } else { "" }
            );
        }
        let broken = r#"[{"id":"1","account":{"id":7}},{"id":"2","account":"#;
        assert!(Status::parse_own("7", || serde_json::from_str::<Vec<Status>>(broken)).is_err());
        // Outside the call, authors are parsed again.
        let any: Vec<Status> = serde_json::from_str(&page("\"7\"")).unwrap();
        assert_eq!(any[0].account.acct, "anna");
    }

    #[test]
    fn ids_compare_numerically() {
        use std::cmp::Ordering;
        assert_eq!(compare_ids("99", "100"), Ordering::Less);
        assert_eq!(
            compare_ids("108914327388663283", "103186126728896492"),
            Ordering::Greater
        );
        assert_eq!(compare_ids("7", "7"), Ordering::Equal);
    }
}
