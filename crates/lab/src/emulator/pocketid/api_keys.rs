//! API keys: the admin panel's keys (test hooks), `X-API-Key` authentication, and the
//! `/api/api-keys` routes (list, revoke; creating one with an API key is refused).

use super::{
    err, forbidden, now_secs, paginate, random_alnum, sha256_hex, ApiKey, PocketId, State,
};
use super::{ADMIN_USER, DISABLED_ADMIN, PLAIN_USER};
use crate::emulator::time::rfc3339;
use crate::emulator::{Request, Response};
use serde_json::{json, Value};

pub(super) struct KeyRec {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) user_id: String,
    pub(super) hash: String,
    pub(super) expires_at: i64,
    pub(super) last_used_at: Option<i64>,
    pub(super) created_at: i64,
}

impl PocketId {
    /// A new key for the admin user, as the admin panel would make it (the token is shown once).
    pub fn add_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(ADMIN_USER, name, 365 * 86400)
    }
    /// A key for the non-admin user.
    pub fn add_user_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(PLAIN_USER, name, 365 * 86400)
    }
    /// A key of an admin whose account is disabled.
    pub fn add_disabled_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(DISABLED_ADMIN, name, 365 * 86400)
    }
    /// An admin key that expired a minute ago.
    pub fn add_expired_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(ADMIN_USER, name, -60)
    }
    /// Whether a token would authenticate (exists and not expired).
    pub fn api_key_valid(&self, token: &str) -> bool {
        let h = sha256_hex(token);
        let now = now_secs();
        self.st()
            .keys
            .iter()
            .any(|k| k.hash == h && k.expires_at > now)
    }
    /// Sets the `expiresAt` of API key `key_id` to `secs` seconds from now (negative: expired), as
    /// a key created with that expiry would have; `false` when there is no such key.
    pub fn set_api_key_expiry(&self, key_id: &str, secs: i64) -> bool {
        let now = now_secs();
        let mut st = self.st();
        let Some(k) = st.keys.iter_mut().find(|k| k.id == key_id) else {
            return false;
        };
        k.expires_at = now + secs;
        true
    }
    /// Ids of the admin user's keys.
    pub fn admin_key_ids(&self) -> Vec<String> {
        self.st()
            .keys
            .iter()
            .filter(|k| k.user_id == ADMIN_USER)
            .map(|k| k.id.clone())
            .collect()
    }

    /// Revoking the API key `key_id` answers 403 `forbidden` (and revokes nothing) from now on.
    pub fn refuse_revoke(&self, key_id: &str) {
        self.st().refused_revokes.push(key_id.to_string());
    }
}

impl State {
    pub(super) fn add_key(&mut self, user: &str, name: &str, ttl_secs: i64) -> ApiKey {
        let id = self.uuid();
        let token = random_alnum(32);
        let now = now_secs();
        self.keys.push(KeyRec {
            id: id.clone(),
            name: name.into(),
            description: None,
            user_id: user.into(),
            hash: sha256_hex(&token),
            expires_at: now + ttl_secs,
            last_used_at: None,
            created_at: now,
        });
        ApiKey { id, token }
    }
}

pub(super) enum Auth {
    Admin(String),
    User(String),
}

pub(super) fn authenticate(st: &mut State, req: &Request) -> std::result::Result<Auth, Response> {
    let unauth = || err(401, "not_signed_in", "You are not signed in");
    let Some(token) = req.header("x-api-key").filter(|t| !t.is_empty()) else {
        return Err(unauth());
    };
    let h = sha256_hex(token);
    let now = now_secs();
    let Some(key) = st
        .keys
        .iter_mut()
        .find(|k| k.hash == h && k.expires_at > now)
    else {
        return Err(unauth());
    };
    key.last_used_at = Some(now);
    let uid = key.user_id.clone();
    let Some(user) = st.users.iter().find(|u| u.id == uid) else {
        return Err(unauth());
    };
    if user.disabled {
        return Err(err(403, "user_disabled", "User account is disabled"));
    }
    Ok(if user.is_admin {
        Auth::Admin(uid)
    } else {
        Auth::User(uid)
    })
}

pub(super) fn list_api_keys(st: &mut State, req: &Request, user: &str) -> Response {
    let items: Vec<(Value, String, u64)> = st
        .keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.user_id == user)
        .map(|(i, k)| {
            (
                json!({"id": k.id, "name": k.name, "description": k.description,
                       "expiresAt": rfc3339(k.expires_at), "lastUsedAt": k.last_used_at.map(rfc3339),
                       "createdAt": rfc3339(k.created_at), "expirationEmailSent": false}),
                k.name.clone(),
                i as u64,
            )
        })
        .collect();
    paginate(st, req, items)
}

/// `DELETE /api/api-keys/{id}`: only the caller's own keys.
pub(super) fn revoke(st: &mut State, id: &str, user_id: &str) -> Response {
    if st.refused_revokes.iter().any(|r| r == id) {
        return forbidden();
    }
    let before = st.keys.len();
    st.keys.retain(|k| !(k.id == id && k.user_id == user_id));
    if st.keys.len() < before {
        Response::empty(204)
    } else {
        err(404, "api_key_not_found", "API key not found")
    }
}
