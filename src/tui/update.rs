//! The console's one state transition: `update(state, action) -> effects`. Pure: it reads no
//! clock, no terminal and no database; everything it needs arrives in the action, and everything
//! it wants done leaves as an [`Effect`].

use crate::db::browse::{BatchId, BrowseQuery, CampaignId, LeadId, LeadStatus, ProfileId, Rows};
use crate::engine::events::EngineEvent;
use crate::engine::queue::JobId;

use super::action::{Action, Effect, InputKey, Level, ViewId};
use super::columns::{columns, table};
use super::command::{self, Command};
use super::state::{
    table_rows, Confirm, Detail, Focus, InputMode, LineInput, Scope, Screen, State, LOG_KEEP,
    TOAST_MS, TYPE_TO_CONFIRM_OVER,
};

/// Applies `action` to `state` and returns the work to do.
pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    if state.readonly && action.is_mutating() {
        state.toast(Level::Warn, "read-only: this console cannot change data");
        return Vec::new();
    }
    match action {
        Action::Quit => {
            state.quit = true;
            vec![Effect::Quit]
        }
        Action::Jump(view) => show(state, view, Scope::default(), true),
        Action::Back => back(state),
        Action::Enter => drill(state),
        Action::Up => move_by(state, -1),
        Action::Down => move_by(state, 1),
        Action::Top => move_to(state, 0),
        Action::Bottom => move_to(state, i64::MAX),
        Action::HalfPageDown => {
            let h = page_height(state);
            move_by(state, (h / 2).max(1))
        }
        Action::HalfPageUp => {
            let h = page_height(state);
            move_by(state, -(h / 2).max(1))
        }
        Action::PageDown => {
            let h = page_height(state);
            move_by(state, h)
        }
        Action::PageUp => {
            let h = page_height(state);
            move_by(state, -h)
        }
        Action::ColumnLeft | Action::ColumnRight => {
            let n = columns(state.view()).len();
            if n > 0 {
                let t = &mut state.top_mut().table;
                t.column = if action == Action::ColumnLeft {
                    (t.column + n - 1) % n
                } else {
                    (t.column + 1) % n
                };
            }
            Vec::new()
        }
        Action::SortSelected => {
            let view = state.view();
            let col = columns(view).get(state.top().table.column).copied();
            match col.and_then(|c| c.sort.map(|s| (s, c.desc_first))) {
                Some((key, desc_first)) => sort_by(state, key, desc_first),
                None => {
                    state.toast(Level::Info, "this column cannot be sorted");
                    Vec::new()
                }
            }
        }
        Action::SortBy(key) => {
            let col = columns(state.view())
                .iter()
                .find(|c| c.sort == Some(key.as_str()))
                .copied();
            match col {
                Some(c) => sort_by(state, c.sort.unwrap_or_default(), c.desc_first),
                None => Vec::new(),
            }
        }
        Action::Filter => {
            if is_table(state.view()) {
                let current = state.top().table.filter.clone().unwrap_or_default();
                state.mode = InputMode::Filter(LineInput::with(&current));
            }
            Vec::new()
        }
        Action::NextMatch | Action::PrevMatch => {
            if state.top().table.filter.is_none() {
                state.toast(Level::Info, "no filter: press / to filter first");
                return Vec::new();
            }
            let total = total_rows(state);
            if total == 0 {
                return Vec::new();
            }
            let sel = state.top().table.selected;
            let next = if action == Action::NextMatch {
                (sel + 1) % total
            } else {
                (sel + total - 1) % total
            };
            move_to(state, next)
        }
        Action::TogglePause => {
            state.paused = !state.paused;
            if state.paused {
                Vec::new()
            } else {
                reload(state, true)
            }
        }
        Action::ToggleMark => {
            let t = &mut state.top_mut().table;
            if let Some(id) = t.id_at(t.selected) {
                if !t.marks.remove(&id) {
                    t.marks.insert(id);
                }
                t.anchor = Some(t.selected);
            }
            Vec::new()
        }
        Action::MarkRange => mark_range(state),
        Action::ClearMarks => {
            let t = &mut state.top_mut().table;
            t.marks.clear();
            t.anchor = None;
            Vec::new()
        }
        Action::CommandLine => {
            state.mode = InputMode::Command(LineInput::default());
            Vec::new()
        }
        Action::Help => {
            state.mode = if matches!(state.mode, InputMode::Help | InputMode::Text { .. }) {
                InputMode::Normal
            } else {
                InputMode::Help
            };
            Vec::new()
        }
        Action::Refresh => reload(state, true),
        Action::DismissToasts => {
            state.toasts.clear();
            Vec::new()
        }
        Action::ApproveMarked => lead_decision(state, LeadStatus::Approved),
        Action::RejectMarked => lead_decision(state, LeadStatus::Rejected),
        Action::BuildBatch => {
            let campaign = state
                .top()
                .scope
                .campaign
                .as_ref()
                .map(|c| c.0)
                .or_else(|| match selected_row(state) {
                    Some(SelectedRow::Lead { campaign, .. }) => Some(campaign),
                    _ => None,
                });
            match campaign {
                Some(c) => vec![Effect::CreateBatch(c)],
                None => {
                    state.toast(
                        Level::Info,
                        "no campaign: open a campaign's leads or select a lead",
                    );
                    Vec::new()
                }
            }
        }
        Action::ApproveBatch => approve_batch(state),
        Action::RetryJob => match selected_row(state) {
            Some(SelectedRow::Job { id, .. }) => vec![Effect::RetryJob(id)],
            _ => Vec::new(),
        },
        Action::CancelJob => {
            if let Some(SelectedRow::Job { id, kind, status }) = selected_row(state) {
                state.mode = InputMode::Confirm(Box::new(Confirm::new(
                    format!("Cancel job #{id}?"),
                    vec![
                        format!("{kind} is {status}."),
                        "A cancelled job can be retried later with R.".into(),
                    ],
                    Effect::CancelJob(id),
                    None,
                )));
            }
            Vec::new()
        }
        Action::NewCampaign => vec![Effect::EditCampaign(None)],
        Action::EditCampaign
        | Action::ExplainCampaign
        | Action::Discover
        | Action::Qualify
        | Action::Learn => {
            let Some(SelectedRow::Campaign { id, .. }) = selected_row(state) else {
                state.toast(Level::Info, "select a campaign first");
                return Vec::new();
            };
            vec![match action {
                Action::EditCampaign => Effect::EditCampaign(Some(id)),
                Action::ExplainCampaign => Effect::Explain(id),
                Action::Discover => Effect::Discover(id),
                Action::Qualify => Effect::Qualify(id),
                _ => Effect::Learn(id),
            }]
        }
        Action::Input(key) => input(state, key),
        Action::Tick(now) => tick(state, now),
        Action::Resize(w, h) => {
            state.size = (w, h);
            let sel = state.top().table.selected;
            move_to(state, sel)
        }
        Action::Scroll(n) => move_by(state, i64::from(n)),
        Action::Engine(ev) => {
            if let EngineEvent::Job {
                id,
                status,
                progress,
                message,
                ..
            } = &ev
            {
                // Patch the visible row at once; the periodic reload brings the rest.
                if let Some(Rows::Jobs(rows)) =
                    state.top_mut().table.page.as_mut().map(|p| &mut p.rows)
                {
                    if let Some(r) = rows.iter_mut().find(|r| r.id == id.0) {
                        r.status = status.as_str().to_string();
                        r.progress = *progress;
                        r.progress_message = message.clone();
                    }
                }
            }
            Vec::new()
        }
        Action::Logs(lines) => {
            state.logs.extend(lines);
            if state.logs.len() > LOG_KEEP {
                let drop = state.logs.len() - LOG_KEEP;
                state.logs.drain(..drop);
            }
            if state.view() == ViewId::Logs && !state.paused {
                let n = state.visible_logs().len() as i64;
                let t = &mut state.top_mut().table;
                let follow = t.total.is_none_or(|old| t.selected >= old - 1);
                t.total = Some(n);
                if follow {
                    return move_to(state, i64::MAX);
                }
            }
            Vec::new()
        }
        Action::Loaded { req, page, took_ms } => {
            let t = &mut state.top_mut().table;
            if t.req != req {
                return Vec::new();
            }
            t.page = Some(page);
            t.cost_ms = took_ms;
            // The funnel follows the selected campaign once its row is known.
            let want = match selected_row(state) {
                Some(SelectedRow::Campaign { id, .. }) => Some(id),
                _ => None,
            };
            match want {
                Some(id) if state.stats.as_ref().map(|s| s.campaign) != Some(id) => {
                    vec![Effect::LoadStats(id)]
                }
                _ => Vec::new(),
            }
        }
        Action::Counted { req, total } => {
            let now = state.now;
            let t = &mut state.top_mut().table;
            if t.req != req {
                return Vec::new();
            }
            t.total = Some(total);
            t.counted_at = now;
            let sel = t.selected;
            // The list may have shrunk under the selection.
            if sel >= total {
                return move_to(state, sel);
            }
            Vec::new()
        }
        Action::ProfileLoaded {
            req,
            detail,
            images,
        } => {
            let s = state.top_mut();
            if s.req == req {
                if let Some((_, handle)) = s.scope.profile.as_mut() {
                    *handle = detail.handle.clone();
                }
                s.detail = Detail::Profile(detail, images);
            }
            Vec::new()
        }
        Action::BatchLoaded { req, detail } => {
            let s = state.top_mut();
            if s.req == req {
                s.detail = Detail::Batch(detail);
            }
            Vec::new()
        }
        Action::StatsLoaded(stats) => {
            if matches!(selected_row(state), Some(SelectedRow::Campaign { id, .. }) if id == stats.campaign)
            {
                state.stats = Some(*stats);
            }
            Vec::new()
        }
        Action::RateLoaded(rate) => {
            state.job_rate = rate;
            Vec::new()
        }
        Action::MarkIds(ids) => {
            state.top_mut().table.marks.extend(ids);
            Vec::new()
        }
        Action::LeadsChanged {
            requested,
            changed,
            status,
        } => {
            let noun = if changed == 1 { "lead" } else { "leads" };
            let mut msg = format!("{changed} {noun} {status}");
            let skipped = requested as u64 - changed.min(requested as u64);
            if skipped > 0 {
                msg.push_str(&format!(
                    " ({skipped} unchanged: already {status} or past approval)"
                ));
            }
            state.toast(Level::Info, msg);
            let t = &mut state.top_mut().table;
            t.marks.clear();
            t.anchor = None;
            reload(state, true)
        }
        Action::Done(msg) => {
            state.toast(Level::Info, msg);
            reload(state, true)
        }
        Action::Failed(msg) => {
            state.toast(Level::Error, msg);
            Vec::new()
        }
        Action::Toast(level, msg) => {
            state.toast(level, msg);
            Vec::new()
        }
        Action::ShowText(title, body) => {
            state.mode = InputMode::Text {
                title,
                body: crate::text::strip_control(&body),
            };
            Vec::new()
        }
    }
}

