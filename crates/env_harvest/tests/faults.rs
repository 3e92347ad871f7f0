//! Fault matrix for env_harvest (docs/faults.md): the real binary in module mode against the lab's
//! real sshd and `pct` stand-in, with the server down, frozen, killed mid-harvest, its host key
//! changed, the user's key refused and a container stopped mid-run. Each case: exactly one JSON
//! result, no panic, an error naming the system and what to do, no value in the output, and a
//! re-run after the fault is repaired converges. Channels past sshd's MaxSessions are checked for
//! their messages only (nothing to repair: `parallel` is the cause).

use lab::fixtures::Containers;
use lab::proc::wait_for;
use lab::sshd::{Sshd, SshdLab};
use serde_json::{json, Value};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::module::{spawn_module, Running};

const VALUE: &str = "fault-canary-7Qx2-value";

struct Lab {
    tmp: tempfile::TempDir,
    cts: Containers,
    sshd: Sshd,
}

fn lab() -> Option<Lab> {
    let SshdLab { tmp, cts, sshd } = SshdLab::start(|cts| {
        for (vmid, name) in [(301, "alpha"), (302, "beta")] {
            cts.add(vmid, name, true)?;
            cts.write_file(
                vmid,
                &format!("/opt/homelab/{name}/.env"),
                format!("SERVICE={name}\nSECRET_KEY=\"{VALUE}-{vmid}\"\n").as_bytes(),
            )?;
        }
        Ok(())
    })
    .unwrap()?;
    Some(Lab { tmp, cts, sshd })
}

fn target(vmid: u32, name: &str) -> Value {
    json!({"name": name, "vmid": vmid, "path": format!("/opt/homelab/{name}/.env"), "keys": {format!("{name}_secret"): "SECRET_KEY"}})
}

impl Lab {
    fn args(&self, targets: Vec<Value>) -> Value {
        json!({
            "host": self.sshd.host,
            "port": self.sshd.port,
            "user": self.sshd.user,
            "private_key": self.sshd.private_key,
            "known_hosts": self.sshd.known_hosts,
            "pct_path": self.sshd.pct_path,
            "timeout": 5,
            "parallel": 1,
            "targets": targets,
        })
    }
    fn both(&self) -> Value {
        self.args(vec![target(301, "alpha"), target(302, "beta")])
    }
}

fn spawn(args: &Value) -> Running {
    spawn_module(Path::new(env!("CARGO_BIN_EXE_env_harvest")), args, &[], &[])
}

/// Waits (at most 120 s) for the module: the module contract, and no value in a failed result or
/// on stderr.
fn finish(running: Running) -> Value {
    let r = running.finish(Duration::from_secs(120));
    if r.failed() {
        assert!(!r.stdout.contains(VALUE), "a value in a failed result");
    }
    assert!(!r.stderr.contains(VALUE), "a value on stderr");
    r.json
}

fn run(args: &Value) -> Value {
    finish(spawn(args))
}

fn msg(r: &Value) -> String {
    r["msg"].as_str().unwrap_or_default().to_string()
}

/// The run after the repair: every target read, values intact.
fn assert_converges(args: &Value) {
    let r = run(args);
    assert_eq!(r["failed"], Value::Null, "re-run failed: {}", msg(&r));
    for (vmid, name) in [(301, "alpha"), (302, "beta")] {
        assert_eq!(
            r["values"][format!("{name}_secret")].as_str(),
            Some(format!("{VALUE}-{vmid}").as_str()),
            "value of {name}"
        );
    }
}

fn assert_mentions(m: &str, needles: &[&str]) {
    let lower = m.to_lowercase();
    for n in needles {
        assert!(lower.contains(&n.to_lowercase()), "{n:?} not in: {m}");
    }
}

/// PIDs of `root` and all its descendants (from /proc), children first.
fn process_tree(root: u32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after the last ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root as i32];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out.reverse();
    out
}

