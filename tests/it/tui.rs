//! The console: pure `update` flows, screens drawn into a `TestBackend` (insta snapshots), the
//! windowed reads behind every view on both dialects, and one end-to-end run of the real binary
//! in tmux.

use std::collections::BTreeSet;

use omni::config::{Config, Sources};
use omni::db::browse::{
    self, AccountRow, BatchDetail, BatchId, BatchRow, BrowseQuery, CampaignId, CampaignRow,
    CampaignStats, DayRate, Features, JobRow, LeadId, LeadRow, LeadStatus, MessageId, MessageRow,
    Page, ProfileDetail, ProfileId, Rows, Table, Verdict,
};
use omni::db::{Db, SqlValue};
use omni::engine::{Engine, Mode};
use omni::tui::action::{Action, Effect, ViewId};
use omni::tui::keymap::{Key, Keymap};
use omni::tui::state::{Detail, Focus, InputMode, Scope, State};
use omni::tui::theme::Theme;
use omni::tui::update::update;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::common::{dialects, fresh};

/// 2026-01-01 00:00 UTC: every time in these tests is fixed so snapshots never change.
const NOW: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

// ---------------------------------------------------------------- fixtures

fn lead(i: i64) -> LeadRow {
    let handles = ["alice", "bob", "carol", "dave", "eve"];
    LeadRow {
        id: LeadId(i),
        campaign: CampaignId(1),
        campaign_name: "vegan-creators".into(),
        profile: ProfileId(100 + i),
        handle: if (i as usize) <= handles.len() {
            handles[(i - 1) as usize].into()
        } else {
            format!("user{i}")
        },
        score: 100 - i,
        status: "new".into(),
        followers: Some(1000 * i),
        created_at: NOW - 3_600_000,
        updated_at: NOW - 60_000,
    }
}

/// A Leads screen holding rows `offset..offset+n` of `total`.
fn leads_state(total: i64, n: i64) -> State {
    let mut s = State::new("embedded engine", false, (120, 30), NOW, ViewId::Leads);
    let t = &mut s.top_mut().table;
    t.total = Some(total);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Leads((1..=n).map(lead).collect()),
    });
    s
}

fn key(s: &str) -> Key {
    s.parse().expect("key")
}

/// Feeds keys through the default keymap, collecting effects.
fn press(state: &mut State, keymap: &Keymap, keys: &[&str]) -> Vec<Effect> {
    let mut out = Vec::new();
    for k in keys {
        if let Some(a) = keymap.translate(state, key(k)) {
            out.extend(update(state, a));
        }
    }
    out
}

fn batch_row(id: i64, messages: i64) -> BatchRow {
    BatchRow {
        id: BatchId(id),
        campaign: CampaignId(1),
        campaign_name: "vegan-creators".into(),
        status: "draft".into(),
        messages,
        created_at: NOW - 600_000,
        approved_at: None,
    }
}

fn approvals_state(messages: i64) -> State {
    let mut s = State::new("embedded engine", false, (120, 30), NOW, ViewId::Approvals);
    let t = &mut s.top_mut().table;
    t.total = Some(1);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Batches(vec![batch_row(7, messages)]),
    });
    s
}

// ---------------------------------------------------------------- update: navigation

#[test]
fn j_k_g_and_shift_g_move_the_selection_and_fetch_only_missing_windows() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(1_000_000, 23);
    assert!(
        press(&mut s, &keymap, &["j", "j", "k"]).is_empty(),
        "moving inside the loaded window fetches nothing"
    );
    assert_eq!(s.top().table.selected, 1);
    let fx = press(&mut s, &keymap, &["G"]);
    assert_eq!(s.top().table.selected, 999_999);
    let height = omni::tui::state::table_rows(ViewId::Leads, (120, 30));
    assert_eq!(s.top().table.offset, 1_000_000 - height);
    match fx.as_slice() {
        [Effect::Fetch {
            query,
            total,
            count,
            ..
        }] => {
            assert_eq!(
                (query.offset, query.limit),
                (1_000_000 - 2 * height, 3 * height),
                "the visible window and a page of margin on each side"
            );
            assert_eq!(
                *total,
                Some(1_000_000),
                "the cached count lets the data layer read from the end"
            );
            assert!(!count, "no recount while scrolling");
        }
        other => panic!("expected one fetch, got {other:?}"),
    }
    press(&mut s, &keymap, &["g"]);
    assert_eq!((s.top().table.selected, s.top().table.offset), (0, 0));
    press(&mut s, &keymap, &["ctrl-d"]);
    assert_eq!(s.top().table.selected, height / 2);
    press(&mut s, &keymap, &["pgdn"]);
    assert_eq!(s.top().table.selected, height / 2 + height);
}

#[test]
fn number_keys_jump_and_enter_esc_walk_the_drill_down_path() {
    let keymap = Keymap::defaults(false);
    let mut s = State::new("embedded engine", false, (120, 30), NOW, ViewId::Leads);
    press(&mut s, &keymap, &["1"]);
    assert_eq!(s.view(), ViewId::Campaigns);
    let t = &mut s.top_mut().table;
    t.total = Some(1);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Campaigns(vec![CampaignRow {
            id: CampaignId(3),
            name: "vegan-creators".into(),
            platform: "mastodon".into(),
            status: "active".into(),
            candidates: 10,
            leads: 5,
            approved: 0,
            sent: 0,
            replied: 0,
            created_at: NOW,
        }]),
    });
    let fx = press(&mut s, &keymap, &["enter"]);
    assert_eq!(s.view(), ViewId::Leads);
    assert_eq!(
        s.top().scope.campaign,
        Some((CampaignId(3), "vegan-creators".into()))
    );
    assert!(
        fx.iter().any(
            |e| matches!(e, Effect::Fetch { query, .. } if query.campaign == Some(CampaignId(3)))
        ),
        "the leads of that campaign are fetched: {fx:?}"
    );
    let t = &mut s.top_mut().table;
    t.total = Some(1);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Leads(vec![lead(1)]),
    });
    let fx = press(&mut s, &keymap, &["enter"]);
    assert_eq!(s.view(), ViewId::Profile);
    assert!(matches!(
        fx.as_slice(),
        [Effect::LoadProfile {
            profile: ProfileId(101),
            campaign: Some(CampaignId(3)),
            ..
        }]
    ));
    assert_eq!(s.stack.len(), 3);
    press(&mut s, &keymap, &["esc", "esc"]);
    assert_eq!(s.view(), ViewId::Campaigns);
    press(&mut s, &keymap, &["esc"]);
    assert_eq!(s.stack.len(), 1, "Esc stops at the first screen");
    press(&mut s, &keymap, &["6"]);
    assert_eq!(
        (s.view(), s.stack.len()),
        (ViewId::Jobs, 1),
        "a jump resets the path"
    );
}

