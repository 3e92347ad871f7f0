//! `docker logs` of PocketID's container inside its LXC container, over one verified SSH
//! connection to the Proxmox node (the `proxmox_ssh` transport): `pct exec <vmid> -- docker logs
//! --timestamps --since <Go duration or RFC 3339> [--until …] <container>` (contract
//! pocketid-logs-and-access §5). Docker's timestamp prefix orders the lines. A Compose service
//! name is resolved to its container first with `docker ps --filter
//! label=com.docker.compose.service=<svc> --format '{{.Names}}'`.

use crate::summary::RawLine;
use crate::time::TimeSpec;
use proxmox_ssh::pct::{self, Place};
use proxmox_ssh::ssh::{self, ExecResult};
use proxmox_ssh::PrefixedSshConn;

/// The Proxmox SSH options: the transport's, each named with an `ssh_` prefix, since `host` and
/// `timeout` mean other things here.
pub type SshParams = PrefixedSshConn;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "the docker source needs ssh_host, the Proxmox node that runs PocketID's LXC container"
    )]
    NoHost,
    #[error("vmid {0} is not a Proxmox CT id (100-999999999)")]
    Vmid(i64),
    #[error("{what} {value:?} is not a Docker container or Compose service name ([A-Za-z0-9][A-Za-z0-9_.-]*)")]
    Name { what: &'static str, value: String },
    #[error("pct_path {0:?} is not an absolute path of plain components")]
    PctPath(String),
    #[error(transparent)]
    Ssh(#[from] proxmox_ssh::Error),
    #[error("{0}")]
    Exec(String),
    #[error("CT {vmid} does not exist on {host}: check vmid (pct list on the node)")]
    CtMissing { vmid: i64, host: String },
    #[error("CT {vmid} on {host} is not running: start it (pct start {vmid}) or check vmid")]
    CtStopped { vmid: i64, host: String },
    #[error("CT {vmid} has no Docker container {container:?}: set `container` to its name, or `compose_service` (Compose names it <project>-<service>-1; find it with `pct exec {vmid} -- docker ps --format '{{{{.Names}}}}'`)")]
    NoContainer { vmid: i64, container: String },
    #[error("no running container of Compose service {service:?} in CT {vmid} (docker ps --filter label=com.docker.compose.service={service}): check the service name (PocketID's compose file calls it pocket-id) or set `container`")]
    NoService { vmid: i64, service: String },
    #[error("Compose service {service:?} in CT {vmid} has several containers ({names}): set `container` to one of them")]
    ManyContainers {
        vmid: i64,
        service: String,
        names: String,
    },
    #[error("the Docker daemon in CT {0} is not running (Cannot connect to the Docker daemon): start it (systemctl start docker in the CT)")]
    DaemonDown(i64),
    #[error("docker is not installed in CT {0} (pct exec could not run it, exit 127): check vmid, or that PocketID runs under Docker there")]
    DockerMissing(i64),
    #[error("docker logs in CT {vmid} refused the time {value:?} ({which}): give a duration such as 90s, 15m, 24h or an RFC 3339 time")]
    BadTime {
        vmid: i64,
        which: &'static str,
        value: String,
    },
    #[error("{command} in CT {vmid} exited with {status}: {stderr}")]
    Failed {
        command: &'static str,
        vmid: i64,
        status: String,
        stderr: String,
    },
}

/// What to read.
pub struct DockerRead<'a> {
    pub ssh: &'a SshParams,
    pub vmid: i64,
    pub container: Option<&'a str>,
    pub compose_service: Option<&'a str>,
    pub since: TimeSpec,
    pub until: Option<TimeSpec>,
}

