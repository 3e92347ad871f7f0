//! A login stand-in: what a user's browser and oauth2-proxy do to sign a user in to a service
//! through PocketID (authorization code with PKCE S256, `client_secret_basic` at the token
//! endpoint), so a test can tell whether a deployed client secret really works and, when it
//! does not, at which step it fails.
//!
//! [`sign_in`] gives a browser session for a user the way a locked-out user gets one: an admin
//! API key makes a one-time access code, and its exchange sets PocketID's session cookie.
//! PocketID rate-limits that exchange (1 per 10 s, burst 5).

use crate::emulator::{encode_query, parse_query};
use crate::error::{LabError, Result};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A signed-in browser session at PocketID.
#[derive(Clone)]
pub struct Session {
    cookie: String,
    pub user_id: String,
    pub username: String,
}

impl Session {
    /// The `Cookie` header value a browser of this session sends.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The token endpoint issued tokens.
    Tokens(Tokens),
    /// PocketID refused at `/authorize`.
    AuthorizeFailed(AuthorizeFailure),
    /// The token endpoint refused the code exchange.
    TokenFailed(TokenFailure),
}

/// Tokens the token endpoint issued (their values are not shown by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    pub has_id_token: bool,
    pub has_refresh_token: bool,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("has_id_token", &self.has_id_token)
            .field("has_refresh_token", &self.has_refresh_token)
            .finish_non_exhaustive()
    }
}

/// A refusal at `/authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeFailure {
    /// The status `/authorize` answered (302/303 redirects, or e.g. 403 for a disabled user).
    pub status: u16,
    /// Where PocketID sent the browser, without the query: the client's callback,
    /// `/interaction/error` or `/login`; `None` when it did not redirect.
    pub location: Option<String>,
    /// The RFC 6749 code: the callback's `error`, or PocketID's own `code` of a JSON error.
    /// `/interaction/error` carries no code, only the hint.
    pub error: Option<String>,
    /// The hint: `/interaction/error?error=<hint>`, the callback's `error_description`, or the
    /// JSON error's message.
    pub hint: Option<String>,
}

/// A refusal at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    pub status: u16,
    /// `invalid_client`, `invalid_grant`, …
    pub error: String,
    pub description: String,
}

impl LoginOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, LoginOutcome::Tokens(_))
    }
    /// `"authorize"` or `"token"` for a failure, `None` for a success.
    pub fn failed_step(&self) -> Option<&'static str> {
        match self {
            LoginOutcome::Tokens(_) => None,
            LoginOutcome::AuthorizeFailed(_) => Some("authorize"),
            LoginOutcome::TokenFailed(_) => Some("token"),
        }
    }
}

fn client(pocketid_url: &str) -> Result<httpx::Client> {
    let mut cfg = httpx::HttpConfig::new("PocketID", pocketid_url);
    cfg.retries = 0;
    httpx::Client::new(cfg).map_err(|e| LabError::msg(e.to_string()))
}

fn send(
    c: &httpx::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: httpx::Body<'_>,
) -> Result<httpx::Response> {
    c.send(method, path, headers, body, httpx::Retry::Never)
        .map_err(|e| LabError::msg(format!("login stand-in: {method} {path}: {e}")))
}

