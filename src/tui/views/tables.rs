//! Table views: rows are built only for the visible window, from the page the data layer returned.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::db::browse::Rows;

use super::super::action::ViewId;
use super::super::columns::{columns, Column};
use super::super::state::{State, TableState};
use super::super::theme::Theme;
use super::super::widgets::progress_bar;
use super::{cell_text, fmt_count, fmt_time};

/// Draws the table of the screen on top into `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let s = state.top();
    let t = &s.table;
    let cols = columns(s.view);
    let height = usize::from(area.height.saturating_sub(3));
    let mut title = vec![Span::styled(format!(" {} ", s.view.title()), theme.title)];
    if let Some((id, name)) = &s.scope.campaign {
        let name = if name.is_empty() {
            format!("#{id}")
        } else {
            cell_text(name)
        };
        title.push(Span::styled(format!("· {name} "), theme.accent));
    }
    if let Some(st) = &s.scope.status {
        title.push(Span::styled(format!("· {st} "), theme.accent));
    }
    let total = if s.view == ViewId::Logs {
        Some(state.visible_logs().len() as i64)
    } else {
        t.total
    };
    if let Some(n) = total {
        title.push(Span::styled(format!("· {} rows ", fmt_count(n)), theme.dim));
    }
    if let Some(sort) = &t.sort {
        title.push(Span::styled(
            format!("· sort {sort} {} ", if t.desc { "↓" } else { "↑" }),
            theme.dim,
        ));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::from(title));

    let body: Vec<Row> = match s.view {
        ViewId::Logs => log_rows(state, t, height, theme),
        _ => data_rows(t, height, theme),
    };
    if body.is_empty() {
        let msg = match total {
            Some(0) if t.filter.is_some() => "no rows match the filter (Esc clears it)",
            Some(0) => "nothing here yet",
            _ => "loading…",
        };
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {msg}"), theme.dim)).block(block),
            area,
        );
        return;
    }
    let header = Row::new(
        std::iter::once(Cell::from(" ")).chain(
            cols.iter()
                .enumerate()
                .map(|(i, c)| header_cell(c, i, t, theme)),
        ),
    );
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(1))
        .chain(cols.iter().map(|c| {
            if c.width == 0 {
                Constraint::Fill(1)
            } else {
                Constraint::Length(c.width)
            }
        }))
        .collect();
    let table = Table::new(body, widths)
        .header(header)
        .block(block)
        .column_spacing(1);
    frame.render_widget(table, area);
}

fn header_cell<'a>(c: &Column, i: usize, t: &TableState, theme: &Theme) -> Cell<'a> {
    let arrow = match (c.sort, &t.sort) {
        (Some(k), Some(sorted)) if k == sorted => {
            if t.desc {
                "↓"
            } else {
                "↑"
            }
        }
        _ => "",
    };
    let style = if i == t.column {
        theme.column_selected
    } else {
        theme.column_header
    };
    Cell::from(format!("{}{arrow}", c.title)).style(style)
}

/// The visible slice of the loaded page: `(index in page, absolute row index)` pairs.
fn visible(t: &TableState, height: usize) -> Vec<(usize, i64)> {
    let Some(page) = &t.page else {
        return Vec::new();
    };
    (t.offset..t.offset + height as i64)
        .filter_map(|abs| {
            let i = abs - page.offset;
            (i >= 0 && (i as usize) < page.rows.len()).then_some((i as usize, abs))
        })
        .collect()
}

fn row_style(t: &TableState, abs: i64, id: Option<i64>, theme: &Theme) -> (Style, &'static str) {
    let marked = id.is_some_and(|id| t.marks.contains(&id));
    let mark = if marked { "●" } else { " " };
    if abs == t.selected {
        (theme.selected, mark)
    } else if marked {
        (theme.marked, mark)
    } else {
        (Style::default(), mark)
    }
}

fn styled<'a>(text: String, style: Style) -> Cell<'a> {
    Cell::from(text).style(style)
}

