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
    assert_eq!(r.json["recorded_keys"], json!(["a"]), "{}", warnings(&r));
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

/// The operations on the secret's data and metadata paths, from the audit log.
fn operations(bao: &lab::openbao::OpenBao, path: &str) -> (Vec<String>, Vec<String>) {
    // The audit device writes the response entry after answering; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    (
        bao.audited_operations(&format!("secret/data/{path}")),
        bao.audited_operations(&format!("secret/metadata/{path}")),
    )
}

#[test]
fn a_changed_write_is_one_read_one_write_and_one_metadata_patch() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = start(dir.path());
    bao.kv_put("reqs", json!({"a": "reqs-a1-Zq8x", "b": "reqs-b1-Zq8x"}))
        .unwrap();
    set_custom(
        &bao,
        "reqs",
        json!({"custom_metadata": {"owner": "team-sso", "rotated/gone": "1@2026-01-01T00:00:00Z"}}),
    );
    bao.enable_audit().unwrap();
    // `a` changes; the other entries stay (the server merges the patch into them).
    let r = run(
        WRITE,
        args(
            &bao,
            "reqs",
            json!({"data": {"a": "reqs-a2-Zq8x", "b": "reqs-b1-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["a"]));
    let (data, meta) = operations(&bao, "reqs");
    assert_eq!(data, ["read", "update"], "one read, one write of the data");
    assert_eq!(
        meta,
        ["patch"],
        "the entries merged by the server, no read of the metadata first"
    );
    let c = custom(&bao, "reqs");
    assert_eq!(c["owner"], json!("team-sso"), "{c}");
    assert_eq!(
        c["rotated/a"],
        json!(format!("2@{}", created(&bao, "reqs", 2).as_str().unwrap()))
    );
    assert_no_secrets(&r.output, &["reqs-a", "reqs-b"]);

    // A new secret: its metadata is known to be empty, so again no read of it.
    let r = run(
        WRITE,
        args(&bao, "reqs-new", json!({"data": {"a": "reqs-a1-Zq8x"}})),
        &[],
    );
    r.ok();
    let (data, meta) = operations(&bao, "reqs-new");
    assert_eq!(data, ["read", "create"], "{data:?}");
    assert_eq!(meta, ["patch"], "{meta:?}");
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

fn ages(bao: &lab::openbao::OpenBao, path: &str, extra: Value) -> Run {
    let mut a = json!({"key_ages": true, "return_values": false});
    a.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = run(READ, args(bao, path, a), &[]);
    r.ok();
    r
}

fn history(bao: &lab::openbao::OpenBao, path: &str, v: u64) -> Value {
    json!({"changed_in": v, "changed_at": created(bao, path, v), "source": "history"})
}

fn unknown(bao: &lab::openbao::OpenBao, path: &str, since: u64, why: &str) -> Value {
    json!({
        "changed_in": null,
        "changed_at": null,
        "source": "unknown",
        "unchanged_since": since,
        "unchanged_since_at": created(bao, path, since),
        "note": format!("unknown before version {since}: {why}"),
    })
}

#[test]
fn key_ages_come_from_the_version_history_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let v = |a: u8, b: u8| json!({"a": format!("hist-a{a}-Zq8x"), "b": format!("hist-b{b}-Zq8x"), "c": "hist-c-Zq8x"});
    bao.kv_put("hist", v(1, 1)).unwrap();
    bao.kv_put("hist", v(2, 1)).unwrap();
    let mut v3 = v(2, 2);
    v3["d"] = json!(7);
    bao.kv_put("hist", v3).unwrap();
    let r = ages(&bao, "hist", json!({}));
    assert_eq!(r.json["version"], json!(3));
    assert_eq!(r.json["key_ages_versions_read"], json!(2));
    assert_eq!(
        r.json["key_ages"],
        json!({
            "a": history(&bao, "hist", 2),
            "b": history(&bao, "hist", 3),
            "c": history(&bao, "hist", 1),
            "d": history(&bao, "hist", 3),
        })
    );
    assert!(r.json.get("secret").is_none() && r.json.get("fingerprints").is_none());
    assert_no_secrets(&r.output, &["hist-"]);

    // A bound on the versions read: what lies before is unknown, and said so.
    let r = ages(
        &bao,
        "hist",
        json!({"max_versions": "1", "keys": ["a", "b"]}),
    );
    assert_eq!(r.json["key_ages_versions_read"], json!(1));
    assert_eq!(
        r.json["key_ages"],
        json!({
            "a": unknown(&bao, "hist", 2, "versions before 2 were not read (`max_versions: 1`)"),
            "b": history(&bao, "hist", 3),
        })
    );

    // Versions pruned by KV's own max_versions.
    set_custom(&bao, "pruned", json!({"max_versions": 2}));
    for (a, b) in [(1, 1), (2, 1), (2, 2), (2, 3)] {
        bao.kv_put("pruned", v(a, b)).unwrap();
    }
    let r = ages(&bao, "pruned", json!({}));
    assert_eq!(r.json["key_ages"]["b"], history(&bao, "pruned", 4));
    assert_eq!(
        r.json["key_ages"]["a"],
        unknown(
            &bao,
            "pruned",
            3,
            "version 2 is no longer kept (KV v2 keeps `max_versions` versions)"
        )
    );

    // `version` and key ages do not mix.
    let r = run(
        READ,
        args(&bao, "hist", json!({"key_ages": true, "version": 2})),
        &[],
    );
    r.fails();
    assert!(r.msg().contains("leave `version` unset"), "{}", r.output);
}

#[test]
fn key_ages_from_metadata_history_deleted_and_destroyed_versions() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    let put = |m: Value| bao.kv_put("gaps", m).unwrap();
    let s = |k: &str, n: u8| json!(format!("gaps-{k}{n}-Zq8x"));
    let mut d = json!({"a": s("a", 1), "b": s("b", 1), "c": s("c", 1), "e": s("e", 1)});
    put(d.clone()); // v1, before key ages existed
    d["e"] = s("e", 2);
    let r = run(WRITE, args(&bao, "gaps", json!({"data": d.clone()})), &[]);
    assert_eq!(r.json["recorded_keys"], json!(["e"]), "{}", r.output); // v2
    d["a"] = s("a", 2);
    put(d.clone()); // v3, not recorded
    d["b"] = s("b", 2);
    put(d.clone()); // v4, to be destroyed
    d["c"] = s("c", 2);
    put(d.clone()); // v5
    d["b"] = s("b", 3);
    let r = run(WRITE, args(&bao, "gaps", json!({"data": d.clone()})), &[]);
    assert_eq!(r.json["recorded_keys"], json!(["b"]), "{}", r.output); // v6
    d["b"] = s("b", 4);
    put(d.clone()); // v7: b changed again, not recorded: its entry is stale
    d["f"] = s("f", 1);
    put(d.clone()); // v8
    bao.kv_destroy_versions("gaps", &[4]).unwrap();
    let e2 = json!({"changed_in": 2, "changed_at": created(&bao, "gaps", 2), "source": "metadata"});

    let r = ages(&bao, "gaps", json!({}));
    assert_eq!(
        r.json["key_ages"],
        json!({
            "f": history(&bao, "gaps", 8),
            "b": history(&bao, "gaps", 7),
            "a": unknown(&bao, "gaps", 5, "version 4 is destroyed"),
            "c": unknown(&bao, "gaps", 5, "version 4 is destroyed"),
            // Older than the readable history: its entry, which nothing read contradicts.
            "e": e2,
        }),
        "{}",
        r.output
    );
    assert_eq!(r.json["key_ages_versions_read"], json!(3));
    assert_no_secrets(&r.output, &["gaps-"]);

    // A soft-deleted version stops the history too.
    bao.kv_delete_versions("gaps", &[6]).unwrap();
    let r = ages(&bao, "gaps", json!({}));
    let a = unknown(&bao, "gaps", 7, "version 6 is deleted");
    assert_eq!(r.json["key_ages"]["a"], a);
    assert_eq!(r.json["key_ages"]["e"], e2);
    // b's stale entry (version 6) is no longer contradicted by a readable version: it counts.
    assert_eq!(
        r.json["key_ages"]["b"],
        json!({"changed_in": 6, "changed_at": created(&bao, "gaps", 6), "source": "metadata"})
    );

    // The latest write recorded by the module needs no history at all.
    d["a"] = s("a", 3);
    run(WRITE, args(&bao, "gaps", json!({"data": d.clone()})), &[]).ok(); // v9
    let r = ages(&bao, "gaps", json!({"keys": ["a"]}));
    assert_eq!(r.json["key_ages_versions_read"], json!(0));
    assert_eq!(
        r.json["key_ages"]["a"],
        json!({"changed_in": 9, "changed_at": created(&bao, "gaps", 9), "source": "metadata"})
    );
}

#[test]
fn the_playbooks_policy_allows_exactly_what_key_ages_need() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.write_policy("homelab-sso", lab::stack::PLAYBOOK_POLICY)
        .unwrap();
    let token = bao.token_with_policy(&["homelab-sso"]).unwrap();
    bao.kv_put(
        "homelab-sso",
        json!({"a": "pol-a1-Zq8x", "b": "pol-b1-Zq8x"}),
    )
    .unwrap();
    bao.kv_put(
        "homelab-sso",
        json!({"a": "pol-a1-Zq8x", "b": "pol-b2-Zq8x"}),
    )
    .unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "homelab-sso",
            json!({"token": token, "generate": {"a": "token"}, "keep_keys": ["b"]}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["a"]), "{}", r.output);
    assert!(r.json.get("warnings").is_none(), "{}", r.output);
    let r = run(
        READ,
        args(
            &bao,
            "homelab-sso",
            json!({"token": token, "key_ages": true, "return_values": false}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["key_ages"]["a"]["source"], json!("metadata"));
    assert_eq!(r.json["key_ages"]["b"], history(&bao, "homelab-sso", 2));
    // secret/pocketid's API key too, by a patch write.
    bao.kv_put("pocketid", json!({"api_key": "pol-k1-Zq8x"}))
        .unwrap();
    let r = run(
        WRITE,
        args(
            &bao,
            "pocketid",
            json!({"token": token, "patch": true, "data": {"api_key": "pol-k2-Zq8x"}}),
        ),
        &[],
    );
    r.ok();
    assert_eq!(r.json["recorded_keys"], json!(["api_key"]), "{}", r.output);
    // Nothing more: no metadata written elsewhere, none replaced whole, none deleted.
    for (method, path) in [
        ("POST", "/v1/secret/metadata/other"),
        ("POST", "/v1/secret/metadata/homelab-sso"),
        ("DELETE", "/v1/secret/metadata/homelab-sso"),
    ] {
        let (status, _) = bao
            .request_as(
                &token,
                method,
                path,
                Some(json!({"custom_metadata": {"x": "y"}})),
            )
            .unwrap();
        assert_eq!(status, 403, "{method} {path}");
    }
}
