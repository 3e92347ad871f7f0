//! `pocketid_client` and `pocketid_api_key` against the PocketID emulator, in both version modes.

use ansible_module::run_for_test;
use lab::pocketid::{PocketId, PocketIdOptions, RateLimit};
use pocketid::{PocketIdApiKey, PocketIdClient};
use serde_json::{json, Map, Value};

const VERSIONS: [&str; 3] = ["2.14.0", "2.13.0", "2.12.0"];

fn start(version: &str) -> PocketId {
    PocketId::start(PocketIdOptions::version(version)).expect("start PocketID emulator")
}

fn args(pid: &PocketId, extra: Value) -> Value {
    let mut m = json!({"url": pid.url(), "api_key": pid.admin_key()});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        m[k] = v;
    }
    m
}

fn run(pid: &PocketId, extra: Value) -> Map<String, Value> {
    run_for_test::<PocketIdClient>(args(pid, extra))
}

fn ok(r: &Map<String, Value>) -> &Map<String, Value> {
    assert!(
        r.get("failed").is_none(),
        "module failed: {}",
        Value::Object(r.clone())
    );
    r
}

fn failed(r: &Map<String, Value>) -> String {
    assert_eq!(
        r.get("failed"),
        Some(&json!(true)),
        "expected a failure: {}",
        Value::Object(r.clone())
    );
    r["msg"].as_str().unwrap_or_default().to_string()
}

fn changed(r: &Map<String, Value>) -> bool {
    r["changed"].as_bool().unwrap()
}

#[test]
fn custom_id_among_250_clients_created_once_then_unchanged() {
    for v in VERSIONS {
        let pid = start(v);
        pid.seed_clients(250);
        let spec = json!({"client_id": "grafana", "name": "Grafana",
                          "callback_urls": ["https://grafana.example.org/login/generic_oauth"]});
        let r = run(&pid, spec.clone());
        assert!(changed(ok(&r)), "{v}");
        assert_eq!(r["created"], json!(true));
        assert_eq!(
            pid.count_requests("POST", "/api/oidc/clients"),
            1,
            "{v}: exactly one create"
        );
        assert!(
            r["client_secret"].as_str().is_some_and(|s| s.len() == 32),
            "{v}: secret minted on create"
        );
        assert!(pid.client_secret_valid("grafana", r["client_secret"].as_str().unwrap()));
        assert_eq!(pid.client_count(), 251);

        let r2 = run(&pid, spec);
        assert!(!changed(ok(&r2)), "{v}: second run must not change: {r2:?}");
        assert!(
            r2.get("client_secret").is_none(),
            "{v}: no secret when nothing was minted"
        );
        assert_eq!(pid.count_requests("POST", "/api/oidc/clients"), 1, "{v}");
        assert_eq!(pid.client_count(), 251);
    }
}

#[test]
fn name_lookup_finds_a_client_on_any_page_without_looping() {
    for v in VERSIONS {
        let pid = start(v);
        pid.seed_clients(250);
        for name in ["seed-client-0", "seed-client-137", "seed-client-249"] {
            pid.clear_requests();
            let r = run(&pid, json!({"name": name, "secret": "keep"}));
            assert!(!changed(ok(&r)), "{v} {name}: {r:?}");
            assert_eq!(r["created"], json!(false));
            assert_eq!(
                pid.count_requests("POST", "/api/oidc/clients"),
                0,
                "{v} {name}"
            );
            assert!(pid.requests().len() < 20, "{v}: bounded number of requests");
        }
        // Listing all 250 without a search loops over every page exactly once.
        pid.clear_requests();
        let api =
            pocketid::PocketIdApi::new(&serde_json::from_value(args(&pid, json!({}))).unwrap())
                .unwrap();
        let all = api.list_clients(None).unwrap();
        assert_eq!(all.len(), 250, "{v}");
        assert_eq!(
            pid.count_requests("GET", "/api/oidc/clients"),
            3,
            "{v}: 3 pages of 100"
        );
    }
}

