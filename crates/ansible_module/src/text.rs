//! Remote text made safe to show: what a server, a container or a log line sends may hold
//! terminal escapes (a clear-screen, a title, OSC 52 for the clipboard) or bidirectional
//! overrides that make a message read other than it is. Every module that quotes such text in a
//! message, a warning or a result passes it through here first.

/// Removes control characters (ANSI escapes included: ESC and the CSI introducer go, the rest is
/// plain text), decodes lossily and trims. Newlines and tabs become spaces.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Drop a CSI sequence: ESC [ params final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\n' || c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// [`sanitize`], and without bidirectional marks and overrides (U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069): for text that is shown as it was written (log lines and their values).
/// The marks go first, so that the result is trimmed also where one stood at an end.
pub fn sanitize_bidi(text: &str) -> String {
    if text.chars().any(is_bidi) {
        let plain: String = text.chars().filter(|c| !is_bidi(*c)).collect();
        sanitize(plain.as_bytes())
    } else {
        sanitize(text.as_bytes())
    }
}

/// A bidirectional mark, embedding, override or isolate.
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_overrides_go() {
        assert_eq!(sanitize(b"\x1b[31mred\x1b[0m\r\nnext\x07"), "red next");
        assert_eq!(sanitize(b"a\tb\xffc"), "a b\u{fffd}c");
        assert_eq!(sanitize_bidi("evil\u{202e}txt.exe\u{2066}"), "eviltxt.exe");
        assert_eq!(sanitize_bidi("\u{9b}31m plain "), "31m plain");
        // A proptest regression: a mark before a space left the result untrimmed.
        assert_eq!(sanitize_bidi("\u{202e} \x1b]52;c;"), "]52;c;");
    }
}
