//! The Mastodon adapter: [`Platform`] over the Mastodon client API (also serves the sandbox,
//! which speaks the same protocol).
//!
//! Endpoints: `/api/v1/directory` and `/api/v2/search` (offset paging), `/api/v1/timelines/tag/:tag`
//! and `/api/v1/accounts/:id/followers` (Link `max_id` paging), `/api/v1/accounts/lookup`,
//! `/api/v1/accounts/:id/statuses`, `POST /api/v1/statuses` (direct, with `Idempotency-Key`),
//! `/api/v1/statuses/:id` and `/api/v1/notifications?types[]=mention`.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, Url};

use super::http::{ApiRequest, ApiResponse, HttpClient, RetryPolicy};
use super::models::{
    compare_ids, html_to_text, Account, Notification, NotificationKind, SearchResults, Status,
};
use super::transport::Transport;
use super::{
    AccessToken, Cursor, DiscoveryPage, DiscoverySource, Platform, PlatformConfig, PlatformError,
    PlatformFuture, ProfileSnapshot, Reply, ReplyCursor, ReplyPage, SentMessage,
};

/// A reply poll reads at most this many pages; the cursor lets the next poll continue.
const MAX_POLL_PAGES: usize = 50;

/// A Mastodon-compatible server.
#[derive(Debug)]
pub struct MastodonPlatform {
    name: String,
    /// The base URL, always ending in `/` so relative joins keep any path prefix.
    base: Url,
    /// The read token for discovery and scraping, if configured.
    read_token: Option<AccessToken>,
    page_size: u32,
    http: HttpClient,
}

/// Where a discovery source stopped, encoded into the opaque [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum CursorState {
    /// Directory and search: the next offset.
    Offset(u64),
    /// Hashtag timeline: the `max_id` from the Link `next`.
    MaxId(String),
    /// Followers: the resolved account id and the `max_id` from the Link `next`.
    Followers { account_id: String, max_id: String },
}

impl CursorState {
    fn encode(&self) -> Cursor {
        Cursor(match self {
            Self::Offset(n) => format!("offset:{n}"),
            Self::MaxId(id) => format!("max_id:{id}"),
            Self::Followers { account_id, max_id } => format!("followers:{account_id}:{max_id}"),
        })
    }

    fn decode(cursor: &Cursor) -> Result<Self, PlatformError> {
        let bad = |detail: &str| PlatformError::BadCursor {
            cursor: cursor.0.clone(),
            detail: detail.to_string(),
        };
        let (kind, rest) = cursor
            .0
            .split_once(':')
            .ok_or_else(|| bad("expected kind:value"))?;
        match kind {
            "offset" => rest
                .parse()
                .map(Self::Offset)
                .map_err(|_| bad("offset is not a number")),
            "max_id" if !rest.is_empty() => Ok(Self::MaxId(rest.to_string())),
            "followers" => {
                let (account_id, max_id) = rest
                    .split_once(':')
                    .ok_or_else(|| bad("expected followers:id:max_id"))?;
                if account_id.is_empty() || max_id.is_empty() {
                    return Err(bad("empty account id or max_id"));
                }
                Ok(Self::Followers {
                    account_id: account_id.to_string(),
                    max_id: max_id.to_string(),
                })
            }
            _ => Err(bad("unknown cursor kind")),
        }
    }
}

/// Strips a leading `@` and surrounding space from a handle.
fn normalize_handle(handle: &str) -> &str {
    handle.trim().trim_start_matches('@')
}

/// Whether a mention's `acct` is the intended recipient. Local accounts appear without a domain,
/// so a domain is compared only when both sides have one.
fn acct_matches(mentioned: &str, recipient: &str) -> bool {
    let split = |a: &str| {
        let (user, domain) = a.split_once('@').map_or((a, None), |(u, d)| (u, Some(d)));
        (
            user.to_ascii_lowercase(),
            domain.map(str::to_ascii_lowercase),
        )
    };
    let (mu, md) = split(mentioned);
    let (ru, rd) = split(recipient);
    mu == ru && (md.is_none() || rd.is_none() || md == rd)
}