fn is_table(view: ViewId) -> bool {
    !matches!(view, ViewId::Profile | ViewId::Batch)
}

/// Rows in the list on top (the log buffer for Logs).
fn total_rows(state: &State) -> i64 {
    if state.view() == ViewId::Logs {
        return state.visible_logs().len() as i64;
    }
    state.top().table.total.unwrap_or(0)
}

fn page_height(state: &State) -> i64 {
    table_rows(state.view(), state.size)
}

/// Opens `view` (as the only screen when `reset`, else on top of the path) and loads it.
fn show(state: &mut State, view: ViewId, scope: Scope, reset: bool) -> Vec<Effect> {
    let screen = Screen::new(view, scope);
    if reset {
        state.stack = vec![screen];
    } else {
        state.stack.push(screen);
    }
    state.stats = None;
    if view == ViewId::Logs {
        let n = state.visible_logs().len() as i64;
        state.top_mut().table.total = Some(n);
        return move_to(state, i64::MAX);
    }
    reload(state, true)
}

fn back(state: &mut State) -> Vec<Effect> {
    if state.toasts.iter().any(|t| t.level == Level::Error) {
        state.toasts.clear();
        return Vec::new();
    }
    if state.top().table.filter.is_some() {
        let t = &mut state.top_mut().table;
        t.filter = None;
        t.selected = 0;
        t.offset = 0;
        t.total = None;
        return reload(state, true);
    }
    if state.stack.len() > 1 {
        state.stack.pop();
        state.stats = None;
        return reload(state, true);
    }
    Vec::new()
}

