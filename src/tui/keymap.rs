//! The one keymap registry: default bindings, `keymap.toml` overrides, read-only filtering, key
//! translation, and the hint bar and help overlay both drawn from it.
//!
//! `keymap.toml` (in `$XDG_CONFIG_HOME/omni/`) has a `[global]` table and one table per view;
//! each entry maps a key to an action, e.g.
//!
//! ```toml
//! [global]
//! "ctrl-c" = "quit"
//! "F1" = "help"
//! [leads]
//! "y" = "approve_marked"
//! "x" = "none"            # unbind
//! "1" = { jump = "campaigns" }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::{Action, InputKey, ViewId};
use super::columns::columns;
use super::state::{InputMode, State};

/// A key as bound: a code plus Ctrl/Alt (Shift is folded into the character's case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The key.
    pub code: Code,
    /// Ctrl held.
    pub ctrl: bool,
    /// Alt held.
    pub alt: bool,
}

/// The keys the console binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

impl Key {
    /// A plain key.
    pub const fn plain(code: Code) -> Self {
        Self {
            code,
            ctrl: false,
            alt: false,
        }
    }

    /// Normalizes a terminal key event (`None` for releases and keys the console ignores).
    pub fn from_event(ev: &KeyEvent) -> Option<Self> {
        if ev.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        let alt = ev.modifiers.contains(KeyModifiers::ALT);
        let code = match ev.code {
            // Terminals send Ctrl-\ as 0x1c, which crossterm reports as Ctrl-4.
            KeyCode::Char('4') if ctrl => Code::Char('\\'),
            KeyCode::Char(c) => Code::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::Enter => Code::Enter,
            KeyCode::Esc => Code::Esc,
            KeyCode::Tab => Code::Tab,
            KeyCode::BackTab => Code::BackTab,
            KeyCode::Backspace => Code::Backspace,
            KeyCode::Delete => Code::Delete,
            KeyCode::Up => Code::Up,
            KeyCode::Down => Code::Down,
            KeyCode::Left => Code::Left,
            KeyCode::Right => Code::Right,
            KeyCode::Home => Code::Home,
            KeyCode::End => Code::End,
            KeyCode::PageUp => Code::PageUp,
            KeyCode::PageDown => Code::PageDown,
            KeyCode::F(n) => Code::F(n),
            _ => return None,
        };
        Some(Self { code, ctrl, alt })
    }
}

impl FromStr for Key {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut key = Key::plain(Code::Esc);
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower
                .strip_prefix("ctrl-")
                .or_else(|| lower.strip_prefix("c-"))
            {
                key.ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower
                .strip_prefix("alt-")
                .or_else(|| lower.strip_prefix("m-"))
            {
                key.alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-") {
                // Shift-letter is the capital letter.
                let r = &rest[rest.len() - r.len()..];
                let mut chars = r.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => {
                        key.code = Code::Char(c.to_ascii_uppercase());
                        return Ok(key);
                    }
                    _ if r.eq_ignore_ascii_case("tab") => {
                        key.code = Code::BackTab;
                        return Ok(key);
                    }
                    _ => return Err(format!("`{s}`: shift- goes with a single letter or tab")),
                }
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        key.code = match (chars.next(), chars.next()) {
            (Some(c), None) => Code::Char(if key.ctrl { c.to_ascii_lowercase() } else { c }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "space" => Code::Char(' '),
                "enter" | "return" => Code::Enter,
                "esc" | "escape" => Code::Esc,
                "tab" => Code::Tab,
                "backtab" => Code::BackTab,
                "backspace" | "bs" => Code::Backspace,
                "delete" | "del" => Code::Delete,
                "up" => Code::Up,
                "down" => Code::Down,
                "left" => Code::Left,
                "right" => Code::Right,
                "home" => Code::Home,
                "end" => Code::End,
                "pgup" | "pageup" => Code::PageUp,
                "pgdn" | "pgdown" | "pagedown" => Code::PageDown,
                f if f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                    Code::F(f[1..].parse().unwrap_or(1))
                }
                _ => return Err(format!("unknown key `{s}`")),
            },
        };
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        match self.code {
            Code::Char(' ') => f.write_str("Space"),
            Code::Char(c) if c.is_ascii_uppercase() && !self.ctrl => write!(f, "Shift-{c}"),
            Code::Char(c) => write!(f, "{c}"),
            Code::Enter => f.write_str("Enter"),
            Code::Esc => f.write_str("Esc"),
            Code::Tab => f.write_str("Tab"),
            Code::BackTab => f.write_str("Shift-Tab"),
            Code::Backspace => f.write_str("Backspace"),
            Code::Delete => f.write_str("Del"),
            Code::Up => f.write_str("↑"),
            Code::Down => f.write_str("↓"),
            Code::Left => f.write_str("←"),
            Code::Right => f.write_str("→"),
            Code::Home => f.write_str("Home"),
            Code::End => f.write_str("End"),
            Code::PageUp => f.write_str("PgUp"),
            Code::PageDown => f.write_str("PgDn"),
            Code::F(n) => write!(f, "F{n}"),
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// Every view (a view's own binding for the same key wins).
    Global,
    /// One view.
    View(ViewId),
}

/// One binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The key.
    pub key: Key,
    /// What it does.
    pub action: Action,
    /// Where.
    pub context: Context,
}

