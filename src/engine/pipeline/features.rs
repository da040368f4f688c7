//! Feature extraction: a fetched profile → the typed `profile_features` row campaigns filter on,
//! and the canonical form whose hash tells whether a profile changed.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::canonical;
use crate::engine::clock::Millis;
use crate::engine::platforms::models::html_to_text;
use crate::engine::platforms::{Account, ProfileSnapshot};

/// The version of the extraction below; bump it when a feature's meaning changes.
pub const FEATURE_VERSION: i64 = 1;

const DAY_MS: f64 = 86_400_000.0;

/// One `profile_features` row (without the profile id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    pub followers: i64,
    pub following: i64,
    pub posts_count: i64,
    pub engagement_rate: f64,
    pub avg_likes: f64,
    pub avg_comments: f64,
    pub posts_per_week: f64,
    pub last_post_at: Option<Millis>,
    pub account_age_days: i64,
    pub language: Option<String>,
    pub is_bot: bool,
    pub has_link: bool,
    pub has_email: bool,
    /// Bio + link fields + recent captions, lower-cased.
    pub text: String,
    /// Object-store keys of up to three images.
    pub image_keys: Vec<String>,
}

/// Fields that change without the person changing (signed CDN URLs, derived times): left out of
/// the content hash.
const VOLATILE_KEYS: &[&str] = &[
    "avatar",
    "avatar_static",
    "header",
    "header_static",
    "preview_url",
    "url",
    "remote_url",
    "blurhash",
    "last_status_at",
    "emojis",
];

/// A writer into a sha256.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// sha256 hex of a value's compact JSON, serialized straight into the hasher.
fn sha256_json(v: &serde_json::Value) -> String {
    let mut h = Hashing(Sha256::new());
    // Writing a Value into an infallible writer cannot fail (its keys are strings).
    let _ = serde_json::to_writer(&mut h, v);
    hex::encode(h.0.finalize())
}

/// sha256 hex of the canonical JSON of `value` without the keys `drop`: written straight from
/// the typed value when [`canonical::write`] can, else through [`canonical::value`], which gives
/// the same bytes.
fn canonical_hash<T: Serialize>(value: &T, drop: canonical::Drop<'_>) -> String {
    let mut h = Hashing(Sha256::new());
    match canonical::write(&mut h, value, drop) {
        Ok(()) => hex::encode(h.0.finalize()),
        Err(_) => sha256_json(&canonical::value(value, drop)),
    }
}

/// What the content hash leaves out: the volatile keys, and the author embedded in each of the
/// snapshot's own statuses (the account is already at the top).
const CONTENT_DROP: canonical::Drop<'static> = canonical::Drop {
    everywhere: VOLATILE_KEYS,
    inside: Some(("statuses", "account")),
};

/// sha256 hex of the canonical JSON.
pub fn content_hash(snapshot: &ProfileSnapshot) -> String {
    canonical_hash(snapshot, CONTENT_DROP)
}

/// The listing fingerprint of an account: sha256 hex of its canonical JSON with the volatile URLs
/// removed but `last_status_at` kept. Discovery listings (directory, search, followers, hashtag
/// authors) return the same Account entity as a lookup, so when a listing's fingerprint equals the
/// one recorded at the last full scrape, the bio, fields and counts are unchanged and no post was
/// added (`statuses_count` and `last_status_at` would move).
pub fn account_hash(account: &Account) -> String {
    /// `VOLATILE_KEYS` minus `last_status_at`: here it is the cheap signal of a new post.
    const DROP: &[&str] = &[
        "avatar",
        "avatar_static",
        "header",
        "header_static",
        "url",
        "emojis",
    ];
    let drop = canonical::Drop {
        everywhere: DROP,
        inside: None,
    };
    canonical_hash(account, drop)
}

/// Up to `n` image URLs from the newest posts.
pub fn image_urls(snapshot: &ProfileSnapshot, n: usize) -> Vec<String> {
    snapshot
        .statuses
        .iter()
        .flat_map(|s| s.media_attachments.iter())
        .filter(|m| matches!(m.kind, crate::engine::platforms::models::MediaKind::Image))
        .filter_map(|m| {
            m.preview_url
                .clone()
                .or_else(|| m.best_url().map(str::to_string))
        })
        .take(n)
        .collect()
}

fn looks_like_email(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>' | ',' | ';' | '"'))
        .any(|w| {
            let w = w.trim_matches(|c: char| matches!(c, '.' | ':' | '!' | '?'));
            match w.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && domain
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                }
                None => false,
            }
        })
}