/// The selected row of the list on top, as much of it as drilling and commands need.
#[derive(Debug, Clone, PartialEq)]
enum SelectedRow {
    Campaign {
        id: CampaignId,
        name: String,
    },
    Candidate {
        profile: ProfileId,
        handle: String,
        campaign: CampaignId,
    },
    Lead {
        profile: ProfileId,
        handle: String,
        campaign: CampaignId,
    },
    Batch {
        id: BatchId,
        messages: i64,
        status: String,
        campaign: String,
    },
    Message {
        profile: ProfileId,
        handle: String,
    },
    Job {
        id: JobId,
        kind: String,
        status: String,
    },
}

fn selected_row(state: &State) -> Option<SelectedRow> {
    let t = &state.top().table;
    let page = t.page.as_ref()?;
    let i = usize::try_from(t.selected - page.offset).ok()?;
    Some(match &page.rows {
        Rows::Campaigns(v) => v.get(i).map(|r| SelectedRow::Campaign {
            id: r.id,
            name: r.name.clone(),
        })?,
        Rows::Candidates(v) => v.get(i).map(|r| SelectedRow::Candidate {
            profile: r.profile,
            handle: r.handle.clone(),
            campaign: r.campaign,
        })?,
        Rows::Leads(v) => v.get(i).map(|r| SelectedRow::Lead {
            profile: r.profile,
            handle: r.handle.clone(),
            campaign: r.campaign,
        })?,
        Rows::Batches(v) => v.get(i).map(|r| SelectedRow::Batch {
            id: r.id,
            messages: r.messages,
            status: r.status.clone(),
            campaign: r.campaign_name.clone(),
        })?,
        Rows::Messages(v) => v.get(i).map(|r| SelectedRow::Message {
            profile: r.profile,
            handle: r.handle.clone(),
        })?,
        Rows::Jobs(v) => v.get(i).map(|r| SelectedRow::Job {
            id: JobId(r.id),
            kind: r.kind.clone(),
            status: r.status.clone(),
        })?,
        Rows::Accounts(_) => return None,
    })
}

