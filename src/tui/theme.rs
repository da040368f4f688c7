//! Colors and styles, overridable from `theme.toml` in `$XDG_CONFIG_HOME/omni/`:
//!
//! ```toml
//! [selected]
//! fg = "black"
//! bg = "#5fafff"
//! bold = true
//! ```

use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};

/// Every style the console draws with.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub header: Style,
    pub tab: Style,
    pub tab_active: Style,
    pub border: Style,
    pub title: Style,
    pub column_header: Style,
    pub column_selected: Style,
    pub selected: Style,
    pub marked: Style,
    pub dim: Style,
    pub good: Style,
    pub warn: Style,
    pub bad: Style,
    pub accent: Style,
    pub badge: Style,
    pub hint_key: Style,
    pub hint: Style,
    pub toast_info: Style,
    pub toast_warn: Style,
    pub toast_error: Style,
    pub button: Style,
    pub button_focused: Style,
    pub gauge: Style,
}

impl Default for Theme {
    fn default() -> Self {
        let fg = |c| Style::default().fg(c);
        Self {
            header: Style::default()
                .fg(Color::White)
                .bg(Color::Blue)
                .add_modifier(Modifier::BOLD),
            tab: fg(Color::Gray),
            tab_active: Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            border: fg(Color::DarkGray),
            title: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            column_header: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            column_selected: Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            selected: Style::default().fg(Color::Black).bg(Color::Cyan),
            marked: fg(Color::Magenta).add_modifier(Modifier::BOLD),
            dim: fg(Color::DarkGray),
            good: fg(Color::Green),
            warn: fg(Color::Yellow),
            bad: fg(Color::Red),
            accent: fg(Color::Cyan),
            badge: Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            hint_key: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            hint: fg(Color::Gray),
            toast_info: Style::default().fg(Color::Black).bg(Color::Green),
            toast_warn: Style::default().fg(Color::Black).bg(Color::Yellow),
            toast_error: Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
            button: fg(Color::Gray),
            button_focused: Style::default()
                .fg(Color::Black)
                .bg(Color::White)
                .add_modifier(Modifier::BOLD),
            gauge: fg(Color::Green),
        }
    }
}

impl Theme {
    /// The default theme overridden by a `theme.toml` text; returns problems found alongside.
    pub fn with_overrides(text: &str) -> (Self, Vec<String>) {
        let mut theme = Self::default();
        let mut warnings = Vec::new();
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return (theme, vec![format!("theme.toml: {e}")]),
        };
        for (name, value) in table {
            let Some(slot) = theme.slot(&name) else {
                warnings.push(format!("theme.toml: unknown style [{name}]"));
                continue;
            };
            let Some(t) = value.as_table() else {
                warnings.push(format!("theme.toml: [{name}] must be a table"));
                continue;
            };
            let mut style = Style::default();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("fg", toml::Value::String(c)) => match Color::from_str(c) {
                        Ok(c) => style = style.fg(c),
                        Err(_) => {
                            warnings.push(format!("theme.toml [{name}] fg: unknown color `{c}`"))
                        }
                    },
                    ("bg", toml::Value::String(c)) => match Color::from_str(c) {
                        Ok(c) => style = style.bg(c),
                        Err(_) => {
                            warnings.push(format!("theme.toml [{name}] bg: unknown color `{c}`"))
                        }
                    },
                    ("bold", toml::Value::Boolean(true)) => {
                        style = style.add_modifier(Modifier::BOLD)
                    }
                    ("italic", toml::Value::Boolean(true)) => {
                        style = style.add_modifier(Modifier::ITALIC)
                    }
                    ("underline", toml::Value::Boolean(true)) => {
                        style = style.add_modifier(Modifier::UNDERLINED)
                    }
                    ("bold" | "italic" | "underline", toml::Value::Boolean(false)) => {}
                    _ => warnings.push(format!("theme.toml [{name}]: unknown key `{k}`")),
                }
            }
            *slot = style;
        }
        (theme, warnings)
    }

    fn slot(&mut self, name: &str) -> Option<&mut Style> {
        Some(match name {
            "header" => &mut self.header,
            "tab" => &mut self.tab,
            "tab_active" => &mut self.tab_active,
            "border" => &mut self.border,
            "title" => &mut self.title,
            "column_header" => &mut self.column_header,
            "column_selected" => &mut self.column_selected,
            "selected" => &mut self.selected,
            "marked" => &mut self.marked,
            "dim" => &mut self.dim,
            "good" => &mut self.good,
            "warn" => &mut self.warn,
            "bad" => &mut self.bad,
            "accent" => &mut self.accent,
            "badge" => &mut self.badge,
            "hint_key" => &mut self.hint_key,
            "hint" => &mut self.hint,
            "toast_info" => &mut self.toast_info,
            "toast_warn" => &mut self.toast_warn,
            "toast_error" => &mut self.toast_error,
            "button" => &mut self.button,
            "button_focused" => &mut self.button_focused,
            "gauge" => &mut self.gauge,
            _ => return None,
        })
    }

    /// The style for a status word (green for good outcomes, red for bad, yellow for waiting).
    pub fn status(&self, status: &str) -> Style {
        match status {
            "succeeded" | "approved" | "sent" | "replied" | "done" | "active" => self.good,
            "failed" | "dead" | "rejected" | "opted_out" | "unknown" | "cancelled" | "archived" => {
                self.bad
            }
            "running" | "queued" | "sending" | "dispatching" | "draft" | "new" | "paused" => {
                self.warn
            }
            _ => Style::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_named_styles_and_report_mistakes() {
        let (t, w) = Theme::with_overrides(
            "[selected]\nfg = \"black\"\nbg = \"#102030\"\nbold = true\n[nope]\nfg = \"red\"\n",
        );
        assert_eq!(
            t.selected,
            Style::default()
                .fg(Color::Black)
                .bg(Color::Rgb(16, 32, 48))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(w.len(), 1);
    }
}
