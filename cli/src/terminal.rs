//! Text from senders, made safe to look at: a provider's ids, numbers, reasons and raw bodies
//! may hold control characters, and an escape sequence (ESC `[2J`, a title change, a
//! hyperlink, a C1 CSI) printed as it is would act on the operator's terminal; a bidirectional
//! control would reorder what is shown. Every human-readable listing, the dev terminal and the
//! console pass such text through here; `--json` is escaped by the JSON encoder and `--raw`
//! stays byte-exact on purpose (for a pipe or a file).

use std::borrow::Cow;

/// A character a terminal or a page may act on instead of showing: C0 and C1 controls, DEL,
/// and the bidirectional controls (marks, embeddings, overrides, isolates) that reorder what is
/// shown around them.
pub fn acts(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with each character `escaped` says written as its escape (`\u{1b}`, `\n`);
/// unchanged text is borrowed.
fn escaping(text: &str, escaped: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` on one line: every character that [`acts`] escaped, newlines and tabs too (one value
/// stays on one line of a table).
pub fn printable(text: &str) -> Cow<'_, str> {
    escaping(text, acts)
}

/// `text` with its lines kept: as [`printable`], but newlines and tabs stay.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escaping(text, |c| acts(c) && c != '\n' && c != '\t')
}

/// [`printable`] of at most `max` characters of `text`, then `…` (an escape is never cut).
pub fn clipped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", printable(&text[..at])),
        None => printable(text).into_owned(),
    }
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
            "\u{200f}mark",
            "tab\there",
        ] {
            let shown = printable(evil);
            assert!(!shown.chars().any(acts), "{shown:?}");
        }
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
        // The listings, the dev terminal and the console escape the same characters alike.
        assert_eq!(printable_lines("a\n\u{200e}b"), "a\n\\u{200e}b");
        assert_eq!(clipped("\u{1b}xy", 2), "\\u{1b}x…");
        assert!(matches!(printable("+15550100 café"), Cow::Borrowed(_)));
        let body = printable_body(b"{\"a\":1}\r\n{\"b\":\"\x1b[31m\"}\n\xff");
        assert_eq!(body, "{\"a\":1}\n{\"b\":\"\\u{1b}[31m\"}\n\u{fffd}");
    }
}
