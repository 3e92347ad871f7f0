//! Docker Compose's `.env` dialect (compose-go `dotenv/parser.go` and `template/template.go`,
//! contract `ssh-pct-dotenv.md` §4.1), without reading the process environment.
//!
//! Interpolation (`$VAR`, `${VAR}`, `${VAR:-d}`, `-`, `:?`, `?`, `:+`, `+`) looks up only keys
//! defined earlier in the same file (and, for tests, an explicit lookup function). Errors carry the
//! line number, the key name when one was read, and an error class: never text of the file.
//!
//! The file is read as bytes, as compose reads it (a Go string holds any bytes): a byte that is
//! not part of valid UTF-8 is never a space, a letter or a separator, so it is refused in a key
//! name and kept as it is in a value. Values are therefore bytes; [`EnvFile::values`] holds them
//! unchanged and the caller decides how to show one that is not UTF-8.

use std::collections::BTreeMap;

/// Largest value after interpolation. Interpolation can grow a file exponentially (`B=$A$A`,
/// `C=$B$B`, …); this bound, checked before each append, keeps a hostile file from using more.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest total of all parsed keys and values (a file of many `B=$A` lines copying one large
/// value would otherwise reach gigabytes while each value stays under [`MAX_VALUE_BYTES`]).
pub const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// What kind of mistake the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    InvalidKeyCharacter,
    KeyWithSpace,
    ExportWithoutKey,
    UnterminatedQuote,
    InvalidTemplate,
    RequiredVariableMissing,
    ValueTooLarge,
    TooLarge,
}

impl ParseErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorKind::InvalidKeyCharacter => "unexpected character in a variable name",
            ParseErrorKind::KeyWithSpace => "a variable name contains a space",
            ParseErrorKind::ExportWithoutKey => {
                "`export` is followed by nothing but spaces at the end of the file"
            }
            ParseErrorKind::UnterminatedQuote => "unterminated quoted value",
            ParseErrorKind::InvalidTemplate => "invalid ${…} interpolation",
            ParseErrorKind::RequiredVariableMissing => {
                "a ${VAR:?…} or ${VAR?…} variable is not set"
            }
            ParseErrorKind::ValueTooLarge => {
                "the value is larger than 1 MiB after interpolation (refused)"
            }
            ParseErrorKind::TooLarge => {
                "the parsed values together exceed 4 MiB after interpolation (refused)"
            }
        }
    }
}

/// Longest key name shown in a message (a key is file text of any length).
pub const KEY_SHOWN: usize = 64;

/// A key name as messages show it: at most [`KEY_SHOWN`] characters, `(no key)` for the empty
/// key of a last line without `=` (see [`EnvFile::values`]).
pub fn shown_key(key: &str) -> String {
    if key.is_empty() {
        return "(no key: the last line has no `=`)".into();
    }
    if key.chars().count() <= KEY_SHOWN {
        return key.to_string();
    }
    let head: String = key.chars().take(KEY_SHOWN - 1).collect();
    format!("{head}…")
}

/// A parse failure: line number (1-based), key name if one was read, error class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {}", key.as_ref().map(|k| format!(" (key {})", shown_key(k))).unwrap_or_default(), kind.as_str())]
pub struct ParseError {
    pub line: usize,
    pub key: Option<String>,
    pub kind: ParseErrorKind,
}

/// The parsed file.
#[derive(Debug, Default)]
pub struct EnvFile {
    /// Key to value bytes (UTF-8 unless the file was not). A last line without `=`, `:` or a
    /// newline is stored under the empty key, as compose does.
    pub values: BTreeMap<String, Vec<u8>>,
    /// `(line, key)` of each definition whose value referenced an unset variable (compose warns
    /// and substitutes ""). The key being defined, never the referenced name: that name is text
    /// of the value (`abc$SuperSecretTail`).
    pub unset_references: Vec<(usize, String)>,
}

