//! The project's one HTTP plumbing: a ureq agent (rustls on ring) with TLS verification on by
//! default and an optional CA file, timeouts, retries with exponential backoff that honour
//! `Retry-After` — only for requests the caller marks safe to repeat — and error bodies that are
//! masked, stripped of control characters and cut short before they reach any message.
//!
//! Every request other than GET/HEAD/OPTIONS marks the process as "state may have changed"
//! (`ansible_module::mark_state_may_have_changed`) before it is sent, so a later panic reports
//! `changed: true` and an unknown state instead of claiming nothing was done.

pub mod time;
mod tls;

use ansible_module::mask;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use ureq::http;

/// How to reach one server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `https://host:port` (a trailing `/` is ignored); request paths are appended to it.
    pub base_url: String,
    /// PEM file with the CA(s) to trust instead of the built-in Mozilla roots.
    pub ca_cert: Option<PathBuf>,
    pub validate_certs: bool,
    /// Per request attempt (connect + send + receive).
    pub timeout: Duration,
    /// Further attempts for retryable requests.
    pub retries: u32,
    /// First backoff step; doubles each attempt.
    pub backoff: Duration,
    /// Longest `Retry-After` we are willing to honour before giving up.
    pub max_retry_after: Duration,
    /// Who is talking, for the server's error messages (`Vault`, `PocketID`, `Forgejo`).
    pub system: &'static str,
}

impl HttpConfig {
    pub fn new(system: &'static str, base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into(),
            ca_cert: None,
            validate_certs: true,
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(60),
            system,
        }
    }
}

/// Transport failures. Messages name the system, the URL and what to do; never a body or a header.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{system} at {url} refused the connection or could not be reached ({detail}): check that it is running and the URL is right")]
    Connect {
        system: &'static str,
        url: String,
        detail: String,
    },
    #[error("the connection to {system} at {url} was closed or reset before an answer came ({detail}){}", lost_next_step(method, *request_sent))]
    ConnectionLost {
        system: &'static str,
        url: String,
        method: String,
        detail: String,
        /// The request may have reached the server (it was not refused at connect).
        request_sent: bool,
    },
    #[error("{system} at {url} did not answer within {secs}s: raise `timeout` or check the server's load")]
    Timeout {
        system: &'static str,
        url: String,
        secs: u64,
    },
    #[error(
        "TLS to {system} at {url} failed ({detail}): {}",
        tls_next_step(detail)
    )]
    Tls {
        system: &'static str,
        url: String,
        detail: String,
    },
    #[error("cannot use CA file {path} for {system}: {detail}")]
    CaFile {
        system: &'static str,
        path: String,
        detail: String,
    },
    #[error("cannot send the {header} header to {system} at {url}: the {what} contains a newline or another control character (nothing was sent, and the value is not shown). Remove it: a value copied with a line break, or read from a file with a trailing newline?")]
    BadHeader {
        system: &'static str,
        url: String,
        header: String,
        what: &'static str,
    },
    #[error("the {system} URL {url} holds credentials (user:password@host): they are not used ({system} is authenticated by the module's token or API key option) and a URL ends up in logs and messages; remove them from the URL")]
    UrlCredentials { system: &'static str, url: String },
    #[error("invalid URL for {system}: {url} ({detail})")]
    BadUrl {
        system: &'static str,
        url: String,
        detail: String,
    },
    #[error("{system} at {url}: request failed: {detail}")]
    Other {
        system: &'static str,
        url: String,
        detail: String,
    },
    #[error(
        "{system} answered {method} {path} with HTTP {status} after {attempts} attempts: {body}"
    )]
    GaveUp {
        system: &'static str,
        method: String,
        path: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    #[error(
        "{system} answered {method} {path} with a body that is not the expected JSON ({detail})"
    )]
    Decode {
        system: &'static str,
        method: String,
        path: String,
        detail: String,
    },
}

/// Whether a request with this method changes state on the server (anything but a read).
pub fn is_mutating(method: &str) -> bool {
    !matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    )
}

