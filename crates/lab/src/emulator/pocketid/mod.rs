//! A PocketID emulator faithful to `contracts/pocketid-api.md`: v2.14 behaviour, and a v2.13 mode
//! with the legacy replace-the-secret API.
//!
//! It serves the admin REST API the project uses on a free loopback port from one thread of the
//! emulator kit: `X-API-Key` auth (401/403 bodies), `/api/version/current`, `/api/users/me`,
//! Content-Type checks, error bodies of the 2.13+ shape and a token-bucket rate limit with
//! `Retry-After` (here, with the route table); OIDC clients, allowed user groups and user groups
//! (`clients.rs`); client secrets, 2.14 additive `/secrets` and 2.13 `/secret` (`secrets.rs`); API
//! keys (`api_keys.rs`); paginated lists, clamped and unordered without `sort` (`lists.rs`); and
//! access recovery: users search, one-time login codes, the login-code e-mail into an outbox, the
//! audit log, the container CLI (`access.rs`); the OIDC authorization-code flow, `/authorize` and
//! the token endpoint, for users signed in through a login code (`oidc.rs`); and PocketID's log
//! output, the request line and what handlers log, as tint text or JSON, into `docker logs` and an
//! attached Loki (`log.rs`).
//!
//! Test hooks: seed clients and groups, make API keys as the admin panel would, inject a one-shot
//! 500 on the next secret POST or a burst of 429s, refuse the revocation of a key, make paginated
//! lists hostile (endless, slow or oversized pages), read the request log (method and path only,
//! never a header value), ask whether a client secret would be accepted by the token endpoint,
//! make a client's secrets stale, put users in groups and age authorization codes.

use crate::emulator::loki::Loki;
use crate::emulator::time::now_secs;
use crate::emulator::{percent_decode, Body, Emulator, Listener, Options, Request, Response};
use crate::error::{LabError, Result};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod access;
mod api_keys;
mod clients;
mod end_session;
mod lists;
mod log;
mod oidc;
mod secrets;

pub use crate::emulator::time::{parse_rfc3339, rfc3339};
pub use crate::emulator::LoggedRequest;
pub use access::Mail;
use api_keys::{authenticate, Auth, KeyRec};
use clients::{ClientRec, GroupRec};
pub use end_session::LOGOUT_CALLBACK_WARNING;
use lists::paginate;
pub use log::{Level, LogRecord, LOKI_LABELS};

/// Which PocketID release to behave like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 2.2: the 2.12 mode before `GET /api/version/current` existed (2.3 added it): 404
    /// `{"error":"API endpoint not found"}` there, as for any unknown API route.
    V2_2,
    /// 2.12: the 2.13 routes, but error bodies with `error` only (no `code`, no `request_id`),
    /// 400 on a duplicate client id, 204 on deleting an unknown client, and the `Request` /
    /// `Request with errors: …` log records (4xx at WARN, no `request_id` or `error_code`).
    V2_12,
    /// 2.13: legacy `POST …/secret` replaces the one secret; no `/secrets` routes.
    V2_13,
    /// 2.14: additive `/secrets`, `/secret` is gone (404).
    V2_14,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2_2 => "2.2.0",
            Version::V2_12 => "2.12.0",
            Version::V2_13 => "2.13.0",
            Version::V2_14 => "2.14.0",
        }
    }
    /// 2.12 and before: the legacy error bodies, status codes and log records.
    pub fn legacy(self) -> bool {
        matches!(self, Version::V2_2 | Version::V2_12)
    }
    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "2.2" | "2.2.0" => Some(Version::V2_2),
            "2.12" | "2.12.0" => Some(Version::V2_12),
            "2.13" | "2.13.0" => Some(Version::V2_13),
            "2.14" | "2.14.0" => Some(Version::V2_14),
            _ => None,
        }
    }
}

