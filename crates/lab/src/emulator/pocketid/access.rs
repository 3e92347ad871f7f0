//! Access recovery in the PocketID emulator (`pocketid-logs-and-access.md` §4): users search, one-time
//! access codes made by an admin (or an admin's API key), their single-use exchange with an audit
//! `TOKEN_SIGN_IN` entry, the admin login-code e-mail (captured in an outbox, never sent), the
//! audit log, and the container CLI `pocket-id one-time-access-token`.

use super::api_keys::{authenticate, Auth};
use super::{err, forbidden, now_secs, paginate, validation, State, User};
use crate::emulator::time::rfc3339;
use crate::emulator::{percent_decode, Request, Response};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Instant;

/// PocketID's unambiguous alphabet for login codes (no i, l, o, I, L, O).
const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ0123456789";
const DEFAULT_TTL_SECS: f64 = 15.0 * 60.0;
const MAX_TTL_SECS: f64 = 31.0 * 86400.0;

/// One e-mail PocketID would have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The login code and the `<APP_URL>/lc/<code>` link inside the body.
    pub code: String,
    pub url: String,
}

struct CodeRec {
    code: String,
    user_id: String,
    expires_at: f64,
}

struct AuditRec {
    id: String,
    event: String,
    user_id: String,
    created_at: i64,
    seq: u64,
    /// The entry's `data` map (e.g. `clientName` of an authorization).
    data: Map<String, Value>,
}

/// The emulator's access-recovery state, kept apart from the rest of [`State`].
pub(super) struct AccessState {
    /// E-mail per user id; a missing entry means `<username>@example.org`, `None` means no e-mail.
    emails: HashMap<String, Option<String>>,
    codes: Vec<CodeRec>,
    /// The app setting `emailOneTimeAccessAsAdminEnabled` (PocketID's default: off).
    email_as_admin_enabled: bool,
    outbox: Vec<Mail>,
    audit: Vec<AuditRec>,
    /// The exchange's own limiter: 1 per 10 s, burst 5 (all callers are 127.0.0.1).
    exchange_tokens: f64,
    exchange_refill: Instant,
    app_url: String,
    /// Signed-in sessions the exchange started: cookie value → user id.
    sessions: HashMap<String, String>,
}

impl AccessState {
    /// `app_url` is the emulator's own address, PocketID's `APP_URL`.
    pub(super) fn new(app_url: String) -> Self {
        AccessState {
            emails: HashMap::new(),
            codes: Vec::new(),
            email_as_admin_enabled: false,
            outbox: Vec::new(),
            audit: Vec::new(),
            exchange_tokens: 5.0,
            exchange_refill: Instant::now(),
            app_url,
            sessions: HashMap::new(),
        }
    }
}

impl State {
    fn email_of(&self, u: &User) -> Option<String> {
        match self.access.emails.get(&u.id) {
            Some(e) => e.clone(),
            None => Some(format!("{}@example.org", u.username)),
        }
    }

    fn user_dto(&self, u: &User) -> Value {
        json!({
            "id": u.id, "username": u.username, "email": self.email_of(u),
            "firstName": u.username, "lastName": "", "displayName": u.username,
            "isAdmin": u.is_admin, "disabled": u.disabled, "locale": null,
            "customClaims": [], "userGroups": [], "ldapId": null,
        })
    }

    fn new_code(&mut self, user_id: &str, ttl_secs: f64) -> String {
        // PocketID: 6 characters for codes that expire within 15 minutes, 12 above.
        let len = if ttl_secs <= DEFAULT_TTL_SECS { 6 } else { 12 };
        let code = random_code(len);
        self.access.codes.push(CodeRec {
            code: code.clone(),
            user_id: user_id.to_string(),
            expires_at: now_f64() + ttl_secs,
        });
        code
    }

    fn login_url(&self, code: &str) -> String {
        format!("{}/lc/{code}", self.access.app_url)
    }

    /// PocketID's `APP_URL` (the emulator's own address): the issuer of its tokens.
    pub(super) fn app_url(&self) -> &str {
        &self.access.app_url
    }

    /// Appends an audit entry (PocketID records successes only).
    pub(super) fn audit(&mut self, event: &str, user_id: &str, data: Map<String, Value>) {
        self.audit_at(event, user_id, data, now_secs());
    }

    fn audit_at(&mut self, event: &str, user_id: &str, data: Map<String, Value>, created_at: i64) {
        let id = self.uuid();
        self.seq += 1;
        let seq = self.seq;
        self.access.audit.push(AuditRec {
            id,
            event: event.into(),
            user_id: user_id.into(),
            created_at,
            seq,
            data,
        });
    }

