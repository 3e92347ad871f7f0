//! Reading one PocketID log line (contract pocketid-logs-and-access §1): the tint text format
//! (`Aug 20 10:11:12 INF <message> app=pocket-id version=… k=v k="v"`), the slog JSON format
//! (`LOG_JSON=true`, an `error` attribute may be a nested object), Go's default logger
//! (`2026/08/20 10:11:12 ERROR …`, before PocketID's own logger exists), ANSI colour codes and the
//! `\r\n` endings of a container run with a TTY, and Docker's `--timestamps` prefix.

use crate::time::{parse_rfc3339, Nanos};
use serde_json::Value;

/// slog's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// tint's `DBG INF WRN ERR`, slog's `DEBUG INFO WARN ERROR`, each possibly with `+n`/`-n`.
    fn parse(word: &str) -> Option<Level> {
        let base = word.split(['+', '-']).next().unwrap_or("");
        match base.to_ascii_uppercase().as_str() {
            "DBG" | "DEBUG" => Some(Level::Debug),
            "INF" | "INFO" => Some(Level::Info),
            "WRN" | "WARN" | "WARNING" => Some(Level::Warn),
            "ERR" | "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

/// How a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// Go's default logger, or anything else (start-up errors, panics).
    Other,
}

/// One parsed line. Values are kept as text; nothing here is ever returned as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub format: Format,
    pub level: Option<Level>,
    pub msg: String,
    pub attrs: Vec<(String, String)>,
    /// A nested JSON `error` object's `error_description` (fosite's, with the hint).
    pub error_description: Option<String>,
    /// The app's own time (JSON `time` only: tint's `time.Stamp` has no year).
    pub app_time: Option<Nanos>,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An HTTP request line: `HTTP request completed` (2.13+), or `Request` / `Request with
    /// errors: …` (≤2.12).
    pub fn is_request(&self) -> bool {
        self.msg == "HTTP request completed"
            || ((self.msg == "Request" || self.msg.starts_with("Request with errors"))
                && self.get("status").is_some())
    }

    pub fn status(&self) -> Option<u16> {
        self.get("status").and_then(|s| s.parse().ok())
    }

    pub fn path(&self) -> &str {
        self.get("path").unwrap_or("")
    }
}

/// Docker's `--timestamps` prefix (RFC3339Nano and a space) split off the line.
pub fn split_docker_timestamp(line: &str) -> (Option<Nanos>, &str) {
    if let Some((first, rest)) = line.split_once(' ') {
        if first.len() >= 20 && first.as_bytes()[4] == b'-' {
            if let Some(t) = parse_rfc3339(first) {
                return (Some(t), rest);
            }
        }
    }
    (None, line)
}

/// Text without ANSI escape sequences, control characters (C0, DEL, C1 such as U+009B) and
/// bidirectional overrides; newlines and tabs become spaces (`ansible_module::text`). The one
/// sanitiser of this crate: it runs on every raw line and again on every value after each
/// decoding step (JSON, Go quoting, percent-encoding), so nothing decoded can reach a terminal.
pub use ansible_module::text::sanitize_bidi as sanitize;

/// A decoded value as it is kept: the text before its first newline (a token error's stack
/// frames follow it, contract §1.4, §6.5), sanitised.
pub fn value(decoded: &str) -> String {
    sanitize(decoded.split('\n').next().unwrap_or(""))
}

/// The line without ANSI escape sequences, its `\r\n` ending and other control characters.
pub fn clean(line: &str) -> String {
    sanitize(line)
}

/// Parses one line (already split from its Docker or Loki timestamp).
pub fn parse_line(raw: &str) -> Record {
    let line = clean(raw);
    if line.starts_with('{') {
        if let Some(r) = parse_json(&line) {
            return r;
        }
    }
    if let Some(r) = parse_text(&line) {
        return r;
    }
    Record {
        format: Format::Other,
        level: None,
        msg: line,
        attrs: Vec::new(),
        error_description: None,
        app_time: None,
    }
}

