//! `state: info`: the client's secrets as PocketID lists them (id, prefix, created, expires,
//! active) and which one is `client_secret` (e.g. Vault's), found by the 4-character prefix the
//! rotation's orphan clean-up compares. Changes nothing; on PocketID before 2.14 a client's one
//! secret is invisible, and the result says so.

use super::plan::{may_be, Match};
use super::verify::ignored_fields;
use super::{connect, find_client, id_of, Params, SecretPolicy};
use crate::api::{time_field, ServerVersion};
use ansible_module::{Context, Failure, Outcome};
use serde_json::{json, Value};

/// What PocketID before 2.14 cannot tell.
const LEGACY_NOTE: &str = "keeps one client secret per client and lists nothing about it: its creation and expiry times, whether it expires and whether it is the one given cannot be known (only whether PocketID accepts a given secret: `secret: verify`)";

/// Refuses what cannot go with an info, before any request.
fn check_options(p: &Params) -> Result<(), Failure> {
    if matches!(p.secret, SecretPolicy::Rotate | SecretPolicy::Verify)
        || p.retire_secrets
        || p.keep_secret.is_some()
        || p.secret_id.is_some()
    {
        return Err(Failure::new(
            "`state: info` changes and checks nothing, so it cannot be combined with `secret: rotate`, `secret: verify`, `retire_secrets`, `keep_secret` or `secret_id`; give `client_secret` to find which listed secret it is",
        ));
    }
    Ok(())
}

/// The listed secrets as report rows, and the verdict on `given`: never a value, the prefix and
/// times only. Reads remote text, so it never panics on any JSON.
pub(crate) fn secret_rows(
    listed: &[Value],
    given: Option<&str>,
    now_ns: i128,
) -> (Vec<Value>, Value) {
    let mut rows = Vec::new();
    let mut candidates: Vec<(Match, Option<String>)> = Vec::new();
    for s in listed.iter().filter(|s| s.is_object()) {
        let text = |k: &str| s.get(k).and_then(Value::as_str).map(httpx::safe_text);
        let (expires_ns, expires_at) = time_field(s, "expiresAt").unzip();
        let expired = expires_ns.is_some_and(|e| e <= now_ns);
        let active = s.get("isActive").and_then(Value::as_bool).unwrap_or(true) && !expired;
        let matched = given.map(|g| may_be(g, s));
        if let Some(m) = matched.filter(|m| *m != Match::No) {
            candidates.push((m, text("id")));
        }
        rows.push(json!({
            "id": text("id"),
            "prefix": text("prefix"),
            "created_at": time_field(s, "createdAt").map(|t| t.1),
            "expires_at": expires_at,
            "active": active,
            "matches_client_secret": matched.map(|m| match m {
                Match::Yes => "yes",
                Match::Maybe => "maybe",
                Match::No => "no",
            }),
        }));
    }
    let held = match (given, candidates.as_slice()) {
        (None, _) => Value::Null,
        (Some(_), []) => json!("no"),
        (Some(_), [(Match::Yes, _)]) => json!("yes"),
        (Some(_), [_]) => json!("maybe"),
        (Some(_), _) => json!("ambiguous"),
    };
    (rows, held)
}

