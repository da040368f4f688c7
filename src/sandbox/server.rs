//! The sandbox's HTTP routes: the Mastodon API subset, media files, admin routes and the judge.
//!
//! Every response carries `X-RateLimit-*` headers; API routes (`/api/…`) are rate limited and
//! subject to injected latency, errors and malformed bodies. Errors are always JSON
//! `{"error": "…"}` as in Mastodon; bad input never panics.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};

use super::entities::{fmt_ms, Author, MediaSize, PostRef, StatusJson, View};
use super::images::{self, ImageKind};
use super::live::{day_of, NewStatus, Visibility};
use super::paging::{link_header, Cursor, Params};
use super::rng::{hash_ints, stream};
use super::vocab::NICHES;
use super::world::{id_ceiling, AccountIdx, Truth, DYNAMIC_FLAG};
use super::{judge, Sandbox};

/// A JSON error answer (`{"error": "…"}`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Record not found")
    }

    fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "The access token is invalid")
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({ "error": self.message }))
    }
}

type ApiResult = Result<Response, ApiError>;

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"Internal server error"}"#,
        )
            .into_response(),
    }
}

fn ok<T: Serialize>(value: &T) -> ApiResult {
    Ok(json_response(StatusCode::OK, value))
}

/// A page of items with its `Link` header (omitted when the page is empty).
fn paged<T: Serialize>(
    base: &str,
    path: &str,
    before: &[(String, String)],
    after: &[(String, String)],
    ids: &[u64],
    items: &[T],
) -> Response {
    let mut resp = json_response(StatusCode::OK, &items);
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        if let Ok(v) = HeaderValue::from_str(&link_header(base, path, before, after, *first, *last))
        {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// The Mastodon-compatible router over `state`.
pub fn router(state: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/api/v1/accounts/lookup", get(account_lookup))
        .route(
            "/api/v1/accounts/verify_credentials",
            get(verify_credentials),
        )
        .route("/api/v1/accounts/{id}", get(account_get))
        .route("/api/v1/accounts/{id}/statuses", get(account_statuses))
        .route("/api/v1/accounts/{id}/followers", get(account_followers))
        .route("/api/v2/search", get(search))
        .route("/api/v1/timelines/tag/{tag}", get(tag_timeline))
        .route("/api/v1/directory", get(directory))
        .route("/api/v1/statuses", post(post_status))
        .route("/api/v1/statuses/{id}", get(status_get))
        .route("/api/v1/notifications", get(notifications))
        .route("/system/accounts/avatars/{id}/{file}", get(avatar_file))
        .route("/system/accounts/headers/{id}/{file}", get(header_file))
        .route("/system/media_attachments/{id}/{k}/{file}", get(media_file))
        .route("/_sandbox/truth/{id}", get(admin_truth))
        .route("/_sandbox/sent", get(admin_sent))
        .route("/_sandbox/advance", post(admin_advance))
        .route("/_sandbox/stats", get(admin_stats))
        .route("/_sandbox/fail_next", post(admin_fail_next))
        .route("/_sandbox/handles", get(admin_handles))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Rate limiting, fault injection and rate-limit headers for every request.
async fn guard(State(sb): State<Arc<Sandbox>>, req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let key = match bearer(req.headers()) {
        Some(token) => format!("token:{token}"),
        None => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
            None => "ip:unknown".to_string(),
        },
    };
    if is_api {
        sb.counters.api_requests.fetch_add(1, Ordering::Relaxed);
    }
    let (limit, remaining, reset_ms, over) = sb.rate_check(&key, is_api);
    let mut resp = if over {
        sb.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response()
    } else if is_api {
        if sb.opts.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(sb.opts.latency_ms)).await;
        }
        if sb.take_fail_next() {
            sb.counters.malformed.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                Body::from(r#"{"id":"1","username":"#),
            )
                .into_response()
        } else if let Some(unavailable) = sb.inject_error() {
            sb.counters.injected_errors.fetch_add(1, Ordering::Relaxed);
            if unavailable {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable",
                )
                .into_response()
            } else {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                    .into_response()
            }
        } else {
            next.run(req).await
        }
    } else {
        next.run(req).await
    };
    let reset = chrono::DateTime::from_timestamp_millis(reset_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default();
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

fn params(q: &Option<String>) -> Params {
    Params::parse(q.as_deref())
}

fn account_idx(sb: &Sandbox, raw: &str) -> Result<AccountIdx, ApiError> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .and_then(AccountIdx::from_id)
        .filter(|i| sb.world.exists(*i))
        .ok_or_else(ApiError::not_found)
}

