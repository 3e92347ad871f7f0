//! vault_full_write against a real OpenBao dev server.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn full_write_then_unchanged_second_run_adds_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let data = fifteen("a");
    let r = run(
        WRITE,
        args(
            &bao,
            "homelab-sso",
            json!({"data": data, "_ansible_diff": true}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["version"], json!(1));
    assert_eq!(r.json["previous_version"], json!(0));
    assert_eq!(r.json["added_keys"].as_array().unwrap().len(), 15);
    let diff = r.json["diff"].to_string();
    assert!(diff.contains("key_01: <added>"), "{diff}");
    assert_no_secrets(&r.output, &["canary-a-"]);

    let r2 = run(
        WRITE,
        args(
            &bao,
            "homelab-sso",
            json!({"data": data, "_ansible_diff": true}),
        ),
        &[],
    );
    r2.ok();
    assert_eq!(r2.json["changed"], json!(false), "{}", r2.output);
    assert_eq!(r2.json["version"], json!(1));
    assert!(r2.json.get("diff").is_none());
    assert_eq!(bao.current_version("homelab-sso").unwrap(), 1);
    assert_eq!(bao.kv_get("homelab-sso").unwrap().unwrap().0, data);

    // One changed value: changed_keys names it, diff shows markers only.
    let mut d2 = data.clone();
    d2["key_07"] = json!("canary-a-07-new");
    let r3 = run(
        WRITE,
        args(
            &bao,
            "homelab-sso",
            json!({"data": d2, "_ansible_diff": true}),
        ),
        &[],
    );
    r3.ok();
    assert_eq!(r3.json["changed_keys"], json!(["key_07"]));
    assert_eq!(r3.json["version"], json!(2));
    assert_eq!(r3.json["previous_version"], json!(1));
    assert!(r3.json["diff"]["after"]
        .as_str()
        .unwrap()
        .contains("key_07: <changed"));
    assert_no_secrets(&r3.output, &["canary-a-"]);
}

#[test]
fn concurrent_writer_between_read_and_write_is_a_cas_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1", "b": "2"})).unwrap();
    let a = args(&bao, "app", json!({"data": {"a": "ours", "b": "2"}}));
    let (handle, gate) = paused_run(dir.path(), a);
    bao.kv_put("app", json!({"a": "theirs", "b": "2", "c": "3"}))
        .unwrap();
    std::fs::write(&gate, b"").unwrap();
    let r = handle.join().unwrap();
    r.fails();
    assert!(r.msg().contains("changed since read"), "{}", r.msg());
    assert!(r.msg().contains("re-run"), "{}", r.msg());
    let (data, v) = bao.kv_get("app").unwrap().unwrap();
    assert_eq!(v, 2);
    assert_eq!(data, json!({"a": "theirs", "b": "2", "c": "3"}));
}

#[test]
fn guards_required_keys_and_dropped_keys_leave_vault_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1", "b": "2", "c": "3"}))
        .unwrap();

    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "1", "b": "2", "c": "9"}, "required_keys": ["a", "d"]}),
        ),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("required key(s) d"), "{}", r.msg());
    assert_eq!(bao.current_version("app").unwrap(), 1);

    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "1", "b": "2"}})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("remove existing key(s) c"), "{}", r.msg());
    assert!(r.msg().contains("allow_remove"), "{}", r.msg());
    assert_eq!(bao.current_version("app").unwrap(), 1);

    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "1", "b": "2"}, "allow_remove": "yes"}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["removed_keys"], json!(["c"]));
    assert_eq!(
        bao.kv_get("app").unwrap().unwrap(),
        (json!({"a": "1", "b": "2"}), 2)
    );
}

#[test]
fn check_mode_predicts_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1"})).unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "2", "b": "x"}, "_ansible_check_mode": true, "_ansible_diff": true}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["version"], json!(2));
    assert_eq!(r.json["added_keys"], json!(["b"]));
    assert_eq!(r.json["changed_keys"], json!(["a"]));
    assert!(r.json["diff"]["after"]
        .as_str()
        .unwrap()
        .contains("b: <added>"));
    assert_eq!(bao.kv_get("app").unwrap().unwrap(), (json!({"a": "1"}), 1));
    // Guards apply in check mode too.
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"b": "x"}, "_ansible_check_mode": true}),
        ),
        &[],
    );
    r.fails();
}

