//! Detail views: a profile (features, verdict, opener, the exact message, the images the LLM saw)
//! and a batch (every message as it will be sent, with its account and planned time).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::super::image::HalfBlocks;
use super::super::state::{Detail, State};
use super::super::theme::Theme;
use super::{cell_text, fmt_count, fmt_time};

fn safe(s: &str) -> String {
    crate::text::strip_control(s).replace('\t', "    ")
}

fn section<'a>(title: &str, theme: &Theme) -> Line<'a> {
    Line::styled(format!("── {title} "), theme.title)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The profile on top.
pub fn profile(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let s = state.top();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border);
    let Detail::Profile(p, images) = &s.detail else {
        frame.render_widget(
            Paragraph::new(Line::styled(" loading…", theme.dim)).block(block.title(" Profile ")),
            area,
        );
        return;
    };
    let [text_area, image_area] =
        Layout::horizontal([Constraint::Min(40), Constraint::Length(34)]).areas(area);
    let mut lines: Vec<Line> = vec![
        Line::from(vec![
            Span::styled(format!("@{}", cell_text(&p.handle)), theme.accent),
            Span::styled(
                format!(
                    "  {} · id {} · profile {}",
                    cell_text(&p.platform),
                    cell_text(&p.external_id),
                    p.id
                ),
                theme.dim,
            ),
        ]),
        Line::raw(format!(
            "first seen {} · last seen {} · last changed {}",
            fmt_time(Some(p.first_seen)),
            fmt_time(Some(p.last_seen)),
            fmt_time(Some(p.last_changed))
        )),
    ];
    if let Some(e) = &p.fetch_error {
        lines.push(Line::styled(
            format!("fetch error: {}", cell_text(e)),
            theme.bad,
        ));
    }
    lines.push(Line::default());
    lines.push(section("Features", theme));
    match &p.features {
        Some(f) => {
            lines.push(Line::raw(format!(
                "followers {} · following {} · posts {} · engagement {:.2}% · {:.1} posts/week",
                fmt_count(f.followers),
                fmt_count(f.following),
                fmt_count(f.posts_count),
                f.engagement_rate * 100.0,
                f.posts_per_week
            )));
            lines.push(Line::raw(format!(
                "language {} · account age {} d · last post {} · bot {} · link {} · email {}",
                f.language
                    .as_deref()
                    .map(cell_text)
                    .unwrap_or_else(|| "-".into()),
                f.account_age_days,
                fmt_time(f.last_post_at),
                yes_no(f.is_bot),
                yes_no(f.has_link),
                yes_no(f.has_email)
            )));
            for l in safe(&f.text).lines().take(8) {
                lines.push(Line::styled(format!("  {l}"), theme.dim));
            }
        }
        None => lines.push(Line::styled("not extracted yet", theme.dim)),
    }
    lines.push(Line::default());
    match &p.verdict {
        Some(v) => {
            let q = if v.qualified {
                "qualified"
            } else {
                "not qualified"
            };
            lines.push(section(
                &format!(
                    "Verdict: {} / 100, {q} ({}, {})",
                    v.score,
                    cell_text(&v.model),
                    fmt_time(Some(v.created_at))
                ),
                theme,
            ));
            lines.push(Line::styled("Reasons", theme.good));
            for r in &v.reasons {
                lines.push(Line::raw(format!("  • {}", cell_text(r))));
            }
            if v.reasons.is_empty() {
                lines.push(Line::styled("  (none given)", theme.dim));
            }
            lines.push(Line::styled("Red flags", theme.bad));
            for r in &v.red_flags {
                lines.push(Line::raw(format!("  • {}", cell_text(r))));
            }
            if v.red_flags.is_empty() {
                lines.push(Line::styled("  (none)", theme.dim));
            }
            lines.push(Line::styled("Opener", theme.accent));
            for l in safe(&v.opener).lines() {
                lines.push(Line::raw(format!("  {l}")));
            }
        }
        None => {
            lines.push(section("Verdict", theme));
            lines.push(Line::styled("not judged yet", theme.dim));
        }
    }
    if let Some(l) = &p.lead {
        lines.push(Line::default());
        lines.push(section(&format!("Lead #{}", l.id), theme));
        lines.push(Line::from(vec![
            Span::raw(format!(
                "campaign {} · score {} · ",
                cell_text(&l.campaign_name),
                l.score
            )),
            Span::styled(l.status.clone(), theme.status(&l.status)),
            Span::raw(format!(" · updated {}", fmt_time(Some(l.updated_at)))),
        ]));
    }
    lines.push(Line::default());
    match &p.message {
        Some(m) => {
            lines.push(section(
                &format!("Message #{} (exactly as sent)", m.id),
                theme,
            ));
            lines.push(Line::from(vec![
                Span::raw(format!(
                    "from {} · planned {} · sent {} · ",
                    m.account
                        .as_deref()
                        .map(|a| format!("@{}", cell_text(a)))
                        .unwrap_or_else(|| "-".into()),
                    fmt_time(m.not_before),
                    fmt_time(m.sent_at)
                )),
                Span::styled(m.status.clone(), theme.status(&m.status)),
            ]));
            if let Some(e) = &m.error {
                lines.push(Line::styled(format!("error: {}", cell_text(e)), theme.bad));
            }
            for l in safe(&m.body).lines() {
                lines.push(Line::raw(format!("│ {l}")));
            }
        }
        None => {
            lines.push(section("Message", theme));
            lines.push(Line::styled("no message yet", theme.dim));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((s.scroll, 0))
            .block(block.title(Span::styled(" Profile ", theme.title))),
        text_area,
    );

    let img_block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(" Images the LLM saw ", theme.title));
    let inner = img_block.inner(image_area);
    frame.render_widget(img_block, image_area);
    let keys = p.features.as_ref().map(|f| f.image_keys.len()).unwrap_or(0);
    if keys == 0 {
        frame.render_widget(Paragraph::new(Line::styled("no images", theme.dim)), inner);
        return;
    }
    let slot_h = (inner.height / keys.min(3) as u16).max(3);
    for i in 0..keys.min(3) {
        let y = inner.y + slot_h * i as u16;
        if y >= inner.y + inner.height {
            break;
        }
        let h = slot_h.min(inner.y + inner.height - y);
        let slot = Rect::new(inner.x, y, inner.width, h);
        match images.get(i).and_then(|o| o.as_ref()) {
            Some(img) => frame.render_widget(HalfBlocks(img), slot),
            None => frame.render_widget(
                Paragraph::new(vec![Line::styled(
                    format!("[image {} missing]", i + 1),
                    theme.dim,
                )]),
                slot,
            ),
        }
    }
}