/// What to do after a connection was lost: a write may have landed.
fn lost_next_step(method: &str, request_sent: bool) -> String {
    if request_sent && is_mutating(method) {
        format!(": the {method} request had been sent, so it may have been applied. Re-run: the module reads the current state and converges")
    } else {
        ": check that the server (and any proxy in front of it) is up, then re-run".to_string()
    }
}

/// What to do about a TLS failure: a certificate made for another name needs another URL, not
/// another CA.
fn tls_next_step(detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("expired") || lower.contains("not valid yet") {
        "the server's certificate is outside its validity period: renew it (or check this machine's clock)"
    } else if detail.contains("not valid for name") {
        "the server's certificate was not made for the host in the URL: use a host name or IP address the certificate lists"
    } else {
        "set `ca_cert` (or the CA environment variable) to the CA that signed the server's certificate (or to the server's own certificate if it is self-signed), or `validate_certs: false` on a trusted network"
    }
}

/// Which option a header's value comes from, for the message (never the value).
fn header_what(header: &str) -> &'static str {
    match header.to_ascii_lowercase().as_str() {
        "x-vault-token" | "authorization" => "token",
        "x-api-key" => "API key",
        "x-vault-namespace" => "namespace",
        _ => "value",
    }
}

/// `url` with any `user:password@` replaced by `***@`, for messages.
pub fn redact_url(url: &str) -> String {
    match userinfo_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_string(),
    }
}

/// The byte span of the userinfo (`user:password`) of `scheme://user:password@host/...`.
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')?;
    Some((start, start + at))
}

/// A response with its body read (bounded) into memory.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
    /// The body as text fit for a message: secrets masked, control characters removed, at most
    /// 300 characters.
    pub fn safe_text(&self) -> String {
        safe_text(&String::from_utf8_lossy(&self.body))
    }
}

/// Masks secrets, then drops control characters (a hostile server controls the body) and
/// truncates. Masking comes first: a secret holding a tab or a newline would no longer match
/// once those were replaced, and a truncation could cut a secret in half.
pub fn safe_text(raw: &str) -> String {
    // Only the start of a body can reach the message; masking a 16 MiB body in full would let a
    // hostile server stall the module. The margin keeps any secret that ends in the first 300
    // characters whole.
    let end = raw
        .char_indices()
        .nth(SAFE_TEXT_SCAN)
        .map_or(raw.len(), |(i, _)| i);
    let masked = mask(&raw[..end]);
    let cleaned: String = masked
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    let mut out: String = cleaned.chars().take(300).collect();
    if cleaned.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Whether a request may be sent again after a failure or a 429/5xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// GET/PUT/DELETE and other requests whose repetition changes nothing more.
    Safe,
    /// Requests that mint or dispatch: sent exactly once.
    Never,
}

/// Body to send.
pub enum Body<'a> {
    None,
    Json(serde_json::Value),
    Raw {
        content_type: &'a str,
        bytes: Vec<u8>,
    },
}

impl Body<'_> {
    pub fn json<T: Serialize>(v: &T) -> Body<'static> {
        Body::Json(serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
    }
}

const MAX_BODY: u64 = 16 * 1024 * 1024;

/// Characters of a body that `safe_text` masks before it keeps the first 300.
const SAFE_TEXT_SCAN: usize = 64 * 1024;