#[test]
fn patch_mode_merges_removes_named_keys_and_falls_back_without_patch_capability() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1", "b": "2", "c": "3"}))
        .unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "A", "d": "4"}, "remove_keys": ["b"], "patch": "true"}),
        ),
        &[],
    );
    r.ok();
    assert!(r.msg().contains("by patch"), "{}", r.msg());
    assert_eq!(r.json["added_keys"], json!(["d"]));
    assert_eq!(r.json["removed_keys"], json!(["b"]));
    assert_eq!(r.json["changed_keys"], json!(["a"]));
    assert_eq!(
        bao.kv_get("app").unwrap().unwrap(),
        (json!({"a": "A", "c": "3", "d": "4"}), 2)
    );

    // Unchanged patch: no new version.
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "A"}, "patch": true})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(bao.current_version("app").unwrap(), 2);

    // No `patch` capability: read-modify-write with CAS.
    bao.write_policy(
        "rw",
        r#"path "secret/data/app" { capabilities = ["read", "create", "update"] }"#,
    )
    .unwrap();
    let token = bao.token_with_policy(&["rw"]).unwrap();
    let mut a = args(&bao, "app", json!({"data": {"e": "5"}, "patch": true}));
    a["token"] = json!(token);
    let r = run(WRITE, a, &[]);
    r.ok();
    assert!(r.msg().contains("read-modify-write"), "{}", r.msg());
    assert_eq!(
        bao.kv_get("app").unwrap().unwrap(),
        (json!({"a": "A", "c": "3", "d": "4", "e": "5"}), 3)
    );

    // Patch of a path that does not exist creates it.
    let r = run(
        WRITE,
        args(&bao, "new", json!({"data": {"x": "1"}, "patch": true})),
        &[],
    );
    r.ok();
    assert_eq!(bao.kv_get("new").unwrap().unwrap(), (json!({"x": "1"}), 1));
}

#[test]
fn cas_explicit_string_disabled_and_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    for i in 0..3 {
        bao.kv_put("app", json!({"a": format!("value-{i}")}))
            .unwrap();
    }
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "value-x"}, "cas": "2"})),
        &[],
    );
    r.fails();
    assert!(
        r.msg()
            .contains("changed since read (check-and-set expected version 2)"),
        "{}",
        r.msg()
    );
    assert_eq!(bao.current_version("app").unwrap(), 3);
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "value-x"}, "cas": "3"})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(4));
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "value-y"}, "cas": "disabled"}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(5));
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "value-y"}, "cas": "later"}),
        ),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("`cas` must be"), "{}", r.msg());
}

#[test]
fn rollback_rewrites_an_old_version_and_refuses_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1", "b": "2"})).unwrap();
    bao.kv_put("app", json!({"a": "changed", "b": "2"}))
        .unwrap();
    bao.kv_put("app", json!({"a": "3"})).unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"rollback_to": 1, "_ansible_diff": true}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(4));
    assert_eq!(r.json["previous_version"], json!(3));
    assert_eq!(r.json["mode"], json!("rollback"));
    assert_eq!(
        bao.kv_get("app").unwrap().unwrap(),
        (json!({"a": "1", "b": "2"}), 4)
    );
    // Rolling back to what is current changes nothing.
    let r = run(WRITE, args(&bao, "app", json!({"rollback_to": "1"})), &[]);
    r.ok();
    assert_eq!(r.json["changed"], json!(false));
    // A rollback that drops keys needs allow_remove.
    let r = run(WRITE, args(&bao, "app", json!({"rollback_to": 3})), &[]);
    r.fails();
    assert!(r.msg().contains("key(s) b"), "{}", r.msg());
    bao.kv_delete_versions("app", &[2]).unwrap();
    bao.kv_destroy_versions("app", &[3]).unwrap();
    let r = run(WRITE, args(&bao, "app", json!({"rollback_to": 2})), &[]);
    r.fails();
    assert!(r.msg().contains("deleted"), "{}", r.msg());
    let r = run(
        WRITE,
        args(&bao, "app", json!({"rollback_to": 3, "allow_remove": true})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("destroyed"), "{}", r.msg());
    let r = run(WRITE, args(&bao, "app", json!({"rollback_to": 40})), &[]);
    r.fails();
    assert!(r.msg().contains("no such version"), "{}", r.msg());
    assert_eq!(bao.current_version("app").unwrap(), 4);
}

