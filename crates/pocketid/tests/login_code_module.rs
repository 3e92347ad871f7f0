//! `pocketid_login_code` (the real binary, module and CLI mode) against the PocketID emulator: a
//! code made by the module signs the user in exactly once; e-mail, file and terminal delivery and
//! their refusals; the code and its URL are in no result and no output.

use httpx::{Body, Client, HttpConfig, Retry};
use lab::pocketid::{PocketId, PocketIdOptions};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use testkit::module::{run_module, CI_VARS};

const BIN: &str = env!("CARGO_BIN_EXE_pocketid_login_code");

fn start() -> (PocketId, String) {
    let pid = PocketId::start(PocketIdOptions::default()).unwrap();
    let id = pid.add_user("alice", Some("alice@example.org"), false);
    (pid, id)
}

fn args(pid: &PocketId, extra: Value) -> Value {
    let mut m = json!({"url": pid.url(), "api_key": pid.admin_key()});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        m[k] = v;
    }
    m
}

/// Module mode, in a new session (no controlling terminal) and without CI variables.
fn module(pid: &PocketId, extra: Value, env: &[(&str, &str)]) -> testkit::module::ModuleRun {
    let mut remove: Vec<&str> = CI_VARS.to_vec();
    remove.extend(["POCKETID_URL", "POCKETID_API_KEY"]);
    run_module(setsid_wrapper(), &args(pid, extra), &remove, env)
}

/// A tiny script that runs the module with `setsid`, so that neither it nor the process that
/// started its session has a terminal, even when the tests run from one.
fn setsid_wrapper() -> &'static Path {
    static WRAPPER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    WRAPPER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("login-code-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pocketid_login_code");
        // Twice: the module's session is started by a process that has no terminal either (the
        // module would otherwise write to the terminal of the process that started its session).
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nexec setsid -w sh -c 'exec setsid -w \"$0\" \"$@\"' {BIN} \"$@\"\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    })
}

fn exchange(pid: &PocketId, code: &str) -> (u16, Value) {
    let mut cfg = HttpConfig::new("PocketID", pid.url());
    cfg.retries = 0;
    let c = Client::new(cfg).unwrap();
    let r = c
        .send(
            "POST",
            &format!("/api/one-time-access-token/{code}"),
            &[],
            Body::None,
            Retry::Never,
        )
        .unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

fn code_of(url: &str) -> String {
    url.trim().rsplit('/').next().unwrap().to_string()
}

fn codes_made(pid: &PocketId, user_id: &str) -> usize {
    pid.count_requests(
        "POST",
        &format!("/api/users/{user_id}/one-time-access-token"),
    ) + pid.count_requests(
        "POST",
        &format!("/api/users/{user_id}/one-time-access-email"),
    )
}

#[test]
fn file_delivery_signs_the_user_in_exactly_once() {
    let (pid, alice) = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.url");
    let r = module(
        &pid,
        json!({"username": "alice", "delivery": "file", "path": path, "ttl": "1h",
               "_ansible_diff": true, "_ansible_verbosity": 4}),
        &[],
    );
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["user_id"], json!(alice));
    assert_eq!(r.json["ttl_seconds"], json!(3600));
    assert_eq!(r.json["code_length"], json!(12));
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let url = std::fs::read_to_string(&path).unwrap();
    assert!(url.starts_with(&format!("{}/lc/", pid.url())), "{url}");
    let code = code_of(&url);
    assert_eq!(code.len(), 12);
    assert!(
        !r.output().contains(&code),
        "the code is in the module's output"
    );
    assert!(!r.output().contains(url.trim()));

    let (status, user) = exchange(&pid, &code);
    assert_eq!(status, 200);
    assert_eq!(user["username"], json!("alice"));
    assert_eq!(exchange(&pid, &code).0, 401, "a login code works once");
    assert_eq!(
        pid.audit_events(),
        [("TOKEN_SIGN_IN".to_string(), alice.clone())]
    );

    // The file exists now: refused before any code is made, the file untouched.
    let before = codes_made(&pid, &alice);
    let r = module(
        &pid,
        json!({"username": "alice", "delivery": "file", "path": path}),
        &[],
    );
    assert!(r.failed());
    assert!(r.msg().contains("already exists"), "{}", r.msg());
    assert_eq!(codes_made(&pid, &alice), before);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), url);
    // No path at all.
    let r = module(&pid, json!({"username": "alice", "delivery": "file"}), &[]);
    assert!(r.msg().contains("needs `path`"), "{}", r.msg());
}

