//! PocketID's own log output (contract pocketid-logs-and-access §1): what a handler logs while
//! it answers, then the 2.13+ request line, in tint's text format or slog's JSON (`LOG_JSON`),
//! filtered by `LOG_LEVEL`. Every line goes, with its receive time, to the container's
//! `docker logs` (always) and to a Loki when one is attached (labels `job=auth`,
//! `container=pocketid`, the runbook's selector). The lab route `GET /api/__lab/docker-logs`
//! answers the `pct` stand-in's `docker logs` with Docker's `--since`/`--until`/`--tail`/`-t`.

use super::access::parse_go_duration;
use super::{State, Version};
use crate::emulator::loki::LokiShipper;
use crate::emulator::time::{go_stamp, now_ns, parse_rfc3339_ns, rfc3339_nano};
use crate::emulator::{Body, Request, Response};
use serde_json::Value;
use std::time::Duration;

/// slog's levels as PocketID uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn tint(self) -> &'static str {
        match self {
            Level::Debug => "DBG",
            Level::Info => "INF",
            Level::Warn => "WRN",
            Level::Error => "ERR",
        }
    }
    fn json(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// One record besides the request line: a message and its attributes in order. An attribute
/// may be a nested object (fosite's errors in JSON mode); the text format shows only its
/// `error` field, as tint prints the error's `Error()` string.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub level: Level,
    pub msg: String,
    pub attrs: Vec<(String, Value)>,
}

impl LogRecord {
    pub fn new(level: Level, msg: impl Into<String>) -> LogRecord {
        LogRecord {
            level,
            msg: msg.into(),
            attrs: Vec::new(),
        }
    }
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> LogRecord {
        self.attrs.push((key.to_string(), value.into()));
        self
    }
}

/// The labels the lab's log shipper gives PocketID's lines in Loki.
pub const LOKI_LABELS: [(&str, &str); 2] = [("job", "auth"), ("container", "pocketid")];

/// Where the records go, and how they are written.
#[derive(Debug, Default)]
pub(super) struct Sink {
    pub json: bool,
    /// Records below it are dropped (`LOG_LEVEL`).
    pub level: Option<Level>,
    /// The container's log as Docker keeps it: receive time (ns) and line.
    pub docker: Vec<(i128, String)>,
    pub loki: Option<LokiShipper>,
}

impl Sink {
    pub fn new(json: bool, level: Level) -> Sink {
        Sink {
            json,
            level: Some(level),
            ..Default::default()
        }
    }

    /// Writes one record (unless below the level) to every output.
    pub fn write(&mut self, version: Version, rec: &LogRecord) {
        if rec.level < self.level.unwrap_or(Level::Info) {
            return;
        }
        let ts = now_ns();
        let line = if self.json {
            json_line(ts, version, rec)
        } else {
            text_line(ts, version, rec)
        };
        // A message ending in a newline (2.12's `Request with errors`) makes two physical
        // lines in text mode; Docker and Loki's shipper keep each as its own entry.
        for physical in line.split('\n').filter(|l| !l.is_empty()) {
            if let Some(loki) = &self.loki {
                loki.push(&LOKI_LABELS, ts.max(0) as u128, physical);
            }
            self.docker.push((ts, physical.to_string()));
        }
    }
}

/// tint's line: `Aug 20 10:11:12 INF <msg> app=pocket-id version=<v> k=v …`.
fn text_line(ts: i128, version: Version, rec: &LogRecord) -> String {
    let mut out = format!(
        "{} {} {} app=pocket-id version={}",
        go_stamp(ts),
        rec.level.tint(),
        rec.msg,
        version.as_str()
    );
    for (k, v) in &rec.attrs {
        let shown = match v {
            Value::String(s) => s.clone(),
            // An error value prints its `Error()`: for fosite's, the RFC 6749 name.
            Value::Object(m) => match m.get("error") {
                Some(Value::String(e)) => e.clone(),
                _ => v.to_string(),
            },
            Value::Null => "<nil>".into(),
            other => other.to_string(),
        };
        out.push_str(&format!(" {k}={}", tint_value(&shown)));
    }
    out
}

