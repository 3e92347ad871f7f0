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
    assert_eq!(
        r.json["data"],
        json!({"client_secret": "read-canary-2-Zq8x", "port": 8080})
    );
    assert_eq!(r.json["metadata"]["version"], json!(2));
    assert_eq!(
        r.json["fingerprints"]["client_secret"],
        json!(vault_full_write::fingerprint(
            "salt-for-run-1",
            "read-canary-2-Zq8x"
        ))
    );
    assert_eq!(
        r.json["fingerprints"]["port"],
        json!(vault_full_write::fingerprint("salt-for-run-1", "8080"))
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
    assert_no_secrets(&r.output, &["read-canary-"]);
    assert_eq!(
        r.json["fingerprints"]["client_secret"],
        json!(vault_full_write::fingerprint(
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
        assert_no_secrets(&r.output, &["canary-Zq8x"]);
    }
    let r = run(READ, args(&bao, "app", json!({"version": 1})), &[]);
    r.ok();
    assert_eq!(r.json["version"], json!(1));
}