#[test]
fn rollback_to_zero_or_negative_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1", "b": "2"})).unwrap();
    bao.kv_put("app", json!({"a": "1", "b": "3"})).unwrap();
    // `?version=0` reads the latest, so a rollback to 0 used to "succeed" doing nothing.
    for v in [json!(0), json!("0"), json!(-2)] {
        let r = run(WRITE, args(&bao, "app", json!({"rollback_to": v})), &[]);
        r.fails();
        assert!(
            r.msg()
                .contains("`rollback_to` must be a version number of 1 or more"),
            "{v}: {}",
            r.msg()
        );
        assert!(r.msg().contains("versions start at 1"), "{}", r.msg());
    }
    assert_eq!(bao.current_version("app").unwrap(), 2);
}

/// `DELETE secret/data/P`: a soft delete of the latest version.
fn delete_latest(bao: &lab::openbao::OpenBao, path: &str) {
    let (status, body) = bao
        .request("DELETE", &format!("/v1/secret/data/{path}"), None)
        .unwrap();
    assert_eq!(status, 204, "{body}");
}

fn assert_still_deleted(bao: &lab::openbao::OpenBao, path: &str, version: u64) {
    let meta = bao.metadata(path).unwrap();
    assert_eq!(meta["current_version"], json!(version), "no new version");
    let v = &meta["versions"][version.to_string()];
    assert!(
        v["deletion_time"].as_str().is_some_and(|t| !t.is_empty()) || v["destroyed"] == json!(true),
        "{meta}"
    );
}

#[test]
fn patch_onto_a_deleted_latest_version_is_refused_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put(
        "x",
        json!({"k1": "c-1-Zq8x", "k2": "c-2-Zq8x", "k3": "c-3-Zq8x"}),
    )
    .unwrap();
    delete_latest(&bao, "x");
    let patch = json!({"data": {"k1": "new-Zq8x"}, "patch": true});
    let refused = |r: &Run| {
        r.fails();
        let m = r.msg();
        assert!(
            m.contains("refusing to patch secret/x: its latest version 1 is deleted"),
            "{m}"
        );
        assert!(
            m.contains("bao kv undelete -mount=secret -versions=1 x") && m.contains("patch: false"),
            "{m}"
        );
        assert_no_secrets(&r.output, &["Zq8x"]);
        assert_still_deleted(&bao, "x", 1);
    };

    // A token with `patch` (root): the HTTP PATCH path.
    refused(&run(WRITE, args(&bao, "x", patch.clone()), &[]));
    // Check mode refuses too.
    let mut check = patch.clone();
    check["_ansible_check_mode"] = json!(true);
    refused(&run(WRITE, args(&bao, "x", check), &[]));

    // Without `patch`: the read-modify-write with CAS fallback.
    bao.write_policy(
        "rw",
        r#"path "secret/data/x" { capabilities = ["read", "create", "update"] }"#,
    )
    .unwrap();
    let rw = bao.token_with_policy(&["rw"]).unwrap();
    let mut a = args(&bao, "x", patch.clone());
    a["token"] = json!(rw);
    refused(&run(WRITE, a, &[]));

    // A token that may patch but not read (the module learns it from the PATCH's 404).
    bao.write_policy(
        "po",
        r#"path "secret/data/x" { capabilities = ["create", "update", "patch"] }"#,
    )
    .unwrap();
    let po = bao.token_with_policy(&["po"]).unwrap();
    let mut a = args(&bao, "x", patch.clone());
    a["token"] = json!(po);
    a["cas"] = json!(1);
    refused(&run(WRITE, a, &[]));

    // Key names and metadata only (no values): learned from subkeys' 404.
    bao.write_policy(
        "meta",
        r#"path "secret/data/x" { capabilities = ["create", "update"] }
path "secret/metadata/x" { capabilities = ["read"] }
path "secret/subkeys/x" { capabilities = ["read"] }"#,
    )
    .unwrap();
    let meta = bao.token_with_policy(&["meta"]).unwrap();
    let mut a = args(&bao, "x", patch.clone());
    a["token"] = json!(meta);
    refused(&run(WRITE, a, &[]));

    // A full write is still possible (the message's way out), and so is a patch after undelete.
    let (status, _) = bao
        .request(
            "POST",
            "/v1/secret/undelete/x",
            Some(json!({"versions": [1]})),
        )
        .unwrap();
    assert_eq!(status, 204);
    let r = run(WRITE, args(&bao, "x", patch), &[]);
    r.ok();
    assert_eq!(r.json["version"], json!(2));
    assert_eq!(
        bao.kv_get("x").unwrap().unwrap().0,
        json!({"k1": "new-Zq8x", "k2": "c-2-Zq8x", "k3": "c-3-Zq8x"})
    );
}