#[test]
fn default_ttl_is_15_minutes_with_a_6_character_code() {
    let (pid, _) = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code");
    let r = module(
        &pid,
        json!({"username": "alice", "delivery": "file", "path": path}),
        &[],
    );
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["ttl_seconds"], json!(900));
    let code = code_of(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(code.len(), 6);
    assert!(!r.output().contains(&format!("/lc/{code}")));
    assert_eq!(exchange(&pid, &code).0, 200);
    for (ttl, want) in [
        ("32d", "at most 31 days"),
        ("1", "more than 1 second"),
        ("1w", "not a duration"),
    ] {
        let r = module(
            &pid,
            json!({"username": "alice", "delivery": "file", "path": dir.path().join(ttl), "ttl": ttl}),
            &[],
        );
        assert!(r.failed() && r.msg().contains(want), "{ttl}: {}", r.msg());
    }
}

#[test]
fn email_delivery_and_its_two_refusals() {
    let (pid, alice) = start();
    let nomail = pid.add_user("nomail", None, false);
    let r = module(&pid, json!({"username": "alice", "delivery": "email"}), &[]);
    assert!(r.failed());
    assert!(
        r.msg().contains("app setting") && r.msg().contains("emailOneTimeAccessAsAdminEnabled"),
        "{}",
        r.msg()
    );
    pid.set_email_login_codes_enabled(true);
    let r = module(
        &pid,
        json!({"username": "nomail", "delivery": "email"}),
        &[],
    );
    assert!(r.failed());
    assert!(r.msg().contains("no e-mail address"), "{}", r.msg());
    assert!(pid.outbox().is_empty());
    let _ = nomail;

    let r = module(
        &pid,
        json!({"username": "alice", "ttl": "30m", "_ansible_diff": true}),
        &[],
    );
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["delivery"], json!("email"));
    let mail = pid.outbox().pop().expect("a mail in the outbox");
    assert_eq!(mail.to, "alice@example.org");
    assert!(!r.output().contains(&mail.code));
    assert_eq!(exchange(&pid, &mail.code).0, 200);
    assert_eq!(exchange(&pid, &mail.code).0, 401);
    assert_eq!(pid.audit_events().len(), 1);
    assert_eq!(pid.audit_events()[0].1, alice);
}

#[test]
fn display_is_refused_without_a_terminal_and_in_ci() {
    let (pid, alice) = start();
    let r = module(
        &pid,
        json!({"username": "alice", "delivery": "display"}),
        &[],
    );
    assert!(r.failed());
    assert!(r.msg().contains("no controlling terminal"), "{}", r.msg());
    for var in ["CI", "GITHUB_ACTIONS", "FORGEJO_ACTIONS"] {
        let r = module(
            &pid,
            json!({"username": "alice", "delivery": "display"}),
            &[(var, "true")],
        );
        assert!(r.failed());
        assert!(r.msg().contains(var), "{}", r.msg());
    }
    assert_eq!(codes_made(&pid, &alice), 0, "a refusal makes no code");
    assert!(
        pid.requests().is_empty(),
        "refused before talking to PocketID"
    );
}