    /// The user id behind PocketID's session cookie (`access_token`, or `__Host-access_token`
    /// when APP_URL is https), if the request carries a session the exchange started.
    pub(super) fn session_user(&self, req: &Request) -> Option<String> {
        let cookies = req.header("cookie")?;
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .filter(|(k, _)| *k == "access_token" || *k == "__Host-access_token")
            .find_map(|(_, v)| self.access.sessions.get(v).cloned())
    }
}

impl super::PocketId {
    /// A user as an admin would create it; `email: None` makes a user without an e-mail address.
    /// Returns the user id.
    pub fn add_user(&self, username: &str, email: Option<&str>, disabled: bool) -> String {
        let mut st = self.st();
        let id = st.uuid();
        st.users.push(User {
            id: id.clone(),
            username: username.to_string(),
            is_admin: false,
            disabled,
        });
        st.access
            .emails
            .insert(id.clone(), email.map(str::to_string));
        id
    }
    /// The app setting "emails: one-time access as admin" (`emailOneTimeAccessAsAdminEnabled`).
    pub fn set_email_login_codes_enabled(&self, on: bool) {
        self.st().access.email_as_admin_enabled = on;
    }
    /// Every e-mail "sent" so far.
    pub fn outbox(&self) -> Vec<Mail> {
        self.st().access.outbox.clone()
    }
    /// Events of the audit log, oldest first, as `(event, userID)`.
    pub fn audit_events(&self) -> Vec<(String, String)> {
        self.st()
            .access
            .audit
            .iter()
            .map(|a| (a.event.clone(), a.user_id.clone()))
            .collect()
    }
    /// An audit entry as a sign-in flow would write it (`CLIENT_AUTHORIZATION` with
    /// `clientName`, …), `secs_ago` seconds old.
    pub fn add_audit_event(
        &self,
        event: &str,
        user_id: &str,
        data: &[(&str, &str)],
        secs_ago: i64,
    ) {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        self.st()
            .audit_at(event, user_id, data, now_secs() - secs_ago);
    }
    /// Unused, unexpired login codes.
    pub fn live_login_codes(&self) -> usize {
        let now = now_f64();
        self.st()
            .access
            .codes
            .iter()
            .filter(|c| c.expires_at > now)
            .count()
    }
    /// What `/app/pocket-id one-time-access-token <arg>` does in the container: looks the user up by
    /// username or e-mail and stores a 1 h code. `Ok(stdout)` or `Err(stderr)`, as cobra prints.
    pub fn cli_one_time_access_token(&self, arg: &str) -> Result<String, String> {
        cli_one_time_access_token(&mut self.st(), arg)
    }
}

fn cli_one_time_access_token(st: &mut State, arg: &str) -> Result<String, String> {
    let user = st
        .users
        .iter()
        .find(|u| u.username == arg || st.email_of(u).as_deref() == Some(arg))
        .map(|u| u.id.clone());
    let Some(uid) = user else {
        return Err("Error: user not found\n".into());
    };
    let code = st.new_code(&uid, 3600.0);
    Ok(format!(
        "A one-time access token valid for 1 hour has been created for \"{arg}\".\nUse the following URL to sign in once: {}\n",
        st.login_url(&code)
    ))
}

/// Routes of this part of the API (`segs` without the leading `api`); `None` for any other route.
pub(super) fn route(st: &mut State, req: &Request, segs: &[&str]) -> Option<Response> {
    let m = req.method.as_str();
    match (m, segs) {
        // Unauthenticated: the code is the credential.
        ("POST", ["one-time-access-token", code]) => return Some(exchange(st, code)),
        // The lab's stand-in for `docker exec … /app/pocket-id one-time-access-token <arg>`:
        // the pct stand-in calls it; the answer is the CLI's stdout (200) or stderr (404).
        ("POST", ["__lab", "cli", "one-time-access-token"]) => {
            let arg = String::from_utf8_lossy(&req.body).trim().to_string();
            return Some(match cli_one_time_access_token(st, &arg) {
                Ok(out) => Response::text(200, out),
                Err(e) => Response::text(404, e),
            });
        }
        ("GET", ["users"])
        | ("POST", ["users", _, "one-time-access-token"])
        | ("POST", ["users", _, "one-time-access-email"])
        | ("GET", ["audit-logs", "all"]) => {}
        _ => return None,
    }
    let auth = match authenticate(st, req) {
        Ok(a) => a,
        Err(r) => return Some(r),
    };
    if !matches!(auth, Auth::Admin(_)) {
        return Some(forbidden());
    }
    Some(match (m, segs) {
        ("GET", ["users"]) => list_users(st, req),
        ("GET", ["audit-logs", "all"]) => list_audit(st, req),
        ("POST", ["users", id, kind]) => {
            let ttl = match body_ttl(req) {
                Ok(t) => t,
                Err(r) => return Some(r),
            };
            if *kind == "one-time-access-token" {
                create_token(st, id, ttl)
            } else {
                email_as_admin(st, id, ttl)
            }
        }
        _ => return None,
    })
}

