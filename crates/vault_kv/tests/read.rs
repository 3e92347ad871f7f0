//! vault_kv_read against a real OpenBao dev server.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn read_returns_data_version_metadata_and_salted_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put(
        "app",
        json!({"client_secret": "read-canary-1-Zq8x", "port": 8080}),
    )
    .unwrap();
    bao.kv_put(
        "app",
        json!({"client_secret": "read-canary-2-Zq8x", "port": 8080}),
    )
    .unwrap();
    let r = run(
        READ,
        args(&bao, "app", json!({"salt": "salt-for-run-1"})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["version"], json!(2));
    // `secret`, as community.hashi_vault's vault_kv2_get names it; `data` is its deprecated alias.
    assert_eq!(
        r.json["secret"],
        json!({"client_secret": "read-canary-2-Zq8x", "port": 8080})
    );
    assert_eq!(r.json["data"], r.json["secret"]);
    assert_eq!(
        r.json["deprecations"],
        json!([{
            "msg": "vault_kv_read's `data` is renamed `secret` (as in community.hashi_vault's vault_kv2_get); read `secret` instead",
            "version": "1.1.0",
            "collection_name": "homelab.sso",
        }])
    );
    assert_eq!(r.json["metadata"]["version"], json!(2));
    assert_eq!(
        r.json["fingerprints"]["client_secret"],
        json!(vault_kv::fingerprint(
            "salt-for-run-1",
            "read-canary-2-Zq8x"
        ))
    );
    assert_eq!(
        r.json["fingerprints"]["port"],
        json!(vault_kv::fingerprint("salt-for-run-1", "8080"))
    );

    // Fingerprints only: no values anywhere in the output.
    let r = run(
        READ,
        args(
            &bao,
            "app",
            json!({"salt": "salt-for-run-1", "return_values": "false", "version": "1"}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(1));
    assert!(r.json.get("data").is_none());
    assert!(r.json.get("secret").is_none());
    assert!(
        r.json.get("deprecations").is_none(),
        "no `data`, no deprecation"
    );
    assert_no_secrets(&r.output, &["read-canary-"]);
    assert_eq!(
        r.json["fingerprints"]["client_secret"],
        json!(vault_kv::fingerprint(
            "salt-for-run-1",
            "read-canary-1-Zq8x"
        ))
    );

    let r = run(
        READ,
        args(&bao, "app", json!({"return_values": false})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("salt"), "{}", r.msg());
    let r = run(READ, args(&bao, "app", json!({"keys": ["nope"]})), &[]);
    r.fails();
    assert!(r.msg().contains("no key(s) nope"), "{}", r.msg());
}

#[test]
fn missing_and_deleted_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let r = run(READ, args(&bao, "nothing", json!({})), &[]);
    r.fails();
    assert!(r.msg().contains("does not exist"), "{}", r.msg());
    let r = run(
        READ,
        args(&bao, "nothing", json!({"missing_ok": true})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["found"], json!(false));
    bao.kv_put("gone", json!({"k": "value-deleted"})).unwrap();
    bao.kv_delete_versions("gone", &[1]).unwrap();
    let r = run(READ, args(&bao, "gone", json!({})), &[]);
    r.fails();
    assert!(r.msg().contains("version 1 is deleted"), "{}", r.msg());
}

#[test]
fn version_zero_or_negative_is_refused_not_read_as_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"k": "v1-canary-Zq8x"})).unwrap();
    bao.kv_put("app", json!({"k": "v2-canary-Zq8x"})).unwrap();
    // Vault answers `?version=0` with the latest version: the module must not pass it on.
    for v in [json!(0), json!("0"), json!(-1)] {
        let r = run(READ, args(&bao, "app", json!({"version": v})), &[]);
        r.fails();
        assert!(
            r.msg()
                .contains("`version` must be a version number of 1 or more"),
            "{v}: {}",
            r.msg()
        );
        assert!(r.msg().contains("leave `version` unset"), "{}", r.msg());
        assert!(r.json.get("data").is_none());
        assert!(r.json.get("secret").is_none());
        assert!(
            r.json.get("deprecations").is_none(),
            "no `data`, no deprecation"
        );
        assert_no_secrets(&r.output, &["canary-Zq8x"]);
    }
    let r = run(READ, args(&bao, "app", json!({"version": 1})), &[]);
    r.ok();
    assert_eq!(r.json["version"], json!(1));
}

