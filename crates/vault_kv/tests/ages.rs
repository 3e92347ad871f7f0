//! Key ages against a real OpenBao dev server: vault_full_write records each key it writes with a
//! new value in the secret's custom_metadata; vault_kv_read reports when each key last changed,
//! from those entries or from the version history.

mod common;

use common::*;
use serde_json::{json, Value};

fn custom(bao: &lab::openbao::OpenBao, path: &str) -> Value {
    bao.metadata(path).unwrap()["custom_metadata"].clone()
}

fn created(bao: &lab::openbao::OpenBao, path: &str, version: u64) -> Value {
    bao.metadata(path).unwrap()["versions"][version.to_string()]["created_time"].clone()
}

fn set_custom(bao: &lab::openbao::OpenBao, path: &str, body: Value) {
    let (status, v) = bao
        .request("POST", &format!("/v1/secret/metadata/{path}"), Some(body))
        .unwrap();
    assert!((200..300).contains(&status), "{status} {v}");
}

fn warnings(r: &Run) -> String {
    r.json["warnings"].to_string()
}

#[test]
fn a_write_records_version_and_time_of_each_new_value_and_keeps_other_entries() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "ages-a1-Zq8x", "b": "ages-b1-Zq8x"}))
        .unwrap();
    set_custom(
        &bao,
        "app",
        json!({"custom_metadata": {"owner": "team-sso"}}),
    );

    // Check mode: nothing recorded.
    let mut check = args(
        &bao,
        "app",
        json!({"data": {"a": "ages-a2-Zq8x", "b": "ages-b1-Zq8x"}}),
    );
    check["_ansible_check_mode"] = json!(true);
    let r = run(WRITE, check, &[]);
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!([]));
    assert_eq!(custom(&bao, "app"), json!({"owner": "team-sso"}));

    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "ages-a2-Zq8x", "b": "ages-b1-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(2));
    assert_eq!(r.json["recorded_keys"], json!(["a"]));
    assert_eq!(r.json["unrecorded_keys"], json!([]));
    assert!(r.json.get("warnings").is_none(), "{}", r.output);
    let t2 = created(&bao, "app", 2);
    assert_eq!(
        custom(&bao, "app"),
        json!({"owner": "team-sso", "rotated/a": format!("2@{}", t2.as_str().unwrap())})
    );

    // Generated keys are new values too; kept keys are not.
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"generate": {"c": "token"}, "keep_keys": ["a", "b"]}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["c"]));
    let t3 = created(&bao, "app", 3);
    let c = custom(&bao, "app");
    assert_eq!(c["rotated/c"], json!(format!("3@{}", t3.as_str().unwrap())));
    assert_eq!(c["rotated/a"], json!(format!("2@{}", t2.as_str().unwrap())));

    // Nothing to do: nothing recorded, the metadata untouched.
    let r = run(
        WRITE,
        args(&bao, "app", json!({"keep_keys": ["a", "b", "c"]})),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(custom(&bao, "app"), c);

    // A removed key's entry goes with it; OpenBao's metadata check-and-set is honoured.
    let cmv = bao.metadata("app").unwrap()["current_metadata_version"].clone();
    set_custom(
        &bao,
        "app",
        json!({"metadata_cas_required": true, "metadata_cas": cmv}),
    );
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"keep_keys": ["a", "c"], "allow_remove": true}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["removed_keys"], json!(["b"]));
    let c = custom(&bao, "app");
    assert!(c.get("rotated/b").is_none());
    assert_eq!(c["owner"], json!("team-sso"));
    assert_eq!(c["rotated/c"], json!(format!("3@{}", t3.as_str().unwrap())));

    // A patch write records the keys it sets with a new value.
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"patch": true, "data": {"a": "ages-a3-Zq8x", "c": c_value(&bao)}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["a"]));
    let t5 = created(&bao, "app", 5);
    assert_eq!(
        custom(&bao, "app")["rotated/a"],
        json!(format!("5@{}", t5.as_str().unwrap()))
    );
    assert_no_secrets(&r.output, &["ages-"]);
}

fn c_value(bao: &lab::openbao::OpenBao) -> Value {
    bao.kv_get("app").unwrap().unwrap().0["c"].clone()
}

#[test]
fn a_failure_to_record_keeps_the_write_and_warns_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "fail-a1-Zq8x"})).unwrap();
    // The policy before key ages: the metadata may be read, not patched nor updated.
    bao.write_policy(
        "old",
        r#"path "secret/data/app" { capabilities = ["create", "read", "update", "patch"] }
path "secret/metadata/app" { capabilities = ["read"] }"#,
    )
    .unwrap();
    let token = bao.token_with_policy(&["old"]).unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"token": token, "data": {"a": "fail-a2-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["version"], json!(2));
    assert_eq!(r.json["recorded_keys"], json!([]));
    assert_eq!(r.json["unrecorded_keys"], json!(["a"]));
    let w = warnings(&r);
    assert!(
        w.contains("wrote secret/app version 2, but could not record"),
        "{w}"
    );
    assert!(w.contains("The write itself stands"), "{w}");
    assert!(
        w.contains("grant `read` and `patch` on secret/metadata/app"),
        "{w}"
    );
    assert_eq!(bao.kv_get("app").unwrap().unwrap().1, 2);
    assert_no_secrets(&r.output, &["fail-a"]);

    // Without `patch` but with `update`: a read-modify-write of the metadata, other entries kept.
    set_custom(
        &bao,
        "app",
        json!({"custom_metadata": {"owner": "team-sso"}}),
    );
    bao.write_policy(
        "rmw",
        r#"path "secret/data/app" { capabilities = ["create", "read", "update"] }
path "secret/metadata/app" { capabilities = ["read", "update"] }"#,
    )
    .unwrap();
    let token = bao.token_with_policy(&["rmw"]).unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"token": token, "data": {"a": "fail-a3-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["a"]), "{}", r.output);
    let t3 = created(&bao, "app", 3);
    assert_eq!(
        custom(&bao, "app"),
        json!({"owner": "team-sso", "rotated/a": format!("3@{}", t3.as_str().unwrap())})
    );
}

#[test]
fn vaults_custom_metadata_limits_are_kept_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", json!({"a": "lim-a1-Zq8x"})).unwrap();
    let others: serde_json::Map<String, Value> =
        (0..63).map(|i| (format!("other{i}"), json!("x"))).collect();
    set_custom(&bao, "app", json!({"custom_metadata": others}));
    let r = run(
        WRITE,
        args(
            &bao,
            "app",
            json!({"data": {"a": "lim-a2-Zq8x", "b": "lim-b-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["version"], json!(2));
    assert_eq!(r.json["unrecorded_keys"], json!(["a", "b"]));
    assert!(
        warnings(&r).contains("would hold 65 entries, more than Vault's 64"),
        "{}",
        r.output
    );
    assert_eq!(custom(&bao, "app").as_object().unwrap().len(), 63);

    // A key name too long for a custom_metadata key: said, the others recorded.
    let long = "k".repeat(121);
    let r = run(
        WRITE,
        args(
            &bao,
            "long",
            json!({"data": {long.clone(): "lim-l-Zq8x", "s": "lim-s-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["s"]));
    assert_eq!(r.json["unrecorded_keys"], json!([long]));
    assert!(
        warnings(&r).contains("longer than 120 bytes"),
        "{}",
        r.output
    );
}