#[test]
fn command_line_completes_and_runs_aliases_with_arguments() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    press(&mut s, &keymap, &[":", "j", "tab"]);
    assert_eq!(
        s.mode,
        InputMode::Command(omni::tui::state::LineInput::with("jobs "))
    );
    press(&mut s, &keymap, &["f", "a", "tab", "enter"]);
    assert_eq!(s.view(), ViewId::Jobs);
    assert_eq!(s.top().scope.status.as_deref(), Some("failed"));
    press(&mut s, &keymap, &[":", "l", "d", "space", "3", "enter"]);
    assert_eq!(s.view(), ViewId::Leads);
    assert_eq!(
        s.top().scope.campaign.as_ref().map(|c| c.0),
        Some(CampaignId(3))
    );
    press(&mut s, &keymap, &[":", "n", "o", "p", "e", "enter"]);
    assert!(
        s.toasts.iter().any(|t| t.text.contains("unknown command")),
        "{:?}",
        s.toasts
    );
    press(&mut s, &keymap, &[":", "q", "enter"]);
    assert!(s.quit);
}

#[test]
fn filter_runs_in_the_query_and_esc_clears_it() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    let fx = press(&mut s, &keymap, &["/", "v", "e", "g", "enter"]);
    assert_eq!(s.top().table.filter.as_deref(), Some("veg"));
    assert!(
        matches!(fx.as_slice(), [Effect::Fetch { query, count: true, .. }] if query.filter.as_deref() == Some("veg"))
    );
    let fx = press(&mut s, &keymap, &["esc"]);
    assert_eq!(s.top().table.filter, None);
    assert!(matches!(fx.as_slice(), [Effect::Fetch { query, .. }] if query.filter.is_none()));
}

#[test]
fn sorting_by_the_selected_column_or_a_shift_letter_toggles_direction() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    let fx = press(&mut s, &keymap, &["S"]);
    assert_eq!(
        (s.top().table.sort.as_deref(), s.top().table.desc),
        (Some("score"), true)
    );
    assert!(
        matches!(fx.as_slice(), [Effect::Fetch { query, .. }] if query.sort.as_deref() == Some("score") && query.desc)
    );
    press(&mut s, &keymap, &["O"]);
    assert_eq!(
        (s.top().table.sort.as_deref(), s.top().table.desc),
        (Some("score"), false),
        "O on the same column reverses"
    );
    press(&mut s, &keymap, &["h", "O"]);
    assert_eq!(s.top().table.sort.as_deref(), Some("handle"));
}

#[test]
fn stale_answers_are_dropped() {
    let mut s = leads_state(5, 5);
    let fx = update(&mut s, Action::Refresh);
    let Some(Effect::Fetch { req, .. }) = fx.first() else {
        panic!("fetch")
    };
    let old = Page {
        offset: 0,
        rows: Rows::Leads(vec![lead(9)]),
    };
    update(
        &mut s,
        Action::Loaded {
            req: req - 1,
            page: old,
            took_ms: 1,
        },
    );
    assert_eq!(s.top().table.page.as_ref().map(|p| p.rows.len()), Some(5));
    update(
        &mut s,
        Action::Loaded {
            req: *req,
            page: Page {
                offset: 0,
                rows: Rows::Leads(vec![lead(1)]),
            },
            took_ms: 1,
        },
    );
    assert_eq!(s.top().table.page.as_ref().map(|p| p.rows.len()), Some(1));
}

#[test]
fn pause_stops_live_reloads() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    assert!(
        !update(&mut s, Action::Tick(NOW + 5_000)).is_empty(),
        "live views reload on ticks"
    );
    press(&mut s, &keymap, &["p"]);
    assert!(s.paused);
    assert!(update(&mut s, Action::Tick(NOW + 60_000)).is_empty());
}

#[test]
fn slow_lists_reload_less_often() {
    let mut s = leads_state(1_000_000, 5);
    let fx = update(&mut s, Action::Refresh);
    let Some(Effect::Fetch { req, .. }) = fx.first() else {
        panic!("fetch")
    };
    let page = s.top().table.page.clone().expect("page");
    // A substring filter over a million rows took 1.5 s: reload every 15 s, not every 2 s.
    update(
        &mut s,
        Action::Loaded {
            req: *req,
            page,
            took_ms: 1_500,
        },
    );
    assert!(update(&mut s, Action::Tick(NOW + 5_000)).is_empty());
    assert!(!update(&mut s, Action::Tick(NOW + 15_000)).is_empty());
}

#[test]
fn scrolling_one_row_past_the_screen_does_not_refetch_every_key() {
    let keymap = Keymap::defaults(false);
    let height = omni::tui::state::table_rows(ViewId::Leads, (120, 30));
    let mut s = leads_state(1_000, height);
    let fx = press(&mut s, &keymap, &["ctrl-d", "ctrl-d", "j"]);
    assert_eq!(
        fx.len(),
        1,
        "one fetch when the screen first leaves the loaded rows: {fx:?}"
    );
    let Effect::Fetch { req, query, .. } = &fx[0] else {
        panic!("fetch")
    };
    let rows = (query.offset + 1..=query.offset + query.limit)
        .map(lead)
        .collect();
    update(
        &mut s,
        Action::Loaded {
            req: *req,
            page: Page {
                offset: query.offset,
                rows: Rows::Leads(rows),
            },
            took_ms: 1,
        },
    );
    assert!(press(&mut s, &keymap, &["j", "j", "j", "j", "k"]).is_empty());
}

// ---------------------------------------------------------------- update: marks and lead decisions

#[test]
fn space_marks_v_marks_a_range_and_ctrl_backslash_clears() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    press(&mut s, &keymap, &["space", "j", "j", "j", "V"]);
    assert_eq!(s.top().table.marks, BTreeSet::from([1, 2, 3, 4]));
    press(&mut s, &keymap, &["space"]);
    assert_eq!(
        s.top().table.marks,
        BTreeSet::from([1, 2, 3]),
        "space toggles"
    );
    press(&mut s, &keymap, &["ctrl-\\"]);
    assert!(s.top().table.marks.is_empty());
}

#[test]
fn a_range_beyond_the_loaded_window_asks_for_its_ids() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(1000, 23);
    press(&mut s, &keymap, &["space", "G"]);
    let fx = press(&mut s, &keymap, &["V"]);
    assert!(
        matches!(fx.as_slice(), [Effect::LoadIds(q)] if q.offset == 0 && q.limit == 1000),
        "{fx:?}"
    );
    update(&mut s, Action::MarkIds(vec![1, 500, 1000]));
    assert_eq!(s.top().table.marks.len(), 3);
}

#[test]
fn a_and_r_decide_on_the_marked_leads_or_the_selected_one() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    press(&mut s, &keymap, &["space", "j", "space"]);
    let fx = press(&mut s, &keymap, &["a"]);
    assert_eq!(
        fx,
        vec![Effect::SetLeadStatus {
            ids: vec![LeadId(1), LeadId(2)],
            status: LeadStatus::Approved
        }]
    );
    update(
        &mut s,
        Action::LeadsChanged {
            requested: 2,
            changed: 2,
            status: LeadStatus::Approved,
        },
    );
    assert!(
        s.top().table.marks.is_empty(),
        "marks clear after the decision"
    );
    assert!(s.toasts.iter().any(|t| t.text == "2 leads approved"));
    let fx = press(&mut s, &keymap, &["r"]);
    assert_eq!(
        fx,
        vec![Effect::SetLeadStatus {
            ids: vec![LeadId(2)],
            status: LeadStatus::Rejected
        }]
    );
}

#[test]
fn b_builds_a_batch_for_the_campaign_in_view() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    assert_eq!(
        press(&mut s, &keymap, &["b"]),
        vec![Effect::CreateBatch(CampaignId(1))]
    );
}

// ---------------------------------------------------------------- update: confirmations

