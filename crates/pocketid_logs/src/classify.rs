//! Failures in PocketID's log, one [`Event`] each, of a documented [`Kind`] (contract
//! pocketid-logs-and-access §2, §6). A fosite error line and the request line it belongs to
//! share no request id, so they are joined by time and path (§6.2); an authorize error's hint is
//! decoded from the browser's following `GET /interaction/error?error=…` (§6.4); a `Request
//! failed` line (≥500) is joined to its request line by `request_id`. Every value an event
//! carries is redacted ([`crate::redact`]); no line is ever kept whole.

use crate::parse::{query_value, Level, Record};
use crate::redact;
use crate::time::{Nanos, SECOND};
use serde::Serialize;

/// What kind of failure an event is (the keys of the result's `counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Token endpoint: wrong client secret, or an unknown or deleted client (indistinguishable).
    InvalidClient,
    /// Token endpoint: code expired, reused or unknown, PKCE verifier wrong, `redirect_uri`
    /// differs from the authorize request's.
    InvalidGrant,
    /// Token endpoint: any other OAuth error, or a failed token request without its error line.
    TokenError,
    /// Authorize: the client id is unknown.
    UnknownClient,
    /// Authorize: the redirect (callback) URL is not registered for the client.
    RedirectUriNotAllowed,
    /// Authorize: PKCE required but no `code_challenge`.
    PkceRequired,
    /// Authorize: any other error (see `error` and `hint`).
    AuthorizeError,
    /// The user is not in a group the client allows (authorize), or no longer (token).
    AccessDenied,
    /// An API request without a valid API key (401 `not_signed_in` from a non-browser client):
    /// unknown, revoked and expired keys look the same.
    ApiKeyRefused,
    /// A browser's API request without a valid session (401 `not_signed_in`).
    NotSignedIn,
    /// 403 `forbidden` / `missing_permission` (an API key of a non-admin on an admin route).
    Forbidden,
    /// Passkey (WebAuthn) sign-in or registration refused.
    PasskeyFailed,
    /// A one-time login code wrong, expired, used, or used in another browser.
    LoginCodeRefused,
    /// PocketID could not send a login-code e-mail (SMTP).
    EmailFailed,
    /// The logout callback URL is not registered: 2.12+ logs `Error getting logout callback
    /// URL` and redirects 302 to a manual logout; older servers answered 400.
    LogoutCallbackInvalid,
    /// The user is disabled (`user_disabled`).
    UserDisabled,
    /// 429 rate limited.
    RateLimited,
    /// An answer ≥ 500 (`Request failed`).
    ServerError,
    /// Another 4xx with an error code.
    ClientError,
    /// Another line at ERROR level.
    OtherError,
}

/// One failure, redacted.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(skip)]
    pub ts: Nanos,
    pub time: String,
    pub kind: Kind,
    pub level: Option<&'static str>,
    pub status: Option<u16>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub hint: Option<String>,
    pub request_id: Option<String>,
}

/// A parsed line and when it was written (Docker's or Loki's timestamp).
#[derive(Debug, Clone)]
pub struct Entry {
    pub ts: Nanos,
    pub record: Record,
}

/// Longest error text or hint kept.
const TEXT_MAX: usize = 300;
/// How far after a fosite error line its request line may come.
const JOIN_WINDOW: Nanos = 5 * SECOND;
/// How far after an authorize error the browser's `GET /interaction/error` may come.
const HINT_WINDOW: Nanos = 30 * SECOND;

impl Event {
    fn new(ts: Nanos, kind: Kind, level: Option<Level>) -> Event {
        Event {
            ts,
            time: crate::time::format_rfc3339(ts),
            kind,
            level: level.map(Level::as_str),
            status: None,
            method: None,
            path: None,
            client_id: None,
            redirect_uri: None,
            error: None,
            error_code: None,
            hint: None,
            request_id: None,
        }
    }

    /// Status, method, redacted path and request id of a request line.
    fn with_request(mut self, r: &Record) -> Event {
        self.status = r.status().or(self.status);
        self.method = r.get("method").map(short).or(self.method);
        self.path = Some(redact::path(r.path()));
        self.request_id = r.get("request_id").map(short).or(self.request_id);
        if self.error_code.is_none() {
            self.error_code = r.get("error_code").map(short);
        }
        self
    }
}

