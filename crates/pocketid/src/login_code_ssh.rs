//! The `pocketid_login_code` fallback for a refused API key (`pocketid-logs-and-access.md` §4.5):
//! PocketID's own CLI in its container, reached over one verified SSH connection to the Proxmox
//! node (the env_harvest transport): `pct exec <vmid> -- docker exec -u 1000:1000 <container>
//! /app/pocket-id one-time-access-token <username>`. The CLI makes a 1-hour code and prints its URL.

use ansible_module::{Opt, Secret};
use env_harvest::pct;
use env_harvest::ssh::{self, HostKeyChecking};
use env_harvest::PrefixedSshConn;
use serde::Deserialize;

/// The lifetime of the CLI's codes (fixed in PocketID's `cmds/one_time_access_token.go`).
pub const CLI_TTL_SECS: u64 = 3600;

/// The option that is not offered here: a new host key is never trusted on a connection that
/// carries a sign-in code.
const NOT_OFFERED: &str = "ssh_host_key_checking";

#[derive(Debug, Deserialize)]
pub struct SshParams {
    #[serde(flatten)]
    pub ssh: PrefixedSshConn,
    pub vmid: Option<i64>,
    pub container: String,
    pub container_user: String,
}

pub fn options() -> Vec<Opt> {
    let mut o = vec![Opt::str("fallback").choices(&["none", "ssh"]).default("none").help(
        "ssh: when PocketID refuses the API key (401 not_signed_in), run PocketID's CLI in its container over SSH (1-hour code; display and file delivery only)",
    )];
    o.extend(
        env_harvest::prefixed_conn_options()
            .into_iter()
            .filter(|o| o.name != NOT_OFFERED),
    );
    o.extend([
        Opt::int("vmid").help("fallback: the LXC container (CT id) where PocketID's Docker container runs"),
        Opt::str("container").default("pocketid").help(
            "fallback: the Docker container's name (Compose names it <project>-pocket-id-1 unless container_name is set)",
        ),
        Opt::str("container_user")
            .default("1000:1000")
            .help("fallback: docker exec -u, PocketID's PUID:PGID (so no root-owned files land in /app/data)"),
    ]);
    o
}

#[derive(Debug, thiserror::Error)]
pub enum SshFallbackError {
    #[error("fallback ssh needs {0}")]
    Missing(&'static str),
    #[error("vmid {0} is not a Proxmox CT id (100-999999999)")]
    Vmid(i64),
    #[error("the SSH fallback cannot e-mail a code (PocketID's CLI only prints it): use delivery display or file")]
    Email,
    #[error("{0}")]
    Options(String),
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
        &p.ssh.pct_path,
        p.ssh.sudo,
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
    if !crate::api::access::is_plain_code(code) {
        return None;
    }
    Some(Secret::new(url))
}

/// Makes a 1-hour code with PocketID's CLI over SSH; returns its URL.
pub fn make_code(p: &SshParams, username: &str) -> Result<Secret, SshFallbackError> {
    let mut opts = p
        .ssh
        .connect_options()
        .map_err(|e| SshFallbackError::Options(e.to_string()))?
        .ok_or(SshFallbackError::Missing("ssh_host"))?;
    // Never trust a new host key here: this connection carries a sign-in code.
    opts.host_key_checking = HostKeyChecking::Strict;
    let vmid = p.vmid.ok_or(SshFallbackError::Missing("vmid"))?;
    if !pct::valid_vmid(&vmid.to_string()) {
        return Err(SshFallbackError::Vmid(vmid));
    }
    let (host, timeout) = (opts.host.clone(), opts.timeout);
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
