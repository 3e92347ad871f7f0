//! The PocketID emulator against `contracts/pocketid-api.md`: status codes and bodies of each
//! error case, pagination, full-replace PUT, secrets in both version modes, API-key routes.

mod common;

use common::{create_app_and_public_clients, json, req};
use httpx::{Body, Client, Response, Retry};
use lab::pocketid::{PocketId, PocketIdOptions, RateLimit};
use serde_json::{json, Value};

fn start(v: &str) -> (PocketId, Client) {
    common::start_with(PocketIdOptions::version(v))
}

fn assert_err(r: &Response, status: u16, code: &str) -> Value {
    let v = json(r);
    assert_eq!(r.status, status, "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
    assert!(v["request_id"].is_string() && v["error"].is_string(), "{v}");
    assert!(r.header("x-request-id").is_some());
    v
}

#[test]
fn auth_failures() {
    let (pid, c) = start("2.14.0");
    let v = assert_err(
        &req(&c, "", "GET", "/api/oidc/clients", None),
        401,
        "not_signed_in",
    );
    assert_eq!(v["error"], json!("You are not signed in"));
    assert_err(
        &req(&c, "nope", "GET", "/api/version/current", None),
        401,
        "not_signed_in",
    );
    let expired = pid.add_expired_admin_api_key("old");
    assert_err(
        &req(&c, &expired.token, "GET", "/api/oidc/clients", None),
        401,
        "not_signed_in",
    );
    assert_err(
        &req(&c, pid.non_admin_key(), "GET", "/api/oidc/clients", None),
        403,
        "forbidden",
    );
    let disabled = pid.add_disabled_admin_api_key("d");
    assert_err(
        &req(&c, &disabled.token, "GET", "/api/oidc/clients", None),
        403,
        "user_disabled",
    );
    // Any user may read the version; API keys may not create keys.
    let r = req(&c, pid.non_admin_key(), "GET", "/api/version/current", None);
    assert_eq!(json(&r), json!({"currentVersion": "2.14.0"}));
    let r = req(
        &c,
        pid.admin_key(),
        "POST",
        "/api/api-keys",
        Some(json!({"name": "abc", "expiresAt": "2099-01-01T00:00:00Z"})),
    );
    assert_err(&r, 403, "api_key_auth_not_allowed");
}

#[test]
fn client_crud_validation_and_full_replace() {
    for v in ["2.14.0", "2.13.0"] {
        let (pid, c) = start(v);
        let k = pid.admin_key();
        let r = req(
            &c,
            k,
            "POST",
            "/api/oidc/clients",
            Some(json!({"callbackURLs": ["https://a.example.org/cb"]})),
        );
        let e = assert_err(&r, 400, "validation_failed");
        assert_eq!(e["details"]["fields"][0]["field"], json!("name"));
        assert_eq!(e["details"]["fields"][0]["code"], json!("required"));
        let r = req(
            &c,
            k,
            "POST",
            "/api/oidc/clients",
            Some(json!({"name": "A", "callbackURLs": ["javascript:alert(1)"]})),
        );
        assert_err(&r, 400, "validation_failed");
        let r = req(
            &c,
            k,
            "POST",
            "/api/oidc/clients",
            Some(json!({"name": "A", "launchURL": ""})),
        );
        assert_err(&r, 400, "validation_failed");
        let r = req(
            &c,
            k,
            "POST",
            "/api/oidc/clients",
            Some(json!({"name": "A", "id": "x"})),
        );
        assert_err(&r, 400, "validation_failed");
        // Content-Type is mandatory.
        let r = c
            .send(
                "POST",
                "/api/oidc/clients",
                &[("X-API-Key", k)],
                Body::Raw {
                    content_type: "text/plain",
                    bytes: b"{\"name\":\"A\"}".to_vec(),
                },
                Retry::Never,
            )
            .unwrap();
        assert_err(&r, 400, "invalid_request_body");

        let body = json!({"id": "app", "name": "App", "description": "d", "skipConsent": true,
                          "accessTokenDurationMinutes": 120, "isPublic": true, "callbackURLs": ["https://b.example.org/cb", "https://a.example.org/cb"]});
        let r = req(&c, k, "POST", "/api/oidc/clients", Some(body.clone()));
        assert_eq!(r.status, 201);
        let created = json(&r);
        assert_eq!(created["pkceEnabled"], json!(true), "public forces PKCE");
        assert_eq!(
            created["callbackURLs"],
            json!(["https://b.example.org/cb", "https://a.example.org/cb"]),
            "verbatim"
        );
        assert_err(
            &req(&c, k, "POST", "/api/oidc/clients", Some(body)),
            409,
            "client_id_already_exists",
        );

        // PUT is a full replace.
        let r = req(
            &c,
            k,
            "PUT",
            "/api/oidc/clients/app",
            Some(json!({"name": "App2"})),
        );
        assert_eq!(r.status, 200);
        let after = json(&r);
        assert_eq!(after["description"], json!(""));
        assert_eq!(after["skipConsent"], json!(false));
        assert_eq!(after["accessTokenDurationMinutes"], json!(60));
        assert_eq!(after["callbackURLs"], Value::Null);
        assert_eq!(after["id"], json!("app"));

        let nf = assert_err(
            &req(&c, k, "GET", "/api/oidc/clients/missing", None),
            404,
            "not_found",
        );
        assert_eq!(nf["error"], json!("OIDC client not found"));
        assert_eq!(nf["details"]["resource"], json!("OIDC client"));
        assert_err(
            &req(
                &c,
                k,
                "PUT",
                "/api/oidc/clients/missing",
                Some(json!({"name": "x"})),
            ),
            404,
            "not_found",
        );
        assert_eq!(
            req(&c, k, "DELETE", "/api/oidc/clients/app", None).status,
            204
        );
        assert_err(
            &req(&c, k, "DELETE", "/api/oidc/clients/app", None),
            404,
            "not_found",
        );
    }
}

#[test]
fn pagination_clamps_and_has_no_default_order() {
    let (pid, c) = start("2.14.0");
    pid.seed_clients(250);
    pid.seed_cimd_client("https://cimd.example.org/client.json", "CIMD app");
    let k = pid.admin_key();
    let r = json(&req(&c, k, "GET", "/api/oidc/clients", None));
    assert_eq!(r["data"].as_array().unwrap().len(), 20, "default limit 20");
    assert_eq!(r["pagination"]["totalItems"], json!(251));
    let r = json(&req(
        &c,
        k,
        "GET",
        "/api/oidc/clients?pagination%5Blimit%5D=500&sort%5Bcolumn%5D=name",
        None,
    ));
    assert_eq!(
        r["pagination"]["itemsPerPage"],
        json!(100),
        "clamped to 100"
    );
    assert_eq!(r["pagination"]["totalPages"], json!(3));
    let last = json(&req(
        &c,
        k,
        "GET",
        "/api/oidc/clients?pagination%5Blimit%5D=100&pagination%5Bpage%5D=3&sort%5Bcolumn%5D=name",
        None,
    ));
    let past = json(&req(
        &c,
        k,
        "GET",
        "/api/oidc/clients?pagination%5Blimit%5D=100&pagination%5Bpage%5D=9&sort%5Bcolumn%5D=name",
        None,
    ));
    assert_eq!(
        past["pagination"]["currentPage"],
        json!(3),
        "past the end → last page"
    );
    assert_eq!(past["data"], last["data"]);
    // Without sort the order differs between requests.
    let ids = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect::<Vec<_>>()
    };
    let a = ids(&json(&req(
        &c,
        k,
        "GET",
        "/api/oidc/clients?pagination%5Blimit%5D=100",
        None,
    )));
    let differs = (0..5).any(|_| {
        ids(&json(&req(
            &c,
            k,
            "GET",
            "/api/oidc/clients?pagination%5Blimit%5D=100",
            None,
        ))) != a
    });
    assert!(differs, "no ORDER BY without sort");
    // CIMD clients are in the list; search is a case-sensitive substring of the name.
    let r = json(&req(&c, k, "GET", "/api/oidc/clients?search=CIMD", None));
    assert_eq!(r["data"][0]["clientType"], json!("cimd"));
    let r = json(&req(
        &c,
        k,
        "GET",
        "/api/oidc/clients?search=cimd%20APP",
        None,
    ));
    assert_eq!(r["pagination"]["totalItems"], json!(0));
    assert_eq!(r["pagination"]["totalPages"], json!(1));
}

