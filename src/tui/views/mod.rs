//! Drawing: the frame (header with breadcrumbs, tabs, body, status and hint bars) and the popups
//! over it. Views only read the state; nothing here changes it.

mod detail;
mod panes;
mod tables;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::action::ViewId;
use super::command;
use super::keymap::Keymap;
use super::state::{InputMode, State, CAMPAIGN_PANE, JOBS_PANE, MIN_SIZE};
use super::theme::Theme;
use super::widgets::{centered, ConfirmDialog, Toasts};

/// Formats unix ms as UTC `YYYY-MM-DD HH:MM`, or `-`.
pub fn fmt_time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Formats a count with thousands separators.
pub fn fmt_count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Scraped or stored text made safe for one table cell: no control characters, escape sequences
/// or line breaks.
pub fn cell_text(s: &str) -> String {
    crate::text::strip_control(s).replace(['\n', '\t'], " ")
}

/// Draws the whole console.
pub fn render(frame: &mut Frame, state: &State, keymap: &Keymap, theme: &Theme) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let msg = format!(
            "terminal too small (need {}×{}, have {}×{})",
            MIN_SIZE.0, MIN_SIZE.1, area.width, area.height
        );
        let y = area.height / 2;
        frame.render_widget(
            Paragraph::new(msg)
                .alignment(ratatui::layout::Alignment::Center)
                .wrap(Wrap { trim: true }),
            Rect::new(area.x, area.y + y, area.width, area.height - y),
        );
        return;
    }
    let [header, tabs, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, state, theme);
    draw_tabs(frame, tabs, state, theme);
    draw_body(frame, body, state, theme);
    draw_status(frame, status, state, theme);
    draw_hints(frame, hints, state, keymap, theme);
    match &state.mode {
        InputMode::Confirm(c) => frame.render_widget(
            ConfirmDialog {
                confirm: c.as_ref(),
                theme,
            },
            body,
        ),
        InputMode::Help => draw_help(frame, body, state, keymap, theme),
        InputMode::Text { title, body: text } => {
            let rect = centered(
                body,
                body.width.saturating_sub(8).min(110),
                body.height.saturating_sub(2),
            );
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(text.as_str())
                    .wrap(Wrap { trim: false })
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .border_style(theme.accent)
                            .title(Span::styled(
                                format!(" {title} — any key closes "),
                                theme.title,
                            )),
                    ),
                rect,
            );
        }
        _ => {}
    }
    if !state.toasts.is_empty() {
        frame.render_widget(
            Toasts {
                toasts: &state.toasts,
                theme,
            },
            body,
        );
    }
}

fn draw_header(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let crumbs: Vec<String> = state
        .stack
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let mut parts = Vec::new();
            // A screen narrowed to a campaign shows the campaign as its own crumb, unless the
            // screen below already is that campaign's list.
            if let Some((id, name)) = &s.scope.campaign {
                let shown_below =
                    i > 0 && state.stack[i - 1].scope.campaign.as_ref().map(|c| c.0) == Some(*id);
                if !shown_below && s.view != ViewId::Profile {
                    parts.push(if name.is_empty() {
                        format!("campaign #{id}")
                    } else {
                        cell_text(name)
                    });
                }
            }
            parts.push(cell_text(&s.crumb()));
            parts
        })
        .collect();
    let mut left = vec![
        Span::styled(" omni ", theme.header),
        Span::styled("│ ", theme.header),
        Span::styled(format!("{} ", state.connection), theme.header),
        Span::styled("│ ", theme.header),
        Span::styled(crumbs.join(" › "), theme.header),
    ];
    let mut right = Vec::new();
    if state.paused {
        right.push(Span::styled(" PAUSED ", theme.badge));
        right.push(Span::raw(" "));
    }
    if state.readonly {
        right.push(Span::styled(" [RO] ", theme.badge));
        right.push(Span::raw(" "));
    }
    let used: usize = left.iter().chain(right.iter()).map(|s| s.width()).sum();
    left.push(Span::styled(
        " ".repeat(usize::from(area.width).saturating_sub(used)),
        theme.header,
    ));
    left.extend(right);
    frame.render_widget(Paragraph::new(Line::from(left)).style(theme.header), area);
}

fn draw_tabs(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let current = state.stack.first().map(|s| s.view);
    let mut spans = Vec::new();
    for (i, v) in ViewId::TABS.iter().enumerate() {
        let style = if Some(*v) == current {
            theme.tab_active
        } else {
            theme.tab
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, v.title()), style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_body(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let view = state.view();
    match view {
        ViewId::Profile => detail::profile(frame, area, state, theme),
        ViewId::Batch => detail::batch(frame, area, state, theme),
        ViewId::Campaigns => {
            let [table, pane] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(CAMPAIGN_PANE as u16)])
                    .areas(area);
            tables::draw(frame, table, state, theme);
            panes::campaign(frame, pane, state, theme);
        }
        ViewId::Jobs => {
            let [pane, table] =
                Layout::vertical([Constraint::Length(JOBS_PANE as u16), Constraint::Min(3)])
                    .areas(area);
            panes::job_rate(frame, pane, state, theme);
            tables::draw(frame, table, state, theme);
        }
        _ => tables::draw(frame, area, state, theme),
    }
}

