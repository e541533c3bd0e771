//! Text that came from a sender, made safe to look at. HTML escaping is the templates' job (maud
//! escapes every interpolated value); this module makes what HTML would hide or misuse visible:
//! control characters (a NUL is replaced by the parser, an escape sequence is invisible), the
//! characters that reorder text around them, bytes that are not UTF-8, and values too long to
//! fit a page.

/// At most this many bytes of a raw body are shown on a page (the rest: `review show --raw`).
pub const MAX_BODY_SHOWN: usize = 64 * 1024;

pub use crate::terminal::clipped;

/// `text` with every control character except newline and tab, and every bidirectional
/// control, shown as its escape (`\u{1b}`), so what is on the page is what is in the data.
pub fn visible(text: &str) -> String {
    crate::terminal::printable_lines(text).into_owned()
}

/// [`visible`] on one line: newlines and tabs escaped too (ids, table cells).
pub fn visible_line(text: &str) -> String {
    crate::terminal::printable(text).into_owned()
}

/// A raw body as text: UTF-8 shown as it is (controls made [`visible`]), any other byte as
/// `\xNN`, at most [`MAX_BODY_SHOWN`] bytes; the flag says whether it was cut.
pub fn body_text(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > MAX_BODY_SHOWN;
    let bytes = &bytes[..bytes.len().min(MAX_BODY_SHOWN)];
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&visible(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    (out, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_reordering_characters_are_shown_escaped() {
        assert_eq!(
            visible("a\u{0}b\u{1b}[31m\nc\td"),
            "a\\u{0}b\\u{1b}[31m\nc\td"
        );
        assert_eq!(visible_line("a\nb\u{202e}c"), "a\\nb\\u{202e}c");
        assert_eq!(
            visible("<script>\"'&"),
            "<script>\"'&",
            "HTML is maud's job"
        );
    }

    #[test]
    fn bodies_keep_every_byte_visible_and_are_cut() {
        let (text, cut) = body_text(b"{\"a\":1}\xff\xfe\x00");
        assert_eq!(text, "{\"a\":1}\\xff\\xfe\\u{0}");
        assert!(!cut);
        let (text, cut) = body_text(&vec![b'x'; MAX_BODY_SHOWN + 10]);
        assert!(cut);
        assert_eq!(text.len(), MAX_BODY_SHOWN);
    }

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let clipped = clipped(&long, 10);
        assert_eq!(clipped.chars().count(), 11);
        assert!(clipped.ends_with('…'));
        assert_eq!(super::clipped("short", 10), "short");
    }
}
