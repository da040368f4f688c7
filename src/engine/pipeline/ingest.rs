//! Discovery and scraping: `crawl.seed` pages a discovery source and enqueues one `scrape.profile` per
//! handle; `scrape.profile` fetches, hashes, stores images and features — or only moves `last_seen`
//! when nothing changed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::db::profiles::{self, NewVersion};
use crate::engine::pipeline::{candidates, features};
use crate::engine::platforms::{Cursor, DiscoverySource, Platform, PlatformError};
use crate::engine::queue::{JobError, JobId, NewJob};
use crate::engine::service::Ctx;
use crate::engine::worker::{JobCtx, JobResult, Registry};

/// Images kept per profile.
pub const MAX_IMAGES: usize = 3;
/// Largest image accepted, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
/// Recent posts fetched per profile.
pub const MAX_STATUSES: usize = 40;

/// The payload of `crawl.seed`: one page of a discovery source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrawlSeed {
    /// The `[[platforms]]` name.
    pub platform: String,
    /// Where to look.
    pub source: DiscoverySource,
    /// Where this page starts (None: the first page).
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// Stop after this many handles in total.
    pub limit: usize,
    /// Handles enqueued by earlier pages.
    #[serde(default)]
    pub seen: usize,
    /// Re-scrape a handle only if not seen within this many seconds.
    #[serde(default = "default_freshness")]
    pub fresh_secs: i64,
}

fn default_freshness() -> i64 {
    6 * 3600
}

/// The payload of `scrape.profile`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScrapeProfile {
    /// The `[[platforms]]` name.
    pub platform: String,
    /// The handle to fetch.
    pub handle: String,
}

/// Registers `crawl.seed` and `scrape.profile`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("crawl.seed", crawl_seed);
    registry.register("scrape.profile", scrape_profile);
}

fn platform_error(e: PlatformError) -> JobError {
    match e.retry_at() {
        Some(until) if !e.is_retryable() => JobError::Snooze {
            until,
            reason: e.to_string(),
        },
        _ if e.is_retryable() => JobError::Retryable(e.to_string()),
        _ => JobError::Permanent(e.to_string()),
    }
}

fn root_of(job: &crate::engine::queue::Job) -> JobId {
    JobId(job.root_id.unwrap_or(job.id.0))
}

/// The unique key of a scrape of `handle`.
pub fn scrape_key(platform: &str, handle: &str) -> String {
    format!(
        "{platform}:{}",
        handle.trim_start_matches('@').to_lowercase()
    )
}

async fn crawl_seed(ctx: JobCtx<Ctx>) -> JobResult {
    let p: CrawlSeed = ctx.payload()?;
    let platform = ctx.ctx.platform(&p.platform)?;
    let page = platform
        .discover(&p.source, p.cursor.as_ref())
        .await
        .map_err(platform_error)?;
    let now = ctx.ctx.clock.now_ms();
    let root = root_of(&ctx.job);
    let mut jobs = Vec::new();
    let mut skipped_fresh = 0;
    for account in page.accounts.iter().take(p.limit.saturating_sub(p.seen)) {
        let handle = account.acct.trim_start_matches('@').to_string();
        if handle.is_empty() {
            continue;
        }
        if profiles::seen_since(&ctx.ctx.db, &p.platform, &handle, now - p.fresh_secs * 1000)
            .await?
        {
            skipped_fresh += 1;
            continue;
        }
        let mut job = NewJob::new(
            "scrape.profile",
            serde_json::to_value(ScrapeProfile {
                platform: p.platform.clone(),
                handle: handle.clone(),
            })
            .unwrap_or_default(),
        )
        .unique(scrape_key(&p.platform, &handle))
        .root(root);
        if let Some(c) = ctx.job.campaign_id {
            job = job.campaign(c);
        }
        jobs.push(job);
    }
    let found = page.accounts.len().min(p.limit.saturating_sub(p.seen));
    let seen = p.seen + found;
    let next = match page.next {
        Some(cursor) if seen < p.limit && found > 0 => {
            let mut next = NewJob::new(
                "crawl.seed",
                serde_json::to_value(CrawlSeed {
                    cursor: Some(cursor),
                    seen,
                    ..p.clone()
                })
                .unwrap_or_default(),
            )
            .root(root)
            .priority(ctx.job.priority);
            if let Some(c) = ctx.job.campaign_id {
                next = next.campaign(c);
            }
            Some(next)
        }
        _ => None,
    };
    let enqueued = jobs.len();
    jobs.extend(next);
    ctx.queue.enqueue_many(&jobs).await?;
    ctx.progress(
        100,
        &format!("{found} handles, {enqueued} to scrape, {skipped_fresh} fresh"),
    )
    .await;
    Ok(Some(
        serde_json::json!({ "found": found, "enqueued": enqueued, "skipped_fresh": skipped_fresh, "seen": seen }),
    ))
}

/// What a scrape did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrapeOutcome {
    /// First time seen.
    New,
    /// Content changed.
    Changed,
    /// Same content hash: only `last_seen` moved.
    Unchanged,
}

async fn scrape_profile(ctx: JobCtx<Ctx>) -> JobResult {
    let p: ScrapeProfile = ctx.payload()?;
    let platform = ctx.ctx.platform(&p.platform)?;
    let outcome = match scrape(&ctx.ctx, platform.as_ref(), &p, Some(root_of(&ctx.job))).await {
        Ok(o) => o,
        Err(e) => {
            let _ =
                profiles::record_fetch_error(&ctx.ctx.db, &p.platform, &p.handle, &e.to_string())
                    .await;
            return Err(e);
        }
    };
    Ok(Some(serde_json::json!({ "outcome": outcome })))
}