/// Extracts the features of `snapshot` as of `now`.
pub fn extract(snapshot: &ProfileSnapshot, image_keys: Vec<String>, now: Millis) -> Features {
    let a = &snapshot.account;
    let followers = a.followers_count.max(0);
    let posts: Vec<_> = snapshot
        .statuses
        .iter()
        .filter(|s| s.reblog.is_none())
        .collect();
    let n = posts.len() as f64;
    let (likes, comments, reblogs) = posts.iter().fold((0i64, 0i64, 0i64), |acc, s| {
        (
            acc.0 + s.favourites_count.max(0),
            acc.1 + s.replies_count.max(0),
            acc.2 + s.reblogs_count.max(0),
        )
    });
    let avg_likes = if n > 0.0 { likes as f64 / n } else { 0.0 };
    let avg_comments = if n > 0.0 { comments as f64 / n } else { 0.0 };
    let engagement_rate = if n > 0.0 && followers > 0 {
        (likes + comments + reblogs) as f64 / n / followers as f64
    } else {
        0.0
    };
    let times: Vec<Millis> = posts.iter().filter_map(|s| s.created_at_ms()).collect();
    let last_post_at = times
        .iter()
        .max()
        .copied()
        .or_else(|| a.last_status_at_ms());
    let created = a.created_at_ms();
    let account_age_days = created
        .map(|c| ((now - c) as f64 / DAY_MS).floor().max(0.0) as i64)
        .unwrap_or(0);
    let posts_per_week = match times.iter().min() {
        Some(oldest) if times.len() >= 2 => {
            let span_days = ((now - oldest) as f64 / DAY_MS).max(1.0);
            times.len() as f64 / span_days * 7.0
        }
        _ => {
            let total = a.statuses_count.max(0) as f64;
            if account_age_days > 0 {
                total / account_age_days as f64 * 7.0
            } else {
                total
            }
        }
    };
    let bio = html_to_text(&a.note);
    let fields: Vec<String> = a
        .fields
        .iter()
        .map(|f| format!("{} {}", f.name, html_to_text(&f.value)))
        .collect();
    let captions: Vec<String> = posts.iter().map(|s| s.content_text()).collect();
    let mut text = bio.clone();
    for part in fields.iter().chain(captions.iter()) {
        text.push('\n');
        text.push_str(part);
    }
    for s in &posts {
        for t in &s.tags {
            text.push_str(" #");
            text.push_str(&t.name);
        }
    }
    let text = text.to_lowercase();
    let has_link = a
        .fields
        .iter()
        .any(|f| f.value.contains("http") || f.value.contains("href"))
        || a.note.contains("href=")
        || bio.contains("http://")
        || bio.contains("https://");
    let has_email = looks_like_email(&bio) || fields.iter().any(|f| looks_like_email(f));
    Features {
        followers,
        following: a.following_count.max(0),
        posts_count: a.statuses_count.max(0),
        engagement_rate,
        avg_likes,
        avg_comments,
        posts_per_week,
        last_post_at,
        account_age_days,
        language: language_of(
            &posts
                .iter()
                .filter_map(|s| s.language.clone())
                .collect::<Vec<_>>(),
            &text,
        ),
        is_bot: a.bot,
        has_link,
        has_email,
        text,
        image_keys,
    }
}

/// The most common declared post language, else the detected language of `text` when reliable.
fn language_of(declared: &[String], text: &str) -> Option<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for l in declared {
        let code = l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase();
        if code.len() == 2 {
            *counts.entry(code).or_default() += 1;
        }
    }
    let best = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    if let Some((code, _)) = best {
        return Some(code);
    }
    let info = whatlang::detect(text)?;
    if !info.is_reliable() {
        return None;
    }
    iso639_1(info.lang()).map(str::to_string)
}