fn list_users(st: &mut State, req: &Request) -> Response {
    let search = req.q("search").unwrap_or("").to_string();
    let items: Vec<(Value, String, u64)> = st
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| {
            let email = st.email_of(u).unwrap_or_default();
            [u.username.as_str(), email.as_str(), u.username.as_str(), ""]
                .iter()
                .any(|field| like_contains(field, &search))
        })
        .map(|(i, u)| (st.user_dto(u), u.username.clone(), i as u64))
        .collect();
    paginate(st, req, items)
}

/// The values of a repeatable list filter, `filters[<key>]` or `filters[<key>][0]`, `[1]`, … (any
/// of them matches).
fn filter_values<'a>(req: &'a Request, key: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = req.q(&format!("filters[{key}]")).into_iter().collect();
    out.extend((0..).map_while(|i| req.q(&format!("filters[{key}][{i}]"))));
    out
}

fn list_audit(st: &mut State, req: &Request) -> Response {
    let events = filter_values(req, "event");
    let client_names = filter_values(req, "clientName");
    let items: Vec<(Value, String, u64)> = st
        .access
        .audit
        .iter()
        .filter(|a| events.is_empty() || events.contains(&a.event.as_str()))
        .filter(|a| {
            let name = a.data.get("clientName").and_then(Value::as_str);
            client_names.is_empty() || name.is_some_and(|n| client_names.contains(&n))
        })
        .map(|a| {
            let username = st
                .users
                .iter()
                .find(|u| u.id == a.user_id)
                .map(|u| u.username.clone())
                .unwrap_or_default();
            (
                json!({"id": a.id, "createdAt": rfc3339(a.created_at), "event": a.event,
                       "ipAddress": "127.0.0.1", "country": "Internal Network", "city": "localhost",
                       "device": "", "userID": a.user_id, "username": username,
                       "actorUsername": "", "data": a.data}),
                a.event.clone(),
                // Sorted by `createdAt` (an entry may be dated back), then as written.
                (a.created_at.max(0) as u64) << 24 | (a.seq & 0xff_ffff),
            )
        })
        .collect();
    paginate(st, req, items)
}

/// The `ttl` of a `tokenCreateDto` / `emailAsAdminDto` body, in seconds: a JSON number of seconds
/// or a Go duration string; 0 or absent is 15 minutes; otherwise more than 1 s and at most 31 days.
fn body_ttl(req: &Request) -> Result<f64, Response> {
    let bad_body = || err(400, "invalid_request_body", "Request body is invalid");
    let ct_ok = req
        .header("content-type")
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !ct_ok {
        return Err(err(
            400,
            "invalid_request_body",
            "Content-Type must be application/json",
        ));
    }
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => o,
        _ => return Err(bad_body()),
    };
    let secs = match body.get("ttl") {
        None => 0.0,
        // Go: time.Duration(float) * time.Second truncates to whole seconds.
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0).trunc(),
        Some(Value::String(s)) => parse_go_duration(s).ok_or_else(bad_body)?,
        Some(_) => return Err(bad_body()),
    };
    if secs == 0.0 {
        return Ok(DEFAULT_TTL_SECS);
    }
    if secs <= 1.0 || secs > MAX_TTL_SECS {
        return Err(validation(vec![(
            "ttl".into(),
            "ttl",
            "must be more than 1 second and at most 31 days".into(),
        )]));
    }
    Ok(secs)
}

fn create_token(st: &mut State, user_id: &str, ttl: f64) -> Response {
    if !st.users.iter().any(|u| u.id == user_id) {
        return err(404, "user_not_found", "User not found");
    }
    if let Some(hostile) = st.hostile_login_token.take() {
        return Response::json(201, json!({ "token": hostile }));
    }
    let code = st.new_code(user_id, ttl);
    Response::json(201, json!({ "token": code }))
}

fn email_as_admin(st: &mut State, user_id: &str, ttl: f64) -> Response {
    if !st.access.email_as_admin_enabled {
        return err(
            403,
            "one_time_access_disabled",
            "One-time access is disabled",
        );
    }
    let Some(user) = st.users.iter().find(|u| u.id == user_id) else {
        return err(404, "user_not_found", "User not found");
    };
    let Some(to) = st.email_of(user) else {
        return err(
            409,
            "user_email_not_set",
            "The user does not have an email address set",
        );
    };
    let name = user.username.clone();
    let code = st.new_code(user_id, ttl);
    let url = st.login_url(&code);
    let minutes = (ttl / 60.0).round() as i64;
    st.access.outbox.push(Mail {
        to,
        subject: "Login Code".into(),
        body: format!(
            "Hello {name},\nclick the link below to sign in. It expires in {minutes} minutes.\n{url}\nOr enter the code {code} at {}/lc\n",
            st.access.app_url
        ),
        code,
        url,
    });
    Response::empty(204)
}

