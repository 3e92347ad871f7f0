//! env_harvest against the lab's real sshd and pct stand-in, through the real binary in module
//! mode. Values are compared in the test, never printed.

use lab::catalog;
use lab::fixtures::Containers;
use lab::sshd::{Sshd, SshdLab};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

struct Lab {
    tmp: tempfile::TempDir,
    cts: Containers,
    sshd: Sshd,
    values: BTreeMap<String, String>,
}

fn canary_values() -> BTreeMap<String, String> {
    catalog::vault_keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            // Characters compose must unescape: quote, backslash, dollar.
            let v = format!("canary-{i}-Zq8\"x\\y$z-{}", k.len() * 7919);
            (k, v)
        })
        .collect()
}

fn lab() -> Option<Lab> {
    let values = canary_values();
    let SshdLab { tmp, cts, sshd } =
        SshdLab::start(|cts| cts.populate_runbook(&values)).unwrap()?;
    Some(Lab {
        tmp,
        cts,
        sshd,
        values,
    })
}

fn catalog_targets() -> Vec<Value> {
    catalog::services()
        .into_iter()
        .map(|s| {
            let keys: serde_json::Map<String, Value> = s
                .keys
                .iter()
                .map(|(k, e)| (k.clone(), Value::String(e.clone())))
                .collect();
            json!({"name": s.name, "vmid": s.vmid, "path": s.env_path, "keys": keys})
        })
        .collect()
}

impl Lab {
    fn base(&self, targets: Vec<Value>) -> Value {
        json!({
            "host": self.sshd.host,
            "port": self.sshd.port,
            "user": self.sshd.user,
            "private_key": self.sshd.private_key,
            "known_hosts": self.sshd.known_hosts,
            "pct_path": self.sshd.pct_path,
            "timeout": 20,
            "targets": targets,
        })
    }

    /// Runs the binary in module mode with a hard deadline; returns the result JSON.
    fn run(&self, args: &Value) -> Value {
        run_module(args)
    }
}

fn run_module(args: &Value) -> Value {
    testkit::module::spawn_module(Path::new(env!("CARGO_BIN_EXE_env_harvest")), args, &[], &[])
        .finish(Duration::from_secs(120))
        .json
}

fn status_of<'a>(r: &'a Value, name: &str) -> &'a str {
    r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["status"].as_str())
        .unwrap_or("<none>")
}

#[test]
fn harvests_the_runbook_fixture_exactly() {
    let Some(l) = lab() else { return };
    let mut args = l.base(catalog_targets());
    args["salt"] = json!("salt-1");
    args["_ansible_check_mode"] = json!(true);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "failed: {}", r["msg"]);
    assert_eq!(r["changed"], false);
    let values = r["values"].as_object().expect("values");
    assert_eq!(values.len(), 15);
    for (k, v) in &l.values {
        assert!(
            values.get(k).and_then(Value::as_str) == Some(v.as_str()),
            "value of {k} differs"
        );
        assert_eq!(
            r["fingerprints"][k],
            ansible_module::fingerprint("salt-1", v),
            "fingerprint of {k}"
        );
    }
    for t in r["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "ok", "{}", t["name"]);
    }
    // Nothing outside `values` carries a value.
    let mut rest = r.clone();
    rest.as_object_mut().unwrap().remove("values");
    let text = rest.to_string();
    for v in l.values.values() {
        assert!(
            !text.contains(v.as_str()),
            "a value leaked outside `values`"
        );
    }
    assert!(l
        .sshd
        .log()
        .contains(&format!("Accepted publickey for {}", l.sshd.user)));
}

