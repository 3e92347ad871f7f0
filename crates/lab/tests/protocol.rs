//! The binary module protocol through the real ansible-playbook (connection local), with a small
//! test module built on `ansible_module`.

use lab::ansible::{module_library, run_playbook};
use std::path::Path;

const CANARY: &str = "canary-Zq9-protocol-secret";

fn library(dir: &Path) -> std::path::PathBuf {
    let lib = module_library(
        dir,
        &[(
            "protocol_probe",
            Path::new(env!("CARGO_BIN_EXE_protocol_probe")),
        )],
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protocol_probe.yml"),
        lib.join("protocol_probe.yml"),
    )
    .unwrap();
    lib
}

fn play(tasks: &str) -> String {
    format!("- hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}")
}

/// A play whose secret comes from a vars file (`probe_secret`), as in real playbooks: Ansible 2.19
/// quotes a failing task's source lines ("Origin: …"), so a literal in the task would leak.
fn play_with_secret(dir: &Path, tasks: &str) -> String {
    std::fs::write(dir.join("secrets.yml"), format!("probe_secret: {CANARY}\n")).unwrap();
    format!(
        "- hosts: localhost\n  gather_facts: false\n  vars_files: [secrets.yml]\n  tasks:\n{tasks}"
    )
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn normal_run_coerces_string_inputs_and_reports_changed() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let out = dir.path().join("r.json");
    let dump = dir.path().join("dump.txt");
    let pb = play(&format!(
        r#"    - protocol_probe:
        name: demo
        count: "5"
        flag: "false"
        tags: "a,b"
        dump_to: {dump}
      register: r
    - copy:
        content: "{{{{ r | to_json }}}}"
        dest: {out}
"#,
        dump = dump.display(),
        out = out.display()
    ));
    let run = run_playbook(dir.path(), &lib, &pb, &[], &[]).unwrap();
    run.assert_ok();
    assert!(
        run.stdout.contains("changed: [localhost]"),
        "{}",
        run.stdout
    );
    let r = read_json(&out);
    assert_eq!(r["count"], 5);
    assert_eq!(r["flag"], false);
    assert_eq!(r["flag_type"], "bool:false");
    assert_eq!(r["tags"], serde_json::json!(["a", "b"]));
    assert!(dump.exists(), "a normal run acts");
}

#[test]
fn check_mode_acts_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let dump = dir.path().join("dump.txt");
    let pb = play(&format!(
        "    - protocol_probe:\n        name: demo\n        dump_to: {}\n",
        dump.display()
    ));
    let run = run_playbook(dir.path(), &lib, &pb, &["--check"], &[]).unwrap();
    run.assert_ok();
    assert!(
        run.stdout.contains("changed: [localhost]"),
        "check mode predicts the change"
    );
    assert!(!dump.exists(), "check mode must not act");
}

#[test]
fn diff_mode_shows_a_diff_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play(&format!(
        "    - protocol_probe:\n        name: demo\n        secret: {CANARY}\n"
    ));
    let run = run_playbook(dir.path(), &lib, &pb, &["--diff"], &[]).unwrap();
    run.assert_ok();
    assert!(
        run.stdout.contains("+    \"name\": \"set\""),
        "{}",
        run.stdout
    );
    assert!(!run.all_output().contains(CANARY));
}

#[test]
fn unknown_option_fails_with_ansibles_text() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play("    - protocol_probe:\n        name: demo\n        bogus: 1\n");
    let run = run_playbook(dir.path(), &lib, &pb, &[], &[]).unwrap();
    run.assert_failed();
    assert!(
        run.all_output().contains(
            "Unsupported parameters for (protocol_probe) module: bogus. Supported parameters include: count, dump_to, fail, flag, mode, name, panic, secret, tags, want_changed (password)."
        ),
        "{}",
        run.all_output()
    );
}

#[test]
fn wrong_types_and_choices_fail_with_ansibles_text() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play("    - protocol_probe:\n        name: demo\n        flag: maybe\n");
    let run = run_playbook(dir.path(), &lib, &pb, &[], &[]).unwrap();
    run.assert_failed();
    assert!(run.all_output().contains("argument 'flag' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean."));
    let pb = play("    - protocol_probe:\n        mode: slow\n");
    let run = run_playbook(dir.path(), &lib, &pb, &[], &[]).unwrap();
    assert!(
        run.all_output()
            .contains("missing required arguments: name"),
        "{}",
        run.all_output()
    );
}

#[test]
fn panic_becomes_a_failed_task_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play_with_secret(
        dir.path(),
        "    - protocol_probe:\n        name: demo\n        panic: true\n        secret: \"{{ probe_secret }}\"\n",
    );
    let run = run_playbook(dir.path(), &lib, &pb, &["-vvvv"], &[]).unwrap();
    run.assert_failed();
    let all = run.all_output();
    assert!(all.contains("internal error (panic"), "{all}");
    assert!(!all.contains("deserialization failed"), "{all}");
    assert!(!all.contains(CANARY), "the panic text leaked the secret");
}