fn parse_json(line: &str) -> Option<Record> {
    let Value::Object(obj) = serde_json::from_str::<Value>(line).ok()? else {
        return None;
    };
    let msg = value(obj.get("msg").and_then(Value::as_str)?);
    let level = obj
        .get("level")
        .and_then(Value::as_str)
        .and_then(Level::parse);
    let app_time = obj
        .get("time")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let mut attrs = Vec::new();
    let mut error_description = None;
    for (k, v) in &obj {
        if matches!(k.as_str(), "msg" | "level" | "time") {
            continue;
        }
        // 2.13+ writes a token error as its `Error()` string; an object (fosite's
        // `RFC6749Error` marshalled, older servers or proxies) is still accepted.
        let text = match v {
            Value::String(s) => value(s),
            Value::Object(inner) if k == "error" => {
                error_description = inner
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(value);
                match inner.get("error") {
                    Some(Value::String(s)) => value(s),
                    _ => value(&v.to_string()),
                }
            }
            Value::Null => String::new(),
            other => value(&other.to_string()),
        };
        attrs.push((sanitize(k), text));
    }
    Some(Record {
        format: Format::Json,
        level,
        msg,
        attrs,
        error_description,
        app_time,
    })
}

/// tint (`Jan _2 15:04:05 LVL …`) or Go's default logger (`2006/01/02 15:04:05 LEVEL …`).
fn parse_text(line: &str) -> Option<Record> {
    let (format, rest) = if is_stamp(line) {
        (Format::Text, &line[15..])
    } else if is_go_default(line) {
        (Format::Other, &line[19..])
    } else {
        return None;
    };
    let rest = rest.trim_start();
    let (lvl, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let level = Level::parse(lvl)?;
    let (msg, attrs_text) = split_message(rest);
    Some(Record {
        format,
        level: Some(level),
        msg: value(msg),
        attrs: parse_attrs(attrs_text),
        error_description: None,
        app_time: None,
    })
}

/// `Jan _2 15:04:05` (Go's `time.Stamp`).
fn is_stamp(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 16
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && [7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// `2006/01/02 15:04:05` (every position checked, so byte 19 is a character boundary).
fn is_go_default(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 20
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// The message ends where the attributes begin: PocketID's first attribute is always `app=`
/// (added with `slog.With`); without it, at the first ` key=`.
fn split_message(rest: &str) -> (&str, &str) {
    if let Some(i) = rest.find(" app=") {
        return (&rest[..i], &rest[i + 1..]);
    }
    if rest.starts_with("app=") {
        return ("", rest);
    }
    let bytes = rest.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            start = i + 1;
        } else if b == b'=' && i > start && is_key(&rest[start..i]) {
            return (rest[..start].trim_end(), &rest[start..]);
        }
    }
    (rest, "")
}

fn is_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// `k=v k="quoted v" …` as tint writes them (values quoted Go-style when needed).
pub fn parse_attrs(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else {
            break;
        };
        let key = s[..eq].trim().to_string();
        let after = &s[eq + 1..];
        let (decoded, rest) = if after.starts_with('"') {
            unquote_go(after)
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        if !key.is_empty() && !key.contains(' ') {
            out.push((key, value(&decoded)));
        }
        s = rest;
    }
    out
}

/// A Go-quoted string at the start of `s` (`strconv.Quote`): its value and what follows it.
fn unquote_go(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String =
                            (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                        if let Some(ch) =
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            out.push(ch);
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    (out, "")
}

/// Percent-decoding of a URL component (`+` is kept: see [`query_value`]). Works on bytes, so a
/// `%` before a multi-byte character is kept as it is; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |x: u8| (x as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded, sanitised value of `name` in a raw query string (form encoding: `+` is a
/// space).
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| value(&percent_decode(&v.replace('+', " "))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tint_request_line() {
        let r = parse_line(
            r#"Aug 20 10:11:12 INF HTTP request completed app=pocket-id version=2.14.0 request_id=6f1d status=200 method=GET path=/api/users/me query="" route=/api/users/me ip=192.168.1.20 latency=1.84ms referer=https://id.example.org/settings user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0" body_size=412"#,
        );
        assert_eq!(r.format, Format::Text);
        assert_eq!(r.level, Some(Level::Info));
        assert_eq!(r.msg, "HTTP request completed");
        assert!(r.is_request());
        assert_eq!(r.get("version"), Some("2.14.0"));
        assert_eq!(r.get("query"), Some(""));
        assert_eq!(r.status(), Some(200));
        assert_eq!(
            r.get("user_agent"),
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")
        );
        assert_eq!(r.get("body_size"), Some("412"));
    }

    #[test]
    fn json_with_nested_error() {
        let r = parse_line(
            r#"{"time":"2026-08-20T10:12:01.123456789Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"2.14.0","error":{"error":"invalid_client","error_description":"Client authentication failed."}}"#,
        );
        assert_eq!(r.format, Format::Json);
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.get("error"), Some("invalid_client"));
        assert_eq!(
            r.error_description.as_deref(),
            Some("Client authentication failed.")
        );
        assert!(r.app_time.is_some());
    }

    #[test]
    fn ansi_crlf_docker_prefix_and_go_default() {
        let raw = "2026-08-20T10:11:12.345678901Z \x1b[2mAug 20 10:11:12\x1b[0m \x1b[91mERR\x1b[0m Failed to create access request \x1b[2mapp=\x1b[0mpocket-id \x1b[2mversion=\x1b[0m2.14.0 \x1b[91merror=\x1b[0minvalid_client\r";
        let (ts, rest) = split_docker_timestamp(raw);
        assert!(ts.is_some());
        let r = parse_line(rest);
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.msg, "Failed to create access request");
        assert_eq!(r.get("error"), Some("invalid_client"));
        let g = parse_line("2026/08/20 10:11:12 ERROR Configuration error error=bad");
        assert_eq!((g.format, g.level), (Format::Other, Some(Level::Error)));
        assert_eq!(g.msg, "Configuration error");
        let o = parse_line("config error: ENCRYPTION_KEY must be at least 16 bytes long");
        assert_eq!((o.format, o.level), (Format::Other, None));
        assert_eq!(parse_line("Aug  2 01:02:03 WRN x app=pocket-id").msg, "x");
    }

    #[test]
    fn legacy_request_with_errors() {
        let r = parse_line(
            r#"Aug 20 10:11:12 WRN Request with errors: Error #01: invalid callback URL, it might be necessary for an admin to fix this app=pocket-id version=2.12.0 status=400 method=GET path=/api/oidc/end-session query="" ip=1.2.3.4"#,
        );
        assert!(r.is_request());
        assert!(r.msg.contains("invalid callback URL"), "{}", r.msg);
        assert_eq!(r.status(), Some(400));
    }

    #[test]
    fn quoted_values_and_queries() {
        let a = parse_attrs(r#"a="x \"y\" \u00e9" b=2"#);
        assert_eq!(a[0].1, "x \"y\" é");
        assert_eq!(a[1], ("b".into(), "2".into()));
        assert_eq!(
            query_value(
                "error=The+requested+OAuth+2.0+Client+does+not+exist.",
                "error"
            )
            .unwrap(),
            "The requested OAuth 2.0 Client does not exist."
        );
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
    }

    #[test]
    fn multibyte_text_where_ascii_was_expected_is_no_panic() {
        assert_eq!(percent_decode("%€x%2"), "%€x%2");
        assert_eq!(percent_decode("%25%E2%82%AC%3Dx"), "%€=x");
        assert_eq!(
            parse_line("2026/08/20 10:11:1é ERROR x").format,
            Format::Other
        );
        assert_eq!(parse_line("2026/08/20 10:11:12€ERROR x").level, None);
        let q = query_value("error=%25%E2%82%AC%3Dx", "error").unwrap();
        assert_eq!(q, "%€=x");
    }

    #[test]
    fn control_characters_decoded_from_escapes_are_removed() {
        let t = parse_line(
            r#"Aug 20 10:11:12 INF HTTP request completed app=pocket-id status=404 path="/x\x1b[31m\u009b2J\a" query="a=%1B%5B2J%07""#,
        );
        assert_eq!(t.path(), "/x2J");
        let a = query_value(t.get("query").unwrap(), "a").unwrap();
        assert!(!a.chars().any(char::is_control));
        let j = parse_line(
            r#"{"msg":"HTTP request completed\u001b]0;x\u0007","status":"404","path":"/y\u009b\u001b[2J\u202e","level":"INFO"}"#,
        );
        assert_eq!(j.path(), "/y");
        assert!(!j.msg.chars().any(char::is_control), "{:?}", j.msg);
    }
}