impl EnvFile {
    /// The value of `key` as text, if it is defined and valid UTF-8.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Parses a `.env` file with no external lookup (what the module does).
pub fn parse(bytes: &[u8]) -> Result<EnvFile, ParseError> {
    parse_with_lookup(bytes, &|_| None)
}

/// compose-go's `isSpace`: a space that is not a line break.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || "_.-[]".contains(c)
}

/// The character at the start of `b` and its length; `None` (length 1) for a byte that does not
/// begin valid UTF-8, as Go's decoder yields `RuneError` for it.
fn decode(b: &[u8]) -> (Option<char>, usize) {
    let len = match b.first() {
        None => return (None, 0),
        Some(0x00..=0x7f) => 1,
        Some(0xc2..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf4) => 4,
        Some(_) => return (None, 1),
    };
    match b.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) => (s.chars().next(), len),
        _ => (None, 1),
    }
}

/// The character that ends `b` and its length (`None`, length 1, when `b` does not end in valid
/// UTF-8), like Go's `DecodeLastRune`.
fn decode_last(b: &[u8]) -> (Option<char>, usize) {
    for k in 1..=4.min(b.len()) {
        let start = b.len() - k;
        if b[start] & 0xc0 != 0x80 {
            return match decode(&b[start..]) {
                (Some(c), n) if n == k => (Some(c), k),
                _ => (None, 1),
            };
        }
    }
    (None, 1)
}

/// Length of the prefix of `b` whose characters satisfy `f` (invalid bytes never do).
fn prefix_len(b: &[u8], f: impl Fn(char) -> bool) -> usize {
    let mut i = 0;
    while i < b.len() {
        match decode(&b[i..]) {
            (Some(c), n) if f(c) => i += n,
            _ => break,
        }
    }
    i
}

/// `b` without the trailing characters that satisfy `f` (Go's `TrimRightFunc`).
fn trim_end(b: &[u8], f: impl Fn(char) -> bool) -> &[u8] {
    let mut end = b.len();
    while end > 0 {
        match decode_last(&b[..end]) {
            (Some(c), n) if f(c) => end -= n,
            _ => break,
        }
    }
    &b[..end]
}

fn find(b: &[u8], needle: &[u8]) -> Option<usize> {
    b.windows(needle.len()).position(|w| w == needle)
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    out: EnvFile,
    /// Bytes of keys and values now in `out.values` (bounded by [`MAX_TOTAL_BYTES`]).
    total: usize,
}

