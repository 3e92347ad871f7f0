//! Everything about Proxmox's `pct` on the node: which vmids and paths may go into a command,
//! the command itself (`pct exec <vmid> -- cat -- <path>`, or `cat` on the node), and reading
//! what pct, cat and the SSH transport report into a [`TargetStatus`] and a message that never
//! quotes the remote error output.

use crate::ssh::{self, shell_quote, ExecError, ExecResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a file is read: inside each container (`pct exec`), or on the SSH host itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Pct,
    Direct,
}

/// The outcome of reading one target (the `status` of each entry of the result's `targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Ok,
    SshError,
    ContainerMissing,
    ContainerStopped,
    PermissionDenied,
    FileMissing,
    ParseError,
}

impl TargetStatus {
    /// The name the result uses (`ok`, `file_missing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Ok => "ok",
            TargetStatus::SshError => "ssh_error",
            TargetStatus::ContainerMissing => "container_missing",
            TargetStatus::ContainerStopped => "container_stopped",
            TargetStatus::PermissionDenied => "permission_denied",
            TargetStatus::FileMissing => "file_missing",
            TargetStatus::ParseError => "parse_error",
        }
    }
}

impl std::fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Proxmox CT id: `^[1-9][0-9]{2,8}$`.
pub fn valid_vmid(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=9).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)
}

/// An absolute path of plain components: no quoting is needed, though every word is quoted anyway.
/// At most Linux's PATH_MAX (4096) and NAME_MAX (255 per component): `cat` could not open a
/// longer one, and a huge path would only make a huge command and huge messages.
pub fn valid_path(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && p.len() < 4096
        && rest.split('/').all(|c| {
            !c.is_empty()
                && c.len() <= 255
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+@=,".contains(&b))
        })
}

/// The vmid of a target as text (Ansible may pass an int or a string).
pub fn vmid_text(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Builds the remote command for a target: every word single-quoted, `--` before argv.
pub fn build_command(
    mode: Mode,
    pct_path: &str,
    sudo: bool,
    vmid: Option<&str>,
    path: &str,
) -> String {
    let cat = ["cat", "--", path];
    match (mode, vmid) {
        (Mode::Pct, Some(vmid)) => pct_exec(pct_path, sudo, vmid, &cat),
        (Mode::Pct, None) => pct_exec(pct_path, sudo, "", &cat),
        (Mode::Direct, _) => quoted(sudo, &cat),
    }
}

/// `pct exec <vmid> -- <argv>` (through `sudo -n` when asked), every word single-quoted for
/// the node's shell.
pub fn pct_exec(pct_path: &str, sudo: bool, vmid: &str, argv: &[&str]) -> String {
    let mut words = vec![pct_path, "exec", vmid, "--"];
    words.extend_from_slice(argv);
    quoted(sudo, &words)
}

fn quoted(sudo: bool, argv: &[&str]) -> String {
    let sudo_words: &[&str] = if sudo { &["sudo", "-n", "--"] } else { &[] };
    sudo_words
        .iter()
        .chain(argv)
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the commands ran, for messages: the SSH server and the login user.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
}

/// Longest path and target name shown in a message; longer ones are shortened in the middle.
pub const PATH_SHOWN: usize = 160;
pub const NAME_SHOWN: usize = 80;

/// `s` if it has at most `max` characters, else its start and end around `…`, so that no
/// message grows with what it quotes.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max / 2).collect();
    let tail: String = s.chars().skip(n - (max - max / 2 - 1)).collect();
    format!("{head}…{tail}")
}

/// A target as messages name it: `CT 119's /opt/…/.env` (pct mode) or `/opt/…/.env on the node`.
pub fn target_text(vmid: Option<&str>, path: &str) -> String {
    let path = shorten(path, PATH_SHOWN);
    match vmid {
        Some(v) => format!("CT {v}'s {path}"),
        None => format!("{path} on the node"),
    }
}

/// Longest libssh2 reason shown (short local texts, bounded all the same).
const REASON_SHOWN: usize = 120;

/// The signal name sshd reported, if it looks like one (`KILL`, `SEGV`); sshd builds it, but it
/// is bounded like everything else a message quotes.
fn signal_text(sig: &str) -> String {
    let plain = !sig.is_empty()
        && sig.len() <= 24
        && sig
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.".contains(&b));
    if plain {
        sig.to_string()
    } else {
        "(an unrecognised signal name)".into()
    }
}