#[test]
fn groups_and_allowed_groups() {
    let (pid, c) = start("2.14.0");
    let k = pid.admin_key();
    let g = pid.seed_groups(&["admins", "family"]);
    req(
        &c,
        k,
        "POST",
        "/api/oidc/clients",
        Some(json!({"id": "app", "name": "App", "isGroupRestricted": true})),
    );
    assert_err(
        &req(
            &c,
            k,
            "PUT",
            "/api/oidc/clients/app/allowed-user-groups",
            Some(json!({})),
        ),
        400,
        "validation_failed",
    );
    let r = req(
        &c,
        k,
        "PUT",
        "/api/oidc/clients/app/allowed-user-groups",
        Some(json!({"userGroupIds": [g[0], "unknown-id"]})),
    );
    assert_eq!(r.status, 200);
    assert!(json(&r).get("allowedUserGroups").is_none());
    let client = json(&req(&c, k, "GET", "/api/oidc/clients/app", None));
    assert_eq!(
        client["allowedUserGroups"].as_array().unwrap().len(),
        1,
        "unknown ids dropped silently"
    );
    let list = json(&req(&c, k, "GET", "/api/oidc/clients?search=App", None));
    assert_eq!(list["data"][0]["allowedUserGroupsCount"], json!(1));
    assert!(list["data"][0].get("allowedUserGroups").is_none());
    // isGroupRestricted=false in a PUT deletes all groups.
    req(
        &c,
        k,
        "PUT",
        "/api/oidc/clients/app",
        Some(json!({"name": "App", "isGroupRestricted": false})),
    );
    assert!(pid.client_group_ids("app").is_empty());
    let groups = json(&req(
        &c,
        k,
        "GET",
        "/api/user-groups?sort%5Bcolumn%5D=name",
        None,
    ));
    assert_eq!(groups["data"][1]["name"], json!("family"));
}

