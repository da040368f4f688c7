//! Text hygiene for untrusted (scraped) strings before they reach a terminal or a log line.

/// Removes ANSI/VT escape sequences and control characters (keeping `\n` and `\t`).
pub fn strip_control(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // ESC [ ... final byte (CSI), ESC ] ... BEL/ST (OSC), or a two-char escape.
                match chars.peek() {
                    Some('[') => {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') | Some('P') | Some('_') | Some('^') => {
                        chars.next();
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' {
                                break;
                            }
                            if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    Some(_) => {
                        chars.next();
                    }
                    None => {}
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            // C1 controls and bidi overrides can reorder or hide what the operator sees.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_csi_osc_and_controls() {
        let s = "a\u{1b}[31mred\u{1b}[0m\u{1b}]0;title\u{7}b\u{0}c\u{9b}d\u{202e}e\n";
        assert_eq!(strip_control(s), "aredbcde\n");
    }
}