#[test]
fn approving_a_batch_asks_first_with_focus_on_cancel() {
    let keymap = Keymap::defaults(false);
    let mut s = approvals_state(5);
    assert!(
        press(&mut s, &keymap, &["a"]).is_empty(),
        "nothing is sent by the key itself"
    );
    let InputMode::Confirm(c) = &s.mode else {
        panic!("a confirmation opens")
    };
    assert_eq!(c.focus, Focus::Cancel);
    assert!(
        press(&mut s, &keymap, &["enter"]).is_empty(),
        "Enter on Cancel does nothing"
    );
    assert_eq!(s.mode, InputMode::Normal);
    press(&mut s, &keymap, &["a", "tab"]);
    assert_eq!(
        press(&mut s, &keymap, &["enter"]),
        vec![Effect::ApproveBatch(BatchId(7))]
    );
}

#[test]
fn a_batch_over_twenty_messages_needs_send_typed() {
    let keymap = Keymap::defaults(false);
    let mut s = approvals_state(21);
    press(&mut s, &keymap, &["a", "tab"]);
    assert!(
        press(&mut s, &keymap, &["enter"]).is_empty(),
        "Approve is disarmed until `send` is typed"
    );
    assert!(
        matches!(s.mode, InputMode::Confirm(_)),
        "the dialog stays open"
    );
    press(&mut s, &keymap, &["s", "e", "n", "x", "backspace"]);
    assert!(
        press(&mut s, &keymap, &["enter"]).is_empty(),
        "`sen` is not `send`"
    );
    press(&mut s, &keymap, &["d"]);
    assert_eq!(
        press(&mut s, &keymap, &["enter"]),
        vec![Effect::ApproveBatch(BatchId(7))]
    );
    // Exactly twenty needs no word.
    let mut s = approvals_state(20);
    press(&mut s, &keymap, &["a", "tab"]);
    assert_eq!(
        press(&mut s, &keymap, &["enter"]),
        vec![Effect::ApproveBatch(BatchId(7))]
    );
}

#[test]
fn no_key_skips_a_sending_confirmation() {
    // Every binding that leads to sending goes through the dialog: no binding yields the effect.
    let keymap = Keymap::defaults(false);
    for b in keymap.bindings() {
        let mut s = approvals_state(3);
        let fx = update(&mut s, b.action.clone());
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::ApproveBatch(_))),
            "{:?} sends without asking",
            b.key
        );
    }
}

#[test]
fn cancelling_a_job_is_confirmed_and_esc_backs_out() {
    let keymap = Keymap::defaults(false);
    let mut s = State::new("embedded engine", false, (120, 30), NOW, ViewId::Jobs);
    let t = &mut s.top_mut().table;
    t.total = Some(1);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Jobs(vec![job_row(42, "running", 40, None)]),
    });
    press(&mut s, &keymap, &["C"]);
    assert!(matches!(&s.mode, InputMode::Confirm(c) if c.focus == Focus::Cancel));
    assert!(press(&mut s, &keymap, &["esc"]).is_empty());
    assert_eq!(s.mode, InputMode::Normal);
    press(&mut s, &keymap, &["C", "right"]);
    assert_eq!(
        press(&mut s, &keymap, &["enter"]),
        vec![Effect::CancelJob(omni::engine::queue::JobId(42))]
    );
    assert_eq!(
        press(&mut s, &keymap, &["R"]),
        vec![Effect::RetryJob(omni::engine::queue::JobId(42))]
    );
}

// ---------------------------------------------------------------- update: read-only

#[test]
fn readonly_binds_no_mutating_key_and_update_refuses_them_anyway() {
    let keymap = Keymap::defaults(true);
    let mut s = leads_state(5, 5);
    s.readonly = true;
    assert!(press(&mut s, &keymap, &["space", "a", "r", "b"]).is_empty());
    assert_eq!(s.top().table.marks.len(), 1, "marking still works");
    assert!(
        update(&mut s, Action::ApproveMarked).is_empty(),
        "even a direct action is refused"
    );
    assert!(s.toasts.iter().any(|t| t.text.starts_with("read-only")));
    let mut s = approvals_state(3);
    s.readonly = true;
    press(&mut s, &keymap, &["a"]);
    assert_eq!(s.mode, InputMode::Normal, "no confirmation even opens");
}

// ---------------------------------------------------------------- rendering

fn job_row(id: i64, status: &str, progress: i64, error: Option<&str>) -> JobRow {
    JobRow {
        id,
        kind: "scrape.profile".into(),
        status: status.into(),
        attempts: 1,
        max_attempts: 5,
        progress,
        progress_message: None,
        error: error.map(String::from),
        campaign: Some(1),
        created_at: NOW - 120_000,
        finished_at: if status == "succeeded" {
            Some(NOW - MIN)
        } else {
            None
        },
    }
}

fn draw(state: &State, readonly: bool, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
    let keymap = Keymap::defaults(readonly);
    let theme = Theme::default();
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| omni::tui::views::render(f, state, &keymap, &theme))
        .expect("draw");
    let buf = term.backend().buffer().clone();
    let text = (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    (text, buf)
}

#[test]
fn snapshot_leads_with_marks_and_hostile_text() {
    let mut s = leads_state(5, 5);
    s.top_mut().scope.campaign = Some((CampaignId(1), "vegan-creators".into()));
    s.stack.insert(
        0,
        omni::tui::state::Screen::new(ViewId::Campaigns, Scope::default()),
    );
    if let Some(Page {
        rows: Rows::Leads(v),
        ..
    }) = s.top_mut().table.page.as_mut()
    {
        v[2].handle = "carol\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}".into();
        v[3].status = "approved".into();
    }
    s.top_mut().table.marks = BTreeSet::from([1, 2]);
    s.top_mut().table.selected = 1;
    let (text, buf) = draw(&s, false, 120, 30);
    assert!(
        !text.contains('\u{1b}') && !text.contains("pwned"),
        "escape sequences never reach the screen"
    );
    // The selected row is highlighted.
    let theme = Theme::default();
    let row_y = (0..30)
        .find(|y| {
            (0..120)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("@bob")
        })
        .expect("bob");
    assert_eq!(
        buf[(2, row_y)].bg,
        theme.selected.bg.expect("selected has a background")
    );
    insta::assert_snapshot!("leads", text);
}

#[test]
fn snapshot_readonly_paused_header_and_hint_bar() {
    let mut s = leads_state(5, 5);
    s.readonly = true;
    s.paused = true;
    let (text, _) = draw(&s, true, 100, 24);
    assert!(text
        .lines()
        .next()
        .is_some_and(|l| l.contains("[RO]") && l.contains("PAUSED")));
    assert!(
        !text.lines().last().unwrap_or("").contains("approve"),
        "no mutating hint in read-only"
    );
    insta::assert_snapshot!("leads_readonly", text);
}

