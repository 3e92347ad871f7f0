//! RP-initiated logout, `GET|POST /api/oidc/end-session` (PocketID 2.12–2.14,
//! `oidc/end_session_handler.go` and `oidc/end_session_service.go`; contract
//! `pocketid-logs-and-access.md` §2): the ID token hint is checked, then the client the user
//! authorized, then the `post_logout_redirect_uri` against the client's `logoutCallbackURLs`.
//! Any failure is never an error answer: PocketID logs `WRN Error getting logout callback URL,
//! the user has to confirm the logout manually` with the error's text and redirects 302 to
//! `<app url>/logout`. On success it revokes the tokens issued with that ID token and redirects
//! 302 to the matched callback (with `state`), or to `/logout` when the client has none.
//!
//! Left out on purpose: clearing the browser's access-token cookie, and the ID token's `type`
//! claim (the emulator's access tokens are not JWTs, so they can never pass for an ID token).

use super::oidc::{param, pattern_matches, redirect, request_params, verify_id_token, with_query};
use super::{Level, LogRecord, State, Version};
use crate::emulator::{encode_query, Request, Response};
use serde_json::Value;

/// PocketID's errors on this route, as their `Error()` text of each version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndSessionError {
    TokenInvalid,
    ClientIdNotMatching,
    MissingAuthorization,
    InvalidCallbackUrl,
}

impl EndSessionError {
    /// `common/errors.go` (2.12) and `apperror/constructors.go` (2.13+).
    fn text(self, v: Version) -> &'static str {
        let old = v.legacy();
        match self {
            EndSessionError::TokenInvalid => "Token is invalid",
            EndSessionError::ClientIdNotMatching if old => {
                "Client id in request doesn't match client id in token"
            }
            EndSessionError::ClientIdNotMatching => {
                "Client ID in request doesn't match client ID in token"
            }
            EndSessionError::MissingAuthorization if old => "missing authorization",
            EndSessionError::MissingAuthorization => "Authorization is missing",
            EndSessionError::InvalidCallbackUrl if old => {
                "invalid callback URL, it might be necessary for an admin to fix this"
            }
            EndSessionError::InvalidCallbackUrl => {
                "Callback URL is invalid and may need to be corrected by an administrator"
            }
        }
    }
}

/// The message PocketID logs for every failure of this route.
pub const LOGOUT_CALLBACK_WARNING: &str =
    "Error getting logout callback URL, the user has to confirm the logout manually";

pub(super) fn end_session(st: &mut State, req: &Request) -> Response {
    let p = request_params(req);
    let logout_page = format!("{}/logout", st.app_url());
    match callback_url(st, req, &p) {
        Ok(None) => redirect(302, &logout_page),
        Ok(Some(url)) => {
            let state = param(&p, "state");
            if state.is_empty() {
                redirect(302, &url)
            } else {
                redirect(302, &with_query(&url, &encode_query(&[("state", state)])))
            }
        }
        Err(e) => {
            let text = e.text(st.version);
            st.pending_log
                .push(LogRecord::new(Level::Warn, LOGOUT_CALLBACK_WARNING).attr("error", text));
            redirect(302, &logout_page)
        }
    }
}

/// `endSessionService.endSession`: the client's logout callback URL to send the browser to
/// (`None`: the client has none), after revoking the tokens issued with the hint.
fn callback_url(
    st: &mut State,
    req: &Request,
    p: &[(String, String)],
) -> Result<Option<String>, EndSessionError> {
    let claims = verify_id_token(param(p, "id_token_hint"), st.app_url())
        .ok_or(EndSessionError::TokenInvalid)?;
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    let client_id = claims
        .get("aud")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or(EndSessionError::TokenInvalid)?
        .to_string();
    let given_client = param(p, "client_id");
    if !given_client.is_empty() && given_client != client_id {
        return Err(EndSessionError::ClientIdNotMatching);
    }
    let subject = claim("sub").to_string();
    if subject.is_empty() || claim("jti").is_empty() {
        return Err(EndSessionError::TokenInvalid);
    }
    // optionalBrowserAuth: a signed-in browser must be the token's user.
    if st.session_user(req).is_some_and(|u| u != subject) {
        return Err(EndSessionError::TokenInvalid);
    }
    let client = st
        .clients
        .iter()
        .find(|c| c.id() == client_id)
        .filter(|_| st.oidc.has_authorized(&subject, &client_id))
        .ok_or(EndSessionError::MissingAuthorization)?;
    let registered: Vec<&str> = client
        .fields
        .get("logoutCallbackURLs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let given = param(p, "post_logout_redirect_uri");
    let url = match (registered.first(), given) {
        (None, _) => None,
        (Some(first), "") => Some(first.to_string()),
        (Some(_), g) => Some(
            registered
                .iter()
                .find(|r| pattern_matches(r, g))
                .map(|_| g.to_string())
                .ok_or(EndSessionError::InvalidCallbackUrl)?,
        ),
    };
    let jti = claim("jti").to_string();
    st.oidc.revoke_by_id_token(&subject, &client_id, &jti);
    Ok(url)
}