pub(super) fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    check_options(&p)?;
    let ignored = ignored_fields(&p);
    if !ignored.is_empty() {
        ctx.warn(format!(
            "state: info changes nothing, so these options were not applied: {}",
            ignored.join(", ")
        ));
    }
    let (api, version) = connect(&p)?;
    let multi = version.is_some_and(ServerVersion::has_multiple_secrets);
    let base = |o: Outcome| {
        o.set("server_version", version.map(|v| v.to_string()))
            .set("secret_api", if multi { "secrets" } else { "legacy" })
            .set("secrets_known", multi)
    };
    let Some(client) = find_client(&api, &p)? else {
        let label = p.client_id.clone().or(p.name.clone()).unwrap_or_default();
        return Ok(base(Outcome::new(false))
            .msg(format!("client {label} does not exist in PocketID"))
            .set("client_id", p.client_id.clone())
            .set("client_exists", false)
            .set("secrets", json!([]))
            .set("active_secrets", 0)
            .set("client_secret_held", Value::Null));
    };
    let id = id_of(&client).unwrap_or_default();
    if !multi {
        let v = version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "< 2.3".into());
        return Ok(base(Outcome::new(false))
            .msg(format!("client {id}: PocketID {v} {LEGACY_NOTE}"))
            .set("client_id", id)
            .set("client_exists", true)
            .set("secrets", json!([]))
            .set("active_secrets", Value::Null)
            .set("client_secret_held", Value::Null));
    }
    let listed = api.list_secrets(&id)?;
    let given = p.client_secret.as_ref().map(|s| s.expose());
    let (rows, held) = secret_rows(&listed, given, httpx::time::now_ns());
    let active = rows.iter().filter(|r| r["active"] == json!(true)).count();
    let msg = format!(
        "client {id}: {} secret(s), {active} active{}",
        rows.len(),
        match held.as_str() {
            Some(h) => format!("; the given secret is among them: {h}"),
            None => String::new(),
        }
    );
    Ok(base(Outcome::new(false))
        .msg(msg)
        .set("client_id", id)
        .set("client_exists", true)
        .set("secrets", Value::Array(rows))
        .set("active_secrets", active)
        .set("client_secret_held", held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i128 = 1_796_000_000 * 1_000_000_000;

    #[test]
    fn rows_say_which_secret_is_the_given_one_and_normalise_times() {
        let listed = vec![
            json!({"id": "a", "prefix": "AbCd", "createdAt": "2026-12-01T10:00:00+01:00", "expiresAt": null, "isActive": true}),
            json!({"id": "b", "prefix": "zzzz", "createdAt": "2026-12-02T00:00:00Z", "expiresAt": "2020-01-01T00:00:00Z", "isActive": true}),
        ];
        let (rows, held) = secret_rows(&listed, Some("AbCdrest"), NOW);
        assert_eq!(held, json!("yes"));
        assert_eq!(rows[0]["created_at"], json!("2026-12-01T09:00:00Z"));
        assert_eq!(rows[0]["matches_client_secret"], json!("yes"));
        assert_eq!(rows[1]["active"], json!(false), "expired");
        assert_eq!(rows[1]["matches_client_secret"], json!("no"));
        let (_, held) = secret_rows(&listed, None, NOW);
        assert_eq!(held, Value::Null);
        let (_, held) = secret_rows(&listed, Some("none"), NOW);
        assert_eq!(held, json!("no"));
        let migrated = vec![json!({"id": "m", "prefix": ""}), listed[0].clone()];
        assert_eq!(
            secret_rows(&migrated, Some("AbCdrest"), NOW).1,
            json!("ambiguous")
        );
        assert_eq!(
            secret_rows(&migrated[..1], Some("AbCdrest"), NOW).1,
            json!("maybe")
        );
    }

    #[test]
    fn expiry_is_read_once_as_utc_and_unreadable_times_are_null() {
        let listed = vec![
            json!({"id": "a", "prefix": "AbCd", "expiresAt": "2020-01-01T01:00:00.500+01:00"}),
            json!({"id": "b", "prefix": "AbCd", "expiresAt": "next week", "createdAt": 7}),
            json!({"id": "c", "prefix": "AbCd", "expiresAt": "2099-01-01T00:00:00Z"}),
        ];
        let (rows, _) = secret_rows(&listed, None, NOW);
        assert_eq!(rows[0]["expires_at"], json!("2020-01-01T00:00:00.5Z"));
        assert_eq!(rows[0]["active"], json!(false));
        assert_eq!(rows[1]["expires_at"], Value::Null);
        assert_eq!(rows[1]["created_at"], Value::Null);
        assert_eq!(
            rows[1]["active"],
            json!(true),
            "an unreadable expiry expires nothing"
        );
        assert_eq!(rows[2]["active"], json!(true));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,40}".prop_map(Value::String),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("id".to_string()),
                            Just("prefix".to_string()),
                            Just("createdAt".to_string()),
                            Just("expiresAt".to_string()),
                            Just("isActive".to_string()),
                            ".{0,8}"
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn reading_listed_secrets_never_panics(
            listed in prop::collection::vec(any_json(), 0..6),
            given in proptest::option::of(".{0,8}"),
        ) {
            let (rows, _) = secret_rows(&listed, given.as_deref(), NOW);
            prop_assert!(rows.len() <= listed.len());
        }
    }
}