/// Every binding in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

const GLOBAL: &[(&str, Action)] = &[
    ("ctrl-c", Action::Quit),
    ("esc", Action::Back),
    ("enter", Action::Enter),
    ("k", Action::Up),
    ("up", Action::Up),
    ("j", Action::Down),
    ("down", Action::Down),
    ("g", Action::Top),
    ("home", Action::Top),
    ("G", Action::Bottom),
    ("end", Action::Bottom),
    ("ctrl-d", Action::HalfPageDown),
    ("ctrl-u", Action::HalfPageUp),
    ("pgdn", Action::PageDown),
    ("pgup", Action::PageUp),
    ("h", Action::ColumnLeft),
    ("left", Action::ColumnLeft),
    ("l", Action::ColumnRight),
    ("right", Action::ColumnRight),
    ("O", Action::SortSelected),
    ("/", Action::Filter),
    ("n", Action::NextMatch),
    ("N", Action::PrevMatch),
    ("p", Action::TogglePause),
    ("space", Action::ToggleMark),
    ("V", Action::MarkRange),
    ("ctrl-\\", Action::ClearMarks),
    (":", Action::CommandLine),
    ("?", Action::Help),
    ("ctrl-r", Action::Refresh),
];

const VIEW: &[(ViewId, &str, Action)] = &[
    (ViewId::Campaigns, "n", Action::NewCampaign),
    (ViewId::Campaigns, "e", Action::EditCampaign),
    (ViewId::Campaigns, "x", Action::ExplainCampaign),
    (ViewId::Campaigns, "d", Action::Discover),
    (ViewId::Campaigns, "Q", Action::Qualify),
    (ViewId::Campaigns, "L", Action::Learn),
    (ViewId::Leads, "a", Action::ApproveMarked),
    (ViewId::Leads, "r", Action::RejectMarked),
    (ViewId::Leads, "b", Action::BuildBatch),
    (ViewId::Approvals, "a", Action::ApproveBatch),
    (ViewId::Batch, "a", Action::ApproveBatch),
    (ViewId::Jobs, "R", Action::RetryJob),
    (ViewId::Jobs, "C", Action::CancelJob),
];

/// Problems found in a keymap file (the console shows them and keeps the defaults for those keys).
pub type KeymapWarnings = Vec<String>;

impl Keymap {
    /// The built-in bindings (plus each column's Shift+letter sort shortcut), without mutating
    /// ones when `readonly`.
    pub fn defaults(readonly: bool) -> Self {
        let mut bindings = Vec::new();
        for (i, v) in ViewId::TABS.iter().enumerate() {
            let key = Key::plain(Code::Char(char::from(b'1' + i as u8)));
            bindings.push(Binding {
                key,
                action: Action::Jump(*v),
                context: Context::Global,
            });
        }
        for (k, a) in GLOBAL {
            bindings.push(Binding {
                key: parse_key(k),
                action: a.clone(),
                context: Context::Global,
            });
        }
        for (v, k, a) in VIEW {
            bindings.push(Binding {
                key: parse_key(k),
                action: a.clone(),
                context: Context::View(*v),
            });
        }
        for v in ViewId::ALL {
            for c in columns(v) {
                if let (Some(letter), Some(sort)) = (c.shortcut, c.sort) {
                    bindings.push(Binding {
                        key: Key::plain(Code::Char(letter)),
                        action: Action::SortBy(sort.to_string()),
                        context: Context::View(v),
                    });
                }
            }
        }
        let mut map = Self { bindings };
        if readonly {
            map.bindings.retain(|b| !b.action.is_mutating());
        }
        map
    }