#[test]
fn unmanaged_fields_survive_an_update() {
    for v in VERSIONS {
        let pid = start(v);
        let base = json!({"client_id": "wiki", "name": "Wiki", "callback_urls": ["https://wiki.example.org/cb"], "secret": "keep"});
        ok(&run(&pid, base.clone()));
        // Set in the UI, not managed by our task.
        pid.set_client_field("wiki", "description", json!("set in the admin UI"));
        pid.set_client_field("wiki", "skipConsent", json!(true));
        pid.set_client_field("wiki", "accessTokenDurationMinutes", json!(120));
        let mut next = base.clone();
        next["callback_urls"] = json!([
            "https://wiki.example.org/cb",
            "https://wiki.example.org/cb2"
        ]);
        let r = run(&pid, next.clone());
        assert!(changed(ok(&r)), "{v}");
        let c = pid.client("wiki").unwrap();
        assert_eq!(c["description"], json!("set in the admin UI"), "{v}");
        assert_eq!(c["skipConsent"], json!(true), "{v}");
        assert_eq!(c["accessTokenDurationMinutes"], json!(120), "{v}");
        assert_eq!(
            c["callbackURLs"],
            json!([
                "https://wiki.example.org/cb",
                "https://wiki.example.org/cb2"
            ])
        );
        // Same URLs in another order: compared as stored sets, no change.
        next["callback_urls"] = json!([
            "https://wiki.example.org/cb2",
            "https://wiki.example.org/cb"
        ]);
        assert!(!changed(ok(&run(&pid, next))), "{v}");
    }
}

#[test]
fn duplicate_names_fail_with_the_ambiguity() {
    for v in VERSIONS {
        let pid = start(v);
        pid.seed_client(None, json!({"name": "Nextcloud"}));
        pid.seed_client(None, json!({"name": "Nextcloud"}));
        let msg = failed(&run(&pid, json!({"name": "Nextcloud"})));
        assert!(
            msg.contains("2 PocketID clients are named \"Nextcloud\"") && msg.contains("client_id"),
            "{msg}"
        );
        assert_eq!(pid.client_count(), 2);
    }
}

#[test]
fn groups_by_name_and_unknown_group_fails() {
    for v in VERSIONS {
        let pid = start(v);
        let ids = pid.seed_groups(&["admins", "family"]);
        let spec = json!({"client_id": "jellyfin", "name": "Jellyfin", "allowed_groups": ["family", "admins"], "secret": "keep"});
        assert!(changed(ok(&run(&pid, spec.clone()))));
        let c = pid.client("jellyfin").unwrap();
        assert_eq!(c["isGroupRestricted"], json!(true));
        let mut got = pid.client_group_ids("jellyfin");
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want, "{v}");
        assert!(!changed(ok(&run(&pid, spec))), "{v}: groups idempotent");

        let msg = failed(&run(
            &pid,
            json!({"client_id": "jellyfin", "name": "Jellyfin", "allowed_groups": ["family", "nobody"]}),
        ));
        assert!(
            msg.contains("unknown PocketID user group(s): nobody"),
            "{msg}"
        );
        assert_eq!(
            pid.client_group_ids("jellyfin").len(),
            2,
            "nothing changed on failure"
        );

        // [] opens the client to everyone.
        assert!(changed(ok(&run(
            &pid,
            json!({"client_id": "jellyfin", "name": "Jellyfin", "allowed_groups": [], "secret": "keep"})
        ))));
        assert_eq!(
            pid.client("jellyfin").unwrap()["isGroupRestricted"],
            json!(false)
        );
        assert!(pid.client_group_ids("jellyfin").is_empty());
    }
}