fn sender_of(sb: &Sandbox, headers: &HeaderMap) -> Result<AccountIdx, ApiError> {
    bearer(headers)
        .and_then(|t| sb.world.sender_by_token(t))
        .ok_or_else(ApiError::invalid_token)
}

async fn account_lookup(State(sb): State<Arc<Sandbox>>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(&q);
    let acct = p.get("acct").unwrap_or_default();
    let idx = sb.world.lookup(acct).ok_or_else(ApiError::not_found)?;
    ok(&sb.with_view(|v| v.account(idx)))
}

async fn verify_credentials(State(sb): State<Arc<Sandbox>>, headers: HeaderMap) -> ApiResult {
    let idx = sender_of(&sb, &headers)?;
    ok(&sb.with_view(|v| v.account(idx)))
}

async fn account_get(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> ApiResult {
    let idx = account_idx(&sb, &id)?;
    ok(&sb.with_view(|v| v.account(idx)))
}

async fn account_statuses(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let idx = account_idx(&sb, &id)?;
    let p = params(&q);
    let cursor = Cursor::from_params(&p, 20, 40).map_err(ApiError::bad_request)?;
    let only_media = p.flag("only_media");
    let tagged = p
        .get("tagged")
        .map(|t| sb.world.tag_id(t.trim_start_matches('#')));
    let path = format!("/api/v1/accounts/{id}/statuses");
    let before = p.carry(&[
        "limit",
        "only_media",
        "exclude_replies",
        "exclude_reblogs",
        "tagged",
    ]);
    Ok(sb.with_view(|v| {
        let Some(profile) = v.world.profile(idx) else {
            return paged::<StatusJson>(&sb.base_url, &path, &before, &[], &[], &[]);
        };
        let posts = if p.flag("pinned") || matches!(tagged, Some(None)) {
            Vec::new()
        } else {
            v.post_ids(profile)
        };
        let ids: Vec<u64> = posts.iter().map(|(id, _)| *id).collect();
        let meta_of = |id: u64| {
            posts
                .binary_search_by_key(&id, |(i, _)| *i)
                .ok()
                .map(|k| posts[k].1)
        };
        let page = cursor.page(&ids, id_ceiling(v.now), |id| {
            meta_of(id).is_some_and(|m| {
                (!only_media || m.media > 0)
                    && tagged.flatten().is_none_or(|t| m.tag_ids().contains(&t))
            })
        });
        // Rendered once for the page: up to 40 statuses embed the same author.
        let author = Author::shared(v.account(idx));
        let items: Vec<StatusJson> = page
            .iter()
            .filter_map(|id| meta_of(*id))
            .map(|meta| v.post_status_by(&PostRef { profile, meta }, author.clone()))
            .collect();
        paged(&sb.base_url, &path, &before, &[], &page, &items)
    }))
}

async fn account_followers(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let idx = account_idx(&sb, &id)?;
    let p = params(&q);
    let cursor = Cursor::from_params(&p, 40, 80).map_err(ApiError::bad_request)?;
    let path = format!("/api/v1/accounts/{id}/followers");
    let before = p.carry(&["limit"]);
    Ok(sb.with_view(|v| {
        let mut ids: Vec<u64> = v
            .world
            .profile(idx)
            .map(|pr| v.world.followers(pr))
            .unwrap_or_default()
            .iter()
            .map(|a| a.id())
            .collect();
        ids.sort_unstable();
        let page = cursor.page(&ids, u64::MAX, |_| true);
        let items: Vec<_> = page
            .iter()
            .filter_map(|id| AccountIdx::from_id(*id))
            .map(|a| v.account(a))
            .collect();
        paged(&sb.base_url, &path, &before, &[], &page, &items)
    }))
}

fn offset_limit(p: &Params, default: usize, max: usize) -> Result<(usize, usize), ApiError> {
    let offset = p.u64("offset").map_err(ApiError::bad_request)?.unwrap_or(0) as usize;
    Ok((offset, p.limit(default, max)))
}

async fn search(State(sb): State<Arc<Sandbox>>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(&q);
    let (offset, limit) = offset_limit(&p, 20, 40)?;
    let kind = p.get("type").unwrap_or("");
    let query = p.get("q").unwrap_or("").trim().to_lowercase();
    let want_accounts = kind.is_empty() || kind == "accounts";
    let want_tags = kind.is_empty() || kind == "hashtags";
    Ok(sb.with_view(|v| {
        let mut accounts = Vec::new();
        let mut hashtags = Vec::new();
        if !query.is_empty() && want_accounts {
            accounts = search_accounts(v, &query)
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|a| v.account(a))
                .collect();
        }
        if !query.is_empty() && want_tags {
            let term = query.trim_start_matches('#');
            let mut found: Vec<&str> = v
                .world
                .tags
                .iter()
                .copied()
                .filter(|t| !term.is_empty() && t.contains(term))
                .collect();
            found.sort_by_key(|t| (!t.starts_with(term), *t));
            hashtags = found
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|t| json!({"name": t, "url": format!("{}/tags/{}", v.base, t), "history": []}))
                .collect();
        }
        json_response(
            StatusCode::OK,
            &json!({"accounts": accounts, "statuses": [], "hashtags": hashtags}),
        )
    }))
}

