//! Discovery and scraping: `crawl.seed` pages a discovery source; a listed account whose listing
//! fingerprint matches its last (recent) full scrape only has `last_seen` moved, the others are
//! scraped in `scrape.batch` jobs (fetched concurrently, one write transaction per batch; a profile
//! that fails is handed to its own `scrape.profile` job, unique per handle). A scrape fetches,
//! hashes, stores images and features — or only moves `last_seen` when the content hash is
//! unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::db::profiles::ProfileId;
use crate::db::profiles::{self, NewVersion};
use crate::db::Dialect;
use crate::engine::pipeline::{candidates, features};
use crate::engine::platforms::{
    Account, Cursor, DiscoverySource, Platform, PlatformConfig, PlatformError, ProfileSnapshot,
};
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

/// What `crawl.seed` enqueues as a `scrape.profile` payload: a [`ScrapeProfile`] plus the Account
/// entity the listing returned, when there was one.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScrapeJob {
    platform: String,
    handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<Account>,
}

/// Registers `crawl.seed`, `scrape.profile` and `scrape.batch`.
pub fn register(registry: &mut Registry<Ctx>) {
    registry.register("crawl.seed", crawl_seed);
    registry.register("scrape.profile", scrape_profile);
    registry.register("scrape.batch", scrape_batch);
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

/// The `[[platforms]]` entry named `name`, if configured.
fn platform_config<'a>(svc: &'a Ctx, name: &str) -> Option<&'a PlatformConfig> {
    svc.config.platforms.iter().find(|c| c.name == name)
}

