//! Without `new_api_key`: the keys of `api_key`'s owner as PocketID lists them (names, times) and
//! which one is in use. PocketID shows no token, but every request updates the key's
//! `lastUsedAt`, so the key this module's own requests used is the one used last. Changes nothing.

use super::{conn, str_field, Params};
use crate::api::{time_field, PocketIdApi};
use ansible_module::{Failure, Outcome};
use serde_json::{json, Value};

/// Refuses what needs a new key, before any request.
fn check_options(p: &Params) -> Result<(), Failure> {
    if p.revoke_others
        || !p.revoke_key_ids.is_empty()
        || !p.revoke_key_names.is_empty()
        || p.new_api_key_name.is_some()
    {
        return Err(Failure::new(
            "`new_api_key_name`, `revoke_others`, `revoke_key_ids` and `revoke_key_names` need `new_api_key` (revocations are made with the new key); without it the module only reports the keys of `api_key`'s owner",
        ));
    }
    Ok(())
}

/// The listed keys as report rows (names and times only; PocketID lists no token) and the id of
/// the key used last (`None` when no key or several share the latest `lastUsedAt`). Reads remote
/// text, so it never panics on any JSON.
pub(crate) fn key_rows(listed: &[Value]) -> (Vec<Value>, Option<String>) {
    let keys: Vec<&Value> = listed.iter().filter(|k| k.is_object()).collect();
    let used: Vec<Option<(i128, String)>> =
        keys.iter().map(|k| time_field(k, "lastUsedAt")).collect();
    let used_ns = |u: &Option<(i128, String)>| u.as_ref().map(|t| t.0);
    let latest = used.iter().filter_map(used_ns).max();
    let at_latest = used
        .iter()
        .filter(|u| latest.is_some() && used_ns(u) == latest)
        .count();
    let mut in_use_id = None;
    let rows = keys
        .iter()
        .zip(&used)
        .map(|(k, u)| {
            let id = k.get("id").and_then(Value::as_str).map(httpx::safe_text);
            let in_use = match (latest, at_latest) {
                (Some(_), 1) => Some(used_ns(u) == latest),
                _ => None,
            };
            if in_use == Some(true) {
                in_use_id = id.clone();
            }
            json!({
                "id": id,
                "name": k.get("name").and_then(Value::as_str).map(httpx::safe_text),
                "created_at": time_field(k, "createdAt").map(|t| t.1),
                "expires_at": time_field(k, "expiresAt").map(|t| t.1),
                "last_used_at": u.as_ref().map(|t| t.1.clone()),
                "in_use": in_use,
            })
        })
        .collect();
    (rows, in_use_id)
}

pub(super) fn run(p: &Params) -> Result<Outcome, Failure> {
    check_options(p)?;
    let Some(key) = p.api_key.as_ref().filter(|k| !k.is_empty()) else {
        return Err(Failure::new(
            "give `new_api_key` to verify a new key (and revoke old ones), or `api_key` (or POCKETID_API_KEY) to report its owner's keys and their expiry",
        ));
    };
    let api = PocketIdApi::new(&conn(p, key))?;
    let me = api
        .me()
        .map_err(|e| Failure::new(format!("the API key (api_key) does not work: {e}")))?;
    let username = httpx::safe_text(&str_field(&me, "username"));
    let listed = api.list_api_keys()?;
    let (rows, in_use) = key_rows(&listed);
    let msg = match (&in_use, rows.len()) {
        (Some(_), n) => format!("{n} API key(s) of {username}; the key in use is among them"),
        (None, 0) => format!(
            "{username} has no listed API key: the key in use is PocketID's STATIC_API_KEY, which never expires"
        ),
        (None, n) => format!(
            "{n} API key(s) of {username}; which one is in use cannot be told (several were used last at the same time)"
        ),
    };
    Ok(Outcome::new(false)
        .msg(msg)
        .set("user_id", str_field(&me, "id"))
        .set("username", username)
        .set("api_keys", Value::Array(rows))
        .set("in_use_key_id", in_use))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_key_used_last_is_in_use_unless_tied() {
        let listed = vec![
            json!({"id": "a", "name": "old", "expiresAt": "2027-01-01T00:00:00+01:00", "lastUsedAt": null, "createdAt": "2026-01-01T00:00:00Z"}),
            json!({"id": "b", "name": "automation", "expiresAt": "2026-12-10T00:00:00Z", "lastUsedAt": "2026-12-07T08:00:01Z", "createdAt": "2026-01-01T00:00:00Z"}),
        ];
        let (rows, in_use) = key_rows(&listed);
        assert_eq!(in_use.as_deref(), Some("b"));
        assert_eq!(rows[0]["expires_at"], json!("2026-12-31T23:00:00Z"));
        assert_eq!(rows[0]["in_use"], json!(false));
        let mut tied = listed.clone();
        tied[0]["lastUsedAt"] = json!("2026-12-07T09:00:01+01:00");
        let (rows, in_use) = key_rows(&tied);
        assert_eq!(in_use, None);
        assert_eq!(rows[1]["in_use"], Value::Null);
        assert_eq!(key_rows(&[]).1, None);
    }

    proptest! {
        #[test]
        fn reading_listed_keys_never_panics(
            raw in prop::collection::vec(
                (proptest::option::of(".{0,12}"), proptest::option::of(".{0,30}"),
                 proptest::option::of("20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])"),
                 any::<i64>()),
                0..6),
        ) {
            let listed: Vec<Value> = raw
                .into_iter()
                .map(|(id, name, t, n)| json!({"id": id, "name": name, "expiresAt": t.clone(), "lastUsedAt": t.or(Some(n.to_string())), "createdAt": n}))
                .chain([json!(null), json!([1]), json!("x")])
                .collect();
            let (rows, _) = key_rows(&listed);
            prop_assert!(rows.len() <= listed.len());
        }
    }
}