/// tint quotes a value Go-style when it is empty or holds a space, `=`, `"` or a character
/// that is not printable.
fn tint_value(s: &str) -> String {
    let needs = s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
    if needs {
        go_quote(s)
    } else {
        s.to_string()
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// slog's JSON line: `time` (RFC3339Nano), `level`, `msg`, then `app`, `version` and the
/// attributes in order (nested objects kept).
fn json_line(ts: i128, version: Version, rec: &LogRecord) -> String {
    let mut fields = vec![
        ("time".to_string(), Value::from(rfc3339_nano(ts, false))),
        ("level".to_string(), Value::from(rec.level.json())),
        ("msg".to_string(), Value::from(rec.msg.clone())),
        ("app".to_string(), Value::from("pocket-id")),
        ("version".to_string(), Value::from(version.as_str())),
    ];
    fields.extend(rec.attrs.iter().cloned());
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Go's `time.Duration.String()` for a non-negative duration (`1.84ms`, `312.5µs`, `2s`).
fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let trim = |whole: u128, frac: u128, digits: usize, unit: &str| {
        let f = format!("{frac:0digits$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{f}{unit}")
        }
    };
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => trim(n / 1_000, n % 1_000, 3, "µs"),
        n if n < 1_000_000_000 => trim(n / 1_000_000, n % 1_000_000, 6, "ms"),
        n => {
            let (m, s) = (n / 60_000_000_000, n % 60_000_000_000);
            let secs = trim(s / 1_000_000_000, s % 1_000_000_000, 9, "s");
            match (m / 60, m % 60) {
                (0, 0) => secs,
                (0, m) => format!("{m}m{secs}"),
                (h, m) => format!("{h}h{m}m{secs}"),
            }
        }
    }
}

/// Requests PocketID's logger skips: health checks and static assets (and the lab's own routes).
fn unlogged(req: &Request) -> bool {
    let p = req.path.as_str();
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    p.starts_with("/api/__lab/")
        || (get && p == "/healthz")
        || (req.method == "GET"
            && (p.starts_with("/_app")
                || p.starts_with("/fonts")
                || ["logo", "background", "favicon", "email"]
                    .iter()
                    .any(|i| p.starts_with(&format!("/api/application-images/{i}")))))
}

/// gin's route pattern of a path (`""` for frontend pages and unknown routes).
fn route_pattern(path: &str) -> String {
    const ROUTES: [&str; 21] = [
        "/api/version/current",
        "/api/users/me",
        "/api/users",
        "/api/users/:id/one-time-access-token",
        "/api/users/:id/one-time-access-email",
        "/api/audit-logs/all",
        "/api/one-time-access-token/:token",
        "/api/api-keys",
        "/api/api-keys/:id",
        "/api/api-keys/:id/renew",
        "/api/user-groups",
        "/api/oidc/clients",
        "/api/oidc/clients/:id",
        "/api/oidc/clients/:id/meta",
        "/api/oidc/clients/:id/allowed-user-groups",
        "/api/oidc/clients/:id/secrets",
        "/api/oidc/clients/:id/secrets/:secretId",
        "/api/oidc/clients/:id/secret",
        "/api/oidc/token",
        "/api/oidc/end-session",
        "/authorize",
    ];
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES
        .iter()
        .find(|r| {
            let pat: Vec<&str> = r.split('/').collect();
            pat.len() == segs.len()
                && pat
                    .iter()
                    .zip(&segs)
                    .all(|(p, s)| p == s || (p.starts_with(':') && !s.is_empty()))
        })
        .map_or(String::new(), |r| r.to_string())
}

