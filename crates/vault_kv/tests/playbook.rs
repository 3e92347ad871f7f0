//! Through the real ansible-playbook: Forgejo-style string inputs, check mode, and no secret in
//! `-vvvv` output, failures included.

mod common;

use common::*;
use lab::ansible::{module_library, run_playbook};
use serde_json::{json, Value};
use std::path::Path;

const PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  vars_files: [vars.json]
  tasks:
    - name: write the secret
      vault_full_write:
        url: "{{ addr }}"
        token: "{{ tok }}"
        path: app
        data: "{{ canary }}"
        patch: "false"
        cas: "{{ cas }}"
      register: w
      ignore_errors: "{{ may_fail }}"
    - name: keep the result
      copy:
        content: "{{ w | to_json }}"
        dest: "{{ out }}/w.json"
      check_mode: false
    - name: read fingerprints
      vault_kv_read:
        url: "{{ addr }}"
        token: "{{ tok }}"
        path: app
        salt: run-salt-1
        return_values: "false"
      register: r
      ignore_errors: "{{ may_fail }}"
    - name: keep the read
      copy:
        content: "{{ r | to_json }}"
        dest: "{{ out }}/r.json"
      check_mode: false
"#;

fn vars(dir: &Path, addr: &str, tok: &str, canary: &Value, cas: &str, may_fail: bool) {
    let v = json!({
        "addr": addr, "tok": tok, "canary": canary, "cas": cas,
        "may_fail": may_fail, "out": dir.display().to_string()
    });
    std::fs::write(dir.join("vars.json"), v.to_string()).unwrap();
}

fn result(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

fn library(dir: &Path) -> std::path::PathBuf {
    module_library(
        dir,
        &[
            ("vault_full_write", Path::new(WRITE)),
            ("vault_kv_read", Path::new(READ)),
        ],
    )
    .unwrap()
}

#[test]
fn string_inputs_check_mode_and_fingerprints_through_ansible() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(&dir.path().join("bao"));
    for i in 0..3 {
        bao.kv_put("app", json!({"key_01": format!("old-{i}")}))
            .unwrap();
    }
    let work = dir.path().join("pb");
    std::fs::create_dir_all(&work).unwrap();
    let lib = library(&work);
    let canary = fifteen("pb");

    // --check first: predicts, writes nothing (the guard needs allow_remove? no: key_01 stays).
    vars(&work, &bao.addr, &bao.root_token, &canary, "3", false);
    let run1 = run_playbook(&work, &lib, PLAYBOOK, &["--check", "--diff"], &[]).unwrap();
    run1.assert_ok();
    let w = result(&work, "w.json");
    assert_eq!(w["changed"], json!(true), "{w}");
    assert_eq!(w["version"], json!(4));
    assert_eq!(bao.current_version("app").unwrap(), 3);
    assert_no_secrets(&run1.all_output(), &["canary-pb-", &bao.root_token]);

    // For real: `patch: "false"` and `cas: "3"` act as typed values.
    let run2 = run_playbook(&work, &lib, PLAYBOOK, &["-vvvv"], &[]).unwrap();
    run2.assert_ok();
    let w = result(&work, "w.json");
    assert_eq!(w["changed"], json!(true), "{w}");
    assert_eq!(w["version"], json!(4));
    assert_eq!(w["previous_version"], json!(3));
    assert_eq!(w["mode"], json!("full"));
    assert_eq!(bao.kv_get("app").unwrap().unwrap(), (canary.clone(), 4));
    let r = result(&work, "r.json");
    assert_eq!(
        r["fingerprints"]["key_03"],
        json!(vault_kv::fingerprint("run-salt-1", "canary-pb-03-Zq8x"))
    );
    assert!(r.get("data").is_none());
    assert_no_secrets(&run2.all_output(), &["canary-pb-", &bao.root_token]);
}

#[test]
fn failures_at_vvvv_never_show_the_token_or_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = start(&dir.path().join("bao"));
    let work = dir.path().join("pb");
    std::fs::create_dir_all(&work).unwrap();
    let lib = library(&work);
    let canary = fifteen("fail");
    let root = bao.root_token.clone();

    // Wrong token.
    vars(
        &work,
        &bao.addr,
        "s.wrong-token-canary-Zq8x",
        &canary,
        "auto",
        true,
    );
    let run = run_playbook(&work, &lib, PLAYBOOK, &["-vvvv"], &[]).unwrap();
    let out = run.all_output();
    assert!(out.contains("permission denied"), "{out}");
    assert_no_secrets(&out, &["canary-fail-", "wrong-token-canary"]);

    // Sealed server.
    vars(&work, &bao.addr, &root, &canary, "auto", true);
    bao.seal().unwrap();
    let run = run_playbook(&work, &lib, PLAYBOOK, &["-vvvv"], &[]).unwrap();
    let out = run.all_output();
    assert!(out.contains("is sealed"), "{out}");
    assert_no_secrets(&out, &["canary-fail-", &root]);

    // Stopped server.
    bao.stop();
    let run = run_playbook(&work, &lib, PLAYBOOK, &["-vvvv"], &[]).unwrap();
    let out = run.all_output();
    assert!(out.contains("refused the connection"), "{out}");
    assert_no_secrets(&out, &["canary-fail-", &root]);
}

/// The deprecated `data` return value through ansible-playbook and the collection's action
/// plugin: reading `secret` warns of nothing; reading `data` gives ansible-core's deprecation
/// warning naming the collection and the removal version. The play registers the read with
/// no_log, as the docs say.
#[test]
fn reading_data_warns_that_it_is_deprecated_and_reading_secret_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(&dir.path().join("bao"));
    bao.kv_put("app", json!({"k": "deprecation-canary-Zq8x"}))
        .unwrap();
    let work = dir.path().join("pb");
    std::fs::create_dir_all(&work).unwrap();
    let lib = library(&work);
    let vars = json!({"addr": bao.addr, "tok": bao.root_token});
    std::fs::write(work.join("vars.json"), vars.to_string()).unwrap();
    let play = |check: &str| {
        format!(
            r#"
- hosts: localhost
  gather_facts: false
  vars_files: [vars.json]
  tasks:
    - name: read the values
      homelab.sso.vault_kv_read:
        url: "{{{{ addr }}}}"
        token: "{{{{ tok }}}}"
        path: app
      register: r
      no_log: true
    - name: check
      assert:
        that: {check}
"#
        )
    };
    // The lab's runner turns deprecation warnings off (ansible-core's own are noise there).
    let warnings = [("ANSIBLE_DEPRECATION_WARNINGS", "1")];
    let run = run_playbook(
        &work,
        &lib,
        &play("r.secret.k == 'deprecation-canary-Zq8x'"),
        &[],
        &warnings,
    )
    .unwrap();
    run.assert_ok();
    let out = run.all_output();
    assert!(!out.contains("renamed `secret`"), "{out}");

    let run = run_playbook(&work, &lib, &play("r.data == r.secret"), &[], &warnings).unwrap();
    run.assert_ok();
    let out = run.all_output();
    assert!(out.contains("[DEPRECATION WARNING]"), "{out}");
    assert!(out.contains("renamed `secret`"), "{out}");
    assert!(out.contains("homelab.sso"), "{out}");
    assert!(out.contains("1.1.0"), "{out}");
    assert_no_secrets(&out, &["deprecation-canary-", &bao.root_token]);
}
