//! The `pocketid_login_code` fallback for a refused API key (`pocketid-logs-and-access.md` §4.5):
//! PocketID's own CLI in its container, reached over one verified SSH connection to the Proxmox
//! node (the env_harvest transport): `pct exec <vmid> -- docker exec -u 1000:1000 <container>
//! /app/pocket-id one-time-access-token <username>`. The CLI makes a 1-hour code and prints its URL.

use ansible_module::{Opt, Secret};
use env_harvest::pct;
use env_harvest::ssh::{self, Auth, ConnectOptions, HostKeyChecking};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The lifetime of the CLI's codes (fixed in PocketID's `cmds/one_time_access_token.go`).
pub const CLI_TTL_SECS: u64 = 3600;

#[derive(Debug, Deserialize)]
pub struct SshParams {
    pub ssh_host: Option<String>,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub ssh_private_key: Option<PathBuf>,
    pub ssh_private_key_data: Option<Secret>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_host_key_fingerprint: Option<String>,
    pub pct_path: String,
    pub vmid: Option<i64>,
    pub container: String,
    pub container_user: String,
}

pub fn options() -> Vec<Opt> {
    vec![
        Opt::str("fallback").choices(&["none", "ssh"]).default("none").help(
            "ssh: when PocketID refuses the API key (401 not_signed_in), run PocketID's CLI in its container over SSH (1-hour code; display and file delivery only)",
        ),
        Opt::str("ssh_host").help("fallback: the Proxmox node that runs PocketID's LXC container"),
        Opt::int("ssh_port").default(22).help("fallback: SSH port"),
        Opt::str("ssh_user").default("root").help("fallback: SSH user (pct needs root)"),
        Opt::path("ssh_private_key").help("fallback: private key file (else ssh_private_key_data, else ssh-agent)"),
        Opt::str("ssh_private_key_data").no_log().help("fallback: private key text"),
        Opt::path("ssh_known_hosts").help("fallback: known_hosts file holding the node's host key [default: ~/.ssh/known_hosts]"),
        Opt::str("ssh_host_key_fingerprint").help("fallback: pin the node's host key (SHA256:…) instead of known_hosts"),
        Opt::str("pct_path").default("/usr/sbin/pct").help("fallback: path of pct on the node"),
        Opt::int("vmid").help("fallback: the LXC container (CT id) where PocketID's Docker container runs"),
        Opt::str("container").default("pocketid").help(
            "fallback: the Docker container's name (Compose names it <project>-pocket-id-1 unless container_name is set)",
        ),
        Opt::str("container_user")
            .default("1000:1000")
            .help("fallback: docker exec -u, PocketID's PUID:PGID (so no root-owned files land in /app/data)"),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum SshFallbackError {
    #[error("fallback ssh needs {0}")]
    Missing(&'static str),
    #[error("vmid {0} is not a Proxmox CT id (100-999999999)")]
    Vmid(i64),
    #[error("the SSH fallback cannot e-mail a code (PocketID's CLI only prints it): use delivery display or file")]
    Email,
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    #[error("running PocketID's CLI over SSH on {host} failed before it finished ({detail}); nothing is known about a code")]
    Exec { host: String, detail: String },
    #[error("PocketID's CLI in container {container:?} of CT {vmid} has no user {username:?} (it matches username or e-mail exactly)")]
    NoUser {
        container: String,
        vmid: i64,
        username: String,
    },
    #[error("CT {vmid} has no Docker container {container:?}: set `container` (find it with `pct exec {vmid} -- docker ps --filter label=com.docker.compose.service=pocket-id --format '{{{{.Names}}}}'`)")]
    NoContainer { container: String, vmid: i64 },
    #[error("PocketID's CLI (pct exec {vmid} -- docker exec … {container} /app/pocket-id one-time-access-token) exited with {status}: {stderr}")]
    Failed {
        vmid: i64,
        container: String,
        status: String,
        stderr: String,
    },
    #[error("PocketID's CLI exited 0 but printed no /lc/ URL on stdout; check the PocketID version in CT {0}")]
    NoUrl(i64),
}

/// The command run on the node; every word quoted for the remote shell.
pub fn command(p: &SshParams, vmid: i64, username: &str) -> String {
    pct::pct_exec(
        &p.pct_path,
        false,
        &vmid.to_string(),
        &[
            "docker",
            "exec",
            "-u",
            &p.container_user,
            &p.container,
            "/app/pocket-id",
            "one-time-access-token",
            username,
        ],
    )
}

/// The `<APP_URL>/lc/<code>` URL in the CLI's stdout (its last line), held as a secret at once.
pub fn parse_url(stdout: &[u8]) -> Option<Secret> {
    let text = String::from_utf8_lossy(stdout);
    let url = text
        .split_whitespace()
        .rev()
        .find(|w| w.contains("/lc/") && (w.starts_with("http://") || w.starts_with("https://")))?;
    let code = url.rsplit('/').next().unwrap_or("");
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Secret::new(url))
}

/// Makes a 1-hour code with PocketID's CLI over SSH; returns its URL.
pub fn make_code(p: &SshParams, username: &str, timeout: u64) -> Result<Secret, SshFallbackError> {
    let host = p
        .ssh_host
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or(SshFallbackError::Missing("ssh_host"))?;
    let vmid = p.vmid.ok_or(SshFallbackError::Missing("vmid"))?;
    if !pct::valid_vmid(&vmid.to_string()) {
        return Err(SshFallbackError::Vmid(vmid));
    }
    if !(1..=65535).contains(&p.ssh_port) {
        return Err(SshFallbackError::Missing("ssh_port between 1 and 65535"));
    }
    let auth = Auth::from_options(p.ssh_private_key.as_ref(), p.ssh_private_key_data.as_ref())
        .ok_or(SshFallbackError::Missing(
            "only one of ssh_private_key and ssh_private_key_data",
        ))?;
    let known_hosts = p
        .ssh_known_hosts
        .clone()
        .unwrap_or_else(ssh::default_known_hosts);
    let timeout = Duration::from_secs(timeout.max(1));
    let opts = ConnectOptions {
        host: host.clone(),
        port: p.ssh_port as u16,
        user: p.ssh_user.clone(),
        auth,
        passphrase: None,
        known_hosts,
        host_key_fingerprint: p
            .ssh_host_key_fingerprint
            .clone()
            .filter(|s| !s.trim().is_empty()),
        // Never trust a new host key here: this connection carries a sign-in code.
        host_key_checking: HostKeyChecking::Strict,
        timeout,
    };
    let mut conn = ssh::Connection::open(&opts)?;
    let mut results = conn.run_all(&[command(p, vmid, username)], 1, timeout, &mut |_, _| {});
    conn.close();
    let r = results.pop().unwrap_or_default();
    if let Some(e) = &r.error {
        return Err(SshFallbackError::Exec {
            host,
            detail: format!("{e:?}"),
        });
    }
    // Parse (and so register as secret) before anything of the output is looked at.
    let url = parse_url(&r.stdout);
    match (r.exit_status, url) {
        (Some(0), Some(url)) => Ok(url),
        (Some(0), None) => Err(SshFallbackError::NoUrl(vmid)),
        (status, _) => {
            let stderr = ansible_module::mask(&ssh::sanitize(r.stderr.as_bytes()));
            if stderr.contains("Error: user not found") {
                Err(SshFallbackError::NoUser {
                    container: p.container.clone(),
                    vmid,
                    username: username.to_string(),
                })
            } else if stderr.contains("No such container") {
                Err(SshFallbackError::NoContainer {
                    container: p.container.clone(),
                    vmid,
                })
            } else {
                Err(SshFallbackError::Failed {
                    vmid,
                    container: p.container.clone(),
                    status: status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "no status".into()),
                    stderr: stderr.chars().take(600).collect(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_the_cli_output() {
        let out = b"A one-time access token valid for 1 hour has been created for \"alice\".\nUse the following URL to sign in once: https://id.example.org/lc/AbC123xyz789\n";
        assert_eq!(
            parse_url(out).unwrap().expose(),
            "https://id.example.org/lc/AbC123xyz789"
        );
        assert!(parse_url(b"nothing here\n").is_none());
        assert!(parse_url(b"https://id.example.org/lc/\n").is_none());
    }
}