#[test]
fn rotation_on_2_14_is_additive_then_retired() {
    let pid = start("2.14.0");
    let base = json!({"client_id": "forgejo", "name": "Forgejo", "callback_urls": ["https://git.example.org/cb"]});
    let r1 = run(&pid, base.clone());
    let s1 = ok(&r1)["client_secret"].as_str().unwrap().to_string();
    let id1 = r1["secret_id"].as_str().unwrap().to_string();
    assert_eq!(r1["secret_prefix"].as_str().unwrap(), &s1[..4]);

    // ensure with the tracked id: nothing to do.
    let mut ensure = base.clone();
    ensure["secret_id"] = json!(id1);
    assert!(!changed(ok(&run(&pid, ensure))));

    let mut rotate = base.clone();
    rotate["secret"] = json!("rotate");
    let r2 = run(&pid, rotate);
    let s2 = ok(&r2)["client_secret"].as_str().unwrap().to_string();
    let id2 = r2["secret_id"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    assert!(
        pid.client_secret_valid("forgejo", &s1),
        "old secret still valid after rotate"
    );
    assert!(pid.client_secret_valid("forgejo", &s2));

    let mut retire = base.clone();
    retire["secret"] = json!("keep");
    retire["secret_id"] = json!(id2);
    retire["retire_secrets"] = json!(true);
    let r3 = run(&pid, retire.clone());
    assert!(changed(ok(&r3)));
    assert_eq!(r3["retired_secret_ids"], json!([id1]));
    assert!(
        !pid.client_secret_valid("forgejo", &s1),
        "old secret gone after retire"
    );
    assert!(pid.client_secret_valid("forgejo", &s2));
    assert!(!changed(ok(&run(&pid, retire))), "retire is idempotent");

    // Without a kept id, retire refuses to delete everything.
    let mut bad = base.clone();
    bad["secret"] = json!("keep");
    bad["retire_secrets"] = json!(true);
    assert!(failed(&run(&pid, bad)).contains("needs `secret_id`"));
}

/// Before 2.3 PocketID has no `/api/version/current` (404 "API endpoint not found"): the
/// client takes the server for one without `/secrets` (they came in 2.14), as upstream's
/// routes say, and reports no version.
#[test]
fn before_2_3_no_version_route_means_the_legacy_secret() {
    let pid = start("2.2.0");
    let base = json!({"client_id": "forgejo", "name": "Forgejo"});
    let r1 = run(&pid, base.clone());
    let s1 = ok(&r1)["client_secret"].as_str().unwrap().to_string();
    assert_eq!(r1["secret_api"], json!("legacy"), "{r1:?}");
    assert_eq!(r1["server_version"], Value::Null, "{r1:?}");
    assert_eq!(pid.count_requests("GET", "/api/version/current"), 1);
    let mut rotate = base;
    rotate["secret"] = json!("rotate");
    rotate["retire_secrets"] = json!(true);
    let r2 = run(&pid, rotate);
    let s2 = ok(&r2)["client_secret"].as_str().unwrap().to_string();
    assert!(!pid.client_secret_valid("forgejo", &s1));
    assert!(pid.client_secret_valid("forgejo", &s2));
    let warnings = r2["warnings"].to_string();
    assert!(warnings.contains("PocketID < 2.3"), "{r2:?}");
}

#[test]
fn rotation_on_2_13_replaces() {
    let pid = start("2.13.0");
    let base = json!({"client_id": "forgejo", "name": "Forgejo"});
    let r1 = run(&pid, base.clone());
    let s1 = ok(&r1)["client_secret"].as_str().unwrap().to_string();
    assert_eq!(r1["secret_api"], json!("legacy"));
    assert_eq!(
        pid.count_requests("POST", "/api/oidc/clients/forgejo/secret"),
        1
    );
    let mut rotate = base;
    rotate["secret"] = json!("rotate");
    let r2 = run(&pid, rotate);
    let s2 = ok(&r2)["client_secret"].as_str().unwrap().to_string();
    assert!(
        !pid.client_secret_valid("forgejo", &s1),
        "legacy rotation replaces the secret"
    );
    assert!(pid.client_secret_valid("forgejo", &s2));
}

#[test]
fn rate_limit_storm_succeeds_after_retry_after() {
    for v in VERSIONS {
        let pid = start(v);
        ok(&run(
            &pid,
            json!({"client_id": "immich", "name": "Immich", "secret": "keep"}),
        ));
        pid.clear_requests();
        pid.throttle_next(3);
        let r = run(
            &pid,
            json!({"client_id": "immich", "name": "Immich Photos", "secret": "keep"}),
        );
        assert!(changed(ok(&r)), "{v}: {r:?}");
        assert_eq!(
            pid.client("immich").unwrap()["name"],
            json!("Immich Photos")
        );
        assert_eq!(
            pid.count_requests("GET", "/api/version/current"),
            4,
            "{v}: 3 throttled + 1"
        );
    }
    // A real token bucket: a tiny burst still lets the module finish.
    let pid = PocketId::start(PocketIdOptions {
        version: "2.14.0".into(),
        rate_limit: Some(RateLimit {
            per_second: 2.0,
            burst: 2,
        }),
        ..Default::default()
    })
    .unwrap();
    ok(&run(
        &pid,
        json!({"client_id": "slow", "name": "Slow", "secret": "keep"}),
    ));
}

#[test]
fn secret_post_500_is_reported_and_not_retried() {
    for v in VERSIONS {
        let pid = start(v);
        pid.fail_next_secret_post();
        let r = run(&pid, json!({"client_id": "paperless", "name": "Paperless"}));
        let msg = failed(&r);
        assert!(
            msg.contains("HTTP 500") && msg.contains("not retried"),
            "{msg}"
        );
        assert_eq!(r["changed"], json!(true), "the client was created");
        let path = if v == "2.14.0" {
            "/api/oidc/clients/paperless/secrets"
        } else {
            "/api/oidc/clients/paperless/secret"
        };
        assert_eq!(
            pid.count_requests("POST", path),
            1,
            "{v}: secret POST sent once"
        );
        // Re-running converges: the client exists, the secret is minted now (2.14: none active).
        let r2 = run(
            &pid,
            json!({"client_id": "paperless", "name": "Paperless", "secret": "rotate"}),
        );
        assert!(ok(&r2)["client_secret"].is_string());
        assert_eq!(pid.count_requests("POST", "/api/oidc/clients"), 1);
    }
}

#[test]
fn check_mode_changes_nothing_and_diff_has_no_secret() {
    for v in VERSIONS {
        let pid = start(v);
        let r = run(
            &pid,
            json!({"client_id": "x1", "name": "X", "_ansible_check_mode": true, "_ansible_diff": true}),
        );
        assert!(changed(ok(&r)));
        assert_eq!(pid.client_count(), 0);
        ok(&run(&pid, json!({"client_id": "x1", "name": "X"})));
        pid.clear_requests();
        let r = run(
            &pid,
            json!({"client_id": "x1", "name": "Y", "secret": "rotate", "_ansible_check_mode": true, "_ansible_diff": true}),
        );
        assert!(changed(ok(&r)));
        assert_eq!(r["diff"]["before"]["name"], json!("X"));
        assert_eq!(r["diff"]["after"]["name"], json!("Y"));
        assert!(r.get("client_secret").is_none());
        assert!(
            pid.requests().iter().all(|q| q.method == "GET"),
            "{v}: only reads in check mode"
        );
        assert_eq!(pid.client("x1").unwrap()["name"], json!("X"));
    }
}

/// Check mode reports the plan the real run applies: the same mint, the same retired secrets,
/// the same guard refusals, and only reads sent.
#[test]
fn check_mode_predicts_the_real_run() {
    let pid = start("2.14.0");
    let base = json!({"client_id": "wiki", "name": "Wiki"});
    let first = ok(&run(&pid, base.clone()))["secret_id"].clone();

    // Rotate and retire in one run: the secret kept is the one the run mints.
    let mut rotate = base.clone();
    rotate["secret"] = json!("rotate");
    rotate["retire_secrets"] = json!(true);
    let mut checked = rotate.clone();
    checked["_ansible_check_mode"] = json!(true);
    pid.clear_requests();
    let plan = run(&pid, checked);
    assert!(changed(ok(&plan)), "{plan:?}");
    assert!(pid.requests().iter().all(|q| q.method == "GET"));
    let done = run(&pid, rotate);
    for key in ["changed", "secret_minted", "retired_secret_ids"] {
        assert_eq!(plan[key], ok(&done)[key], "{key}");
    }
    assert_eq!(done["retired_secret_ids"], json!([first]));
    assert!(plan["msg"].as_str().unwrap().contains("would be minted"));

    // A kept secret that is not the client's is refused in check mode as in the real run.
    let unknown = json!({"client_id": "wiki", "name": "Wiki", "secret_id": "no-such-secret",
                         "retire_secrets": true, "_ansible_check_mode": true});
    pid.clear_requests();
    let msg = failed(&run(&pid, unknown));
    assert!(
        msg.contains("\"no-such-secret\" is not a secret of client \"wiki\""),
        "{msg}"
    );
    assert!(pid.requests().iter().all(|q| q.method == "GET"));

    // A public client made confidential by the run: the rotation would mint.
    ok(&run(
        &pid,
        json!({"client_id": "spa", "name": "SPA", "public": true}),
    ));
    let r = run(
        &pid,
        json!({"client_id": "spa", "name": "SPA", "public": false, "secret": "rotate",
               "_ansible_check_mode": true}),
    );
    assert_eq!(ok(&r)["secret_minted"], json!(true), "{r:?}");
    assert_eq!(pid.client("spa").unwrap()["isPublic"], json!(true));
}

#[test]
fn state_absent_deletes_and_is_idempotent() {
    for v in VERSIONS {
        let pid = start(v);
        ok(&run(
            &pid,
            json!({"client_id": "gone", "name": "Gone", "secret": "keep"}),
        ));
        assert!(changed(ok(&run(
            &pid,
            json!({"client_id": "gone", "state": "absent"})
        ))));
        assert!(pid.client("gone").is_none());
        assert!(!changed(ok(&run(
            &pid,
            json!({"client_id": "gone", "state": "absent"})
        ))));
    }
}

#[test]
fn auth_errors_are_clear_and_keyless() {
    let pid = start("2.14.0");
    let r = run_for_test::<PocketIdClient>(
        json!({"url": pid.url(), "api_key": "wrong-key-value-123", "name": "A"}),
    );
    let msg = failed(&r);
    assert!(
        msg.contains("HTTP 401")
            && msg.contains("not_signed_in")
            && !msg.contains("wrong-key-value-123"),
        "{msg}"
    );
    let r = run_for_test::<PocketIdClient>(
        json!({"url": pid.url(), "api_key": pid.non_admin_key(), "name": "A"}),
    );
    let msg = failed(&r);
    assert!(
        msg.contains("HTTP 403") && msg.contains("forbidden"),
        "{msg}"
    );
}

#[test]
fn api_key_rotation_verifies_and_revokes_the_old_key() {
    for v in VERSIONS {
        let pid = start(v);
        let old = pid.admin_key().to_string();
        let new = pid.add_admin_api_key("automation-2026");
        // Non-admin new key is refused before anything is revoked.
        let user = pid.add_user_api_key("user-key");
        let r = run_for_test::<PocketIdApiKey>(
            json!({"url": pid.url(), "api_key": old, "new_api_key": user.token}),
        );
        assert!(failed(&r).contains("not an admin"));

        let r = run_for_test::<PocketIdApiKey>(
            json!({"url": pid.url(), "api_key": old, "new_api_key": new.token,
            "new_api_key_name": "automation-2026", "revoke_others": true}),
        );
        assert!(changed(ok(&r)), "{v}");
        assert_eq!(r["kept_key_id"], json!(new.id));
        assert!(!pid.api_key_valid(&old), "old key revoked");
        assert!(pid.api_key_valid(&new.token), "new key works");
        assert_eq!(pid.admin_key_ids(), vec![new.id.clone()]);
        let r = run_for_test::<PocketIdApiKey>(json!({"url": pid.url(), "new_api_key": new.token,
            "new_api_key_name": "automation-2026", "revoke_others": true}));
        assert!(!changed(ok(&r)), "{v}: idempotent");
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(&new.token) && !text.contains(&old));
    }
}

