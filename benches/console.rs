//! The console on a big database: 1,000,000 profiles and 1,000,000 leads (10 campaigns) in
//! SQLite. Drives the real console code — keys become actions, `update` returns effects, effects
//! run against the embedded engine (`run_effect`: count + windowed read), the results go back
//! through `update` — and draws the Leads view into a 200×50 `TestBackend` after each action,
//! timing action → drawn frame. Also: filter-to-first-frame, and the process's peak RSS.
//!
//! Every scenario runs twice in one process: without and with the indexes the console needs for
//! sorted windows (`leads_campaign_score`, `leads_score`; in the migrations),
//! dropped and re-created by name, so the ratio is measured on the same data.
//!
//! The database is seeded by a child process (this binary re-run with OMNI_CONSOLE_BENCH_SEED),
//! so the peak RSS reported is the console's alone. `cargo bench --bench console`; without
//! `--bench` a 1,000-lead smoke pass.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use omni::db::browse::CampaignId;
use omni::db::Db;
use omni::engine::{Engine, Mode};
use omni::tui::action::{Action, Effect, InputKey, ViewId};
use omni::tui::keymap::Keymap;
use omni::tui::state::State;
use omni::tui::theme::Theme;
use omni::tui::update::update;
use rand::{Rng, SeedableRng};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use support::{median, peak_rss_mib};

const SEED_ENV: &str = "OMNI_CONSOLE_BENCH_SEED";
const W: u16 = 200;
const H: u16 = 50;
/// The console-facing indexes, as in migrations/*/0003_leads_score_index.sql. Ascending throughout: the
/// console orders by `score DIR, id DIR` in one direction, which an ascending index serves forwards
/// and backwards (`score DESC, id` would leave every tie of equal scores to a sort).
const INDEXES: &[(&str, &str)] = &[
    ("leads_campaign_score", "leads (campaign_id, score, id)"),
    ("leads_score", "leads (score, id)"),
];