fn short(s: &str) -> String {
    redact::text(s, 120)
}

/// Messages of lines that are failures of their own or context of one.
const FAILURE_MESSAGES: [&str; 9] = [
    "Failed to create access request",
    "Rejected token request: user no longer allowed to access client",
    "Failed to authorize request",
    "Failed to create authorize request",
    "Failed to create authorize response",
    "Request failed",
    "Failed to send one-time access token email",
    "Redirect URI does not match any of the registered callback URLs",
    "Fosite authorize error details",
];

/// Whether [`classify`] can use the line: a failure, or a line a failure is joined with. Other
/// lines are counted and dropped, so memory follows the failures, not the traffic.
pub fn needed(r: &Record) -> bool {
    if r.is_request() {
        let p = r.path();
        return r.status().is_none_or(|s| s >= 400)
            || is_authorize_path(p)
            || matches!(
                p,
                "/api/oidc/token" | "/interaction/error" | "/api/oidc/end-session"
            );
    }
    r.level == Some(Level::Error)
        || FAILURE_MESSAGES.contains(&r.msg.as_str())
        || r.msg.starts_with(LOGOUT_CALLBACK)
}

/// Finds every failure in `entries` (sorted by time).
pub fn classify(entries: &[Entry]) -> Vec<Event> {
    let mut used = vec![false; entries.len()];
    let mut events = Vec::new();
    for i in 0..entries.len() {
        if used[i] {
            continue;
        }
        used[i] = true;
        if let Some(e) = classify_one(entries, i, &mut used) {
            events.push(e);
        }
    }
    events.sort_by_key(|e| e.ts);
    events
}

/// The first unused entry after `i` within `window` that `want` accepts; marked used.
fn take_after(
    entries: &[Entry],
    i: usize,
    window: Nanos,
    used: &mut [bool],
    want: impl Fn(&Record) -> bool,
) -> Option<usize> {
    let t0 = entries[i].ts;
    let j = (i + 1..entries.len())
        .take_while(|&j| entries[j].ts - t0 <= window)
        .find(|&j| !used[j] && want(&entries[j].record))?;
    used[j] = true;
    Some(j)
}

fn classify_one(entries: &[Entry], i: usize, used: &mut [bool]) -> Option<Event> {
    let Entry { ts, record: r } = &entries[i];
    let msg = r.msg.as_str();
    match msg {
        "Failed to create access request" => Some(token_step(entries, i, used)),
        "Rejected token request: user no longer allowed to access client" => {
            let mut e = token_step(entries, i, used);
            if r.get("error") == Some("access_denied") {
                e.kind = Kind::AccessDenied;
            }
            Some(e)
        }
        "Failed to authorize request"
        | "Failed to create authorize request"
        | "Failed to create authorize response" => Some(authorize_step(entries, i, used)),
        "Request failed" => Some(server_error(entries, i, used)),
        _ if msg.starts_with(LOGOUT_CALLBACK) => Some(logout_step(entries, i, used)),
        "Failed to send one-time access token email" => {
            let mut e = Event::new(*ts, Kind::EmailFailed, r.level);
            e.error = r.get("error").map(|t| redact::text(t, TEXT_MAX));
            Some(e)
        }
        // Context for an authorize error that follows; not a failure of its own.
        "Redirect URI does not match any of the registered callback URLs"
        | "Fosite authorize error details" => None,
        _ if r.is_request() => request_line(r, *ts),
        _ if r.level == Some(Level::Error) => {
            let mut e = Event::new(*ts, Kind::OtherError, r.level);
            let text = match r.get("error") {
                Some(err) => format!("{msg}: {err}"),
                None => msg.to_string(),
            };
            e.error = Some(redact::text(&text, TEXT_MAX));
            Some(e)
        }
        _ => None,
    }
}

/// PocketID (2.12–2.14) logs a logout callback it does not accept with this WRN message and
/// redirects 302 to `/logout`, so the user confirms by hand (contract §2).
const LOGOUT_CALLBACK: &str = "Error getting logout callback URL";