/// Parses with `lookup` consulted before earlier keys of the file, as compose does with its
/// environment. The module passes none; tests use it to check compose's corpus.
pub fn parse_with_lookup(
    bytes: &[u8],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvFile, ParseError> {
    let src = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut p = Parser {
        src,
        pos: 0,
        line: 1,
        lookup,
        out: EnvFile::default(),
        total: 0,
    };
    p.run()?;
    p.out.unset_references.dedup();
    Ok(p.out)
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.src[self.pos..]
    }

    fn advance(&mut self, n: usize) {
        let s = &self.src[self.pos..self.pos + n];
        self.line += s.iter().filter(|b| **b == b'\n').count();
        self.pos += n;
    }

    fn err(&self, line: usize, key: Option<&str>, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line,
            key: key.map(str::to_string),
            kind,
        }
    }

    /// Skips whitespace (newlines included) and comment lines. False at end of input.
    fn statement_start(&mut self) -> bool {
        loop {
            let n = prefix_len(self.rest(), char::is_whitespace);
            self.advance(n);
            if self.rest().is_empty() {
                return false;
            }
            if self.rest()[0] != b'#' {
                return true;
            }
            match self.rest().iter().position(|b| *b == b'\n') {
                Some(j) => self.advance(j),
                None => {
                    let n = self.rest().len();
                    self.advance(n);
                    return false;
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while self.statement_start() {
            let line = self.line;
            // `export` followed by Go's `\s` (tab, newline, form feed, carriage return, space),
            // then compose's spaces, which stop at a newline.
            let rest = self.rest();
            if rest.starts_with(b"export")
                && rest.get(6).is_some_and(|b| b"\t\n\x0c\r ".contains(b))
            {
                self.advance("export".len());
                let n = prefix_len(self.rest(), is_space);
                self.advance(n);
                if self.rest().is_empty() {
                    return Err(self.err(line, None, ParseErrorKind::ExportWithoutKey));
                }
            }
            // Key, up to `=`, `:` or a newline (a line with only a key inherits from the
            // environment). Spaces are skipped, anything else must be a key character.
            let rest = self.rest();
            let mut end = None;
            let mut i = 0;
            while i < rest.len() {
                let (c, n) = decode(&rest[i..]);
                match c {
                    Some(c) if is_space(c) => {}
                    Some(c @ ('=' | ':' | '\n')) => {
                        end = Some((i, c));
                        break;
                    }
                    Some(c) if is_key_char(c) => {}
                    _ => return Err(self.err(line, None, ParseErrorKind::InvalidKeyCharacter)),
                }
                i += n;
            }
            let Some((i, sep)) = end else {
                // The end of the file came before any `=`, `:` or newline (a last line such as
                // `Q R` or `KEY`): compose reads the whole line as the value of the empty key.
                let value = self.value(line, "")?;
                self.store(line, String::new(), value)?;
                continue;
            };
            // Only key characters and spaces came before `i`: valid UTF-8.
            let key =
                String::from_utf8_lossy(trim_end(&rest[..i], char::is_whitespace)).into_owned();
            if key.contains(' ') {
                return Err(self.err(line, None, ParseErrorKind::KeyWithSpace));
            }
            self.advance(i + 1);
            let n = prefix_len(self.rest(), is_space);
            self.advance(n);
            if sep == '\n' {
                if let Some(v) = (self.lookup)(&key) {
                    self.store(line, key, v.into_bytes())?;
                }
                continue;
            }
            let value = self.value(line, &key)?;
            self.store(line, key, value)?;
        }
        Ok(())
    }

    /// Inserts a value, keeping the total within [`MAX_TOTAL_BYTES`].
    fn store(&mut self, line: usize, key: String, value: Vec<u8>) -> Result<(), ParseError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(self.err(line, Some(&key), ParseErrorKind::ValueTooLarge));
        }
        let old = self.out.values.get(&key).map_or(0, |v| key.len() + v.len());
        let total = self.total - old + key.len() + value.len();
        if total > MAX_TOTAL_BYTES {
            return Err(self.err(line, Some(&key), ParseErrorKind::TooLarge));
        }
        self.total = total;
        self.out.values.insert(key, value);
        Ok(())
    }

    /// Appends `piece` to a value being built, refusing to pass [`MAX_VALUE_BYTES`].
    fn append(
        &self,
        out: &mut Vec<u8>,
        piece: &[u8],
        line: usize,
        key: &str,
    ) -> Result<(), ParseError> {
        if out.len() + piece.len() > MAX_VALUE_BYTES {
            return Err(self.err(line, Some(key), ParseErrorKind::ValueTooLarge));
        }
        out.extend_from_slice(piece);
        Ok(())
    }

    fn value(&mut self, line: usize, key: &str) -> Result<Vec<u8>, ParseError> {
        let rest = self.rest();
        let quote = match rest.first() {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => {
                // Unquoted: to the end of the line, cut at the first ` #` (a space, not a tab),
                // trailing spaces trimmed, no escapes, interpolated.
                let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                let raw = &rest[..end];
                let raw = &raw[..find(raw, b" #").unwrap_or(raw.len())];
                let raw = trim_end(raw, char::is_whitespace);
                self.advance(end);
                return self.interpolate(raw, line, key);
            }
        };
        // Quoted: find the closing quote; `\<quote>` is an escaped quote, other escapes are kept
        // as `\x` for the double-quote expansion below.
        let mut chars = Vec::new();
        let mut escape = false;
        for (i, &c) in rest.iter().enumerate().skip(1) {
            if c != quote {
                if !escape && c == b'\\' {
                    escape = true;
                    continue;
                }
                if escape {
                    escape = false;
                    chars.push(b'\\');
                }
                chars.push(c);
                continue;
            }
            if escape {
                escape = false;
                chars.push(c);
                continue;
            }
            self.advance(i + 1);
            if quote == b'"' {
                let expanded = expand_escapes(&chars);
                return self.interpolate(&expanded, line, key);
            }
            return Ok(chars);
        }
        Err(self.err(line, Some(key), ParseErrorKind::UnterminatedQuote))
    }

    fn lookup_var(&self, name: &str) -> Option<Vec<u8>> {
        (self.lookup)(name)
            .map(String::into_bytes)
            .or_else(|| self.out.values.get(name).cloned())
    }

    fn unset(&mut self, line: usize, key: &str) {
        self.out.unset_references.push((line, key.to_string()));
    }

    fn interpolate(&mut self, s: &[u8], line: usize, key: &str) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            if s[i] != b'$' {
                out.push(s[i]);
                i += 1;
                continue;
            }
            // `$$` → `$`
            if s.get(i + 1) == Some(&b'$') {
                out.push(b'$');
                i += 2;
                continue;
            }
            if s.get(i + 1) == Some(&b'{') {
                let close = matching_brace(s, i + 1)
                    .ok_or_else(|| self.err(line, Some(key), ParseErrorKind::InvalidTemplate))?;
                let inner = &s[i + 2..close];
                let piece = self.braced(inner, line, key)?;
                self.append(&mut out, &piece, line, key)?;
                i = close + 1;
                continue;
            }
            let name_len = name_len(&s[i + 1..]);
            if name_len == 0 {
                out.push(b'$');
                i += 1;
                continue;
            }
            // ASCII by construction.
            let name = String::from_utf8_lossy(&s[i + 1..i + 1 + name_len]).into_owned();
            match self.lookup_var(&name) {
                Some(v) => self.append(&mut out, &v, line, key)?,
                None => self.unset(line, key),
            }
            i += 1 + name_len;
        }
        Ok(out)
    }

    fn braced(&mut self, inner: &[u8], line: usize, key: &str) -> Result<Vec<u8>, ParseError> {
        let n = name_len(inner);
        if n == 0 {
            return Err(self.err(line, Some(key), ParseErrorKind::InvalidTemplate));
        }
        let name = String::from_utf8_lossy(&inner[..n]).into_owned();
        let op_text = &inner[n..];
        let value = self.lookup_var(&name);
        if op_text.is_empty() {
            return Ok(match value {
                Some(v) => v,
                None => {
                    self.unset(line, key);
                    Vec::new()
                }
            });
        }
        let (colon, rest) = match op_text.strip_prefix(b":") {
            Some(r) => (true, r),
            None => (false, op_text),
        };
        let op = rest.first().copied();
        let arg = rest.get(1..).unwrap_or_default();
        let present = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        match op {
            Some(b'-') => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    self.interpolate(arg, line, key)
                }
            }
            Some(b'?') => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    Err(self.err(line, Some(key), ParseErrorKind::RequiredVariableMissing))
                }
            }
            Some(b'+') => {
                if present {
                    self.interpolate(arg, line, key)
                } else {
                    Ok(Vec::new())
                }
            }
            _ => Err(self.err(line, Some(key), ParseErrorKind::InvalidTemplate)),
        }
    }
}