/// Seeds profiles, 10 campaigns and one lead per profile (child process).
async fn seed(url: &str, n: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    let db = support::fresh_db(url, 2).await;
    let s = support::seed_profiles(&db, n, 42, now).await;
    db.close().await;
    let store = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(support::offline_config(url, store.path()), Mode::Client)
        .await
        .expect("engine");
    for (i, file) in support::campaign_files().iter().enumerate() {
        engine
            .create_campaign(&format!("c{i}.toml"), file)
            .await
            .expect("campaign");
    }
    sqlx::query("DELETE FROM jobs")
        .execute(engine.db().writer())
        .await
        .expect("clear jobs");
    let t = Instant::now();
    let statuses = [
        "new", "new", "new", "new", "new", "approved", "rejected", "sent", "replied", "queued",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut tx = engine.db().begin_write().await.expect("begin");
    const CHUNK: usize = 1_000;
    let mut id = 0usize;
    while id < n {
        let rows = CHUNK.min(n - id);
        // Literal values (all generated here), like the profiles: binding is the slow part.
        let mut values = Vec::with_capacity(rows);
        for _ in 0..rows {
            id += 1;
            let created = now - rng.gen_range(0..30 * 86_400_000i64);
            values.push(format!(
                "({}, {id}, {}, '{}', {created}, {created})",
                id % 10 + 1,
                rng.gen_range(60..=100),
                statuses[rng.gen_range(0..statuses.len())]
            ));
        }
        let sql = format!("INSERT INTO leads (campaign_id, profile_id, score, status, created_at, updated_at) VALUES {}", values.join(", "));
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert leads");
    }
    tx.commit().await.expect("commit");
    println!(
        "seeded {n} profiles in {s:.1}s and {n} leads in {:.1}s (child process)",
        t.elapsed().as_secs_f64()
    );
    engine.shutdown().await;
}

/// The console loop without a terminal: run effects against the engine, feed results back.
async fn settle(engine: &Engine, state: &mut State, effects: Vec<Effect>) {
    let mut pending = effects;
    while let Some(e) = pending.pop() {
        for a in omni::tui::run_effect(engine, e).await {
            pending.extend(update(state, a));
        }
    }
}

struct Console {
    engine: Engine,
    state: State,
    term: Terminal<TestBackend>,
    keymap: Keymap,
    theme: Theme,
}

impl Console {
    fn draw(&mut self) {
        let (state, keymap, theme) = (&self.state, &self.keymap, &self.theme);
        self.term
            .draw(|f| omni::tui::views::render(f, state, keymap, theme))
            .expect("draw");
    }

    /// One action through update → effects → update, then a drawn frame; milliseconds.
    async fn frame(&mut self, action: Action) -> f64 {
        let t = Instant::now();
        let effects = update(&mut self.state, action);
        settle(&self.engine, &mut self.state, effects).await;
        self.draw();
        t.elapsed().as_secs_f64() * 1_000.0
    }

    fn screen(&self) -> String {
        let buf = self.term.backend().buffer();
        (0..H)
            .map(|y| {
                (0..W)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn leads_total(&self) -> Option<i64> {
        self.state.top().table.total
    }
}

struct Figures {
    open: f64,
    draw_only: f64,
    page_down: f64,
    jump: f64,
    sort_all: f64,
    sort_all_page: f64,
    sort_campaign: f64,
    filter_hit: f64,
    filter_miss: f64,
}

async fn scenarios(engine: &Engine, reps: usize, pages: usize, hit: &'static str) -> Figures {
    let now = chrono::Utc::now().timestamp_millis();
    let new_console = || Console {
        engine: engine.clone(),
        state: State::new("bench", false, (W, H), now, ViewId::Leads),
        term: Terminal::new(TestBackend::new(W, H)).expect("terminal"),
        keymap: Keymap::defaults(false),
        theme: Theme::default(),
    };
    let mut c = new_console();
    // Opening the Leads view: count + first window + frame.
    let mut open = Vec::new();
    for _ in 0..reps {
        open.push(c.frame(Action::Refresh).await);
    }
    assert!(c.leads_total().unwrap_or(0) > 0, "no leads counted");
    assert!(
        c.screen().contains("@user"),
        "leads are drawn:\n{}",
        c.screen()
    );
    let mut draw_only = Vec::new();
    for _ in 0..reps * 5 {
        let t = Instant::now();
        c.draw();
        draw_only.push(t.elapsed().as_secs_f64() * 1_000.0);
    }
    // Scrolling page by page: every frame, some of which fetch the next window.
    let mut page_down = Vec::new();
    for _ in 0..pages {
        page_down.push(c.frame(Action::PageDown).await);
    }
    // Jumping to the far end and back: every frame fetches (the far end is read backwards).
    let mut jump = Vec::new();
    for i in 0..reps * 2 {
        jump.push(
            c.frame(if i % 2 == 0 {
                Action::Bottom
            } else {
                Action::Top
            })
            .await,
        );
    }
    // Sorted by score across all campaigns: the first frame after choosing the sort, then pages.
    let mut sort_all = Vec::new();
    for _ in 0..reps {
        sort_all.push(c.frame(Action::SortBy("score".into())).await);
    }
    let mut sort_all_page = Vec::new();
    for _ in 0..pages {
        sort_all_page.push(c.frame(Action::PageDown).await);
    }
    // One campaign's leads by score (the drill-down from Campaigns).
    let mut c = new_console();
    c.state.top_mut().scope.campaign = Some((CampaignId(3), "Bench campaign 2".into()));
    c.frame(Action::Refresh).await;
    let mut sort_campaign = Vec::new();
    for _ in 0..reps {
        sort_campaign.push(c.frame(Action::SortBy("score".into())).await);
    }
    assert!(c.screen().contains("Bench campaign 2"), "{}", c.screen());
    // Filter to first frame: `/`, the text, Enter (timed from Enter: count + window + frame).
    let filter = |text: &'static str| {
        let mut c = new_console();
        async move {
            c.frame(Action::Refresh).await;
            let mut times = Vec::new();
            for _ in 0..reps {
                update(&mut c.state, Action::Filter);
                // The filter line opens with the current filter: clear it first.
                for _ in 0..text.len() {
                    update(&mut c.state, Action::Input(InputKey::Backspace));
                }
                for ch in text.chars() {
                    update(&mut c.state, Action::Input(InputKey::Char(ch)));
                }
                times.push(c.frame(Action::Input(InputKey::Enter)).await);
                assert_eq!(c.state.top().table.filter.as_deref(), Some(text));
            }
            (median(&mut times), c.leads_total().unwrap_or(-1))
        }
    };
    let (filter_hit, hits) = filter(hit).await;
    assert!(hits > 0, "the filter matches some leads");
    let (filter_miss, misses) = filter("zzzz").await;
    assert_eq!(misses, 0);
    Figures {
        open: median(&mut open),
        draw_only: median(&mut draw_only),
        page_down: median(&mut page_down),
        jump: median(&mut jump),
        sort_all: median(&mut sort_all),
        sort_all_page: median(&mut sort_all_page),
        sort_campaign: median(&mut sort_campaign),
        filter_hit,
        filter_miss,
    }
}

async fn set_indexes(db: &Db, on: bool) {
    for (name, def) in INDEXES {
        let sql = if on {
            format!("CREATE INDEX IF NOT EXISTS {name} ON {def}")
        } else {
            format!("DROP INDEX IF EXISTS {name}")
        };
        sqlx::raw_sql(&sql)
            .execute(db.writer())
            .await
            .expect("index");
    }
}

fn main() {
    let full = support::full();
    let n = if full { 1_000_000 } else { 1_000 };
    if let Ok(path) = std::env::var(SEED_ENV) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(seed(&format!("sqlite://{path}"), n));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("console.db");
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"));
    child.args(std::env::args().skip(1)).env(SEED_ENV, &path);
    assert!(
        child.status().expect("seed process").success(),
        "seeding failed"
    );

    let (reps, pages) = if full { (7, 30) } else { (2, 4) };
    // Handles are user1..userN: this filter matches 1 + 10 + 100 + … of them.
    let hit = if full { "user4242" } else { "user42" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", path.display());
        // The console's own embedded engine, as `omni tui` starts it.
        let engine = Engine::start(support::offline_config(&url, store.path()), Mode::Console)
            .await
            .expect("engine");
        let mut figures = Vec::new();
        for on in [false, true] {
            set_indexes(engine.db(), on).await;
            figures.push(scenarios(&engine, reps, pages, hit).await);
        }
        let (b, a) = (&figures[0], &figures[1]);
        println!(
            "Leads view, {n} leads, {W}x{H}, median ms per frame (action → effects → drawn frame):"
        );
        println!(
            "{:<52} {:>10} {:>10} {:>8}",
            "", "without", "with idx", "ratio"
        );
        let rows: [(&str, f64, f64); 9] = [
            ("open Leads (count + first window)", b.open, a.open),
            ("draw only (state loaded)", b.draw_only, a.draw_only),
            (
                "page down (id order; some frames fetch)",
                b.page_down,
                a.page_down,
            ),
            ("jump G / g (always fetches)", b.jump, a.jump),
            (
                "sort by score, all campaigns: first frame",
                b.sort_all,
                a.sort_all,
            ),
            (
                "sort by score, all campaigns: page down",
                b.sort_all_page,
                a.sort_all_page,
            ),
            (
                "one campaign, sort by score: first frame",
                b.sort_campaign,
                a.sort_campaign,
            ),
            (
                "filter `user4242` (smoke: `user42`) → first frame",
                b.filter_hit,
                a.filter_hit,
            ),
            (
                "filter `zzzz` (no match) → first frame",
                b.filter_miss,
                a.filter_miss,
            ),
        ];
        for (label, x, y) in rows {
            println!("{label:<52} {x:>10.2} {y:>10.2} {:>7.1}x", x / y.max(1e-9));
        }
        engine.shutdown().await;
        println!(
            "console process peak RSS (VmHWM): {:.0} MiB",
            peak_rss_mib()
        );
    });
}
