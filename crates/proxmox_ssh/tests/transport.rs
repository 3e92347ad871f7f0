//! The transport on its own, against the lab's real sshd and `pct` stand-in on 127.0.0.1: the
//! host key is checked before authentication, commands run in parallel channels and come back
//! in order, failures of one command leave the others alone, and errors say where and what to do.

use lab::fixtures::Containers;
use lab::proc::free_port;
use lab::sshd::{Sshd, SshdLab};
use proxmox_ssh::ssh::{Auth, ConnectOptions};
use proxmox_ssh::{
    build_command, classify, pct_exec, Connection, Error, ExecError, HostKeyChecking, Mode,
    TargetStatus,
};
use std::path::Path;
use std::time::Duration;

struct Lab {
    tmp: tempfile::TempDir,
    cts: Containers,
    sshd: Sshd,
}

fn lab() -> Option<Lab> {
    let SshdLab { tmp, cts, sshd } = SshdLab::start(|cts| {
        cts.add(119, "oauth2-gateway", true)?;
        cts.add(120, "stopped", false)?;
        cts.write_file(119, "/opt/app/.env", b"A=1\n")
    })
    .unwrap()?;
    Some(Lab { tmp, cts, sshd })
}

impl Lab {
    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            host: self.sshd.host.clone(),
            port: self.sshd.port,
            user: self.sshd.user.clone(),
            auth: Auth::KeyFile(self.sshd.private_key.clone()),
            passphrase: None,
            known_hosts: self.sshd.known_hosts.clone(),
            host_key_fingerprint: None,
            host_key_checking: HostKeyChecking::Strict,
            timeout: Duration::from_secs(20),
        }
    }

    fn pct(&self, vmid: &str, argv: &[&str]) -> String {
        pct_exec(&self.sshd.pct_path.display().to_string(), false, vmid, argv)
    }

    /// sshd saw no authentication attempt (it writes the line after the connection closes).
    fn assert_no_auth_attempt(&self) {
        std::thread::sleep(Duration::from_millis(300));
        let log = self.sshd.log();
        let user = &self.sshd.user;
        for needle in [format!("for {user} "), format!("user {user} ")] {
            assert!(!log.contains(&needle), "sshd saw {needle:?}:\n{log}");
        }
    }
}

fn open_err(o: &ConnectOptions) -> String {
    match Connection::open(o) {
        Ok(_) => panic!("connected to {}:{}", o.host, o.port),
        Err(e) => e.to_string(),
    }
}

#[test]
fn commands_run_in_parallel_channels_and_come_back_in_order() {
    let Some(l) = lab() else { return };
    let o = l.options();
    let mut conn = Connection::open(&o).unwrap();
    assert_eq!(conn.fingerprint, l.sshd.host_key_fingerprint);
    assert!(!conn.host_key_added);
    let pct = l.sshd.pct_path.display().to_string();
    let commands = vec![
        build_command(Mode::Pct, &pct, false, Some("119"), "/opt/app/.env"),
        l.pct("119", &["true"]),
        build_command(Mode::Pct, &pct, false, Some("119"), "/opt/missing/.env"),
        build_command(Mode::Pct, &pct, false, Some("120"), "/opt/app/.env"),
        build_command(Mode::Pct, &pct, false, Some("999"), "/opt/app/.env"),
    ];
    let mut seen = Vec::new();
    let results = conn.run_all(&commands, 3, o.timeout, &mut |done, total| {
        seen.push((done, total))
    });
    conn.close();
    assert_eq!(seen.last(), Some(&(5, 5)));
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].stdout, b"A=1\n");
    assert_eq!(
        results.iter().map(|r| r.exit_status).collect::<Vec<_>>(),
        [Some(0), Some(0), Some(1), Some(255), Some(2)]
    );
    let statuses: Vec<TargetStatus> = results
        .iter()
        .map(|r| classify(r, o.place(), "the target").0)
        .collect();
    assert_eq!(
        statuses,
        [
            TargetStatus::Ok,
            TargetStatus::Ok,
            TargetStatus::FileMissing,
            TargetStatus::ContainerStopped,
            TargetStatus::ContainerMissing
        ]
    );
    // One connection for all of them.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(l.sshd.log().matches("Accepted publickey").count(), 1);
}