fn drill(state: &mut State) -> Vec<Effect> {
    let scope_campaign = state.top().scope.campaign.clone();
    match selected_row(state) {
        Some(SelectedRow::Campaign { id, name }) => show(
            state,
            ViewId::Leads,
            Scope {
                campaign: Some((id, name)),
                ..Default::default()
            },
            false,
        ),
        Some(SelectedRow::Candidate {
            profile,
            handle,
            campaign,
        })
        | Some(SelectedRow::Lead {
            profile,
            handle,
            campaign,
        }) => {
            let campaign = scope_campaign.or(Some((campaign, String::new())));
            show(
                state,
                ViewId::Profile,
                Scope {
                    profile: Some((profile, handle)),
                    campaign,
                    ..Default::default()
                },
                false,
            )
        }
        Some(SelectedRow::Message { profile, handle }) => show(
            state,
            ViewId::Profile,
            Scope {
                profile: Some((profile, handle)),
                ..Default::default()
            },
            false,
        ),
        Some(SelectedRow::Batch { id, .. }) => show(
            state,
            ViewId::Batch,
            Scope {
                batch: Some(id),
                ..Default::default()
            },
            false,
        ),
        Some(SelectedRow::Job { .. }) | None => Vec::new(),
    }
}

fn sort_by(state: &mut State, key: &str, desc_first: bool) -> Vec<Effect> {
    let t = &mut state.top_mut().table;
    if t.sort.as_deref() == Some(key) {
        t.desc = !t.desc;
    } else {
        t.sort = Some(key.to_string());
        t.desc = desc_first;
    }
    if let Some(i) = columns(state.view())
        .iter()
        .position(|c| c.sort == Some(key))
    {
        state.top_mut().table.column = i;
    }
    let t = &mut state.top_mut().table;
    t.selected = 0;
    t.offset = 0;
    t.page = None;
    reload(state, false)
}