/// After a request: the records its handler logged, `Request failed` for a 5xx, then the
/// request line with the 2.13+ attributes in PocketID's order.
pub(super) fn write_request(
    st: &mut State,
    req: &Request,
    resp: &Response,
    request_id: &str,
    latency: Duration,
) {
    // Kept until the next request starts, for `last_log_records`.
    let pending = st.pending_log.clone();
    let version = st.version;
    for rec in &pending {
        st.logs.write(version, rec);
    }
    if unlogged(req) {
        return;
    }
    let (code, message, size) = match &resp.body {
        Body::Json(v) => (
            v.get("code").and_then(Value::as_str).map(String::from),
            v.get("error").and_then(Value::as_str).map(String::from),
            serde_json::to_vec(v).map_or(0, |b| b.len() as i64),
        ),
        Body::RawJson(t) | Body::Text(t) => (None, None, t.len() as i64),
        Body::Bytes(b) => (None, None, b.len() as i64),
        Body::Empty => (None, None, -1),
    };
    if resp.status >= 500 && !version.legacy() {
        let rec = LogRecord::new(Level::Error, "Request failed")
            .attr(
                "error_code",
                code.clone().unwrap_or_else(|| "internal".into()),
            )
            .attr("error_type", "*apperror.Error")
            .attr("http_status", resp.status)
            .attr("request_id", request_id)
            .attr("http_method", req.method.as_str())
            .attr("http_path", req.path.as_str())
            .attr(
                "error",
                message.clone().unwrap_or_else(|| "internal error".into()),
            );
        st.logs.write(version, &rec);
    }
    let legacy = version.legacy();
    let level = match resp.status {
        429 => Level::Warn,
        s if s >= 500 => Level::Error,
        s if legacy && s >= 400 => Level::Warn,
        _ => Level::Info,
    };
    let mut rec = if legacy {
        // gin-contrib/slog's own message; gin ends every error text with a newline.
        let msg = match (&message, resp.status) {
            (Some(m), s) if s >= 400 => format!("Request with errors: Error #01: {m}\n"),
            _ => "Request".to_string(),
        };
        LogRecord::new(level, msg)
    } else {
        LogRecord::new(level, "HTTP request completed").attr("request_id", request_id)
    };
    if let Some(c) = code.filter(|_| !legacy) {
        rec = rec.attr("error_code", c);
    }
    let latency_value: Value = if st.logs.json {
        (latency.as_nanos() as u64).into()
    } else {
        go_duration(latency).into()
    };
    let rec = rec
        .attr("status", resp.status)
        .attr("method", req.method.as_str())
        .attr("path", req.path.as_str())
        .attr("query", req.raw_query.as_str())
        .attr("route", route_pattern(&req.path))
        .attr("ip", "127.0.0.1")
        .attr("latency", latency_value)
        .attr("referer", req.header("referer").unwrap_or(""))
        .attr("user_agent", req.header("user-agent").unwrap_or(""))
        .attr("body_size", size);
    st.logs.write(version, &rec);
}

// ---------------------------------------------------------------------------------------------
// `docker logs`

/// The lab's stand-in for `docker logs` (the `pct` stand-in calls it): 200 with the lines, or
/// 400 with Docker's error text.
pub(super) fn route(st: &State, req: &Request, segs: &[&str]) -> Option<Response> {
    if !(req.method == "GET" && segs == ["__lab", "docker-logs"]) {
        return None;
    }
    Some(match docker_logs(&st.logs.docker, req, now_ns()) {
        Ok(lines) => Response::text(200, lines),
        Err(e) => Response::text(400, e),
    })
}