fn exchange(st: &mut State, raw: &str) -> Response {
    let now = Instant::now();
    let a = &mut st.access;
    a.exchange_tokens =
        (a.exchange_tokens + now.duration_since(a.exchange_refill).as_secs_f64() / 10.0).min(5.0);
    a.exchange_refill = now;
    if a.exchange_tokens < 1.0 {
        let wait = ((1.0 - a.exchange_tokens) * 10.0).ceil().max(1.0) as u64;
        let mut r = err(429, "rate_limited", "Too many requests");
        r.headers.push(("Retry-After".into(), wait.to_string()));
        return r;
    }
    a.exchange_tokens -= 1.0;
    let invalid = || {
        err(
            401,
            "token_invalid_or_expired",
            "Token is invalid or expired",
        )
    };
    let code = percent_decode(raw);
    if code.len() != 6 && code.len() != 12 {
        return invalid();
    }
    // Codes avoid I and O: a user who types them meant 1 and 0.
    let code: String = code
        .chars()
        .map(|c| match c {
            'I' | 'i' => '1',
            'O' | 'o' => '0',
            c => c,
        })
        .collect();
    let t = now_f64();
    st.access.codes.retain(|c| c.expires_at > t);
    let Some(idx) = st.access.codes.iter().position(|c| c.code == code) else {
        return invalid();
    };
    let uid = st.access.codes[idx].user_id.clone();
    let Some(user) = st.users.iter().find(|u| u.id == uid) else {
        st.access.codes.remove(idx);
        return invalid();
    };
    if user.disabled {
        // PocketID restores the consumed code when the exchange fails after consuming it.
        return err(403, "user_disabled", "User account is disabled");
    }
    let dto = st.user_dto(user);
    st.access.codes.remove(idx);
    st.audit("TOKEN_SIGN_IN", &uid, Map::new());
    let session = random_code(32);
    st.access.sessions.insert(session.clone(), uid);
    let mut r = Response::json(200, dto);
    r.headers.push((
        "Set-Cookie".into(),
        format!("access_token={session}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
    ));
    r
}

/// SQL `LIKE '%term%'` as SQLite runs it: `%` any run, `_` one character, ASCII case-insensitive;
/// PocketID does not escape `%` and `_` in the term, so they stay wildcards.
pub fn like_contains(value: &str, term: &str) -> bool {
    let v: Vec<char> = value.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut p: Vec<char> = vec!['%'];
    p.extend(term.chars().map(|c| c.to_ascii_lowercase()));
    p.push('%');
    // dp[j]: p[..i] matches v[..j].
    let mut dp = vec![false; v.len() + 1];
    dp[0] = true;
    for pc in &p {
        let mut next = vec![false; v.len() + 1];
        match pc {
            '%' => {
                let mut any = false;
                for j in 0..=v.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            _ => {
                for j in 1..=v.len() {
                    next[j] = dp[j - 1] && (*pc == '_' || *pc == v[j - 1]);
                }
            }
        }
        dp = next;
    }
    dp[v.len()]
}

/// Go's `time.ParseDuration`, in seconds: `[-+]` then `<number>[.<fraction>]<unit>` repeated,
/// units ns us µs ms s m h; a bare `0` is allowed, any other number needs a unit.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * factor;
    }
    Some(if neg { -total } else { total })
}

fn random_code(n: usize) -> String {
    let len = CODE_ALPHABET.len();
    let limit = 256 - 256 % len;
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).expect("OS random source");
        for b in buf {
            if (b as usize) < limit && out.len() < n {
                out.push(CODE_ALPHABET[b as usize % len] as char);
            }
        }
    }
    out
}

fn now_f64() -> f64 {
    httpx::time::now_ns() as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_treats_percent_and_underscore_as_wildcards() {
        assert!(like_contains("alice", "LIC"));
        assert!(like_contains("alice", ""));
        assert!(like_contains("alice", "a_i"));
        assert!(like_contains("alice", "a%e"));
        assert!(!like_contains("alice", "bob"));
        assert!(!like_contains("al", "a_l"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15m"), Some(900.0));
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("-2s"), Some(-2.0));
        assert_eq!(parse_go_duration("3600"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