fn move_by(state: &mut State, delta: i64) -> Vec<Effect> {
    if !is_table(state.view()) {
        let s = state.top_mut();
        s.scroll = (i64::from(s.scroll) + delta).clamp(0, i64::from(u16::MAX)) as u16;
        return Vec::new();
    }
    let sel = state.top().table.selected;
    move_to(state, sel.saturating_add(delta))
}

/// Moves the selection to `index` (clamped), scrolls so it is visible, and fetches the window
/// when the loaded rows do not cover it.
fn move_to(state: &mut State, index: i64) -> Vec<Effect> {
    if !is_table(state.view()) {
        if index == 0 {
            state.top_mut().scroll = 0;
        }
        return Vec::new();
    }
    let height = page_height(state);
    let total = total_rows(state);
    let old_selected = state.top().table.selected;
    let t = &mut state.top_mut().table;
    let sel = if total == 0 {
        0
    } else {
        index.clamp(0, total - 1)
    };
    t.selected = sel;
    if sel < t.offset {
        t.offset = sel;
    } else if sel >= t.offset + height {
        t.offset = sel - height + 1;
    }
    t.offset = t.offset.clamp(0, (total - height).max(0));
    let mut effects = Vec::new();
    if state.view() != ViewId::Logs
        && !state.top().table.covers(state.top().table.offset, height)
        && total > 0
    {
        effects.extend(fetch(state, false));
    }
    if state.view() == ViewId::Campaigns && old_selected != sel {
        effects.extend(stats_effect(state));
    }
    effects
}

fn stats_effect(state: &State) -> Option<Effect> {
    match selected_row(state) {
        Some(SelectedRow::Campaign { id, .. }) => Some(Effect::LoadStats(id)),
        _ => None,
    }
}

fn query(state: &State, offset: i64, limit: i64) -> Option<BrowseQuery> {
    let s = state.top();
    let mut q = BrowseQuery::new(table(s.view)?);
    q.campaign = s.scope.campaign.as_ref().map(|c| c.0);
    q.batch = s.scope.batch;
    q.status = s.scope.status.clone();
    q.filter = s.table.filter.clone();
    q.sort = s.table.sort.clone();
    q.desc = s.table.desc;
    q.offset = offset;
    q.limit = limit;
    q.now = state.now;
    Some(q)
}

/// Fetches the visible window of the list on top (with its count when `count`).
fn fetch(state: &mut State, count: bool) -> Vec<Effect> {
    let height = page_height(state);
    // One page of margin on each side: stepping past the edge of the screen does not cost a
    // query per key, while only the visible rows are ever turned into table rows.
    let offset = (state.top().table.offset - height).max(0);
    let Some(query) = query(state, offset, height * 3) else {
        return Vec::new();
    };
    let req = state.req();
    let t = &mut state.top_mut().table;
    t.req = req;
    let count = count || t.total.is_none();
    vec![Effect::Fetch {
        req,
        query,
        total: t.total,
        count,
    }]
}

/// Reloads what the screen on top shows. `recount`: count the rows again too.
fn reload(state: &mut State, recount: bool) -> Vec<Effect> {
    state.last_refresh = state.now;
    let view = state.view();
    match view {
        ViewId::Logs => {
            let n = state.visible_logs().len() as i64;
            state.top_mut().table.total = Some(n);
            Vec::new()
        }
        ViewId::Profile => {
            let req = state.req();
            let s = state.top_mut();
            s.req = req;
            match s.scope.profile.as_ref() {
                Some((profile, _)) => vec![Effect::LoadProfile {
                    req,
                    profile: *profile,
                    campaign: s.scope.campaign.as_ref().map(|c| c.0),
                }],
                None => Vec::new(),
            }
        }
        ViewId::Batch => {
            let req = state.req();
            let s = state.top_mut();
            s.req = req;
            match s.scope.batch {
                Some(batch) => vec![Effect::LoadBatch { req, batch }],
                None => Vec::new(),
            }
        }
        _ => {
            let mut effects = fetch(state, recount);
            match view {
                ViewId::Jobs => effects.push(Effect::LoadRate),
                ViewId::Campaigns => effects.extend(stats_effect(state)),
                _ => {}
            }
            effects
        }
    }
}