    /// The defaults overridden by a `keymap.toml` text. Mutating actions stay unbound in
    /// read-only mode whatever the file says.
    pub fn with_overrides(readonly: bool, text: &str) -> (Self, KeymapWarnings) {
        let mut map = Self::defaults(readonly);
        let mut warnings = Vec::new();
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => return (map, vec![format!("keymap.toml: {e}")]),
        };
        for (section, entries) in table {
            let context = if section == "global" {
                Context::Global
            } else if let Some(v) = ViewId::ALL.iter().find(|v| v.key_name() == section) {
                Context::View(*v)
            } else {
                warnings.push(format!("keymap.toml: unknown section [{section}]"));
                continue;
            };
            let Some(entries) = entries.as_table() else {
                warnings.push(format!("keymap.toml: [{section}] must be a table"));
                continue;
            };
            for (k, v) in entries {
                let key = match k.parse::<Key>() {
                    Ok(key) => key,
                    Err(e) => {
                        warnings.push(format!("keymap.toml [{section}]: {e}"));
                        continue;
                    }
                };
                map.bindings
                    .retain(|b| !(b.key == key && b.context == context));
                if v.as_str() == Some("none") {
                    continue;
                }
                match v.clone().try_into::<Action>() {
                    Ok(action) if readonly && action.is_mutating() => {}
                    Ok(action) => map.bindings.push(Binding {
                        key,
                        action,
                        context,
                    }),
                    Err(e) => warnings.push(format!("keymap.toml [{section}] \"{k}\": {e}")),
                }
            }
        }
        (map, warnings)
    }

    /// The action bound to `key` in `view` (the view's own binding first).
    pub fn lookup(&self, view: ViewId, key: Key) -> Option<&Action> {
        self.bindings
            .iter()
            .find(|b| b.key == key && b.context == Context::View(view))
            .or_else(|| {
                self.bindings
                    .iter()
                    .find(|b| b.key == key && b.context == Context::Global)
            })
            .map(|b| &b.action)
    }

    /// The bindings that apply in `view`: the view's own, then the global ones it does not shadow.
    pub fn for_view(&self, view: ViewId) -> Vec<&Binding> {
        let own: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.context == Context::View(view))
            .collect();
        let mut out = own.clone();
        out.extend(
            self.bindings
                .iter()
                .filter(|b| b.context == Context::Global && !own.iter().any(|o| o.key == b.key)),
        );
        out
    }

    /// The hint bar for `view`: its own commands first, then the essentials, `key label` pairs.
    pub fn hints(&self, view: ViewId) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen: Vec<Action> = Vec::new();
        let mut add = |b: &Binding, out: &mut Vec<(String, String)>| {
            if seen.contains(&b.action) {
                return;
            }
            if let Some(label) = b.action.label() {
                seen.push(b.action.clone());
                out.push((b.key.to_string(), label));
            }
        };
        for b in self
            .bindings
            .iter()
            .filter(|b| b.context == Context::View(view))
        {
            if !matches!(b.action, Action::SortBy(_)) {
                add(b, &mut out);
            }
        }
        let essentials = [
            Action::Enter,
            Action::Back,
            Action::Filter,
            Action::ToggleMark,
            Action::CommandLine,
            Action::TogglePause,
            Action::Help,
            Action::Quit,
        ];
        for want in essentials {
            if let Some(b) = self.for_view(view).into_iter().find(|b| b.action == want) {
                add(b, &mut out);
            }
        }
        out
    }

    /// Help: every binding in `view`, grouped as (section, [(keys, label)]), keys of one action joined.
    pub fn help(&self, view: ViewId) -> Vec<(String, Vec<(String, String)>)> {
        let mut sections = Vec::new();
        for (title, ctx) in [
            (view.title().to_string(), Context::View(view)),
            ("Everywhere".to_string(), Context::Global),
        ] {
            let mut by_action: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut order: Vec<String> = Vec::new();
            for b in self.for_view(view).into_iter().filter(|b| b.context == ctx) {
                let Some(label) = b.action.label() else {
                    continue;
                };
                if !by_action.contains_key(&label) {
                    order.push(label.clone());
                }
                by_action.entry(label).or_default().push(b.key.to_string());
            }
            let rows = order
                .into_iter()
                .map(|label| {
                    (
                        by_action.remove(&label).unwrap_or_default().join(" "),
                        label,
                    )
                })
                .collect::<Vec<_>>();
            if !rows.is_empty() {
                sections.push((title, rows));
            }
        }
        sections
    }

    /// Translates a key into an action for the current state: text fields and dialogs take keys
    /// as input, help closes on any key, and otherwise the keymap decides.
    pub fn translate(&self, state: &State, key: Key) -> Option<Action> {
        match &state.mode {
            InputMode::Help | InputMode::Text { .. } => Some(Action::Help),
            InputMode::Command(_) | InputMode::Filter(_) | InputMode::Confirm(_) => {
                if key.ctrl && key.code == Code::Char('c') {
                    return Some(Action::Input(InputKey::Esc));
                }
                Some(Action::Input(match key.code {
                    Code::Char(c) if !key.ctrl && !key.alt => InputKey::Char(c),
                    Code::Backspace => InputKey::Backspace,
                    Code::Delete => InputKey::Delete,
                    Code::Left => InputKey::Left,
                    Code::Right => InputKey::Right,
                    Code::Home => InputKey::Home,
                    Code::End => InputKey::End,
                    Code::Tab => InputKey::Tab,
                    Code::BackTab => InputKey::BackTab,
                    Code::Enter => InputKey::Enter,
                    Code::Esc => InputKey::Esc,
                    _ => return None,
                }))
            }
            InputMode::Normal => self.lookup(state.view(), key).cloned(),
        }
    }

    /// Every binding.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }
}

