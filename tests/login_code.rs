//! `playbooks/pocketid-login-code.yml` through the real ansible-playbook at `-vvvv`, and the
//! `pocketid-login-code` workflow under `act`, against the lab: the API key comes from Vault, a code
//! signs the user in exactly once, the e-mail path delivers a working code, `display` is refused
//! without a terminal and under act, and no code, URL or key is in any output.

use e2e::{assert_no_secret, build_collection, E2e};
use lab::ansible::PlaybookRun;
use lab::tools::{repo_root, venv_bin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use testkit::module::CI_VARS;

/// The environment `E2e::playbook` gives ansible-playbook, without CI markers, with a wrong
/// `POCKETID_API_KEY` (the key must come from Vault).
fn ansible_env(cmd: &mut Command, e: &E2e, env: &[(&str, &str)]) {
    lab::ansible::repo_playbook_env(cmd, &e.dir.path().join("ansible"), e.lab.env());
    for v in CI_VARS {
        cmd.env_remove(v);
    }
    cmd.env("POCKETID_API_KEY", "not-the-api-key");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// Like `E2e::playbook`, in a new session (`setsid`): ansible-playbook has no controlling terminal
/// even when the tests run from one, as in a non-interactive run.
fn playbook(e: &E2e, args: &[&str], env: &[(&str, &str)]) -> PlaybookRun {
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg(venv_bin("ansible-playbook"))
        .arg("-i")
        .arg(&e.inventory)
        .arg(repo_root().join("ansible/playbooks/pocketid-login-code.yml"))
        .args(args);
    ansible_env(&mut cmd, e, env);
    let out = cmd.output().expect("running ansible-playbook under setsid");
    PlaybookRun {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exchanges a login code as PocketID's frontend does (`POST /api/one-time-access-token/<code>`,
/// no auth, no body) and returns the HTTP status.
fn exchange(e: &E2e, code: &str) -> u16 {
    http(
        e,
        "POST",
        &format!("/api/one-time-access-token/{code}"),
        None,
    )
}

/// A bodiless request to the PocketID emulator over plain HTTP; returns the status.
fn http(e: &E2e, method: &str, path: &str, api_key: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let hostport = e
        .lab
        .pocketid
        .url()
        .trim_start_matches("http://")
        .to_string();
    let mut s = std::net::TcpStream::connect(&hostport).expect("connect to the PocketID emulator");
    let key = api_key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{key}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn code_of(url: &str) -> String {
    url.trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn secrets(e: &E2e, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("api_key".into(), e.lab.pocketid.admin_key().to_string());
    m.insert("secret_id".into(), e.lab.secret_id.clone());
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

#[test]
fn login_code_playbook_file_email_and_display_without_leaks() {
    let e = E2e::up();
    let pid = &e.lab.pocketid;
    let alice = pid.add_user("alice", Some("alice@example.org"), false);
    pid.add_user("alice2", Some("alice2@example.org"), false);

    // file: a code made from Vault's API key signs alice in exactly once.
    let path = e.dir.path().join("alice.url");
    let path_s = path.display().to_string();
    let run = playbook(
        &e,
        &["-vvvv"],
        &[
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_TTL", "1h"),
            ("LOGIN_DELIVERY", "file"),
            ("LOGIN_PATH", &path_s),
        ],
    );
    run.assert_ok();
    let url = std::fs::read_to_string(&path).unwrap();
    let code = code_of(&url);
    assert_eq!(code.len(), 12);
    let out = run.all_output();
    assert!(!out.contains(&code), "the code is in the playbook output");
    assert_no_secret(
        &out,
        &secrets(&e, &[("url", url.trim())]),
        "ansible -vvvv output",
    );
    assert!(out.contains("wrote its URL to"), "{out}");
    assert_eq!(exchange(&e, &code), 200);
    assert_eq!(exchange(&e, &code), 401, "a second use is refused");
    assert_eq!(
        pid.audit_events(),
        [("TOKEN_SIGN_IN".to_string(), alice.clone())]
    );

    // email: refused with the reason while the app setting is off, then a working code by mail.
    let run = playbook(&e, &["-vvvv"], &[("LOGIN_USERNAME", "alice")]);
    run.assert_failed();
    assert!(
        run.all_output()
            .contains("emailOneTimeAccessAsAdminEnabled"),
        "{}",
        run.all_output()
    );
    pid.set_email_login_codes_enabled(true);
    let run = playbook(
        &e,
        &["-vvvv"],
        &[("LOGIN_USERNAME", "alice"), ("LOGIN_TTL", "20m")],
    );
    run.assert_ok();
    let mail = pid.outbox().pop().expect("a login-code mail");
    assert_eq!(mail.to, "alice@example.org");
    let out = run.all_output();
    assert!(!out.contains(&mail.code));
    assert_no_secret(
        &out,
        &secrets(&e, &[("url", &mail.url)]),
        "ansible -vvvv output",
    );
    assert_eq!(exchange(&e, &mail.code), 200);

    // display: no controlling terminal here, so refused before a code is made.
    let before = pid.live_login_codes();
    let run = playbook(
        &e,
        &["-vvvv"],
        &[("LOGIN_USERNAME", "alice"), ("LOGIN_DELIVERY", "display")],
    );
    run.assert_failed();
    assert!(
        run.all_output().contains("no controlling terminal"),
        "{}",
        run.all_output()
    );
    assert_eq!(pid.live_login_codes(), before);

    // Check mode finds the user and makes nothing.
    let run = playbook(
        &e,
        &["--check"],
        &[
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_DELIVERY", "file"),
            ("LOGIN_PATH", &format!("{path_s}.check")),
        ],
    );
    run.assert_ok();
    assert!(!Path::new(&format!("{path_s}.check")).exists());
    assert_eq!(pid.live_login_codes(), before);
}

#[test]
fn display_reaches_the_terminal_ansible_playbook_runs_at_and_nothing_else() {
    let e = E2e::up();
    e.lab
        .pocketid
        .add_user("alice", Some("alice@example.org"), false);
    // A person at a terminal (util-linux `script` gives one), ansible's own output sent to a file.
    let log = e.dir.path().join("ansible.log");
    let cmdline = format!(
        "'{}' -vvvv -i '{}' '{}' > '{}' 2>&1",
        venv_bin("ansible-playbook").display(),
        e.inventory.display(),
        repo_root()
            .join("ansible/playbooks/pocketid-login-code.yml")
            .display(),
        log.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &cmdline, "/dev/null"]);
    ansible_env(
        &mut cmd,
        &e,
        &[("LOGIN_USERNAME", "alice"), ("LOGIN_DELIVERY", "display")],
    );
    let out = cmd.output().expect("util-linux script");
    let terminal = String::from_utf8_lossy(&out.stdout).into_owned();
    let ansible = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "{ansible}");
    let base = format!("{}/lc/", e.lab.pocketid.url());
    let start = terminal
        .find(&base)
        .unwrap_or_else(|| panic!("no login URL on the terminal:\n{terminal}\n{ansible}"));
    let url: String = terminal[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(terminal.matches(&url).count(), 1, "shown once");
    let code = code_of(&url);
    assert_eq!(code.len(), 6);
    assert!(!ansible.contains(&code), "the code is in ansible's output");
    assert_no_secret(
        &ansible,
        &secrets(&e, &[("url", &url)]),
        "ansible -vvvv output",
    );
    assert!(ansible.contains("showed it on the terminal"), "{ansible}");
    assert_eq!(exchange(&e, &code), 200);
}

#[test]
fn login_code_playbook_falls_back_to_the_cli_over_ssh_when_the_key_is_revoked() {
    let e = E2e::up();
    let pid = &e.lab.pocketid;
    pid.add_user("alice", Some("alice@example.org"), false);
    // The key Vault holds is revoked (by itself, as an admin would in the panel).
    let key = pid.admin_key().to_string();
    let status = http(
        &e,
        "DELETE",
        &format!("/api/api-keys/{}", pid.admin_key_id()),
        Some(&key),
    );
    assert_eq!(status, 204);
    let path = e.dir.path().join("alice-ssh.url");
    let path_s = path.display().to_string();
    let env = [
        ("LOGIN_USERNAME", "alice"),
        ("LOGIN_DELIVERY", "file"),
        ("LOGIN_PATH", path_s.as_str()),
    ];
    // Without the fallback: the refusal, nothing made.
    let run = playbook(&e, &[], &env);
    run.assert_failed();
    assert!(
        run.all_output().contains("not_signed_in"),
        "{}",
        run.all_output()
    );
    assert!(!path.exists());

    let mut with = env.to_vec();
    with.push(("LOGIN_FALLBACK", "ssh"));
    let run = playbook(&e, &["-vvvv"], &with);
    run.assert_ok();
    let url = std::fs::read_to_string(&path).unwrap();
    let code = code_of(&url);
    assert_eq!(code.len(), 12);
    let out = run.all_output();
    assert!(out.contains("refused the API key"), "{out}");
    assert!(!out.contains(&code), "the code is in the playbook output");
    assert_no_secret(
        &out,
        &secrets(&e, &[("url", url.trim())]),
        "ansible -vvvv output",
    );
    assert_eq!(exchange(&e, &code), 200);
    assert_eq!(exchange(&e, &code), 401);
}

#[test]
fn login_code_workflow_emails_a_working_code_under_act_and_display_is_refused() {
    let e = E2e::up();
    let pid = &e.lab.pocketid;
    pid.add_user("alice", Some("alice@example.org"), false);
    pid.set_email_login_codes_enabled(true);
    let tarball = build_collection(e.dir.path());
    let workflow = repo_root().join(".forgejo/workflows/pocketid-login-code.yml");

    // As on a stock runner: Debian's PATH, ansible-core provisioned by the job itself.
    let tools = e.dir.path().join("runner-tools");
    let r = e.act_with(
        Some(&tarball),
        &workflow,
        serde_json::json!({"username": "alice", "ttl": "1h"}),
        &["VAULT_ROLE_ID", "VAULT_SECRET_ID"],
        &e2e::ActExtra {
            stock_runner: Some(&tools),
            ..Default::default()
        },
    );
    assert!(r.ok, "pocketid-login-code under act failed:\n{}", r.output);
    assert!(r.output.contains("installing ansible-core"), "{}", r.output);
    let mail = pid.outbox().pop().expect("a login-code mail");
    assert_eq!(mail.code.len(), 12);
    assert!(!r.output.contains(&mail.code), "the code is in the act log");
    assert_no_secret(&r.output, &secrets(&e, &[("url", &mail.url)]), "act log");
    assert_eq!(exchange(&e, &mail.code), 200);
    assert_eq!(exchange(&e, &mail.code), 401);

    // The same job asking for `display` (the workflow never offers it): refused in CI, no code.
    let text = std::fs::read_to_string(&workflow)
        .unwrap()
        .replace("LOGIN_DELIVERY: email", "LOGIN_DELIVERY: display");
    let display_wf = e.dir.path().join("pocketid-login-code-display.yml");
    std::fs::write(&display_wf, text).unwrap();
    let before = pid.live_login_codes();
    let r = e.act(
        &tarball,
        &display_wf,
        serde_json::json!({"username": "alice", "ttl": "15m"}),
        &["VAULT_ROLE_ID", "VAULT_SECRET_ID"],
    );
    assert!(!r.ok, "display must fail under act:\n{}", r.output);
    assert!(r.output.contains("CI job"), "{}", r.output);
    assert_eq!(pid.live_login_codes(), before);
    assert_no_secret(&r.output, &secrets(&e, &[]), "act log");
}

/// A server that answers a terminal escape (OSC 52 clipboard, title, clear screen) as the code: it
/// is refused, reaches neither the file nor the output.
#[test]
fn a_hostile_login_code_is_refused_and_reaches_no_file() {
    let e = E2e::up();
    e.lab
        .pocketid
        .add_user("alice", Some("alice@example.org"), false);
    let hostile = "\u{1b}]52;c;Y2FuYXJ5\u{7}\u{1b}]0;pwned\u{7}\u{1b}[2J";
    e.lab.pocketid.hostile_login_token(hostile);
    let path = e.dir.path().join("alice.url");
    let path_s = path.display().to_string();
    let run = playbook(
        &e,
        &[],
        &[
            ("LOGIN_USERNAME", "alice"),
            ("LOGIN_TTL", "1h"),
            ("LOGIN_DELIVERY", "file"),
            ("LOGIN_PATH", &path_s),
        ],
    );
    run.assert_failed();
    let out = run.all_output();
    assert!(
        out.contains("holds characters no PocketID code has"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}') && !out.contains("Y2FuYXJ5"),
        "{out}"
    );
    assert!(!path.exists(), "nothing was written");
}