#[test]
fn api_key_partial_revoke_reports_what_was_revoked_and_names_the_rest() {
    let pid = start("2.14.0");
    let old = pid.admin_key().to_string();
    let old_ci = pid.add_admin_api_key("old-ci");
    let new = pid.add_admin_api_key("automation-2026");
    // The first old key is revoked, the next one refused.
    pid.refuse_revoke(&old_ci.id);
    let r = run_for_test::<PocketIdApiKey>(json!({"url": pid.url(), "api_key": old,
        "new_api_key": new.token, "new_api_key_name": "automation-2026", "revoke_others": true}));
    let msg = failed(&r);
    assert!(changed(&r), "a key was revoked: {msg}");
    assert_eq!(
        r["revoked"],
        json!([{"id": pid.admin_key_id(), "name": "automation"}])
    );
    assert_eq!(
        r["not_revoked"],
        json!([{"id": old_ci.id, "name": "old-ci"}])
    );
    assert!(msg.contains("only 1 of 2 old key(s) were revoked"), "{msg}");
    assert!(
        msg.contains(&format!("automation [{}]", pid.admin_key_id())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("old-ci [{}]", old_ci.id)) && msg.contains("HTTP 403"),
        "{msg}"
    );
    assert!(msg.contains("admin panel"), "{msg}");
    assert!(!pid.api_key_valid(&old), "the first key is revoked");
    assert!(
        pid.api_key_valid(&old_ci.token),
        "the refused key still works"
    );
    assert!(pid.api_key_valid(&new.token));
    let text = serde_json::to_string(&r).unwrap();
    for token in [&old, &old_ci.token, &new.token] {
        assert!(!text.contains(token.as_str()), "a key in the result");
    }
}