fn parse_key(s: &str) -> Key {
    // The built-in tables above are written in the same syntax users write; a typo there is a bug
    // caught by the `defaults_parse` test.
    s.parse().unwrap_or(Key::plain(Code::F(24)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        for (k, _) in GLOBAL {
            assert!(k.parse::<Key>().is_ok(), "{k}");
        }
        for (_, k, _) in VIEW {
            assert!(k.parse::<Key>().is_ok(), "{k}");
        }
    }

    #[test]
    fn keys_parse_and_print() {
        assert_eq!(
            "ctrl-d".parse::<Key>().map(|k| k.to_string()),
            Ok("Ctrl-d".into())
        );
        assert_eq!("shift-o".parse::<Key>(), "O".parse::<Key>());
        assert_eq!("space".parse::<Key>().map(|k| k.code), Ok(Code::Char(' ')));
        assert_eq!(
            "ctrl-\\".parse::<Key>().map(|k| k.to_string()),
            Ok("Ctrl-\\".into())
        );
        assert!("ctrl-nonsense".parse::<Key>().is_err());
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        let map = Keymap::defaults(false);
        for (i, a) in map.bindings.iter().enumerate() {
            for b in &map.bindings[i + 1..] {
                assert!(
                    !(a.key == b.key && a.context == b.context),
                    "{} bound twice in {:?}",
                    a.key,
                    a.context
                );
            }
        }
    }

    #[test]
    fn view_bindings_shadow_global_ones() {
        let map = Keymap::defaults(false);
        let n = Key::plain(Code::Char('n'));
        assert_eq!(map.lookup(ViewId::Campaigns, n), Some(&Action::NewCampaign));
        assert_eq!(map.lookup(ViewId::Leads, n), Some(&Action::NextMatch));
    }

    #[test]
    fn readonly_binds_no_mutating_action_even_from_the_file() {
        let (map, warnings) = Keymap::with_overrides(true, "[leads]\n\"y\" = \"approve_marked\"\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(map.bindings().iter().all(|b| !b.action.is_mutating()));
        assert_eq!(map.lookup(ViewId::Leads, Key::plain(Code::Char('a'))), None);
    }

    #[test]
    fn file_overrides_rebind_unbind_and_report_mistakes() {
        let text = "[global]\n\"F1\" = \"help\"\n\"1\" = { jump = \"jobs\" }\n[leads]\n\"a\" = \"none\"\n\"y\" = \"approve_marked\"\n\"z\" = \"fly\"\n[nope]\n";
        let (map, warnings) = Keymap::with_overrides(false, text);
        assert_eq!(
            map.lookup(ViewId::Leads, "F1".parse().unwrap()),
            Some(&Action::Help)
        );
        assert_eq!(
            map.lookup(ViewId::Leads, "1".parse().unwrap()),
            Some(&Action::Jump(ViewId::Jobs))
        );
        assert_eq!(
            map.lookup(ViewId::Leads, "y".parse().unwrap()),
            Some(&Action::ApproveMarked)
        );
        assert_eq!(map.lookup(ViewId::Leads, "a".parse().unwrap()), None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
