//! What is left of the credential a run logged in with, for the status report: an AppRole
//! secret_id's creation, expiry and remaining uses (`auth/<mount>/role/<role>/secret-id/lookup`), or
//! a token's (`auth/token/lookup-self`). When it expires, every workflow that logs in with it stops.
//! Names and times only: never the credential, nor its accessor (which can destroy it).

use crate::conn::{AuthMethod, ConnParams};
use crate::kv::Kv;
use httpx::time::{format_rfc3339_ns, parse_rfc3339_ns};
use serde_json::{json, Map, Value};

/// `auth_info`: always an object with `method`, `credential` (what it is, in words) and `known`;
/// when known, `created_at`, `expires_at` (null: it does not expire) and, where they apply,
/// `uses_left` (null: unlimited), `ttl_seconds`, `renewable`; when not, `reason`. A lookup that
/// fails is not the read's failure: it is `known: false` plus the returned warning.
pub fn auth_info(conn: &ConnParams, kv: &Kv) -> (Value, Option<String>) {
    let mount = conn.login_mount();
    let (mut info, looked_up) = match conn.auth_method {
        AuthMethod::Token => (
            json!({"method": "token", "credential": "Vault token"}),
            token_lookup(kv),
        ),
        AuthMethod::Userpass => (
            json!({"method": "userpass", "mount": mount,
                   "credential": format!("userpass password of {}", conn.username.as_deref().unwrap_or("?"))}),
            // Vault's userpass passwords have no expiry; each login's token does, but it lives
            // for this run only.
            Ok(json!({"created_at": null, "expires_at": null})),
        ),
        AuthMethod::Approle => {
            let role = kv.role_name().unwrap_or_default().to_string();
            (
                json!({"method": "approle", "mount": mount, "role_name": role,
                       "credential": format!("AppRole secret_id of role {role}")}),
                secret_id_lookup(conn, kv, mount, &role),
            )
        }
    };
    let obj = info.as_object_mut().expect("a JSON object literal");
    match looked_up {
        Ok(found) => {
            obj.insert("known".into(), true.into());
            obj.extend(found.as_object().cloned().unwrap_or_default());
            (info, None)
        }
        Err(reason) => {
            let warning = format!(
                "the expiry of the {} is unknown: {reason}",
                obj["credential"].as_str().unwrap_or("credential")
            );
            obj.insert("known".into(), false.into());
            obj.insert("reason".into(), reason.into());
            (info, Some(warning))
        }
    }
}

/// The token's own lookup (the `default` policy allows it).
fn token_lookup(kv: &Kv) -> Result<Value, String> {
    let api = "auth/token/lookup-self";
    let found = kv
        .lookup_json("GET", api, None, "token lookup", "read")
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("`{api}` answered without data"))?;
    let d = &found["data"];
    let created = d["creation_time"]
        .as_i64()
        .map(|s| s as i128 * 1_000_000_000);
    Ok(json!({
        "created_at": created.map(|ns| format_rfc3339_ns(ns, false)),
        "expires_at": d["expire_time"].as_str().and_then(utc),
        "ttl_seconds": d["ttl"].as_i64(),
        "renewable": d["renewable"].as_bool(),
    }))
}

/// The secret_id's lookup on its role (a POST, so the policy needs `update` on the path).
fn secret_id_lookup(conn: &ConnParams, kv: &Kv, mount: &str, role: &str) -> Result<Value, String> {
    if role.is_empty() {
        return Err("the AppRole login answer named no role (auth.metadata.role_name)".into());
    }
    let Some(secret_id) = conn.secret_id.as_ref() else {
        return Err("no secret_id was given".into());
    };
    let api = format!(
        "auth/{}/role/{}/secret-id/lookup",
        mount.trim_matches('/'),
        httpx::encode(role)
    );
    let body = json!({"secret_id": secret_id.expose()});
    let found = kv
        .lookup_json("POST", &api, Some(body), "secret_id lookup", "update")
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("Vault does not know the secret_id on `{api}` (it answered without data): it was destroyed or expired after the login"))?;
    Ok(secret_id_fields(&found["data"]))
}

/// The fields of a secret-id lookup's `data`. Vault writes `expiration_time` as Go's zero time
/// (`0001-01-01T00:00:00Z`) and `secret_id_ttl` 0 for a secret_id without a TTL, and
/// `secret_id_num_uses` 0 for unlimited uses (it counts down with each login).
pub fn secret_id_fields(d: &Value) -> Value {
    let ttl = d["secret_id_ttl"].as_i64().unwrap_or(0);
    let expires = d["expiration_time"]
        .as_str()
        .filter(|_| ttl > 0)
        .and_then(utc);
    let uses = d["secret_id_num_uses"].as_i64().filter(|n| *n > 0);
    let mut out = Map::new();
    out.insert(
        "created_at".into(),
        d["creation_time"].as_str().and_then(utc).into(),
    );
    out.insert("expires_at".into(), expires.into());
    out.insert("ttl_seconds".into(), ttl.into());
    out.insert("uses_left".into(), uses.into());
    Value::Object(out)
}

/// A Vault timestamp (RFC 3339, any offset) as RFC 3339 UTC; `None` when it is not one or is
/// before the epoch (Go's zero time).
fn utc(raw: &str) -> Option<String> {
    parse_rfc3339_ns(raw)
        .filter(|ns| *ns > 0)
        .map(|ns| format_rfc3339_ns(ns, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reading_any_lookup_answer_never_panics(
            created in ".{0,40}", expires in ".{0,40}", ttl in any::<i64>(), uses in any::<i64>()
        ) {
            let d = json!({"creation_time": created, "expiration_time": expires,
                           "secret_id_ttl": ttl, "secret_id_num_uses": uses});
            let f = secret_id_fields(&d);
            prop_assert!(f["uses_left"].is_null() || f["uses_left"].as_i64() > Some(0));
        }
    }

    #[test]
    fn a_secret_id_without_ttl_or_use_limit_does_not_expire() {
        let d = json!({"creation_time": "2026-12-07T11:20:05.486014737+01:00",
                       "expiration_time": "0001-01-01T00:00:00Z",
                       "secret_id_ttl": 0, "secret_id_num_uses": 0});
        let f = secret_id_fields(&d);
        assert_eq!(f["created_at"], "2026-12-07T10:20:05.486014737Z");
        assert_eq!(f["expires_at"], Value::Null);
        assert_eq!(f["uses_left"], Value::Null);
    }

    #[test]
    fn a_secret_id_with_ttl_and_uses_reports_both() {
        let d = json!({"creation_time": "2026-12-07T11:20:05Z",
                       "expiration_time": "2026-12-10T11:20:05Z",
                       "secret_id_ttl": 259200, "secret_id_num_uses": 4});
        let f = secret_id_fields(&d);
        assert_eq!(f["expires_at"], "2026-12-10T11:20:05Z");
        assert_eq!(f["ttl_seconds"], 259200);
        assert_eq!(f["uses_left"], 4);
    }
}
