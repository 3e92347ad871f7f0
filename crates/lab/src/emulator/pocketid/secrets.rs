//! Client secrets: 2.14's additive `/secrets` (list, create with the cap of 20 and the
//! public-client refusal, delete) and 2.13's `/secret` that replaces the one secret.

use super::{
    client_not_found, decode_client_id, err, now_secs, random_alnum, sha256_hex, validation,
    PocketId, State, Version,
};
use crate::emulator::time::{parse_rfc3339, rfc3339};
use crate::emulator::Response;
use serde_json::{json, Map, Value};

pub(super) struct SecretRec {
    pub(super) id: String,
    pub(super) prefix: String,
    pub(super) hash: String,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
}

impl SecretRec {
    pub(super) fn active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
    pub(super) fn dto(&self, now: i64) -> Value {
        json!({
            "id": self.id, "prefix": self.prefix, "createdAt": rfc3339(self.created_at),
            "expiresAt": self.expires_at.map(rfc3339), "isActive": self.active(now),
        })
    }
}

impl PocketId {
    /// Secrets of a client as `GET …/secrets` lists them (2.14; empty on 2.13).
    pub fn client_secrets(&self, id: &str) -> Vec<Value> {
        let st = self.st();
        let now = now_secs();
        st.clients
            .iter()
            .find(|c| c.id() == id)
            .map(|c| c.secrets.iter().map(|s| s.dto(now)).collect())
            .unwrap_or_default()
    }
    /// Adds a secret as the admin panel would; returns `(secret_id, value)`.
    pub fn add_client_secret(&self, id: &str) -> Option<(String, String)> {
        let mut st = self.st();
        let sid = st.uuid();
        let value = random_alnum(32);
        let c = st.clients.iter_mut().find(|c| c.id() == id)?;
        c.secrets.push(SecretRec {
            id: sid.clone(),
            prefix: value[..4].to_string(),
            hash: sha256_hex(&value),
            created_at: now_secs(),
            expires_at: None,
        });
        c.legacy_hash = Some(sha256_hex(&value));
        Some((sid, value))
    }
    /// What the token endpoint would accept: any active secret (2.14) or the one secret (2.13).
    pub fn client_secret_valid(&self, client_id: &str, secret: &str) -> bool {
        self.st().secret_accepted(client_id, secret)
    }
    /// Makes every current secret of a client stale, as a regeneration elsewhere (another
    /// admin, another tool) would: all secrets are deleted, the legacy one too. `false` when
    /// the client does not exist.
    pub fn make_client_secrets_stale(&self, client_id: &str) -> bool {
        let mut st = self.st();
        let Some(c) = st.clients.iter_mut().find(|c| c.id() == client_id) else {
            return false;
        };
        c.secrets.clear();
        c.legacy_hash = None;
        true
    }
    /// The next login code (`POST …/one-time-access-token`) answers `token` instead of a code, as
    /// a hostile server (or a proxy) could: e.g. terminal escapes.
    pub fn hostile_login_token(&self, token: &str) {
        self.st().hostile_login_token = Some(token.to_string());
    }
    /// The next secret POST (`/secrets` or `/secret`) answers 500 `internal_error` and mints
    /// nothing.
    pub fn fail_next_secret_post(&self) {
        self.st().fail_next_secret_post = true;
    }
}

impl State {
    /// Whether the token endpoint's client authentication accepts `secret` for `client_id`.
    pub(super) fn secret_accepted(&self, client_id: &str, secret: &str) -> bool {
        let Some(c) = self.clients.iter().find(|c| c.id() == client_id) else {
            return false;
        };
        let h = sha256_hex(secret);
        match self.version {
            Version::V2_14 => {
                let now = now_secs();
                c.secrets.iter().any(|s| s.hash == h && s.active(now))
            }
            Version::V2_2 | Version::V2_12 | Version::V2_13 => {
                c.legacy_hash.as_deref() == Some(h.as_str())
            }
        }
    }
}