/// The query value of `key` in a URL.
fn query_value(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

impl MastodonPlatform {
    /// An adapter for `cfg`, using `read_token` (if any) for discovery and scraping.
    pub fn new(
        cfg: &PlatformConfig,
        read_token: Option<AccessToken>,
    ) -> Result<Self, PlatformError> {
        cfg.validate()?;
        let mut base = Url::parse(&cfg.base_url)
            .map_err(|e| PlatformError::Config(format!("base_url {:?}: {e}", cfg.base_url)))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let policy = RetryPolicy {
            max_retries: cfg.max_retries,
            base_backoff: Duration::from_millis(cfg.backoff_ms.max(1)),
            max_backoff: Duration::from_millis(
                cfg.backoff_ms.max(1).saturating_mul(64).min(60_000),
            ),
            max_rate_limit_wait: Duration::from_secs(cfg.max_rate_limit_wait_secs),
        };
        let http = HttpClient::with_transport(Transport::for_config(cfg)?, policy);
        Ok(Self {
            name: cfg.name.clone(),
            base,
            read_token,
            page_size: cfg.page_size,
            http,
        })
    }

    /// `base` + path segments (each percent-encoded) + query pairs.
    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        {
            // A base URL with a host always has path segments (checked in `validate`).
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A Link target moved onto our base URL: instances may advertise another host name (their
    /// LOCAL_DOMAIN), and the token must only ever go to the configured server.
    fn rebase(&self, link: &Url) -> Url {
        let mut url = self.base.clone();
        url.set_path(link.path());
        url.set_query(link.query());
        url
    }

    async fn get(
        &self,
        url: Url,
        token: Option<&AccessToken>,
    ) -> Result<ApiResponse, PlatformError> {
        self.http.send(&ApiRequest::get(url, token)).await
    }

    async fn lookup(&self, handle: &str) -> Result<Account, PlatformError> {
        let url = self.endpoint(
            &["api", "v1", "accounts", "lookup"],
            &[("acct", normalize_handle(handle))],
        );
        self.get(url, self.read_token.as_ref()).await?.json()
    }

    async fn discover_impl(
        &self,
        source: &DiscoverySource,
        cursor: Option<&Cursor>,
    ) -> Result<DiscoveryPage, PlatformError> {
        let state = cursor.map(CursorState::decode).transpose()?;
        let limit = self.page_size.to_string();
        let token = self.read_token.as_ref();
        let wrong_cursor = |c: &CursorState| PlatformError::BadCursor {
            cursor: c.encode().0,
            detail: format!("not a cursor of {source:?}"),
        };
        match source {
            DiscoverySource::Directory | DiscoverySource::Search(_) => {
                let offset = match &state {
                    None => 0,
                    Some(CursorState::Offset(n)) => *n,
                    Some(other) => return Err(wrong_cursor(other)),
                };
                let offset_s = offset.to_string();
                let accounts: Vec<Account> = match source {
                    DiscoverySource::Search(q) => {
                        let url = self.endpoint(
                            &["api", "v2", "search"],
                            &[
                                ("q", q.as_str()),
                                ("type", "accounts"),
                                ("resolve", "false"),
                                ("limit", &limit),
                                ("offset", &offset_s),
                            ],
                        );
                        self.get(url, token)
                            .await?
                            .json::<SearchResults>()?
                            .accounts
                    }
                    _ => {
                        let url = self.endpoint(
                            &["api", "v1", "directory"],
                            &[
                                ("order", "active"),
                                ("limit", &limit),
                                ("offset", &offset_s),
                            ],
                        );
                        self.get(url, token).await?.json()?
                    }
                };
                // Mastodon ignores `offset` on search without a user token and would return page one
                // forever, so an anonymous search stops after one page.
                let paged = token.is_some() || !matches!(source, DiscoverySource::Search(_));
                if !paged {
                    tracing::warn!(platform = %self.name, "search without a token: only the first page is available");
                }
                // A short page is not proof of the end (servers cap `limit`); an empty one is.
                let next = (paged && !accounts.is_empty())
                    .then(|| CursorState::Offset(offset + accounts.len() as u64).encode());
                Ok(DiscoveryPage {
                    accounts: dedupe(accounts),
                    next,
                })
            }
            DiscoverySource::Hashtag(tag) => {
                let tag = tag.trim().trim_start_matches('#');
                let mut query = vec![("limit", limit.as_str())];
                match &state {
                    None => {}
                    Some(CursorState::MaxId(id)) => query.push(("max_id", id.as_str())),
                    Some(other) => return Err(wrong_cursor(other)),
                }
                let url = self.endpoint(&["api", "v1", "timelines", "tag", tag], &query);
                let resp = self.get(url, token).await?;
                let statuses: Vec<Status> = resp.json()?;
                let next = resp
                    .link("next")
                    .and_then(|l| query_value(&l, "max_id"))
                    .map(|id| CursorState::MaxId(id).encode());
                let next = next.filter(|_| !statuses.is_empty());
                Ok(DiscoveryPage {
                    accounts: dedupe(statuses.into_iter().map(|s| s.account).collect()),
                    next,
                })
            }
            DiscoverySource::FollowersOf(handle) => {
                let (account_id, max_id) = match state {
                    None => (self.lookup(handle).await?.id, None),
                    Some(CursorState::Followers { account_id, max_id }) => {
                        (account_id, Some(max_id))
                    }
                    Some(other) => return Err(wrong_cursor(&other)),
                };
                let mut query = vec![("limit", limit.as_str())];
                if let Some(max_id) = &max_id {
                    query.push(("max_id", max_id.as_str()));
                }
                let url =
                    self.endpoint(&["api", "v1", "accounts", &account_id, "followers"], &query);
                let resp = self.get(url, token).await?;
                let accounts: Vec<Account> = resp.json()?;
                // Follower pages are keyed by follow-record ids, which only the Link header carries.
                let next = resp
                    .link("next")
                    .and_then(|l| query_value(&l, "max_id"))
                    .filter(|_| !accounts.is_empty())
                    .map(|max_id| {
                        CursorState::Followers {
                            account_id: account_id.clone(),
                            max_id,
                        }
                        .encode()
                    });
                Ok(DiscoveryPage {
                    accounts: dedupe(accounts),
                    next,
                })
            }
        }
    }

    async fn fetch_profile_impl(
        &self,
        handle: &str,
        max_statuses: usize,
    ) -> Result<ProfileSnapshot, PlatformError> {
        let account = self.lookup(handle).await?;
        let statuses = self.recent_statuses(&account, max_statuses).await?;
        Ok(ProfileSnapshot { account, statuses })
    }

    async fn fetch_listed_profile_impl(
        &self,
        account: &Account,
        max_statuses: usize,
    ) -> Result<ProfileSnapshot, PlatformError> {
        if account.id.is_empty() {
            return self.fetch_profile_impl(&account.acct, max_statuses).await;
        }
        let statuses = self.recent_statuses(account, max_statuses).await?;
        Ok(ProfileSnapshot {
            account: account.clone(),
            statuses,
        })
    }

    /// Up to `max_statuses` of the account's own recent posts, newest first. Each status embeds
    /// its author, which here is always `account`: the copies are skipped while parsing (a
    /// snapshot keeps the account once; stored payloads would otherwise repeat it up to 40 times).
    async fn recent_statuses(
        &self,
        account: &Account,
        max_statuses: usize,
    ) -> Result<Vec<Status>, PlatformError> {
        let mut statuses: Vec<Status> = Vec::new();
        if max_statuses > 0 {
            let limit = (self.page_size as usize).min(max_statuses).to_string();
            let mut url = Some(self.endpoint(
                &["api", "v1", "accounts", &account.id, "statuses"],
                &[("limit", &limit), ("exclude_reblogs", "true")],
            ));
            let mut seen: HashSet<String> = HashSet::new();
            while let Some(current) = url.take() {
                let resp = self.get(current.clone(), self.read_token.as_ref()).await?;
                let page: Vec<Status> = Status::parse_own(&account.id, || resp.json())?;
                let before = statuses.len();
                for s in page {
                    if statuses.len() < max_statuses && seen.insert(s.id.clone()) {
                        statuses.push(s);
                    }
                }
                // Stop when full, at the end, or when a page brought nothing new (a server looping).
                if statuses.len() >= max_statuses || statuses.len() == before {
                    break;
                }
                url = resp
                    .link("next")
                    .map(|l| self.rebase(&l))
                    .filter(|next| *next != current);
            }
        }
        Ok(statuses)
    }

    async fn send_dm_impl(
        &self,
        token: &AccessToken,
        recipient_acct: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<SentMessage, PlatformError> {
        let recipient = normalize_handle(recipient_acct);
        if recipient.is_empty() || recipient.chars().any(char::is_whitespace) {
            return Err(PlatformError::InvalidInput(format!(
                "recipient {recipient_acct:?} is not a handle"
            )));
        }
        if idempotency_key.trim().is_empty() {
            return Err(PlatformError::InvalidInput(
                "an idempotency key is required to send safely".into(),
            ));
        }
        // A direct status reaches exactly the accounts it mentions; there is no recipient field.
        let mention = format!("@{recipient}");
        let body = body.trim_start();
        let text = if body
            .strip_prefix(&mention)
            .is_some_and(|rest| rest.starts_with(char::is_whitespace))
        {
            body.to_string()
        } else {
            format!("{mention} {body}")
        };
        let req = ApiRequest {
            method: Method::POST,
            url: self.endpoint(&["api", "v1", "statuses"], &[]),
            token: Some(token),
            json: Some(serde_json::json!({ "status": text, "visibility": "direct" })),
            idempotency_key: Some(idempotency_key),
            max_body_bytes: super::http::DEFAULT_MAX_API_BODY,
        };
        let status: Status = self.http.send(&req).await?.json()?;
        let sent = sent_message(&status);
        if !status
            .mentions
            .iter()
            .any(|m| acct_matches(&m.acct, recipient))
        {
            return Err(PlatformError::RecipientNotReached {
                recipient: recipient.to_string(),
                platform_message_id: sent.platform_message_id,
            });
        }
        Ok(sent)
    }

    async fn find_sent_impl(
        &self,
        token: &AccessToken,
        id: &str,
    ) -> Result<Option<SentMessage>, PlatformError> {
        let url = self.endpoint(&["api", "v1", "statuses", id.trim()], &[]);
        match self.get(url, Some(token)).await {
            Ok(resp) => Ok(Some(sent_message(&resp.json::<Status>()?))),
            Err(PlatformError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// With a cursor, pages forward with `min_id` (each page is the oldest `limit` mentions after
    /// it; the Link `prev` continues), so a poll cut short by `MAX_POLL_PAGES` loses nothing.
    /// Without one, pages backwards through the history via `next`, at most `MAX_POLL_PAGES` deep.
    async fn poll_replies_impl(
        &self,
        token: &AccessToken,
        since: Option<&ReplyCursor>,
    ) -> Result<ReplyPage, PlatformError> {
        let limit = self.page_size.to_string();
        let mut query = vec![("types[]", "mention"), ("limit", limit.as_str())];
        if let Some(c) = since {
            query.push(("min_id", c.as_str()));
        }
        let mut url = Some(self.endpoint(&["api", "v1", "notifications"], &query));
        let mut seen: HashSet<String> = HashSet::new();
        let mut newest: Option<String> = since.map(|c| c.0.clone());
        let mut replies = Vec::new();
        let mut pages = 0;
        while let Some(current) = url.take() {
            pages += 1;
            let resp = self.get(current.clone(), Some(token)).await?;
            let page: Vec<Notification> = resp.json()?;
            let mut fresh = 0;
            for n in page {
                // Servers that ignore `min_id` would hand back what we already have.
                let after_cursor = since.is_none_or(|c| compare_ids(&n.id, c.as_str()).is_gt());
                if n.id.is_empty() || !after_cursor || !seen.insert(n.id.clone()) {
                    continue;
                }
                fresh += 1;
                if newest
                    .as_deref()
                    .is_none_or(|cur| compare_ids(&n.id, cur).is_gt())
                {
                    newest = Some(n.id.clone());
                }
                // Servers that ignore `types[]` also send follows and favourites.
                if n.kind != NotificationKind::Mention {
                    continue;
                }
                if let Some(reply) = reply_from(n) {
                    replies.push(reply);
                }
            }
            if fresh == 0 || pages >= MAX_POLL_PAGES {
                break;
            }
            let rel = if since.is_some() { "prev" } else { "next" };
            url = resp
                .link(rel)
                .map(|l| self.rebase(&l))
                .filter(|next| *next != current);
        }
        replies.sort_by(|a, b| compare_ids(&a.platform_event_id, &b.platform_event_id));
        Ok(ReplyPage {
            replies,
            cursor: newest.map(ReplyCursor),
        })
    }

    async fn fetch_media_impl(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, PlatformError> {
        let url = Url::parse(url)
            .map_err(|e| PlatformError::InvalidInput(format!("media URL {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PlatformError::InvalidInput(format!(
                "media URL {url} is not http(s)"
            )));
        }
        let mut req = ApiRequest::get(url, None);
        req.max_body_bytes = max_bytes;
        Ok(self.http.send(&req).await?.body)
    }
}

/// Keeps the first account of each `acct` (a hashtag page often has several posts by one author).
fn dedupe(accounts: Vec<Account>) -> Vec<Account> {
    let mut seen = HashSet::new();
    accounts
        .into_iter()
        .filter(|a| !a.acct.is_empty() && seen.insert(a.acct.to_ascii_lowercase()))
        .collect()
}

fn sent_message(status: &Status) -> SentMessage {
    SentMessage {
        platform_message_id: status.id.clone(),
        created_at: status.created_at_ms().unwrap_or(0),
        recipients: status.mentions.iter().map(|m| m.acct.clone()).collect(),
    }
}

fn reply_from(n: Notification) -> Option<Reply> {
    let status = n.status?;
    let created_at = status
        .created_at_ms()
        .or_else(|| super::models::parse_timestamp(&n.created_at))
        .unwrap_or(0);
    Some(Reply {
        platform_event_id: n.id,
        from_acct: if status.account.acct.is_empty() {
            n.account.acct
        } else {
            status.account.acct.clone()
        },
        in_reply_to_id: status.in_reply_to_id.clone(),
        body_text: html_to_text(&status.content),
        visibility: status.visibility,
        status_id: status.id,
        created_at,
    })
}

impl Platform for MastodonPlatform {
    fn name(&self) -> &str {
        &self.name
    }

    fn discover<'a>(
        &'a self,
        source: &'a DiscoverySource,
        cursor: Option<&'a Cursor>,
    ) -> PlatformFuture<'a, DiscoveryPage> {
        Box::pin(self.discover_impl(source, cursor))
    }

    fn fetch_profile<'a>(
        &'a self,
        handle: &'a str,
        max_statuses: usize,
    ) -> PlatformFuture<'a, ProfileSnapshot> {
        Box::pin(self.fetch_profile_impl(handle, max_statuses))
    }

    fn fetch_listed_profile<'a>(
        &'a self,
        account: &'a Account,
        max_statuses: usize,
    ) -> PlatformFuture<'a, ProfileSnapshot> {
        Box::pin(self.fetch_listed_profile_impl(account, max_statuses))
    }

    fn send_dm<'a>(
        &'a self,
        token: &'a AccessToken,
        recipient_acct: &'a str,
        body: &'a str,
        idempotency_key: &'a str,
    ) -> PlatformFuture<'a, SentMessage> {
        Box::pin(self.send_dm_impl(token, recipient_acct, body, idempotency_key))
    }

    fn find_sent<'a>(
        &'a self,
        token: &'a AccessToken,
        platform_message_id: &'a str,
    ) -> PlatformFuture<'a, Option<SentMessage>> {
        Box::pin(self.find_sent_impl(token, platform_message_id))
    }

    fn poll_replies<'a>(
        &'a self,
        token: &'a AccessToken,
        since: Option<&'a ReplyCursor>,
    ) -> PlatformFuture<'a, ReplyPage> {
        Box::pin(self.poll_replies_impl(token, since))
    }

    fn fetch_media<'a>(&'a self, url: &'a str, max_bytes: u64) -> PlatformFuture<'a, Vec<u8>> {
        Box::pin(self.fetch_media_impl(url, max_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for state in [
            CursorState::Offset(80),
            CursorState::MaxId("103203659567597966".into()),
            CursorState::Followers {
                account_id: "1".into(),
                max_id: "55".into(),
            },
        ] {
            assert_eq!(CursorState::decode(&state.encode()).unwrap(), state);
        }
        assert!(CursorState::decode(&Cursor("offset:x".into())).is_err());
        assert!(CursorState::decode(&Cursor("nonsense".into())).is_err());
    }

    #[test]
    fn remote_and_local_accts_match_sensibly() {
        assert!(acct_matches(
            "freon@letsalllovela.in",
            "freon@letsalllovela.in"
        ));
        assert!(acct_matches("alice", "Alice@local.example"));
        assert!(!acct_matches("alice@a.example", "alice@b.example"));
        assert!(!acct_matches("bob", "alice"));
    }
}