/// The `api` rate-limit policy: a token bucket per server (all test callers share 127.0.0.1).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct PocketIdOptions {
    /// `"2.14.0"`, `"2.13.0"` or `"2.12.0"`.
    pub version: String,
    /// `None` is `DISABLE_RATE_LIMITING=true`; PocketID's default is 100 req/s, burst 300.
    pub rate_limit: Option<RateLimit>,
    /// `LOG_JSON=true`: slog JSON lines instead of tint text.
    pub log_json: bool,
    /// `LOG_LEVEL`: records below it are not written (`Warn` hides the 4xx request lines).
    pub log_level: Level,
}

impl Default for PocketIdOptions {
    fn default() -> Self {
        PocketIdOptions {
            version: "2.14.0".into(),
            rate_limit: Some(RateLimit {
                per_second: 100.0,
                burst: 300,
            }),
            log_json: false,
            log_level: Level::Info,
        }
    }
}

impl PocketIdOptions {
    pub fn version(v: &str) -> Self {
        PocketIdOptions {
            version: v.into(),
            ..Default::default()
        }
    }
}

/// Hostile answers to paginated lists (the `hostile_lists` test hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileLists {
    /// Every page is full of new items and `totalPages` is always one more than the page asked:
    /// the list never ends.
    EndlessPages,
    /// The real items, but `totalPages` claims 100 pages and every answer is delayed this long.
    SlowPages(Duration),
    /// Every page holds this many new items, whatever `pagination[limit]` asked for.
    OversizedPages(usize),
}

/// An API key made by a test "in the admin panel".
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub token: String,
}

struct User {
    id: String,
    username: String,
    is_admin: bool,
    disabled: bool,
}

struct State {
    version: Version,
    rate: Option<RateLimit>,
    tokens: f64,
    last_refill: Instant,
    users: Vec<User>,
    keys: Vec<KeyRec>,
    clients: Vec<ClientRec>,
    groups: Vec<GroupRec>,
    fail_next_secret_post: bool,
    /// The next login code answered instead of a real one (a test hook: a hostile server).
    hostile_login_token: Option<String>,
    throttle_next: u32,
    /// API key ids whose revocation answers 403 (a test hook).
    refused_revokes: Vec<String>,
    /// Hostile list answers (a test hook).
    hostile_lists: Option<HostileLists>,
    seq: u64,
    rng: u64,
    access: access::AccessState,
    /// Records logged while answering the current request (written by `answer`).
    pending_log: Vec<LogRecord>,
    /// 2.12: the error code removed from the last answer's body.
    legacy_code: Option<String>,
    oidc: oidc::OidcState,
    /// The container's log output (`log.rs`).
    logs: log::Sink,
}

/// The running emulator; stopped on drop.
pub struct PocketId {
    version: Version,
    state: Arc<Mutex<State>>,
    admin: ApiKey,
    non_admin: ApiKey,
    emulator: Emulator,
}

impl std::fmt::Debug for PocketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketId")
            .field("url", &self.url())
            .finish()
    }
}

const ADMIN_USER: &str = "u-admin";
const PLAIN_USER: &str = "u-user";
const DISABLED_ADMIN: &str = "u-disabled";

impl PocketId {
    /// Starts the emulator on a free 127.0.0.1 port with an admin user (and its first API key),
    /// a non-admin user (with a key) and a disabled admin.
    pub fn start(opts: PocketIdOptions) -> Result<PocketId> {
        let version = Version::parse(&opts.version).ok_or_else(|| {
            LabError::msg(format!(
                "PocketID emulator: unsupported version {:?} (use \"2.14.0\", \"2.13.0\", \"2.12.0\" or \"2.2.0\")",
                opts.version
            ))
        })?;
        let listener = Listener::bind(Options::new("PocketID emulator"))?;
        let mut st = State::new(version, opts.rate_limit, listener.url());
        st.logs = log::Sink::new(opts.log_json, opts.log_level);
        let admin = st.add_key(ADMIN_USER, "automation", 365 * 86400);
        let non_admin = st.add_key(PLAIN_USER, "user key", 365 * 86400);
        let state = Arc::new(Mutex::new(st));
        let emulator = {
            let state = Arc::clone(&state);
            listener.serve(move |req| answer(&mut lock(&state), req))?
        };
        Ok(PocketId {
            version,
            state,
            admin,
            non_admin,
            emulator,
        })
    }

