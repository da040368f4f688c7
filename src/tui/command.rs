//! The `:` command line: command names with aliases, argument parsing and Tab completion.

use crate::db::browse::{CampaignId, LeadStatus, ProfileId};
use crate::engine::queue::JobStatus;

use super::action::ViewId;
use super::state::Scope;

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Show a view narrowed to a scope.
    Show(ViewId, Scope),
    /// Leave.
    Quit,
    /// Help overlay.
    Help,
    /// Pause or resume live updates.
    Pause,
}

/// Every command: its name, aliases and what its argument means.
pub const COMMANDS: &[(&str, &[&str], &str)] = &[
    ("campaigns", &["cp"], ""),
    ("candidates", &["cand"], "[campaign id]"),
    ("leads", &["ld"], "[campaign id | status]"),
    ("approvals", &["ap", "batches"], "[campaign id | status]"),
    ("messages", &["msg"], "[campaign id | status]"),
    ("jobs", &["jb"], "[status]"),
    ("accounts", &["acc"], ""),
    ("logs", &["log"], ""),
    ("profile", &["pr"], "<profile id>"),
    ("help", &["h"], ""),
    ("pause", &[], ""),
    ("quit", &["q", "q!"], ""),
];

fn resolve(word: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(name, aliases, _)| *name == word || aliases.contains(&word))
        .map(|(name, _, _)| *name)
}

fn view_of(name: &str) -> Option<ViewId> {
    Some(match name {
        "campaigns" => ViewId::Campaigns,
        "candidates" => ViewId::Candidates,
        "leads" => ViewId::Leads,
        "approvals" => ViewId::Approvals,
        "messages" => ViewId::Messages,
        "jobs" => ViewId::Jobs,
        "accounts" => ViewId::Accounts,
        "logs" => ViewId::Logs,
        _ => return None,
    })
}

/// The statuses a view's argument may name.
fn statuses(view: ViewId) -> Vec<&'static str> {
    match view {
        ViewId::Leads => LeadStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ViewId::Jobs => JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
        ViewId::Approvals => vec!["draft", "approved", "dispatching", "done", "cancelled"],
        ViewId::Messages => vec![
            "draft",
            "approved",
            "queued",
            "sending",
            "sent",
            "failed",
            "unknown",
            "cancelled",
        ],
        _ => Vec::new(),
    }
}

/// Parses a command line (without the `:`).
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Err("empty command".into());
    };
    let arg = words.next();
    if let Some(extra) = words.next() {
        return Err(format!("unexpected `{extra}`"));
    }
    let name = resolve(first)
        .ok_or_else(|| format!("unknown command `{first}`: press Tab to see commands"))?;
    match name {
        "quit" => Ok(Command::Quit),
        "help" => Ok(Command::Help),
        "pause" => Ok(Command::Pause),
        "profile" => {
            let id = arg
                .and_then(|a| a.trim_start_matches('#').parse::<i64>().ok())
                .ok_or_else(|| "usage: :profile <profile id>".to_string())?;
            Ok(Command::Show(
                ViewId::Profile,
                Scope {
                    profile: Some((ProfileId(id), String::new())),
                    ..Default::default()
                },
            ))
        }
        other => {
            let view = view_of(other).ok_or_else(|| format!("unknown command `{first}`"))?;
            let mut scope = Scope::default();
            if let Some(a) = arg {
                let allowed = statuses(view);
                if let Ok(id) = a.trim_start_matches('#').parse::<i64>() {
                    if matches!(
                        view,
                        ViewId::Jobs | ViewId::Accounts | ViewId::Logs | ViewId::Campaigns
                    ) {
                        return Err(format!(":{other} takes no campaign id"));
                    }
                    scope.campaign = Some((CampaignId(id), String::new()));
                } else if allowed.contains(&a) {
                    scope.status = Some(a.to_string());
                } else if allowed.is_empty() {
                    return Err(format!(":{other} takes no argument"));
                } else {
                    return Err(format!(
                        "unknown status `{a}` for :{other}: one of {}",
                        allowed.join(", ")
                    ));
                }
            }
            Ok(Command::Show(view, scope))
        }
    }
}

/// What could complete the word being typed (names, aliases, or statuses for the argument).
pub fn candidates(line: &str) -> Vec<String> {
    let ends_with_space = line.ends_with(' ');
    let words: Vec<&str> = line.split_whitespace().collect();
    match (words.as_slice(), ends_with_space) {
        ([], _) => COMMANDS.iter().map(|(n, _, _)| n.to_string()).collect(),
        ([w], false) => {
            let mut out: Vec<String> = Vec::new();
            for (name, aliases, _) in COMMANDS {
                if name.starts_with(w) || aliases.iter().any(|a| a.starts_with(w)) {
                    out.push(name.to_string());
                }
            }
            out
        }
        ([cmd], true) | ([cmd, _], false) => {
            let prefix = if ends_with_space { "" } else { words[1] };
            resolve(cmd)
                .and_then(view_of)
                .map(|v| {
                    statuses(v)
                        .into_iter()
                        .filter(|s| s.starts_with(prefix))
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Completes `line` as far as it is unambiguous: the unique candidate (plus a space after a
/// command name), or the candidates' longest common prefix.
pub fn complete(line: &str) -> String {
    let cands = candidates(line);
    let words: Vec<&str> = line.split_whitespace().collect();
    let completing_arg = words.len() > 1 || (words.len() == 1 && line.ends_with(' '));
    let head = if completing_arg {
        format!("{} ", words[0])
    } else {
        String::new()
    };
    let fill = match cands.as_slice() {
        [] => return line.to_string(),
        [one] => {
            if completing_arg {
                one.clone()
            } else {
                format!("{one} ")
            }
        }
        many => {
            let first = &many[0];
            let mut n = first.len();
            for c in many {
                n = n.min(
                    first
                        .chars()
                        .zip(c.chars())
                        .take_while(|(a, b)| a == b)
                        .count(),
                );
            }
            let common: String = first.chars().take(n).collect();
            let typed = if completing_arg {
                words.get(1).copied().unwrap_or("")
            } else {
                words.first().copied().unwrap_or("")
            };
            if common.len() <= typed.len() {
                return line.to_string();
            }
            common
        }
    };
    format!("{head}{fill}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_arguments_parse() {
        assert_eq!(
            parse("cp"),
            Ok(Command::Show(ViewId::Campaigns, Scope::default()))
        );
        assert_eq!(
            parse("leads 3"),
            Ok(Command::Show(
                ViewId::Leads,
                Scope {
                    campaign: Some((CampaignId(3), String::new())),
                    ..Default::default()
                }
            ))
        );
        assert_eq!(
            parse("jobs failed"),
            Ok(Command::Show(
                ViewId::Jobs,
                Scope {
                    status: Some("failed".into()),
                    ..Default::default()
                }
            ))
        );
        assert_eq!(parse("q"), Ok(Command::Quit));
        assert!(parse("jobs nonsense")
            .unwrap_err()
            .contains("unknown status"));
        assert!(parse("frobnicate").is_err());
    }

    #[test]
    fn tab_completes_names_and_statuses() {
        assert_eq!(
            complete("ca"),
            "ca".to_string(),
            "campaigns and candidates share only `ca`"
        );
        assert_eq!(complete("camp"), "campaigns ");
        assert_eq!(complete("cand"), "candidates ");
        assert_eq!(complete("jobs f"), "jobs failed");
        assert_eq!(complete("jobs "), "jobs ");
        assert_eq!(complete("le"), "leads ");
        assert_eq!(candidates("jobs ").len(), 6);
    }
}