/// A Vault value `"7"` used to blank out every `7` in the result: fingerprints, timestamps and
/// messages, so the drift check reported DRIFT for equal values. Values under 4 characters are
/// now masked only as whole fields, with a warning naming their key; fingerprints are never masked.
#[test]
fn a_short_value_does_not_corrupt_fingerprints_or_metadata_and_is_named_in_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put(
        "short",
        json!({"pin": "7", "client_secret": "short-canary-Zq8x"}),
    )
    .unwrap();
    // A salt whose fingerprint of the short value holds a `7`, so the test cannot pass by luck.
    let salt = (0..)
        .map(|i| format!("salt-{i}"))
        .find(|s| vault_kv::fingerprint(s, "7").contains('7'))
        .unwrap();
    let r = run(
        READ,
        args(&bao, "short", json!({"salt": salt, "return_values": false})),
        &[],
    );
    r.ok();
    for (k, v) in [("pin", "7"), ("client_secret", "short-canary-Zq8x")] {
        assert_eq!(
            r.json["fingerprints"][k],
            json!(vault_kv::fingerprint(&salt, v)),
            "{k}"
        );
    }
    assert!(!r.json["metadata"].to_string().contains('*'), "{}", r.json);
    assert!(!r.json["msg"].as_str().unwrap().contains('*'), "{}", r.json);
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("pin") && warnings.contains("shorter than 4 characters"),
        "{warnings}"
    );
    assert_no_secrets(&r.output, &["short-canary-Zq8x"]);
}

/// The token `bao login` leaves in ~/.vault-token is used when neither `token` nor VAULT_TOKEN is
/// set, as community.hashi_vault does; `token` and VAULT_TOKEN still come first.
#[test]
fn token_from_the_file_bao_login_writes() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"k": "token-file-canary-Zq8x"}))
        .unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let home_s = home.display().to_string();
    let mut login = std::process::Command::new(lab::tools::venv_bin("bao"));
    login
        .args(["login", "-no-print", "-method=token", "-"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .stdin(std::process::Stdio::piped());
    for (k, v) in bao.env() {
        if k != "VAULT_TOKEN" && k != "BAO_TOKEN" {
            login.env(k, v);
        }
    }
    let mut child = login.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(bao.root_token.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bao login failed");
    let file = home.join(".vault-token");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        bao.root_token,
        "bao login writes ~/.vault-token"
    );

    let mut a = args(&bao, "app", json!({}));
    a.as_object_mut().unwrap().remove("token");
    let r = run(READ, a.clone(), &[("HOME", &home_s)]);
    r.ok();
    assert_eq!(r.json["secret"]["k"], json!("token-file-canary-Zq8x"));
    assert_no_secrets(&r.output, &[&bao.root_token]);

    // token_path and token_file name another file.
    let other = dir.path().join("tokens");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("lab-token"), format!("{}\n", bao.root_token)).unwrap();
    let mut b = a.clone();
    b["token_path"] = json!(other.display().to_string());
    b["token_file"] = json!("lab-token");
    run(READ, b, &[("HOME", "/nonexistent")]).ok();
    // `~` in token_path is the module's HOME, as for every path option.
    let mut c = a.clone();
    c["token_path"] = json!("~/../tokens");
    c["token_file"] = json!("lab-token");
    run(READ, c, &[("HOME", &home_s)]).ok();

    // VAULT_TOKEN comes before the file: a bad one fails even though the file is good.
    let r = run(
        READ,
        a.clone(),
        &[("HOME", &home_s), ("VAULT_TOKEN", "not-a-valid-token")],
    );
    r.fails();

    // No token anywhere: the message says where the file was looked for.
    let empty = dir.path().join("empty-home");
    std::fs::create_dir(&empty).unwrap();
    let r = run(READ, a, &[("HOME", &empty.display().to_string())]);
    r.fails();
    assert!(r.msg().contains("bao login"), "{}", r.msg());
    assert!(
        r.msg().contains(".vault-token does not exist"),
        "{}",
        r.msg()
    );
}

/// `retries` bounds the attempts of a read: 0 sends one request.
#[test]
fn retries_option_is_checked_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let r = run(READ, args(&bao, "app", json!({"retries": 11})), &[]);
    r.fails();
    assert!(r.msg().contains("`retries` must be 0 to 10"), "{}", r.msg());
    // A port where nothing listens: one attempt fails fast; the message counts no retries.
    let mut a = args(&bao, "app", json!({"retries": 0, "timeout": 2}));
    a["url"] = json!("http://127.0.0.1:9");
    let t = std::time::Instant::now();
    run(READ, a, &[]).fails();
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

