//! A Loki client for log lines (contract loki-api): `GET /loki/api/v1/query_range` with explicit
//! `start`/`end` in nanoseconds, direction forward, paged past `limit` as logcli does (the next
//! page starts at the last timestamp, entries already seen at that timestamp are dropped by
//! (labels, ts, line), and paging stops when a page adds nothing), streams merged and sorted.
//! Errors are plain text, shown masked and cut short. The selector is parsed and written anew,
//! so no option value reaches LogQL unescaped.

use crate::summary::{RawLine, Summarizer};
use crate::time::Nanos;
use ansible_module::Secret;
use base64::Engine;
use httpx::{Body, HttpConfig, HttpError, Retry};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// Loki's default `max_entries_limit_per_query`: a larger `limit` is refused, not clamped.
pub const MAX_BATCH: usize = 5000;

/// How to reach Loki (the `loki_*` options and the shared TLS/timeout/retries options).
#[derive(Debug, Clone)]
pub struct LokiConfig {
    pub url: String,
    pub selector: String,
    pub tenant: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    pub validate_certs: bool,
    pub ca_cert: Option<PathBuf>,
    pub timeout: u64,
    pub retries: u32,
    pub batch_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    #[error("loki_selector {selector:?} is not a LogQL stream selector: {reason}. Write it as {{label=\"value\", …}} with the operators = != =~ !~ and double-quoted values, e.g. {{job=\"auth\", container=\"pocketid\"}}")]
    Selector { selector: String, reason: String },
    #[error("give either loki_token (bearer) or loki_username/loki_password (basic), not both")]
    BothAuth,
    #[error("loki_username and loki_password go together (basic authentication): give both")]
    HalfBasic,
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("Loki at {url} is not ready (GET /ready answered HTTP {status}: {body})")]
    NotReady {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Loki answered GET {path} with HTTP {status}: {body}{hint}")]
    Status {
        path: &'static str,
        status: u16,
        body: String,
        hint: &'static str,
    },
    #[error("Loki answered GET /loki/api/v1/query_range with a body that is not the expected JSON ({0}); check that loki_url points at Loki (or its gateway)")]
    Decode(String),
}

impl LokiError {
    /// Loki cannot answer now (unreachable, 5xx, not ready): `source: auto` falls back to
    /// `docker logs`. A refusal (4xx) or a TLS problem is a configuration error instead.
    pub fn is_unavailable(&self) -> bool {
        match self {
            LokiError::NotReady { .. } => true,
            LokiError::Status { status, .. } => *status >= 500,
            LokiError::Http(e) => matches!(
                e,
                HttpError::Connect { .. }
                    | HttpError::Timeout { .. }
                    | HttpError::ConnectionLost { .. }
            ),
            _ => false,
        }
    }
}

/// One label matcher of a stream selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub op: &'static str,
    pub value: String,
}

/// Parses `{name op "value", …}`; values double-quoted (Go escapes) or in backticks.
pub fn parse_selector(raw: &str) -> Result<Vec<Matcher>, String> {
    let s = raw.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or("it must be one {…} and nothing else (no line filters or pipelines)")?;
    let mut rest = inner.trim_start();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("a label name must match [a-zA-Z_][a-zA-Z0-9_]*".into());
        }
        rest = rest[name_len..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("label {name} needs one of = != =~ !~"))?;
        rest = rest[op.len()..].trim_start();
        let (value, after) = string_literal(rest).ok_or_else(|| {
            format!("the value of {name} must be a double-quoted (\"…\") or backtick string")
        })?;
        out.push(Matcher {
            name: name.to_string(),
            op,
            value,
        });
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err("matchers are separated by commas".into());
        }
    }
    // Loki refuses a selector that could match every stream (contract §4).
    let anchored = out.iter().any(|m| match m.op {
        "=" => !m.value.is_empty(),
        "=~" => !matches!(m.value.as_str(), "" | ".*" | ".?" | "(.*)"),
        _ => false,
    });
    if !anchored {
        return Err("at least one matcher must be = with a non-empty value (or =~ with a pattern that cannot match the empty string)".into());
    }
    Ok(out)
}