/// The message of a channel- or connection-level failure: what failed, where, and what to do.
/// Built from the target's name and libssh2's short reason only; never file content.
pub fn exec_error_text(e: &ExecError, at: Place<'_>, what: &str) -> String {
    let Place { host, port, user } = at;
    match e {
        ExecError::ConnectionLost { during, reason } => format!(
            "the SSH connection to {host}:{port} (user {user}) was lost while {during} {what} ({}): check that sshd on the Proxmox node is up and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::NotSent => format!(
            "not read: the SSH connection to {host}:{port} (user {user}) was lost before {what} was requested; check that sshd on the Proxmox node is up and re-run"
        ),
        ExecError::TimedOut { secs } => format!(
            "reading {what} over SSH on {host}:{port} (user {user}) did not finish within {secs} s (timeout): raise `timeout` or check the node's load (a hung pct or cat there holds the read)"
        ),
        // sshd answers a channel open past its MaxSessions with a failure: only then is
        // `parallel` the likely cause.
        ExecError::Channel {
            reason,
            refused: true,
            ..
        } => format!(
            "sshd on {host}:{port} (user {user}) refused to open a channel for {what} ({}): it does so when `parallel` reaches its MaxSessions (10 by default), so lower `parallel` (or raise MaxSessions on the node) and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::Channel {
            during,
            reason,
            refused: false,
        } => format!(
            "{during} {what} failed on the SSH connection to {host}:{port} (user {user}) ({}): check sshd's log on the node and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::Signal(sig) => format!(
            "the command reading {what} on {host}:{port} (user {user}) was killed by signal {}: check the node's logs (e.g. the OOM killer) and re-run",
            signal_text(sig)
        ),
    }
}

/// The reason of a `cat: <path>: <reason>` message when it has the shape of a C library error
/// text (letters, spaces, `/ ' -`, at most 64 characters). The container writes this stream and
/// could put anything there, file content included, so nothing else of it is shown.
fn cat_reason(stderr: &str) -> Option<&str> {
    // The path is ours and holds no `: ` (valid_path), so the first `: ` ends it.
    let (_, reason) = stderr.strip_prefix("cat: ")?.split_once(": ")?;
    let plain = (1..=64).contains(&reason.len())
        && reason
            .chars()
            .all(|c| c.is_ascii_alphabetic() || " /'-".contains(c));
    plain.then_some(reason)
}

/// What a failed command's error output says, in fixed words: for the failures that have a
/// known next step, that step; otherwise only its size. The text itself is never echoed, as
/// the container can write to that stream (and could echo the file there).
fn failure_hint(stderr: &str, code: Option<i32>, user: &str) -> String {
    if stderr.is_empty() {
        return "no error output".into();
    }
    if stderr.starts_with("sudo: ") {
        if stderr.contains("a password is required") {
            return format!(
                "sudo needs a password (sudo -n): add a NOPASSWD sudoers rule for {user} and pct"
            );
        }
        return format!("sudo refused the command: check the sudoers rule for {user} and pct");
    }
    if stderr.contains("please run as root") {
        return "pct must run as root: log in as root or set `sudo: true`".into();
    }
    if stderr.starts_with("lxc-attach: ") && stderr.contains("Failed to exec") {
        return "lxc-attach could not run cat in the container: check that the container has coreutils".into();
    }
    if code == Some(127)
        && (stderr.contains("command not found") || stderr.contains("No such file or directory"))
    {
        return "the program was not found on the node: check `pct_path` and that this is a Proxmox node".into();
    }
    format!(
        "its error output ({} bytes) is not shown, since the container can write to it: run the command on the node to read it",
        stderr.len()
    )
}

