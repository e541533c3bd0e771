//! Text helpers the domain shares.

/// The most of one provider string (a number, a cause, an event type) a stored item keeps: a
/// sender cannot grow an item with one field.
pub const MAX_FIELD_BYTES: usize = 256;
/// The most of a URL kept (signed recording URLs run long).
pub const MAX_URL_BYTES: usize = 2048;

/// The length of `value` as JSON, without building the text.
pub fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// `s` cut to `max` bytes, as an owned string.
pub fn capped(s: &str, max: usize) -> String {
    truncate_utf8(s, max).to_owned()
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_utf8("abc", 5), "abc");
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("aéb", 3), "aé");
    }
}
