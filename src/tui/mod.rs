//! The operator console (ratatui): event loop, actions, pure update, views.
//!
//! Shape: event tasks ([`event`]) multiplex terminal input, ticks, engine events and log lines
//! into one channel; keys become [`action::Action`]s through the [`keymap`]; the pure
//! [`update::update`] changes the [`state::State`] and returns [`action::Effect`]s, which run
//! against the engine (through [`ConsoleBackend`]) and come back as actions; the loop draws only
//! the newest state of a burst, at most 30 frames a second. The console never prints to the
//! terminal it owns: logs go to a ring buffer shown in the Logs view.

pub mod action;
pub mod columns;
pub mod command;
pub mod editor;
pub mod event;
pub mod image;
pub mod keymap;
pub mod logs;
pub mod state;
pub mod terminal;
pub mod theme;
pub mod update;
pub mod views;
pub mod widgets;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::db::browse::{CampaignId, Page};
use crate::engine::browse::{CampaignSaved, ConsoleBackend, ConsoleError};
use crate::engine::{Engine, Mode};

use action::{Action, Effect, Level, ViewId};
use event::Event;
use image::CellImage;
use keymap::{Key, Keymap};
use logs::LogBuffer;
use state::State;
use theme::Theme;

/// Frames are at least this far apart (30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// Image size in cells for the profile view.
const IMAGE_CELLS: (u16, u16) = (32, 14);

/// How the console was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct TuiOptions {
    /// Nothing that changes data is bound.
    pub readonly: bool,
    /// Capture the mouse (wheel scrolls).
    pub mouse: bool,
}

/// `$XDG_CONFIG_HOME/omni` (else `~/.config/omni`), where `keymap.toml` and `theme.toml` live.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("omni"))
}

/// Loads the keymap and theme from the config dir; problems are returned as warnings to show.
pub fn load_settings(readonly: bool) -> (Keymap, Theme, Vec<String>) {
    let dir = config_dir();
    let read = |name: &str| {
        dir.as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
    };
    let (keymap, mut warnings) = match read("keymap.toml") {
        Some(text) => Keymap::with_overrides(readonly, &text),
        None => (Keymap::defaults(readonly), Vec::new()),
    };
    let theme = match read("theme.toml") {
        Some(text) => {
            let (t, w) = Theme::with_overrides(&text);
            warnings.extend(w);
            t
        }
        None => Theme::default(),
    };
    (keymap, theme, warnings)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `omni` / `omni tui`: attaches to an engine already serving this database (fresh heartbeat),
/// or starts one in-process, and runs the console until the operator quits.
pub async fn run(config: Config, opts: TuiOptions) -> Result<()> {
    let logs = LogBuffer::new(state::LOG_KEEP);
    install_tracing(&logs);
    let client = Engine::start(config.clone(), Mode::Client)
        .await
        .context("opening the database")?;
    let live = client.live_nodes().await?;
    let (engine, connection) = match live.first() {
        Some(node) => {
            let label = format!("attached to {} {} (pid {})", node.mode, node.host, node.pid);
            (client, label)
        }
        None => {
            client.db().close().await;
            (
                Engine::start(config, Mode::Console).await?,
                "embedded engine".to_string(),
            )
        }
    };
    tracing::info!(%connection, "console started");
    let result = run_console(engine.clone(), connection, opts, logs).await;
    engine.shutdown().await;
    result
}

fn install_tracing(logs: &LogBuffer) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMNI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Only the ring buffer: anything printed would tear the screen.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs.layer())
        .try_init();
}

/// Runs the console against `backend` on the real terminal until quit, SIGTERM or SIGHUP.
pub async fn run_console<B: ConsoleBackend>(
    backend: B,
    connection: String,
    opts: TuiOptions,
    logs: LogBuffer,
) -> Result<()> {
    let (keymap, theme, warnings) = load_settings(opts.readonly);
    terminal::install_panic_hook();
    let mut term = terminal::enter(opts.mouse).context("taking over the terminal")?;
    let result = event_loop(
        &mut term, backend, connection, opts, logs, keymap, theme, warnings,
    )
    .await;
    terminal::restore();
    result
}

