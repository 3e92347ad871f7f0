//! The project's one HTTP plumbing: a ureq agent (rustls on ring) with TLS verification on by
//! default and an optional CA file, timeouts, retries with exponential backoff that honour
//! `Retry-After` — only for requests the caller marks safe to repeat — and error bodies that are
//! masked, stripped of control characters and cut short before they reach any message.

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
    #[error("{system} at {url} did not answer within {secs}s: raise `timeout` or check the server's load")]
    Timeout {
        system: &'static str,
        url: String,
        secs: u64,
    },
    #[error("TLS to {system} at {url} failed ({detail}): set `ca_cert` (or the CA environment variable) to the CA that signed the server's certificate, or `validate_certs: false` on a trusted network")]
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

/// Masks secrets, drops control characters (a hostile server controls the body) and truncates.
pub fn safe_text(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let masked = mask(cleaned.trim());
    let mut out: String = masked.chars().take(300).collect();
    if masked.chars().count() > 300 {
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
        if let Some(path) = &cfg.ca_cert {
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
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.timeout))
            .max_redirects(0)
            .no_delay(true)
            .allow_non_standard_methods(true)
            .user_agent(concat!("homelab-sso/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into();
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
                    let transient =
                        matches!(e, HttpError::Connect { .. } | HttpError::Timeout { .. });
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
        let mut resp = result.map_err(|e| self.classify(url, e, started))?;
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
            .map_err(|e| self.classify(url, e, started))?;
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

    fn classify(&self, url: &str, e: ureq::Error, started: Instant) -> HttpError {
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
}
