//! The OIDC authorization-code flow of the PocketID emulator (`pocketid-logs-and-access.md` §2,
//! §3; fosite's order of checks): `GET|POST /authorize` for a user signed in with PocketID's
//! session cookie, `POST /api/oidc/token` with client authentication first (`client_secret_basic`
//! or `client_secret_post`), the frontend page `/interaction/error`, and the audit entries
//! `NEW_CLIENT_AUTHORIZATION` / `CLIENT_AUTHORIZATION` written at the authorize step. Logout
//! (`/api/oidc/end-session`) is in `end_session.rs`, on the ID tokens issued here.
//!
//! Left out on purpose: the consent and re-authentication interactions (a signed-in user is taken
//! to have consented), PAR, `prompt`, `max_age`, the refresh-token grant and signed ID tokens (the
//! `id_token` is JWT-shaped but its signature is not verifiable).

use super::{now_secs, random_alnum, Level, LogRecord, PocketId, State};
use crate::emulator::{encode_query, parse_query, percent_decode, Request, Response};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// fosite's default lifetime of an authorization code.
const CODE_TTL_SECS: i64 = 15 * 60;
/// The scopes a PocketID client may ask for (`oidc/client.go: GetScopes`, API scopes aside).
const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// One authorization code and what the token step checks against it.
struct AuthCode {
    code: String,
    client_id: String,
    user_id: String,
    /// The `redirect_uri` the authorize request carried (the token request must repeat it).
    redirect_uri: Option<String>,
    /// The S256 `code_challenge`, when one was sent.
    challenge: Option<String>,
    scope: Vec<String>,
    nonce: Option<String>,
    issued_at: i64,
    used: bool,
    /// Access token issued from this code; revoked when the code is presented again.
    access_token: Option<String>,
    /// The `jti` of the ID token issued with it (end-session revokes by it).
    id_token_jti: Option<String>,
    revoked: bool,
}

/// The emulator's OIDC state, kept apart from the rest of [`State`].
#[derive(Default)]
pub(super) struct OidcState {
    /// `(user id, group id)` memberships.
    memberships: Vec<(String, String)>,
    codes: Vec<AuthCode>,
    /// `(user id, client id)` pairs that authorized once (PocketID's stored consent).
    authorized: Vec<(String, String)>,
}

impl OidcState {
    /// Whether the user authorized the client (`UserAuthorizedOidcClient`).
    pub(super) fn has_authorized(&self, user_id: &str, client_id: &str) -> bool {
        self.authorized
            .iter()
            .any(|(u, c)| u == user_id && c == client_id)
    }
    /// `RevokeSessionsByIDTokenHint`: the tokens issued with that ID token stop working.
    pub(super) fn revoke_by_id_token(&mut self, user_id: &str, client_id: &str, jti: &str) {
        for c in &mut self.codes {
            if c.user_id == user_id
                && c.client_id == client_id
                && c.id_token_jti.as_deref() == Some(jti)
            {
                c.revoked = true;
            }
        }
    }
}

impl PocketId {
    /// Adds a user to a user group (by group name), as an admin would; `false` when the user or
    /// the group does not exist.
    pub fn add_user_to_group(&self, user_id: &str, group_name: &str) -> bool {
        let mut st = self.st();
        let Some(gid) = st
            .groups
            .iter()
            .find(|g| g.name == group_name)
            .map(|g| g.id.clone())
        else {
            return false;
        };
        if !st.users.iter().any(|u| u.id == user_id) {
            return false;
        }
        let m = (user_id.to_string(), gid);
        if !st.oidc.memberships.contains(&m) {
            st.oidc.memberships.push(m);
        }
        true
    }
    /// Restricts a client to these user groups (by name), as the admin UI does: sets
    /// `isGroupRestricted` and the allowed groups; unknown names are dropped.
    pub fn restrict_client_to_groups(&self, client_id: &str, group_names: &[&str]) {
        let mut st = self.st();
        let ids: Vec<String> = st
            .groups
            .iter()
            .filter(|g| group_names.contains(&g.name.as_str()))
            .map(|g| g.id.clone())
            .collect();
        if let Some(c) = st.clients.iter_mut().find(|c| c.id() == client_id) {
            c.fields.insert("isGroupRestricted".into(), json!(true));
            c.groups = ids;
        }
    }
    /// The records PocketID logged while answering the last request (what `answer` writes
    /// before the request line).
    pub fn last_log_records(&self) -> Vec<LogRecord> {
        self.st().pending_log.clone()
    }
    /// Disables or enables a user, as an admin would.
    pub fn set_user_disabled(&self, user_id: &str, disabled: bool) {
        if let Some(u) = self.st().users.iter_mut().find(|u| u.id == user_id) {
            u.disabled = disabled;
        }
    }
    /// Ages every authorization code past fosite's 15 minutes.
    pub fn expire_authorization_codes(&self) {
        for c in &mut self.st().oidc.codes {
            c.issued_at -= CODE_TTL_SECS + 1;
        }
    }
    /// Whether an access token was issued and is not revoked (a reused code revokes it).
    pub fn access_token_active(&self, token: &str) -> bool {
        self.st()
            .oidc
            .codes
            .iter()
            .any(|c| c.access_token.as_deref() == Some(token) && !c.revoked)
    }
}