#[test]
fn snapshot_campaigns_with_funnel_and_reply_chart() {
    let mut s = State::new(
        "attached to daemon host-1 (pid 42)",
        false,
        (110, 32),
        NOW,
        ViewId::Campaigns,
    );
    let t = &mut s.top_mut().table;
    t.total = Some(2);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Campaigns(vec![
            CampaignRow {
                id: CampaignId(2),
                name: "climbing-gyms".into(),
                platform: "mastodon".into(),
                status: "paused".into(),
                candidates: 120,
                leads: 8,
                approved: 2,
                sent: 0,
                replied: 0,
                created_at: NOW - 86_400_000,
            },
            CampaignRow {
                id: CampaignId(1),
                name: "vegan-creators".into(),
                platform: "mastodon".into(),
                status: "active".into(),
                candidates: 12_345,
                leads: 310,
                approved: 40,
                sent: 200,
                replied: 31,
                created_at: NOW - 10 * 86_400_000,
            },
        ]),
    });
    s.stats = Some(CampaignStats {
        campaign: CampaignId(2),
        candidates: 12_345,
        shortlisted: 900,
        leads: 310,
        sent: 200,
        replied: 31,
        per_day: (0..14)
            .map(|i| DayRate {
                day: NOW / 86_400_000 - 13 + i,
                sent: 20,
                replied: (i % 5) + 1,
            })
            .collect(),
    });
    let (text, _) = draw(&s, false, 110, 32);
    insta::assert_snapshot!("campaigns", text);
}

#[test]
fn snapshot_jobs_with_gauges_errors_and_sparkline() {
    let mut s = State::new("embedded engine", false, (120, 24), NOW, ViewId::Jobs);
    let t = &mut s.top_mut().table;
    t.total = Some(3);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Jobs(vec![
            job_row(3, "running", 45, None),
            job_row(
                2,
                "dead",
                0,
                Some("HTTP 429 from mastodon.example: rate limited\nretry later"),
            ),
            job_row(1, "succeeded", 100, None),
        ]),
    });
    s.job_rate = (0..60).map(|i| (i % 7) as u64).collect();
    let (text, _) = draw(&s, false, 120, 24);
    insta::assert_snapshot!("jobs", text);
}

fn profile_detail() -> ProfileDetail {
    ProfileDetail {
        id: ProfileId(101),
        platform: "mastodon".into(),
        handle: "alice".into(),
        external_id: "109999".into(),
        first_seen: NOW - 7 * 86_400_000,
        last_seen: NOW - 3_600_000,
        last_changed: NOW - 2 * 86_400_000,
        fetch_error: None,
        features: Some(Features {
            followers: 12_400,
            following: 310,
            posts_count: 880,
            engagement_rate: 0.034,
            posts_per_week: 4.5,
            last_post_at: Some(NOW - 86_400_000),
            account_age_days: 1200,
            language: Some("en".into()),
            is_bot: false,
            has_link: true,
            has_email: false,
            text: "plant-based recipes every week\n\u{1b}[31mlentils forever".into(),
            image_keys: vec!["ab".repeat(32), "cd".repeat(32)],
        }),
        verdict: Some(Verdict {
            model: "llama3.2-vision".into(),
            score: 87,
            qualified: true,
            reasons: vec![
                "posts vegan recipes weekly".into(),
                "english-speaking audience".into(),
            ],
            red_flags: vec!["sells supplements".into()],
            opener: "Loved your lentil stew!".into(),
            created_at: NOW - 86_400_000,
        }),
        lead: Some(lead(1)),
        message: Some(MessageRow {
            id: MessageId(9),
            batch: BatchId(7),
            lead: LeadId(1),
            profile: ProfileId(101),
            handle: "alice".into(),
            account: Some("sender1".into()),
            status: "draft".into(),
            attempts: 0,
            not_before: Some(NOW + 3_600_000),
            sent_at: None,
            error: None,
            body: "Hi Alice! Loved your lentil stew!\nWould you try our oat milk?".into(),
        }),
    }
}

#[test]
fn snapshot_profile_with_one_image_and_one_missing() {
    let mut s = State::new("embedded engine", false, (120, 40), NOW, ViewId::Leads);
    s.stack.push(omni::tui::state::Screen::new(
        ViewId::Profile,
        Scope {
            profile: Some((ProfileId(101), "alice".into())),
            ..Default::default()
        },
    ));
    // A 4×4 checker: drawn as half blocks; the second image is absent from the store.
    let img = omni::tui::image::CellImage {
        width: 4,
        height: 4,
        rgb: (0..16)
            .map(|i| {
                if (i + i / 4) % 2 == 0 {
                    [255, 255, 255]
                } else {
                    [0, 0, 0]
                }
            })
            .collect(),
    };
    s.top_mut().detail = Detail::Profile(Box::new(profile_detail()), vec![Some(img), None]);
    let (text, buf) = draw(&s, false, 120, 40);
    assert!(text.contains("▀▀▀▀"), "the image is drawn as half blocks");
    assert!(text.contains("[image 2 missing]"));
    let y = (0..40)
        .find(|y| {
            (0..120)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("▀▀▀▀")
        })
        .expect("image row");
    let x = (0..120)
        .find(|x| buf[(*x, y)].symbol() == "▀")
        .expect("image cell");
    assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Rgb(255, 255, 255));
    assert_eq!(buf[(x, y)].bg, ratatui::style::Color::Rgb(0, 0, 0));
    insta::assert_snapshot!("profile", text);
}

fn batch_detail(n: i64) -> BatchDetail {
    BatchDetail {
        batch: batch_row(7, n),
        messages: (1..=n)
            .map(|i| MessageRow {
                id: MessageId(i),
                batch: BatchId(7),
                lead: LeadId(i),
                profile: ProfileId(100 + i),
                handle: lead(i).handle,
                account: Some(if i % 2 == 0 {
                    "sender2".into()
                } else {
                    "sender1".into()
                }),
                status: "draft".into(),
                attempts: 0,
                not_before: Some(NOW + i * 10 * MIN),
                sent_at: None,
                error: None,
                body: format!("Hi {}! Loved your posts.", lead(i).handle),
            })
            .collect(),
    }
}

#[test]
fn snapshot_batch_confirmation_over_twenty_messages() {
    let keymap = Keymap::defaults(false);
    let mut s = State::new("embedded engine", false, (100, 30), NOW, ViewId::Approvals);
    s.stack.push(omni::tui::state::Screen::new(
        ViewId::Batch,
        Scope {
            batch: Some(BatchId(7)),
            ..Default::default()
        },
    ));
    s.top_mut().detail = Detail::Batch(Box::new(batch_detail(25)));
    press(&mut s, &keymap, &["a", "s", "e"]);
    let (text, _) = draw(&s, false, 100, 30);
    assert!(
        text.contains("From: @sender1, @sender2"),
        "the dialog names the accounts"
    );
    insta::assert_snapshot!("batch_confirm", text);
}

#[test]
fn snapshot_help_overlay_lists_the_views_bindings() {
    let keymap = Keymap::defaults(false);
    let mut s = leads_state(5, 5);
    press(&mut s, &keymap, &["?"]);
    let (text, _) = draw(&s, false, 120, 40);
    assert!(text.contains("approve") && text.contains("Ctrl-d"));
    insta::assert_snapshot!("help", text);
}

#[test]
fn a_small_terminal_gets_a_message_instead_of_a_broken_screen() {
    let s = leads_state(5, 5);
    let (text, _) = draw(&s, false, 60, 20);
    assert!(
        text.contains("terminal too small (need 80×24, have 60×20)"),
        "{text}"
    );
}