fn draw_status(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    match &state.mode {
        InputMode::Command(line) | InputMode::Filter(line) => {
            let prompt = if matches!(state.mode, InputMode::Command(_)) {
                ":"
            } else {
                "/"
            };
            let text = format!("{prompt}{}", line.text);
            frame.render_widget(Paragraph::new(text), area);
            let x = area.x + 1 + line.text.chars().take(line.cursor).count() as u16;
            frame.set_cursor_position((x.min(area.x + area.width.saturating_sub(1)), area.y));
            return;
        }
        _ => {}
    }
    let s = state.top();
    let mut left: Vec<Span> = Vec::new();
    let marks = s.table.marks.len();
    if marks > 0 {
        left.push(Span::styled(format!(" {marks} marked "), theme.marked));
        left.push(Span::raw(" "));
    }
    if let Some(f) = &s.table.filter {
        left.push(Span::styled(
            format!("filter: {}", cell_text(f)),
            theme.accent,
        ));
        left.push(Span::raw("  "));
    }
    let right = match s.view {
        ViewId::Profile | ViewId::Batch => String::new(),
        ViewId::Logs => format!(
            "{} / {} ",
            s.table.selected + 1,
            fmt_count(state.visible_logs().len() as i64)
        ),
        _ => match s.table.total {
            Some(0) => "no rows ".into(),
            Some(t) => format!(
                "row {} / {} ",
                fmt_count(s.table.selected + 1),
                fmt_count(t)
            ),
            None => "loading… ".into(),
        },
    };
    let used: usize = left.iter().map(|s| s.width()).sum::<usize>() + right.chars().count();
    left.push(Span::raw(
        " ".repeat(usize::from(area.width).saturating_sub(used)),
    ));
    left.push(Span::styled(right, theme.dim));
    frame.render_widget(Paragraph::new(Line::from(left)), area);
}

fn draw_hints(frame: &mut Frame, area: Rect, state: &State, keymap: &Keymap, theme: &Theme) {
    let pairs: Vec<(String, String)> = match &state.mode {
        InputMode::Command(line) => {
            let c = command::candidates(&line.text);
            if c.is_empty() {
                vec![
                    ("Enter".into(), "run".into()),
                    ("Esc".into(), "cancel".into()),
                ]
            } else {
                let mut v = vec![("Tab".into(), "complete:".into())];
                v.extend(c.into_iter().map(|c| (String::new(), c)));
                v
            }
        }
        InputMode::Filter(_) => vec![
            ("Enter".into(), "apply (empty clears)".into()),
            ("Esc".into(), "cancel".into()),
        ],
        InputMode::Confirm(_) => vec![
            ("Tab".into(), "switch".into()),
            ("Enter".into(), "choose".into()),
            ("Esc".into(), "cancel".into()),
        ],
        InputMode::Help | InputMode::Text { .. } => vec![("any key".into(), "close".into())],
        InputMode::Normal => keymap.hints(state.view()),
    };
    let mut spans = Vec::new();
    let mut width = 0usize;
    for (k, label) in pairs {
        let piece = if k.is_empty() {
            label.len() + 2
        } else {
            k.chars().count() + label.len() + 3
        };
        if width + piece > usize::from(area.width) {
            break;
        }
        width += piece;
        if !k.is_empty() {
            spans.push(Span::styled(format!(" {k}"), theme.hint_key));
        }
        spans.push(Span::styled(format!(" {label} "), theme.hint));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_help(frame: &mut Frame, area: Rect, state: &State, keymap: &Keymap, theme: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    for (title, rows) in keymap.help(state.view()) {
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        lines.push(Line::styled(title, theme.title));
        for (keys, label) in rows {
            lines.push(Line::from(vec![
                Span::styled(format!(" {keys:<13}"), theme.hint_key),
                Span::raw(label),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::styled("Commands", theme.title));
    for (name, aliases, arg) in command::COMMANDS {
        let names = std::iter::once(*name)
            .chain(aliases.iter().copied())
            .map(|n| format!(":{n}"))
            .collect::<Vec<_>>();
        lines.push(Line::from(vec![
            Span::styled(format!(" {}", names.join(" ")), theme.hint_key),
            Span::raw(format!(" {arg}")),
        ]));
    }
    let rect = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.accent)
        .title(Span::styled(" Help — any key closes ", theme.title));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    // Flow the lines into as many columns as the height needs.
    let per_col = usize::from(inner.height.max(1));
    let cols = lines.len().div_ceil(per_col).max(1);
    let col_w = inner.width / cols as u16;
    for (i, chunk) in lines.chunks(per_col).enumerate() {
        let r = Rect::new(inner.x + col_w * i as u16, inner.y, col_w, inner.height);
        frame.render_widget(Paragraph::new(chunk.to_vec()), r);
    }
}