fn tick(state: &mut State, now: i64) -> Vec<Effect> {
    state.now = now;
    state
        .toasts
        .retain(|t| t.level == Level::Error || now - t.at < TOAST_MS);
    // A profile does not change while it is read (and reloading re-decodes its images).
    let t = &state.top().table;
    if state.paused
        || state.mode != InputMode::Normal
        || state.view() == ViewId::Profile
        || now - state.last_refresh < t.refresh_every()
    {
        return Vec::new();
    }
    let recount = now - t.counted_at >= t.recount_every();
    reload(state, recount)
}

fn mark_range(state: &mut State) -> Vec<Effect> {
    let t = &state.top().table;
    let Some(anchor) = t.anchor else {
        return update(state, Action::ToggleMark);
    };
    let (from, to) = (anchor.min(t.selected), anchor.max(t.selected));
    let ids: Option<Vec<i64>> = (from..=to).map(|i| t.id_at(i)).collect();
    if let Some(ids) = ids {
        state.top_mut().table.marks.extend(ids);
        return Vec::new();
    }
    // The range runs past the loaded window: ask for its ids.
    match query(state, from, (to - from + 1).min(10_000)) {
        Some(q) => vec![Effect::LoadIds(q)],
        None => Vec::new(),
    }
}

fn lead_decision(state: &mut State, status: LeadStatus) -> Vec<Effect> {
    if state.view() != ViewId::Leads {
        return Vec::new();
    }
    let t = &state.top().table;
    let ids: Vec<LeadId> = if t.marks.is_empty() {
        t.id_at(t.selected).map(LeadId).into_iter().collect()
    } else {
        t.marks.iter().copied().map(LeadId).collect()
    };
    if ids.is_empty() {
        state.toast(Level::Info, "no lead selected");
        return Vec::new();
    }
    vec![Effect::SetLeadStatus { ids, status }]
}

