//! vault_kv_read against a real OpenBao dev server.

mod common;

use common::*;
use serde_json::json;

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