/// AppRole args for `role_id`/`secret_id` (no token), plus extra args.
fn approle_args(
    bao: &lab::openbao::OpenBao,
    role_id: &str,
    secret_id: &str,
    extra: Value,
) -> Value {
    let mut m = conn(bao, "homelab-sso");
    m.remove("token");
    m.insert("auth_method".into(), json!("approle"));
    m.insert("role_id".into(), json!(role_id));
    m.insert("secret_id".into(), json!(secret_id));
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

#[test]
fn auth_info_reports_when_the_approle_secret_id_expires_and_never_the_secret_id() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put(
        "homelab-sso",
        json!({"oidc_cookie_secret": "auth-info-canary-1"}),
    )
    .unwrap();
    bao.write_policy("homelab-sso", lab::stack::PLAYBOOK_POLICY)
        .unwrap();
    let (role_id, _) = bao.enable_approle("homelab-sso", &["homelab-sso"]).unwrap();
    // A secret_id as an operator would issue one for the workflows: 3 days, 5 logins.
    let (_, s) = bao
        .request(
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id",
            Some(json!({"ttl": "72h", "num_uses": 5})),
        )
        .unwrap();
    let secret_id = s["data"]["secret_id"].as_str().unwrap().to_string();
    let accessor = s["data"]["secret_id_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = run(
        READ,
        approle_args(
            &bao,
            &role_id,
            &secret_id,
            json!({"auth_info": true, "return_values": false, "key_ages": true}),
        ),
        &[],
    );
    r.ok();
    let info = &r.json["auth_info"];
    assert_eq!(info["method"], "approle", "{}", r.output);
    assert_eq!(info["role_name"], "homelab-sso");
    assert_eq!(info["known"], true, "{}", r.output);
    assert_eq!(info["ttl_seconds"], 259200);
    // One use went to this run's login.
    assert_eq!(info["uses_left"], 4);
    let ns = |f: &str| httpx::time::parse_rfc3339_ns(info[f].as_str().unwrap()).unwrap();
    assert_eq!(ns("expires_at") - ns("created_at"), 259_200 * 1_000_000_000);
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));
    assert_no_secrets(&r.output, &[&secret_id, &accessor, "auth-info-canary-"]);

    // A secret_id without a TTL or use limit does not expire.
    let (_, s) = bao
        .request(
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id",
            Some(json!({})),
        )
        .unwrap();
    let forever = s["data"]["secret_id"].as_str().unwrap().to_string();
    let r = run(
        READ,
        approle_args(
            &bao,
            &role_id,
            &forever,
            json!({"auth_info": true, "keys": ["oidc_cookie_secret"]}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["auth_info"]["known"], true, "{}", r.output);
    assert_eq!(r.json["auth_info"]["expires_at"], Value::Null);
    assert_eq!(r.json["auth_info"]["uses_left"], Value::Null);
}

#[test]
fn auth_info_that_vault_refuses_is_a_warning_naming_the_grant_not_a_failed_read() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put(
        "homelab-sso",
        json!({"oidc_cookie_secret": "auth-info-canary-2"}),
    )
    .unwrap();
    bao.write_policy(
        "reader",
        "path \"secret/data/homelab-sso\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let (role_id, secret_id) = bao.enable_approle("reader", &["reader"]).unwrap();
    let r = run(
        READ,
        approle_args(&bao, &role_id, &secret_id, json!({"auth_info": true})),
        &[],
    );
    r.ok();
    let info = &r.json["auth_info"];
    assert_eq!(info["known"], false, "{}", r.output);
    let reason = info["reason"].as_str().unwrap();
    assert!(
        reason.contains("`update`") && reason.contains("auth/approle/role/reader/secret-id/lookup"),
        "{reason}"
    );
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("AppRole secret_id of role reader"),
        "{warnings}"
    );
    assert_eq!(r.json["version"], 1);
    assert_no_secrets(&r.output, &[&secret_id]);

    // A token reports its own expiry (the root token has none).
    let r = run(
        READ,
        args(&bao, "homelab-sso", json!({"auth_info": true})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["auth_info"]["method"], "token");
    assert_eq!(r.json["auth_info"]["known"], true, "{}", r.output);
    assert_eq!(r.json["auth_info"]["expires_at"], Value::Null);
}