fn secret_from_body(
    body: &Option<Map<String, Value>>,
) -> std::result::Result<Option<String>, Response> {
    match body.as_ref().and_then(|b| b.get("secret")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() < 16 || !s.chars().all(|c| c.is_ascii_graphic()) {
                Err(validation(vec![(
                    "secret".into(),
                    "min",
                    "must be at least 16 printable ASCII characters".into(),
                )]))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(_) => Err(err(400, "invalid_request_body", "Invalid request body")),
    }
}

pub(super) fn create(st: &mut State, id: &str, body: Option<Map<String, Value>>) -> Response {
    let now = now_secs();
    let given = match secret_from_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    // 2.14 `CreateClientSecret`: the expiry is checked first, then the client; each refusal is
    // `apperror.ValidationMessage` (400 `validation_failed`, no details).
    let expires_at = match body.as_ref().and_then(|b| b.get("expiresAt")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) if t > now => Some(t),
            Some(_) => {
                return err(
                    400,
                    "validation_failed",
                    "The expiration date of a client secret must be in the future",
                )
            }
            None => return err(400, "invalid_request_body", "Invalid request body"),
        },
        Some(_) => return err(400, "invalid_request_body", "Invalid request body"),
    };
    let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
        return client_not_found();
    };
    if st.clients[idx].fields.get("isPublic") == Some(&Value::Bool(true)) {
        return err(
            400,
            "validation_failed",
            "Cannot create a secret for a public client",
        );
    }
    if st.clients[idx].secrets.len() >= 20 {
        return err(
            400,
            "validation_failed",
            "A client cannot have more than 20 secrets",
        );
    }
    if std::mem::take(&mut st.fail_next_secret_post) {
        return err(500, "internal_error", "Something went wrong");
    }
    let sid = st.uuid();
    let value = given.unwrap_or_else(|| random_alnum(32));
    let rec = SecretRec {
        id: sid,
        prefix: value.chars().take(4).collect(),
        hash: sha256_hex(&value),
        created_at: now,
        expires_at,
    };
    let mut dto = rec.dto(now);
    dto["secret"] = json!(value);
    st.clients[idx].secrets.push(rec);
    Response::json(201, dto)
}

pub(super) fn legacy(st: &mut State, id: &str, body: Option<Map<String, Value>>) -> Response {
    let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
        return client_not_found();
    };
    let given = match secret_from_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if st.clients[idx].fields.get("isPublic") == Some(&Value::Bool(true)) {
        return err(
            400,
            "bad_request",
            "Cannot create a secret for a public client",
        );
    }
    if std::mem::take(&mut st.fail_next_secret_post) {
        return err(500, "internal_error", "Something went wrong");
    }
    let value = given.unwrap_or_else(|| random_alnum(32));
    st.clients[idx].legacy_hash = Some(sha256_hex(&value));
    Response::json(200, json!({"secret": value}))
}

/// `GET /api/oidc/clients/{id}/secrets`.
pub(super) fn list(st: &State, raw_id: &str) -> Response {
    let id = decode_client_id(raw_id);
    let now = now_secs();
    match st.clients.iter().find(|c| c.id() == id) {
        Some(c) => Response::json(
            200,
            Value::Array(c.secrets.iter().map(|s| s.dto(now)).collect()),
        ),
        None => client_not_found(),
    }
}

/// `DELETE /api/oidc/clients/{id}/secrets/{secret id}`.
pub(super) fn delete(st: &mut State, raw_id: &str, sid: &str) -> Response {
    let id = decode_client_id(raw_id);
    let Some(c) = st.clients.iter_mut().find(|c| c.id() == id) else {
        return client_not_found();
    };
    let before = c.secrets.len();
    c.secrets.retain(|s| s.id != sid);
    if c.secrets.len() < before {
        Response::empty(204)
    } else {
        Response::json(
            404,
            json!({"error": "Client secret not found", "code": "not_found", "details": {"resource": "Client secret"}}),
        )
    }
}