#[test]
fn secrets_on_2_14() {
    let (pid, c) = start("2.14.0");
    let k = pid.admin_key();
    create_app_and_public_clients(&c, k);
    assert_eq!(
        json(&req(&c, k, "GET", "/api/oidc/clients/app/secrets", None)),
        json!([]),
        "new client has no secret"
    );
    let r = req(&c, k, "POST", "/api/oidc/clients/app/secrets", None);
    assert_eq!(r.status, 201);
    let s1 = json(&r);
    assert_eq!(s1["secret"].as_str().unwrap().len(), 32);
    assert_eq!(
        s1["prefix"].as_str().unwrap(),
        &s1["secret"].as_str().unwrap()[..4]
    );
    let s2 = json(&req(
        &c,
        k,
        "POST",
        "/api/oidc/clients/app/secrets",
        Some(json!({"expiresAt": "2099-01-01T00:00:00Z"})),
    ));
    assert!(
        pid.client_secret_valid("app", s1["secret"].as_str().unwrap()),
        "additive"
    );
    assert!(pid.client_secret_valid("app", s2["secret"].as_str().unwrap()));
    let list = json(&req(&c, k, "GET", "/api/oidc/clients/app/secrets", None));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0].get("secret").is_none(), "values never read back");
    assert_err(
        &req(
            &c,
            k,
            "POST",
            "/api/oidc/clients/app/secrets",
            Some(json!({"expiresAt": "2001-01-01T00:00:00Z"})),
        ),
        400,
        "validation_failed",
    );
    let r = req(&c, k, "POST", "/api/oidc/clients/pub/secrets", None);
    assert_eq!(
        json(&assert_err_status(&r, 400))["error"],
        json!("Cannot create a secret for a public client")
    );
    assert_eq!(
        req(
            &c,
            k,
            "DELETE",
            &format!(
                "/api/oidc/clients/app/secrets/{}",
                s1["id"].as_str().unwrap()
            ),
            None
        )
        .status,
        204
    );
    assert!(!pid.client_secret_valid("app", s1["secret"].as_str().unwrap()));
    let nf = assert_err(
        &req(&c, k, "DELETE", "/api/oidc/clients/app/secrets/nope", None),
        404,
        "not_found",
    );
    assert_eq!(nf["error"], json!("Client secret not found"));
    // The legacy route is gone.
    let r = req(&c, k, "POST", "/api/oidc/clients/app/secret", None);
    assert_eq!(r.status, 404);
    // Cap of 20, expired included.
    for _ in 0..19 {
        req(&c, k, "POST", "/api/oidc/clients/app/secrets", None);
    }
    let r = req(&c, k, "POST", "/api/oidc/clients/app/secrets", None);
    assert_eq!(
        json(&assert_err_status(&r, 400))["error"],
        json!("A client cannot have more than 20 secrets")
    );
    // One-shot 500.
    req(
        &c,
        k,
        "POST",
        "/api/oidc/clients",
        Some(json!({"id": "bb", "name": "B"})),
    );
    pid.fail_next_secret_post();
    assert_err(
        &req(&c, k, "POST", "/api/oidc/clients/bb/secrets", None),
        500,
        "internal_error",
    );
    assert_eq!(
        req(&c, k, "POST", "/api/oidc/clients/bb/secrets", None).status,
        201
    );
}