#[test]
fn pct_error_cases_map_to_statuses() {
    let Some(l) = lab() else { return };
    // A directory in place of the file.
    l.cts.add(124, "dir-svc", true).unwrap();
    std::fs::create_dir_all(l.cts.file(124, "/opt/homelab/dir-svc/.env")).unwrap();
    // A malformed file whose error must not echo its secret text.
    l.cts.add(125, "bad-svc", true).unwrap();
    l.cts
        .write_file(
            125,
            "/opt/homelab/bad-svc/.env",
            b"A=1\nSECRET=\"s3cr3t-leak-check\n",
        )
        .unwrap();
    let t = |name: &str, vmid: u32, path: &str| json!({"name": name, "vmid": vmid, "path": path, "keys": {"k": "SECRET"}});
    let targets = vec![
        t("missing-ct", 999, "/opt/homelab/x/.env"),
        t(
            "stopped",
            catalog::VMID_STOPPED,
            "/opt/homelab/stopped-svc/.env",
        ),
        t(
            "no-file",
            catalog::VMID_NO_FILE,
            "/opt/homelab/no-env-svc/.env",
        ),
        t(
            "locked",
            catalog::VMID_PERMISSION_DENIED,
            "/opt/homelab/locked-svc/.env",
        ),
        t("dir", 124, "/opt/homelab/dir-svc/.env"),
        t("bad", 125, "/opt/homelab/bad-svc/.env"),
    ];
    let mut args = l.base(targets);
    args["fail_on_missing"] = json!(false);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(status_of(&r, "missing-ct"), "container_missing");
    assert_eq!(status_of(&r, "stopped"), "container_stopped");
    assert_eq!(status_of(&r, "no-file"), "file_missing");
    assert_eq!(status_of(&r, "locked"), "permission_denied");
    assert_eq!(status_of(&r, "dir"), "file_missing");
    assert_eq!(status_of(&r, "bad"), "parse_error");
    assert!(
        !r.to_string().contains("s3cr3t"),
        "parse error leaked file text"
    );
    for t in r["targets"].as_array().unwrap() {
        assert_eq!(t["missing_keys"], json!(["k"]));
    }
    // With fail_on_missing (the default) the same run fails and names keys, never values.
    args["fail_on_missing"] = json!(true);
    let r = l.run(&args);
    assert_eq!(r["failed"], true);
    assert!(r["msg"]
        .as_str()
        .unwrap()
        .contains("required keys missing: k"));
    assert_eq!(r["values"], Value::Null);
    // Optional keys do not fail the run.
    let mut args = l.base(vec![json!({"name": "no-file", "vmid": catalog::VMID_NO_FILE, "path": "/opt/homelab/no-env-svc/.env", "keys": {"k": "X"}, "optional_keys": ["k"]})]);
    args["fail_on_missing"] = json!(true);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
}

/// Runs the module with `args`: it must fail saying `text`, and sshd must have seen no
/// authentication attempt (the host key is checked first).
fn refused_before_auth(l: &Lab, args: &Value, text: &str) {
    let r = l.run(args);
    assert_eq!(r["failed"], true);
    assert!(r["msg"].as_str().unwrap().contains(text), "{}", r["msg"]);
    // sshd writes its log line after the connection closes.
    std::thread::sleep(Duration::from_millis(300));
    assert_no_auth_attempt(l);
}

fn assert_no_auth_attempt(l: &Lab) {
    let log = l.sshd.log();
    let user = &l.sshd.user;
    for needle in [
        format!("for {user} "),
        format!("user {user} "),
        format!("for {user}\n"),
    ] {
        assert!(
            !log.contains(&needle),
            "sshd saw an authentication attempt ({needle:?}):\n{log}"
        );
    }
}

#[test]
fn wrong_host_key_fails_before_authentication() {
    let Some(l) = lab() else { return };
    let wrong = l.tmp.path().join("wrong_known_hosts");
    // A valid ed25519 key that is not the server's.
    std::fs::write(
        &wrong,
        format!(
            "# comment\nnot a valid line at all\n[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            l.sshd.port
        ),
    )
    .unwrap();
    let mut args = l.base(catalog_targets());
    args["known_hosts"] = json!(wrong);
    let r = l.run(&args);
    assert_eq!(r["failed"], true);
    assert!(
        r["msg"].as_str().unwrap().contains("HOST KEY MISMATCH"),
        "{}",
        r["msg"]
    );
    // A wrong pin fails the same way; the right pin works without known_hosts.
    let mut args = l.base(vec![]);
    args["known_hosts"] = json!(l.tmp.path().join("none"));
    args["host_key_fingerprint"] = json!("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    refused_before_auth(&l, &args, "HOST KEY MISMATCH");
    args["host_key_fingerprint"] = json!(l.sshd.host_key_fingerprint);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
}

#[test]
fn unknown_host_fails_unless_accept_new() {
    let Some(l) = lab() else { return };
    let kh = l.tmp.path().join("kh_new");
    std::fs::write(&kh, "# my hosts\n").unwrap();
    let mut args = l.base(vec![]);
    args["known_hosts"] = json!(kh);
    refused_before_auth(&l, &args, "is not in");
    args["host_key_checking"] = json!("accept-new");
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(r["host_key_added"], true);
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("# my hosts\n"), "existing lines kept");
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains(&format!("[127.0.0.1]:{} ssh-ed25519 ", l.sshd.port)));
    // Now strict mode matches.
    args["host_key_checking"] = json!("strict");
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(r["host_key_added"], false);
}

