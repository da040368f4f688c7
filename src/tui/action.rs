//! What can happen in the console: [`Action`]s (from keys, the keymap file, commands and finished
//! effects) and [`Effect`]s (work `update` asks the runtime to do against the engine).

use serde::Deserialize;

use crate::db::browse::{
    BatchDetail, BatchId, BrowseQuery, CampaignId, CampaignStats, LeadId, LeadStatus, Page,
    ProfileDetail, ProfileId,
};
use crate::engine::events::EngineEvent;
use crate::engine::queue::JobId;

use super::image::CellImage;

/// The console's screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ViewId {
    /// Campaigns with their funnel (1).
    Campaigns,
    /// Campaign candidates (2).
    Candidates,
    /// Leads (3).
    Leads,
    /// DM batches waiting for approval (4).
    Approvals,
    /// Messages (5).
    Messages,
    /// Jobs (6).
    Jobs,
    /// Sender accounts (7).
    Accounts,
    /// The log ring buffer (8).
    Logs,
    /// One profile (drill-down only).
    Profile,
    /// One batch with every message (drill-down only).
    Batch,
}

impl ViewId {
    /// The views reachable with `1`–`8`, in order.
    pub const TABS: [ViewId; 8] = [
        ViewId::Campaigns,
        ViewId::Candidates,
        ViewId::Leads,
        ViewId::Approvals,
        ViewId::Messages,
        ViewId::Jobs,
        ViewId::Accounts,
        ViewId::Logs,
    ];

    /// The title shown in tabs and breadcrumbs.
    pub fn title(self) -> &'static str {
        match self {
            ViewId::Campaigns => "Campaigns",
            ViewId::Candidates => "Candidates",
            ViewId::Leads => "Leads",
            ViewId::Approvals => "Approvals",
            ViewId::Messages => "Messages",
            ViewId::Jobs => "Jobs",
            ViewId::Accounts => "Accounts",
            ViewId::Logs => "Logs",
            ViewId::Profile => "Profile",
            ViewId::Batch => "Batch",
        }
    }

    /// The keymap section name (`[leads]` in keymap.toml).
    pub fn key_name(self) -> &'static str {
        match self {
            ViewId::Campaigns => "campaigns",
            ViewId::Candidates => "candidates",
            ViewId::Leads => "leads",
            ViewId::Approvals => "approvals",
            ViewId::Messages => "messages",
            ViewId::Jobs => "jobs",
            ViewId::Accounts => "accounts",
            ViewId::Logs => "logs",
            ViewId::Profile => "profile",
            ViewId::Batch => "batch",
        }
    }

    /// Every view.
    pub const ALL: [ViewId; 10] = [
        ViewId::Campaigns,
        ViewId::Candidates,
        ViewId::Leads,
        ViewId::Approvals,
        ViewId::Messages,
        ViewId::Jobs,
        ViewId::Accounts,
        ViewId::Logs,
        ViewId::Profile,
        ViewId::Batch,
    ];
}

/// A key inside a text field or a dialog (the command line, the filter, a confirmation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKey {
    /// A printable character.
    Char(char),
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    Tab,
    BackTab,
    Enter,
    Esc,
}

/// How loud a toast is; errors stay until dismissed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Everything that changes the console's state. The user-facing variants deserialize from
/// `keymap.toml` (`"a" = "approve_marked"`, `"1" = { jump = "campaigns" }`); the rest carry
/// input and results and cannot be bound.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leave the console.
    Quit,
    /// Show a view (resets the drill-down path).
    Jump(ViewId),
    /// Back to the previous screen (or clear the filter / dismiss toasts first).
    Back,
    /// Drill into the selected row.
    Enter,
    /// Selection up one row (or scroll up in a detail view).
    Up,
    /// Selection down one row.
    Down,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Half a page down.
    HalfPageDown,
    /// Half a page up.
    HalfPageUp,
    /// A page down.
    PageDown,
    /// A page up.
    PageUp,
    /// Select the column to the left (for sorting).
    ColumnLeft,
    /// Select the column to the right.
    ColumnRight,
    /// Sort by the selected column (again: reverse).
    SortSelected,
    /// Sort by a named column (again: reverse).
    SortBy(String),
    /// Open the filter line.
    Filter,
    /// Next match (next row of the filtered list, wrapping).
    NextMatch,
    /// Previous match.
    PrevMatch,
    /// Pause or resume live updates.
    TogglePause,
    /// Mark or unmark the selected row.
    ToggleMark,
    /// Mark every row between the last marked row and the selection.
    MarkRange,
    /// Clear all marks.
    ClearMarks,
    /// Open the command line.
    CommandLine,
    /// Show or hide help.
    Help,
    /// Reload the view now.
    Refresh,
    /// Dismiss every toast.
    DismissToasts,
    /// Approve the marked leads (or the selected one).
    ApproveMarked,
    /// Reject the marked leads (or the selected one).
    RejectMarked,
    /// Build a DM batch from the campaign's approved leads.
    BuildBatch,
    /// Approve the selected batch for sending (asks first).
    ApproveBatch,
    /// Retry the selected job.
    RetryJob,
    /// Cancel the selected job (asks first).
    CancelJob,
    /// Write a new campaign in `$EDITOR`.
    NewCampaign,
    /// Edit the selected campaign in `$EDITOR`.
    EditCampaign,
    /// Explain the selected campaign.
    ExplainCampaign,
    /// Discover profiles for the selected campaign.
    Discover,
    /// Qualify the selected campaign now.
    Qualify,
    /// Retrain the selected campaign's weights now.
    Learn,

    /// A key inside a text field or dialog.
    #[serde(skip)]
    Input(InputKey),
    /// Time passed (unix ms now).
    #[serde(skip)]
    Tick(i64),
    /// The terminal has this many columns and rows.
    #[serde(skip)]
    Resize(u16, u16),
    /// Mouse wheel: positive scrolls down.
    #[serde(skip)]
    Scroll(i32),
    /// An engine event arrived.
    #[serde(skip)]
    Engine(EngineEvent),
    /// The log buffer has new lines.
    #[serde(skip)]
    Logs(Vec<super::logs::LogLine>),
    /// A window of rows arrived for request `req`.
    #[serde(skip)]
    Loaded {
        req: u64,
        page: Page,
        /// How long the reads took (live reloads back off from slow lists).
        took_ms: i64,
    },
    /// A row count arrived for request `req`.
    #[serde(skip)]
    Counted { req: u64, total: i64 },
    /// A profile arrived.
    #[serde(skip)]
    ProfileLoaded {
        req: u64,
        detail: Box<ProfileDetail>,
        images: Vec<Option<CellImage>>,
    },
    /// A batch arrived.
    #[serde(skip)]
    BatchLoaded { req: u64, detail: Box<BatchDetail> },
    /// A campaign's stats arrived.
    #[serde(skip)]
    StatsLoaded(Box<CampaignStats>),
    /// Jobs per minute arrived.
    #[serde(skip)]
    RateLoaded(Vec<u64>),
    /// Row ids for a range mark arrived.
    #[serde(skip)]
    MarkIds(Vec<i64>),
    /// Leads changed status.
    #[serde(skip)]
    LeadsChanged {
        requested: usize,
        changed: u64,
        status: LeadStatus,
    },
    /// A command finished: say so, and reload.
    #[serde(skip)]
    Done(String),
    /// Something failed.
    #[serde(skip)]
    Failed(String),
    /// Show a toast.
    #[serde(skip)]
    Toast(Level, String),
    /// Show a text popup (title, body).
    #[serde(skip)]
    ShowText(String, String),
}