#[test]
fn patch_onto_a_destroyed_latest_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("x", json!({"k1": "c-1-Zq8x", "k2": "c-2-Zq8x"}))
        .unwrap();
    bao.kv_put("x", json!({"k1": "c-1-Zq8x", "k2": "c-3-Zq8x"}))
        .unwrap();
    bao.kv_destroy_versions("x", &[2]).unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "x",
            json!({"data": {"k1": "new-Zq8x"}, "patch": true}),
        ),
        &[],
    );
    r.fails();
    assert!(
        r.msg()
            .contains("refusing to patch secret/x: its latest version 2 is destroyed"),
        "{}",
        r.msg()
    );
    assert!(
        r.msg().contains("rollback_to") && r.msg().contains("patch: false"),
        "{}",
        r.msg()
    );
    assert_still_deleted(&bao, "x", 2);
    // The way out: a rollback to the live version 1 writes it whole as version 3.
    run(WRITE, args(&bao, "x", json!({"rollback_to": 1})), &[]).ok();
    assert_eq!(
        bao.kv_get("x").unwrap().unwrap(),
        (json!({"k1": "c-1-Zq8x", "k2": "c-2-Zq8x"}), 3)
    );
}

#[test]
fn latest_version_deleted_between_read_and_patch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("x", json!({"k1": "c-1-Zq8x", "k2": "c-2-Zq8x"}))
        .unwrap();
    let a = args(
        &bao,
        "x",
        json!({"data": {"k1": "new-Zq8x"}, "patch": true}),
    );
    let (handle, gate) = paused_run(dir.path(), a);
    delete_latest(&bao, "x");
    std::fs::write(&gate, b"").unwrap();
    let r = handle.join().unwrap();
    r.fails();
    assert!(
        r.msg()
            .contains("refusing to patch secret/x: its latest version 1 is deleted"),
        "{}",
        r.msg()
    );
    assert_still_deleted(&bao, "x", 1);
}

#[test]
fn dot_segments_in_url_options_are_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "1"})).unwrap();
    for (extra, what) in [
        (json!({"mount": ".."}), "`mount` \"..\""),
        (json!({"mount": "secret/x/.."}), "`mount` \"secret/x/..\""),
        (json!({"mount": "./secret"}), "`mount` \"./secret\""),
        (json!({"path": "x/../app"}), "`path` \"x/../app\""),
        (
            json!({"auth_method": "approle", "auth_mount": "../approle", "role_id": "role-canary-Zq8x", "secret_id": "s-canary-Zq8x"}),
            "`auth_mount` \"../approle\"",
        ),
        (
            json!({"auth_method": "userpass", "username": "..", "password": "p-canary-Zq8x"}),
            "`username` \"..\"",
        ),
    ] {
        let mut a = args(&bao, "app", json!({"data": {"a": "new-canary-Zq8x"}}));
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        for bin in [WRITE, READ] {
            let mut a = a.clone();
            if bin == READ {
                a.as_object_mut().unwrap().remove("data");
            }
            let r = run(bin, a, &[]);
            r.fails();
            assert!(
                r.msg().contains(what) && r.msg().contains("holds a `.` or `..` path segment"),
                "{extra}: {}",
                r.msg()
            );
            assert_no_secrets(&r.output, &["canary-Zq8x"]);
        }
    }
    assert_eq!(bao.kv_get("app").unwrap().unwrap(), (json!({"a": "1"}), 1));
}