fn kill_tree(root: u32, signal: i32) {
    for pid in process_tree(root) {
        // SAFETY: kill(2) on processes of the lab sshd this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Makes a target's `.env` a FIFO: `cat` blocks on it until a writer shows up, which holds the
/// module mid-harvest.
fn make_fifo(p: &PathBuf) {
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.as_os_str().to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Waits until something reads the FIFO; returns its write end (held open by the caller).
fn wait_for_reader(p: &Path) -> std::fs::File {
    wait_for(Duration::from_secs(60), || {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .ok()
    })
    .expect("the module never reached the blocked target")
}

#[test]
fn server_down_connection_refused() {
    let Some(mut l) = lab() else { return };
    let args = l.both();
    l.sshd.stop();
    let r = run(&args);
    assert_eq!(r["failed"], true);
    let m = msg(&r);
    // What failed, where (host:port, user), what to do.
    assert_mentions(
        &m,
        &[
            &format!("{}:{}", l.sshd.host, l.sshd.port),
            &format!("user {}", l.sshd.user),
            "sshd runs on the node",
        ],
    );
    assert!(
        m.to_lowercase().contains("refused") || m.to_lowercase().contains("connect"),
        "{m}"
    );
    // Repair: the server back (a new one, on its own port).
    let sshd = Sshd::start(&l.tmp.path().join("sshd2"), &l.cts).unwrap();
    l.sshd = sshd;
    assert_converges(&l.both());
}

#[test]
fn frozen_server_times_out() {
    let Some(l) = lab() else { return };
    l.sshd.process().signal(libc::SIGSTOP);
    let mut args = l.both();
    args["timeout"] = json!(2);
    let r = run(&args);
    l.sshd.process().signal(libc::SIGCONT);
    assert_eq!(r["failed"], true);
    let m = msg(&r);
    assert_mentions(
        &m,
        &[
            &format!("{}:{}", l.sshd.host, l.sshd.port),
            &format!("user {}", l.sshd.user),
            "timed out after 2 s",
            "raise `timeout` or check the node's load",
        ],
    );
    assert_converges(&l.both());
}

#[test]
fn host_key_changed_fails_before_authentication() {
    let Some(l) = lab() else { return };
    // A second server: the "reinstalled" host, whose key differs from the one on record.
    let other = Sshd::start(&l.tmp.path().join("sshd-other"), &l.cts).unwrap();
    let old_key = std::fs::read_to_string(&l.sshd.known_hosts).unwrap();
    let old_key = old_key
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    let kh = l.tmp.path().join("known_hosts_changed");
    std::fs::write(&kh, format!("[{}]:{} {old_key}\n", other.host, other.port)).unwrap();
    let mut args = l.both();
    args["port"] = json!(other.port);
    args["known_hosts"] = json!(kh);
    let r = run(&args);
    assert_eq!(r["failed"], true);
    let m = msg(&r);
    assert_mentions(&m, &["host key"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !other.log().contains("Accepted publickey"),
        "authenticated to a host whose key changed"
    );
    // Repair: the operator records the new key (pinning it here).
    args["known_hosts"] = json!(other.known_hosts);
    args["private_key"] = json!(other.private_key);
    let r = run(&args);
    assert_eq!(r["failed"], Value::Null, "{}", msg(&r));
}

#[test]
fn refused_user_key_names_the_user_and_host() {
    let Some(l) = lab() else { return };
    let key = l.tmp.path().join("stranger");
    lab::sshd::key_pair(&key).unwrap();
    let mut args = l.both();
    args["private_key"] = json!(key);
    let r = run(&args);
    assert_eq!(r["failed"], true);
    let m = msg(&r);
    assert_mentions(
        &m,
        &[
            &format!("authentication as {}", l.sshd.user),
            &format!("{}:{}", l.sshd.host, l.sshd.port),
            "authorized_keys on the node",
        ],
    );
    assert_converges(&l.both());
}

#[test]
fn sshd_killed_mid_harvest() {
    let Some(l) = lab() else { return };
    let fifo = l.cts.file(301, "/opt/homelab/alpha/.env");
    make_fifo(&fifo);
    let mut args = l.both();
    args["timeout"] = json!(60);
    let child = spawn(&args);
    let writer = wait_for_reader(&fifo);
    kill_tree(l.sshd.process().pid(), libc::SIGKILL);
    let r = finish(child);
    drop(writer);
    assert_eq!(r["failed"], true, "a harvest cut short must fail");
    assert_eq!(r["values"], Value::Null, "no partial values");
    let m = msg(&r);
    let at = format!(
        "the SSH connection to {}:{} (user {})",
        l.sshd.host, l.sshd.port, l.sshd.user
    );
    // What failed (the connection), where (host:port, user, the target being read), what to do,
    // and what it means for the rest.
    assert_mentions(
        &m,
        &[
            &format!("{at} was lost while reading CT 301's /opt/homelab/alpha/.env"),
            "check that sshd on the Proxmox node is up and re-run",
            "nothing was returned for the unread targets (2 of 2: alpha, beta)",
        ],
    );
    let targets = r["targets"].as_array().unwrap();
    for t in targets {
        assert_eq!(t["status"], "ssh_error", "{t}");
        let tm = t["msg"].as_str().unwrap();
        assert_mentions(tm, &[&at, "re-run"]);
    }
    // alpha was in flight; beta (parallel 1) was never requested.
    assert_mentions(
        targets[0]["msg"].as_str().unwrap(),
        &["was lost while reading CT 301's"],
    );
    assert_mentions(
        targets[1]["msg"].as_str().unwrap(),
        &[
            "not read",
            "before CT 302's /opt/homelab/beta/.env was requested",
        ],
    );
    // Repair: the file back, a server back.
    std::fs::remove_file(&fifo).unwrap();
    l.cts
        .write_file(
            301,
            "/opt/homelab/alpha/.env",
            format!("SECRET_KEY=\"{VALUE}-301\"\n").as_bytes(),
        )
        .unwrap();
    let sshd = Sshd::start(&l.tmp.path().join("sshd2"), &l.cts).unwrap();
    let l = Lab { sshd, ..l };
    assert_converges(&l.both());
}

#[test]
fn container_stopped_mid_run() {
    let Some(l) = lab() else { return };
    let fifo = l.cts.file(301, "/opt/homelab/alpha/.env");
    make_fifo(&fifo);
    let mut args = l.both();
    args["timeout"] = json!(60);
    let child = spawn(&args);
    // The module is reading alpha (CT 301); beta (CT 302) stops now, before its turn.
    let mut writer = wait_for_reader(&fifo);
    l.cts.set_running(302, false).unwrap();
    use std::io::Write;
    writer
        .write_all(format!("SECRET_KEY=\"{VALUE}-301\"\n").as_bytes())
        .unwrap();
    drop(writer);
    let r = finish(child);
    assert_eq!(
        r["failed"], true,
        "a required key in a stopped container fails the run"
    );
    let m = msg(&r);
    assert_mentions(&m, &["beta"]);
    assert!(m.contains("stopped") || m.contains("missing"), "{m}");
    // Repair: the container started again (and alpha's file back in place).
    std::fs::remove_file(&fifo).unwrap();
    l.cts
        .write_file(
            301,
            "/opt/homelab/alpha/.env",
            format!("SECRET_KEY=\"{VALUE}-301\"\n").as_bytes(),
        )
        .unwrap();
    l.cts.set_running(302, true).unwrap();
    assert_converges(&l.both());
}

#[test]
fn command_timeout_names_target_and_next_step() {
    let Some(l) = lab() else { return };
    // alpha's `cat` blocks on a FIFO past `timeout`; beta, on the same connection, is read.
    let fifo = l.cts.file(301, "/opt/homelab/alpha/.env");
    make_fifo(&fifo);
    let mut args = l.both();
    args["timeout"] = json!(2);
    let r = run(&args);
    assert_eq!(r["failed"], true, "alpha's required key is unread");
    let m = msg(&r);
    let alpha = &r["targets"][0];
    assert_eq!(alpha["status"], "ssh_error", "{alpha}");
    let expected = [
        "reading CT 301's /opt/homelab/alpha/.env over SSH on",
        &format!("{}:{}", l.sshd.host, l.sshd.port),
        &format!("user {}", l.sshd.user),
        "did not finish within 2 s",
        "raise `timeout` or check the node's load",
    ];
    assert_mentions(alpha["msg"].as_str().unwrap(), &expected);
    // The top-level msg quotes the first problem.
    assert_mentions(&m, &["alpha (ssh_error)"]);
    assert_mentions(&m, &expected);
    assert_eq!(r["targets"][1]["status"], "ok", "{}", r["targets"][1]);
    // Repair: release the blocked reader, put the file back.
    if let Ok(w) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
    {
        drop(w);
    }
    std::fs::remove_file(&fifo).unwrap();
    l.cts
        .write_file(
            301,
            "/opt/homelab/alpha/.env",
            format!("SECRET_KEY=\"{VALUE}-301\"\n").as_bytes(),
        )
        .unwrap();
    assert_converges(&l.both());
}

/// Issue #12: every channel error advised MaxSessions. With `parallel` past the lab sshd's
/// `MaxSessions 10` and every `cat` held on a FIFO, the channels sshd refuses advise lowering
/// `parallel`; the ten it opened time out and say so, without that advice.
#[test]
fn channels_past_max_sessions_advise_parallel_and_no_other_error_does() {
    let Some(l) = lab() else { return };
    let mut targets = Vec::new();
    let mut fifos = Vec::new();
    for i in 0..12u32 {
        let (vmid, name) = (310 + i, format!("held{i}"));
        l.cts.add(vmid, &name, true).unwrap();
        let fifo = l.cts.file(vmid, &format!("/opt/homelab/{name}/.env"));
        std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        make_fifo(&fifo);
        fifos.push(fifo);
        targets.push(target(vmid, &name));
    }
    let mut args = l.args(targets);
    args["parallel"] = json!(12);
    args["timeout"] = json!(3);
    args["fail_on_missing"] = json!(false);
    let r = run(&args);
    let (mut refused, mut timed_out) = (0, 0);
    for t in r["targets"].as_array().unwrap() {
        let m = t["msg"].as_str().unwrap_or_default();
        assert_eq!(t["status"], "ssh_error", "{t}");
        if m.contains("refused to open a channel") {
            if refused == 0 {
                eprintln!("refused channel msg: {m}");
            }
            refused += 1;
            assert_mentions(m, &["lower `parallel`", "MaxSessions"]);
        } else {
            timed_out += 1;
            assert_mentions(m, &["did not finish within 3 s"]);
            assert!(!m.contains("MaxSessions"), "{m}");
        }
    }
    assert!(
        refused >= 1 && timed_out >= 1,
        "refused {refused}, timed out {timed_out}"
    );
    // Release the readers still blocked on the FIFOs.
    for fifo in &fifos {
        if let Ok(w) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            drop(w);
        }
    }
}