fn iso639_1(lang: whatlang::Lang) -> Option<&'static str> {
    use whatlang::Lang::*;
    Some(match lang {
        Eng => "en",
        Deu => "de",
        Fra => "fr",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Nld => "nl",
        Jpn => "ja",
        Rus => "ru",
        Pol => "pl",
        Swe => "sv",
        Tur => "tr",
        Cmn => "zh",
        Kor => "ko",
        Ara => "ar",
        Ukr => "uk",
        Dan => "da",
        Fin => "fi",
        Nob => "no",
        Ces => "cs",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::platforms::models::{Account, Status};

    fn snap() -> ProfileSnapshot {
        let account = Account {
            id: "1".into(),
            acct: "anna".into(),
            note: "<p>Vegan cook. Mail me: anna@example.org</p>".into(),
            followers_count: 1000,
            following_count: 10,
            statuses_count: 50,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            avatar: "https://cdn/1.png?sig=a".into(),
            ..Default::default()
        };
        let status = Status {
            id: "10".into(),
            created_at: "2026-11-20T00:00:00.000Z".into(),
            favourites_count: 30,
            replies_count: 5,
            reblogs_count: 5,
            language: Some("en".into()),
            content: "<p>Tofu bowl</p>".into(),
            ..Default::default()
        };
        ProfileSnapshot {
            account,
            statuses: vec![status],
        }
    }

    #[test]
    fn volatile_fields_do_not_change_the_hash_but_the_bio_does() {
        let a = snap();
        let mut b = snap();
        b.account.avatar = "https://cdn/1.png?sig=b".into();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.account.note = "<p>Vegan chef.</p>".into();
        assert_ne!(content_hash(&a), content_hash(&b));
    }

    /// Stored `content_hash` and `account_hash` values must stay valid across releases: a change
    /// of the canonical form would make every stored profile look changed at its next scrape.
    #[test]
    fn the_canonical_form_is_stable() {
        let mut s = snap();
        s.statuses[0].account = s.account.clone();
        s.statuses[0].media_attachments = vec![Default::default()];
        assert_eq!(
            content_hash(&s),
            "039955ce16dce8fedcab6072c06b4cb93d9f6f54609f0ea95e206649f993da56"
        );
        assert_eq!(
            account_hash(&s.account),
            "2c9e354c2bfbfb9a2c6a99b9214fef8f18de7dc0ad92b53506bf7b2518da9b89"
        );
    }

    /// A snapshot with every field the models know set, from the reference payloads: statuses
    /// with media, mentions, tags, emoji, an edit, a boost (whose author stays in the hash), and
    /// one whose embedded author is another account (left out like the snapshot's own).
    fn reference_snapshot() -> ProfileSnapshot {
        let account: Account = serde_json::from_str(include_str!(
            "../../../tests/it/fixtures/mastodon/mastodon_account.json"
        ))
        .unwrap();
        let mut statuses: Vec<Status> = [
            include_str!("../../../tests/it/fixtures/mastodon/mastodon_status_entity_example.json"),
            include_str!("../../../tests/it/fixtures/mastodon/mastodon_status_realistic.json"),
        ]
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
        let mut boost = statuses[0].clone();
        boost.id = "99".into();
        boost.reblog = Some(Box::new(statuses[1].clone()));
        boost.edited_at = Some("2026-11-20T00:00:00.000Z".into());
        statuses.push(boost);
        statuses[1].account = Account::default();
        ProfileSnapshot { account, statuses }
    }

    /// The one-pass canonical writer gives the bytes of the `Value` route (the reference) and
    /// does not fall back to it for the models' types (their fields are declared in order).
    #[test]
    fn the_canonical_writer_matches_the_value_route_without_falling_back() {
        let snap = reference_snapshot();
        assert!(snap.statuses.iter().any(|s| !s.account.is_unset()));
        assert!(snap.statuses[2]
            .reblog
            .as_ref()
            .is_some_and(|r| !r.account.is_unset()));
        let mut fast = Vec::new();
        canonical::write(&mut fast, &snap, CONTENT_DROP).expect("no fallback for a snapshot");
        let slow = canonical::value(&snap, CONTENT_DROP).to_string();
        assert_eq!(String::from_utf8(fast).unwrap(), slow);
        let mut fast = Vec::new();
        let drop = canonical::Drop {
            everywhere: &["url", "avatar"],
            inside: None,
        };
        canonical::write(&mut fast, &snap.account, drop).expect("no fallback for an account");
        let slow = canonical::value(&snap.account, drop).to_string();
        assert_eq!(String::from_utf8(fast).unwrap(), slow);
    }

    #[test]
    fn extracts_engagement_language_and_email() {
        let f = extract(
            &snap(),
            vec![],
            chrono::DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
                .unwrap()
                .timestamp_millis(),
        );
        assert_eq!(f.followers, 1000);
        assert!(
            (f.engagement_rate - 0.04).abs() < 1e-9,
            "{}",
            f.engagement_rate
        );
        assert_eq!(f.language.as_deref(), Some("en"));
        assert!(f.has_email);
        assert!(f.text.contains("tofu bowl") && f.text.contains("vegan cook"));
        assert_eq!(f.account_age_days, 331);
    }
}