fn data_rows<'a>(t: &TableState, height: usize, theme: &Theme) -> Vec<Row<'a>> {
    let Some(page) = &t.page else {
        return Vec::new();
    };
    let plain = Style::default();
    visible(t, height)
        .into_iter()
        .map(|(i, abs)| {
            let (style, mark) = row_style(t, abs, page.rows.id(i), theme);
            let selected = abs == t.selected;
            // Status colors only where they do not fight the selection highlight.
            let status = |s: &str| if selected { plain } else { theme.status(s) };
            let cells: Vec<Cell> = match &page.rows {
                Rows::Campaigns(v) => {
                    let r = &v[i];
                    vec![
                        Cell::from(r.id.to_string()),
                        Cell::from(cell_text(&r.name)),
                        Cell::from(cell_text(&r.platform)),
                        styled(r.status.clone(), status(&r.status)),
                        Cell::from(fmt_count(r.candidates)),
                        Cell::from(fmt_count(r.leads)),
                        Cell::from(fmt_count(r.approved)),
                        Cell::from(fmt_count(r.sent)),
                        Cell::from(fmt_count(r.replied)),
                        Cell::from(fmt_time(Some(r.created_at))),
                    ]
                }
                Rows::Candidates(v) => {
                    let r = &v[i];
                    vec![
                        Cell::from(r.profile.to_string()),
                        Cell::from(format!("@{}", cell_text(&r.handle))),
                        Cell::from(format!("{:.3}", r.cheap_score)),
                        Cell::from(r.followers.map(fmt_count).unwrap_or_else(|| "-".into())),
                        Cell::from(
                            r.language
                                .as_deref()
                                .map(cell_text)
                                .unwrap_or_else(|| "-".into()),
                        ),
                        Cell::from(fmt_time(Some(r.added_at))),
                    ]
                }
                Rows::Leads(v) => {
                    let r = &v[i];
                    vec![
                        Cell::from(r.id.to_string()),
                        Cell::from(format!("@{}", cell_text(&r.handle))),
                        Cell::from(r.score.to_string()),
                        styled(r.status.clone(), status(&r.status)),
                        Cell::from(r.followers.map(fmt_count).unwrap_or_else(|| "-".into())),
                        Cell::from(cell_text(&r.campaign_name)),
                        Cell::from(fmt_time(Some(r.created_at))),
                        Cell::from(fmt_time(Some(r.updated_at))),
                    ]
                }
                Rows::Batches(v) => {
                    let r = &v[i];
                    vec![
                        Cell::from(format!("#{}", r.id)),
                        Cell::from(cell_text(&r.campaign_name)),
                        styled(r.status.clone(), status(&r.status)),
                        Cell::from(fmt_count(r.messages)),
                        Cell::from(fmt_time(Some(r.created_at))),
                        Cell::from(fmt_time(r.approved_at)),
                    ]
                }
                Rows::Messages(v) => {
                    let r = &v[i];
                    let text = match &r.error {
                        Some(e) => format!("error: {}", cell_text(e)),
                        None => cell_text(&r.body),
                    };
                    vec![
                        Cell::from(r.id.to_string()),
                        Cell::from(format!("@{}", cell_text(&r.handle))),
                        Cell::from(
                            r.account
                                .as_deref()
                                .map(|a| format!("@{}", cell_text(a)))
                                .unwrap_or_else(|| "-".into()),
                        ),
                        styled(r.status.clone(), status(&r.status)),
                        Cell::from(r.attempts.to_string()),
                        Cell::from(fmt_time(r.not_before)),
                        Cell::from(fmt_time(r.sent_at)),
                        Cell::from(text),
                    ]
                }
                Rows::Jobs(v) => {
                    let r = &v[i];
                    let gauge_style = if selected { plain } else { theme.gauge };
                    let err = r
                        .error
                        .as_deref()
                        .map(cell_text)
                        .or_else(|| r.progress_message.as_deref().map(cell_text));
                    vec![
                        Cell::from(r.id.to_string()),
                        Cell::from(cell_text(&r.kind)),
                        styled(r.status.clone(), status(&r.status)),
                        Cell::from(format!("{}/{}", r.attempts, r.max_attempts)),
                        styled(progress_bar(r.progress, 18), gauge_style),
                        Cell::from(fmt_time(r.finished_at)),
                        Cell::from(err.unwrap_or_default()),
                    ]
                }
                Rows::Accounts(v) => {
                    let r = &v[i];
                    let paused = match r.paused_until {
                        Some(p) if p > 0 => fmt_time(Some(p)),
                        _ => "-".into(),
                    };
                    vec![
                        Cell::from(r.id.to_string()),
                        Cell::from(format!("@{}", cell_text(&r.handle))),
                        Cell::from(cell_text(&r.platform)),
                        Cell::from(format!("{}/{}", r.sent_24h, r.daily_cap)),
                        Cell::from(r.daily_cap.to_string()),
                        Cell::from(r.hourly_cap.to_string()),
                        Cell::from(format!("{}s", r.min_gap_secs)),
                        Cell::from(cell_text(&r.timezone)),
                        Cell::from(paused),
                    ]
                }
            };
            Row::new(std::iter::once(Cell::from(mark)).chain(cells)).style(style)
        })
        .collect()
}

fn log_rows<'a>(state: &State, t: &TableState, height: usize, theme: &Theme) -> Vec<Row<'a>> {
    let logs = state.visible_logs();
    let start = t.offset.max(0) as usize;
    logs.iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(abs, l)| {
            let level_style = match l.level {
                "ERROR" => theme.bad,
                "WARN" => theme.warn,
                "INFO" => theme.good,
                _ => theme.dim,
            };
            let selected = abs as i64 == t.selected;
            let time = chrono::DateTime::from_timestamp_millis(l.at)
                .map(|t| t.format("%H:%M:%S%.3f").to_string())
                .unwrap_or_default();
            Row::new(vec![
                Cell::from(" "),
                Cell::from(time),
                Cell::from(l.level).style(if selected {
                    Style::default()
                } else {
                    level_style
                }),
                Cell::from(l.target.clone()),
                Cell::from(l.message.clone()),
            ])
            .style(if selected {
                theme.selected
            } else {
                Style::default()
            })
        })
        .collect()
}