/// A fosite `RFC6749Error`: the code, its fixed description, the hint and the status.
struct OAuthError {
    error: &'static str,
    hint: String,
}

impl OAuthError {
    fn new(error: &'static str, hint: impl Into<String>) -> OAuthError {
        OAuthError {
            error,
            hint: hint.into(),
        }
    }
    fn description(&self) -> &'static str {
        match self.error {
            "invalid_client" => "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).",
            "invalid_grant" => "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
            "access_denied" => "The resource owner or authorization server denied the request.",
            "invalid_scope" => "The requested scope is invalid, unknown, or malformed.",
            "unsupported_response_type" => "The authorization server does not support obtaining a token using this method.",
            "unsupported_grant_type" => "The authorization grant type is not supported by the authorization server.",
            "invalid_state" => "The state is missing or does not have enough characters and is therefore considered too weak.",
            _ => "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
        }
    }
    fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "access_denied" => 403,
            _ => 400,
        }
    }
    /// `error_description` as fosite sends it: the description, then the hint.
    fn full_description(&self) -> String {
        if self.hint.is_empty() {
            self.description().to_string()
        } else {
            format!("{} {}", self.description(), self.hint)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authorize

/// Frontend routes (not under `/api`): `/authorize` and the pages it redirects to.
pub(super) fn frontend(st: &mut State, req: &Request) -> Option<Response> {
    match (req.method.as_str(), req.segments().as_slice()) {
        ("GET" | "POST", ["authorize"]) => Some(authorize(st, req)),
        // SvelteKit pages: the browser gets HTML; what they show is in the query.
        ("GET", ["interaction", "error"]) | ("GET", ["login"]) => Some(Response::text(
            200,
            "<!doctype html><title>Pocket ID</title>",
        )),
        _ => None,
    }
}

/// A browser request's parameters (authorize, end-session): the query, and for a POST the form
/// body too.
pub(super) fn request_params(req: &Request) -> Vec<(String, String)> {
    let mut p = req.query.clone();
    if req.method == "POST" && is_form(req) {
        p.extend(parse_query(&String::from_utf8_lossy(&req.body)));
    }
    p
}

fn is_form(req: &Request) -> bool {
    req.header("content-type").is_some_and(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

pub(super) fn param<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
    p.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// A validated authorize request, up to the point where its redirect URI is known-good.
struct AuthorizeRequest {
    client_idx: usize,
    redirect_uri: String,
    redirect_given: bool,
    state: String,
    scope: Vec<String>,
}

fn authorize(st: &mut State, req: &Request) -> Response {
    let session = st.session_user(req);
    // The session middleware runs before the handler: a disabled user stops here.
    if let Some(uid) = &session {
        if st.users.iter().any(|u| &u.id == uid && u.disabled) {
            return super::err(403, "user_disabled", "User account is disabled");
        }
    }
    let p = request_params(req);
    let ar = match new_authorize_request(st, &p) {
        Ok(ar) => ar,
        Err((e, redirect)) => {
            return authorize_error(st, "Failed to create authorize request", e, redirect)
        }
    };
    let back = Some((ar.redirect_uri.clone(), ar.state.clone()));
    let client = &st.clients[ar.client_idx];
    let pkce_required = client.fields.get("pkceEnabled") == Some(&Value::Bool(true));
    let challenge = param(&p, "code_challenge").to_string();
    if pkce_required && challenge.is_empty() {
        let e = OAuthError::new(
            "invalid_request",
            "This client requires PKCE, but the 'code_challenge' parameter is missing.",
        );
        return authorize_error(st, "Failed to authorize request", e, back);
    }
    let Some(user_id) = session else {
        let here = format!("/authorize?{}", encode_pairs(&p));
        return redirect(
            302,
            &format!("/login?{}", encode_query(&[("redirect", &here)])),
        );
    };
    if !user_allowed(st, &user_id, ar.client_idx) {
        let e = OAuthError::new(
            "access_denied",
            "You are not allowed to access this service.",
        );
        return authorize_error(st, "Failed to authorize request", e, back);
    }
    let client = &st.clients[ar.client_idx];
    let (client_id, client_name) = (client.id().to_string(), client.name().to_string());
    let pair = (user_id.clone(), client_id.clone());
    let event = if st.oidc.authorized.contains(&pair) {
        "CLIENT_AUTHORIZATION"
    } else {
        st.oidc.authorized.push(pair);
        "NEW_CLIENT_AUTHORIZATION"
    };
    let mut data = Map::new();
    data.insert("clientName".into(), json!(client_name));
    st.audit(event, &user_id, data);
    // fosite's PKCE handler runs when the response is built (plain challenges are disabled).
    let method = param(&p, "code_challenge_method");
    if !challenge.is_empty() && method != "S256" {
        let e = OAuthError::new(
            "invalid_request",
            "Clients must use code_challenge_method=S256, plain is not allowed.",
        );
        return authorize_error(st, "Failed to create authorize response", e, back);
    }
    let code = format!("ory_ac_{}", random_alnum(43));
    let nonce = Some(param(&p, "nonce").to_string()).filter(|n| !n.is_empty());
    st.oidc.codes.push(AuthCode {
        code: code.clone(),
        client_id,
        user_id,
        redirect_uri: ar.redirect_given.then(|| ar.redirect_uri.clone()),
        challenge: Some(challenge).filter(|c| !c.is_empty()),
        scope: ar.scope.clone(),
        nonce,
        issued_at: now_secs(),
        used: false,
        access_token: None,
        id_token_jti: None,
        revoked: false,
    });
    let scope = ar.scope.join(" ");
    let q = encode_query(&[("code", &code), ("scope", &scope), ("state", &ar.state)]);
    redirect(303, &with_query(&ar.redirect_uri, &q))
}

/// An error of `NewAuthorizeRequest` and, once the redirect URI is known-good, where to send it.
type AuthorizeFailure = (OAuthError, Option<(String, String)>);

/// fosite's `NewAuthorizeRequest`: client, redirect URI, response type, scope, state.
fn new_authorize_request(
    st: &State,
    p: &[(String, String)],
) -> Result<AuthorizeRequest, AuthorizeFailure> {
    let client_id = param(p, "client_id");
    let Some(client_idx) = st.clients.iter().position(|c| c.id() == client_id) else {
        let e = OAuthError::new(
            "invalid_client",
            "The requested OAuth 2.0 Client does not exist.",
        );
        return Err((e, None));
    };
    let registered: Vec<String> = st.clients[client_idx]
        .fields
        .get("callbackURLs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let given = param(p, "redirect_uri");
    let redirect_uri = match (given, registered.as_slice()) {
        ("", [only]) if !only.contains('*') => only.clone(),
        (g, reg) if !g.is_empty() && reg.iter().any(|r| pattern_matches(r, g)) => g.to_string(),
        _ => {
            let e = OAuthError::new(
                "invalid_request",
                "The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.",
            );
            return Err((e, None));
        }
    };
    let state = param(p, "state").to_string();
    let back = Some((redirect_uri.clone(), state.clone()));
    let response_type = param(p, "response_type");
    if response_type != "code" {
        let e = OAuthError::new(
            "unsupported_response_type",
            format!("The client is not allowed to request response_type '{response_type}'."),
        );
        return Err((e, back));
    }
    let scope: Vec<String> = param(p, "scope")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = scope.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        let e = OAuthError::new(
            "invalid_scope",
            format!("The OAuth 2.0 Client is not allowed to request scope '{bad}'."),
        );
        return Err((e, back));
    }
    if state.len() < 8 {
        let e = OAuthError::new(
            "invalid_state",
            "Request parameter 'state' must be at least be 8 characters long to ensure sufficient entropy.",
        );
        return Err((e, back));
    }
    Ok(AuthorizeRequest {
        client_idx,
        redirect_uri,
        redirect_given: !given.is_empty(),
        state,
        scope,
    })
}

/// A registered callback URL against the requested one: exact, or `*` matching any run of
/// characters (PocketID's URL patterns, simplified).
pub(super) fn pattern_matches(pattern: &str, url: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == url;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !url.starts_with(first) || !url[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &url[first.len()..url.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `IsUserGroupAllowedToAuthorize`: an unrestricted client admits everyone; a restricted one
/// admits members of one of its groups (none when it has no group).
fn user_allowed(st: &State, user_id: &str, client_idx: usize) -> bool {
    let c = &st.clients[client_idx];
    if c.fields.get("isGroupRestricted") != Some(&Value::Bool(true)) {
        return true;
    }
    st.oidc
        .memberships
        .iter()
        .any(|(u, g)| u == user_id && c.groups.contains(g))
}

/// What PocketID logs and where the browser goes after an authorize error: the callback (303)
/// when the redirect URI is known-good, else (and for every `access_denied`) 302
/// `/interaction/error?error=<hint>`.
fn authorize_error(
    st: &mut State,
    msg: &str,
    e: OAuthError,
    back: Option<(String, String)>,
) -> Response {
    // Logged with `err.Error()`: the RFC 6749 name only; the hint is in the DEBUG details.
    st.pending_log
        .push(LogRecord::new(Level::Error, msg).attr("error", e.error));
    st.pending_log.push(
        LogRecord::new(Level::Debug, "Fosite authorize error details")
            .attr("error", e.error)
            .attr("description", e.description())
            .attr("hint", e.hint.as_str())
            .attr("debug", "")
            .attr("status_code", e.status())
            .attr("cause", Value::Null),
    );
    match back {
        Some((uri, state)) if e.error != "access_denied" => {
            let desc = e.full_description();
            let mut pairs = vec![("error", e.error), ("error_description", desc.as_str())];
            if !state.is_empty() {
                pairs.push(("state", state.as_str()));
            }
            redirect(303, &with_query(&uri, &encode_query(&pairs)))
        }
        _ => {
            let shown = if e.hint.is_empty() {
                e.description().to_string()
            } else {
                e.hint.clone()
            };
            redirect(
                302,
                &format!("/interaction/error?{}", encode_query(&[("error", &shown)])),
            )
        }
    }
}

pub(super) fn redirect(status: u16, location: &str) -> Response {
    Response::empty(status).with_header("Location", location)
}

pub(super) fn with_query(uri: &str, q: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

fn encode_pairs(p: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    encode_query(&pairs)
}

// ---------------------------------------------------------------------------------------------
// Token

/// `/api` routes of this part (`segs` without the leading `api`); `None` for any other route.
pub(super) fn route(st: &mut State, req: &Request, segs: &[&str]) -> Option<Response> {
    match (req.method.as_str(), segs) {
        ("GET" | "POST", ["oidc", "end-session"]) => Some(super::end_session::end_session(st, req)),
        ("POST", ["oidc", "token"]) => Some(match token(st, req) {
            Ok(r) => r,
            Err(e) => token_error(st, e),
        }),
        _ => None,
    }
}

/// The frames tint prints after a token error: fosite's error wrapped by ory/x
/// `errorsx.WithStack`, written with `%+v` (contract pocketid-logs-and-access §1.4, §2).
const TOKEN_ERROR_STACK: &str = "\ngithub.com/ory/x/errorsx.WithStack\n\tgithub.com/ory/x@v0.0.729/errorsx/errors.go:43\ngithub.com/ory/fosite.(*Fosite).NewAccessRequest\n\tgithub.com/pocket-id/fosite@v1.3.0/access_request_handler.go:92\ngithub.com/pocket-id/pocket-id/backend/internal/oidc.(*tokenHandler).token\n\t/app/backend/internal/oidc/token_handler.go:41";

/// The token endpoint's failure: PocketID logs the error value, which text mode shows as the
/// RFC 6749 name followed by a stack trace and JSON mode as the bare name (its `Error()`).
fn token_error(st: &mut State, e: OAuthError) -> Response {
    let desc = e.full_description();
    let logged = if st.logs.json {
        e.error.to_string()
    } else {
        format!("{}{TOKEN_ERROR_STACK}", e.error)
    };
    st.pending_log.push(
        LogRecord::new(Level::Error, "Failed to create access request").attr("error", logged),
    );
    Response::json(
        e.status(),
        json!({"error": e.error, "error_description": desc}),
    )
    .with_header("Cache-Control", "no-store")
}

/// The client's credentials: HTTP Basic (each part form-decoded, RFC 6749 §2.3.1) or the form's
/// `client_id` / `client_secret`.
fn client_credentials(
    req: &Request,
    form: &[(String, String)],
) -> Result<(String, String), OAuthError> {
    if let Some(b64) = req.authorization(&["Basic"]) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            return Ok((percent_decode(id), percent_decode(secret)));
        }
    }
    let id = param(form, "client_id");
    if id.is_empty() {
        return Err(OAuthError::new(
            "invalid_request",
            "Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body.",
        ));
    }
    Ok((id.to_string(), param(form, "client_secret").to_string()))
}

fn token(st: &mut State, req: &Request) -> Result<Response, OAuthError> {
    let form = if is_form(req) {
        parse_query(&String::from_utf8_lossy(&req.body))
    } else {
        Vec::new()
    };
    let grant_type = param(&form, "grant_type");
    if grant_type.is_empty() {
        return Err(OAuthError::new(
            "invalid_request",
            "Request parameter 'grant_type' is missing",
        ));
    }
    // Client authentication comes before anything about the grant.
    let (client_id, secret) = client_credentials(req, &form)?;
    let Some(client) = st.clients.iter().find(|c| c.id() == client_id) else {
        return Err(OAuthError::new("invalid_client", ""));
    };
    let public = client.fields.get("isPublic") == Some(&Value::Bool(true));
    if !public && !st.secret_accepted(&client_id, &secret) {
        return Err(OAuthError::new("invalid_client", ""));
    }
    if grant_type != "authorization_code" {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("The emulator does not implement grant_type '{grant_type}'."),
        ));
    }
    let idx = check_code(st, &client_id, &form)?;
    check_user_access(st, idx)?;
    Ok(issue_tokens(st, idx))
}

/// fosite's authorization-code handler, then its PKCE handler; returns the code's index.
fn check_code(
    st: &mut State,
    client_id: &str,
    form: &[(String, String)],
) -> Result<usize, OAuthError> {
    let grant = |hint: &str| OAuthError::new("invalid_grant", hint);
    let code = param(form, "code");
    let Some(idx) = st.oidc.codes.iter().position(|c| c.code == code) else {
        return Err(grant(""));
    };
    let c = &mut st.oidc.codes[idx];
    if c.used {
        // fosite also revokes what was issued from a replayed code.
        c.revoked = true;
        return Err(grant("The authorization code has already been used."));
    }
    if now_secs() - c.issued_at > CODE_TTL_SECS {
        return Err(grant(""));
    }
    if c.client_id != client_id {
        return Err(grant(
            "The OAuth 2.0 Client ID from this request does not match the one from the authorize request.",
        ));
    }
    if let Some(r) = &c.redirect_uri {
        if param(form, "redirect_uri") != r {
            return Err(grant(
                "The \"redirect_uri\" from this request does not match the one from the authorize request.",
            ));
        }
    }
    if let Some(challenge) = &c.challenge {
        let verifier = param(form, "code_verifier");
        if verifier.len() < 43 {
            return Err(grant(
                "The PKCE code verifier must be at least 43 characters.",
            ));
        }
        if verifier.len() > 128 {
            return Err(grant(
                "The PKCE code verifier can not be longer than 128 characters.",
            ));
        }
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return Err(grant(
                "The PKCE code challenge did not match the code verifier.",
            ));
        }
    }
    Ok(idx)
}

/// `ValidateUserAccess`: the user must still exist, be enabled and be allowed by the client.
fn check_user_access(st: &mut State, idx: usize) -> Result<(), OAuthError> {
    let code = &st.oidc.codes[idx];
    let user = st.users.iter().find(|u| u.id == code.user_id);
    let e = match user {
        None => OAuthError::new("invalid_grant", "The user account no longer exists."),
        Some(u) if u.disabled => OAuthError::new("invalid_grant", "The user account is disabled."),
        Some(_) => {
            let client_idx = st.clients.iter().position(|c| c.id() == code.client_id);
            match client_idx {
                Some(ci) if user_allowed(st, &code.user_id, ci) => return Ok(()),
                _ => OAuthError::new(
                    "access_denied",
                    "You are not allowed to access this service.",
                ),
            }
        }
    };
    st.pending_log.push(
        LogRecord::new(
            Level::Warn,
            "Rejected token request: user no longer allowed to access client",
        )
        .attr("error", e.error),
    );
    Err(e)
}

/// Marks the code used and answers fosite's access response.
fn issue_tokens(st: &mut State, idx: usize) -> Response {
    let url = st.app_url().to_string();
    let access_token = format!("ory_at_{}", random_alnum(43));
    let jti = random_alnum(32);
    let c = &mut st.oidc.codes[idx];
    c.used = true;
    c.access_token = Some(access_token.clone());
    c.id_token_jti = Some(jti.clone());
    let (client_id, user_id, scope, nonce) = (
        c.client_id.clone(),
        c.user_id.clone(),
        c.scope.clone(),
        c.nonce.clone(),
    );
    let minutes = st
        .clients
        .iter()
        .find(|c| c.id() == client_id)
        .and_then(|c| c.fields.get("accessTokenDurationMinutes"))
        .and_then(Value::as_i64)
        .unwrap_or(60);
    let now = now_secs();
    let claims = json!({"iss": url, "sub": user_id, "aud": [client_id], "iat": now,
                        "exp": now + minutes * 60, "nonce": nonce, "jti": jti});
    let mut body = json!({
        "access_token": access_token,
        "expires_in": minutes * 60 - 1,
        "id_token": id_token(&claims),
        "scope": scope.join(" "),
        "token_type": "bearer",
    });
    if scope.iter().any(|s| s == "offline_access") {
        body["refresh_token"] = json!(format!("ory_rt_{}", random_alnum(43)));
    }
    Response::json(200, body)
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

/// A JWT-shaped ID token; its "signature" is a digest, not verifiable with any key.
fn id_token(claims: &Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let head = b64(br#"{"alg":"RS256","kid":"lab","typ":"JWT"}"#);
    let body = b64(claims.to_string().as_bytes());
    format!("{head}.{body}.{}", id_token_digest(&head, &body))
}

fn id_token_digest(head: &str, body: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(format!("{head}.{body}").as_bytes()))
}

/// The claims of an ID token this emulator issued, with issuer `iss` (an expired one is still
/// accepted, as RP-initiated logout requires); `None` for anything else.
pub(super) fn verify_id_token(token: &str, iss: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (head, body, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || id_token_digest(head, body) != sig {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    (claims.get("iss").and_then(Value::as_str) == Some(iss)).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::{id_token, pattern_matches, verify_id_token};
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// An `id_token_hint` is any text a browser sends: never a panic, and only a token
        /// this emulator issued is accepted.
        #[test]
        fn an_id_token_hint_never_panics(s in "[A-Za-z0-9_.=-]{0,80}|\\PC{0,80}") {
            prop_assert!(verify_id_token(&s, "http://127.0.0.1:1").is_none());
        }
    }

    #[test]
    fn issued_id_tokens_verify_with_their_issuer_only() {
        let t = id_token(&json!({"iss": "http://127.0.0.1:1", "sub": "u"}));
        assert!(verify_id_token(&t, "http://127.0.0.1:1").is_some());
        assert!(verify_id_token(&t, "http://127.0.0.1:2").is_none());
        assert!(verify_id_token(&format!("{t}x"), "http://127.0.0.1:1").is_none());
    }

    #[test]
    fn callback_patterns() {
        assert!(pattern_matches(
            "https://a.example.org/cb",
            "https://a.example.org/cb"
        ));
        assert!(!pattern_matches(
            "https://a.example.org/cb",
            "https://a.example.org/cb/"
        ));
        assert!(pattern_matches(
            "https://*.example.org/cb",
            "https://b.example.org/cb"
        ));
        assert!(!pattern_matches(
            "https://*.example.org/cb",
            "https://b.example.com/cb"
        ));
        assert!(pattern_matches("*", "https://anything.example.org/"));
    }
}