/// Per-target status (contract §1.2: classified by exit code and stderr prefix). `what` names
/// the target in transport messages (see [`target_text`]). No message quotes the remote error
/// output beyond a C library error text of `cat` (see [`cat_reason`]).
pub fn classify(r: &ExecResult, at: Place<'_>, what: &str) -> (TargetStatus, String) {
    if let Some(e) = &r.error {
        return (TargetStatus::SshError, exec_error_text(e, at, what));
    }
    let err = r.stderr.as_str();
    if err.starts_with("Configuration file '") && err.contains("does not exist") {
        return (
            TargetStatus::ContainerMissing,
            "the container does not exist on this node".into(),
        );
    }
    if err.starts_with("container '") && err.contains("not running") {
        return (
            TargetStatus::ContainerStopped,
            "the container is not running".into(),
        );
    }
    if r.exit_status == Some(1) && err.starts_with("cat: ") {
        return match cat_reason(err) {
            Some("Permission denied") => (
                TargetStatus::PermissionDenied,
                "the file cannot be read (Permission denied)".into(),
            ),
            Some("Is a directory") => (TargetStatus::FileMissing, "the path is a directory".into()),
            Some("No such file or directory" | "Not a directory") => {
                (TargetStatus::FileMissing, "the file does not exist".into())
            }
            Some(reason) => (TargetStatus::FileMissing, format!("cat could not read the file ({reason})")),
            None => (
                TargetStatus::FileMissing,
                "cat could not read the file (its error text is not shown: it is not a plain system error message)".into(),
            ),
        };
    }
    if r.stdout_truncated {
        return (
            TargetStatus::ParseError,
            format!(
                "the file is larger than {} bytes; not read",
                ssh::STDOUT_CAP
            ),
        );
    }
    match r.exit_status {
        Some(0) => (TargetStatus::Ok, String::new()),
        code => {
            let shown = code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            (
                TargetStatus::SshError,
                format!(
                    "the remote command exited with status {shown}: {}",
                    failure_hint(err, code, at.user)
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_commands() {
        assert!(valid_vmid("119"));
        for bad in ["119; touch /tmp/x", "99", "0119", "-1", "abc", "1234567890"] {
            assert!(!valid_vmid(bad), "{bad}");
        }
        assert!(valid_path("/opt/homelab/oauth2-gateway/.env"));
        for bad in [
            "opt/x",
            "/opt/'x",
            "/opt/$(id)/.env",
            "/opt/../etc/shadow",
            "-rf",
            "/opt//x",
            "/opt/./x",
            "/opt/a b",
            "/",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
        assert_eq!(
            build_command(
                Mode::Pct,
                "/usr/sbin/pct",
                false,
                Some("119"),
                "/opt/homelab/x/.env"
            ),
            "'/usr/sbin/pct' 'exec' '119' '--' 'cat' '--' '/opt/homelab/x/.env'"
        );
        assert_eq!(
            build_command(Mode::Direct, "/usr/sbin/pct", true, None, "/a/.env"),
            "'sudo' '-n' '--' 'cat' '--' '/a/.env'"
        );
        // PATH_MAX and NAME_MAX: a longer path is refused before anything is sent.
        assert!(valid_path(&format!("/{}", "a".repeat(255))));
        assert!(!valid_path(&format!("/{}", "a".repeat(256))));
        assert!(valid_path(&"/a".repeat(2047)));
        assert!(!valid_path(&"/a".repeat(2048)));
        assert!(!valid_path(&"/a".repeat(50_000)));
    }

    const AT: Place<'static> = Place {
        host: "127.0.0.1",
        port: 22,
        user: "root",
    };

    fn failed(code: i32, stderr: &str) -> (TargetStatus, String) {
        let r = ExecResult {
            stderr: stderr.into(),
            exit_status: Some(code),
            ..ExecResult::default()
        };
        classify(&r, AT, "CT 119's /opt/x/.env")
    }

    /// Issue #12: `the remote command exited with status N: <300 characters of stderr>` could
    /// echo whatever the container wrote there, file content included.
    #[test]
    fn remote_error_output_is_never_echoed() {
        let (status, msg) = failed(1, "SECRET=stderr-canary cat: /opt/x/.env: No such file");
        assert_eq!(status, TargetStatus::SshError);
        assert!(!msg.contains("canary"), "{msg}");
        assert!(
            msg.contains("exited with status 1") && msg.contains("not shown"),
            "{msg}"
        );
        let (_, msg) = failed(2, &"x".repeat(4000));
        assert!(msg.len() < 300, "{msg}");
        // cat's reason is shown only when it is a plain system error text.
        let (status, msg) = failed(1, "cat: /opt/x/.env: Input/output error");
        assert_eq!(
            (status, msg.as_str()),
            (
                TargetStatus::FileMissing,
                "cat could not read the file (Input/output error)"
            )
        );
        let (_, msg) = failed(
            1,
            "cat: /opt/x/.env: stderr-canary=1 cat: /opt/x/.env: No such file or directory",
        );
        assert!(!msg.contains("canary"), "{msg}");
        assert_eq!(
            failed(1, "cat: /opt/x/.env: No such file or directory").1,
            "the file does not exist"
        );
        assert_eq!(
            failed(1, "cat: /opt/x/.env: Permission denied").0,
            TargetStatus::PermissionDenied
        );
        // Known node-side failures get their next step in fixed words.
        assert!(failed(1, "sudo: a password is required")
            .1
            .contains("NOPASSWD"));
        assert!(failed(255, "please run as root").1.contains("`sudo: true`"));
        assert!(failed(
            127,
            "bash: line 1: /usr/sbin/pct: No such file or directory"
        )
        .1
        .contains("`pct_path`"));
        assert!(failed(3, "").1.ends_with("no error output"));
    }

    /// Issue #12: every channel error advised MaxSessions; only a refused channel open should.
    #[test]
    fn channel_advice_matches_the_failure() {
        let refused = ExecError::Channel {
            during: "opening a channel to read",
            reason: "Channel open failure (connect failed)".into(),
            refused: true,
        };
        let msg = exec_error_text(&refused, AT, "CT 119's /opt/x/.env");
        assert!(
            msg.contains("MaxSessions") && msg.contains("`parallel`"),
            "{msg}"
        );
        let other = ExecError::Channel {
            during: "starting the command to read",
            reason: "x".repeat(100_000),
            refused: false,
        };
        let msg = exec_error_text(&other, AT, &target_text(Some("119"), &"/a".repeat(50_000)));
        assert!(!msg.contains("MaxSessions"), "{msg}");
        assert!(msg.len() < 600, "{} bytes", msg.len());
        let sig = ExecError::Signal("KILL; SECRET=canary and more".into());
        assert!(!exec_error_text(&sig, AT, "x").contains("canary"));
        assert!(exec_error_text(&ExecError::Signal("KILL".into()), AT, "x").contains("signal KILL"));
    }
}