/// Matching profiles for a lower-case query, best first: exact username, then username prefix,
/// then display name, then bio/niche matches; ties by audience size then id.
fn search_accounts(v: &View<'_>, query: &str) -> Vec<AccountIdx> {
    let q = query.trim_start_matches('@');
    if q.contains('@') {
        return v
            .world
            .lookup(q)
            .filter(|a| v.world.profile(*a).is_some())
            .into_iter()
            .collect();
    }
    let terms: Vec<&str> = q
        .split_whitespace()
        .map(|t| t.trim_start_matches('#'))
        .filter(|t| !t.is_empty())
        .collect();
    if terms.is_empty() {
        return Vec::new();
    }
    let mut hits: Vec<(u8, u64, AccountIdx)> = Vec::new();
    for p in &v.world.profiles {
        let edited;
        let hay = if v.live.bio_version(p.idx, v.now).is_some() {
            edited = v.world.haystack(p, &v.bio(p));
            &edited
        } else {
            &p.haystack
        };
        if !terms.iter().all(|t| hay.contains(t)) {
            continue;
        }
        let rank = if p.username == q {
            3
        } else if terms.iter().any(|t| p.username.starts_with(t)) {
            2
        } else if terms
            .iter()
            .any(|t| p.display_name.to_lowercase().contains(t))
        {
            1
        } else {
            0
        };
        hits.push((rank, p.followers, p.idx));
    }
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    hits.into_iter().map(|h| h.2).collect()
}

async fn tag_timeline(
    State(sb): State<Arc<Sandbox>>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = params(&q);
    let cursor = Cursor::from_params(&p, 20, 40).map_err(ApiError::bad_request)?;
    let only_media = p.flag("only_media");
    let path = format!("/api/v1/timelines/tag/{tag}");
    let before = p.carry(&["local", "limit", "only_media"]);
    let tag_id = sb.world.tag_id(tag.trim_start_matches('#'));
    Ok(sb.with_view(|v| {
        let Some(t) = tag_id else {
            return paged::<StatusJson>(&sb.base_url, &path, &before, &[], &[], &[]);
        };
        // Change posts are all newer than generated ones, so the concatenation stays ascending.
        let mut ids = v.world.tag_posts(t).to_vec();
        ids.extend_from_slice(v.live.change_tag_posts(t));
        let mut found: Vec<(u64, PostRef<'_>)> = Vec::new();
        let page = cursor.page(&ids, id_ceiling(v.now), |id| match v.find_post(id) {
            Some(post) if !only_media || post.meta.media > 0 => {
                found.push((id, post));
                true
            }
            _ => false,
        });
        let items: Vec<StatusJson> = page
            .iter()
            .filter_map(|id| found.iter().find(|(i, _)| i == id))
            .map(|(_, post)| v.post_status(post))
            .collect();
        paged(&sb.base_url, &path, &before, &[], &page, &items)
    }))
}

async fn directory(State(sb): State<Arc<Sandbox>>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(&q);
    let (offset, limit) = offset_limit(&p, 40, 80)?;
    let order = p.get("order").unwrap_or("active");
    if order != "active" && order != "new" {
        return Err(ApiError::bad_request("order must be active or new"));
    }
    Ok(sb.with_view(|v| {
        let rows = sb.directory_order(v, order);
        let items: Vec<_> = rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(|a| v.account(*a))
            .collect();
        json_response(StatusCode::OK, &items)
    }))
}

/// Fields of a create-status request, from a JSON or form body.
struct StatusForm {
    status: Option<String>,
    visibility: Option<String>,
    language: Option<String>,
    in_reply_to_id: Option<String>,
    spoiler_text: Option<String>,
    sensitive: bool,
}

fn read_status_form(headers: &HeaderMap, body: &[u8]) -> Result<StatusForm, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json")
        || (content_type.is_empty() && body.first() == Some(&b'{'))
    {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let sensitive = matches!(v.get("sensitive"), Some(Value::Bool(true)))
            || matches!(
                v.get("sensitive").and_then(Value::as_str),
                Some("true" | "1")
            );
        Ok(StatusForm {
            status: text("status"),
            visibility: text("visibility"),
            language: text("language"),
            in_reply_to_id: text("in_reply_to_id"),
            spoiler_text: text("spoiler_text"),
            sensitive,
        })
    } else {
        let f = Params::parse_form(body);
        let text = |k: &str| f.get(k).map(str::to_string);
        Ok(StatusForm {
            status: text("status"),
            visibility: text("visibility"),
            language: text("language"),
            in_reply_to_id: text("in_reply_to_id"),
            spoiler_text: text("spoiler_text"),
            sensitive: f.flag("sensitive"),
        })
    }
}