#[allow(clippy::too_many_arguments)]
async fn event_loop<B: ConsoleBackend>(
    term: &mut terminal::Term,
    backend: B,
    connection: String,
    opts: TuiOptions,
    logs: LogBuffer,
    keymap: Keymap,
    theme: Theme,
    warnings: Vec<String>,
) -> Result<()> {
    let size = term.size()?;
    let mut state = State::new(
        connection,
        opts.readonly,
        (size.width, size.height),
        now_ms(),
        ViewId::Campaigns,
    );
    for w in warnings {
        state.toast(Level::Warn, w);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut input = event::spawn_input(tx.clone());
    let engine_events = backend.events();
    let background = event::spawn_background(tx.clone(), engine_events, logs, now_ms);
    for effect in update::update(&mut state, Action::Refresh) {
        spawn_effect(&backend, &tx, effect);
    }
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let outcome = loop {
        if dirty && last_draw.elapsed() >= FRAME {
            term.draw(|f| views::render(f, &state, &keymap, &theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let wait = if dirty {
            FRAME.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        let first = tokio::select! {
            ev = rx.recv() => ev,
            _ = tokio::time::sleep(wait) => continue,
        };
        let Some(first) = first else { break Ok(()) };
        // Drain the whole burst before drawing: only the newest state is drawn.
        let mut burst = vec![first];
        while let Ok(ev) = rx.try_recv() {
            burst.push(ev);
        }
        let mut edits = Vec::new();
        for ev in burst {
            let action = match ev {
                Event::Key(k) => Key::from_event(&k).and_then(|key| keymap.translate(&state, key)),
                Event::Resize(w, h) => Some(Action::Resize(w, h)),
                Event::Action(a) => Some(a),
                Event::Terminate => Some(Action::Quit),
            };
            let Some(action) = action else { continue };
            for effect in update::update(&mut state, action) {
                match effect {
                    Effect::EditCampaign(id) => edits.push(id),
                    other => spawn_effect(&backend, &tx, other),
                }
            }
            dirty = true;
        }
        if state.quit {
            break Ok(());
        }
        for id in edits {
            input.abort();
            let outcome = edit_campaign(term, &backend, id, opts.mouse).await;
            input = event::spawn_input(tx.clone());
            let action = match outcome {
                Ok(Some(msg)) => Action::Done(msg),
                Ok(None) => Action::Toast(Level::Info, "edit cancelled: nothing changed".into()),
                Err(e) => Action::Failed(e),
            };
            for effect in update::update(&mut state, action) {
                spawn_effect(&backend, &tx, effect);
            }
            dirty = true;
        }
    };
    input.abort();
    background.abort();
    outcome
}

fn err(e: ConsoleError) -> Action {
    Action::Failed(e.to_string())
}

/// Runs one effect in the background and sends its result back as an action.
fn spawn_effect<B: ConsoleBackend>(backend: &B, tx: &mpsc::UnboundedSender<Event>, effect: Effect) {
    let b = backend.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        for action in run_effect(&b, effect).await {
            if tx.send(Event::Action(action)).is_err() {
                break;
            }
        }
    });
}

/// Runs one effect against the backend: the actions it produces, in order.
pub async fn run_effect<B: ConsoleBackend>(b: &B, effect: Effect) -> Vec<Action> {
    match effect {
        Effect::Fetch {
            req,
            query,
            total,
            count,
        } => {
            let started = Instant::now();
            let mut out = Vec::new();
            let mut total = total;
            if count {
                match b.count(query.clone()).await {
                    Ok(n) => {
                        total = Some(n);
                        out.push(Action::Counted { req, total: n });
                    }
                    Err(e) => return vec![err(e)],
                }
            }
            match b.browse(query, total).await {
                Ok(page) => out.push(Action::Loaded {
                    req,
                    page,
                    took_ms: started.elapsed().as_millis() as i64,
                }),
                Err(e) => out.push(err(e)),
            }
            out
        }
        Effect::LoadProfile {
            req,
            profile,
            campaign,
        } => match b.profile(profile, campaign).await {
            Ok(detail) => {
                let keys: Vec<String> = detail
                    .features
                    .as_ref()
                    .map(|f| f.image_keys.iter().take(3).cloned().collect())
                    .unwrap_or_default();
                let mut images = Vec::with_capacity(keys.len());
                for key in keys {
                    let img = match b.object(key).await {
                        Ok(Some(bytes)) => tokio::task::spawn_blocking(move || {
                            CellImage::decode(&bytes, IMAGE_CELLS.0, IMAGE_CELLS.1)
                        })
                        .await
                        .ok()
                        .flatten(),
                        _ => None,
                    };
                    images.push(img);
                }
                vec![Action::ProfileLoaded {
                    req,
                    detail: Box::new(detail),
                    images,
                }]
            }
            Err(e) => vec![err(e)],
        },
        Effect::LoadBatch { req, batch } => match b.batch(batch).await {
            Ok(detail) => vec![Action::BatchLoaded {
                req,
                detail: Box::new(detail),
            }],
            Err(e) => vec![err(e)],
        },
        Effect::LoadStats(id) => match b.campaign_stats(id).await {
            Ok(s) => vec![Action::StatsLoaded(Box::new(s))],
            Err(e) => vec![err(e)],
        },
        Effect::LoadRate => match b.jobs_per_minute().await {
            Ok(r) => vec![Action::RateLoaded(r)],
            Err(e) => vec![err(e)],
        },
        Effect::LoadIds(q) => match b.browse(q, None).await {
            Ok(Page { rows, .. }) => vec![Action::MarkIds(
                (0..rows.len()).filter_map(|i| rows.id(i)).collect(),
            )],
            Err(e) => vec![err(e)],
        },
        Effect::SetLeadStatus { ids, status } => {
            let requested = ids.len();
            match b.set_lead_status(ids, status).await {
                Ok(changed) => vec![Action::LeadsChanged {
                    requested,
                    changed,
                    status,
                }],
                Err(e) => vec![err(e)],
            }
        }
        Effect::CreateBatch(c) => match b.create_batch(c).await {
            Ok(id) => vec![Action::Done(format!(
                "batch #{id} created: review it in Approvals (4)"
            ))],
            Err(e) => vec![err(e)],
        },
        Effect::ApproveBatch(id) => match b.approve_batch(id).await {
            Ok(()) => vec![Action::Done(format!(
                "batch #{id} approved: sending starts within its accounts' limits"
            ))],
            Err(e) => vec![err(e)],
        },
        Effect::RetryJob(id) => match b.retry_job(id).await {
            Ok(job) => vec![Action::Done(format!(
                "job #{} {} is {} again",
                job.id, job.kind, job.status
            ))],
            Err(e) => vec![err(e)],
        },
        Effect::CancelJob(id) => match b.cancel_job(id).await {
            Ok(job) => vec![Action::Done(format!(
                "job #{} {} cancelled",
                job.id, job.kind
            ))],
            Err(e) => vec![err(e)],
        },
        Effect::Explain(id) => match b.explain_campaign(id).await {
            Ok(text) => vec![Action::ShowText(format!("Explain campaign #{id}"), text)],
            Err(e) => vec![err(e)],
        },
        Effect::Discover(id) => done(b.discover(id).await),
        Effect::Qualify(id) => done(b.qualify(id).await),
        Effect::Learn(id) => done(b.learn(id).await),
        // Needs the terminal: the event loop runs it itself.
        Effect::EditCampaign(_) | Effect::Quit => Vec::new(),
    }
}

fn done(r: Result<String, ConsoleError>) -> Vec<Action> {
    match r {
        Ok(msg) => vec![Action::Done(msg)],
        Err(e) => vec![err(e)],
    }
}

/// The `kubectl edit` loop. `Ok(Some(message))` when saved, `Ok(None)` when left unchanged.
async fn edit_campaign<B: ConsoleBackend>(
    term: &mut terminal::Term,
    backend: &B,
    id: Option<CampaignId>,
    mouse: bool,
) -> Result<Option<String>, String> {
    let original = match id {
        Some(id) => backend.campaign_source(id).await,
        None => backend.campaign_template().await,
    }
    .map_err(|e| e.to_string())?;
    let dir = tempfile_dir().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    let path = dir.join(match id {
        Some(id) => format!("campaign-{id}.toml"),
        None => "new-campaign.toml".into(),
    });
    let mut text = original;
    let result = loop {
        if let Err(e) = std::fs::write(&path, &text) {
            break Err(format!("cannot write {}: {e}", path.display()));
        }
        let status = tokio::task::block_in_place(|| {
            terminal::suspend_while(term, mouse, || editor::run_editor(&path))
        });
        match status {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => break Err(format!("the editor exited with {s}: nothing saved")),
            Ok(Err(e)) => {
                break Err(format!(
                    "cannot run the editor ({}): {e}; set $EDITOR",
                    editor::editor_command().0
                ))
            }
            Err(e) => break Err(format!("cannot take the terminal back: {e}")),
        }
        let edited = match std::fs::read_to_string(&path) {
            Ok(t) => editor::strip_errors(&t),
            Err(e) => break Err(format!("cannot read {}: {e}", path.display())),
        };
        // Saved unchanged (or emptied): the operator gave up, as with `kubectl edit`.
        if edited.trim().is_empty() || edited == editor::strip_errors(&text) {
            break Ok(None);
        }
        match backend.save_campaign(id, edited.clone()).await {
            Ok(CampaignSaved::Saved(saved)) => {
                break Ok(Some(if id.is_some() {
                    format!("campaign #{saved} saved")
                } else {
                    format!("campaign #{saved} created")
                }))
            }
            Ok(CampaignSaved::Invalid(errors)) => text = editor::with_errors(&edited, &errors),
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "omni-edit-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