/// What was read.
#[derive(Debug, Default)]
pub struct DockerResult {
    pub container: String,
    pub lines: Vec<RawLine>,
    pub warnings: Vec<String>,
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && s.len() <= 255
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// Checks everything that needs no connection.
pub fn check(r: &DockerRead<'_>) -> Result<(), DockerError> {
    r.ssh.host().ok_or(DockerError::NoHost)?;
    if !pct::valid_vmid(&r.vmid.to_string()) {
        return Err(DockerError::Vmid(r.vmid));
    }
    if !pct::valid_path(&r.ssh.pct_path) {
        return Err(DockerError::PctPath(r.ssh.pct_path.clone()));
    }
    for (what, v) in [
        ("container", r.container),
        ("compose_service", r.compose_service),
    ] {
        if let Some(v) = v.filter(|v| !valid_name(v)) {
            return Err(DockerError::Name {
                what,
                value: v.to_string(),
            });
        }
    }
    Ok(())
}

/// Reads the container's log over one SSH connection.
pub fn read(r: &DockerRead<'_>) -> Result<DockerResult, ansible_module::Failure> {
    check(r)?;
    let opts = r.ssh.connect_options()?.ok_or(DockerError::NoHost)?;
    let place = opts.place();
    let mut ssh = ssh::Connection::open(&opts)?;
    let result = read_on(&mut ssh, r, place, opts.timeout);
    ssh.close();
    Ok(result?)
}

fn read_on(
    ssh: &mut ssh::Connection,
    r: &DockerRead<'_>,
    place: Place<'_>,
    timeout: std::time::Duration,
) -> Result<DockerResult, DockerError> {
    let vmid = r.vmid.to_string();
    let run =
        |ssh: &mut ssh::Connection, argv: &[&str], what: &str| -> Result<ExecResult, DockerError> {
            let cmd = pct::pct_exec(&r.ssh.pct_path, r.ssh.sudo, &vmid, argv);
            let res = ssh
                .run_all(&[cmd], 1, timeout, &mut |_, _| {})
                .pop()
                .unwrap_or_default();
            if let Some(e) = &res.error {
                return Err(DockerError::Exec(pct::exec_error_text(e, place, what)));
            }
            Ok(res)
        };
    let container = match (r.container, r.compose_service) {
        (_, Some(svc)) => {
            let filter = format!("label=com.docker.compose.service={svc}");
            let res = run(
                ssh,
                &[
                    "docker",
                    "ps",
                    "--filter",
                    &filter,
                    "--format",
                    "{{.Names}}",
                ],
                "docker ps",
            )?;
            fail_on(&res, r.vmid, place.host, "docker ps", "")?;
            resolve_service(&res.stdout, r.vmid, svc)?
        }
        (Some(c), None) => c.to_string(),
        (None, None) => "pocketid".to_string(),
    };
    let since = r.since.docker_arg();
    let mut argv = vec!["docker", "logs", "--timestamps", "--since", since.as_str()];
    let until = r.until.map(TimeSpec::docker_arg);
    if let Some(u) = &until {
        argv.extend(["--until", u.as_str()]);
    }
    argv.push(&container);
    let res = run(ssh, &argv, "docker logs")?;
    fail_on(&res, r.vmid, place.host, "docker logs", &container)?;
    let mut out = DockerResult {
        container,
        lines: split_lines(&res.stdout, res.stdout_truncated),
        warnings: Vec::new(),
    };
    if res.stdout_truncated {
        out.warnings.push(format!(
            "docker logs wrote more than {} MiB: only the oldest part of the window was read; narrow it with since/until",
            ssh::STDOUT_CAP / (1024 * 1024)
        ));
    }
    Ok(out)
}

/// The container of a Compose service from `docker ps --format '{{.Names}}'`.
fn resolve_service(stdout: &[u8], vmid: i64, svc: &str) -> Result<String, DockerError> {
    let text = String::from_utf8_lossy(stdout);
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match names.as_slice() {
        [] => Err(DockerError::NoService {
            vmid,
            service: svc.to_string(),
        }),
        [one] if valid_name(one) => Ok(one.to_string()),
        [one] => Err(DockerError::Name {
            what: "docker ps answered a container name",
            value: pct::shorten(one, 80),
        }),
        many => Err(DockerError::ManyContainers {
            vmid,
            service: svc.to_string(),
            names: pct::shorten(&many.join(", "), 200),
        }),
    }
}

/// A failed `pct exec … docker …`, read from its exit code and error output (contract §5 and
/// ssh-pct-dotenv §1.2). Only fixed texts and a short, masked excerpt are shown.
pub fn fail_on(
    res: &ExecResult,
    vmid: i64,
    host: &str,
    command: &'static str,
    container: &str,
) -> Result<(), DockerError> {
    let err = res.stderr.as_str();
    if res.exit_status == Some(0) {
        return Ok(());
    }
    let host = host.to_string();
    Err(
        if err.starts_with("Configuration file '") && err.contains("does not exist") {
            DockerError::CtMissing { vmid, host }
        } else if err.starts_with("container '") && err.contains("not running") {
            DockerError::CtStopped { vmid, host }
        } else if err.contains("No such container") {
            DockerError::NoContainer {
                vmid,
                container: container.to_string(),
            }
        } else if err.contains("Cannot connect to the Docker daemon") {
            DockerError::DaemonDown(vmid)
        } else if res.exit_status == Some(127)
            || (err.contains("Failed to exec") && err.contains("docker"))
        {
            DockerError::DockerMissing(vmid)
        } else if let Some(which) = ["since", "until"]
            .into_iter()
            .find(|w| err.contains(&format!("invalid value for \"{w}\"")))
        {
            DockerError::BadTime {
                vmid,
                which,
                value: err
                    .rsplit(": ")
                    .next()
                    .map(|v| pct::shorten(v.trim_matches('"'), 60))
                    .unwrap_or_default(),
            }
        } else {
            DockerError::Failed {
                command,
                vmid,
                status: res
                    .exit_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no status".into()),
                stderr: crate::redact::text(err, 300),
            }
        },
    )
}

/// Lines of `docker logs --timestamps` output: each starts with Docker's RFC3339Nano time.
/// Lines without one (a continuation) take the previous line's time. A last line cut by the
/// output cap is dropped.
pub fn split_lines(stdout: &[u8], truncated: bool) -> Vec<RawLine> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if truncated || lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::with_capacity(lines.len());
    let mut last = 0;
    for l in lines {
        let (ts, rest) = crate::parse::split_docker_timestamp(l);
        let ts = ts.unwrap_or(last);
        last = ts;
        if rest.trim().is_empty() {
            continue;
        }
        out.push(RawLine {
            ts,
            stream: 0,
            line: rest.to_string(),
        });
    }
    // Docker writes in order; a stable sort keeps equal times as written.
    out.sort_by_key(|l| l.ts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: i32, stderr: &str) -> DockerError {
        let r = ExecResult {
            stderr: stderr.into(),
            exit_status: Some(code),
            ..ExecResult::default()
        };
        fail_on(&r, 123, "pve.example.org", "docker logs", "pocketid").unwrap_err()
    }