fn docker_logs(log: &[(i128, String)], req: &Request, now: i128) -> Result<String, String> {
    let bound = |key: &str| -> Result<Option<i128>, String> {
        match req.q(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => docker_time(v, now).map(Some).ok_or_else(|| {
                format!("invalid value for \"{key}\": failed to parse value as time or duration: \"{v}\"")
            }),
        }
    };
    let (since, until) = (bound("since")?, bound("until")?);
    // `--tail` first, then the time window (moby's reader): fewer than N lines may remain.
    let tail = req
        .q("tail")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map_or(log.len(), |n| n as usize);
    let stamps = matches!(req.q("timestamps"), Some("1" | "true"));
    let mut out = String::new();
    for (ts, line) in &log[log.len().saturating_sub(tail)..] {
        if since.is_some_and(|s| *ts < s) || until.is_some_and(|u| *ts > u) {
            continue;
        }
        if stamps {
            out.push_str(&rfc3339_nano(*ts, true));
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// Docker's `--since`/`--until` value (`GetTimestamp`): a Go duration before `now`, RFC 3339 with
/// or without a fraction or zone (no zone: the client's, UTC here), a date, or Unix
/// `seconds[.nanoseconds]`.
fn docker_time(v: &str, now: i128) -> Option<i128> {
    if let Some(secs) = parse_go_duration(v) {
        return Some(now - (secs * 1e9) as i128);
    }
    if let Some((s, frac)) = v.split_once('.').or(Some((v, ""))) {
        if !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit())
            && frac.len() <= 9
        {
            let ns: i128 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().ok()?
            };
            return Some(s.parse::<i128>().ok()? * 1_000_000_000 + ns);
        }
    }
    let has_zone = |t: &str| {
        t.ends_with('Z')
            || t.ends_with('z')
            || t.get(t.len().saturating_sub(6)..)
                .is_some_and(|z| z.starts_with(['+', '-']) && z.as_bytes().get(3) == Some(&b':'))
    };
    match v.len() {
        10 => parse_rfc3339_ns(&format!("{v}T00:00:00Z")),
        _ if v.len() > 10 && v.as_bytes()[10] != b'T' => {
            parse_rfc3339_ns(&format!("{}T00:00:00{}", &v[..10], &v[10..]))
        }
        _ if has_zone(v) => parse_rfc3339_ns(v),
        _ => parse_rfc3339_ns(&format!("{v}Z")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tint_text_and_slog_json() {
        let ts = 1_785_665_472_123_456_789; // Aug  2 10:11:12
        let rec = LogRecord::new(Level::Error, "Failed to create access request")
            .attr("error", serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"}))
            .attr("query", "")
            .attr("user_agent", "Mozilla/5.0 (X11)")
            .attr("status", 401);
        assert_eq!(
            text_line(ts, Version::V2_14, &rec),
            "Aug  2 10:11:12 ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client query=\"\" user_agent=\"Mozilla/5.0 (X11)\" status=401"
        );
        assert_eq!(
            json_line(ts, Version::V2_14, &rec),
            r#"{"time":"2026-08-02T10:11:12.123456789Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"2.14.0","error":{"error":"invalid_client","error_description":"Client authentication failed"},"query":"","user_agent":"Mozilla/5.0 (X11)","status":401}"#
        );
        assert_eq!(tint_value("a=b"), "\"a=b\"");
        assert_eq!(tint_value("tab\there"), "\"tab\\there\"");
        assert_eq!(tint_value("/api/users/me"), "/api/users/me");
    }

    #[test]
    fn go_durations_both_ways() {
        assert_eq!(go_duration(Duration::from_micros(1840)), "1.84ms");
        assert_eq!(go_duration(Duration::from_nanos(312_500)), "312.5µs");
        assert_eq!(go_duration(Duration::from_millis(2000)), "2s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn docker_times_and_routes() {
        let now = 1_787_220_672_000_000_000;
        assert_eq!(docker_time("10m", now), Some(now - 600_000_000_000));
        assert_eq!(
            docker_time("1787220000", now),
            Some(1_787_220_000_000_000_000)
        );
        assert_eq!(
            docker_time("1787220000.5", now),
            Some(1_787_220_000_500_000_000)
        );
        assert_eq!(docker_time("2026-08-20T10:11:12Z", now), Some(now));
        assert_eq!(docker_time("2026-08-20T10:11:12", now), Some(now));
        assert_eq!(
            docker_time("2026-08-20", now),
            Some(1_787_184_000_000_000_000)
        );
        assert_eq!(docker_time("7d", now), None);
        assert_eq!(
            route_pattern("/api/oidc/clients/abc/secrets"),
            "/api/oidc/clients/:id/secrets"
        );
        assert_eq!(route_pattern("/lc/Xk7pQ2"), "");
    }
}
