//! The simulated Mastodon-compatible platform (`omni sandbox`, `omni demo`, tests).
//!
//! A deterministic world of creators generated from a seed ([`world`]), served over the subset
//! of the Mastodon client API the engine's adapter uses ([`server`]), with senders whose direct
//! messages get answered later by a hidden reply model ([`live`]), fault injection, test-only
//! admin routes under `/_sandbox/`, and a simulated LLM judge ([`judge`]).

pub mod entities;
pub mod images;
pub mod judge;
pub mod live;
pub mod paging;
pub mod rng;
pub mod server;
pub mod vocab;
pub mod world;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use server::router;

use entities::View;
use live::{day_of, Live, ReplyConfig, SandboxClock};
use world::{World, WorldParams, DAY_MS};

/// How the sandbox is generated and how it misbehaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// World seed: the same seed gives byte-identical responses.
    pub seed: u64,
    /// Number of creator profiles.
    pub profiles: usize,
    /// Sender accounts as `(handle, bearer token)`; only these tokens may post.
    pub senders: Vec<(String, String)>,
    /// Extra latency added to every API request.
    pub latency_ms: u64,
    /// Fraction of API requests answered with a 500/503 JSON error.
    pub error_rate: f64,
    /// Requests allowed per 5-minute window, per token (or per IP without a token); `None` = unlimited.
    pub rate_limit: Option<u32>,
    /// Sandbox seconds before a creator's reply appears (replies land within 1–1.5× this).
    pub reply_delay_secs: i64,
    /// Fraction of profiles that change (bio edit and/or new post) per sandbox day.
    pub change_fraction: f64,
    /// Public URL used in links and media URLs; `None` = `http://<bound address>`.
    pub base_url: Option<String>,
    /// Sandbox time at start, unix ms; `None` = the wall clock. The world is dated relative to
    /// midnight UTC of this day, so two sandboxes started the same day serve identical worlds.
    pub start_ms: Option<i64>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            profiles: 5000,
            senders: vec![("omni".to_string(), "omni-sandbox-token".to_string())],
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit: None,
            reply_delay_secs: 3600,
            change_fraction: 0.05,
            base_url: None,
            start_ms: None,
        }
    }
}

/// Why a set of [`SandboxOptions`] cannot be served.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionsError {
    /// Too many accounts for the id scheme.
    #[error("profiles + senders must be at most {max}, got {got}")]
    TooManyProfiles {
        /// Requested accounts.
        got: usize,
        /// The most supported.
        max: usize,
    },
    /// A fraction outside 0..=1.
    #[error("{name} must be between 0 and 1, got {value}")]
    Fraction {
        /// Option name.
        name: &'static str,
        /// Given value.
        value: f64,
    },
    /// A negative reply delay.
    #[error("reply_delay_secs must not be negative, got {0}")]
    NegativeDelay(i64),
    /// A sender with an empty handle or token, or a token used twice.
    #[error("sender {0:?}: handles and tokens must be non-empty and tokens unique")]
    BadSender(String),
    /// A rate limit of zero would refuse everything.
    #[error("rate_limit must be at least 1 (leave it unset for no limit)")]
    ZeroRateLimit,
}

impl SandboxOptions {
    /// Checks the options, saying what is wrong and which option to fix.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let got = self.profiles + self.senders.len();
        if got > world::MAX_ACCOUNTS {
            return Err(OptionsError::TooManyProfiles {
                got,
                max: world::MAX_ACCOUNTS,
            });
        }
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("change_fraction", self.change_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(OptionsError::Fraction { name, value });
            }
        }
        if self.reply_delay_secs < 0 {
            return Err(OptionsError::NegativeDelay(self.reply_delay_secs));
        }
        if self.rate_limit == Some(0) {
            return Err(OptionsError::ZeroRateLimit);
        }
        for (i, (handle, token)) in self.senders.iter().enumerate() {
            let reused = self.senders[..i].iter().any(|(_, t)| t == token);
            if world::normalize_handle(handle).is_empty() || token.trim().is_empty() || reused {
                return Err(OptionsError::BadSender(handle.clone()));
            }
        }
        Ok(())
    }
}