    #[test]
    fn docker_failures_are_told_apart() {
        assert!(matches!(
            failed(1, "Error response from daemon: No such container: pocketid"),
            DockerError::NoContainer { .. }
        ));
        assert!(matches!(failed(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"), DockerError::DaemonDown(123)));
        assert!(matches!(failed(127, "lxc-attach: 123: ../src/lxc/attach.c: lxc_attach_run_command: 1841 Failed to exec \"docker\""), DockerError::DockerMissing(123)));
        assert!(matches!(
            failed(255, "container '123' not running!"),
            DockerError::CtStopped { .. }
        ));
        assert!(matches!(
            failed(
                2,
                "Configuration file 'nodes/lab/lxc/123.conf' does not exist"
            ),
            DockerError::CtMissing { .. }
        ));
        let e = failed(
            1,
            "invalid value for \"since\": failed to parse value as time or duration: \"7d\"",
        );
        assert!(
            matches!(&e, DockerError::BadTime { which: "since", value, .. } if value == "7d"),
            "{e}"
        );
    }

    #[test]
    fn docker_lines_are_ordered_by_their_prefix() {
        let out = b"2026-08-20T10:00:02.000000000Z second\r\n2026-08-20T10:00:01.000000000Z first\n2026-08-20T10:00:03.0Z cut";
        let l = split_lines(out, true);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].line, "first");
        assert_eq!(l[1].line, "second\r");
    }
}
