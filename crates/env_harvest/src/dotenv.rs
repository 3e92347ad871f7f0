//! Docker Compose's `.env` dialect (compose-go `dotenv/parser.go` and `template/template.go`,
//! contract `ssh-pct-dotenv.md` §4.1), without reading the process environment.
//!
//! Interpolation (`$VAR`, `${VAR}`, `${VAR:-d}`, `-`, `:?`, `?`, `:+`, `+`) looks up only keys
//! defined earlier in the same file (and, for tests, an explicit lookup function). Errors carry the
//! line number, the key name when one was read, and an error class: never text of the file.

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
    NotUtf8,
    InvalidKeyCharacter,
    KeyWithSpace,
    UnterminatedQuote,
    InvalidTemplate,
    RequiredVariableMissing,
    ValueTooLarge,
    TooLarge,
}

impl ParseErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseErrorKind::NotUtf8 => "the file is not valid UTF-8",
            ParseErrorKind::InvalidKeyCharacter => "unexpected character in a variable name",
            ParseErrorKind::KeyWithSpace => "a variable name contains a space",
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

/// A parse failure: line number (1-based), key name if one was read, error class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {}", key.as_ref().map(|k| format!(" (key {k})")).unwrap_or_default(), kind.as_str())]
pub struct ParseError {
    pub line: usize,
    pub key: Option<String>,
    pub kind: ParseErrorKind,
}

/// The parsed file: keys in file order of their last definition is not needed; a sorted map.
#[derive(Debug, Default)]
pub struct EnvFile {
    pub values: BTreeMap<String, String>,
    /// Names of variables that were referenced but unset (compose warns and uses "").
    pub unset_references: Vec<(usize, String)>,
}

/// Parses a `.env` file with no external lookup (what the module does).
pub fn parse(bytes: &[u8]) -> Result<EnvFile, ParseError> {
    parse_with_lookup(bytes, &|_| None)
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

struct Parser<'a> {
    src: &'a str,
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
    let src = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(ParseError {
                line,
                key: None,
                kind: ParseErrorKind::NotUtf8,
            });
        }
    };
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut p = Parser {
        src,
        pos: 0,
        line: 1,
        lookup,
        out: EnvFile::default(),
        total: 0,
    };
    p.run()?;
    Ok(p.out)
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn advance(&mut self, n: usize) {
        let s = &self.src[self.pos..self.pos + n];
        self.line += s.bytes().filter(|b| *b == b'\n').count();
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
            let rest = self.rest();
            match rest.find(|c: char| !c.is_whitespace()) {
                None => {
                    self.advance(rest.len());
                    return false;
                }
                Some(i) => {
                    self.advance(i);
                    if self.rest().starts_with('#') {
                        match self.rest().find('\n') {
                            Some(j) => self.advance(j),
                            None => {
                                let n = self.rest().len();
                                self.advance(n);
                                return false;
                            }
                        }
                    } else {
                        return true;
                    }
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while self.statement_start() {
            let line = self.line;
            // An `export` prefix followed by whitespace.
            if let Some(after) = self.rest().strip_prefix("export") {
                if after.starts_with(is_space) {
                    self.advance("export".len());
                    let n = self.rest().len() - self.rest().trim_start_matches(is_space).len();
                    self.advance(n);
                }
            }
            // Key, up to `=`, `:` or a newline (a line with only a key inherits from the environment).
            let rest = self.rest();
            let mut end = None;
            for (i, c) in rest.char_indices() {
                if is_space(c) {
                    continue;
                }
                match c {
                    '=' | ':' | '\n' => {
                        end = Some((i, c));
                        break;
                    }
                    '_' | '.' | '-' | '[' | ']' => {}
                    c if c.is_alphanumeric() => {}
                    _ => return Err(self.err(line, None, ParseErrorKind::InvalidKeyCharacter)),
                }
            }
            let (key_raw, sep) = match end {
                Some((i, c)) => (&rest[..i], Some((i, c))),
                None => (rest, None),
            };
            let key = key_raw.trim_end_matches(char::is_whitespace).to_string();
            if key.contains(' ') {
                return Err(self.err(line, None, ParseErrorKind::KeyWithSpace));
            }
            let inherited = !matches!(sep, Some((_, '=')) | Some((_, ':')));
            match sep {
                Some((i, _)) => self.advance(i + 1),
                None => self.advance(rest.len()),
            }
            if inherited {
                if let Some(v) = (self.lookup)(&key) {
                    self.store(line, key, v)?;
                }
                continue;
            }
            let n = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.advance(n);
            let value = self.value(line, &key)?;
            self.store(line, key, value)?;
        }
        Ok(())
    }

    /// Inserts a value, keeping the total within [`MAX_TOTAL_BYTES`].
    fn store(&mut self, line: usize, key: String, value: String) -> Result<(), ParseError> {
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
        out: &mut String,
        piece: &str,
        line: usize,
        key: &str,
    ) -> Result<(), ParseError> {
        if out.len() + piece.len() > MAX_VALUE_BYTES {
            return Err(self.err(line, Some(key), ParseErrorKind::ValueTooLarge));
        }
        out.push_str(piece);
        Ok(())
    }

    fn value(&mut self, line: usize, key: &str) -> Result<String, ParseError> {
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let end = rest.find('\n').unwrap_or(rest.len());
                let raw = &rest[..end];
                let raw = raw.split(" #").next().unwrap_or_default();
                let raw = raw.trim_end_matches(char::is_whitespace);
                self.advance(end);
                return self.interpolate(raw, line, key);
            }
        };
        // Quoted: find the closing quote; `\<quote>` is an escaped quote, other escapes are kept
        // as `\x` for the double-quote expansion below.
        let mut chars = String::new();
        let mut escape = false;
        for (i, c) in rest.char_indices().skip(1) {
            if c != quote {
                if !escape && c == '\\' {
                    escape = true;
                    continue;
                }
                if escape {
                    escape = false;
                    chars.push('\\');
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
            if quote == '"' {
                let expanded = expand_escapes(&chars);
                return self.interpolate(&expanded, line, key);
            }
            return Ok(chars);
        }
        Err(self.err(line, Some(key), ParseErrorKind::UnterminatedQuote))
    }

    fn lookup_var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).or_else(|| self.out.values.get(name).cloned())
    }

    fn interpolate(&mut self, s: &str, line: usize, key: &str) -> Result<String, ParseError> {
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        let b = s.as_bytes();
        while i < b.len() {
            if b[i] != b'$' {
                let c = s[i..].chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8();
                continue;
            }
            // `$$` → `$`
            if b.get(i + 1) == Some(&b'$') {
                out.push('$');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'{') {
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
                out.push('$');
                i += 1;
                continue;
            }
            let name = &s[i + 1..i + 1 + name_len];
            match self.lookup_var(name) {
                Some(v) => self.append(&mut out, &v, line, key)?,
                None => self.out.unset_references.push((line, name.to_string())),
            }
            i += 1 + name_len;
        }
        Ok(out)
    }

    fn braced(&mut self, inner: &str, line: usize, key: &str) -> Result<String, ParseError> {
        let n = name_len(inner);
        if n == 0 {
            return Err(self.err(line, Some(key), ParseErrorKind::InvalidTemplate));
        }
        let name = &inner[..n];
        let op_text = &inner[n..];
        let value = self.lookup_var(name);
        if op_text.is_empty() {
            return Ok(match value {
                Some(v) => v,
                None => {
                    self.out.unset_references.push((line, name.to_string()));
                    String::new()
                }
            });
        }
        let (colon, rest) = match op_text.strip_prefix(':') {
            Some(r) => (true, r),
            None => (false, op_text),
        };
        let mut it = rest.chars();
        let op = it.next();
        let arg = it.as_str();
        let present = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        match op {
            Some('-') => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    self.interpolate(arg, line, key)
                }
            }
            Some('?') => {
                if present {
                    Ok(value.unwrap_or_default())
                } else {
                    Err(self.err(line, Some(key), ParseErrorKind::RequiredVariableMissing))
                }
            }
            Some('+') => {
                if present {
                    self.interpolate(arg, line, key)
                } else {
                    Ok(String::new())
                }
            }
            _ => Err(self.err(line, Some(key), ParseErrorKind::InvalidTemplate)),
        }
    }
}