fn assert_err_status(r: &Response, status: u16) -> Response {
    assert_eq!(r.status, status, "{}", r.safe_text());
    r.clone()
}

#[test]
fn legacy_secret_on_2_13() {
    let (pid, c) = start("2.13.0");
    let k = pid.admin_key();
    req(
        &c,
        k,
        "POST",
        "/api/oidc/clients",
        Some(json!({"id": "app", "name": "App"})),
    );
    let s1 = json(&req(&c, k, "POST", "/api/oidc/clients/app/secret", None));
    let s2 = json(&req(&c, k, "POST", "/api/oidc/clients/app/secret", None));
    assert!(
        !pid.client_secret_valid("app", s1["secret"].as_str().unwrap()),
        "replaced"
    );
    assert!(pid.client_secret_valid("app", s2["secret"].as_str().unwrap()));
    assert_eq!(
        req(&c, k, "POST", "/api/oidc/clients/app/secrets", None).status,
        404
    );
    assert_eq!(
        json(&req(&c, k, "GET", "/api/version/current", None))["currentVersion"],
        json!("2.13.0")
    );
}

#[test]
fn rate_limit_and_api_keys() {
    let (pid, c) = common::start_with(PocketIdOptions {
        version: "2.14.0".into(),
        rate_limit: Some(RateLimit {
            per_second: 0.5,
            burst: 2,
        }),
        ..Default::default()
    });
    let k = pid.admin_key();
    req(&c, k, "GET", "/api/version/current", None);
    req(&c, k, "GET", "/api/version/current", None);
    let r = req(&c, k, "GET", "/api/version/current", None);
    assert_err(&r, 429, "rate_limited");
    assert!(r
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));

    let (pid, c) = start("2.14.0");
    let k = pid.admin_key();
    let extra = pid.add_admin_api_key("second");
    pid.add_user_api_key("not mine");
    let list = json(&req(&c, k, "GET", "/api/api-keys", None));
    assert_eq!(
        list["pagination"]["totalItems"],
        json!(2),
        "only the caller's keys"
    );
    assert_err(
        &req(&c, k, "DELETE", "/api/api-keys/unknown", None),
        404,
        "api_key_not_found",
    );
    assert_eq!(
        req(
            &c,
            k,
            "DELETE",
            &format!("/api/api-keys/{}", extra.id),
            None
        )
        .status,
        204
    );
    assert!(!pid.api_key_valid(&extra.token));
    // A key may delete itself.
    assert_eq!(
        req(
            &c,
            k,
            "DELETE",
            &format!("/api/api-keys/{}", pid.admin_key_id()),
            None
        )
        .status,
        204
    );
    assert_err(
        &req(&c, k, "GET", "/api/version/current", None),
        401,
        "not_signed_in",
    );
    // The request log holds methods and paths only.
    assert!(pid.requests().iter().all(|r| !r.path.contains(k)));
}

