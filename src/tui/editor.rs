//! Editing campaign files in `$EDITOR`, like `kubectl edit`: the file opens with a commented
//! template (or the campaign's file); on save it is validated, and errors are written at the top
//! of the file, which reopens until it is valid or left unchanged.

use std::path::Path;
use std::process::Command;

/// The line that starts the block of errors written above a file.
const ERROR_HEADER: &str =
    "# ---- omni could not save this file; fix it, or save it unchanged to give up:";
const ERROR_PREFIX: &str = "# ERROR: ";

/// `text` with `errors` written as comments above it (replacing any errors from an earlier round).
pub fn with_errors(text: &str, errors: &[String]) -> String {
    let mut out = String::from(ERROR_HEADER);
    out.push('\n');
    for e in errors {
        for line in crate::text::strip_control(e).lines() {
            out.push_str(ERROR_PREFIX);
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(strip_errors(text).as_str());
    out
}

/// `text` without the error block [`with_errors`] wrote.
pub fn strip_errors(text: &str) -> String {
    let mut lines = text.lines().peekable();
    if lines.peek() != Some(&ERROR_HEADER) {
        return text.to_string();
    }
    lines.next();
    while lines.peek().is_some_and(|l| l.starts_with(ERROR_PREFIX)) {
        lines.next();
    }
    if lines.peek().is_some_and(|l| l.is_empty()) {
        lines.next();
    }
    let mut out = lines.collect::<Vec<_>>().join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The editor to run: `$VISUAL`, else `$EDITOR`, else `vi`, split into program and arguments.
pub fn editor_command() -> (String, Vec<String>) {
    let raw = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".into());
    let mut parts = raw.split_whitespace().map(String::from);
    let program = parts.next().unwrap_or_else(|| "vi".into());
    (program, parts.collect())
}

/// Runs the editor on `path` and waits for it (the caller has handed it the terminal).
pub fn run_editor(path: &Path) -> std::io::Result<std::process::ExitStatus> {
    let (program, args) = editor_command();
    Command::new(program).args(args).arg(path).status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_go_on_top_and_come_off_again() {
        let text = "name = \"x\"\n";
        let once = with_errors(text, &["line 1: bad".into()]);
        assert!(once.starts_with(ERROR_HEADER));
        assert!(once.contains("# ERROR: line 1: bad\n"));
        let twice = with_errors(&once, &["line 2: worse".into()]);
        assert!(!twice.contains("line 1: bad"), "old errors are replaced");
        assert_eq!(strip_errors(&twice), text);
        assert_eq!(strip_errors(text), text);
    }
}
