//! Text from senders on a terminal: a provider's ids, numbers, reasons and raw bodies may hold
//! control characters, and an escape sequence (ESC `[2J`, a title change, a hyperlink, a C1 CSI)
//! printed as it is would act on the operator's terminal. Every human-readable listing passes
//! such text through [`printable`]; `--json` is escaped by the JSON encoder and `--raw` stays
//! byte-exact on purpose (for a pipe or a file).

use std::borrow::Cow;

/// A character a terminal may act on instead of showing: C0 and C1 controls, DEL, and the
/// bidirectional overrides that reorder what is shown.
fn acts(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each such character written as its escape (`\u{1b}`); unchanged text is
/// borrowed. Newlines and tabs are escaped too: one value stays on one line of a table.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A raw body for a person: UTF-8 (invalid bytes replaced) with controls escaped, its line
/// breaks kept so that a JSON or form body still reads as it was sent.
pub fn printable_body(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('\n')
        .map(|line| printable(line.strip_suffix('\r').unwrap_or(line)).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_cannot_pass() {
        for evil in [
            "\u{1b}[2J\u{1b}[H",
            "\u{1b}]0;owned\u{7}",
            "\u{9b}31m",
            "a\rb",
            "\u{7f}",
            "\u{202e}gnp.exe",
            "tab\there",
        ] {
            let shown = printable(evil);
            assert!(!shown.chars().any(acts), "{shown:?}");
        }
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
        assert!(matches!(printable("+15550100 café"), Cow::Borrowed(_)));
        let body = printable_body(b"{\"a\":1}\r\n{\"b\":\"\x1b[31m\"}\n\xff");
        assert_eq!(body, "{\"a\":1}\n{\"b\":\"\\u{1b}[31m\"}\n\u{fffd}");
    }
}