#[test]
fn accounts_and_messages_render_their_rows() {
    let mut s = State::new("embedded engine", false, (120, 24), NOW, ViewId::Accounts);
    let t = &mut s.top_mut().table;
    t.total = Some(1);
    t.page = Some(Page {
        offset: 0,
        rows: Rows::Accounts(vec![AccountRow {
            id: omni::db::browse::AccountId(1),
            platform: "mastodon".into(),
            handle: "sender1".into(),
            daily_cap: 40,
            hourly_cap: 8,
            min_gap_secs: 90,
            warmup_days: 7,
            timezone: "Europe/Berlin".into(),
            paused_until: None,
            sent_24h: 12,
        }]),
    });
    let (text, _) = draw(&s, false, 120, 24);
    assert!(
        text.contains("@sender1") && text.contains("12/40") && text.contains("Europe/Berlin"),
        "{text}"
    );
}

// ---------------------------------------------------------------- data layer (both dialects)

async fn insert(db: &Db, sql: &str, args: Vec<SqlValue>) -> i64 {
    let sql = format!("{sql} RETURNING id");
    let row = omni::db::bind_all(sqlx::query(&sql), &args)
        .fetch_one(db.writer())
        .await
        .expect(&sql);
    sqlx::Row::try_get::<i64, _>(&row, "id").expect("id")
}

/// What `seed` wrote.
pub struct Seeded {
    pub campaign: i64,
    pub leads: Vec<(String, i64)>,
    pub batch: i64,
}