#[test]
fn injection_attempts_are_rejected_and_harmless() {
    let Some(l) = lab() else { return };
    let marker = l.tmp.path().join("injected");
    let m = marker.display().to_string();
    let cases = vec![
        json!({"name": "vmid", "vmid": format!("119; touch {m}"), "path": "/opt/homelab/oauth2-gateway/.env"}),
        json!({"name": "quote", "vmid": 119, "path": format!("/opt/x'; touch {m}; '")}),
        json!({"name": "subst", "vmid": 119, "path": format!("/opt/$(touch {m})/.env")}),
        json!({"name": "dotdot", "vmid": 119, "path": "/opt/../../etc/shadow"}),
        json!({"name": "dash", "vmid": 119, "path": "-la"}),
        json!({"name": "dash-vmid", "vmid": "-119", "path": "/opt/homelab/oauth2-gateway/.env"}),
    ];
    for c in cases {
        let r = l.run(&l.base(vec![c.clone()]));
        assert_eq!(r["failed"], true, "{} was accepted", c["name"]);
        assert!(
            r["msg"].as_str().unwrap().contains("target 1"),
            "{}",
            r["msg"]
        );
    }
    // Nothing reached the server: no session at all.
    assert!(
        !l.sshd.log().contains("Accepted publickey"),
        "a connection was made for a rejected target"
    );
    // pct_path is validated too.
    let mut args = l.base(catalog_targets());
    args["pct_path"] = json!(format!("/usr/sbin/pct; touch {m}"));
    assert_eq!(l.run(&args)["failed"], true);
    assert!(!marker.exists(), "an injected command ran");
}

#[test]
fn hostile_output_is_bounded_and_sanitized() {
    let Some(l) = lab() else { return };
    // 3 MB on stderr before the file, with ANSI escapes and control characters.
    l.cts.add(140, "noisy", true).unwrap();
    let mut noise = b"\x1b[31mRED\x1b[0m\x07\x1b]0;title\x07 ".to_vec();
    noise.extend(std::iter::repeat_n(b'E', 3 * 1024 * 1024));
    std::fs::write(l.cts.dir(140).join("stderr"), &noise).unwrap();
    l.cts
        .write_file(140, "/opt/homelab/noisy/.env", b"TOKEN=noisy-canary-1\n")
        .unwrap();
    // A 50 MB file.
    l.cts.add(141, "huge", true).unwrap();
    let big = vec![b'A'; 50 * 1024 * 1024];
    l.cts
        .write_file(141, "/opt/homelab/huge/.env", &big)
        .unwrap();
    // Invalid UTF-8 (read as compose reads it: see non_utf8_values_are_flagged_and_kept_whole).
    l.cts.add(142, "binary", true).unwrap();
    l.cts
        .write_file(
            142,
            "/opt/homelab/binary/.env",
            b"TOKEN=binary-canary-2\nBAD=\xff\xfe\n",
        )
        .unwrap();
    // A failing command whose stderr is hostile: exit status 1 with escapes in the message.
    l.cts.add(143, "evil-err", true).unwrap();
    std::fs::write(l.cts.dir(143).join("stderr"), b"\x1b[2J\x1b[Hboom\r\n").unwrap();
    let t = |name: &str, vmid: u32| json!({"name": name, "vmid": vmid, "path": format!("/opt/homelab/{name}/.env"), "keys": {"token": "TOKEN"}});
    let mut args = l.base(vec![
        t("noisy", 140),
        t("huge", 141),
        t("binary", 142),
        t("evil-err", 143),
    ]);
    args["fail_on_missing"] = json!(false);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(status_of(&r, "noisy"), "ok");
    assert_eq!(r["values"]["token"], "noisy-canary-1");
    assert_eq!(status_of(&r, "huge"), "parse_error");
    assert_eq!(status_of(&r, "binary"), "ok");
    // Not classified as a file problem: the stderr does not start with `cat: `.
    assert_eq!(status_of(&r, "evil-err"), "ssh_error");
    let text = r.to_string();
    assert!(
        text.len() < 64 * 1024,
        "result is not bounded: {} bytes",
        text.len()
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "control characters in the result"
    );
}