async fn crawl_seed(ctx: JobCtx<Ctx>) -> JobResult {
    let p: CrawlSeed = ctx.payload()?;
    let platform = ctx.ctx.platform(&p.platform)?;
    let page = platform
        .discover(&p.source, p.cursor.as_ref())
        .await
        .map_err(platform_error)?;
    let root = root_of(&ctx.job);
    let found = page.accounts.len().min(p.limit.saturating_sub(p.seen));
    let seen = p.seen + found;
    let listed: Vec<&Account> = page
        .accounts
        .iter()
        .take(found)
        .filter(|a| !a.acct.trim_start_matches('@').is_empty())
        .collect();
    let ids: Vec<&str> = listed
        .iter()
        .map(|a| a.id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let known: HashMap<String, profiles::ListingState> =
        profiles::listing_states(&ctx.ctx.db, &p.platform, &ids)
            .await?
            .into_iter()
            .map(|k| (k.external_id.clone(), k))
            .collect();
    let now = ctx.ctx.clock.now_ms();
    let trust_ms = platform_config(&ctx.ctx, &p.platform)
        .map_or(0, |c| c.listing_trust_secs)
        .saturating_mul(1000);
    let trust_ms = i64::try_from(trust_ms).unwrap_or(i64::MAX);
    let mut to_scrape: Vec<Account> = Vec::new();
    let mut unchanged = Vec::new();
    let mut skipped_fresh = 0;
    for account in listed {
        if let Some(k) = known.get(&account.id) {
            if p.fresh_secs > 0 && k.last_seen >= now - p.fresh_secs * 1000 {
                skipped_fresh += 1;
                continue;
            }
            // The listing shows the account exactly as the last full scrape saw it, and that
            // scrape is recent: nothing a listing can show has changed, so only last_seen moves.
            let vouched = trust_ms > 0
                && k.scraped_at
                    .is_some_and(|t| t >= now.saturating_sub(trust_ms))
                && k.account_hash.as_deref() == Some(features::account_hash(account).as_str());
            if vouched {
                unchanged.push(k.id);
                continue;
            }
        }
        to_scrape.push(account.clone());
    }
    // Scrapes go in batches (one job and one write transaction for several profiles), each
    // profile falling back to its own `scrape.profile` job if it fails.
    let mut jobs: Vec<NewJob> = to_scrape
        .chunks(SCRAPE_BATCH)
        .map(|chunk| {
            let mut job = NewJob::new(
                "scrape.batch",
                serde_json::to_value(ScrapeBatch {
                    platform: p.platform.clone(),
                    accounts: chunk.to_vec(),
                })
                .unwrap_or_default(),
            )
            .root(root);
            if let Some(c) = ctx.job.campaign_id {
                job = job.campaign(c);
            }
            job
        })
        .collect();
    profiles::touch_many(&ctx.ctx.db, &unchanged, now).await?;
    let enqueued = to_scrape.len();
    if let Some(cursor) = page.next.filter(|_| seen < p.limit && found > 0) {
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
        jobs.push(next);
    }
    // One batch: the next page and this page's scrapes are enqueued together or not at all, so a
    // retry of this job never starts a second chain.
    ctx.queue.enqueue_many(&jobs).await?;
    ctx.progress(
        100,
        &format!(
            "{found} handles, {enqueued} to scrape, {} unchanged, {skipped_fresh} fresh",
            unchanged.len()
        ),
    )
    .await;
    Ok(Some(serde_json::json!({
        "found": found,
        "enqueued": enqueued,
        "unchanged": unchanged.len(),
        "skipped_fresh": skipped_fresh,
        "seen": seen,
    })))
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
    let job: ScrapeJob = ctx.payload()?;
    let platform = ctx.ctx.platform(&job.platform)?;
    let p = ScrapeProfile {
        platform: job.platform,
        handle: job.handle,
    };
    let root = Some(root_of(&ctx.job));
    let outcome = match scrape_listed(&ctx.ctx, platform.as_ref(), &p, job.account.as_ref(), root)
        .await
    {
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
/// maintained by a job in the tree `root` (see [`candidates::on_profiles_changed`]).
pub async fn scrape(
    svc: &Ctx,
    platform: &dyn Platform,
    p: &ScrapeProfile,
    root: Option<JobId>,
) -> Result<ScrapeOutcome, JobError> {
    scrape_listed(svc, platform, p, None, root).await
}

/// [`scrape`], starting from the Account entity a discovery listing returned (`listed`), which
/// saves the account lookup.
pub async fn scrape_listed(
    svc: &Ctx,
    platform: &dyn Platform,
    p: &ScrapeProfile,
    listed: Option<&Account>,
    root: Option<JobId>,
) -> Result<ScrapeOutcome, JobError> {
    let fetched = fetch(svc, platform, &p.platform, &p.handle, listed, None).await?;
    store_all(svc, &p.platform, std::slice::from_ref(&fetched), root)
        .await
        .map(|out| out[0])
}

/// Writes fetched profiles in one write transaction, then records the changed ones for candidate
/// maintenance — last, once, as [`candidates::on_profiles_changed`] requires.
async fn store_all(
    svc: &Ctx,
    platform_name: &str,
    fetched: &[Fetched],
    root: Option<JobId>,
) -> Result<Vec<ScrapeOutcome>, JobError> {
    let now = svc.clock.now_ms();
    let mut tx = svc.db.begin_write().await.map_err(JobError::from)?;
    let changed = store(&mut tx, platform_name, fetched, now).await?;
    let outcomes = fetched
        .iter()
        .map(|f| match f {
            Fetched::Unchanged { .. } => ScrapeOutcome::Unchanged,
            Fetched::Version(v) if v.known => ScrapeOutcome::Changed,
            Fetched::Version(_) => ScrapeOutcome::New,
        })
        .collect();
    candidates::on_profiles_changed(&mut tx, svc, &changed, root, now).await?;
    tx.commit().await.map_err(JobError::from)?;
    // The search index is written in bulk, once enough changed profiles wait (SQLite). Not a
    // failure of this scrape if it cannot: the profiles stay noted for the next attempt, and a
    // search matches noted profiles on their current text meanwhile.
    if !changed.is_empty() {
        if let Err(e) = profiles::index_search(&svc.db, profiles::SEARCH_BACKLOG).await {
            warn!(error = %e, "search index not caught up; will retry");
        }
    }
    Ok(outcomes)
}

/// A fetched profile, ready to be written.
#[derive(Debug)]
enum Fetched {
    /// Same content hash as stored: only `last_seen` (and the scrape time) move.
    Unchanged {
        id: ProfileId,
        external_id: String,
        account_hash: String,
    },
    /// A new profile or a new version of a known one.
    Version(Box<Version>),
}

impl Fetched {
    /// The platform's id of the account.
    fn external_id(&self) -> &str {
        match self {
            Fetched::Unchanged { external_id, .. } => external_id,
            Fetched::Version(v) => &v.external_id,
        }
    }
}

/// A new profile or a new version of a known one.
#[derive(Debug)]
struct Version {
    known: bool,
    /// The platform's id of the account.
    external_id: String,
    /// The handle (`acct`, without a leading `@`).
    handle: String,
    hash: String,
    account_hash: String,
    features: features::Features,
    /// The snapshot as stored in `profiles_raw.payload`.
    payload: String,
    fetched_at: crate::engine::clock::Millis,
}

/// Runs `f` on tokio's blocking pool: CPU work kept off the runtime's workers (the comment in
/// [`fetch`] says why).
async fn off_runtime<T, F>(f: F) -> Result<T, JobError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(JobError::permanent)
}

/// A snapshot's content hash and its account's listing fingerprint.
fn hashes_of(snapshot: &ProfileSnapshot) -> (String, String) {
    (
        features::content_hash(snapshot),
        features::account_hash(&snapshot.account),
    )
}

/// Fetches a profile (posts, and images when its content changed) and prepares what to write,
/// without writing anything. `looked_up` is what is stored of a batch's profiles, looked up
/// once for the batch (a profile absent from it is new); without it the profile is looked up
/// here.
async fn fetch(
    svc: &Ctx,
    platform: &dyn Platform,
    platform_name: &str,
    handle: &str,
    listed: Option<&Account>,
    looked_up: Option<&HashMap<String, profiles::Known>>,
) -> Result<Fetched, JobError> {
    let snapshot = match listed {
        Some(account) => platform.fetch_listed_profile(account, MAX_STATUSES).await,
        None => platform.fetch_profile(handle, MAX_STATUSES).await,
    }
    .map_err(platform_error)?;
    // CPU work (canonical JSON, hashing, feature extraction, the stored payload) runs on the
    // blocking pool, not on the runtime's workers: a job holding the SQLite writer resumes on
    // those workers after every statement, and a worker busy with a long synchronous poll here
    // would keep the writer idle meanwhile.
    // The batch looked profiles up by their listed ids; one fetched under another id (a listing
    // without ids) is looked up here.
    let known = match looked_up {
        Some(stored) if listed.is_some_and(|a| a.id == snapshot.account.id) => {
            stored.get(&snapshot.account.id).cloned()
        }
        _ => profiles::find(&svc.db, platform_name, &snapshot.account.id).await?,
    };
    // A known profile is hashed first: when its content is unchanged, nothing else is done. A new
    // one is hashed with its features below, in one trip to the blocking pool.
    let (snapshot, hashes) = match &known {
        Some(k) => {
            let (snapshot, (hash, account_hash)) = off_runtime(move || {
                let hashes = hashes_of(&snapshot);
                (snapshot, hashes)
            })
            .await?;
            if k.content_hash == hash {
                return Ok(Fetched::Unchanged {
                    id: k.id,
                    external_id: snapshot.account.id.clone(),
                    account_hash,
                });
            }
            (snapshot, Some((hash, account_hash)))
        }
        None => (snapshot, None),
    };
    let fetch_images = platform_config(svc, platform_name).is_none_or(|c| c.fetch_images);
    let max_images = if fetch_images { MAX_IMAGES } else { 0 };
    // The images are independent requests: fetch and store them concurrently.
    let stored =
        futures::future::join_all(features::image_urls(&snapshot, max_images).into_iter().map(
            |url| async move {
                let bytes = platform
                    .fetch_media(&url, MAX_IMAGE_BYTES)
                    .await
                    .map_err(platform_error)?;
                svc.storage
                    .put(Bytes::from(bytes))
                    .await
                    .map_err(JobError::retry)
            },
        ))
        .await;
    let mut image_keys = Vec::new();
    for key in stored {
        let key = key?;
        if !image_keys.contains(&key) {
            image_keys.push(key);
        }
    }
    let now = svc.clock.now_ms();
    // The parsed snapshot is dropped here: a batch keeps only what it writes (the payload, the
    // features, the keys) while it waits for its write transaction, which holds the peak memory
    // of an ingest down (BENCHMARKS.md §2).
    let (features, payload, (external_id, handle), (hash, account_hash)) = off_runtime(move || {
        let hashes = hashes.unwrap_or_else(|| hashes_of(&snapshot));
        let features = features::extract(&snapshot, image_keys, now);
        let payload = serde_json::to_string(&snapshot);
        let a = snapshot.account;
        let handle = a.acct.trim_start_matches('@').to_string();
        (features, payload, (a.id, handle), hashes)
    })
    .await?;
    Ok(Fetched::Version(Box::new(Version {
        known: known.is_some(),
        features,
        payload: payload.map_err(JobError::permanent)?,
        external_id,
        handle,
        hash,
        account_hash,
        fetched_at: now,
    })))
}

/// Writes fetched profiles inside the caller's write transaction: unchanged ones only move
/// `last_seen`; new versions go in with one multi-row statement per table (a transaction holding
/// the SQLite writer should take as few round trips as it can: each one waits for a runtime
/// worker to resume it). Returns the ids of the profiles whose content changed, for candidate
/// maintenance (which the caller records).
async fn store(
    tx: &mut sqlx::AnyConnection,
    platform_name: &str,
    fetched: &[Fetched],
    now: crate::engine::clock::Millis,
) -> Result<Vec<ProfileId>, JobError> {
    // PostgreSQL: lock the batch's existing rows up front, in one statement and in key order, so
    // two batches sharing profiles take their row locks in the same order whatever each found
    // changed (the touches and the upsert below would otherwise lock in two separate passes).
    // SQLite has one writer and needs no row locks.
    if Dialect::of(tx) == Dialect::Postgres && !fetched.is_empty() {
        let mut ids: Vec<&str> = fetched.iter().map(Fetched::external_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let sql = profiles::by_external_ids(Dialect::Postgres, "id", ids.len(), true);
        let mut q = sqlx::query(&sql).bind(platform_name);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(&mut *tx).await.map_err(JobError::from)?;
    }
    // One version per account: a listing can name an account twice, and PostgreSQL refuses to
    // upsert one row twice in a statement. The last one fetched wins.
    let mut versions: Vec<&Version> = Vec::new();
    for f in fetched {
        match f {
            Fetched::Unchanged {
                id, account_hash, ..
            } => profiles::touch(&mut *tx, *id, account_hash, now).await?,
            Fetched::Version(v) => {
                match versions.iter_mut().find(|w| w.external_id == v.external_id) {
                    Some(w) => *w = v,
                    None => versions.push(v),
                }
            }
        }
    }
    let new: Vec<NewVersion<'_>> = versions
        .iter()
        .map(|v| NewVersion {
            platform: platform_name,
            external_id: &v.external_id,
            handle: &v.handle,
            payload: &v.payload,
            content_hash: &v.hash,
            account_hash: &v.account_hash,
        })
        .collect();
    let with_times: Vec<_> = new
        .iter()
        .zip(&versions)
        .map(|(n, v)| (n, v.fetched_at))
        .collect();
    let ids = profiles::upsert_raw_many(&mut *tx, &with_times).await?;
    let features: Vec<_> = ids
        .iter()
        .zip(&versions)
        .map(|(id, v)| (*id, &v.features, v.fetched_at))
        .collect();
    profiles::upsert_features_many(&mut *tx, &features).await?;
    debug!(profiles = ids.len(), "profiles stored");
    // Distinct: one version per account above.
    Ok(ids)
}

/// The payload of `scrape.batch`: accounts one listing page found new or changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrapeBatch {
    /// The `[[platforms]]` name.
    pub platform: String,
    /// The Account entities as listed.
    pub accounts: Vec<Account>,
}

/// Profiles per `scrape.batch` job: a whole listing page (40 accounts by default, 80 at most on
/// Mastodon's directory) is one batch and one write transaction. Fewer, larger transactions cost
/// less per profile: 80 rather than 20 per batch took new profiles from ≈ 830 to ≈ 950 per second
/// in the ingest bench (BENCHMARKS.md §2).
pub const SCRAPE_BATCH: usize = 80;

/// Profiles a `scrape.batch` job fetches at the same time.
const BATCH_CONCURRENCY: usize = 8;

/// Scrapes a batch of listed accounts: fetched concurrently, written in one transaction. One
/// profile failing does not hold up the others: it is handed to its own `scrape.profile` job
/// (with that job's retries, backoff and rate-limit snoozes) and the rest are stored.
async fn scrape_batch(ctx: JobCtx<Ctx>) -> JobResult {
    use futures::StreamExt;
    let p: ScrapeBatch = ctx.payload()?;
    let svc = &ctx.ctx;
    let root = root_of(&ctx.job);
    let platform = svc.platform(&p.platform)?;
    // What is stored of the batch's profiles, in one query rather than one per profile.
    let ids: Vec<&str> = p.accounts.iter().map(|a| a.id.as_str()).collect();
    let stored = Arc::new(profiles::find_many(&svc.db, &p.platform, &ids).await?);
    // Each fetch owns its inputs: borrowed ones trip the compiler's higher-ranked lifetime
    // inference for `buffer_unordered` futures that must be Send.
    let results: Vec<(usize, Result<Fetched, JobError>)> =
        futures::stream::iter(p.accounts.clone().into_iter().enumerate())
            .map(|(i, a)| {
                let (svc, platform, name) = (svc.clone(), platform.clone(), p.platform.clone());
                let stored = stored.clone();
                async move {
                    let r = fetch(
                        &svc,
                        platform.as_ref(),
                        &name,
                        &a.acct,
                        Some(&a),
                        Some(&stored),
                    )
                    .await;
                    (i, r)
                }
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut fetched: Vec<(usize, Fetched)> = Vec::new();
    for (i, r) in results {
        match r {
            Ok(f) => fetched.push((i, f)),
            Err(e) => failed.push((i, e.to_string())),
        }
    }
    // Written in the order of the platform's account ids, so two batches that share profiles
    // lock their rows in the same order and cannot deadlock each other.
    fetched.sort_by(|(_, a), (_, b)| a.external_id().cmp(b.external_id()));
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let (indexes, fetched): (Vec<usize>, Vec<Fetched>) = fetched.into_iter().unzip();
    match store_all(svc, &p.platform, &fetched, Some(root)).await {
        Ok(out) => {
            for o in out {
                *outcomes.entry(outcome_name(o)).or_default() += 1;
            }
        }
        Err(e) => {
            // One bad row must not lose the batch: write each profile on its own and hand the
            // ones that still fail to their own jobs.
            debug!(error = %e, "batch write failed; writing profiles one by one");
            for (i, f) in indexes.iter().zip(&fetched) {
                match store_all(svc, &p.platform, std::slice::from_ref(f), Some(root)).await {
                    Ok(o) => *outcomes.entry(outcome_name(o[0])).or_default() += 1,
                    Err(e) => failed.push((*i, e.to_string())),
                }
            }
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    let retries: Vec<NewJob> = failed
        .iter()
        .map(|(i, _)| {
            let a = &p.accounts[*i];
            let handle = a.acct.trim_start_matches('@').to_string();
            let mut job = NewJob::new(
                "scrape.profile",
                serde_json::to_value(ScrapeJob {
                    platform: p.platform.clone(),
                    handle: handle.clone(),
                    account: Some(a.clone()),
                })
                .unwrap_or_default(),
            )
            .unique(scrape_key(&p.platform, &handle))
            .root(root);
            if let Some(c) = ctx.job.campaign_id {
                job = job.campaign(c);
            }
            job
        })
        .collect();
    ctx.queue.enqueue_many(&retries).await?;
    Ok(Some(serde_json::json!({
        "outcomes": outcomes,
        "handed_off": failed
            .iter()
            .map(|(i, e)| serde_json::json!({ "handle": p.accounts[*i].acct, "error": e }))
            .collect::<Vec<_>>(),
    })))
}

fn outcome_name(o: ScrapeOutcome) -> &'static str {
    match o {
        ScrapeOutcome::New => "new",
        ScrapeOutcome::Changed => "changed",
        ScrapeOutcome::Unchanged => "unchanged",
    }
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