/// Counters reported by `/_sandbox/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    /// API requests seen.
    pub api_requests: AtomicU64,
    /// Requests answered 429.
    pub rate_limited: AtomicU64,
    /// Injected 5xx answers.
    pub injected_errors: AtomicU64,
    /// Injected malformed answers.
    pub malformed: AtomicU64,
    /// Judge calls.
    pub judge_calls: AtomicU64,
}

/// A fixed rate-limit window for one client key.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Window start, unix ms (wall clock).
    pub start_ms: i64,
    /// Requests counted in it.
    pub count: u32,
}

/// The running sandbox's state, shared by all request handlers.
#[derive(Debug)]
pub struct Sandbox {
    /// The generated world.
    pub world: World,
    /// Options it was started with.
    pub opts: SandboxOptions,
    /// Public base URL (no trailing slash).
    pub base_url: String,
    /// Sandbox clock.
    pub clock: SandboxClock,
    /// Read-mostly: every API read renders under a shared lock, so concurrent requests render in
    /// parallel; only posting, replies and day changes take it exclusively.
    live: RwLock<Live>,
    limiter: Mutex<HashMap<String, Window>>,
    /// Request counters.
    pub counters: Counters,
    fail_next: AtomicU64,
    fault_seq: AtomicU64,
    /// The directory's last computed orders, reused while no change became visible.
    directory: Mutex<Vec<DirectoryOrder>>,
}

/// One ordering of the discoverable profiles, valid while `visible_changes` is unchanged.
#[derive(Debug)]
struct DirectoryOrder {
    order: String,
    visible_changes: usize,
    rows: Arc<Vec<world::AccountIdx>>,
}