/// A string literal at the start of `s` and what follows it.
fn string_literal(s: &str) -> Option<(String, &str)> {
    if let Some(r) = s.strip_prefix('`') {
        let end = r.find('`')?;
        return Some((r[..end].to_string(), &r[end + 1..]));
    }
    let r = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = r.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &r[i + 1..])),
            '\\' => match chars.next()?.1 {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                // Anything else would be a LogQL parse error (or a meaning we do not model).
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// The selector written back with every value escaped Go-style (`\` and `"`, control
/// characters), never as the user typed it.
pub fn render_selector(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms
        .iter()
        .map(|m| format!("{}{}\"{}\"", m.name, m.op, escape(&m.value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// A client of one Loki.
pub struct Loki {
    http: httpx::Client,
    url: String,
    query: String,
    batch: usize,
    headers: Vec<(&'static str, String)>,
}

/// What a paged query did (the lines went to the [`Summarizer`]).
#[derive(Debug, Default)]
pub struct QueryResult {
    pub pages: usize,
    pub warnings: Vec<String>,
}

impl Loki {
    pub fn new(c: &LokiConfig) -> Result<Loki, LokiError> {
        let matchers = parse_selector(&c.selector).map_err(|reason| LokiError::Selector {
            selector: c.selector.clone(),
            reason,
        })?;
        let mut cfg = HttpConfig::new("Loki", c.url.trim_end_matches('/'));
        cfg.validate_certs = c.validate_certs;
        cfg.ca_cert = c.ca_cert.clone();
        cfg.timeout = Duration::from_secs(c.timeout.max(1));
        cfg.retries = c.retries;
        let mut headers = Vec::new();
        if let Some(t) = c.tenant.as_deref().filter(|t| !t.is_empty()) {
            headers.push(("X-Scope-OrgID", t.to_string()));
        }
        match (&c.token, &c.username, &c.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => return Err(LokiError::BothAuth),
            (Some(t), None, None) => {
                headers.push(("Authorization", format!("Bearer {}", t.expose())))
            }
            (None, Some(u), Some(p)) => {
                let b64 =
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()));
                // The encoded pair is as secret as the password.
                ansible_module::register_secret(&b64);
                headers.push(("Authorization", format!("Basic {b64}")));
            }
            (None, Some(_), None) | (None, None, Some(_)) => return Err(LokiError::HalfBasic),
            (None, None, None) => {}
        }
        Ok(Loki {
            http: httpx::Client::new(cfg)?,
            url: httpx::redact_url(c.url.trim_end_matches('/')),
            query: render_selector(&matchers),
            batch: c.batch_size.clamp(1, MAX_BATCH),
            headers,
        })
    }

    /// The LogQL query sent.
    pub fn query(&self) -> &str {
        &self.query
    }

    fn get(&self, path_and_query: &str) -> Result<httpx::Response, HttpError> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.http
            .send("GET", path_and_query, &headers, Body::None, Retry::Safe)
    }

    /// `GET /ready`, sent once: 200 is ready; a 404 (a gateway that does not route it) is taken
    /// as ready too, and the query decides.
    pub fn ready(&self) -> Result<(), LokiError> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = self
            .http
            .send("GET", "/ready", &headers, Body::None, Retry::Never)?;
        if r.is_success() || r.status == 404 {
            return Ok(());
        }
        if r.status >= 500 {
            return Err(LokiError::NotReady {
                url: self.url.clone(),
                status: r.status,
                body: remote_body(&r),
            });
        }
        Err(status_error("/ready", &r))
    }

    /// Every line in `[start, end)`, oldest first, into `sink`, until it is full. Pages move
    /// forward in time and each is sorted, so lines arrive in time order.
    pub fn query_range(
        &self,
        start: Nanos,
        end: Nanos,
        sink: &mut Summarizer,
    ) -> Result<QueryResult, LokiError> {
        let mut out = QueryResult::default();
        let mut from = start;
        // Entries already taken at the timestamp the next page starts at.
        let mut boundary: HashSet<(String, String)> = HashSet::new();
        let mut boundary_ts: Option<Nanos> = None;
        loop {
            let page = self.page(from, end)?;
            out.pages += 1;
            let n = page.len();
            let mut added = 0;
            for (labels, ts, line) in page.iter() {
                if Some(*ts) == boundary_ts && boundary.contains(&(labels.clone(), line.clone())) {
                    continue;
                }
                added += 1;
                if !sink.push(RawLine {
                    ts: *ts,
                    stream: stream_id(labels),
                    line: line.clone(),
                }) {
                    return Ok(out);
                }
            }
            if n < self.batch {
                break;
            }
            if added == 0 {
                out.warnings.push(format!(
                    "Loki holds {} or more lines at one nanosecond ({}), so paging cannot move on: lines after it were not read. Raise batch_size (at most {MAX_BATCH})",
                    self.batch,
                    crate::time::format_rfc3339(from)
                ));
                break;
            }
            let last = page.last().map(|e| e.1).unwrap_or(from);
            if boundary_ts != Some(last) {
                boundary.clear();
            }
            boundary.extend(
                page.iter()
                    .filter(|e| e.1 == last)
                    .map(|(l, _, line)| (l.clone(), line.clone())),
            );
            boundary_ts = Some(last);
            from = last;
        }
        Ok(out)
    }

    /// One page: entries of all streams merged, sorted by time (then labels and line, so the
    /// order is the same on every page).
    fn page(&self, start: Nanos, end: Nanos) -> Result<Vec<(String, Nanos, String)>, LokiError> {
        let q = format!(
            "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit={}&direction=forward",
            httpx::encode(&self.query),
            self.batch
        );
        let r = self.get(&q)?;
        if !r.is_success() {
            return Err(status_error("/loki/api/v1/query_range", &r));
        }
        let v: Value = r.json().map_err(|e| LokiError::Decode(e.to_string()))?;
        let mut out = parse_streams(&v).map_err(LokiError::Decode)?;
        out.sort_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| a.0.cmp(&b.0))
                .then_with(|| a.2.cmp(&b.2))
        });
        Ok(out)
    }
}

