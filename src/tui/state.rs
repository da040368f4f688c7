//! The console's whole state: what is shown, where the selection is, what is marked, which dialog
//! is open. Only `update` changes it; views only read it.

use std::collections::BTreeSet;

use crate::db::browse::{
    BatchDetail, BatchId, CampaignId, CampaignStats, Page, ProfileDetail, ProfileId,
};

use super::action::{Effect, Level, ViewId};
use super::image::CellImage;
use super::logs::LogLine;

/// The smallest terminal the console draws in.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Info and warning toasts disappear after this long; errors stay until dismissed.
pub const TOAST_MS: i64 = 4_000;
/// Live views reload their window this often (unless paused).
pub const REFRESH_MS: i64 = 2_000;
/// And recount their rows this often (counting a million rows is not free).
pub const RECOUNT_MS: i64 = 10_000;
/// Log lines kept in the state.
pub const LOG_KEEP: usize = 5_000;
/// A batch larger than this needs the word `send` typed to approve.
pub const TYPE_TO_CONFIRM_OVER: i64 = 20;

/// What narrows a screen's list (set by drilling in or by a command).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Only this campaign (id and, when known, name).
    pub campaign: Option<(CampaignId, String)>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this batch.
    pub batch: Option<BatchId>,
    /// The profile shown (profile view), with its handle when known.
    pub profile: Option<(ProfileId, String)>,
}

/// A table's selection, window and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableState {
    /// Index of the selected row.
    pub selected: i64,
    /// Index of the first visible row.
    pub offset: i64,
    /// Rows in the list (known after the first count).
    pub total: Option<i64>,
    /// The rows of the loaded window.
    pub page: Option<Page>,
    /// Sort key (`None`: the table's default).
    pub sort: Option<String>,
    /// Descending.
    pub desc: bool,
    /// The column selected for `Shift-O`.
    pub column: usize,
    /// Substring filter.
    pub filter: Option<String>,
    /// Ids of marked rows.
    pub marks: BTreeSet<i64>,
    /// Row index of the last mark toggled (start of a `V` range).
    pub anchor: Option<i64>,
    /// The newest request; older answers are dropped.
    pub req: u64,
    /// When the rows were last counted.
    pub counted_at: i64,
    /// How long the last read took, in ms (live reloads of slow lists back off).
    pub cost_ms: i64,
}

impl TableState {
    /// How often this list reloads live: every [`REFRESH_MS`], or less often when reading it is
    /// slow (an unindexed sort or a substring filter over a million rows).
    pub fn refresh_every(&self) -> i64 {
        REFRESH_MS.max(self.cost_ms * 10)
    }

    /// How often this list is recounted.
    pub fn recount_every(&self) -> i64 {
        RECOUNT_MS.max(self.cost_ms * 30)
    }
}

impl TableState {
    /// True when the loaded page holds every row of `offset..offset+height` that exists.
    pub fn covers(&self, offset: i64, height: i64) -> bool {
        let Some(page) = &self.page else { return false };
        let want_end = match self.total {
            Some(t) => (offset + height).min(t),
            None => offset + height,
        };
        page.offset <= offset && page.offset + page.rows.len() as i64 >= want_end
    }

    /// The id of row `index`, when it is loaded.
    pub fn id_at(&self, index: i64) -> Option<i64> {
        let page = self.page.as_ref()?;
        let i = index - page.offset;
        if i < 0 {
            return None;
        }
        page.rows.id(i as usize)
    }
}

/// What a detail screen has loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Detail {
    /// Nothing yet.
    #[default]
    Loading,
    /// A profile and its decoded images (`None`: image missing or unreadable).
    Profile(Box<ProfileDetail>, Vec<Option<CellImage>>),
    /// A batch.
    Batch(Box<BatchDetail>),
}

/// One screen of the drill-down path.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    /// Which view.
    pub view: ViewId,
    /// What it is narrowed to.
    pub scope: Scope,
    /// The table (table views).
    pub table: TableState,
    /// The loaded detail (detail views).
    pub detail: Detail,
    /// Scroll position of a detail view.
    pub scroll: u16,
    /// The newest detail request.
    pub req: u64,
}

impl Screen {
    /// A fresh screen of `view` narrowed to `scope`.
    pub fn new(view: ViewId, scope: Scope) -> Self {
        let (sort, desc) = match super::columns::table(view) {
            Some(t) => {
                let (k, d) = crate::db::browse::default_sort(t);
                (Some(k.to_string()), d)
            }
            None => (None, false),
        };
        let table = TableState {
            sort,
            desc,
            ..Default::default()
        };
        Self {
            view,
            scope,
            table,
            detail: Detail::Loading,
            scroll: 0,
            req: 0,
        }
    }

    /// The breadcrumb of this screen.
    pub fn crumb(&self) -> String {
        match self.view {
            ViewId::Profile => match &self.scope.profile {
                Some((_, h)) if !h.is_empty() => format!("@{h}"),
                Some((id, _)) => format!("profile {id}"),
                None => "Profile".into(),
            },
            ViewId::Batch => match self.scope.batch {
                Some(b) => format!("Batch #{b}"),
                None => "Batch".into(),
            },
            v => {
                let mut s = v.title().to_string();
                if let Some(st) = &self.scope.status {
                    s.push_str(&format!(" ({st})"));
                }
                s
            }
        }
    }
}

/// A text field (command line, filter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineInput {
    /// The text.
    pub text: String,
    /// Cursor position, in chars.
    pub cursor: usize,
}