/// Contract §2 and §4: a key's `expiresAt` (set by a test as a key created with it would have)
/// is listed, a key is valid while `expires_at > now`, and every use sets its `lastUsedAt`.
#[test]
fn api_key_expiry_and_last_use() {
    let (pid, c) = start("2.14.0");
    let k = pid.admin_key().to_string();
    let other = pid.add_admin_api_key("other");
    assert!(pid.set_api_key_expiry(pid.admin_key_id(), 3 * 86400));
    assert!(!pid.set_api_key_expiry("unknown", 60));
    let list = json(&req(
        &c,
        &k,
        "GET",
        "/api/api-keys?sort%5Bcolumn%5D=name",
        None,
    ));
    let keys = list["data"].as_array().unwrap();
    let mine = keys
        .iter()
        .find(|x| x["id"] == json!(pid.admin_key_id()))
        .unwrap();
    let now = httpx::time::now_ns() / 1_000_000_000;
    let at =
        |v: &Value| httpx::time::parse_rfc3339_ns(v.as_str().unwrap()).unwrap() / 1_000_000_000;
    let left = at(&mine["expiresAt"]) - now;
    assert!((3 * 86400 - 5..=3 * 86400).contains(&left), "{mine}");
    assert!(
        at(&mine["lastUsedAt"]) >= now - 1,
        "the list request used it: {mine}"
    );
    let theirs = keys.iter().find(|x| x["id"] == json!(other.id)).unwrap();
    assert_eq!(theirs["lastUsedAt"], Value::Null, "{theirs}");
    // Expired a minute ago: refused like an unknown key.
    assert!(pid.set_api_key_expiry(&other.id, -60));
    assert_err(
        &req(&c, &other.token, "GET", "/api/version/current", None),
        401,
        "not_signed_in",
    );
}

#[test]
fn test_hooks_refuse_a_revoke_and_make_lists_hostile() {
    use lab::pocketid::HostileLists;
    use std::time::{Duration, Instant};
    let (pid, c) = start("2.14.0");
    let key = pid.admin_key().to_string();
    let other = pid.add_admin_api_key("other");
    pid.refuse_revoke(&other.id);
    let path = format!("/api/api-keys/{}", other.id);
    assert_err(&req(&c, &key, "DELETE", &path, None), 403, "forbidden");
    assert!(
        pid.api_key_valid(&other.token),
        "a refused revoke revokes nothing"
    );

    let page = |p: u32| {
        json(&req(
            &c,
            &key,
            "GET",
            &format!("/api/user-groups?pagination%5Bpage%5D={p}&pagination%5Blimit%5D=100"),
            None,
        ))
    };
    pid.hostile_lists(Some(HostileLists::EndlessPages));
    for p in [1, 7] {
        let v = page(p);
        assert_eq!(v["data"].as_array().unwrap().len(), 100);
        assert_eq!(v["pagination"]["totalPages"], json!(p + 1));
        assert_eq!(v["data"][0]["id"], json!(format!("hostile-{p}-0")));
    }
    pid.hostile_lists(Some(HostileLists::OversizedPages(250)));
    let v = page(1);
    assert_eq!(v["data"].as_array().unwrap().len(), 250);
    pid.hostile_lists(Some(HostileLists::SlowPages(Duration::from_millis(300))));
    let t = Instant::now();
    let v = page(5);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["pagination"]["totalPages"], json!(100));
    pid.hostile_lists(None);
    assert_eq!(page(1)["pagination"]["totalPages"], json!(1));
}

// ---------------------------------------------------------------------------------------------
// Access recovery (contract `pocketid-logs-and-access.md` §4)

const CODE_CHARS: &str = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ0123456789";