/// Locks a mutex, recovering the data if a previous holder panicked (state stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl Sandbox {
    /// Generates the world for `opts`; links and media URLs start with `base_url`.
    pub fn new(opts: SandboxOptions, base_url: String) -> Self {
        let start_ms = opts
            .start_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let anchor_ms = start_ms - start_ms.rem_euclid(DAY_MS);
        let world = World::generate(&WorldParams {
            seed: opts.seed,
            profiles: opts.profiles,
            senders: opts.senders.clone(),
            anchor_ms,
        });
        Self {
            world,
            base_url: base_url.trim_end_matches('/').to_string(),
            clock: SandboxClock::new(start_ms),
            live: RwLock::new(Live::default()),
            limiter: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            fail_next: AtomicU64::new(0),
            fault_seq: AtomicU64::new(0),
            directory: Mutex::new(Vec::new()),
            opts,
        }
    }

    /// Current sandbox time, unix ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Advances sandbox time by `secs` (due replies and day changes then become visible).
    /// Refuses to go past what snowflake ids can encode (2039); returns whether it moved.
    pub fn advance(&self, secs: i64) -> bool {
        self.advance_ms(secs.saturating_mul(1000))
    }

    /// Advances sandbox time by `ms` milliseconds (negative values are ignored).
    pub fn advance_ms(&self, ms: i64) -> bool {
        let ms = ms.max(0);
        if self.now_ms().saturating_add(ms) >= world::MAX_TIME_MS {
            return false;
        }
        self.clock.advance(ms);
        true
    }

    /// Runs `f` with a consistent view of world and live state at the current sandbox time.
    pub fn with_view<R>(&self, f: impl FnOnce(&View<'_>) -> R) -> R {
        let now = self.now_ms();
        let day = day_of(&self.world, now);
        let mut live = read(&self.live);
        if live.needs_materialize(&self.world, day) {
            drop(live);
            write(&self.live).materialize(&self.world, day, self.opts.change_fraction);
            live = read(&self.live);
        }
        let view = View {
            world: &self.world,
            live: &live,
            base: &self.base_url,
            now,
        };
        f(&view)
    }

    /// Runs `f` with mutable live state at the current sandbox time.
    pub fn with_live<R>(&self, f: impl FnOnce(&mut Live, i64) -> R) -> R {
        let now = self.now_ms();
        let mut live = write(&self.live);
        live.materialize(
            &self.world,
            day_of(&self.world, now),
            self.opts.change_fraction,
        );
        f(&mut live, now)
    }

    /// The discoverable profiles in directory `order` (`active` or `new`) as seen by `view`.
    /// Sorting every profile on each page request would cost more than rendering the page, and
    /// the order only moves when a change (a new post) becomes visible, so it is cached per count
    /// of visible changes.
    pub fn directory_order(&self, view: &View<'_>, order: &str) -> Arc<Vec<world::AccountIdx>> {
        let visible_changes = view.live.visible_changes(view.now);
        if let Some(hit) = lock(&self.directory)
            .iter()
            .find(|d| d.order == order && d.visible_changes == visible_changes)
        {
            return hit.rows.clone();
        }
        let rows = Arc::new(directory_rows(view, order));
        let mut cache = lock(&self.directory);
        cache.retain(|d| d.order != order);
        cache.push(DirectoryOrder {
            order: order.to_string(),
            visible_changes,
            rows: rows.clone(),
        });
        rows
    }

    /// Reply-model settings.
    pub fn reply_config(&self) -> ReplyConfig {
        ReplyConfig {
            reply_delay_secs: self.opts.reply_delay_secs,
        }
    }

    /// Makes the next `n` API requests answer malformed JSON.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn take_fail_next(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether the next API request gets an injected error: `Some(true)` = 503, `Some(false)` = 500.
    fn inject_error(&self) -> Option<bool> {
        if self.opts.error_rate <= 0.0 {
            return None;
        }
        let n = self.fault_seq.fetch_add(1, Ordering::SeqCst);
        let h = rng::hash_ints(&[self.opts.seed, rng::stream::FAULTS, n]);
        (rng::unit(h) < self.opts.error_rate).then_some(h & 1 == 1)
    }

    /// Counts a request for `key` (if `count`) and reports `(limit, remaining, reset_ms, over)`.
    fn rate_check(&self, key: &str, count: bool) -> (u32, u32, i64, bool) {
        const WINDOW_MS: i64 = 300_000;
        // Unlimited sandboxes still send the headers, with a limit no client will reach.
        let limit = self.opts.rate_limit.unwrap_or(1_000_000);
        let now = chrono::Utc::now().timestamp_millis();
        let start = now - now.rem_euclid(WINDOW_MS);
        let mut map = lock(&self.limiter);
        if map.len() > 10_000 {
            map.retain(|_, w| w.start_ms == start);
        }
        let w = map.entry(key.to_string()).or_insert(Window {
            start_ms: start,
            count: 0,
        });
        if w.start_ms != start {
            *w = Window {
                start_ms: start,
                count: 0,
            };
        }
        if count {
            w.count = w.count.saturating_add(1);
        }
        let over = self.opts.rate_limit.is_some() && w.count > limit;
        (
            limit,
            limit.saturating_sub(w.count),
            start + WINDOW_MS,
            over,
        )
    }
}

/// The discoverable profiles in directory `order`: most recent post first (`active`) or newest
/// account first (`new`); ties by id.
fn directory_rows(view: &View<'_>, order: &str) -> Vec<world::AccountIdx> {
    let mut rows: Vec<(i64, world::AccountIdx)> = view
        .world
        .profiles
        .iter()
        .filter(|pr| pr.discoverable)
        .map(|pr| {
            let key = if order == "new" {
                pr.created_ms
            } else {
                view.post_stats(pr).1.unwrap_or(0)
            };
            (key, pr.idx)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, a)| a).collect()
}