/// Length of a variable name `[_a-zA-Z][_a-zA-Z0-9]*` at the start of `s`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    b.iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

/// Index of the `}` matching the `{` at `open`, counting nested `${`.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// compose-go's `expandEscapes`: `\a \b \f \n \r \t \v \\ \"` and `\0NNN` (octal); `\$` becomes
/// `$$` so interpolation yields a literal `$`. Other backslashes stay.
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&(_, n)) = it.peek() else {
            out.push('\\');
            continue;
        };
        let rep = match n {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(r) = rep {
            out.push(r);
            it.next();
            continue;
        }
        if n == '$' {
            out.push_str("$$");
            it.next();
            continue;
        }
        if n == '0' {
            // `\0` plus up to three digits; valid only as exactly three octal digits.
            let digits: String = s[i + 2..]
                .chars()
                .take_while(char::is_ascii_digit)
                .take(3)
                .collect();
            if digits.len() == 3 && digits.chars().all(|d| d < '8') {
                if let Ok(v) = u8::from_str_radix(&digits, 8) {
                    out.push(char::from(v));
                    it.next();
                    for _ in 0..3 {
                        it.next();
                    }
                    continue;
                }
            }
            // Left as written (compose keeps an escape it cannot unquote).
            out.push('\\');
            continue;
        }
        out.push('\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_home(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/fakehome".to_string())
    }

    fn one(input: &str) -> Result<BTreeMap<String, String>, ParseError> {
        parse_with_lookup(input.as_bytes(), &fake_home).map(|f| f.values)
    }

    fn val(input: &str, key: &str) -> String {
        one(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} missing in {input:?}"))
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
        // `junk` after a closing quote is an inherited key: dropped when unset.
        assert_eq!(one("J=\"value\"junk").unwrap().len(), 1);
        assert_eq!(one("KEY_ONLY\nA=1").unwrap().len(), 1);
        assert!(one("KEY_ONLY").unwrap().is_empty());
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
        assert_eq!(f.values["H"], "");
        assert_eq!(f.values["P"], "none");
        assert_eq!(f.unset_references, vec![(1, "HOME".to_string())]);
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
        let e = parse(b"A=1\nB=\xff\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::NotUtf8));
    }
}