/// A campaign with five scored, qualified leads (alice … eve), an account, a draft batch of two
/// messages, and a few jobs.
pub async fn seed(db: &Db) -> Seeded {
    use SqlValue::{Int, Text};
    let t = |s: &str| Text(s.to_string());
    let campaign = insert(
        db,
        "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
         VALUES ($1, 'mastodon', 'active', '{}', '1 = 1', '[]', 'h1', $2, $2)",
        vec![t("vegan-creators"), Int(NOW)],
    )
    .await;
    insert(
        db,
        "INSERT INTO campaigns (name, platform, status, spec, compiled_where, compiled_params, criteria_hash, created_at, updated_at) \
         VALUES ('climbing-gyms', 'mastodon', 'paused', '{}', '1 = 1', '[]', 'h2', $1, $1)",
        vec![Int(NOW + 1)],
    )
    .await;
    let account = insert(
        db,
        "INSERT INTO accounts (platform, handle, token_env, daily_cap, hourly_cap, min_gap_secs, jitter_secs, created_at) \
         VALUES ('mastodon', 'sender1', 'OMNI_SENDER1', 40, 8, 90, 30, $1)",
        vec![Int(NOW)],
    )
    .await;
    let mut leads = Vec::new();
    for (i, handle) in ["alice", "bob", "carol", "dave", "eve"].iter().enumerate() {
        let i = i as i64;
        let profile = insert(
            db,
            "INSERT INTO profiles_raw (platform, external_id, handle, payload, content_hash, first_seen, last_seen, last_changed) \
             VALUES ('mastodon', $1, $2, '{}', $3, $4, $4, $4)",
            vec![Text(format!("ext{i}")), t(handle), Text(format!("c{i}")), Int(NOW - 86_400_000)],
        )
        .await;
        sqlx::query(
            "INSERT INTO profile_features (profile_id, feature_version, followers, following, posts_count, engagement_rate, \
             avg_likes, avg_comments, posts_per_week, last_post_at, account_age_days, language, is_bot, has_link, has_email, \
             text, image_keys, updated_at) VALUES ($1, 1, $2, 10, 100, 0.05, 10.0, 1.0, 3.0, $3, 400, 'en', 0, 1, 0, $4, '[]', $3)",
        )
        .bind(profile)
        .bind(1000 * (i + 1))
        .bind(NOW)
        .bind(if i % 2 == 0 { "vegan recipes daily" } else { "climbing and coffee" })
        .execute(db.writer())
        .await
        .expect("features");
        sqlx::query(
            "INSERT INTO campaign_candidates (campaign_id, profile_id, cheap_score, added_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(campaign)
        .bind(profile)
        .bind(0.5 + i as f64 / 10.0)
        .bind(NOW)
        .execute(db.writer())
        .await
        .expect("candidate");
        let score = insert(
            db,
            "INSERT INTO llm_scores (profile_id, profile_hash, criteria_hash, campaign_id, model, score, qualified, reasons, red_flags, opener, created_at) \
             VALUES ($1, $2, 'h1', $3, 'sim', $4, 1, $5, $6, $7, $8)",
            vec![
                Int(profile),
                Text(format!("c{i}")),
                Int(campaign),
                Int(90 - i),
                t("[\"posts vegan recipes weekly\"]"),
                t("[\"sells supplements\"]"),
                Text(format!("Loved your post, {handle}!")),
                Int(NOW),
            ],
        )
        .await;
        let lead = insert(
            db,
            "INSERT INTO leads (campaign_id, profile_id, llm_score_id, score, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'new', $5, $5)",
            vec![Int(campaign), Int(profile), Int(score), Int(90 - i), Int(NOW + i)],
        )
        .await;
        leads.push((handle.to_string(), lead));
    }
    let batch = insert(
        db,
        "INSERT INTO dm_batches (campaign_id, status, created_at) VALUES ($1, 'draft', $2)",
        vec![Int(campaign), Int(NOW)],
    )
    .await;
    for (n, (_, lead)) in leads.iter().take(2).enumerate() {
        insert(
            db,
            "INSERT INTO messages (lead_id, batch_id, account_id, body, status, idempotency_key, not_before) \
             VALUES ($1, $2, $3, $4, 'draft', $5, $6)",
            vec![Int(*lead), Int(batch), Int(account), t("Hi there!"), Text(format!("k{n}")), Int(NOW + n as i64 * MIN)],
        )
        .await;
    }
    for (kind, status, finished) in [
        ("scrape.profile", "succeeded", Some(NOW - MIN)),
        ("llm.evaluate", "dead", None),
    ] {
        insert(
            db,
            "INSERT INTO jobs (kind, payload, status, run_at, created_at, finished_at, error) VALUES ($1, '{}', $2, $3, $3, $4, $5)",
            vec![
                t(kind),
                t(status),
                Int(NOW - 2 * MIN),
                finished.map(Int).unwrap_or(SqlValue::Null),
                if status == "dead" { t("boom") } else { SqlValue::Null },
            ],
        )
        .await;
    }
    Seeded {
        campaign,
        leads,
        batch,
    }
}

fn config_for(url: &str, storage: &std::path::Path) -> Config {
    Config::load(&Sources {
        file: None,
        env: false,
        overrides: vec![
            ("database.url".into(), url.into()),
            ("storage.path".into(), storage.display().to_string()),
        ],
    })
    .expect("config")
}

fn handles(rows: &Rows) -> Vec<String> {
    match rows {
        Rows::Leads(v) => v.iter().map(|r| r.handle.clone()).collect(),
        Rows::Candidates(v) => v.iter().map(|r| r.handle.clone()).collect(),
        other => panic!("unexpected rows {other:?}"),
    }
}

/// Counts of `filter` in the Leads and Candidates tables of campaign `c`.
async fn filtered(db: &Db, c: i64, filter: &str) -> (i64, i64) {
    let mut n = [0; 2];
    for (i, table) in [Table::Leads, Table::Candidates].into_iter().enumerate() {
        let mut q = BrowseQuery::new(table);
        q.campaign = Some(CampaignId(c));
        q.filter = Some(filter.into());
        n[i] = browse::count(db, &q).await.unwrap();
        let page = browse::window(db, &q, Some(n[i])).await.unwrap();
        assert_eq!(
            page.rows.len() as i64,
            n[i],
            "window and count agree for {filter:?}"
        );
    }
    (n[0], n[1])
}

#[tokio::test]
async fn the_text_filter_follows_edits_of_text_and_handle() {
    // On SQLite filters of three or more characters are answered by the profile_search trigram
    // index (written in bulk; profiles changed since are matched with LIKE); shorter ones and
    // PostgreSQL use LIKE. Both must agree throughout.
    for d in dialects() {
        let t = fresh(d).await;
        let s = seed(&t.db).await;
        let c = s.campaign;
        assert_eq!(filtered(&t.db, c, "Vegan").await, (3, 3), "{d}");
        assert_eq!(
            filtered(&t.db, c, "cipes da").await,
            (3, 3),
            "spans words ({d})"
        );
        assert_eq!(filtered(&t.db, c, "aro").await, (1, 1), "handles too ({d})");
        assert_eq!(
            filtered(&t.db, c, "ve").await,
            (4, 4),
            "two characters: vegan ×3 and eve ({d})"
        );
        assert_eq!(
            filtered(&t.db, c, "a\"b").await,
            (0, 0),
            "quotes are literal ({d})"
        );
        assert_eq!(
            filtered(&t.db, c, "vegan OR coffee").await,
            (0, 0),
            "no query syntax ({d})"
        );
        // carol's text changes: the old words stop matching, the new ones match.
        sqlx::query("UPDATE profile_features SET text = 'cars and coffee' WHERE profile_id = (SELECT id FROM profiles_raw WHERE handle = 'carol')")
            .execute(t.db.writer())
            .await
            .unwrap();
        assert_eq!(filtered(&t.db, c, "vegan").await, (2, 2), "{d}");
        assert_eq!(filtered(&t.db, c, "cars and").await, (1, 1), "{d}");
        // A renamed handle is found under its new name only.
        sqlx::query("UPDATE profiles_raw SET handle = 'caroline_k' WHERE handle = 'carol'")
            .execute(t.db.writer())
            .await
            .unwrap();
        assert_eq!(filtered(&t.db, c, "line_k").await, (1, 1), "{d}");
        assert_eq!(
            filtered(&t.db, c, "carol").await,
            (1, 1),
            "prefix of the new name ({d})"
        );
        // Erased features leave the index (the Candidates table still lists the row via LEFT JOIN
        // on the LIKE path; the lead and candidate rows are what erasure removes in the engine).
        sqlx::query("DELETE FROM profile_features WHERE profile_id = (SELECT id FROM profiles_raw WHERE handle = 'eve')")
            .execute(t.db.writer())
            .await
            .unwrap();
        assert_eq!(filtered(&t.db, c, "vegan").await.0, 1, "{d}");
    }
}

/// SQLite writes the search index in bulk (migration 0009): changed profiles are only noted, and a
/// scrape indexes them once a backlog has built up. Meanwhile a search matches the noted profiles
/// on their current text, without writing: its answers are the same before and after indexing.
#[tokio::test]
async fn the_search_index_is_written_in_bulk_and_searches_see_pending_changes() {
    use omni::db::profiles::{index_search, SEARCH_BACKLOG};
    let t = fresh("sqlite").await;
    let s = seed(&t.db).await;
    let c = s.campaign;
    let count = |sql: &'static str| {
        let db = t.db.clone();
        async move {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap();
            n
        }
    };
    let pending = || count("SELECT COUNT(*) FROM search_pending");
    let indexed = || count("SELECT COUNT(*) FROM profile_search");
    let with_features = count("SELECT COUNT(*) FROM profile_features").await;
    assert!(with_features >= 5);
    // Stored after the migrations: noted, not yet indexed, and found all the same.
    assert_eq!((pending().await, indexed().await), (with_features, 0));
    assert_eq!(filtered(&t.db, c, "vegan").await, (3, 3));
    assert_eq!(filtered(&t.db, c, "aro").await, (1, 1), "handles too");
    assert_eq!(pending().await, with_features, "a search writes nothing");
    // Below the backlog a scrape leaves them waiting; at it, they go into the index.
    assert_eq!(index_search(&t.db, SEARCH_BACKLOG).await.unwrap(), 0);
    assert_eq!(index_search(&t.db, 1).await.unwrap(), with_features as u64);
    assert_eq!((pending().await, indexed().await), (0, with_features));
    assert_eq!(filtered(&t.db, c, "vegan").await, (3, 3));
    // carol's text changes twice: noted once; her stale entry no longer matches, her new text
    // does, before and after it is indexed.
    for text in ["cars", "zanzibar cars banana"] {
        sqlx::query("UPDATE profile_features SET text = $1 WHERE profile_id = (SELECT id FROM profiles_raw WHERE handle = 'carol')")
            .bind(text)
            .execute(t.db.writer())
            .await
            .unwrap();
    }
    assert_eq!(pending().await, 1);
    for round in ["pending", "indexed"] {
        assert_eq!(filtered(&t.db, c, "vegan").await, (2, 2), "{round}");
        assert_eq!(filtered(&t.db, c, "zanzibar").await, (1, 1), "{round}");
        if round == "pending" {
            assert_eq!(index_search(&t.db, 1).await.unwrap(), 1);
        }
    }
    assert_eq!((pending().await, indexed().await), (0, with_features));
    assert_eq!(
        count("SELECT COUNT(*) FROM profile_search WHERE text LIKE '%zanzibar%'").await,
        1
    );
    // The index keeps no positions (migration 0010): it finds the rows holding every trigram of
    // the needle, and keeps those holding the needle itself. "banana" holds both trigrams of
    // "ananana" ("ana", "nan") but not the word.
    assert_eq!(filtered(&t.db, c, "ananana").await, (0, 0));
    assert_eq!(filtered(&t.db, c, "anana").await, (1, 1));
    assert_eq!(filtered(&t.db, c, "ZANZIBAR car").await, (1, 1), "any case");
}

#[tokio::test]
async fn the_search_migration_indexes_profiles_stored_before_it() {
    let t = fresh("sqlite").await;
    let s = seed(&t.db).await;
    // Undo migrations 7, 9 and 10 as if the profiles above predated them, then migrate again.
    sqlx::raw_sql(
        "DROP TABLE profile_search; DROP TRIGGER IF EXISTS profile_search_insert; \
         DROP TRIGGER IF EXISTS profile_search_update; DROP TRIGGER IF EXISTS profile_search_delete; \
         DROP TRIGGER IF EXISTS profile_search_handle; DROP TABLE search_pending; \
         DELETE FROM schema_migrations WHERE version IN (7, 9, 10)",
    )
    .execute(t.db.writer())
    .await
    .unwrap();
    t.db.migrate().await.unwrap();
    assert_eq!(filtered(&t.db, s.campaign, "vegan").await, (3, 3));
}