#[test]
fn dot_segment_client_ids_are_refused() {
    let pid = start("2.14.0");
    // An option: refused before any request.
    let r = run(&pid, json!({"client_id": "..", "name": "Dots"}));
    let msg = failed(&r);
    assert!(
        msg.contains("`client_id` \"..\" holds a `.` or `..` path segment"),
        "{msg}"
    );
    assert!(pid.requests().is_empty(), "{:?}", pid.requests());
    // An id from the server's own list: refused before it is put into a URL.
    pid.seed_client(Some(".."), json!({"name": "Dots"}));
    let r = run(&pid, json!({"name": "Dots", "description": "changed"}));
    let msg = failed(&r);
    assert!(
        msg.contains("refusing GET /api/oidc/clients/..: an id in it is `.` or `..`"),
        "{msg}"
    );
    assert!(
        !pid.requests()
            .iter()
            .any(|q| q.path.starts_with("/api/oidc/clients/..") || q.method != "GET"),
        "{:?}",
        pid.requests()
    );
}

#[test]
fn cli_mode_with_env_fallbacks() {
    let pid = start("2.14.0");
    let out = testkit::succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_pocketid_client"))
            .args([
                "--client-id",
                "cli-app",
                "--name",
                "CLI App",
                "--secret",
                "keep",
                "--json",
            ])
            .env("POCKETID_URL", pid.url())
            .env("POCKETID_API_KEY", pid.admin_key()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["changed"], json!(true));
    assert!(pid.client("cli-app").is_some());
    assert!(!text.contains(pid.admin_key()));
}