/// Fetches one profile and stores what changed. Nothing is written unless everything needed was
/// fetched: a failure part-way leaves the database as it was. A changed profile's candidates are
/// maintained by a job in the tree `root` (see [`candidates::on_profile_changed`]).
pub async fn scrape(
    svc: &Ctx,
    platform: &dyn Platform,
    p: &ScrapeProfile,
    root: Option<JobId>,
) -> Result<ScrapeOutcome, JobError> {
    let snapshot = platform
        .fetch_profile(&p.handle, MAX_STATUSES)
        .await
        .map_err(platform_error)?;
    let hash = features::content_hash(&snapshot);
    let known = profiles::find(&svc.db, &p.platform, &snapshot.account.id).await?;
    let now = svc.clock.now_ms();
    if let Some(k) = &known {
        if k.content_hash == hash {
            profiles::touch(&svc.db, k.id, now).await?;
            return Ok(ScrapeOutcome::Unchanged);
        }
    }
    let mut image_keys = Vec::new();
    let fetch_images = svc
        .config
        .platforms
        .iter()
        .find(|c| c.name == p.platform)
        .is_none_or(|c| c.fetch_images);
    let max_images = if fetch_images { MAX_IMAGES } else { 0 };
    for url in features::image_urls(&snapshot, max_images) {
        let bytes = platform
            .fetch_media(&url, MAX_IMAGE_BYTES)
            .await
            .map_err(platform_error)?;
        let key = svc
            .storage
            .put(Bytes::from(bytes))
            .await
            .map_err(JobError::retry)?;
        if !image_keys.contains(&key) {
            image_keys.push(key);
        }
    }
    let feats = features::extract(&snapshot, image_keys, now);
    let payload = serde_json::to_string(&snapshot).map_err(JobError::permanent)?;
    let handle = snapshot.account.acct.trim_start_matches('@');
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    let id = profiles::upsert_raw(
        &mut tx,
        &NewVersion {
            platform: &p.platform,
            external_id: &snapshot.account.id,
            handle,
            payload: &payload,
            content_hash: &hash,
        },
        now,
    )
    .await?;
    profiles::upsert_features(&mut tx, id, &feats, now).await?;
    candidates::on_profile_changed(&mut tx, svc, id, root, now).await?;
    tx.commit().await.map_err(JobError::from)?;
    debug!(handle, profile = id.0, "profile stored");
    Ok(if known.is_some() {
        ScrapeOutcome::Changed
    } else {
        ScrapeOutcome::New
    })
}

/// What `omni profile HANDLE` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileDetail {
    /// The stored row and headline features.
    pub profile: profiles::ProfileRow,
    /// Display name from the payload.
    pub display_name: String,
    /// Bio as text.
    pub bio: String,
    /// Recent posts in the payload.
    pub posts: usize,
    /// Object-store keys of the kept images.
    pub image_keys: Vec<String>,
}

impl ProfileDetail {
    /// A human-readable rendering (untrusted text: the caller strips control sequences).
    pub fn render(&self) -> String {
        let p = &self.profile;
        let t = |ms: i64| crate::cli::fmt_time(Some(ms));
        let mut out = format!(
            "@{} ({})  [{}:{}]\n",
            p.handle, self.display_name, p.platform, p.external_id
        );
        out += &format!("  bio           {}\n", self.bio.replace('\n', " "));
        out += &format!("  followers     {}\n", p.followers.unwrap_or(0));
        out += &format!("  language      {}\n", p.language.as_deref().unwrap_or("-"));
        out += &format!("  posts/week    {:.2}\n", p.posts_per_week.unwrap_or(0.0));
        out += &format!(
            "  engagement    {:.3}%\n",
            p.engagement_rate.unwrap_or(0.0) * 100.0
        );
        out += &format!("  recent posts  {}\n", self.posts);
        out += &format!(
            "  images        {}\n",
            if self.image_keys.is_empty() {
                "-".to_string()
            } else {
                self.image_keys.join(", ")
            }
        );
        out += &format!("  content hash  {}\n", p.content_hash);
        out += &format!(
            "  first seen    {}\n  last seen     {}\n  last changed  {}\n",
            t(p.first_seen),
            t(p.last_seen),
            t(p.last_changed)
        );
        if let Some(e) = &p.fetch_error {
            out += &format!("  fetch error   {e}\n");
        }
        out
    }
}

/// The detail of the profile with `handle`.
pub async fn profile_detail(
    db: &crate::db::Db,
    handle: &str,
) -> Result<Option<ProfileDetail>, crate::db::DbError> {
    let Some(profile) = profiles::by_handle(db, handle).await? else {
        return Ok(None);
    };
    let (payload, image_keys) = profiles::payload(db, profile.id).await?.unwrap_or_default();
    let snap: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
    let display_name = snap["account"]["display_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bio = crate::engine::platforms::models::html_to_text(
        snap["account"]["note"].as_str().unwrap_or_default(),
    );
    let posts = snap["statuses"].as_array().map(Vec::len).unwrap_or(0);
    Ok(Some(ProfileDetail {
        profile,
        display_name,
        bio,
        posts,
        image_keys,
    }))
}