async fn post_status(State(sb): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let sender = sender_of(&sb, &headers)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    if let Some(key) = &key {
        if let Some(existing) = sb.with_view(|v| {
            v.live
                .idempotent(sender, key)
                .and_then(|id| v.live.status(id, i64::MAX).map(|s| v.live_status(s)))
        }) {
            return ok(&existing);
        }
    }
    let form = read_status_form(&headers, &body)?;
    let text = form.status.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "Validation failed: Text can't be blank",
        ));
    }
    if text.chars().count() > 500 {
        return Err(ApiError::unprocessable(
            "Validation failed: Text character limit of 500 exceeded",
        ));
    }
    let visibility = match form
        .visibility
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Visibility::Public,
        Some(s) => Visibility::parse(s).ok_or_else(|| {
            ApiError::unprocessable("Validation failed: Visibility is not included in the list")
        })?,
    };
    let in_reply_to = match form
        .in_reply_to_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => {
            let id = raw.parse::<u64>().map_err(|_| ApiError::not_found())?;
            let author = sb.with_view(|v| {
                if id & DYNAMIC_FLAG != 0 {
                    v.live
                        .status(id, v.now)
                        .filter(|s| s.author == sender || s.mentions.contains(&sender))
                        .map(|s| s.author)
                } else {
                    v.find_post(id).map(|p| p.profile.idx)
                }
            });
            Some((id, author.ok_or_else(ApiError::not_found)?))
        }
    };
    let new = NewStatus {
        text,
        visibility,
        language: form.language.filter(|l| !l.trim().is_empty()),
        in_reply_to,
        spoiler_text: form.spoiler_text.unwrap_or_default(),
        sensitive: form.sensitive,
        idempotency_key: key.clone(),
    };
    let cfg = sb.reply_config();
    let status = sb.with_live(|live, now| {
        // Checked again under the lock so two concurrent retries with one key store one status.
        let id = match key.as_deref().and_then(|k| live.idempotent(sender, k)) {
            Some(id) => id,
            None => live.receive(&sb.world, &cfg, sender, new, now),
        };
        let view = View {
            world: &sb.world,
            live,
            base: &sb.base_url,
            now,
        };
        live.status(id, i64::MAX).map(|s| view.live_status(s))
    });
    status.map_or_else(|| Err(ApiError::not_found()), |s| ok(&s))
}

async fn status_get(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let id: u64 = id.trim().parse().map_err(|_| ApiError::not_found())?;
    let viewer = bearer(&headers).and_then(|t| sb.world.sender_by_token(t));
    let status = sb.with_view(|v| {
        if id & DYNAMIC_FLAG != 0 {
            let s = v.live.status(id, v.now)?;
            let visible = s.visibility != Visibility::Direct
                || viewer.is_some_and(|me| s.author == me || s.mentions.contains(&me));
            visible.then(|| v.live_status(s))
        } else {
            v.find_post(id).map(|post| v.post_status(&post))
        }
    });
    status.map_or_else(|| Err(ApiError::not_found()), |s| ok(&s))
}