#[test]
fn a_slow_command_times_out_alone_and_stderr_is_sanitized() {
    let Some(l) = lab() else { return };
    std::fs::write(
        l.cts.dir(119).join("stderr"),
        "\x1b]0;title\x07\x1b[2Jwarn\r\n",
    )
    .unwrap();
    let o = l.options();
    let mut conn = Connection::open(&o).unwrap();
    let commands = [l.pct("119", &["sleep", "5"]), l.pct("119", &["true"])];
    let results = conn.run_all(&commands, 2, Duration::from_secs(1), &mut |_, _| {});
    conn.close();
    assert_eq!(results[0].error, Some(ExecError::TimedOut { secs: 1 }));
    assert_eq!(results[1].error, None);
    assert_eq!(results[1].exit_status, Some(0));
    assert!(
        !results[1].stderr.contains('\x1b'),
        "{:?}",
        results[1].stderr
    );
    assert!(
        results[1].stderr.ends_with("warn"),
        "{:?}",
        results[1].stderr
    );
}

#[test]
fn host_keys_are_checked_before_authentication() {
    let Some(l) = lab() else { return };
    let mut o = l.options();
    o.host_key_fingerprint = Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    let e = open_err(&o);
    assert!(e.starts_with("HOST KEY MISMATCH for 127.0.0.1:"), "{e}");
    assert!(e.contains(&l.sshd.host_key_fingerprint), "{e}");
    l.assert_no_auth_attempt();
    // Unknown in strict mode: refused, the file untouched.
    let kh = l.tmp.path().join("kh");
    std::fs::write(&kh, "# mine\n").unwrap();
    let mut o = l.options();
    o.known_hosts = kh.clone();
    let e = open_err(&o);
    assert!(e.contains("is not in") && e.contains("accept-new"), "{e}");
    l.assert_no_auth_attempt();
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "# mine\n");
    // accept-new adds one line once; strict then matches.
    o.host_key_checking = HostKeyChecking::AcceptNew;
    let conn = Connection::open(&o).unwrap();
    assert!(conn.host_key_added);
    conn.close();
    o.host_key_checking = HostKeyChecking::Strict;
    let conn = Connection::open(&o).unwrap();
    assert!(!conn.host_key_added);
    conn.close();
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn connection_failures_say_where_and_what_to_do() {
    let Some(l) = lab() else { return };
    // A refused user key.
    let other = l.tmp.path().join("other_key");
    lab::sshd::key_pair(&other).unwrap();
    let mut o = l.options();
    o.auth = Auth::KeyFile(other);
    let e = open_err(&o);
    let user = &l.sshd.user;
    assert!(
        e.starts_with(&format!("authentication as {user} on 127.0.0.1:")),
        "{e}"
    );
    assert!(e.contains("authorized_keys"), "{e}");
    assert!(matches!(Connection::open(&o), Err(Error::Auth { .. })));
    // Nothing listens on the port.
    let mut o = l.options();
    o.port = free_port();
    let e = open_err(&o);
    assert!(e.starts_with("could not connect to 127.0.0.1:"), "{e}");
    assert!(e.contains("sshd runs on the node"), "{e}");
}

#[test]
fn key_text_authenticates_like_the_key_file() {
    let Some(l) = lab() else { return };
    let text = std::fs::read_to_string(Path::new(&l.sshd.private_key)).unwrap();
    let mut o = l.options();
    o.auth = Auth::KeyData(ansible_module::Secret::new(text));
    let mut conn = Connection::open(&o).unwrap();
    let r = conn.run_all(&[l.pct("119", &["true"])], 1, o.timeout, &mut |_, _| {});
    conn.close();
    assert_eq!(r[0].exit_status, Some(0));
}