/// `retries` above 10 is refused by both PocketID modules before any request is sent.
#[test]
fn retries_over_ten_is_refused_before_any_request() {
    let pid = start("2.14.0");
    let r = run(&pid, json!({"name": "x", "retries": 11}));
    assert!(failed(&r).contains("`retries` must be 0 to 10"), "{r:?}");
    let r = run_for_test::<PocketIdApiKey>(args(
        &pid,
        json!({"new_api_key": pid.admin_key(), "retries": 11}),
    ));
    assert!(failed(&r).contains("`retries` must be 0 to 10"), "{r:?}");
    assert!(pid.requests().is_empty(), "no request was sent");
    // 0 is allowed (one attempt per request).
    ok(&run(&pid, json!({"name": "retries-zero", "retries": 0})));
}

/// The methods and paths a run sent besides reads: a verify must send only its token request.
fn writes(pid: &PocketId) -> Vec<String> {
    pid.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn verify_accepts_a_current_secret_and_refuses_it_once_stale() {
    for v in VERSIONS {
        let pid = start(v);
        let made = run(
            &pid,
            json!({"client_id": "wiki", "name": "Wiki", "callback_urls": ["https://wiki.example.org/cb"]}),
        );
        let secret = ok(&made)["client_secret"].as_str().unwrap().to_string();
        for check_mode in [false, true] {
            pid.clear_requests();
            let r = run(
                &pid,
                json!({"client_id": "wiki", "secret": "verify", "client_secret": secret,
                       "_ansible_check_mode": check_mode}),
            );
            assert!(!changed(ok(&r)), "{v}: {r:?}");
            assert_eq!(r["secret_accepted"], json!(true), "{v}: {r:?}");
            assert_eq!(r["secret_check"], json!("accepted"));
            assert_eq!(r["client_exists"], json!(true));
            assert_eq!(
                r["client"]["callbackURLs"],
                json!(["https://wiki.example.org/cb"])
            );
            assert_eq!(r["server_version"], json!(v));
            assert_eq!(
                writes(&pid),
                ["POST /api/oidc/token"],
                "{v}: nothing else sent"
            );
            assert!(!Value::Object(r.clone()).to_string().contains(&secret));
        }
        // Regenerated elsewhere: the deployed secret is now refused, still without a change.
        assert!(pid.make_client_secrets_stale("wiki"));
        let r = run(
            &pid,
            json!({"client_id": "wiki", "secret": "verify", "client_secret": secret}),
        );
        assert!(!changed(ok(&r)));
        assert_eq!(r["secret_accepted"], json!(false), "{v}: {r:?}");
        assert_eq!(r["secret_check"], json!("refused"));
        assert!(r["msg"].as_str().unwrap().contains("invalid_client"));
        assert!(pid.client_secrets("wiki").is_empty(), "{v}: nothing minted");
        assert!(!Value::Object(r.clone()).to_string().contains(&secret));
    }
}

#[test]
fn verify_an_unknown_client_is_refused_and_options_are_checked_first() {
    let pid = start("2.14.0");
    let secret = "a-secret-nobody-has-0123456789";
    let r = run(
        &pid,
        json!({"client_id": "ghost", "secret": "verify", "client_secret": secret,
               "callback_urls": ["https://x.example.org/cb"]}),
    );
    assert_eq!(ok(&r)["client_exists"], json!(false), "{r:?}");
    assert_eq!(r["secret_check"], json!("refused"));
    assert_eq!(r["client"], Value::Null);
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(warning.contains("callback_urls"), "{warning}");
    assert!(pid.client("ghost").is_none(), "a verify creates nothing");

    // By name, a client that does not exist gives no id to check.
    let msg = failed(&run(
        &pid,
        json!({"name": "Nope", "secret": "verify", "client_secret": secret}),
    ));
    assert!(msg.contains("set `client_id`"), "{msg}");
    // Refused before any request: a secret without verify, verify without a secret, absent.
    pid.clear_requests();
    for (extra, text) in [
        (
            json!({"client_secret": secret}),
            "only used with `secret: verify`",
        ),
        (json!({"secret": "verify"}), "needs `client_secret`"),
        (
            json!({"secret": "verify", "client_secret": secret, "state": "absent"}),
            "cannot be combined",
        ),
    ] {
        let mut a = json!({"client_id": "ghost"});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        let msg = failed(&run(&pid, a));
        assert!(msg.contains(text) && !msg.contains(secret), "{msg}");
    }
    assert!(pid.requests().is_empty());
    // A public client takes any secret: nothing to verify.
    pid.seed_client(Some("spa"), json!({"name": "SPA", "isPublic": true}));
    let msg = failed(&run(
        &pid,
        json!({"client_id": "spa", "secret": "verify", "client_secret": secret}),
    ));
    assert!(msg.contains("public"), "{msg}");
}

/// A server that is not PocketID's token endpoint (a proxy's error page, another service)
/// answering the check with the secret echoed: a clear failure, the secret masked.
#[test]
fn verify_an_unexpected_answer_fails_naming_the_status_with_the_secret_masked() {
    use std::io::{Read, Write};
    let secret = "echoed-secret-value-0123456789";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let (status, body) = if head.starts_with("GET /api/version/current") {
                (200, json!({"currentVersion": "2.14.0"}))
            } else if head.starts_with("GET /api/oidc/clients/app") {
                (
                    200,
                    json!({"id": "app", "name": "App", "isPublic": false, "callbackURLs": null}),
                )
            } else {
                (
                    502,
                    json!({"error": format!("upstream said: bad secret {secret}")}),
                )
            };
            let body = body.to_string();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let r = run_for_test::<PocketIdClient>(json!({
        "url": url, "api_key": "key-0123456789abcdef", "retries": 0,
        "client_id": "app", "secret": "verify", "client_secret": secret,
    }));
    server.join().unwrap();
    let msg = failed(&r);
    assert!(
        msg.contains("HTTP 502") && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(
        !Value::Object(r.clone()).to_string().contains(secret),
        "{r:?}"
    );
}

/// The real binary in module mode (stdout and stderr), accepted and refused, on both versions.
#[test]
fn verify_in_module_mode_never_prints_the_secret() {
    for v in VERSIONS {
        let pid = start(v);
        pid.seed_client(
            Some("app"),
            json!({"name": "App", "callbackURLs": ["https://app.example.org/cb"]}),
        );
        let secret = match pid.version() {
            lab::pocketid::Version::V2_14 => pid.add_client_secret("app").unwrap().1,
            lab::pocketid::Version::V2_2
            | lab::pocketid::Version::V2_12
            | lab::pocketid::Version::V2_13 => {
                let r = run(&pid, json!({"client_id": "app", "secret": "rotate"}));
                ok(&r)["client_secret"].as_str().unwrap().to_string()
            }
        };
        for (given, accepted) in [(secret.clone(), true), (format!("{secret}x"), false)] {
            let a = args(
                &pid,
                json!({"client_id": "app", "secret": "verify", "client_secret": given,
                       "_ansible_diff": true, "_ansible_verbosity": 4}),
            );
            let out = testkit::module::run_module(
                std::path::Path::new(env!("CARGO_BIN_EXE_pocketid_client")),
                &a,
                &["POCKETID_URL", "POCKETID_API_KEY"],
                &[],
            );
            assert!(!out.failed(), "{v}: {}", out.output());
            assert_eq!(out.json["secret_accepted"], json!(accepted), "{v}");
            assert_eq!(out.json["changed"], json!(false));
            assert!(!out.output().contains(&secret), "{v}: {}", out.output());
        }
    }
}

#[test]
fn info_lists_secrets_says_which_is_given_and_changes_nothing() {
    let pid = start("2.14.0");
    let base = json!({"client_id": "forgejo", "name": "Forgejo", "callback_urls": ["https://git.example.org/cb"]});
    let r1 = run(&pid, base);
    let held = ok(&r1)["client_secret"].as_str().unwrap().to_string();
    let (lingering, value) = pid.add_client_secret("forgejo").unwrap();
    pid.clear_requests();
    let r = run(
        &pid,
        json!({"client_id": "forgejo", "state": "info", "client_secret": held}),
    );
    assert!(!changed(ok(&r)));
    assert_eq!(r["active_secrets"], json!(2));
    assert_eq!(r["client_secret_held"], json!("yes"));
    let rows = r["secrets"].as_array().unwrap();
    let row = |id: &str| rows.iter().find(|s| s["id"] == json!(id)).unwrap();
    assert_eq!(row(&lingering)["matches_client_secret"], json!("no"));
    assert_eq!(row(&lingering)["prefix"], json!(&value[..4]));
    assert_eq!(
        row(r1["secret_id"].as_str().unwrap())["matches_client_secret"],
        json!("yes")
    );
    assert!(row(&lingering)["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(row(&lingering)["expires_at"], Value::Null);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains(&held) && !text.contains(&value));
    assert!(
        pid.requests().iter().all(|q| q.method == "GET"),
        "info only reads"
    );
    // Options that would change or check something are refused before any request.
    let r = run(
        &pid,
        json!({"client_id": "forgejo", "state": "info", "retire_secrets": true}),
    );
    assert!(failed(&r).contains("`state: info` changes and checks nothing"));

    // Before 2.14 nothing about the one secret can be known, and the result says so.
    let legacy = start("2.13.0");
    run(&legacy, json!({"client_id": "forgejo", "name": "Forgejo"}));
    let r = run(&legacy, json!({"client_id": "forgejo", "state": "info"}));
    assert_eq!(ok(&r)["secrets_known"], json!(false));
    assert!(
        r["msg"].as_str().unwrap().contains("cannot be known"),
        "{r:?}"
    );
}

#[test]
fn api_key_info_lists_the_owners_keys_and_the_one_in_use() {
    let pid = start("2.14.0");
    let other = pid.add_admin_api_key("spare");
    assert!(pid.set_api_key_expiry(pid.admin_key_id(), 3 * 86400));
    let r = run_for_test::<PocketIdApiKey>(json!({"url": pid.url(), "api_key": pid.admin_key()}));
    assert!(!changed(ok(&r)));
    assert_eq!(r["in_use_key_id"], json!(pid.admin_key_id()));
    let keys = r["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let spare = keys.iter().find(|k| k["id"] == json!(other.id)).unwrap();
    assert_eq!(spare["in_use"], json!(false));
    assert_eq!(spare["name"], json!("spare"));
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains(pid.admin_key()) && !text.contains(&other.token));
    assert!(pid.api_key_valid(&other.token), "nothing revoked");
    let r = run_for_test::<PocketIdApiKey>(
        json!({"url": pid.url(), "api_key": pid.admin_key(), "revoke_others": true}),
    );
    assert!(failed(&r).contains("need `new_api_key`"));
}

/// `secret_expires_days` (2.14+): the minted secret carries an `expiresAt` that many days ahead
/// (PocketID holds it and still accepts the secret); older servers refuse the option before any
/// write, also in check mode.
#[test]
fn secret_expires_days_sets_expires_at_on_2_14_and_is_refused_before() {
    let pid = start("2.14.0");
    let spec =
        json!({"client_id": "gw", "name": "GW", "secret": "rotate", "secret_expires_days": 100});
    let r = run(&pid, spec.clone());
    ok(&r);
    let expires = r["secret_expires_at"].as_str().expect("secret_expires_at");
    let at = httpx::time::parse_rfc3339_ns(expires).expect("RFC 3339") / 1_000_000_000;
    let now = httpx::time::now_ns() / 1_000_000_000;
    assert!((at - now - 100 * 86_400).abs() < 120, "{expires}");
    let held = pid.client_secrets("gw");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["expiresAt"].as_str(), Some(expires));
    assert_eq!(held[0]["isActive"], json!(true));
    assert!(pid.client_secret_valid("gw", r["client_secret"].as_str().unwrap()));
    // Without the option a minted secret never expires.
    let mut plain = spec.clone();
    plain.as_object_mut().unwrap().remove("secret_expires_days");
    let r = run(&pid, plain);
    assert_eq!(ok(&r)["secret_expires_at"], Value::Null);

    for v in ["2.13.0", "2.12.0"] {
        let pid = start(v);
        pid.seed_client(Some("gw"), json!({"name": "GW"}));
        for check in [true, false] {
            let mut s = spec.clone();
            s["_ansible_check_mode"] = json!(check);
            let msg = failed(&run(&pid, s));
            assert!(
                msg.contains("secret_expires_days needs PocketID 2.14"),
                "{v}: {msg}"
            );
            assert!(msg.contains(v), "{v}: {msg}");
        }
        assert_eq!(
            pid.count_requests("POST", "/api/oidc/clients/gw/secret"),
            0,
            "{v}"
        );
    }
}