/// A stream's labels as a number, to tell streams apart.
fn stream_id(labels: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

/// `data.result[]` of a streams answer as (labels, ts, line); 3-element values are accepted.
pub fn parse_streams(v: &Value) -> Result<Vec<(String, Nanos, String)>, String> {
    if v.get("status").and_then(Value::as_str) != Some("success") {
        return Err("`status` is not \"success\"".into());
    }
    let Some(result) = v.pointer("/data/result") else {
        return Ok(Vec::new());
    };
    let result = result.as_array().ok_or("`data.result` is not a list")?;
    let mut out = Vec::new();
    for stream in result {
        let mut labels: Vec<(String, String)> = stream
            .get("stream")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",");
        let values = stream
            .get("values")
            .and_then(Value::as_array)
            .ok_or("a stream has no `values` list (is this a metric query?)")?;
        for item in values {
            let ts = item
                .get(0)
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<Nanos>().ok())
                .ok_or("an entry's timestamp is not a string of nanoseconds")?;
            let line = item
                .get(1)
                .and_then(Value::as_str)
                .ok_or("an entry has no line")?;
            out.push((key.clone(), ts, line.to_string()));
        }
    }
    Ok(out)
}

/// Loki's or a proxy's body, masked, then redacted like every remote text (it may quote a query,
/// or anything else a proxy echoes).
fn remote_body(r: &httpx::Response) -> String {
    crate::redact::text(&r.safe_text(), 600)
}

fn status_error(path: &'static str, r: &httpx::Response) -> LokiError {
    let body = remote_body(r);
    let hint = match r.status {
        400 => " (Loki refused the query or a parameter: check loki_selector, since/until and batch_size)",
        401 if body.contains("no org id") => {
            " (this Loki is multi-tenant: set loki_tenant, sent as X-Scope-OrgID; env LOKI_ORG_ID)"
        }
        401 | 403 => " (check loki_token, or loki_username and loki_password: the proxy in front of Loki refused them)",
        404 => " (check loki_url: the base URL of Loki or its gateway, without /loki/api/v1)",
        429 => " (Loki is still limiting after the retries: try again later or narrow the window)",
        504 => " (the query timed out: narrow the window with since/until)",
        _ => "",
    };
    LokiError::Status {
        path,
        status: r.status,
        body: if body.is_empty() {
            "(empty body)".into()
        } else {
            body
        },
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_parsed_and_written_escaped() {
        let m = parse_selector(r#"{job="auth", container="pocketid"}"#).unwrap();
        assert_eq!(render_selector(&m), r#"{job="auth", container="pocketid"}"#);
        let m = parse_selector(r#"{container=~`pocket-?id.*`,job!="x\"y"}"#).unwrap();
        assert_eq!(m[0].op, "=~");
        assert_eq!(
            render_selector(&m),
            r#"{container=~"pocket-?id.*", job!="x\"y"}"#
        );
        let m = parse_selector(r#"{container="a\\b"}"#).unwrap();
        assert_eq!(m[0].value, "a\\b");
        assert_eq!(render_selector(&m), r#"{container="a\\b"}"#);
        for bad in [
            r#"{job="auth"} |= "x""#,
            r#"job="auth""#,
            r#"{job=auth}"#,
            r#"{job=~".*"}"#,
            r#"{job!="a"}"#,
            r#"{}"#,
            r#"{job="a" container="b"}"#,
            r#"{job="\d"}"#,
            r#"{1job="a"}"#,
            r#"{job="a"}}, {x="#,
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn streams_with_three_element_values() {
        let v = serde_json::json!({"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"job":"auth","container":"pocketid"},"values":[["2","b"],["1","a",{"structuredMetadata":{}}]]}
        ]}});
        let e = parse_streams(&v).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[1],
            (r#"container="pocketid",job="auth""#.into(), 1, "a".into())
        );
        assert!(parse_streams(&serde_json::json!({"status":"error"})).is_err());
    }
}