/// Signs `username` in as their browser would after a lockout: the admin API (with
/// `admin_api_key`) finds the user and makes a one-time access code, and its exchange sets the
/// session cookie.
pub fn sign_in(pocketid_url: &str, admin_api_key: &str, username: &str) -> Result<Session> {
    let c = client(pocketid_url)?;
    let key = [("X-API-Key", admin_api_key)];
    let path = format!("/api/users?{}", encode_query(&[("search", username)]));
    let r = send(&c, "GET", &path, &key, httpx::Body::None)?;
    let users: Value = r.json().unwrap_or(Value::Null);
    let user_id = users["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["username"] == username)
        .and_then(|u| u["id"].as_str())
        .ok_or_else(|| {
            LabError::msg(format!(
                "login stand-in: PocketID has no user {username:?} (HTTP {} from /api/users); add it first",
                r.status
            ))
        })?
        .to_string();
    let path = format!(
        "/api/users/{}/one-time-access-token",
        httpx::encode(&user_id)
    );
    let r = send(
        &c,
        "POST",
        &path,
        &key,
        httpx::Body::Json(json!({"ttl": "15m"})),
    )?;
    let code: Value = r.json().unwrap_or(Value::Null);
    let code = code["token"].as_str().ok_or_else(|| {
        LabError::msg(format!(
            "login stand-in: PocketID made no one-time access code for {username:?} (HTTP {}); the API key must be an admin's",
            r.status
        ))
    })?;
    let path = format!("/api/one-time-access-token/{}", httpx::encode(code));
    let r = send(&c, "POST", &path, &[], httpx::Body::None)?;
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .filter(|_| r.is_success())
        .ok_or_else(|| {
            LabError::msg(format!(
                "login stand-in: exchanging the one-time access code for {username:?} answered HTTP {} without a session cookie (429: PocketID allows 5 exchanges, then 1 per 10 s)",
                r.status
            ))
        })?;
    Ok(Session {
        cookie: cookie.to_string(),
        user_id,
        username: username.to_string(),
    })
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("OS random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The path of a `Location` (absolute or relative), and its decoded query.
fn split_location(loc: &str) -> (String, Vec<(String, String)>) {
    let (base, q) = loc.split_once('?').unwrap_or((loc, ""));
    (base.to_string(), parse_query(q))
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Logs `session`'s user in to the app `client_id` whose callback is `redirect_uri`, as
/// oauth2-proxy does with `client_secret`: `/authorize` with PKCE S256, state and nonce, then the
/// code at `/api/oidc/token`. A refusal is an outcome; `Err` is only for a transport failure or
/// an answer no PocketID would give.
pub fn oidc_login(
    pocketid_url: &str,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    session: &Session,
) -> Result<LoginOutcome> {
    let c = client(pocketid_url)?;
    let verifier = random_b64(48);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64(16);
    let nonce = random_b64(16);
    let q = encode_query(&[
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid profile email groups"),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("nonce", &nonce),
    ]);
    let cookie = [("Cookie", session.cookie.as_str())];
    let r = send(
        &c,
        "GET",
        &format!("/authorize?{q}"),
        &cookie,
        httpx::Body::None,
    )?;
    let Some(loc) = r
        .header("location")
        .filter(|_| matches!(r.status, 302 | 303))
    else {
        let body: Value = r.json().unwrap_or(Value::Null);
        return Ok(LoginOutcome::AuthorizeFailed(AuthorizeFailure {
            status: r.status,
            location: None,
            error: body["code"].as_str().map(str::to_string),
            hint: body["error"].as_str().map(str::to_string),
        }));
    };
    let (base, query) = split_location(loc);
    let callback_base = redirect_uri.split('?').next().unwrap_or(redirect_uri);
    if base == callback_base {
        if let Some(code) = get(&query, "code") {
            if get(&query, "state") != Some(state.as_str()) {
                return Err(LabError::msg(
                    "login stand-in: PocketID returned the code with another state",
                ));
            }
            return token_step(&c, client_id, client_secret, redirect_uri, code, &verifier);
        }
        return Ok(LoginOutcome::AuthorizeFailed(AuthorizeFailure {
            status: r.status,
            location: Some(base),
            error: get(&query, "error").map(str::to_string),
            hint: get(&query, "error_description").map(str::to_string),
        }));
    }
    // PocketID's own pages: the browser follows, and the hint is in the query.
    if base.starts_with('/') {
        send(&c, "GET", loc, &cookie, httpx::Body::None)?;
    }
    Ok(LoginOutcome::AuthorizeFailed(AuthorizeFailure {
        status: r.status,
        hint: get(&query, "error").map(str::to_string),
        location: Some(base),
        error: None,
    }))
}

/// The back-channel code exchange, with `client_secret_basic` (id and secret form-encoded first,
/// RFC 6749 §2.3.1).
fn token_step(
    c: &httpx::Client,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<LoginOutcome> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        httpx::encode(client_id),
        httpx::encode(client_secret)
    ));
    let auth = format!("Basic {basic}");
    let form = encode_query(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]);
    let body = httpx::Body::Raw {
        content_type: "application/x-www-form-urlencoded",
        bytes: form.into_bytes(),
    };
    let r = send(
        c,
        "POST",
        "/api/oidc/token",
        &[("Authorization", &auth)],
        body,
    )?;
    let v: Value = r.json().unwrap_or(Value::Null);
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    if r.status != 200 {
        return Ok(LoginOutcome::TokenFailed(TokenFailure {
            status: r.status,
            error: s("error"),
            description: s("error_description"),
        }));
    }
    if s("access_token").is_empty() {
        return Err(LabError::msg(
            "login stand-in: the token endpoint answered 200 without an access_token",
        ));
    }
    Ok(LoginOutcome::Tokens(Tokens {
        access_token: s("access_token"),
        token_type: s("token_type"),
        expires_in: v["expires_in"].as_u64().unwrap_or(0),
        scope: s("scope"),
        has_id_token: !s("id_token").is_empty(),
        has_refresh_token: !s("refresh_token").is_empty(),
    }))
}