impl Action {
    /// True for actions that change data: they are not bound at all in `--readonly`.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Action::ApproveMarked
                | Action::RejectMarked
                | Action::BuildBatch
                | Action::ApproveBatch
                | Action::RetryJob
                | Action::CancelJob
                | Action::NewCampaign
                | Action::EditCampaign
                | Action::Discover
                | Action::Qualify
                | Action::Learn
        )
    }

    /// A short label for the hint bar and help (`None` for actions that are never bound).
    pub fn label(&self) -> Option<String> {
        Some(
            match self {
                Action::Quit => "quit",
                Action::Jump(v) => return Some(v.title().to_lowercase()),
                Action::Back => "back",
                Action::Enter => "open",
                Action::Up => "up",
                Action::Down => "down",
                Action::Top => "top",
                Action::Bottom => "bottom",
                Action::HalfPageDown => "half page down",
                Action::HalfPageUp => "half page up",
                Action::PageDown => "page down",
                Action::PageUp => "page up",
                Action::ColumnLeft => "column left",
                Action::ColumnRight => "column right",
                Action::SortSelected => "sort",
                Action::SortBy(c) => return Some(format!("sort by {c}")),
                Action::Filter => "filter",
                Action::NextMatch => "next match",
                Action::PrevMatch => "previous match",
                Action::TogglePause => "pause",
                Action::ToggleMark => "mark",
                Action::MarkRange => "mark range",
                Action::ClearMarks => "clear marks",
                Action::CommandLine => "command",
                Action::Help => "help",
                Action::Refresh => "refresh",
                Action::DismissToasts => "dismiss",
                Action::ApproveMarked => "approve",
                Action::RejectMarked => "reject",
                Action::BuildBatch => "build batch",
                Action::ApproveBatch => "approve batch",
                Action::RetryJob => "retry",
                Action::CancelJob => "cancel job",
                Action::NewCampaign => "new",
                Action::EditCampaign => "edit",
                Action::ExplainCampaign => "explain",
                Action::Discover => "discover",
                Action::Qualify => "qualify",
                Action::Learn => "learn",
                _ => return None,
            }
            .to_string(),
        )
    }
}

/// Work `update` asks for; the runtime runs it and feeds the result back as an [`Action`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read a window (and the count when `count`).
    Fetch {
        req: u64,
        query: BrowseQuery,
        total: Option<i64>,
        count: bool,
    },
    /// Read a profile (and its images).
    LoadProfile {
        req: u64,
        profile: ProfileId,
        campaign: Option<CampaignId>,
    },
    /// Read a batch.
    LoadBatch { req: u64, batch: BatchId },
    /// Read a campaign's funnel.
    LoadStats(CampaignId),
    /// Read jobs per minute.
    LoadRate,
    /// Read the ids of rows `offset..offset+limit` (range marks beyond the window).
    LoadIds(BrowseQuery),
    /// Set lead statuses.
    SetLeadStatus {
        ids: Vec<LeadId>,
        status: LeadStatus,
    },
    /// Build a batch.
    CreateBatch(CampaignId),
    /// Approve a batch (confirmed).
    ApproveBatch(BatchId),
    /// Retry a job.
    RetryJob(JobId),
    /// Cancel a job (confirmed).
    CancelJob(JobId),
    /// Edit a campaign file in `$EDITOR` (new when `None`).
    EditCampaign(Option<CampaignId>),
    /// Explain a campaign.
    Explain(CampaignId),
    /// Discover.
    Discover(CampaignId),
    /// Qualify.
    Qualify(CampaignId),
    /// Learn.
    Learn(CampaignId),
    /// Leave.
    Quit,
}