#[test]
fn direct_mode_and_parallel_many() {
    let Some(l) = lab() else { return };
    // 30 containers over one connection with 8 channels in flight.
    let mut targets = Vec::new();
    for i in 0..30u32 {
        let vmid = 200 + i;
        let name = format!("svc{i}");
        l.cts.add(vmid, &name, true).unwrap();
        l.cts
            .write_file(
                vmid,
                &format!("/opt/homelab/{name}/.env"),
                format!("TOKEN=t-{i}\n").as_bytes(),
            )
            .unwrap();
        targets.push(json!({"name": name, "vmid": vmid, "path": format!("/opt/homelab/{name}/.env"), "keys": {format!("k{i}"): "TOKEN"}}));
    }
    let r = l.run(&l.base(targets));
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    for i in 0..30 {
        assert_eq!(r["values"][format!("k{i}")], format!("t-{i}"));
    }
    assert_eq!(
        l.sshd.log().matches("Accepted publickey").count(),
        1,
        "exactly one SSH connection"
    );
    // direct mode: cat on the SSH host itself.
    let host_file = l.cts.file(119, "/opt/homelab/oauth2-gateway/.env");
    let mut args = l.base(vec![json!({"name": "direct", "path": host_file, "keys": {"pocketid_client_id": "OAUTH2_PROXY_CLIENT_ID"}})]);
    args["mode"] = json!("direct");
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert!(r["values"]["pocketid_client_id"] == l.values["pocketid_client_id"].as_str());
}