/// A client for one server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    cfg: HttpConfig,
    base: String,
    /// Requests sent, attempts included (for tests and benchmarks).
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    pub fn new(cfg: HttpConfig) -> Result<Self, HttpError> {
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if let Some((start, end)) = userinfo_span(&base) {
            // Hidden in any later text too (a server may echo the URL).
            let userinfo = &base[start..end];
            ansible_module::register_secret(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                ansible_module::register_secret(password);
            }
            return Err(HttpError::UrlCredentials {
                system: cfg.system,
                url: redact_url(&base),
            });
        }
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(HttpError::BadUrl {
                system: cfg.system,
                url: base,
                detail: "must start with http:// or https://".into(),
            });
        }
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .disable_verification(!cfg.validate_certs);
        let mut pinned = None;
        if let Some(path) = cfg.ca_cert.as_ref().filter(|_| cfg.validate_certs) {
            let ca_err = |detail: String| HttpError::CaFile {
                system: cfg.system,
                path: path.display().to_string(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate in the file".into()));
            }
            let der: Vec<Vec<u8>> = certs.iter().map(|c| c.der().to_vec()).collect();
            pinned = Some(tls::client_config(&der).map_err(ca_err)?);
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.timeout))
            .max_redirects(0)
            .no_delay(true)
            .allow_non_standard_methods(true)
            .user_agent(concat!("homelab-sso/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        let agent = match pinned {
            // A CA file: our TLS connector (see `tls`), after the same proxy and TCP steps as
            // ureq's default chain.
            Some(config_tls) => {
                use ureq::unversioned::transport::{
                    ConnectProxyConnector, Connector, TcpConnector,
                };
                let connector =
                    ().chain(ConnectProxyConnector::default())
                        .chain(TcpConnector::default())
                        .chain(tls::PinnedTlsConnector { config: config_tls });
                ureq::Agent::with_parts(
                    config,
                    connector,
                    ureq::unversioned::resolver::DefaultResolver::default(),
                )
            }
            None => config.into(),
        };
        Ok(Client {
            agent,
            cfg,
            base,
            sent: Default::default(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn system(&self) -> &'static str {
        self.cfg.system
    }

    /// Requests sent so far by this client (every attempt counts).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a request and returns any HTTP answer (4xx/5xx included) with its body. Transport
    /// errors, and 429/5xx gateway or server errors for `Retry::Safe` requests, are retried with backoff;
    /// `Retry-After` is honoured up to `max_retry_after`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        retry: Retry,
    ) -> Result<Response, HttpError> {
        let url = format!("{}{}", self.base, path);
        let (content_type, bytes) = match &body {
            Body::None => (None, Vec::new()),
            Body::Json(v) => (
                Some("application/json"),
                serde_json::to_vec(v).unwrap_or_default(),
            ),
            Body::Raw {
                content_type,
                bytes,
            } => (Some(*content_type), bytes.clone()),
        };
        let has_body = !matches!(body, Body::None);
        // A header value with a line break is refused before anything is sent (the http crate
        // would call it an invalid request, and the value must never be echoed).
        if let Some((k, _)) = headers
            .iter()
            .find(|(_, v)| v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f))
        {
            return Err(HttpError::BadHeader {
                system: self.cfg.system,
                url: url.clone(),
                header: k.to_string(),
                what: header_what(k),
            });
        }
        if is_mutating(method) {
            ansible_module::mark_state_may_have_changed();
        }
        let max_attempts = match retry {
            Retry::Safe => self.cfg.retries + 1,
            Retry::Never => 1,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = self.send_once(method, &url, headers, content_type, &bytes, has_body);
            let last = attempt >= max_attempts;
            match result {
                Ok(mut resp) => {
                    resp.attempts = attempt;
                    let retryable = matches!(resp.status, 429 | 500 | 502 | 503 | 504);
                    if !retryable || last {
                        return Ok(resp);
                    }
                    let wait = match resp.header("retry-after").and_then(parse_retry_after) {
                        Some(w) if w > self.cfg.max_retry_after => return Ok(resp),
                        Some(w) => w,
                        None => self.backoff(attempt),
                    };
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    let transient = matches!(
                        e,
                        HttpError::Connect { .. }
                            | HttpError::Timeout { .. }
                            | HttpError::ConnectionLost { .. }
                    );
                    if !transient || last {
                        return Err(e);
                    }
                    std::thread::sleep(self.backoff(attempt));
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.cfg.backoff.saturating_mul(1 << (attempt - 1).min(6))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        bytes: &[u8],
        has_body: bool,
    ) -> Result<Response, HttpError> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(ct) = content_type {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                builder = builder.header("Content-Type", ct);
            }
        }
        let started = Instant::now();
        let result = if has_body {
            let req = builder
                .body(bytes.to_vec())
                .map_err(|e| self.bad_url(url, e))?;
            self.agent.run(req)
        } else {
            let req = builder.body(()).map_err(|e| self.bad_url(url, e))?;
            self.agent.run(req)
        };
        let mut resp = result.map_err(|e| self.classify(method, url, e, started))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.classify(method, url, e, started))?;
        Ok(Response {
            status,
            headers,
            body,
            attempts: 1,
        })
    }

    fn bad_url(&self, url: &str, e: impl std::fmt::Display) -> HttpError {
        HttpError::BadUrl {
            system: self.cfg.system,
            url: url.to_string(),
            detail: e.to_string(),
        }
    }

    fn classify(&self, method: &str, url: &str, e: ureq::Error, started: Instant) -> HttpError {
        use std::io::ErrorKind;
        let system = self.cfg.system;
        let url = url.to_string();
        let detail = safe_text(&e.to_string());
        match e {
            ureq::Error::Timeout(_) => HttpError::Timeout {
                system,
                url,
                secs: started.elapsed().as_secs().max(self.cfg.timeout.as_secs()),
            },
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
                HttpError::Timeout {
                    system,
                    url,
                    secs: self.cfg.timeout.as_secs(),
                }
            }
            ureq::Error::Io(ref io)
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.to_string().contains("certificate"))
                    || io.to_string().contains("certificate") =>
            {
                HttpError::Tls {
                    system,
                    url,
                    detail,
                }
            }
            // Closed or reset after the connection was made: the request may have been read.
            ureq::Error::Io(ref io)
                if matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                        | ErrorKind::UnexpectedEof
                ) =>
            {
                HttpError::ConnectionLost {
                    system,
                    url,
                    method: method.to_string(),
                    detail,
                    request_sent: true,
                }
            }
            ureq::Error::Protocol(_) => HttpError::ConnectionLost {
                system,
                url,
                method: method.to_string(),
                detail,
                request_sent: true,
            },
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                HttpError::Connect {
                    system,
                    url,
                    detail,
                }
            }
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => HttpError::Tls {
                system,
                url,
                detail,
            },
            ureq::Error::BadUri(_) => HttpError::BadUrl {
                system,
                url,
                detail,
            },
            _ => HttpError::Other {
                system,
                url,
                detail,
            },
        }
    }

    /// `send` and decode a JSON success body; a non-2xx answer is returned as `Err(Ok(resp))` so
    /// callers can map API errors to their own types.
    pub fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        retry: Retry,
    ) -> Result<T, ApiFailure> {
        let resp = self
            .send(method, path, headers, body, retry)
            .map_err(ApiFailure::Transport)?;
        if !resp.is_success() {
            return Err(ApiFailure::Status(resp));
        }
        resp.json().map_err(|e| {
            ApiFailure::Transport(HttpError::Decode {
                system: self.cfg.system,
                method: method.to_string(),
                path: path.to_string(),
                detail: e.to_string(),
            })
        })
    }
}

