//! A real OpenSSH `sshd` on 127.0.0.1:<free port> with its own host key, a generated user key and
//! a `pct` stand-in over the fixture containers (contract `ssh-pct-dotenv.md` §1, §3).
//!
//! The ssh user is the current user (root in CI). When that is root, any other local user may
//! log in with the same key too (the compatibility matrix logs in as an unprivileged user): sshd
//! reads a user's authorized keys with that user's rights, which cannot reach the lab's private
//! directory, so root's sshd also reads them through `AuthorizedKeysCommand` (`cat` of the lab's
//! file, run as root). Public-key auth only, `UsePAM no`,
//! `StrictModes no`, `PidFile none`, `LogLevel VERBOSE` into [`Sshd::log_path`] (so tests can
//! assert that no authentication was attempted). `SetEnv SHLVL=1` keeps bash from sourcing the
//! user's `~/.bashrc` for sshd's `bash -c` (bash only does that at shell level 1), so a heavy rc
//! file costs nothing and prints nothing. Stopped on drop.

use crate::error::{IoContext, LabError, Result};
use crate::fixtures::Containers;
use crate::proc::{free_port, wait_for, ManagedChild};
use crate::tools::system_bin;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The bash `pct` stand-in; `@ROOT@` is replaced by the fixture root when installed.
pub const PCT_STANDIN: &str = include_str!("pct-standin.sh");

