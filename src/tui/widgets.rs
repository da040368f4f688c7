//! Small widgets the views share: a text progress bar for table cells, the confirmation dialog,
//! toasts, and centered popups.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Widget, Wrap};

use super::action::Level;
use super::state::{Confirm, Focus, Toast};
use super::theme::Theme;

/// A progress bar as text, `width` cells wide including the percentage (`█████░░░░░  50%`).
pub fn progress_bar(pct: i64, width: usize) -> String {
    let pct = pct.clamp(0, 100);
    let bar = width.saturating_sub(5);
    let full = (bar as i64 * pct / 100) as usize;
    format!("{}{} {:>3}%", "█".repeat(full), "░".repeat(bar - full), pct)
}

/// A rectangle of `w × h` centered in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The confirmation dialog: what will happen, the word to type if any, and two buttons.
pub struct ConfirmDialog<'a> {
    /// The dialog.
    pub confirm: &'a Confirm,
    /// Styles.
    pub theme: &'a Theme,
}

impl Widget for ConfirmDialog<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let c = self.confirm;
        let t = self.theme;
        let mut lines: Vec<Line> = c.lines.iter().map(|l| Line::from(l.as_str())).collect();
        lines.push(Line::default());
        if let Some(word) = &c.word {
            let ok = c.armed();
            lines.push(Line::from(vec![
                Span::raw(format!("Type `{word}`: ")),
                Span::styled(
                    format!("{:<8}", format!("{}_", c.typed)),
                    if ok { t.good } else { t.warn },
                ),
            ]));
            lines.push(Line::default());
        }
        let style_for = |focus: Focus, enabled: bool| {
            if c.focus == focus {
                t.button_focused
            } else if enabled {
                t.button
            } else {
                t.dim
            }
        };
        lines.push(
            Line::from(vec![
                Span::styled("[ Cancel ]", style_for(Focus::Cancel, true)),
                Span::raw("    "),
                Span::styled("[ Approve ]", style_for(Focus::Confirm, c.armed())),
            ])
            .alignment(Alignment::Center),
        );
        lines.push(
            Line::styled("Tab switch · Enter choose · Esc cancel", t.dim)
                .alignment(Alignment::Center),
        );
        let h = lines.len() as u16 + 2;
        let w = 64;
        let rect = centered(area, w, h);
        Clear.render(rect, buf);
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_type(BorderType::Double)
                    .border_style(t.warn)
                    .title(Span::styled(format!(" {} ", c.title), t.title)),
            )
            .render(rect, buf);
    }
}

/// Toasts stacked at the top right, newest at the bottom.
pub struct Toasts<'a> {
    /// The toasts.
    pub toasts: &'a [Toast],
    /// Styles.
    pub theme: &'a Theme,
}

impl Widget for Toasts<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let w = (area.width / 2).clamp(20, 70).min(area.width);
        let mut y = area.y;
        for toast in self.toasts {
            let (style, mark): (Style, &str) = match toast.level {
                Level::Info => (self.theme.toast_info, "✓"),
                Level::Warn => (self.theme.toast_warn, "!"),
                Level::Error => (self.theme.toast_error, "✗"),
            };
            let suffix = if toast.level == Level::Error {
                "  (Esc)"
            } else {
                ""
            };
            let text = format!(" {mark} {}{suffix} ", toast.text);
            let inner = usize::from(w);
            let rows = (text.chars().count().div_ceil(inner)).clamp(1, 3) as u16;
            if y + rows > area.y + area.height {
                break;
            }
            let rect = Rect::new(area.x + area.width - w, y, w, rows);
            Clear.render(rect, buf);
            Paragraph::new(text)
                .style(style)
                .wrap(Wrap { trim: false })
                .render(rect, buf);
            y += rows;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::action::Effect;

    #[test]
    fn progress_bar_fills_in_proportion() {
        assert_eq!(progress_bar(50, 15), "█████░░░░░  50%");
        assert_eq!(progress_bar(150, 9), "████ 100%");
        assert_eq!(progress_bar(-3, 9), "░░░░   0%");
    }

    #[test]
    fn dialog_draws_both_buttons_with_focus_on_cancel() {
        let theme = Theme::default();
        let c = Confirm::new(
            "Cancel job #1?",
            vec!["kind is running.".into()],
            Effect::Quit,
            None,
        );
        let area = Rect::new(0, 0, 70, 12);
        let mut buf = Buffer::empty(area);
        ConfirmDialog {
            confirm: &c,
            theme: &theme,
        }
        .render(area, &mut buf);
        let text: String = (0..area.height)
            .map(|y| {
                (0..area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("[ Cancel ]") && text.contains("[ Approve ]"),
            "{text}"
        );
        let row = (0..area.height)
            .find(|y| (0..area.width).any(|x| buf[(x, *y)].symbol() == "["))
            .expect("buttons row");
        let cancel_x = (0..area.width)
            .find(|x| buf[(*x, row)].symbol() == "[")
            .expect("cancel");
        assert_eq!(
            buf[(cancel_x, row)].style().bg,
            theme.button_focused.bg,
            "Cancel has focus"
        );
    }
}