    /// `http://127.0.0.1:<port>` (the API is under `/api`).
    pub fn url(&self) -> &str {
        self.emulator.url()
    }
    pub fn version(&self) -> Version {
        self.version
    }
    /// The token of the admin user's first API key.
    pub fn admin_key(&self) -> &str {
        &self.admin.token
    }
    pub fn admin_key_id(&self) -> &str {
        &self.admin.id
    }
    /// A key of a user without `isAdmin`.
    pub fn non_admin_key(&self) -> &str {
        &self.non_admin.token
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The next `n` requests answer 429 `rate_limited` with `Retry-After: 1`.
    pub fn throttle_next(&self, n: u32) {
        self.st().throttle_next = n;
    }
    /// Every request so far (method and path with query).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.emulator.requests()
    }
    pub fn clear_requests(&self) {
        self.emulator.clear_requests();
    }
    /// Requests with this method whose path (without query) equals `path`.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.emulator.count_requests(method, path)
    }

    /// Ships every log line from now on to `loki` too, labelled [`log::LOKI_LABELS`].
    pub fn log_to_loki(&self, loki: &Loki) {
        self.st().logs.loki = Some(loki.shipper());
    }
    /// Logs `record` now, as a subsystem of PocketID would (e.g. `ERR Failed to create access
    /// request error=invalid_client`); below the log level it is dropped.
    pub fn emit(&self, record: LogRecord) {
        let mut st = self.st();
        let version = st.version;
        st.logs.write(version, &record);
    }
    /// The log lines written so far, oldest first (text or JSON, as configured).
    pub fn log_lines(&self) -> Vec<String> {
        self.st()
            .logs
            .docker
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn new(version: Version, rate: Option<RateLimit>, url: &str) -> State {
        let seed = httpx::time::now_ns() as u64 | 1;
        let user = |id: &str, username: &str, is_admin, disabled| User {
            id: id.into(),
            username: username.into(),
            is_admin,
            disabled,
        };
        State {
            version,
            rate,
            tokens: rate.map(|r| r.burst as f64).unwrap_or(0.0),
            last_refill: Instant::now(),
            users: vec![
                user(ADMIN_USER, "admin", true, false),
                user(PLAIN_USER, "user", false, false),
                user(DISABLED_ADMIN, "disabled-admin", true, true),
            ],
            keys: Vec::new(),
            clients: Vec::new(),
            groups: Vec::new(),
            fail_next_secret_post: false,
            hostile_login_token: None,
            throttle_next: 0,
            refused_revokes: Vec::new(),
            hostile_lists: None,
            seq: 0,
            rng: seed,
            access: access::AccessState::new(url.to_string()),
            pending_log: Vec::new(),
            legacy_code: None,
            oidc: oidc::OidcState::default(),
            logs: log::Sink::default(),
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uuid(&mut self) -> String {
        let a = self.next_rand();
        let b = self.next_rand();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One request through the rate limit and the routes; every answer carries a request id, as
/// PocketID's middleware adds it (error bodies repeat it).
fn answer(st: &mut State, req: &Request) -> Response {
    let started = Instant::now();
    st.pending_log.clear();
    st.legacy_code = None;
    let mut resp = rate_limited(st).unwrap_or_else(|| route(st, req));
    let rid = st.uuid();
    if let Body::Json(Value::Object(m)) = &mut resp.body {
        if m.contains_key("error") && m.contains_key("code") {
            if st.version.legacy() {
                // ≤2.12 error bodies: `{"error": msg}` only (pocketid-api §3). The code is
                // kept for the log line, which 2.12 writes without it.
                if let Some(code) = m.remove("code") {
                    if code == "not_found" {
                        m.insert("error".into(), json!("Record not found"));
                    }
                    st.legacy_code = code.as_str().map(String::from);
                }
                m.remove("details");
            } else {
                m.insert("request_id".into(), json!(rid));
            }
        }
    }
    log::write_request(st, req, &resp, &rid, started.elapsed());
    resp.with_header("X-Request-ID", rid)
}

/// The `api` rate limit (and the `throttle_next` hook), before any route as the middleware runs.
fn rate_limited(st: &mut State) -> Option<Response> {
    let too_many = |wait: u64| {
        err(429, "rate_limited", "Too many requests").with_header("Retry-After", wait.to_string())
    };
    if st.throttle_next > 0 {
        st.throttle_next -= 1;
        return Some(too_many(1));
    }
    let rate = st.rate?;
    let now = Instant::now();
    let elapsed = now.duration_since(st.last_refill).as_secs_f64();
    st.last_refill = now;
    st.tokens = (st.tokens + elapsed * rate.per_second).min(rate.burst as f64);
    if st.tokens < 1.0 {
        let wait = ((1.0 - st.tokens) / rate.per_second).ceil().max(1.0) as u64;
        return Some(too_many(wait));
    }
    st.tokens -= 1.0;
    None
}

/// gin's NoRoute for `/api/…` and `/.well-known/…` (`frontend/frontend_included.go`, 2.9–2.14).
fn api_not_found() -> Response {
    Response::json(404, json!({"error": "API endpoint not found"}))
}

fn not_found_route() -> Response {
    Response::text(404, "404 page not found")
}

fn forbidden() -> Response {
    err(
        403,
        "forbidden",
        "You don't have permission to access this resource",
    )
}

/// The route table: public routes, access recovery, then authenticated routes (any user's, then
/// admin-only ones).
fn route(st: &mut State, req: &Request) -> Response {
    if let Some(r) = oidc::frontend(st, req) {
        return r;
    }
    let segs = req.segments();
    let Some((&"api", segs)) = segs.split_first() else {
        return not_found_route();
    };
    let m = req.method.as_str();
    if let ("GET", ["oidc", "clients", id, "meta"]) = (m, segs) {
        return clients::meta(st, id);
    }
    if let Some(r) = access::route(st, req, segs) {
        return r;
    }
    if let Some(r) = oidc::route(st, req, segs) {
        return r;
    }
    if let Some(r) = log::route(st, req, segs) {
        return r;
    }
    if !route_exists(st.version, m, segs) {
        return api_not_found();
    }
    let (user_id, is_admin) = match authenticate(st, req) {
        Ok(Auth::Admin(u)) => (u, true),
        Ok(Auth::User(u)) => (u, false),
        Err(r) => return r,
    };
    match (m, segs) {
        ("GET", ["version", "current"]) => {
            return Response::json(200, json!({"currentVersion": st.version.as_str()}))
        }
        ("GET", ["users", "me"]) => return me(st, &user_id, is_admin),
        ("GET", ["api-keys"]) => return api_keys::list_api_keys(st, req, &user_id),
        ("POST", ["api-keys"]) | ("POST", ["api-keys", _, "renew"]) => {
            return err(
                403,
                "api_key_auth_not_allowed",
                "API key authentication is not allowed for this endpoint",
            )
        }
        ("DELETE", ["api-keys", id]) => return api_keys::revoke(st, id, &user_id),
        _ => {}
    }
    if !is_admin {
        return forbidden();
    }
    let body = match json_body(req, segs) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match (m, segs) {
        ("GET", ["user-groups"]) => clients::list_groups(st, req),
        ("GET", ["oidc", "clients"]) => clients::list_clients(st, req),
        ("POST", ["oidc", "clients"]) => clients::create(st, body.unwrap_or_default()),
        ("GET", ["oidc", "clients", id]) => clients::get(st, id),
        ("PUT", ["oidc", "clients", id]) => {
            clients::update(st, &decode_client_id(id), body.unwrap_or_default())
        }
        ("DELETE", ["oidc", "clients", id]) => clients::delete(st, id),
        ("PUT", ["oidc", "clients", id, "allowed-user-groups"]) => {
            clients::set_allowed_groups(st, id, body.as_ref())
        }
        ("GET", ["oidc", "clients", id, "secrets"]) => secrets::list(st, id),
        ("POST", ["oidc", "clients", id, "secrets"]) => {
            secrets::create(st, &decode_client_id(id), body)
        }
        ("DELETE", ["oidc", "clients", id, "secrets", sid]) => secrets::delete(st, id, sid),
        ("POST", ["oidc", "clients", id, "secret"]) => {
            secrets::legacy(st, &decode_client_id(id), body)
        }
        _ => api_not_found(),
    }
}

fn me(st: &State, user_id: &str, is_admin: bool) -> Response {
    let u = st.users.iter().find(|u| u.id == user_id);
    Response::json(
        200,
        json!({"id": user_id, "username": u.map(|u| u.username.clone()), "isAdmin": is_admin,
               "disabled": false, "email": format!("{}@example.org", u.map(|u| u.username.as_str()).unwrap_or("x"))}),
    )
}

/// The JSON object body of a POST or PUT (2.13+ wants the JSON content type); a secret POST may
/// come without a body.
fn json_body(
    req: &Request,
    segs: &[&str],
) -> std::result::Result<Option<Map<String, Value>>, Response> {
    let m = req.method.as_str();
    if !matches!(m, "POST" | "PUT") {
        return Ok(None);
    }
    let optional_body = m == "POST" && matches!(segs.last(), Some(&"secrets") | Some(&"secret"));
    if optional_body && req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !req.has_json_body() {
        return Err(err(
            400,
            "invalid_request_body",
            "Content-Type must be application/json",
        ));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(Some(o)),
        _ => Err(err(400, "invalid_request_body", "Invalid request body")),
    }
}

fn err(status: u16, code: &str, msg: &str) -> Response {
    Response::json(status, json!({"error": msg, "code": code}))
}

fn validation(fields: Vec<(String, &str, String)>) -> Response {
    let first = fields
        .first()
        .map(|(f, _, m)| format!("{} {}", capitalise(f), m))
        .unwrap_or_default();
    let details: Vec<Value> = fields
        .iter()
        .map(|(f, c, m)| json!({"field": f, "code": c, "message": m}))
        .collect();
    Response::json(
        400,
        json!({"error": first, "code": "validation_failed", "details": {"fields": details}}),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The 404 of an unknown client id.
fn client_not_found() -> Response {
    Response::json(
        404,
        json!({"error": "OIDC client not found", "code": "not_found", "details": {"resource": "OIDC client"}}),
    )
}

/// A client id from a path segment: percent-decoded, or base64url-decoded after a `~`.
fn decode_client_id(raw: &str) -> String {
    let raw = percent_decode(raw);
    if let Some(b64) = raw.strip_prefix('~') {
        if let Ok(bytes) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim_end_matches('='))
        {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    raw
}

fn route_exists(v: Version, m: &str, segs: &[&str]) -> bool {
    // 2.3 added the version route.
    let version_route = v != Version::V2_2 && (m, segs) == ("GET", &["version", "current"][..]);
    version_route
        || matches!(
            (m, segs),
            ("GET", ["users", "me"])
                | ("GET", ["api-keys"])
                | ("POST", ["api-keys"])
                | ("POST", ["api-keys", _, "renew"])
                | ("DELETE", ["api-keys", _])
                | ("GET", ["user-groups"])
                | ("GET", ["oidc", "clients"])
                | ("POST", ["oidc", "clients"])
                | ("GET", ["oidc", "clients", _])
                | ("PUT", ["oidc", "clients", _])
                | ("DELETE", ["oidc", "clients", _])
                | ("PUT", ["oidc", "clients", _, "allowed-user-groups"])
        )
        || match v {
            Version::V2_14 => matches!(
                (m, segs),
                ("GET", ["oidc", "clients", _, "secrets"])
                    | ("POST", ["oidc", "clients", _, "secrets"])
                    | ("DELETE", ["oidc", "clients", _, "secrets", _])
            ),
            Version::V2_2 | Version::V2_12 | Version::V2_13 => {
                matches!((m, segs), ("POST", ["oidc", "clients", _, "secret"]))
            }
        }
}

// ---------------------------------------------------------------------------------------------
// Small utilities

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).expect("OS random source");
        for b in buf {
            // 248 = 4 * 62: reject the tail to stay unbiased.
            if b < 248 && out.len() < n {
                out.push(CHARS[(b % 62) as usize] as char);
            }
        }
    }
    out
}