/// A running lab sshd.
#[derive(Debug)]
pub struct Sshd {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The user's private key (ed25519, no passphrase), OpenSSH format.
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// A known_hosts file holding `[127.0.0.1]:<port> ssh-ed25519 …` for this server.
    pub known_hosts: PathBuf,
    /// The installed `pct` stand-in (absolute path; pass it as `pct_path`).
    pub pct_path: PathBuf,
    /// The host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).
    pub host_key_fingerprint: String,
    /// sshd's log (`-E`), LogLevel VERBOSE.
    pub log_path: PathBuf,
    /// The directory holding keys, config and log.
    pub dir: PathBuf,
    child: ManagedChild,
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            if let Ok(s) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str() {
                return s.to_string();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    let out = Command::new(system_bin("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .ctx(|| "running ssh-keygen (install openssh-client: scripts/setup.sh)".into())?;
    if !out.status.success() {
        return Err(LabError::msg(format!(
            "ssh-keygen failed for {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn fingerprint(pubkey: &Path) -> Result<String> {
    let out = Command::new(system_bin("ssh-keygen"))
        .arg("-l")
        .arg("-f")
        .arg(pubkey)
        .output()
        .ctx(|| "running ssh-keygen -l".into())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or_else(|| LabError::msg("ssh-keygen -l printed no SHA256 fingerprint"))
}

/// A new ed25519 key pair without a passphrase at `path` and `path.pub`: a user key no lab sshd
/// accepts until it is added to an `authorized_keys`.
pub fn key_pair(path: &Path) -> Result<()> {
    keygen(path, "lab-other")
}

/// Installs the `pct` stand-in for the fixture tree `root` at `path` (mode 0755).
pub fn install_pct_standin(path: &Path, root: &Path) -> Result<()> {
    let script = PCT_STANDIN.replace("@ROOT@", &root.display().to_string());
    std::fs::write(path, script).ctx(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .ctx(|| "chmod pct".into())
}

/// The lab's sshd_config (see the module's head).
fn config_text(
    host: &str,
    port: u16,
    host_key: &Path,
    authorized: &Path,
    bin_dir: &Path,
    user: &str,
) -> String {
    let other_users = if user == "root" {
        format!(
            "AuthorizedKeysCommand {cat} {ak}\nAuthorizedKeysCommandUser root\n",
            cat = system_bin("cat").display(),
            ak = authorized.display()
        )
    } else {
        String::new()
    };
    format!(
        "ListenAddress {host}:{port}\n\
         HostKey {hk}\n\
         PidFile none\n\
         UsePAM no\n\
         StrictModes no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AuthenticationMethods publickey\n\
         AuthorizedKeysFile {ak}\n\
         PermitRootLogin prohibit-password\n\
         PermitUserRC no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         MaxSessions 10\n\
         LogLevel VERBOSE\n\
         SetEnv SHLVL=1 PATH={bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         {other_users}",
        hk = host_key.display(),
        ak = authorized.display(),
        bin = bin_dir.display(),
    )
}

impl Sshd {
    /// Starts sshd in `dir` (created if needed) serving `containers` through the `pct` stand-in.
    pub fn start(dir: &Path, containers: &Containers) -> Result<Self> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let sshd_bin = system_bin("sshd");
        if !sshd_bin.is_absolute() {
            return Err(LabError::msg(
                "sshd not found: install openssh-server (run scripts/setup.sh)",
            ));
        }
        let user = current_user();
        if user == "root" {
            // A root sshd needs its privilege separation directory (systemd normally creates it).
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let host_key = dir.join("ssh_host_ed25519_key");
        let user_key = dir.join("id_ed25519");
        for p in [&host_key, &user_key] {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(p.with_extension("pub"));
        }
        keygen(&host_key, "lab-host")?;
        keygen(&user_key, "lab-user")?;
        let host_pub = std::fs::read_to_string(dir.join("ssh_host_ed25519_key.pub"))
            .ctx(|| "reading host public key".into())?;
        let user_pub = dir.join("id_ed25519.pub");
        let authorized = dir.join("authorized_keys");
        std::fs::copy(&user_pub, &authorized).ctx(|| "writing authorized_keys".into())?;
        let host_key_fingerprint = fingerprint(&dir.join("ssh_host_ed25519_key.pub"))?;

        let bin_dir = dir.join("bin");
        std::fs::create_dir_all(&bin_dir).ctx(|| "creating bin dir".into())?;
        let pct_path = bin_dir.join("pct");
        install_pct_standin(&pct_path, &containers.root)?;

        let port = free_port();
        let host = "127.0.0.1".to_string();
        let known_hosts = dir.join("known_hosts");
        let mut parts = host_pub.split_whitespace();
        let (kt, kb) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        std::fs::write(&known_hosts, format!("[{host}]:{port} {kt} {kb}\n"))
            .ctx(|| "writing known_hosts".into())?;

        let log_path = dir.join("sshd.log");
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            config_text(&host, port, &host_key, &authorized, &bin_dir, &user),
        )
        .ctx(|| "writing sshd_config".into())?;

        let mut cmd = Command::new(&sshd_bin);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&cfg)
            .arg("-E")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ManagedChild::spawn("sshd", &mut cmd)?;
        let banner = wait_for(Duration::from_secs(20), || {
            if child.exited() {
                return Some(false);
            }
            let mut s = TcpStream::connect((host.as_str(), port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).ok()?;
            buf[..n].starts_with(b"SSH-2.0-").then_some(true)
        });
        if banner != Some(true) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(LabError::msg(format!(
                "sshd did not start on {host}:{port}; its log says:\n{}",
                log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(Sshd {
            host,
            port,
            user,
            private_key: user_key,
            public_key: user_pub,
            known_hosts,
            pct_path,
            host_key_fingerprint,
            log_path,
            dir,
            child,
        })
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server process (e.g. to send SIGSTOP in a fault test).
    pub fn process(&self) -> &ManagedChild {
        &self.child
    }

    /// Stops sshd now (also done on drop).
    pub fn stop(&mut self) {
        self.child.stop();
    }
}

/// The set-up of a test against the real transport: fixture containers in `<tmp>/cts` and a lab
/// sshd serving them from `<tmp>/sshd`, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct SshdLab {
    pub tmp: tempfile::TempDir,
    pub cts: Containers,
    pub sshd: Sshd,
}

impl SshdLab {
    /// Creates the containers, lets `fill` add to them, then starts sshd. `Ok(None)`, said on
    /// stderr, when sshd is not installed: the test skips.
    pub fn start(fill: impl FnOnce(&Containers) -> Result<()>) -> Result<Option<SshdLab>> {
        if !system_bin("sshd").is_absolute() {
            eprintln!("sshd not installed (run scripts/setup.sh); skipping");
            return Ok(None);
        }
        let tmp = tempfile::tempdir().ctx(|| "creating the sshd lab's directory".into())?;
        let cts = Containers::create(tmp.path().join("cts"))?;
        fill(&cts)?;
        let sshd = Sshd::start(&tmp.path().join("sshd"), &cts)?;
        Ok(Some(SshdLab { tmp, cts, sshd }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(s: &Sshd, remote: &str) -> std::process::Output {
        Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", s.known_hosts.display()))
            .arg("-i")
            .arg(&s.private_key)
            .arg("-p")
            .arg(s.port.to_string())
            .arg(format!("{}@{}", s.user, s.host))
            .arg(remote)
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    #[test]
    fn sshd_and_pct_standin() {
        if !system_bin("sshd").is_absolute() {
            eprintln!("sshd not installed; run scripts/setup.sh");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let cts = Containers::create(tmp.path().join("cts")).unwrap();
        cts.add(119, "oauth2-gateway", true).unwrap();
        cts.write_file(119, "/opt/homelab/oauth2-gateway/.env", b"A=1\n")
            .unwrap();
        cts.add(120, "stopped", false).unwrap();
        let s = Sshd::start(&tmp.path().join("sshd"), &cts).unwrap();
        let pct = s.pct_path.display().to_string();
        let o = ssh(
            &s,
            &format!("'{pct}' 'exec' '119' '--' 'cat' '--' '/opt/homelab/oauth2-gateway/.env'"),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.stdout, b"A=1\n");
        let o = ssh(&s, &format!("'{pct}' exec 120 -- cat -- /x"));
        assert_eq!(o.status.code(), Some(255));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            "container '120' not running!\n"
        );
        let o = ssh(&s, &format!("'{pct}' exec 999 -- cat /x"));
        assert_eq!(o.status.code(), Some(2));
        let o = ssh(&s, &format!("'{pct}' exec 119 ls -la"));
        assert!(String::from_utf8_lossy(&o.stderr)
            .starts_with("Unknown option: la\n400 unable to parse option\n"));
        let o = ssh(&s, &format!("'{pct}' list"));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            out.starts_with(
                "VMID       Status     Lock         Name                \n119        running"
            ),
            "{out:?}"
        );
        assert!(s
            .log()
            .contains(&format!("Accepted publickey for {}", s.user)));
    }
}