#[test]
fn approle_with_exact_policy_userpass_and_token_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.write_policy(
        "app-write",
        r#"path "secret/data/app" { capabilities = ["read", "create", "update"] }"#,
    )
    .unwrap();
    let (role_id, secret_id) = bao.enable_approle("deployer", &["app-write"]).unwrap();
    let mut a = args(
        &bao,
        "app",
        json!({"data": {"k": "v1"}, "auth_method": "approle", "role_id": role_id, "secret_id": secret_id}),
    );
    a.as_object_mut().unwrap().remove("token");
    let r = run(WRITE, a.clone(), &[]);
    r.ok();
    assert_eq!(r.json["version"], json!(1));
    assert_no_secrets(&r.output, &[&secret_id]);
    // Same policy, a second path: denied, naming the capability.
    a["path"] = json!("other");
    let r = run(WRITE, a, &[]);
    r.fails();
    assert!(
        r.msg().contains("permission denied") && r.msg().contains("`read`"),
        "{}",
        r.msg()
    );
    assert!(r.msg().contains("secret/data/other"), "{}", r.msg());

    bao.enable_userpass("alice", "pw-canary-Zq8x", &["app-write"])
        .unwrap();
    let mut a = args(
        &bao,
        "app",
        json!({"data": {"k": "v2"}, "auth_method": "userpass", "username": "alice", "password": "pw-canary-Zq8x"}),
    );
    a.as_object_mut().unwrap().remove("token");
    let r = run(WRITE, a.clone(), &[]);
    r.ok();
    assert_eq!(r.json["version"], json!(2));
    a["password"] = json!("wrong-pw-canary");
    let r = run(WRITE, a, &[]);
    r.fails();
    assert!(r.msg().contains("userpass login"), "{}", r.msg());
    assert_no_secrets(&r.output, &["wrong-pw-canary"]);

    let r = run(
        WRITE,
        json!({"path": "app", "data": {"k": "v3"}}),
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", bao.root_token.as_str()),
        ],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(3));
    assert_no_secrets(&r.output, &[&bao.root_token]);
    // No token, no VAULT_TOKEN, and a HOME without a token file (the last fallback).
    let home = tempfile::tempdir().unwrap();
    let r = run(
        WRITE,
        json!({"path": "app", "data": {"k": "v3"}}),
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("HOME", home.path().to_str().unwrap()),
        ],
    );
    r.fails();
    assert!(r.msg().contains("no Vault token"), "{}", r.msg());
}