#[tokio::test]
async fn windows_are_filtered_sorted_and_readable_from_either_end() {
    for d in dialects() {
        let t = fresh(d).await;
        let s = seed(&t.db).await;
        let mut q = BrowseQuery::new(Table::Leads);
        q.campaign = Some(CampaignId(s.campaign));
        q.sort = Some("score".into());
        q.desc = true;
        q.limit = 2;
        assert_eq!(browse::count(&t.db, &q).await.unwrap(), 5, "{d}");
        let first = browse::window(&t.db, &q, None).await.unwrap();
        assert_eq!(handles(&first.rows), ["alice", "bob"], "{d}");
        // Offset 3 of 5 is past the middle: read backwards, same rows and order.
        q.offset = 3;
        let far = browse::window(&t.db, &q, Some(5)).await.unwrap();
        let near = browse::window(&t.db, &q, None).await.unwrap();
        assert_eq!(handles(&far.rows), ["dave", "eve"], "{d}");
        assert_eq!(far, near, "{d}");
        q.offset = 0;
        q.limit = 50;
        q.filter = Some("VEGAN".into());
        assert_eq!(
            handles(&browse::window(&t.db, &q, None).await.unwrap().rows),
            ["alice", "carol", "eve"],
            "{d}"
        );
        assert_eq!(browse::count(&t.db, &q).await.unwrap(), 3, "{d}");
        q.filter = Some("100%_".into());
        assert_eq!(
            browse::count(&t.db, &q).await.unwrap(),
            0,
            "wildcards match literally ({d})"
        );
        // Every table reads without error.
        for table in [
            Table::Campaigns,
            Table::Candidates,
            Table::Batches,
            Table::Messages,
            Table::Jobs,
            Table::Accounts,
        ] {
            let mut q = BrowseQuery::new(table);
            q.now = NOW + 60 * MIN;
            let n = browse::count(&t.db, &q).await.unwrap();
            let page = browse::window(&t.db, &q, Some(n)).await.unwrap();
            assert_eq!(page.rows.len() as i64, n.min(50), "{table:?} {d}");
            for key in browse::sort_keys(table) {
                q.sort = Some(key.into());
                browse::window(&t.db, &q, None)
                    .await
                    .unwrap_or_else(|e| panic!("{table:?} sort {key} {d}: {e}"));
            }
        }
    }
}

#[tokio::test]
async fn lead_decisions_change_only_leads_still_awaiting_one() {
    for d in dialects() {
        let t = fresh(d).await;
        let s = seed(&t.db).await;
        let storage = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t.url, storage.path()), Mode::Client)
            .await
            .unwrap();
        let (alice, bob) = (LeadId(s.leads[0].1), LeadId(s.leads[1].1));
        sqlx::query("UPDATE leads SET status = 'sent' WHERE id = $1")
            .bind(bob.0)
            .execute(t.db.writer())
            .await
            .unwrap();
        let changed = engine
            .set_lead_status(&[alice, bob], LeadStatus::Approved)
            .await
            .unwrap();
        assert_eq!(
            changed, 1,
            "a sent lead is never changed from the console ({d})"
        );
        let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE id = $1")
            .bind(alice.0)
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(status, "approved");
        assert!(
            engine
                .set_lead_status(&[alice], LeadStatus::Sent)
                .await
                .is_err(),
            "only decisions can be set"
        );
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn detail_reads_show_a_profile_a_batch_and_a_campaigns_funnel() {
    for d in dialects() {
        let t = fresh(d).await;
        let s = seed(&t.db).await;
        let storage = tempfile::tempdir().unwrap();
        let engine = Engine::start(config_for(&t.url, storage.path()), Mode::Client)
            .await
            .unwrap();
        let alice: i64 = sqlx::query_scalar("SELECT id FROM profiles_raw WHERE handle = 'alice'")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        let p = engine
            .profile_detail(ProfileId(alice), Some(CampaignId(s.campaign)))
            .await
            .unwrap();
        assert_eq!(
            p.verdict.as_ref().map(|v| v.reasons.clone()),
            Some(vec!["posts vegan recipes weekly".to_string()])
        );
        assert_eq!(p.verdict.as_ref().map(|v| v.red_flags.len()), Some(1));
        assert_eq!(
            p.message.as_ref().map(|m| m.body.as_str()),
            Some("Hi there!")
        );
        assert_eq!(p.lead.as_ref().map(|l| l.status.as_str()), Some("new"));
        let b = engine.batch_detail(BatchId(s.batch)).await.unwrap();
        assert_eq!(b.messages.len(), 2);
        assert_eq!(b.messages[0].account.as_deref(), Some("sender1"));
        assert!(
            b.messages[0].not_before <= b.messages[1].not_before,
            "in planned order"
        );
        let stats = engine
            .campaign_stats(CampaignId(s.campaign), 14)
            .await
            .unwrap();
        assert_eq!(
            (stats.candidates, stats.shortlisted, stats.leads),
            (5, 5, 5),
            "{d}"
        );
        assert_eq!(stats.per_day.len(), 14);
        let rate = engine.jobs_per_minute(60).await.unwrap();
        assert_eq!(rate.len(), 60);
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn profile_effect_loads_stored_images_and_tolerates_missing_ones() {
    let t = fresh("sqlite").await;
    seed(&t.db).await;
    let storage = tempfile::tempdir().unwrap();
    // One image in the store (key = sha256 of its bytes), one key with nothing behind it.
    let img = image::RgbImage::from_fn(8, 8, |x, _| {
        if x < 4 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    let bytes = bytes.into_inner();
    let key = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    std::fs::create_dir_all(storage.path().join(&key[..2])).unwrap();
    std::fs::write(storage.path().join(&key[..2]).join(&key), &bytes).unwrap();
    let keys = serde_json::json!([key, "ef".repeat(32)]).to_string();
    sqlx::query("UPDATE profile_features SET image_keys = $1")
        .bind(keys)
        .execute(t.db.writer())
        .await
        .unwrap();
    let engine = Engine::start(config_for(&t.url, storage.path()), Mode::Client)
        .await
        .unwrap();
    let actions = omni::tui::run_effect(
        &engine,
        Effect::LoadProfile {
            req: 1,
            profile: ProfileId(1),
            campaign: None,
        },
    )
    .await;
    match actions.as_slice() {
        [Action::ProfileLoaded { images, .. }] => {
            assert_eq!(images.len(), 2);
            let first = images[0].as_ref().expect("the stored image decodes");
            assert_eq!(first.rgb[0], [255, 0, 0]);
            assert!(
                images[1].is_none(),
                "a missing object is a placeholder, not an error"
            );
        }
        other => panic!("{other:?}"),
    }
    // A fetch effect goes through the same backend and counts first.
    let mut q = BrowseQuery::new(Table::Leads);
    q.limit = 3;
    let actions = omni::tui::run_effect(
        &engine,
        Effect::Fetch {
            req: 5,
            query: q,
            total: None,
            count: true,
        },
    )
    .await;
    assert!(
        matches!(actions.as_slice(), [Action::Counted { req: 5, total: 5 }, Action::Loaded { req: 5, page, .. }] if page.rows.len() == 3)
    );
    // A command the engine refuses comes back as a failure with the engine's explanation
    // (this seeded campaign has no sender account and no valid campaign file).
    let actions = omni::tui::run_effect(&engine, Effect::CreateBatch(CampaignId(1))).await;
    assert!(
        matches!(actions.as_slice(), [Action::Failed(msg)] if !msg.is_empty()),
        "{actions:?}"
    );
    engine.shutdown().await;
}

// ---------------------------------------------------------------- end to end (tmux)

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }
    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "omni"]).stdout)
            .into_owned()
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "omni", k]);
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            if std::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Starts `omni <args>` in `dir` in a detached 200×50 tmux session; the pane prints `EXITED=<code>`
/// when the binary ends.
fn start_in_tmux(dir: &std::path::Path, args: &str) -> Tmux {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("tmux is required for the console's end-to-end test: apt-get install -y tmux");
    }
    std::fs::create_dir_all(dir.join("xdg")).unwrap();
    let tmux = Tmux {
        socket: format!("omni-e2e-{}-{}", std::process::id(), rand::random::<u32>()),
    };
    let script = format!(
        "cd '{dir}' && env XDG_CONFIG_HOME='{dir}/xdg' OMNI_LOG=info '{bin}' {args}; echo EXITED=$?; sleep 60",
        dir = dir.display(),
        bin = env!("CARGO_BIN_EXE_omni"),
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "50",
        "-s",
        "omni",
        &script,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux
}