/// The WRN line of an unaccepted logout callback, with its `/api/oidc/end-session` request line.
fn logout_step(entries: &[Entry], i: usize, used: &mut [bool]) -> Event {
    let r = &entries[i].record;
    let mut e = Event::new(entries[i].ts, Kind::LogoutCallbackInvalid, r.level);
    e.error = r.get("error").map(|t| redact::text(t, TEXT_MAX));
    if let Some(j) = take_after(entries, i, JOIN_WINDOW, used, |x| {
        x.is_request() && x.path() == "/api/oidc/end-session"
    }) {
        e = e.with_request(&entries[j].record);
    }
    e
}

/// `ERR Failed to create access request error=<rfc6749>`, then the `/api/oidc/token` request
/// line.
fn token_step(entries: &[Entry], i: usize, used: &mut [bool]) -> Event {
    let r = &entries[i].record;
    let error = r.get("error").unwrap_or("");
    let kind = match error {
        "invalid_client" => Kind::InvalidClient,
        "invalid_grant" => Kind::InvalidGrant,
        _ => Kind::TokenError,
    };
    let mut e = Event::new(entries[i].ts, kind, r.level);
    e.error = (!error.is_empty()).then(|| short(error));
    e.hint = r
        .error_description
        .as_deref()
        .map(|d| redact::text(d, TEXT_MAX));
    if let Some(j) = take_after(entries, i, JOIN_WINDOW, used, |x| {
        x.is_request() && x.path() == "/api/oidc/token"
    }) {
        e = e.with_request(&entries[j].record);
    }
    e
}

fn is_authorize_path(p: &str) -> bool {
    p == "/authorize" || p.starts_with("/api/oidc/authorize")
}

/// An authorize error line with its request line (client id and redirect URI from its query),
/// DEBUG details when logged, and the hint of the following `GET /interaction/error`.
fn authorize_step(entries: &[Entry], i: usize, used: &mut [bool]) -> Event {
    let r = &entries[i].record;
    let error = r.get("error").unwrap_or("").to_string();
    let mut e = Event::new(entries[i].ts, Kind::AuthorizeError, r.level);
    e.error = (!error.is_empty()).then(|| short(&error));
    // DEBUG lines just before (the redirect URI check) are context.
    for j in (0..i).rev() {
        let x = &entries[j];
        if entries[i].ts - x.ts > JOIN_WINDOW {
            break;
        }
        if x.record.msg == "Redirect URI does not match any of the registered callback URLs" {
            e.redirect_uri = x
                .record
                .get("rawurl")
                .map(|u| redact::text(&redact::url(u), TEXT_MAX));
            e.client_id = x.record.get("client_id").map(short);
            e.hint = Some("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.".into());
            break;
        }
    }
    if let Some(j) = take_after(entries, i, JOIN_WINDOW, used, |x| {
        x.is_request() && is_authorize_path(x.path())
    }) {
        let req = &entries[j].record;
        e = e.with_request(req);
        let q = req.get("query").unwrap_or("");
        e.client_id = query_value(q, "client_id")
            .map(|c| short(&c))
            .or(e.client_id);
        e.redirect_uri = query_value(q, "redirect_uri")
            .map(|u| redact::text(&redact::url(&u), TEXT_MAX))
            .or(e.redirect_uri);
    }
    if let Some(j) = take_after(entries, i, JOIN_WINDOW, used, |x| {
        x.msg == "Fosite authorize error details"
    }) {
        if let Some(h) = entries[j].record.get("hint").filter(|h| !h.is_empty()) {
            e.hint = Some(redact::text(h, TEXT_MAX));
        }
    }
    if let Some(j) = take_after(entries, i, HINT_WINDOW, used, |x| {
        x.is_request() && x.path() == "/interaction/error"
    }) {
        let q = entries[j].record.get("query").unwrap_or("");
        if let Some(h) = query_value(q, "error") {
            e.hint = Some(redact::text(&h, TEXT_MAX));
        }
    }
    e.kind = authorize_kind(&error, e.hint.as_deref().unwrap_or(""));
    e
}

fn authorize_kind(error: &str, hint: &str) -> Kind {
    let h = hint.to_ascii_lowercase();
    match error {
        "access_denied" => Kind::AccessDenied,
        "invalid_client" => Kind::UnknownClient,
        _ if h.contains("redirect_uri") || h.contains("redirect url") => {
            Kind::RedirectUriNotAllowed
        }
        _ if h.contains("pkce") || h.contains("code_challenge") => Kind::PkceRequired,
        _ => Kind::AuthorizeError,
    }
}