#[test]
fn write_only_token_behaviour_is_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("wo", json!({"a": "1", "b": "2"})).unwrap();
    bao.write_policy(
        "wo",
        r#"path "secret/data/wo" { capabilities = ["create", "update"] }"#,
    )
    .unwrap();
    let wo = bao.token_with_policy(&["wo"]).unwrap();
    let with = |tok: &str, extra: Value| {
        let mut a = args(&bao, "wo", extra);
        a["token"] = json!(tok);
        a
    };
    // Default (cas from the read): cannot learn the version → refuses, says what to grant.
    let r = run(WRITE, with(&wo, json!({"data": {"a": "1", "b": "3"}})), &[]);
    r.fails();
    assert!(r.msg().contains("metadata"), "{}", r.msg());
    assert_eq!(bao.current_version("wo").unwrap(), 1);
    // Explicit cas but unknown keys: the removal guard needs allow_remove.
    let r = run(
        WRITE,
        with(&wo, json!({"data": {"a": "1", "b": "3"}, "cas": 1})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("allow_remove"), "{}", r.msg());
    let r = run(
        WRITE,
        with(
            &wo,
            json!({"data": {"a": "1", "b": "3"}, "cas": 1, "allow_remove": true}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["values_compared"], json!(false));
    assert!(
        r.json["warnings"]
            .to_string()
            .contains("cannot read the values"),
        "{}",
        r.output
    );
    assert_eq!(bao.current_version("wo").unwrap(), 2);
    // Patch needs the `patch` capability or read.
    let r = run(
        WRITE,
        with(&wo, json!({"data": {"c": "1"}, "patch": true, "cas": 2})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("`patch` capability"), "{}", r.msg());

    // Middle ground: read on metadata and subkeys → CAS from metadata, key guards, always changed.
    bao.write_policy(
        "wo-meta",
        r#"path "secret/data/wo" { capabilities = ["create", "update"] }
path "secret/metadata/wo" { capabilities = ["read"] }
path "secret/subkeys/wo" { capabilities = ["read"] }"#,
    )
    .unwrap();
    let mid = bao.token_with_policy(&["wo-meta"]).unwrap();
    let r = run(WRITE, with(&mid, json!({"data": {"a": "1"}})), &[]);
    r.fails();
    assert!(r.msg().contains("key(s) b"), "{}", r.msg());
    let r = run(
        WRITE,
        with(&mid, json!({"data": {"a": "1", "b": "3", "c": "4"}})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["previous_version"], json!(2));
    assert_eq!(r.json["added_keys"], json!(["c"]));
    assert_eq!(bao.current_version("wo").unwrap(), 3);
}

#[test]
fn tls_needs_the_ca_or_validate_certs_false() {
    let dir = tempfile::tempdir().unwrap();
    let bao = lab::openbao::OpenBao::start_tls(dir.path()).unwrap();
    let ca = bao.ca_cert.clone().unwrap().display().to_string();
    let mut no_ca = args(&bao, "tls", json!({"data": {"a": "1"}}));
    no_ca.as_object_mut().unwrap().remove("ca_cert");
    let r = run(WRITE, no_ca.clone(), &[]);
    r.fails();
    assert!(
        r.msg().contains("TLS") && r.msg().contains("ca_cert"),
        "{}",
        r.msg()
    );
    assert_eq!(bao.current_version("tls").unwrap(), 0);

    run(WRITE, args(&bao, "tls", json!({"data": {"a": "1"}})), &[]).ok();
    let r = run(WRITE, no_ca.clone(), &[("VAULT_CACERT", ca.as_str())]);
    r.ok();
    assert_eq!(r.json["changed"], json!(false));
    let mut skip = no_ca.clone();
    skip["validate_certs"] = json!("false");
    skip["data"] = json!({"a": "2"});
    run(WRITE, skip, &[]).ok();
    let mut env_skip = no_ca;
    env_skip["data"] = json!({"a": "3"});
    run(WRITE, env_skip, &[("VAULT_SKIP_VERIFY", "true")]).ok();
    assert_eq!(bao.current_version("tls").unwrap(), 3);
}

#[test]
fn sealed_stopped_wrong_token_and_missing_mount_fail_clearly_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = start(dir.path());
    let data = fifteen("leak");
    let canaries = ["canary-leak-", bao.root_token.as_str()];

    let mut a = args(&bao, "app", json!({"data": data}));
    a["token"] = json!("s.wrong-token-canary-Zq8x");
    let r = run(WRITE, a, &[]);
    r.fails();
    assert!(
        r.msg().contains("permission denied") && r.msg().contains("wrong, expired"),
        "{}",
        r.msg()
    );
    assert_no_secrets(&r.output, &["wrong-token-canary", "canary-leak-"]);

    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": data, "mount": "nosuchmount"})),
        &[],
    );
    r.fails();
    assert!(
        r.msg()
            .contains("no KV v2 secrets engine is mounted at `nosuchmount/`"),
        "{}",
        r.msg()
    );
    assert_no_secrets(&r.output, &canaries);

    bao.seal().unwrap();
    let r = run(WRITE, args(&bao, "app", json!({"data": data})), &[]);
    r.fails();
    assert!(
        r.msg().contains("sealed") && r.msg().contains("unseal"),
        "{}",
        r.msg()
    );
    assert_no_secrets(&r.output, &canaries);

    let token = bao.root_token.clone();
    bao.stop();
    let r = run(WRITE, args(&bao, "app", json!({"data": data})), &[]);
    r.fails();
    assert!(r.msg().contains("refused the connection"), "{}", r.msg());
    assert_no_secrets(&r.output, &["canary-leak-", token.as_str()]);
}

#[test]
fn timeout_on_a_frozen_server_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.freeze();
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "1"}, "timeout": 1})),
        &[],
    );
    bao.thaw();
    r.fails();
    assert!(r.msg().contains("did not answer within"), "{}", r.msg());
}

