//! The `pocketid_login_code` fallback for a refused API key (`pocketid-logs-and-access.md` §4.5):
//! PocketID's own CLI in its container, reached over one verified SSH connection to the Proxmox
//! node (the `proxmox_ssh` transport): `pct exec <vmid> -- docker exec -u <uid:gid> <container>
//! /app/pocket-id one-time-access-token <username>`. The CLI makes a 1-hour code and prints its URL.
//!
//! The user is the owner of `/app/data` (§7): `1000:1000` (PUID:PGID) in the standard image,
//! `65532:65532` (distroless `nonroot`) in the distroless one, which has neither a shell nor `id`
//! nor `stat`. So it is read from the LXC container's side, on the same connection: `docker
//! container inspect` gives the source of the `/app/data` mount, and `stat -c %u:%g` in the CT
//! gives its owner. `container_user` overrides it.

use ansible_module::text::sanitize;
use ansible_module::{Opt, Secret};
use proxmox_ssh::ssh::{self, HostKeyChecking};
use proxmox_ssh::{pct, PrefixedSshConn};
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
    pub container_user: Option<String>,
}

pub fn options() -> Vec<Opt> {
    let mut o = vec![Opt::str("fallback").choices(&["none", "ssh"]).default("none").help(
        "ssh: when PocketID refuses the API key (401 not_signed_in), run PocketID's CLI in its container over SSH (1-hour code; display and file delivery only)",
    )];
    o.extend(
        proxmox_ssh::prefixed_conn_options()
            .into_iter()
            .filter(|o| o.name != NOT_OFFERED),
    );
    o.extend([
        Opt::int("vmid").help("fallback: the LXC container (CT id) where PocketID's Docker container runs"),
        Opt::str("container").default("pocketid").help(
            "fallback: the Docker container's name (Compose names it <project>-pocket-id-1 unless container_name is set)",
        ),
        Opt::str("container_user").help(
            "fallback: docker exec -u, PocketID's PUID:PGID [default: the owner of /app/data's mount, read in the CT: 1000:1000 in the standard image, 65532:65532 in the distroless one]",
        ),
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
    #[error(transparent)]
    Ssh(#[from] proxmox_ssh::Error),
    /// `detail` is built by proxmox_ssh from the target's name and libssh2's short reason only.
    #[error("{detail}; nothing is known about a code")]
    Exec { detail: String },
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
    #[error("could not find the owner of /app/data of Docker container {container:?} in CT {vmid}: {why}. Set container_user to the user PocketID runs as (PUID:PGID; 1000:1000 in the standard image, 65532:65532 in the distroless one)")]
    Owner {
        container: String,
        vmid: i64,
        why: String,
    },
}

/// The mount source of `/app/data`, as `docker container inspect --format` prints it.
const DATA_MOUNT_FORMAT: &str =
    r#"{{range .Mounts}}{{if eq .Destination "/app/data"}}{{.Source}}{{end}}{{end}}"#;

/// The `/app/data` mount's source in `docker container inspect` output ([`DATA_MOUNT_FORMAT`]):
/// a plain absolute path (`pct::valid_path`) with the surrounding white space trimmed, or why
/// there is none. Reads remote output, so it never panics; the reason never quotes it.
fn mount_source(stdout: &[u8]) -> Result<String, &'static str> {
    let source = String::from_utf8_lossy(stdout).trim().to_string();
    if source.is_empty() {
        return Err("/app/data is not a mount of the container");
    }
    if !pct::valid_path(&source) {
        return Err("the source of its /app/data mount is not a plain absolute path");
    }
    Ok(source)
}

/// `uid:gid`, both numbers, as `stat -c %u:%g` prints them.
fn valid_owner(s: &str) -> bool {
    s.split_once(':').is_some_and(|(u, g)| {
        [u, g]
            .iter()
            .all(|n| (1..=10).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
    })
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

/// Runs one command in the CT over the open connection; a transport failure is an error.
fn run_in_ct(
    conn: &mut ssh::Connection,
    p: &SshParams,
    vmid: i64,
    argv: &[&str],
    what: &'static str,
    timeout: std::time::Duration,
) -> Result<ssh::ExecResult, SshFallbackError> {
    let cmd = pct::pct_exec(&p.ssh.pct_path, p.ssh.sudo, &vmid.to_string(), argv);
    let r = conn
        .run_all(&[cmd], 1, timeout, &mut |_, _| {})
        .pop()
        .unwrap_or_default();
    match &r.error {
        Some(e) => {
            let at = pct::Place {
                host: &conn.host,
                port: conn.port,
                user: &p.ssh.ssh_user,
            };
            Err(SshFallbackError::Exec {
                detail: pct::exec_error_text(e, at, what),
            })
        }
        None => Ok(r),
    }
}

/// The owner (`uid:gid`) of the container's `/app/data`, read from the CT's side: the mount's
/// source from `docker container inspect`, then `stat` on it in the CT. Nothing the CT printed
/// is quoted in an error.
pub fn data_owner(
    conn: &mut ssh::Connection,
    p: &SshParams,
    vmid: i64,
    timeout: std::time::Duration,
) -> Result<String, SshFallbackError> {
    let owner_err = |why: String| SshFallbackError::Owner {
        container: p.container.clone(),
        vmid,
        why,
    };
    let inspect = [
        "docker",
        "container",
        "inspect",
        "--format",
        DATA_MOUNT_FORMAT,
        p.container.as_str(),
    ];
    let r = run_in_ct(conn, p, vmid, &inspect, "docker container inspect", timeout)?;
    if r.exit_status != Some(0) {
        return Err(if r.stderr.contains("No such container") {
            SshFallbackError::NoContainer {
                container: p.container.clone(),
                vmid,
            }
        } else {
            owner_err(format!(
                "docker container inspect exited with {} (its error output is not shown)",
                status_text(r.exit_status)
            ))
        });
    }
    let source = mount_source(&r.stdout).map_err(|why| owner_err(why.into()))?;
    let r = run_in_ct(
        conn,
        p,
        vmid,
        &["stat", "-c", "%u:%g", "--", &source],
        "stat",
        timeout,
    )?;
    let owner = String::from_utf8_lossy(&r.stdout).trim().to_string();
    if r.exit_status != Some(0) || !valid_owner(&owner) {
        return Err(owner_err(format!(
            "stat -c %u:%g of {} in the CT exited with {} and printed no uid:gid",
            pct::shorten(&source, pct::PATH_SHOWN),
            status_text(r.exit_status)
        )));
    }
    Ok(owner)
}

fn status_text(status: Option<i32>) -> String {
    status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "no status".into())
}

/// What the CLI made, and as whom it ran.
pub struct Made {
    pub url: Secret,
    /// The `docker exec -u` user, and whether it was read from `/app/data`.
    pub user: String,
    pub detected: bool,
}

/// Makes a 1-hour code with PocketID's CLI over SSH; returns its URL.
pub fn make_code(p: &SshParams, username: &str) -> Result<Made, SshFallbackError> {
    let mut opts = p
        .ssh
        .connect_options()?
        .ok_or(SshFallbackError::Missing("ssh_host"))?;
    // Never trust a new host key here: this connection carries a sign-in code.
    opts.host_key_checking = HostKeyChecking::Strict;
    let vmid = p.vmid.ok_or(SshFallbackError::Missing("vmid"))?;
    if !pct::valid_vmid(&vmid.to_string()) {
        return Err(SshFallbackError::Vmid(vmid));
    }
    let timeout = opts.timeout;
    let mut conn = ssh::Connection::open(&opts)?;
    let made = run_cli(&mut conn, p, vmid, username, timeout);
    conn.close();
    made
}

/// The CLI's run on the open connection, as the given or the detected user.
fn run_cli(
    conn: &mut ssh::Connection,
    p: &SshParams,
    vmid: i64,
    username: &str,
    timeout: std::time::Duration,
) -> Result<Made, SshFallbackError> {
    let given = p.container_user.clone().filter(|u| !u.trim().is_empty());
    let detected = given.is_none();
    let user = match given {
        Some(u) => u,
        None => data_owner(conn, p, vmid, timeout)?,
    };
    let cli = [
        "docker",
        "exec",
        "-u",
        user.as_str(),
        p.container.as_str(),
        "/app/pocket-id",
        "one-time-access-token",
        username,
    ];
    let r = run_in_ct(conn, p, vmid, &cli, "PocketID's CLI", timeout)?;
    // Parse (and so register as secret) before anything of the output is looked at.
    let url = parse_url(&r.stdout);
    match (r.exit_status, url) {
        (Some(0), Some(url)) => Ok(Made {
            url,
            user,
            detected,
        }),
        (Some(0), None) => Err(SshFallbackError::NoUrl(vmid)),
        (status, _) => {
            let stderr = ansible_module::mask(&sanitize(r.stderr.as_bytes()));
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
                    status: status_text(status),
                    stderr: stderr.chars().take(600).collect(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn owners_are_two_numbers() {
        for ok in ["1000:1000", "65532:65532", "0:0"] {
            assert!(valid_owner(ok), "{ok}");
        }
        for bad in [
            "",
            "1000",
            "a:b",
            "1000:",
            ":1000",
            "1:2:3",
            "1000:1000\n",
            "12345678901:1",
        ] {
            assert!(!valid_owner(bad), "{bad:?}");
        }
    }

    #[test]
    fn mount_sources_are_plain_absolute_paths() {
        assert_eq!(
            mount_source(b"/var/lib/docker/volumes/pocketid_data/_data\n"),
            Ok("/var/lib/docker/volumes/pocketid_data/_data".into())
        );
        assert_eq!(
            mount_source(b" /opt/pocket-id/data \r\n"),
            Ok("/opt/pocket-id/data".into())
        );
        assert_eq!(
            mount_source(b"\n"),
            Err("/app/data is not a mount of the container")
        );
        for bad in [
            &b"data"[..],
            b"/opt/../etc",
            b"/opt/a b",
            b"/opt/a\n/opt/b",
            b"/opt/$(id)",
            b"/opt/\xff",
            b"/",
        ] {
            assert_eq!(
                mount_source(bad),
                Err("the source of its /app/data mount is not a plain absolute path"),
                "{bad:?}"
            );
        }
    }

    /// The shape `mount_source` promises for what it accepts.
    fn is_plain_absolute(p: &str) -> bool {
        p.len() < 4096
            && p.strip_prefix('/').is_some_and(|rest| {
                rest.split('/').all(|c| {
                    (1..=255).contains(&c.len())
                        && c != "."
                        && c != ".."
                        && c.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-+@=,".contains(&b))
                })
            })
    }

    proptest! {
        #[test]
        fn reading_inspect_output_never_panics(raw in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(source) = mount_source(&raw) {
                let text = String::from_utf8_lossy(&raw);
                prop_assert!(is_plain_absolute(&source), "{source:?}");
                prop_assert_eq!(source.as_str(), text.trim());
            }
        }

        #[test]
        fn inspect_text_yields_only_plain_paths(raw in "[ \n]{0,2}(/[a-z0-9._+@=,$ -]{0,12}){0,5}[ \r\n]{0,2}") {
            let trimmed = raw.trim();
            match mount_source(raw.as_bytes()) {
                Ok(source) => {
                    prop_assert!(is_plain_absolute(&source), "{source:?}");
                    prop_assert_eq!(source.as_str(), trimmed);
                }
                Err(_) => prop_assert!(trimmed.is_empty() || !is_plain_absolute(trimmed)),
            }
        }

        #[test]
        fn reading_stat_output_never_panics(raw in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            for text in [raw, String::from_utf8_lossy(&bytes).into_owned()] {
                if valid_owner(&text) {
                    let (u, g) = text.split_once(':').unwrap();
                    for n in [u, g] {
                        prop_assert!((1..=10).contains(&n.len()), "{text:?}");
                        prop_assert!(n.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
                    }
                }
            }
        }

        #[test]
        fn two_numbers_are_an_owner_and_nothing_else_is(u in "[0-9]{1,10}", g in "[0-9]{1,10}", junk in "[^0-9]{1,3}") {
            let (ok, bad_uid, bad_gid, three) = (
                format!("{u}:{g}"),
                format!("{u}{junk}:{g}"),
                format!("{u}:{g}{junk}"),
                format!("{u}:{g}:{u}"),
            );
            prop_assert!(valid_owner(&ok));
            for bad in [bad_uid, bad_gid, three] {
                prop_assert!(!valid_owner(&bad), "{:?}", bad);
            }
        }
    }
}