async fn notifications(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let me = sender_of(&sb, &headers)?;
    let p = params(&q);
    let cursor = Cursor::from_params(&p, 40, 80).map_err(ApiError::bad_request)?;
    let types = p.all("types[]");
    let excluded = p.all("exclude_types[]");
    let wants_mentions =
        (types.is_empty() || types.contains(&"mention")) && !excluded.contains(&"mention");
    let from = match p.get("account_id") {
        Some(raw) => Some(account_idx(&sb, raw)?),
        None => None,
    };
    let after = p.carry(&["types[]", "exclude_types[]", "account_id"]);
    Ok(sb.with_view(|v| {
        let ids = if wants_mentions {
            v.live.notification_ids(me, v.now)
        } else {
            Vec::new()
        };
        let page = cursor.page(&ids, id_ceiling(v.now), |id| {
            from.is_none_or(|a| v.live.status(id, v.now).is_some_and(|s| s.author == a))
        });
        let items: Vec<_> = page
            .iter()
            .filter_map(|id| v.live.status(*id, v.now))
            .map(|s| v.notification(s))
            .collect();
        paged(
            &sb.base_url,
            "/api/v1/notifications",
            &[],
            &after,
            &page,
            &items,
        )
    }))
}

fn image_response(kind: ImageKind, bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind.mime()),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response()
}

fn split_file(file: &str) -> Option<(&str, ImageKind)> {
    let (stem, ext) = file.rsplit_once('.')?;
    Some((stem, ImageKind::from_ext(ext)?))
}

const SENDER_PALETTE: &[[u8; 3]] = &[[120, 120, 140], [200, 200, 210]];

fn palette_of(sb: &Sandbox, idx: AccountIdx) -> &'static [[u8; 3]] {
    sb.world
        .profile(idx)
        .map_or(SENDER_PALETTE, |p| NICHES[usize::from(p.niche)].palette)
}