#[test]
fn no_log_task_hides_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play(&format!(
        "    - protocol_probe:\n        name: demo\n        secret: {CANARY}\n      no_log: true\n"
    ));
    let run = run_playbook(dir.path(), &lib, &pb, &["-vvv"], &[]).unwrap();
    run.assert_ok();
    assert!(
        run.stdout.contains("the output has been hidden"),
        "{}",
        run.stdout
    );
    assert!(!run.all_output().contains(CANARY));
}

#[test]
fn secret_appears_nowhere_at_vvvv_in_success_failure_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let pb = play_with_secret(
        dir.path(),
        "    - protocol_probe:\n        name: demo\n        password: \"{{ probe_secret }}\"\n    - protocol_probe:\n        name: demo\n        fail: true\n        secret: \"{{ probe_secret }}\"\n      ignore_errors: true\n    - protocol_probe:\n        name: from-env\n        fail: true\n      ignore_errors: true\n",
    );
    let run = run_playbook(
        dir.path(),
        &lib,
        &pb,
        &["-vvvv", "--diff"],
        &[("PROBE_SECRET", CANARY)],
    )
    .unwrap();
    run.assert_ok();
    let all = run.all_output();
    assert!(all.contains("auth failed for token ********"), "{all}");
    assert!(!all.contains(CANARY), "secret leaked:\n{all}");
}

#[test]
fn sidecar_doc_renders_with_ansible_doc() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let out = testkit::succeed(
        std::process::Command::new(lab::tools::venv_bin("ansible-doc"))
            .args(["-M"])
            .arg(&lib)
            .arg("protocol_probe")
            .env("ANSIBLE_NOCOLOR", "1"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("A test module built on"), "{text}");
    assert!(text.contains("no_log"), "{text}");
}

/// Runs the probe in module mode on raw args-file bytes; returns (exit code, stdout).
fn module_mode(bytes: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    std::fs::write(&args, bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protocol_probe"))
        .arg(&args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
    )
}

/// Exactly one JSON object on stdout, failed, with a message.
fn one_failed_object(stdout: &str) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line of output: {stdout:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(v["failed"], true, "{v}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

#[test]
fn broken_args_files_still_give_one_failed_json_object() {
    let secret_like = "s3cr3t-in-a-broken-args-file";
    for bytes in [
        b"{not json".to_vec(),
        format!("{{\"name\": \"{secret_like}\", ").into_bytes(),
        b"[1, 2, 3]".to_vec(),
        vec![b'{', b'"', b'n', b'"', b':', b'"', 0xff, 0xfe, b'"', b'}'],
        Vec::new(),
    ] {
        let (code, stdout) = module_mode(&bytes);
        assert_eq!(code, 1);
        let v = one_failed_object(&stdout);
        assert!(
            !v.to_string().contains(secret_like),
            "the args file's content leaked: {v}"
        );
    }
    // A missing args file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protocol_probe"))
        .arg("/nonexistent/args")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    one_failed_object(&String::from_utf8(out.stdout).unwrap());
}

#[test]
fn unknown_ansible_keys_are_ignored_and_ignore_unknown_opts_is_honoured() {
    let (code, stdout) = module_mode(
        br#"{"name": "x", "_ansible_future_key": {"a": 1}, "_ansible_check_mode": true, "_ansible_verbosity": 3}"#,
    );
    assert_eq!(code, 0, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["check_mode"], true);
    let (code, stdout) =
        module_mode(br#"{"name": "x", "bogus": 1, "_ansible_ignore_unknown_opts": true}"#);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout) = module_mode(br#"{"name": "x", "bogus": 1}"#);
    assert_eq!(code, 1);
    assert!(one_failed_object(&stdout)["msg"]
        .as_str()
        .unwrap()
        .starts_with("Unsupported parameters for (protocol_probe) module: bogus."));
}

#[test]
fn cli_mode_shares_the_options_and_prints_json_on_request() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protocol_probe"))
        .args([
            "--name",
            "cli",
            "--count",
            "7",
            "--flag=false",
            "--json",
            "--check",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 7);
    assert_eq!(v["flag"], false);
    assert_eq!(v["check_mode"], true);
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_protocol_probe"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success()
            && text.contains("--want-changed")
            && text.contains("[env: PROBE_SECRET]"),
        "{text}"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_protocol_probe"))
        .args(["--name", "x", "--count", "abc"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("unable to convert to int"));
}

#[test]
fn a_panic_after_a_state_change_reports_changed_and_unknown_state() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    // Before any state change: failed, nothing changed.
    let (code, stdout) = module_mode(br#"{"name": "x", "panic": true}"#);
    assert_eq!(code, 1);
    let v = one_failed_object(&stdout);
    assert_eq!(v["changed"], false, "{v}");
    // After one (the probe writes its file, then panics): changed, and the state is unknown.
    let args =
        serde_json::json!({"name": "x", "panic": true, "dump_to": dump.display().to_string()});
    let (code, stdout) = module_mode(args.to_string().as_bytes());
    assert_eq!(code, 1);
    let v = one_failed_object(&stdout);
    assert!(dump.exists(), "the state change happened");
    assert_eq!(v["changed"], true, "{v}");
    let msg = v["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("internal error (panic")
            && msg.contains("may have been sent")
            && msg.contains("re-run")
            && !msg.contains("nothing after this point was done"),
        "{msg}"
    );
}