/// `ERR Request failed` (≥500) and its request line, joined by request id.
fn server_error(entries: &[Entry], i: usize, used: &mut [bool]) -> Event {
    let r = &entries[i].record;
    let mut e = Event::new(entries[i].ts, Kind::ServerError, r.level);
    e.error = r.get("error").map(|t| redact::text(t, TEXT_MAX));
    e.error_code = r.get("error_code").map(short);
    e.request_id = r.get("request_id").map(short);
    e.method = r.get("http_method").map(short);
    e.path = r.get("http_path").map(redact::path);
    e.status = r.get("http_status").and_then(|s| s.parse().ok());
    let rid = r.get("request_id").unwrap_or("").to_string();
    if !rid.is_empty() {
        if let Some(j) = take_after(entries, i, JOIN_WINDOW, used, |x| {
            x.is_request() && x.get("request_id") == Some(rid.as_str())
        }) {
            e = e.with_request(&entries[j].record);
        }
    }
    e
}

const PASSKEY_CODES: [&str; 5] = [
    "webauthn_authentication_failed",
    "invalid_webauthn_session",
    "missing_session_id",
    "passkey_user_verification_required",
    "synced_passkey_not_allowed",
];

/// A request line no error line claimed.
fn request_line(r: &Record, ts: Nanos) -> Option<Event> {
    let status = r.status()?;
    let path = r.path();
    let code = r.get("error_code").unwrap_or("");
    // ≤2.12: `Request with errors: Error #01: <text>`.
    let legacy = r
        .msg
        .strip_prefix("Request with errors:")
        .map(|t| t.trim().trim_start_matches("Error #01:").trim().to_string());
    let text = legacy.clone().unwrap_or_default().to_ascii_lowercase();
    let browser = r
        .get("user_agent")
        .is_some_and(|u| u.starts_with("Mozilla/"));
    let kind = if path == "/interaction/error" {
        let hint = query_value(r.get("query").unwrap_or(""), "error").unwrap_or_default();
        if hint.contains("not allowed to access") {
            Kind::AccessDenied
        } else {
            Kind::AuthorizeError
        }
    } else if status == 429 || code == "rate_limited" {
        Kind::RateLimited
    } else if status >= 500 {
        Kind::ServerError
    } else if !(400..500).contains(&status) {
        return None;
    } else if code == "oidc_invalid_callback_url" || text.contains("callback url") {
        Kind::LogoutCallbackInvalid
    } else if code == "user_disabled" || text.contains("disabled") {
        Kind::UserDisabled
    } else if code == "not_signed_in" || text.contains("not signed in") {
        if browser || !path.starts_with("/api/") {
            Kind::NotSignedIn
        } else {
            Kind::ApiKeyRefused
        }
    } else if matches!(code, "forbidden" | "missing_permission") {
        Kind::Forbidden
    } else if matches!(code, "token_invalid_or_expired" | "device_code_invalid")
        || path.starts_with("/api/one-time-access-token")
    {
        Kind::LoginCodeRefused
    } else if PASSKEY_CODES.contains(&code) || path.starts_with("/api/webauthn") {
        Kind::PasskeyFailed
    } else if path == "/api/oidc/token" {
        Kind::TokenError
    } else if !code.is_empty() || legacy.is_some() {
        Kind::ClientError
    } else {
        // A 4xx without an error code (a 404 for a page, a probe): not a handler failure.
        return None;
    };
    let mut e = Event::new(ts, kind, r.level).with_request(r);
    if let Some(t) = legacy.filter(|t| !t.is_empty()) {
        e.error = Some(redact::text(&t, TEXT_MAX));
    }
    if path == "/interaction/error" {
        e.hint =
            query_value(r.get("query").unwrap_or(""), "error").map(|h| redact::text(&h, TEXT_MAX));
    }
    if is_authorize_path(path) {
        let q = r.get("query").unwrap_or("");
        e.client_id = query_value(q, "client_id").map(|c| short(&c));
        e.redirect_uri =
            query_value(q, "redirect_uri").map(|u| redact::text(&redact::url(&u), TEXT_MAX));
    }
    Some(e)
}