/// A sandbox running on a tokio task.
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    state: Arc<Sandbox>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl SandboxHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The shared state (world, clock, live state) for in-process callers.
    pub fn state(&self) -> &Arc<Sandbox> {
        &self.state
    }

    /// Stops accepting requests and waits for the server task to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

async fn build_state(opts: SandboxOptions, base_url: String) -> io::Result<Arc<Sandbox>> {
    opts.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Generating a large world is CPU work; keep it off the async workers.
    tokio::task::spawn_blocking(move || Arc::new(Sandbox::new(opts, base_url)))
        .await
        .map_err(io::Error::other)
}

fn default_base_url(opts: &SandboxOptions, addr: SocketAddr) -> String {
    opts.base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
}

async fn serve_state(
    state: Arc<Sandbox>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves a sandbox on `listener` until `shutdown` completes (what `omni sandbox` runs).
pub async fn serve(
    opts: SandboxOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let base = default_base_url(&opts, addr);
    let state = build_state(opts, base).await?;
    tracing::info!(%addr, profiles = state.world.n_profiles(), seed = state.opts.seed, "sandbox listening");
    serve_state(state, listener, shutdown).await
}

/// Binds `addr`, generates the world and serves it on a background task.
pub async fn bind(opts: SandboxOptions, addr: SocketAddr) -> io::Result<SandboxHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let base = default_base_url(&opts, addr);
    let state = build_state(opts, base).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_state(state.clone(), listener, async move {
        let _ = stopped.await;
    }));
    Ok(SandboxHandle {
        addr,
        state,
        stop: Some(stop),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_directory_order_follows_new_posts() {
        let sb = Sandbox::new(
            SandboxOptions {
                seed: 3,
                profiles: 300,
                change_fraction: 0.5,
                start_ms: Some(1_795_000_000_000),
                ..Default::default()
            },
            "http://sandbox.test".into(),
        );
        let first = sb.with_view(|v| sb.directory_order(v, "active"));
        assert_eq!(*first, sb.with_view(|v| directory_rows(v, "active")));
        assert!(Arc::ptr_eq(
            &first,
            &sb.with_view(|v| sb.directory_order(v, "active"))
        ));
        assert!(sb.advance(2 * 86_400));
        let moved = sb.with_view(|v| sb.directory_order(v, "active"));
        assert_ne!(*moved, *first, "new posts reorder the active directory");
        assert_eq!(*moved, sb.with_view(|v| directory_rows(v, "active")));
        let new = sb.with_view(|v| sb.directory_order(v, "new"));
        assert_eq!(*new, sb.with_view(|v| directory_rows(v, "new")));
    }

    #[test]
    fn a_shared_author_writes_the_same_bytes_as_one_rendered_in_place() {
        use entities::{Author, PostRef};
        let sb = Sandbox::new(
            SandboxOptions {
                seed: 9,
                profiles: 50,
                start_ms: Some(1_795_000_000_000),
                ..Default::default()
            },
            "http://sandbox.test".into(),
        );
        sb.with_view(|v| {
            let mut compared = 0;
            for profile in &v.world.profiles {
                let author = Author::shared(v.account(profile.idx));
                assert!(matches!(author, Author::Shared(_)));
                let posts = v.post_ids(profile);
                let inline: Vec<_> = posts
                    .iter()
                    .map(|(_, meta)| {
                        v.post_status(&PostRef {
                            profile,
                            meta: *meta,
                        })
                    })
                    .collect();
                let shared: Vec<_> = posts
                    .iter()
                    .map(|(_, meta)| {
                        v.post_status_by(
                            &PostRef {
                                profile,
                                meta: *meta,
                            },
                            author.clone(),
                        )
                    })
                    .collect();
                let inline = serde_json::to_vec(&inline).unwrap();
                assert_eq!(serde_json::to_vec(&shared).unwrap(), inline);
                assert!(inline.windows(10).any(|w| w == b"\"username\""));
                compared += posts.len();
            }
            assert!(compared > 50, "compared {compared} statuses");
        });
    }
}