/// Real ansible-playbook at -vvvv: canary values never appear in its output, for a successful
/// run (registered no_log), a failing run and a parse error.
#[test]
fn ansible_playbook_never_prints_values() {
    let Some(l) = lab() else { return };
    let dir = l.tmp.path().join("pb");
    std::fs::create_dir_all(&dir).unwrap();
    let library = lab::ansible::module_library(
        &dir,
        &[("env_harvest", Path::new(env!("CARGO_BIN_EXE_env_harvest")))],
    )
    .unwrap();
    l.cts.add(125, "bad-svc", true).unwrap();
    l.cts
        .write_file(
            125,
            "/opt/homelab/bad-svc/.env",
            b"SECRET=\"bad-canary-77\n",
        )
        .unwrap();
    let mut ok_args = l.base(catalog_targets());
    ok_args["salt"] = json!("s");
    let mut bad_args = l.base(vec![
        json!({"name": "bad", "vmid": 125, "path": "/opt/homelab/bad-svc/.env", "keys": {"k": "SECRET"}}),
        json!({"name": "gw", "vmid": 119, "path": "/opt/homelab/oauth2-gateway/.env", "keys": {"pocketid_client_secret": "OAUTH2_PROXY_CLIENT_SECRET", "k": "NOPE"}}),
    ]);
    bad_args["fail_on_missing"] = json!(true);
    let playbook = format!(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: harvest\n      env_harvest: {ok}\n      register: h\n      no_log: true\n\
         \x20   - name: count\n      assert:\n        that: [\"h['values'] | length == 15\"]\n\
         \x20   - name: fingerprints are fine to show\n      debug:\n        var: h.fingerprints\n\
         \x20   - name: failing harvest\n      env_harvest: {bad}\n      register: b\n      ignore_errors: true\n\
         \x20   - name: it failed\n      assert:\n        that: [\"b is failed\"]\n",
        ok = ok_args,
        bad = bad_args
    );
    let run = lab::ansible::run_playbook(&dir, &library, &playbook, &["-vvvv"], &[]).unwrap();
    run.assert_ok();
    let out = run.all_output();
    for v in l.values.values() {
        assert!(
            !out.contains(v.as_str()),
            "a canary value appeared in ansible-playbook output"
        );
    }
    assert!(!out.contains("bad-canary-77"));
}

/// Issue #12: a deployed `abc$SuperSecretTail` was reported as `line 2: $SuperSecretTail`, and a
/// Latin-1 file was refused whole although compose reads it. Now an unset reference names the
/// line and the key holding it; a value that is not UTF-8 is flagged, returned base64-encoded in
/// `values_base64` (never in `values`), and fingerprinted over its raw bytes.
#[test]
fn non_utf8_values_are_flagged_and_unset_references_name_keys_only() {
    let Some(l) = lab() else { return };
    l.cts.add(150, "latin1", true).unwrap();
    let raw_pass: &[u8] = b"caf\xe9-Zq8-canary";
    let mut file = b"TOKEN=plain-canary-150\nP=abc$SuperSecretTail\nPASS=".to_vec();
    file.extend_from_slice(raw_pass);
    file.extend_from_slice(b"\nQ=\"pa\\0ss\"\nLAST R");
    l.cts
        .write_file(150, "/opt/homelab/latin1/.env", &file)
        .unwrap();
    let mut args = l.base(vec![json!({
        "name": "latin1", "vmid": 150, "path": "/opt/homelab/latin1/.env",
        "keys": {"token": "TOKEN", "p": "P", "pass": "PASS", "q": "Q"}
    })]);
    args["salt"] = json!("salt-150");
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    let t = &r["targets"][0];
    assert_eq!(t["status"], "ok", "{t}");
    assert_eq!(
        t["unset_references"],
        json!(["line 2: P references an unset variable"])
    );
    assert_eq!(t["non_utf8_keys"], json!(["pass"]));
    assert_eq!(r["non_utf8_keys"], json!(["pass"]));
    assert_eq!(r["values"]["token"], "plain-canary-150");
    assert_eq!(r["values"]["p"], "abc");
    // compose-go drops the 0 of an escape it cannot unquote.
    assert_eq!(r["values"]["q"], "pa\\ss");
    assert_eq!(r["values"].get("pass"), None, "non-UTF-8 value in `values`");
    assert_eq!(r["values_base64"]["pass"], "Y2Fm6S1acTgtY2FuYXJ5");
    assert_eq!(
        r["fingerprints"]["pass"],
        ansible_module::fingerprint_bytes("salt-150", raw_pass)
    );
    assert!(
        r["warnings"]
            .to_string()
            .contains("key pass: the deployed value is not valid UTF-8"),
        "{}",
        r["warnings"]
    );
    let text = r.to_string();
    assert!(!text.contains("SuperSecret"), "file text in the result");
    let mut rest = r.clone();
    for k in ["values", "values_base64"] {
        rest.as_object_mut().unwrap().remove(k);
    }
    assert!(
        !rest.to_string().contains("canary"),
        "a value outside `values`"
    );
}

/// Issue #12: a failed command's error output was echoed (300 characters of it), and the
/// container writes that stream; a 100,000-character path reached the server and its error
/// advised MaxSessions. Now the output is never quoted, and the path is refused before any
/// connection, in a bounded message.
#[test]
fn remote_error_output_and_huge_paths_are_not_echoed() {
    let Some(l) = lab() else { return };
    // The container writes file-like text to stderr, then cat fails (no file).
    l.cts.add(160, "leaky", true).unwrap();
    std::fs::write(l.cts.dir(160).join("stderr"), b"SECRET=stderr-canary-160\n").unwrap();
    let mut args = l.base(vec![json!({"name": "leaky", "vmid": 160, "path": "/opt/homelab/leaky/.env", "keys": {"k": "SECRET"}})]);
    args["fail_on_missing"] = json!(false);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(status_of(&r, "leaky"), "ssh_error");
    let msg = r["targets"][0]["msg"].as_str().unwrap();
    assert!(msg.contains("exited with status 1"), "{msg}");
    assert!(
        !r.to_string().contains("stderr-canary"),
        "stderr echoed: {msg}"
    );

    let huge = "/a".repeat(50_000);
    let connections = l.sshd.log().matches("Accepted publickey").count();
    let r = l.run(&l.base(vec![
        json!({"name": "huge", "vmid": 119, "path": huge, "keys": {"k": "K"}}),
    ]));
    assert_eq!(r["failed"], true);
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.contains("target 1 (huge)") && msg.contains("4095"),
        "{msg}"
    );
    assert!(!msg.contains("MaxSessions"), "{msg}");
    assert!(r.to_string().len() < 2000, "{} bytes", r.to_string().len());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        l.sshd.log().matches("Accepted publickey").count(),
        connections,
        "a connection was made for a refused path"
    );
}