/// Length of a variable name `[_a-zA-Z][_a-zA-Z0-9]*` at the start of `b`.
fn name_len(b: &[u8]) -> usize {
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    b.iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// Index of the `}` matching the `{` at `open`, counting nested `{`.
fn matching_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// compose-go's `expandEscapes`: the sequences its `escapeSeqRegex` finds, scanned left to
/// right, each unquoted the way Go's `strconv.UnquoteChar` does, and left as found when that
/// fails. `\a \b \f \n \r \t \v \\ \"` are the usual characters; `\$` becomes `$$`, so
/// interpolation yields a literal `$`; `\c` stays as it is. `\0` takes up to three digits (any
/// of 0-9), and compose first rewrites the `\0` to `\`: exactly three octal digits of value at
/// most 0o377 give that code point (`\0101` is `A`, `\0377` is `ÿ`), anything else is left as
/// `\` and the digits, so the `0` is lost (`\0ss` is `\ss`, `\012` is `\12`, `\0400` is
/// `\400`, `\0` alone is `\`). Other backslashes stay.
fn expand_escapes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let simple = match s.get(i + 1) {
            Some(b'a') => Some(&b"\x07"[..]),
            Some(b'b') => Some(&b"\x08"[..]),
            Some(b'f') => Some(&b"\x0c"[..]),
            Some(b'n') => Some(&b"\n"[..]),
            Some(b'r') => Some(&b"\r"[..]),
            Some(b't') => Some(&b"\t"[..]),
            Some(b'v') => Some(&b"\x0b"[..]),
            Some(b'\\') => Some(&b"\\"[..]),
            Some(b'"') => Some(&b"\""[..]),
            Some(b'$') => Some(&b"$$"[..]),
            Some(b'c') => Some(&b"\\c"[..]),
            _ => None,
        };
        if let Some(rep) = simple {
            out.extend_from_slice(rep);
            i += 2;
            continue;
        }
        if s.get(i + 1) == Some(&b'0') {
            let digits: &[u8] = &s[i + 2..];
            let k = digits
                .iter()
                .take(3)
                .take_while(|d| d.is_ascii_digit())
                .count();
            let digits = &digits[..k];
            let octal = k == 3 && digits.iter().all(|d| (b'0'..=b'7').contains(d));
            let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            match char::from_u32(value) {
                Some(c) if octal && value <= 0o377 => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => {
                    out.push(b'\\');
                    out.extend_from_slice(digits);
                }
            }
            i += 2 + k;
            continue;
        }
        out.push(b'\\');
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_home(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/fakehome".to_string())
    }

    fn one(input: &str) -> Result<BTreeMap<String, Vec<u8>>, ParseError> {
        parse_with_lookup(input.as_bytes(), &fake_home).map(|f| f.values)
    }

    fn val(input: &str, key: &str) -> String {
        let v = one(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing in {input:?}"));
        String::from_utf8(v).unwrap_or_else(|_| panic!("{key} of {input:?} is not UTF-8"))
    }

    /// Contract §4.4: rows where compose and dotenvy agree, then compose's column of the table.
    #[test]
    fn compose_corpus() {
        let agree = [
            ("K = v", "K", "v"),
            ("export K=v", "K", "v"),
            ("K=v # c", "K", "v"),
            ("K='$X'", "K", "$X"),
            ("K=", "K", ""),
            ("K=\"\"", "K", ""),
            ("  K=v  ", "K", "v"),
            ("K=YWJj==", "K", "YWJj=="),
            ("K=v\r\nL=w\r\n", "K", "v"),
            ("K=v\r\nL=w\r\n", "L", "w"),
            ("my.dotted=1", "my.dotted", "1"),
        ];
        for (i, k, v) in agree {
            assert_eq!(val(i, k), v, "{i:?}");
        }
        let compose = [
            ("NOSPACE=value#notcomment", "NOSPACE", "value#notcomment"),
            (
                "TAB_COMMENT=value\t# comment",
                "TAB_COMMENT",
                "value\t# comment",
            ),
            ("DQ_COMMENT=\"value\" # comment", "DQ_COMMENT", "value"),
            ("HASH_START=#value", "HASH_START", "#value"),
            ("DQ_NL=\"a\\nb\"", "DQ_NL", "a\nb"),
            ("SQ_NL='a\\nb'", "SQ_NL", "a\\nb"),
            ("UNQ_NL=a\\nb", "UNQ_NL", "a\\nb"),
            ("DQ_TAB=\"a\\tb\"", "DQ_TAB", "a\tb"),
            ("SQ_QUOTE='Let\\'s go'", "SQ_QUOTE", "Let's go"),
            ("JSON=\"{\\\"a\\\": \\\"b\\\"}\"", "JSON", "{\"a\": \"b\"}"),
            ("DQ=\"pa$$word\"", "DQ", "pa$word"),
            ("SQ='pa$$word'", "SQ", "pa$$word"),
            ("UNQ=pa$word", "UNQ", "pa"),
            ("DQ=\"\\$HOME\"", "DQ", "$HOME"),
            ("UNQ=\\$HOME", "UNQ", "\\/home/fakehome"),
            ("HOME_REF=$HOME", "HOME_REF", "/home/fakehome"),
            ("PLAIN=value\nR=${PLAIN}-x", "R", "value-x"),
            ("PLAIN=value\nR=$PLAIN_SUFFIX", "R", ""),
            ("D=${MISSING:-fallback}", "D", "fallback"),
            ("M=\"line1\nline2\"", "M", "line1\nline2"),
            ("M='line1\nline2'", "M", "line1\nline2"),
            ("S=a b c", "S", "a b c"),
            ("Q=ab\"cd\"", "Q", "ab\"cd\""),
            ("J=\"value\"junk", "J", "value"),
            ("B=\"C:\\\\path\"", "B", "C:\\path"),
            ("B='C:\\path'", "B", "C:\\path"),
            ("my-dashed=1", "my-dashed", "1"),
            ("YAML: v", "YAML", "v"),
            ("1NUM=x", "1NUM", "x"),
            ("DUP=first\nDUP=second", "DUP", "second"),
            ("\u{feff}BOM=1", "BOM", "1"),
        ];
        for (i, k, v) in compose {
            assert_eq!(val(i, k), v, "{i:?}");
        }
        // `junk` after a closing quote is the next statement: an inherited key (dropped when
        // unset) when a newline follows, the empty key's value at the end of the file.
        assert_eq!(one("J=\"value\"junk\n").unwrap().len(), 1);
        assert_eq!(val("J=\"value\"junk", ""), "junk");
        assert_eq!(one("KEY_ONLY\nA=1").unwrap().len(), 1);
        // Whole-file errors.
        let e = one("A=1\nR=${MISSING:?must be set}").unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key.as_deref()),
            (2, ParseErrorKind::RequiredVariableMissing, Some("R"))
        );
        let e = one("T='C:\\dir\\'\nNEXT=1").unwrap_err();
        assert_eq!((e.line, e.kind), (1, ParseErrorKind::UnterminatedQuote));
        let e = one("A=1\n\nU=\"s3cr3t-leak-check\nB=2").unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key.as_deref()),
            (3, ParseErrorKind::UnterminatedQuote, Some("U"))
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn interpolation_growth_is_bounded() {
        // A doubling chain: 1 KiB doubled per line reaches 1 MiB at line 12 (key L11), which
        // is refused before the copy that would pass the bound is made.
        let mut src = format!("L0={}\n", "x".repeat(1024));
        for i in 1..64 {
            src.push_str(&format!("L{i}=$L{p}${{L{p}}}\n", p = i - 1));
        }
        let e = parse(src.as_bytes()).unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key.as_deref()),
            (12, ParseErrorKind::ValueTooLarge, Some("L11"))
        );
        assert!(!e.to_string().contains("xxxx"), "{e}");
        // The same with defaults and quotes: `${X:-…}` and `"…"` go through the same bound.
        let mut src = format!("L0=\"{}\"\n", "y".repeat(4096));
        for i in 1..64 {
            src.push_str(&format!("L{i}=\"${{NOPE:-$L{p}}}$L{p}\"\n", p = i - 1));
        }
        let e = parse(src.as_bytes()).unwrap_err();
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (ParseErrorKind::ValueTooLarge, Some("L9"))
        );
        // Values under the bound, but many copies of a large one: the total bound refuses it.
        let mut src = format!("BIG={}\n", "z".repeat(900 * 1024));
        for i in 0..100 {
            src.push_str(&format!("C{i}=$BIG\n"));
        }
        let e = parse(src.as_bytes()).unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key.as_deref()),
            (5, ParseErrorKind::TooLarge, Some("C3"))
        );
        // Redefining a key does not count twice; a value right at the bound is accepted.
        let mut src = format!("A={}\n", "a".repeat(MAX_VALUE_BYTES));
        for _ in 0..10 {
            src.push_str("A=$A\n");
        }
        assert_eq!(
            parse(src.as_bytes()).unwrap().values["A"].len(),
            MAX_VALUE_BYTES
        );
    }

    #[test]
    fn no_process_environment() {
        // The module's parse has no lookup: $HOME is unset even though the process has it.
        let f = parse(b"H=$HOME\nP=${PATH:-none}").unwrap();
        assert_eq!(f.text("H"), Some(""));
        assert_eq!(f.text("P"), Some("none"));
        // The key holding the reference, never the referenced name (text of the value).
        assert_eq!(f.unset_references, vec![(1, "H".to_string())]);
        let f = parse(b"A=1\nP=abc$SuperSecretTail${Other}x\n").unwrap();
        assert_eq!(f.unset_references, vec![(2, "P".to_string())]);
        assert!(!format!("{:?}", f.unset_references).contains("SuperSecret"));
    }

    #[test]
    fn more_interpolation_and_escapes() {
        assert_eq!(val("A=x\nB=${A:+set}", "B"), "set");
        assert_eq!(val("A=\nB=${A:+set}", "B"), "");
        assert_eq!(val("A=\nB=${A+set}", "B"), "set");
        assert_eq!(val("A=\nB=${A-d}", "B"), "");
        assert_eq!(val("A=\nB=${A:-d}", "B"), "d");
        assert_eq!(val("A=x\nB=${Z:-${A}y}", "B"), "xy");
        assert_eq!(val("B=\"\\0101\"", "B"), "A");
        assert_eq!(val("B=\"a\\qb\"", "B"), "a\\qb");
        assert_eq!(val("B=$1", "B"), "$1");
        assert_eq!(val("# c\n\n  # c2\nexport  B=1 # x", "B"), "1");
        let e = one("A=${").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::InvalidTemplate);
        let e = one("A=1\nB C=2").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::KeyWithSpace));
        let e = one("A=1\nB$C=2").unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key),
            (2, ParseErrorKind::InvalidKeyCharacter, None)
        );
    }

    /// compose-go's `expandEscapes`: `\0` is rewritten to `\` and handed to Go's
    /// `strconv.UnquoteChar`, which wants exactly three octal digits of value ≤ 0o377; when it
    /// fails the rewritten text stays, so the `0` is gone.
    #[test]
    fn octal_escapes_follow_compose() {
        let cases: [(&str, &str); 16] = [
            (r#"P="pa\0ss""#, r"pa\ss"),
            (r#"P="\0""#, r"\"),
            (r#"P="\05x""#, r"\5x"),
            (r#"P="\08x""#, r"\8x"),
            (r#"P="\012x""#, r"\12x"),
            (r#"P="\0101""#, "A"),
            (r#"P="\01011""#, "A1"),
            (r#"P="\0000x""#, "\0x"),
            (r#"P="\0377""#, "\u{ff}"),
            (r#"P="\0400""#, r"\400"),
            (r#"P="\0777""#, r"\777"),
            (r#"P="\0128""#, r"\128"),
            (r#"P="\0812""#, r"\812"),
            (r#"P="\\0101""#, r"\0101"),
            (r#"P="\c\q\'""#, r"\c\q\'"),
            (r#"P="\0044HOME""#, "/home/fakehome"),
        ];
        for (input, want) in cases {
            assert_eq!(val(input, "P"), want, "{input}");
        }
        // `\0000` is NUL, and a `\0` escape can be the last thing before the closing quote.
        assert_eq!(val(r#"P="a\0000""#, "P"), "a\0");
        assert_eq!(val(r#"P="a\0""#, "P"), "a\\");
        // Single quotes and unquoted values do not expand escapes.
        assert_eq!(val(r"P='pa\0ss'", "P"), r"pa\0ss");
        assert_eq!(val(r"P=pa\0ss", "P"), r"pa\0ss");
    }

    /// compose-go at the end of the file: when no `=`, `:` or newline follows a key, the key
    /// loop ends without a key and the rest is read as the value of the empty key.
    #[test]
    fn last_line_without_newline_follows_compose() {
        let f = parse(b"A=1\nQ R").unwrap();
        assert_eq!(f.text(""), Some("Q R"));
        assert_eq!(f.text("A"), Some("1"));
        // The same with a newline is a key with a space.
        let e = parse(b"A=1\nQ R\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::KeyWithSpace));
        // A lone key: inherited (dropped when unset) with a newline, a value without.
        assert!(parse(b"KEY_ONLY\n").unwrap().values.is_empty());
        assert_eq!(parse(b"KEY_ONLY").unwrap().text(""), Some("KEY_ONLY"));
        assert_eq!(parse(b"KEY  \t").unwrap().text(""), Some("KEY"));
        assert_eq!(parse(b"A=1\nexport").unwrap().text(""), Some("export"));
        // Still refused: characters that are not key characters, and `export` then spaces.
        assert_eq!(
            parse(b"A=1\nQ R!").unwrap_err().kind,
            ParseErrorKind::InvalidKeyCharacter
        );
        let e = parse(b"A=1\nexport \t").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::ExportWithoutKey));
        // `export` is a prefix only before Go's `\s` (not a vertical tab).
        assert_eq!(
            parse(b"export\x0bK=1\n").unwrap().text("export\x0bK"),
            Some("1")
        );
        assert_eq!(parse(b"export\tK=1\n").unwrap().text("K"), Some("1"));
        assert!(parse(b"export\nK=1\n").unwrap().text("K") == Some("1"));
        // Values ending the file: unquoted, quoted, with a comment.
        assert_eq!(parse(b"K=v # c").unwrap().text("K"), Some("v"));
        assert_eq!(parse(b"K=\"v\"").unwrap().text("K"), Some("v"));
        assert_eq!(parse(b"K=").unwrap().text("K"), Some(""));
    }

    /// A file that is not UTF-8 (Latin-1) is read as compose reads it: values keep their bytes,
    /// a byte that is not UTF-8 is never a space, a separator or a key character.
    #[test]
    fn non_utf8_bytes_are_kept_as_compose_keeps_them() {
        let f = parse(b"A=1\nB=caf\xe9\nC=\"\xe9t\xe9\"\nD=$B-x\nE='\xff'\n").unwrap();
        assert_eq!(f.values["B"], b"caf\xe9");
        assert_eq!(f.values["C"], b"\xe9t\xe9");
        assert_eq!(f.values["D"], b"caf\xe9-x");
        assert_eq!(f.values["E"], b"\xff");
        assert_eq!(f.text("B"), None);
        assert_eq!(f.text("A"), Some("1"));
        // Latin-1's no-break space (0xa0) is not compose's U+00A0 space: it stays in the value.
        assert_eq!(parse(b"K=v\xa0\n").unwrap().values["K"], b"v\xa0");
        // In a key it is an unexpected character, with the line and no text.
        let e = parse(b"A=1\nK\xe9Y=v\n").unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.key),
            (2, ParseErrorKind::InvalidKeyCharacter, None)
        );
        // Cut sequences are single bytes too: a valid character after them still counts.
        assert_eq!(
            parse(b"K=a\xe2\x82 # c\n").unwrap().values["K"],
            b"a\xe2\x82"
        );
    }
}