/// Runs `cmd` on a pseudo-terminal (util-linux `script`), the way a person at a terminal would.
fn on_a_terminal(cmd: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"]);
    for v in CI_VARS {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    let out = c.output().expect("util-linux script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn url_in(text: &str, base: &str) -> Option<String> {
    let start = text.find(&format!("{base}/lc/"))?;
    let rest = &text[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[test]
fn display_shows_the_url_once_on_a_terminal() {
    let (pid, _) = start();
    // CLI mode at a terminal.
    let out = on_a_terminal(
        &format!("{BIN} --username alice --delivery display --ttl 10m"),
        &[
            ("POCKETID_URL", pid.url()),
            ("POCKETID_API_KEY", pid.admin_key()),
        ],
    );
    let url = url_in(&out, pid.url()).unwrap_or_else(|| panic!("no URL shown:\n{out}"));
    assert_eq!(out.matches(&url).count(), 1, "shown once:\n{out}");
    let code = code_of(&url);
    assert_eq!(code.len(), 6);
    assert_eq!(exchange(&pid, &code).0, 200);

    // Module mode with a controlling terminal: on the terminal, never in the JSON result.
    let dir = tempfile::tempdir().unwrap();
    let args_file = dir.path().join("args");
    std::fs::write(
        &args_file,
        args(&pid, json!({"username": "alice", "delivery": "display"})).to_string(),
    )
    .unwrap();
    let out = on_a_terminal(&format!("{BIN} {}", args_file.display()), &[]);
    let url = url_in(&out, pid.url()).unwrap_or_else(|| panic!("no URL shown:\n{out}"));
    let result = out
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .expect("the JSON result");
    let v: Value = serde_json::from_str(result.trim()).unwrap();
    assert_eq!(v["changed"], json!(true), "{v}");
    assert!(!result.contains(&code_of(&url)));
    assert_eq!(exchange(&pid, &code_of(&url)).0, 200);
}

#[test]
fn exact_username_among_wildcard_matches_and_check_mode() {
    let (pid, _) = start();
    let bobx = pid.add_user("bob_x", Some("bx@example.org"), false);
    let bobax = pid.add_user("bobax", Some("ba@example.org"), false);
    pid.add_user("carol", Some("carol@example.org"), true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bob");
    let r = module(
        &pid,
        json!({"username": "bob_x", "delivery": "file", "path": path}),
        &[],
    );
    assert_eq!(r.json["user_id"], json!(bobx), "{}", r.json);
    assert_eq!(codes_made(&pid, &bobax), 0);
    let (_, user) = exchange(&pid, &code_of(&std::fs::read_to_string(&path).unwrap()));
    assert_eq!(user["username"], json!("bob_x"));

    let r = module(&pid, json!({"username": "bob"}), &[]);
    assert!(r.failed());
    assert!(
        r.msg()
            .contains("no PocketID user has the username \"bob\""),
        "{}",
        r.msg()
    );
    let r = module(&pid, json!({"username": "carol"}), &[]);
    assert!(r.failed() && r.msg().contains("disabled"), "{}", r.msg());

    // Check mode finds the user and makes nothing.
    let r = module(
        &pid,
        json!({"username": "bobax", "delivery": "file", "path": dir.path().join("x"),
               "_ansible_check_mode": true}),
        &[],
    );
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["user_id"], json!(bobax));
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(codes_made(&pid, &bobax), 0);
    assert!(!Path::new(&dir.path().join("x")).exists());
}

#[test]
fn a_refused_api_key_is_reported_without_the_key() {
    let (pid, _) = start();
    let r = run_module(
        Path::new(BIN),
        &json!({"url": pid.url(), "api_key": "revoked-key-0123456789", "username": "alice"}),
        &CI_VARS,
        &[],
    );
    assert!(r.failed());
    assert!(
        r.msg().contains("401") && r.msg().contains("not_signed_in"),
        "{}",
        r.msg()
    );
    assert!(!r.output().contains("revoked-key-0123456789"));
}

/// CT 123 running PocketID's container `pocketid` (answered by `pid`), behind the lab's sshd.
fn ssh_lab(
    pid: &PocketId,
) -> (
    tempfile::TempDir,
    lab::fixtures::Containers,
    lab::sshd::Sshd,
) {
    let tmp = tempfile::tempdir().unwrap();
    let containers = lab::fixtures::Containers::create(tmp.path().join("ct")).unwrap();
    containers.add(123, "pocketid", true).unwrap();
    containers
        .add_pocketid_docker(123, "pocketid", pid.url())
        .unwrap();
    let sshd = lab::sshd::Sshd::start(&tmp.path().join("sshd"), &containers).unwrap();
    (tmp, containers, sshd)
}

#[test]
fn ssh_fallback_with_a_revoked_key_makes_a_working_code() {
    let (pid, alice) = start();
    let (tmp, _containers, sshd) = ssh_lab(&pid);
    // A key that worked once and was revoked since.
    let old = pid.add_admin_api_key("old");
    let mut cfg = HttpConfig::new("PocketID", pid.url());
    cfg.retries = 0;
    let c = Client::new(cfg).unwrap();
    let r = c
        .send(
            "DELETE",
            &format!("/api/api-keys/{}", old.id),
            &[("X-API-Key", pid.admin_key())],
            Body::None,
            Retry::Never,
        )
        .unwrap();
    assert_eq!(r.status, 204);
    let path = tmp.path().join("alice.url");
    let fallback = |extra: Value| {
        let mut a = json!({
            "url": pid.url(), "api_key": old.token, "username": "alice",
            "delivery": "file", "path": path, "fallback": "ssh",
            "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_user": sshd.user,
            "ssh_private_key": sshd.private_key, "ssh_known_hosts": sshd.known_hosts,
            "pct_path": sshd.pct_path, "vmid": 123, "container": "pocketid",
            "_ansible_verbosity": 4,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            a[k] = v;
        }
        run_module(Path::new(BIN), &a, &CI_VARS, &[])
    };

    let r = fallback(json!({}));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["via"], json!("ssh"));
    assert!(
        r.json["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("refused the API key")),
        "{}",
        r.json
    );
    let url = std::fs::read_to_string(&path).unwrap();
    assert!(url.starts_with(&format!("{}/lc/", pid.url())), "{url}");
    let code = code_of(&url);
    assert_eq!(code.len(), 12, "the CLI makes 1-hour codes");
    assert!(!r.output().contains(&code));
    assert!(!r.output().contains(&old.token));
    let (status, user) = exchange(&pid, &code);
    assert_eq!(status, 200);
    assert_eq!(user["id"], json!(alice));
    assert_eq!(exchange(&pid, &code).0, 401);

    // Its refusals say what is wrong, and nothing leaks.
    std::fs::remove_file(&path).unwrap();
    let r = fallback(json!({"container": "pocket-id-1"}));
    assert!(
        r.msg().contains("has no Docker container \"pocket-id-1\""),
        "{}",
        r.msg()
    );
    let r = fallback(json!({"username": "nobody"}));
    assert!(r.msg().contains("has no user \"nobody\""), "{}", r.msg());
    let r = fallback(json!({"delivery": "email"}));
    assert!(r.msg().contains("display or file"), "{}", r.msg());
    assert!(!path.exists());
    // The shared SSH options, named as here; no trust-on-first-use for a sign-in code.
    let r = fallback(json!({"ssh_private_key_data": "not-a-key-0123456789"}));
    assert!(
        r.msg()
            .contains("mutually exclusive: ssh_private_key|ssh_private_key_data"),
        "{}",
        r.msg()
    );
    assert!(!r.output().contains("not-a-key-0123456789"));
    let r = fallback(json!({"ssh_host_key_checking": "accept-new"}));
    assert!(r.msg().contains("ssh_host_key_checking"), "{}", r.msg());
    assert!(!path.exists());
    // Without the fallback, the refusal is the API's.
    let r = fallback(json!({"fallback": "none"}));
    assert!(r.msg().contains("not_signed_in"), "{}", r.msg());
}

/// Issue #25 point 10: PocketID's distroless image runs as 65532:65532, where the old default
/// `docker exec -u 1000:1000` cannot write PocketID's database. The fallback runs the CLI as the
/// owner of `/app/data` (its mount's source, read with `stat` in the CT); `container_user`
/// overrides it.
#[test]
fn ssh_fallback_runs_the_cli_as_the_owner_of_app_data() {
    let (pid, alice) = start();
    // The lab's PocketID container is the distroless image: /app/data is 65532's.
    let (tmp, containers, sshd) = ssh_lab(&pid);
    let path = tmp.path().join("alice.url");
    let fallback = |extra: Value| {
        let _ = std::fs::remove_file(&path);
        let mut a = json!({
            "url": pid.url(), "api_key": "revoked-key-0123456789", "username": "alice",
            "delivery": "file", "path": path, "fallback": "ssh",
            "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_user": sshd.user,
            "ssh_private_key": sshd.private_key, "ssh_known_hosts": sshd.known_hosts,
            "pct_path": sshd.pct_path, "vmid": 123, "container": "pocketid",
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            a[k] = v;
        }
        run_module(Path::new(BIN), &a, &CI_VARS, &[])
    };
    let signs_in = || {
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(exchange(&pid, &code).1["id"], json!(alice));
    };

    let r = fallback(json!({}));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["container_user"], "65532:65532");
    assert!(
        r.msg().contains("as 65532:65532, the owner of /app/data"),
        "{}",
        r.msg()
    );
    signs_in();
    // The old default, given explicitly: the CLI cannot write the database, and says so.
    let r = fallback(json!({"container_user": "1000:1000"}));
    assert!(r.failed());
    assert!(r.msg().contains("readonly database"), "{}", r.msg());
    assert!(!path.exists());
    // The standard image (PUID:PGID 1000:1000): found the same way.
    containers
        .set_pocketid_data_owner(123, "pocketid", Some("1000:1000"))
        .unwrap();
    let r = fallback(json!({}));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["container_user"], "1000:1000");
    signs_in();
    // No /app/data mount: nothing to read the owner from; the message names the option.
    containers
        .set_pocketid_data_owner(123, "pocketid", None)
        .unwrap();
    let r = fallback(json!({}));
    assert!(r.failed());
    assert!(
        r.msg().contains("/app/data is not a mount") && r.msg().contains("Set container_user"),
        "{}",
        r.msg()
    );
    let r = fallback(json!({"container_user": "0:0"}));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["container_user"], "0:0");
    // An unknown container is told apart before the CLI runs.
    let r = fallback(json!({"container": "pocket-id-1"}));
    assert!(
        r.msg().contains("has no Docker container \"pocket-id-1\""),
        "{}",
        r.msg()
    );
}