fn usernames(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn users_search_is_a_like_match_with_pocketid_pagination() {
    let (pid, c) = start("2.14.0");
    pid.add_user("alice", Some("alice@example.org"), false);
    pid.add_user("alicia", None, false);
    pid.add_user("bob_x", Some("bx@example.org"), false);
    pid.add_user("bobax", Some("ba@example.org"), false);
    let key = pid.admin_key();
    let r = req(
        &c,
        key,
        "GET",
        "/api/users?search=ALI&pagination%5Blimit%5D=100",
        None,
    );
    assert_eq!(r.status, 200);
    let v = json(&r);
    assert_eq!(usernames(&v), ["alice", "alicia"]);
    assert_eq!(v["pagination"]["totalItems"], json!(2));
    assert_eq!(v["pagination"]["totalPages"], json!(1));
    assert_eq!(v["pagination"]["currentPage"], json!(1));
    assert_eq!(v["pagination"]["itemsPerPage"], json!(100));
    let alicia = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alicia")
        .unwrap()
        .clone();
    assert_eq!(alicia["email"], Value::Null);
    for k in [
        "id",
        "isAdmin",
        "disabled",
        "displayName",
        "firstName",
        "lastName",
    ] {
        assert!(alicia.get(k).is_some(), "UserDto lacks {k}: {alicia}");
    }
    // `_` and `%` are not escaped: they stay wildcards, so the exact match is the caller's job.
    let v = json(&req(&c, key, "GET", "/api/users?search=bob_x", None));
    assert_eq!(usernames(&v), ["bob_x", "bobax"]);
    let v = json(&req(&c, key, "GET", "/api/users?search=%25", None));
    assert_eq!(v["pagination"]["totalItems"], json!(7));
    // Default page size 20; past the end is clamped to the last page.
    let v = json(&req(
        &c,
        key,
        "GET",
        "/api/users?pagination%5Blimit%5D=3&pagination%5Bpage%5D=9&sort%5Bcolumn%5D=username",
        None,
    ));
    assert_eq!(v["pagination"]["totalPages"], json!(3));
    assert_eq!(v["pagination"]["currentPage"], json!(3));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_err(
        &req(&c, pid.non_admin_key(), "GET", "/api/users", None),
        403,
        "forbidden",
    );
    assert_err(
        &req(&c, "nope", "GET", "/api/users", None),
        401,
        "not_signed_in",
    );
}

#[test]
fn one_time_access_tokens_ttl_length_single_use_and_audit() {
    let (pid, c) = start("2.14.0");
    let alice = pid.add_user("alice", Some("alice@example.org"), false);
    let key = pid.admin_key();
    let path = format!("/api/users/{alice}/one-time-access-token");
    let create = |body: Value| req(&c, key, "POST", &path, Some(body));
    let token = |r: &Response| -> String {
        assert_eq!(r.status, 201, "{}", json(r));
        json(r)["token"].as_str().unwrap().to_string()
    };
    // 6 characters up to 15 minutes, 12 above; 0 / absent is 15 minutes; `expiresAt` is not a
    // field (ignored: a 15-minute code).
    for (body, len) in [
        (json!({"ttl": "15m"}), 6),
        (json!({"ttl": 900}), 6),
        (json!({"ttl": 0}), 6),
        (json!({}), 6),
        (json!({"expiresAt": "2099-01-01T00:00:00Z"}), 6),
        (json!({"ttl": "15m1s"}), 12),
        (json!({"ttl": "1h"}), 12),
        (json!({"ttl": 2_678_400}), 12),
        (json!({"ttl": "744h"}), 12),
    ] {
        let t = token(&create(body.clone()));
        assert_eq!(t.len(), len, "{body}");
        assert!(t.chars().all(|ch| CODE_CHARS.contains(ch)), "{t:?}");
    }
    // Out of range: 400 validation_failed; not a Go duration (no `d`, no bare number string):
    // 400 invalid_request_body.
    for body in [
        json!({"ttl": "745h"}),
        json!({"ttl": 1}),
        json!({"ttl": "-5m"}),
    ] {
        let v = assert_err(&create(body.clone()), 400, "validation_failed");
        assert_eq!(v["details"]["fields"][0]["field"], json!("ttl"), "{body}");
    }
    for body in [
        json!({"ttl": "1d"}),
        json!({"ttl": "3600"}),
        json!({"ttl": true}),
    ] {
        assert_err(&create(body), 400, "invalid_request_body");
    }
    assert_err(
        &req(
            &c,
            key,
            "POST",
            "/api/users/nobody/one-time-access-token",
            Some(json!({"ttl": "1h"})),
        ),
        404,
        "user_not_found",
    );
    assert_err(
        &req(
            &c,
            pid.non_admin_key(),
            "POST",
            &path,
            Some(json!({"ttl": "1h"})),
        ),
        403,
        "forbidden",
    );

    // Exchange: no auth, 200 UserDto and a session cookie, audit TOKEN_SIGN_IN; single use.
    let code = token(&create(json!({"ttl": "1h"})));
    let r = req(
        &c,
        "",
        "POST",
        &format!("/api/one-time-access-token/{code}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", json(&r));
    assert_eq!(json(&r)["username"], json!("alice"));
    assert!(r
        .header("set-cookie")
        .is_some_and(|h| h.starts_with("access_token=")));
    assert_eq!(
        pid.audit_events(),
        [("TOKEN_SIGN_IN".to_string(), alice.clone())]
    );
    let v = json(&req(
        &c,
        key,
        "GET",
        "/api/audit-logs/all?sort%5Bcolumn%5D=createdAt&sort%5Bdirection%5D=desc&filters%5Bevent%5D=TOKEN_SIGN_IN",
        None,
    ));
    assert_eq!(v["data"][0]["event"], json!("TOKEN_SIGN_IN"));
    assert_eq!(v["data"][0]["username"], json!("alice"));
    assert_err(
        &req(
            &c,
            "",
            "POST",
            &format!("/api/one-time-access-token/{code}"),
            None,
        ),
        401,
        "token_invalid_or_expired",
    );
    assert_err(
        &req(&c, "", "POST", "/api/one-time-access-token/abcdefg", None),
        401,
        "token_invalid_or_expired",
    );
    // A disabled user's code is refused (and kept: PocketID restores it).
    let dis = pid.add_user("dis", None, true);
    let r = req(
        &c,
        key,
        "POST",
        &format!("/api/users/{dis}/one-time-access-token"),
        Some(json!({"ttl": "1h"})),
    );
    let code = token(&r);
    assert_err(
        &req(
            &c,
            "",
            "POST",
            &format!("/api/one-time-access-token/{code}"),
            None,
        ),
        403,
        "user_disabled",
    );
    assert_eq!(pid.audit_events().len(), 1);
}

#[test]
fn one_time_access_exchange_is_rate_limited() {
    let (_pid, c) = start("2.14.0");
    for _ in 0..5 {
        assert_err(
            &req(&c, "", "POST", "/api/one-time-access-token/aaaaaa", None),
            401,
            "token_invalid_or_expired",
        );
    }
    let r = req(&c, "", "POST", "/api/one-time-access-token/aaaaaa", None);
    assert_err(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn admin_login_code_email_needs_the_setting_and_an_address() {
    let (pid, c) = start("2.14.0");
    let alice = pid.add_user("alice", Some("alice@example.org"), false);
    let nomail = pid.add_user("nomail", None, false);
    let key = pid.admin_key();
    let send = |id: &str| {
        req(
            &c,
            key,
            "POST",
            &format!("/api/users/{id}/one-time-access-email"),
            Some(json!({"ttl": "1h"})),
        )
    };
    let v = assert_err(&send(&alice), 403, "one_time_access_disabled");
    assert_eq!(v["error"], json!("One-time access is disabled"));
    pid.set_email_login_codes_enabled(true);
    let v = assert_err(&send(&nomail), 409, "user_email_not_set");
    assert_eq!(
        v["error"],
        json!("The user does not have an email address set")
    );
    assert_err(&send("nobody"), 404, "user_not_found");
    assert!(pid.outbox().is_empty());
    let r = send(&alice);
    assert_eq!(r.status, 204);
    let mail = pid.outbox().pop().expect("one mail");
    assert_eq!(mail.to, "alice@example.org");
    assert_eq!(mail.code.len(), 12);
    assert_eq!(mail.url, format!("{}/lc/{}", pid.url(), mail.code));
    assert!(mail.body.contains(&mail.url));
    let r = req(
        &c,
        "",
        "POST",
        &format!("/api/one-time-access-token/{}", mail.code),
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn container_cli_one_time_access_token() {
    let (pid, c) = start("2.14.0");
    pid.add_user("alice", Some("alice@example.org"), false);
    let out = pid.cli_one_time_access_token("alice@example.org").unwrap();
    assert!(out.starts_with(
        "A one-time access token valid for 1 hour has been created for \"alice@example.org\".\n"
    ));
    let url = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("Use the following URL to sign in once: ")
        .unwrap();
    let code = url.rsplit('/').next().unwrap();
    assert_eq!(code.len(), 12);
    assert_eq!(
        pid.cli_one_time_access_token("nobody"),
        Err("Error: user not found\n".into())
    );
    let r = req(
        &c,
        "",
        "POST",
        &format!("/api/one-time-access-token/{code}"),
        None,
    );
    assert_eq!(json(&r)["username"], json!("alice"));
}