/// Issue #12: `@revoked` lines were ignored (libssh2 reads the marker as a host name): a revoked
/// key was trusted when another line listed it, and accept-new appended it. OpenSSH refuses
/// both. `@cert-authority` lines are skipped (no host certificates here): such a host is unknown.
#[test]
fn revoked_host_keys_are_refused_before_authentication() {
    let Some(l) = lab() else { return };
    let recorded = std::fs::read_to_string(&l.sshd.known_hosts).unwrap();
    let recorded = recorded.trim();
    let (pattern, key) = recorded.split_once(' ').unwrap();
    let write = |name: &str, text: String| {
        let p = l.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Revoked for this host, listed as trusted too.
    let kh = write(
        "kh_revoked",
        format!("@revoked {pattern} {key}\n{recorded}\n"),
    );
    let mut args = l.base(catalog_targets());
    args["known_hosts"] = json!(kh);
    let r = l.run(&args);
    assert_eq!(r["failed"], true);
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.contains("HOST KEY REVOKED") && msg.contains("@revoked"),
        "{msg}"
    );
    // Revoked for every host by a wildcard: accept-new neither connects nor appends.
    let text = format!("# hosts\n@revoked * {key}\n");
    let kh = write("kh_revoked_all", text.clone());
    args["known_hosts"] = json!(kh);
    args["host_key_checking"] = json!("accept-new");
    let r = l.run(&args);
    assert!(
        r["msg"].as_str().unwrap().contains("HOST KEY REVOKED"),
        "{}",
        r["msg"]
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        text,
        "known_hosts changed"
    );
    // A hashed name (`ssh-keygen -H`) is matched too.
    let hashed = write("kh_hashed", format!("{recorded}\n"));
    let keygen = lab::tools::system_bin("ssh-keygen");
    let out = std::process::Command::new(&keygen)
        .args(["-q", "-H", "-f"])
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -H failed");
    let hashed_line = std::fs::read_to_string(&hashed).unwrap();
    assert!(hashed_line.starts_with("|1|"), "not hashed");
    let kh = write(
        "kh_revoked_hashed",
        format!("@revoked {}{recorded}\n", hashed_line),
    );
    args["known_hosts"] = json!(kh);
    args["host_key_checking"] = json!("strict");
    let r = l.run(&args);
    assert!(
        r["msg"].as_str().unwrap().contains("HOST KEY REVOKED"),
        "{}",
        r["msg"]
    );
    // A `@cert-authority` line does not make the host known.
    let kh = write("kh_ca", format!("@cert-authority * {key}\n"));
    args["known_hosts"] = json!(kh);
    args["host_key_checking"] = json!("strict");
    refused_before_auth(&l, &args, "is not in");
    // A key revoked for other hosts only (or with this host negated) is still trusted here.
    let kh = write(
        "kh_other",
        format!("@revoked 10.9.9.9,*.example.org {key}\n@revoked *,!{pattern} {key}\n{recorded}\n"),
    );
    args["known_hosts"] = json!(kh);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
}

/// Issue #12: one byte that is not UTF-8 in known_hosts failed the whole check; the line is
/// skipped, as documented, and the rest of the file still counts.
#[test]
fn a_non_utf8_known_hosts_line_is_skipped() {
    let Some(l) = lab() else { return };
    let recorded = std::fs::read(&l.sshd.known_hosts).unwrap();
    let mut text = b"old-host\xff\xfe ssh-ed25519 AAAA\n".to_vec();
    text.extend_from_slice(&recorded);
    let kh = l.tmp.path().join("kh_latin1");
    std::fs::write(&kh, &text).unwrap();
    let mut args = l.base(catalog_targets());
    args["known_hosts"] = json!(kh);
    let r = l.run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", r["msg"]);
    assert_eq!(r["host_key_added"], false);
}

/// Issue #12: unknown keys in `targets[]` were ignored, so a `key:` typo read nothing and
/// succeeded. They are refused with AnsibleModule's text, before anything is sent.
#[test]
fn unknown_target_suboptions_are_refused_as_ansible_refuses_them() {
    let args = json!({
        "host": "127.0.0.1",
        "port": 1,
        "targets": [
            {"name": "a", "vmid": 119, "path": "/opt/homelab/a/.env", "key": {"k": "K"}},
            {"name": "b", "vmid": 120, "path": "/opt/homelab/b/.env", "keys": {}, "bogus": 1, "key": 2},
        ],
    });
    let r = run_module(&args);
    assert_eq!(r["failed"], true);
    assert_eq!(
        r["msg"],
        "Unsupported parameters for (env_harvest) module: targets.bogus, targets.key. Supported parameters include: keys, name, optional_keys, path, vmid."
    );
    // `_ansible_ignore_unknown_opts` ignores them, as AnsibleModule does (the run then fails
    // at connecting: nothing listens on port 1).
    let mut args = args;
    args["_ansible_ignore_unknown_opts"] = json!(true);
    let r = run_module(&args);
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("could not connect to 127.0.0.1:1"),
        "{}",
        r["msg"]
    );
}