async fn avatar_file(
    State(sb): State<Arc<Sandbox>>,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult {
    let idx = account_idx(&sb, &id)?;
    match split_file(&file) {
        Some(("original", ImageKind::Png)) => {
            let key = hash_ints(&[sb.world.seed, stream::IMAGE, 1, u64::from(idx.0)]);
            Ok(image_response(
                ImageKind::Png,
                images::render(key, palette_of(&sb, idx), 64, 64, ImageKind::Png),
            ))
        }
        _ => Err(ApiError::not_found()),
    }
}

async fn header_file(
    State(sb): State<Arc<Sandbox>>,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult {
    let idx = account_idx(&sb, &id)?;
    match split_file(&file) {
        Some(("original", ImageKind::Jpeg)) => {
            let key = hash_ints(&[sb.world.seed, stream::IMAGE, 2, u64::from(idx.0)]);
            Ok(image_response(
                ImageKind::Jpeg,
                images::render(key, palette_of(&sb, idx), 192, 64, ImageKind::Jpeg),
            ))
        }
        _ => Err(ApiError::not_found()),
    }
}

async fn media_file(
    State(sb): State<Arc<Sandbox>>,
    Path((id, k, file)): Path<(String, String, String)>,
) -> ApiResult {
    let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    let k: usize = k.parse().map_err(|_| ApiError::not_found())?;
    let (stem, kind) = split_file(&file).ok_or_else(ApiError::not_found)?;
    let size = match stem {
        "original" => MediaSize::Original,
        "small" => MediaSize::Small,
        _ => return Err(ApiError::not_found()),
    };
    let found = sb.with_view(|v| {
        let post = v.find_post(id)?;
        let body = v.world.post_body(post.profile, &post.meta);
        let png = *body.media_png.get(k)?;
        Some((post.meta.key, post.meta.niche, png))
    });
    let (key, niche, png) = found.ok_or_else(ApiError::not_found)?;
    if png != (kind == ImageKind::Png) {
        return Err(ApiError::not_found());
    }
    let key = hash_ints(&[key, k as u64]);
    let edge = size.edge();
    Ok(image_response(
        kind,
        images::render(key, NICHES[usize::from(niche)].palette, edge, edge, kind),
    ))
}

/// The hidden truth of one profile (`/_sandbox/truth/:id`).
#[derive(Debug, Serialize)]
struct TruthJson<'a> {
    id: String,
    handle: &'a str,
    acct: &'a str,
    language: &'a str,
    bot: bool,
    followers_count: u64,
    has_email: bool,
    #[serde(flatten)]
    truth: &'a Truth,
}

async fn admin_truth(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> ApiResult {
    let idx = account_idx(&sb, &id)
        .ok()
        .or_else(|| sb.world.lookup(&id))
        .ok_or_else(ApiError::not_found)?;
    let p = sb.world.profile(idx).ok_or_else(ApiError::not_found)?;
    let has_email = sb.with_view(|v| v.bio(p).email.is_some());
    ok(&TruthJson {
        id: idx.id().to_string(),
        handle: &p.username,
        acct: &p.username,
        language: p.lang,
        bot: p.bot,
        followers_count: p.followers,
        has_email,
        truth: &p.truth,
    })
}

async fn admin_sent(State(sb): State<Arc<Sandbox>>) -> ApiResult {
    Ok(sb.with_view(|v| json_response(StatusCode::OK, &v.live.sent())))
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

async fn admin_advance(State(sb): State<Arc<Sandbox>>, body: Bytes) -> ApiResult {
    let v = json_body(&body)?;
    let secs = v
        .get("seconds")
        .and_then(Value::as_f64)
        .ok_or_else(|| ApiError::unprocessable("body must be {\"seconds\": N}"))?;
    if !secs.is_finite() || !(0.0..=1e10).contains(&secs) {
        return Err(ApiError::unprocessable(
            "seconds must be a non-negative number",
        ));
    }
    if !sb.advance_ms((secs * 1000.0) as i64) {
        return Err(ApiError::unprocessable(
            "cannot advance past 2039: snowflake ids would overflow",
        ));
    }
    let now = sb.now_ms();
    ok(
        &json!({"now": fmt_ms(now), "offset_seconds": sb.clock.offset_ms() / 1000, "day": day_of(&sb.world, now)}),
    )
}

async fn admin_stats(State(sb): State<Arc<Sandbox>>) -> ApiResult {
    let now = sb.now_ms();
    let (received, planned, visible, changes) = sb.with_live(|live, now| live.counters(now));
    let c = &sb.counters;
    ok(&json!({
        "seed": sb.opts.seed,
        "profiles": sb.world.n_profiles(),
        "senders": sb.world.senders.len(),
        "now": fmt_ms(now),
        "offset_seconds": sb.clock.offset_ms() / 1000,
        "day": day_of(&sb.world, now),
        "api_requests": c.api_requests.load(Ordering::Relaxed),
        "rate_limited": c.rate_limited.load(Ordering::Relaxed),
        "injected_errors": c.injected_errors.load(Ordering::Relaxed),
        "malformed": c.malformed.load(Ordering::Relaxed),
        "judge_calls": c.judge_calls.load(Ordering::Relaxed),
        "statuses_received": received,
        "replies_planned": planned,
        "replies_visible": visible,
        "profile_changes": changes,
    }))
}

async fn admin_fail_next(State(sb): State<Arc<Sandbox>>, body: Bytes) -> ApiResult {
    let v = json_body(&body)?;
    let n = match v.get("count") {
        None => 1,
        Some(c) => c
            .as_u64()
            .ok_or_else(|| ApiError::unprocessable("count must be a non-negative integer"))?,
    };
    sb.fail_next(n);
    ok(&json!({ "fail_next": n }))
}

async fn admin_handles(State(sb): State<Arc<Sandbox>>) -> ApiResult {
    let handles: Vec<&str> = sb
        .world
        .profiles
        .iter()
        .map(|p| p.username.as_str())
        .collect();
    ok(&handles)
}

async fn chat_completions(State(sb): State<Arc<Sandbox>>, body: Bytes) -> Response {
    sb.counters.judge_calls.fetch_add(1, Ordering::Relaxed);
    let openai_error = |message: String| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
        )
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return openai_error(format!(
                "We could not parse the JSON body of your request: {e}"
            ))
        }
    };
    match judge::completion(&sb.world, sb.now_ms(), &request) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(judge::BadRequest(message)) => openai_error(message),
    }
}