/// The batch on top: every message as it will be sent.
pub fn batch(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let s = state.top();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border);
    let Detail::Batch(d) = &s.detail else {
        frame.render_widget(
            Paragraph::new(Line::styled(" loading…", theme.dim)).block(block.title(" Batch ")),
            area,
        );
        return;
    };
    let b = &d.batch;
    let mut accounts: Vec<String> = d
        .messages
        .iter()
        .filter_map(|m| m.account.as_deref().map(cell_text))
        .collect();
    accounts.sort();
    accounts.dedup();
    let mut lines: Vec<Line> = vec![
        Line::from(vec![
            Span::styled(format!("Batch #{} ", b.id), theme.accent),
            Span::raw(format!("· campaign {} · ", cell_text(&b.campaign_name))),
            Span::styled(b.status.clone(), theme.status(&b.status)),
            Span::raw(format!(
                " · {} messages · created {}",
                fmt_count(b.messages),
                fmt_time(Some(b.created_at))
            )),
        ]),
        Line::raw(format!(
            "accounts: {}",
            if accounts.is_empty() {
                "(none assigned)".to_string()
            } else {
                accounts
                    .iter()
                    .map(|a| format!("@{a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        Line::default(),
    ];
    for m in &d.messages {
        lines.push(Line::from(vec![
            Span::styled(format!("#{} ", m.id), theme.dim),
            Span::styled(format!("→ @{}", cell_text(&m.handle)), theme.accent),
            Span::raw(format!(
                "  from {}  at {}  ",
                m.account
                    .as_deref()
                    .map(|a| format!("@{}", cell_text(a)))
                    .unwrap_or_else(|| "(unassigned)".into()),
                fmt_time(m.not_before)
            )),
            Span::styled(format!("[{}]", m.status), theme.status(&m.status)),
        ]));
        for l in safe(&m.body).lines() {
            lines.push(Line::raw(format!("  │ {l}")));
        }
        lines.push(Line::default());
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((s.scroll, 0))
            .block(block.title(Span::styled(
                " Batch — every message as it will be sent ",
                theme.title,
            ))),
        area,
    );
}
