//! The panes beside tables: the selected campaign's funnel and reply-rate chart, and the jobs
//! finished per minute sparkline.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Sparkline};
use ratatui::Frame;

use super::super::state::State;
use super::super::theme::Theme;
use super::fmt_count;

/// The funnel (candidates → shortlisted → leads → sent → replied) and reply rate per day.
pub fn campaign(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    let funnel_block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(" Funnel ", theme.title));
    let chart_block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(" Reply rate per day (14 d) ", theme.title));
    let Some(stats) = &state.stats else {
        frame.render_widget(
            Paragraph::new(Line::styled(" select a campaign", theme.dim)).block(funnel_block),
            left,
        );
        frame.render_widget(Paragraph::new("").block(chart_block), right);
        return;
    };
    let steps = [
        ("candidates", stats.candidates),
        ("shortlisted", stats.shortlisted),
        ("leads", stats.leads),
        ("sent", stats.sent),
        ("replied", stats.replied),
    ];
    let max = steps.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let bar_room = usize::from(left.width.saturating_sub(2 + 12 + 10 + 2));
    let mut lines: Vec<Line> = steps
        .iter()
        .map(|(name, n)| {
            let len = ((*n as f64 / max as f64) * bar_room as f64).round() as usize;
            let len = if *n > 0 { len.max(1) } else { 0 };
            Line::from(vec![
                Span::raw(format!(" {name:<11}")),
                Span::raw(format!("{:>9} ", fmt_count(*n))),
                Span::styled("█".repeat(len), theme.gauge),
            ])
        })
        .collect();
    let rate = if stats.sent > 0 {
        100.0 * stats.replied as f64 / stats.sent as f64
    } else {
        0.0
    };
    lines.push(Line::default());
    lines.push(Line::styled(
        format!(" reply rate {rate:.1}% of sent"),
        theme.accent,
    ));
    frame.render_widget(Paragraph::new(lines).block(funnel_block), left);

    let points: Vec<(f64, f64)> = stats
        .per_day
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                i as f64,
                if d.sent > 0 {
                    100.0 * d.replied as f64 / d.sent as f64
                } else {
                    0.0
                },
            )
        })
        .collect();
    let top = points
        .iter()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(10.0)
        .ceil();
    let n = points.len().max(1) as f64 - 1.0;
    let first = stats
        .per_day
        .first()
        .map(|d| day_label(d.day))
        .unwrap_or_default();
    let last = stats
        .per_day
        .last()
        .map(|d| day_label(d.day))
        .unwrap_or_default();
    let data = [Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(theme.gauge)
        .data(&points)];
    let chart = Chart::new(data.to_vec())
        .block(chart_block)
        .x_axis(
            Axis::default()
                .bounds([0.0, n.max(1.0)])
                .labels([first, last])
                .style(theme.dim),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0%".to_string(), format!("{top:.0}%")])
                .style(theme.dim),
        );
    frame.render_widget(chart, right);
}

fn day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

/// Jobs finished per minute over the last hour.
pub fn job_rate(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let total: u64 = state.job_rate.iter().sum();
    let peak = state.job_rate.iter().copied().max().unwrap_or(0);
    let last = state.job_rate.last().copied().unwrap_or(0);
    let title = format!(
        " Jobs finished per minute · last hour {total} · peak {peak}/min · now {last}/min "
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(title, theme.title));
    // Show the newest minutes that fit, right-aligned so "now" is always at the right edge.
    let room = usize::from(area.width.saturating_sub(2));
    let mut data: Vec<u64> = state
        .job_rate
        .iter()
        .rev()
        .take(room)
        .rev()
        .copied()
        .collect();
    if data.len() < room {
        data.splice(0..0, std::iter::repeat_n(0, room - data.len()));
    }
    frame.render_widget(
        Sparkline::default()
            .block(block)
            .data(&data)
            .style(theme.gauge),
        area,
    );
}