impl LineInput {
    /// A field holding `text` with the cursor at the end.
    pub fn with(text: &str) -> Self {
        Self {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    fn byte_at(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map(|(b, _)| b)
            .unwrap_or(self.text.len())
    }

    /// Inserts a char at the cursor.
    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Deletes the char before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    /// Deletes the char under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }
}

/// Which button of a confirmation has focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The safe choice, focused when the dialog opens.
    Cancel,
    /// Go ahead.
    Confirm,
}

/// A confirmation dialog for something that cannot be undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// Title.
    pub title: String,
    /// What will happen, one line each.
    pub lines: Vec<String>,
    /// The work to do on confirm.
    pub effect: Effect,
    /// Focused button.
    pub focus: Focus,
    /// A word that must be typed before Confirm does anything.
    pub word: Option<String>,
    /// What has been typed.
    pub typed: String,
}

impl Confirm {
    /// A dialog with focus on Cancel.
    pub fn new(
        title: impl Into<String>,
        lines: Vec<String>,
        effect: Effect,
        word: Option<&str>,
    ) -> Self {
        Self {
            title: title.into(),
            lines,
            effect,
            focus: Focus::Cancel,
            word: word.map(String::from),
            typed: String::new(),
        }
    }

    /// True when Confirm would act (the word, if any, is typed).
    pub fn armed(&self) -> bool {
        self.word.as_deref().is_none_or(|w| self.typed == w)
    }
}

/// What has the keyboard.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum InputMode {
    /// Keys go through the keymap.
    #[default]
    Normal,
    /// The `:` command line.
    Command(LineInput),
    /// The `/` filter line.
    Filter(LineInput),
    /// A confirmation dialog.
    Confirm(Box<Confirm>),
    /// The help overlay (any key closes it).
    Help,
    /// A text popup (campaign explain output); any key closes it.
    Text { title: String, body: String },
}

/// A message in the corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// How loud.
    pub level: Level,
    /// What (already stripped of control characters).
    pub text: String,
    /// When it appeared.
    pub at: i64,
}

/// The console's state.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// How the console reaches the engine ("embedded engine", "attached to …").
    pub connection: String,
    /// Read-only: nothing that changes data can run.
    pub readonly: bool,
    /// Live updates paused.
    pub paused: bool,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Now, unix ms (from ticks, so tests and snapshots are deterministic).
    pub now: i64,
    /// The drill-down path; never empty.
    pub stack: Vec<Screen>,
    /// What has the keyboard.
    pub mode: InputMode,
    /// Toasts, oldest first.
    pub toasts: Vec<Toast>,
    /// The newest log lines.
    pub logs: Vec<LogLine>,
    /// Jobs finished per minute, last hour.
    pub job_rate: Vec<u64>,
    /// The selected campaign's funnel.
    pub stats: Option<CampaignStats>,
    /// Request counter.
    pub next_req: u64,
    /// When the current view was last reloaded.
    pub last_refresh: i64,
    /// Leave the event loop.
    pub quit: bool,
}

impl State {
    /// A console showing `first`.
    pub fn new(
        connection: impl Into<String>,
        readonly: bool,
        size: (u16, u16),
        now: i64,
        first: ViewId,
    ) -> Self {
        Self {
            connection: connection.into(),
            readonly,
            paused: false,
            size,
            now,
            stack: vec![Screen::new(first, Scope::default())],
            mode: InputMode::Normal,
            toasts: Vec::new(),
            logs: Vec::new(),
            job_rate: Vec::new(),
            stats: None,
            next_req: 0,
            last_refresh: now,
            quit: false,
        }
    }

    /// The screen on top.
    pub fn top(&self) -> &Screen {
        // The stack is never empty: Back stops at one screen and Jump replaces it with one.
        self.stack.last().expect("the screen stack is never empty")
    }

    /// The screen on top, mutably.
    pub fn top_mut(&mut self) -> &mut Screen {
        self.stack
            .last_mut()
            .expect("the screen stack is never empty")
    }

    /// The view on top.
    pub fn view(&self) -> ViewId {
        self.top().view
    }

    /// A new request id.
    pub fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Log lines matching the Logs view's filter.
    pub fn visible_logs(&self) -> Vec<&LogLine> {
        let filter = self
            .stack
            .iter()
            .rev()
            .find(|s| s.view == ViewId::Logs)
            .and_then(|s| s.table.filter.clone())
            .map(|f| f.to_lowercase());
        match filter {
            Some(f) if !f.is_empty() => self
                .logs
                .iter()
                .filter(|l| {
                    l.message.to_lowercase().contains(&f) || l.target.to_lowercase().contains(&f)
                })
                .collect(),
            _ => self.logs.iter().collect(),
        }
    }

    /// Adds a toast.
    pub fn toast(&mut self, level: Level, text: impl AsRef<str>) {
        let text = crate::text::strip_control(text.as_ref()).replace('\n', " ");
        self.toasts.push(Toast {
            level,
            text,
            at: self.now,
        });
        if self.toasts.len() > 5 {
            self.toasts.remove(0);
        }
    }
}

/// Rows of table that fit on screen for `view` in a terminal of `size` (see `views::layout`).
pub fn table_rows(view: ViewId, size: (u16, u16)) -> i64 {
    let body = i64::from(size.1).saturating_sub(4); // header 2 + status 1 + hints 1
    let extra = match view {
        ViewId::Campaigns => CAMPAIGN_PANE,
        ViewId::Jobs => JOBS_PANE,
        _ => 0,
    };
    (body - extra - 3).max(1) // borders 2 + column header 1
}

/// Height of the Campaigns view's funnel and chart pane.
pub const CAMPAIGN_PANE: i64 = 12;
/// Height of the Jobs view's sparkline.
pub const JOBS_PANE: i64 = 5;