/// Either the request never got an answer, or the answer was not a success.
#[derive(Debug)]
pub enum ApiFailure {
    Transport(HttpError),
    Status(Response),
}

/// `Retry-After` as seconds (an HTTP date is treated as "soon").
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    (!v.is_empty()).then(|| Duration::from_secs(1))
}

/// Percent-encodes one path segment or query value.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Refuses a `.` or `..` segment in `value` (one URL path segment, or several joined by `/`),
/// given as the option `what`. URL resolution and servers' path cleaning turn such a segment into
/// another API path, and percent-encoding does not help (`%2e` is a dot to them too), so every
/// option that becomes part of a URL path is checked with this one function.
pub fn check_segments(what: &str, value: &str) -> Result<(), String> {
    if value.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "`{what}` {value:?} holds a `.` or `..` path segment, which would address another path on the server: give the name itself"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn safe_text_masks_strips_and_truncates() {
        ansible_module::register_secret("httpx-unit-secret");
        let t = safe_text("bad \x1b[31mtoken httpx-unit-secret\n");
        assert!(
            !t.contains("httpx-unit-secret") && !t.contains('\x1b'),
            "{t}"
        );
        assert!(safe_text(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn encode_segments() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn dot_segments_are_refused() {
        for bad in [".", "..", "a/..", "../a", "a/./b"] {
            assert!(check_segments("repo", bad).is_err(), "{bad}");
        }
        for ok in ["a.b", "...", ".hidden", "a/b", "v1..2"] {
            assert_eq!(check_segments("repo", ok), Ok(()), "{ok}");
        }
        assert!(check_segments("mount", "..")
            .unwrap_err()
            .contains("`mount`"));
    }

    #[test]
    fn refuses_non_http_urls() {
        assert!(matches!(
            Client::new(HttpConfig::new("Vault", "ftp://127.0.0.1")),
            Err(HttpError::BadUrl { .. })
        ));
    }

    /// A one-shot server on 127.0.0.1 that reads one request (headers and body) and then closes
    /// the connection without an answer.
    fn read_then_hang_up() -> String {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..8 {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                drop(s);
            }
        });
        format!("http://{addr}")
    }

    fn client(base: &str) -> Client {
        let mut cfg = HttpConfig::new("Vault", base);
        cfg.timeout = Duration::from_secs(5);
        cfg.retries = 0;
        Client::new(cfg).unwrap()
    }

    #[test]
    fn a_secret_with_a_tab_is_masked_before_control_characters_are_replaced() {
        ansible_module::register_secret("tab\tin-httpx-unit-secret");
        let t = safe_text("echo: tab\tin-httpx-unit-secret and tab\\tin-httpx-unit-secret\n");
        assert_eq!(t, "echo: ******** and ********");
    }

    #[test]
    fn a_connection_lost_after_a_write_was_sent_says_it_may_have_been_applied() {
        let base = read_then_hang_up();
        let e = client(&base)
            .send(
                "POST",
                "/v1/secret/data/app",
                &[],
                Body::Json(serde_json::json!({"a": 1})),
                Retry::Never,
            )
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, HttpError::ConnectionLost { .. }), "{m}");
        assert!(
            m.contains("may have been applied") && m.contains("Re-run"),
            "{m}"
        );
        assert!(!m.contains("refused"), "{m}");
        // A read lost the same way is not a possible write.
        let e = client(&base)
            .send("GET", "/v1/secret/data/app", &[], Body::None, Retry::Never)
            .unwrap_err();
        assert!(!e.to_string().contains("may have been applied"), "{e}");
        // Nobody listening: refused, as before.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = client(&format!("http://127.0.0.1:{port}"))
            .send("POST", "/x", &[], Body::None, Retry::Never)
            .unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(e.to_string().contains("refused the connection"), "{e}");
    }

    #[test]
    fn a_token_with_a_newline_is_named_as_such_and_never_shown() {
        let base = read_then_hang_up();
        let e = client(&base)
            .send(
                "GET",
                "/v1/x",
                &[("X-Vault-Token", "hvs.newline-unit\n")],
                Body::None,
                Retry::Safe,
            )
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, HttpError::BadHeader { .. }), "{m}");
        assert!(
            m.contains("X-Vault-Token") && m.contains("token contains a newline"),
            "{m}"
        );
        assert!(
            !m.contains("newline-unit") && !m.contains("invalid URL"),
            "{m}"
        );
        let e = client(&base)
            .send(
                "GET",
                "/v1/x",
                &[("X-Vault-Namespace", "team\r\nX: y")],
                Body::None,
                Retry::Safe,
            )
            .unwrap_err();
        assert!(e.to_string().contains("the namespace contains"), "{e}");
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_shown() {
        let e = Client::new(HttpConfig::new(
            "Vault",
            "http://admin:url-pw-unit@127.0.0.1:8200/",
        ))
        .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, HttpError::UrlCredentials { .. }), "{m}");
        assert!(
            m.contains("http://***@127.0.0.1:8200") && m.contains("not used"),
            "{m}"
        );
        assert!(!m.contains("url-pw-unit") && !m.contains("admin"), "{m}");
        assert_eq!(ansible_module::mask("echo url-pw-unit"), "echo ********");
        assert_eq!(redact_url("https://h:1/p@x"), "https://h:1/p@x");
    }

    #[test]
    fn only_requests_that_change_state_mark_the_process() {
        // The flag is process-wide and other tests of this binary send POSTs in parallel, so
        // only the PUT's effect is checked here; the GET side is `is_mutating`.
        let base = read_then_hang_up();
        let _ = client(&base).send("PUT", "/x", &[], Body::None, Retry::Never);
        assert!(ansible_module::state_may_have_changed());
        assert!(
            is_mutating("POST")
                && is_mutating("patch")
                && !is_mutating("GET")
                && !is_mutating("HEAD")
        );
    }
}