fn approve_batch(state: &mut State) -> Vec<Effect> {
    let (id, messages, status, campaign, accounts, first, last) =
        match (state.view(), &state.top().detail) {
            (ViewId::Batch, Detail::Batch(d)) => {
                let mut accounts: Vec<String> = d
                    .messages
                    .iter()
                    .filter_map(|m| m.account.clone())
                    .collect();
                accounts.sort();
                accounts.dedup();
                let times: Vec<i64> = d.messages.iter().filter_map(|m| m.not_before).collect();
                (
                    d.batch.id,
                    d.batch.messages,
                    d.batch.status.clone(),
                    d.batch.campaign_name.clone(),
                    Some(accounts),
                    times.iter().min().copied(),
                    times.iter().max().copied(),
                )
            }
            (ViewId::Approvals, _) => match selected_row(state) {
                Some(SelectedRow::Batch {
                    id,
                    messages,
                    status,
                    campaign,
                }) => (id, messages, status, campaign, None, None, None),
                _ => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    if status != "draft" {
        state.toast(
            Level::Info,
            format!("batch #{id} is {status}: only a draft batch can be approved"),
        );
        return Vec::new();
    }
    if messages == 0 {
        state.toast(Level::Info, format!("batch #{id} has no messages"));
        return Vec::new();
    }
    let noun = if messages == 1 { "message" } else { "messages" };
    let mut lines = vec![format!(
        "{messages} {noun} for campaign {} will be sent.",
        crate::text::strip_control(&campaign)
    )];
    if let Some(accounts) = accounts {
        let accounts: Vec<String> = accounts
            .iter()
            .map(|a| format!("@{}", crate::text::strip_control(a)))
            .collect();
        lines.push(format!(
            "From: {}",
            if accounts.is_empty() {
                "(no account assigned)".into()
            } else {
                accounts.join(", ")
            }
        ));
    }
    if let (Some(f), Some(l)) = (first, last) {
        lines.push(format!(
            "Planned: {} … {}",
            super::views::fmt_time(Some(f)),
            super::views::fmt_time(Some(l))
        ));
    }
    lines.push("Sent messages cannot be recalled.".into());
    let word = if messages > TYPE_TO_CONFIRM_OVER {
        lines.push(format!(
            "More than {TYPE_TO_CONFIRM_OVER} messages: type `send` to enable Approve."
        ));
        Some("send")
    } else {
        None
    };
    state.mode = InputMode::Confirm(Box::new(Confirm::new(
        format!("Approve batch #{id}?"),
        lines,
        Effect::ApproveBatch(id),
        word,
    )));
    Vec::new()
}

fn input(state: &mut State, key: InputKey) -> Vec<Effect> {
    let mode = std::mem::take(&mut state.mode);
    match mode {
        InputMode::Normal | InputMode::Help | InputMode::Text { .. } => Vec::new(),
        InputMode::Confirm(mut c) => match key {
            InputKey::Esc => Vec::new(),
            InputKey::Tab | InputKey::BackTab | InputKey::Left | InputKey::Right => {
                c.focus = if c.focus == Focus::Cancel {
                    Focus::Confirm
                } else {
                    Focus::Cancel
                };
                state.mode = InputMode::Confirm(c);
                Vec::new()
            }
            InputKey::Enter => match c.focus {
                Focus::Cancel => Vec::new(),
                Focus::Confirm if c.armed() => vec![c.effect],
                Focus::Confirm => {
                    let word = c.word.clone().unwrap_or_default();
                    state.mode = InputMode::Confirm(c);
                    state.toast(Level::Warn, format!("type `{word}` first"));
                    Vec::new()
                }
            },
            InputKey::Char(ch) if c.word.is_some() => {
                c.typed.push(ch);
                state.mode = InputMode::Confirm(c);
                Vec::new()
            }
            InputKey::Backspace => {
                c.typed.pop();
                state.mode = InputMode::Confirm(c);
                Vec::new()
            }
            _ => {
                state.mode = InputMode::Confirm(c);
                Vec::new()
            }
        },
        InputMode::Command(mut line) => {
            if edit_line(&mut line, key) {
                state.mode = InputMode::Command(line);
                return Vec::new();
            }
            match key {
                InputKey::Tab => {
                    state.mode =
                        InputMode::Command(LineInput::with(&command::complete(&line.text)));
                    Vec::new()
                }
                InputKey::Enter => run_command(state, &line.text),
                InputKey::Esc => Vec::new(),
                _ => {
                    state.mode = InputMode::Command(line);
                    Vec::new()
                }
            }
        }
        InputMode::Filter(mut line) => {
            if edit_line(&mut line, key) {
                state.mode = InputMode::Filter(line);
                return Vec::new();
            }
            match key {
                InputKey::Enter => {
                    let text = line.text.trim().to_string();
                    let t = &mut state.top_mut().table;
                    t.filter = if text.is_empty() { None } else { Some(text) };
                    t.selected = 0;
                    t.offset = 0;
                    t.total = None;
                    t.page = None;
                    reload(state, true)
                }
                InputKey::Esc => Vec::new(),
                _ => {
                    state.mode = InputMode::Filter(line);
                    Vec::new()
                }
            }
        }
    }
}

/// Applies an editing key to a line; false when the key is not an edit (Enter, Esc, Tab).
fn edit_line(line: &mut LineInput, key: InputKey) -> bool {
    match key {
        InputKey::Char(c) => line.insert(c),
        InputKey::Backspace => line.backspace(),
        InputKey::Delete => line.delete(),
        InputKey::Left => line.cursor = line.cursor.saturating_sub(1),
        InputKey::Right => line.cursor = (line.cursor + 1).min(line.text.chars().count()),
        InputKey::Home => line.cursor = 0,
        InputKey::End => line.cursor = line.text.chars().count(),
        InputKey::Tab | InputKey::BackTab | InputKey::Enter | InputKey::Esc => return false,
    }
    true
}

fn run_command(state: &mut State, text: &str) -> Vec<Effect> {
    match command::parse(text) {
        Ok(Command::Quit) => update(state, Action::Quit),
        Ok(Command::Help) => {
            state.mode = InputMode::Help;
            Vec::new()
        }
        Ok(Command::Pause) => update(state, Action::TogglePause),
        Ok(Command::Show(view, scope)) => show(state, view, scope, true),
        Err(e) => {
            state.toast(Level::Warn, e);
            Vec::new()
        }
    }
}