/// Seeds a SQLite database in a temp dir and starts `omni tui` on it in a detached tmux session.
async fn start_console() -> (tempfile::TempDir, String, Seeded, Tmux) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("omni.db").display());
    let db = Db::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    let seeded = seed(&db).await;
    db.close().await;
    let tmux = start_in_tmux(dir.path(), &format!("tui --database '{url}'"));
    (dir, url, seeded, tmux)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_console_cleanly() {
    let (_dir, _url, _seeded, tmux) = start_console().await;
    let screen = tokio::task::block_in_place(|| {
        tmux.wait_for("the campaigns view", |s| s.contains("vegan-creators"));
        let shell = tmux.cmd(&["display-message", "-p", "-t", "omni", "#{pane_pid}"]);
        let shell = String::from_utf8_lossy(&shell.stdout).trim().to_string();
        let child = std::process::Command::new("pgrep")
            .args(["-P", &shell])
            .output()
            .expect("pgrep");
        let pid = String::from_utf8_lossy(&child.stdout).trim().to_string();
        assert!(!pid.is_empty(), "the console runs under the pane's shell");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        tmux.wait_for("the console to exit", |s| s.contains("EXITED="))
    });
    assert!(
        screen.contains("EXITED=0"),
        "SIGTERM is a clean exit:\n{screen}"
    );
    let alt = tmux.cmd(&["display-message", "-p", "-t", "omni", "#{alternate_on}"]);
    assert_eq!(
        String::from_utf8_lossy(&alt.stdout).trim(),
        "0",
        "alternate screen is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_in_tmux_approves_two_leads_and_restores_the_terminal() {
    let (_dir, url, seeded, tmux) = start_console().await;

    let screen = tokio::task::block_in_place(|| {
        tmux.wait_for("the campaigns view", |s| {
            s.contains("vegan-creators") && s.contains("embedded engine")
        });
        tmux.keys(&["3"]);
        // Leads are newest first: eve, dave, carol, …
        tmux.wait_for("the leads", |s| s.contains("@eve") && s.contains("@alice"));
        tmux.keys(&["Space", "j", "Space"]);
        tmux.wait_for("two marks", |s| s.contains("2 marked"));
        tmux.keys(&["a"]);
        tmux.wait_for("the approval", |s| {
            s.contains("2 leads approved")
                && s.lines()
                    .any(|l| l.contains("@eve") && l.contains("approved"))
                && s.lines()
                    .any(|l| l.contains("@dave") && l.contains("approved"))
        })
    });
    assert!(
        screen
            .lines()
            .any(|l| l.contains("@carol") && l.contains("new")),
        "unmarked leads are untouched:\n{screen}"
    );

    let db = Db::connect(&url, 1).await.unwrap();
    for (handle, id) in &seeded.leads {
        let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let want = if handle == "eve" || handle == "dave" {
            "approved"
        } else {
            "new"
        };
        assert_eq!(status, want, "{handle}");
    }
    db.close().await;

    let screen = tokio::task::block_in_place(|| {
        tmux.keys(&[":", "q", "Enter"]);
        tmux.wait_for("the console to exit", |s| s.contains("EXITED="))
    });
    assert!(screen.contains("EXITED=0"), "clean exit:\n{screen}");
    assert!(
        !screen.contains("vegan-creators"),
        "the alternate screen was left:\n{screen}"
    );
    let alt = tmux.cmd(&["display-message", "-p", "-t", "omni", "#{alternate_on}"]);
    assert_eq!(
        String::from_utf8_lossy(&alt.stdout).trim(),
        "0",
        "alternate screen is off"
    );
}

/// The issue's end-to-end flow on the real binary: `omni demo`, Leads, mark two, approve, build a
/// batch, confirm it with `send`, see messages `sent`, quit, terminal restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_whole_loop_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let tmux = start_in_tmux(
        dir.path(),
        &format!("demo --profiles 600 --dir '{}/demo'", dir.path().display()),
    );
    let url = format!(
        "sqlite://{}",
        dir.path().join("demo/omni-demo.db").display()
    );

    // Wait (through the database, which the console also reads) for the simulated judge's leads.
    let db = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Ok(db) = Db::connect(&url, 1).await {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads")
                    .fetch_one(db.pool())
                    .await
                    .unwrap_or(0);
                if n >= 3 {
                    break db;
                }
                db.close().await;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no leads after two minutes:\n{}",
                tmux.capture()
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    let screen = tokio::task::block_in_place(|| {
        tmux.keys(&["3"]);
        tmux.wait_for("the leads", |s| s.contains(" new"));
        tmux.keys(&["Space", "j", "Space"]);
        tmux.wait_for("two marks", |s| s.contains("2 marked"));
        tmux.keys(&["a"]);
        tmux.wait_for("the approval", |s| s.contains("2 leads approved"));
        tmux.keys(&["b"]);
        tmux.wait_for("a drafted batch", |s| s.to_lowercase().contains("batch"));
        tmux.keys(&["4"]);
        tmux.wait_for("the approvals view", |s| s.contains("draft"));
        tmux.keys(&["a"]);
        let dialog = tmux.wait_for("the confirmation", |s| s.contains("Cancel"));
        tmux.keys(&["Tab"]);
        if dialog.contains("send") {
            tmux.keys(&["s", "e", "n", "d"]);
        }
        tmux.keys(&["Enter"]);
        tmux.keys(&["5"]);
        tmux.wait_for("a sent message", |s| s.lines().any(|l| l.contains("sent")))
    });
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'sent'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        sent >= 1,
        "the console shows sent messages but the ledger has none:\n{screen}"
    );
    let approved_first: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages m JOIN leads l ON l.id = m.lead_id WHERE l.status IN ('queued', 'sent') ",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(
        approved_first >= 2,
        "the two approved leads are in the batch"
    );
    db.close().await;
    let end = tokio::task::block_in_place(|| {
        tmux.keys(&[":", "q", "Enter"]);
        tmux.wait_for("the demo to exit", |s| s.contains("EXITED="))
    });
    assert!(end.contains("EXITED=0"), "clean exit:\n{end}");
    let alt = tmux.cmd(&["display-message", "-p", "-t", "omni", "#{alternate_on}"]);
    assert_eq!(
        String::from_utf8_lossy(&alt.stdout).trim(),
        "0",
        "alternate screen is off"
    );
}