#[test]
fn bad_arguments_are_refused_with_ansible_texts() {
    let r = run(
        WRITE,
        json!({"url": "http://127.0.0.1:9", "token": "s.some-token-value", "path": "p", "data": {"a": "1"}, "patch": "maybe"}),
        &[],
    );
    r.fails();
    assert!(
        r.msg()
            .contains("argument 'patch' is of type str and we were unable to convert to bool"),
        "{}",
        r.msg()
    );
    let r = run(
        WRITE,
        json!({"url": "http://127.0.0.1:9", "token": "s.some-token-value", "path": "p", "data": {"a": "1"}, "bogus": 1}),
        &[],
    );
    r.fails();
    assert!(
        r.msg()
            .starts_with("Unsupported parameters for (vault_full_write) module: bogus."),
        "{}",
        r.msg()
    );
    let r = run(
        WRITE,
        json!({"url": "http://127.0.0.1:9", "token": "s.some-token-value", "path": "p"}),
        &[],
    );
    r.fails();
    assert!(
        r.msg().contains("one of `data` or `rollback_to`"),
        "{}",
        r.msg()
    );
    let r = run(
        WRITE,
        json!({"url": "http://127.0.0.1:9", "token": "s.some-token-value", "path": "p", "data": {"a": "1"}, "remove_keys": ["a"]}),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("needs `patch: true`"), "{}", r.msg());
}

#[test]
fn namespace_from_env_is_sent_and_cli_mode_works() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": {"a": "value-1"}})),
        &[("VAULT_NAMESPACE", "team-x")],
    );
    r.fails();
    assert!(r.msg().contains("namespace not found"), "{}", r.msg());
    assert_eq!(bao.current_version("app").unwrap(), 0);

    let help = std::process::Command::new(WRITE)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--allow-remove"));
    let out = testkit::succeed(
        std::process::Command::new(WRITE)
            .args([
                "--path",
                "app",
                "--data",
                "a=cli-value-1",
                "--data",
                "b=cli-value-2",
                "--json",
            ])
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &bao.root_token),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], json!(1));
    let human = std::process::Command::new(WRITE)
        .args(["--path", "app", "--data", "a=cli-value-1", "--check"])
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &bao.root_token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        !human.status.success() && text.contains("key(s) b"),
        "{text}"
    );
    assert!(!text.contains("cli-value"), "{text}");
}

#[test]
fn keep_keys_makes_a_full_write_that_carries_keys_over_from_its_own_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = start(dir.path());
    bao.kv_put(
        "sso",
        json!({"id": "canary-k-id", "a": "canary-k-a", "b": "canary-k-b", "c": "canary-k-c"}),
    )
    .unwrap();
    bao.enable_audit().unwrap();
    // Rotate `a` (generated), keep the rest: one full write holding every key.
    let r = run(
        WRITE,
        args(
            &bao,
            "sso",
            json!({
                "generate": {"a": "token"},
                "keep_keys": ["id", "b", "c"],
                "required_keys": ["id", "a", "b", "c"],
                "cas": "1",
                "_ansible_diff": true,
            }),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["mode"], json!("full"));
    assert_eq!(r.json["changed_keys"], json!(["a"]));
    assert_eq!(r.json["version"], json!(2));
    let (data, _) = bao.kv_get("sso").unwrap().unwrap();
    assert_eq!(data["id"], json!("canary-k-id"));
    assert_eq!(data["b"], json!("canary-k-b"));
    assert_eq!(data["c"], json!("canary-k-c"));
    assert_ne!(data["a"], json!("canary-k-a"));
    assert_no_secrets(&r.output, &["canary-k-", data["a"].as_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
    let writes: Vec<String> = bao
        .audited_operations("secret/data/sso")
        .into_iter()
        .filter(|op| op != "read")
        .collect();
    assert!(
        writes.len() == 1 && writes[0] != "patch",
        "one full write, not a PATCH: {writes:?}"
    );

    // A key the current version lacks cannot be kept; a key cannot be both kept and written;
    // a patch keeps everything anyway. Each is refused before any write.
    for (extra, want) in [
        (
            json!({"data": {}, "keep_keys": ["id", "nope"]}),
            "`keep_keys` names nope which version 2 does not hold",
        ),
        (
            json!({"data": {"b": "canary-k-new"}, "keep_keys": ["b"]}),
            "`keep_keys` names b which `data` or `generate` also sets",
        ),
        (
            json!({"data": {}, "patch": true, "keep_keys": ["b"]}),
            "`keep_keys` is for full writes",
        ),
    ] {
        let r = run(WRITE, args(&bao, "sso", extra), &[]);
        r.fails();
        assert!(r.msg().contains(want), "{}", r.msg());
        assert_no_secrets(&r.output, &["canary-k-"]);
    }
    assert_eq!(bao.current_version("sso").unwrap(), 2, "nothing written");
}
