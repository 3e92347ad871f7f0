//! The `pct` stand-in's `docker logs` and `docker ps` (contract pocketid-logs-and-access §5) over
//! a PocketID container fixture answered by the emulator: options, `-t` stamps, Docker's
//! `--since` errors, an unknown container, the daemon down and docker not installed; the owner of
//! `/app/data` (`docker container inspect`, `stat` in the CT) and the CLI's `docker exec -u`.

use lab::fixtures::Containers;
use lab::pocketid::{Level, LogRecord, PocketId, PocketIdOptions};
use lab::sshd::PCT_STANDIN;
use std::process::{Command, Output};

struct Standin {
    _dir: tempfile::TempDir,
    script: std::path::PathBuf,
    containers: Containers,
}

impl Standin {
    fn new(pid: &PocketId) -> Standin {
        let dir = tempfile::tempdir().unwrap();
        let containers = Containers::create(dir.path().join("ct")).unwrap();
        containers.add(123, "pocketid", true).unwrap();
        containers
            .add_pocketid_docker(123, "pocketid", pid.url())
            .unwrap();
        let script = dir.path().join("pct");
        let root = containers.root.display().to_string();
        std::fs::write(&script, PCT_STANDIN.replace("@ROOT@", &root)).unwrap();
        Standin {
            _dir: dir,
            script,
            containers,
        }
    }
    /// `pct exec 123 -- docker <args>`: exit code, stdout, stderr.
    fn docker(&self, args: &[&str]) -> (i32, String, String) {
        self.exec("docker", args)
    }

    /// `pct exec 123 -- <program> <args>`: exit code, stdout, stderr.
    fn exec(&self, program: &str, args: &[&str]) -> (i32, String, String) {
        let o = Command::new("bash")
            .arg(&self.script)
            .args(["exec", "123", "--", program])
            .args(args)
            .output()
            .unwrap();
        out(&o)
    }
}

fn out(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn docker_logs_and_ps() {
    let pid = PocketId::start(PocketIdOptions::default()).unwrap();
    let ct = Standin::new(&pid);
    pid.emit(LogRecord::new(Level::Info, "Pocket ID is starting"));
    pid.emit(
        LogRecord::new(Level::Error, "Failed to create access request")
            .attr("error", "invalid_client"),
    );

    let (code, stdout, stderr) = ct.docker(&["logs", "pocketid"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), pid.log_lines());
    let (code, stdout, _) = ct.docker(&[
        "logs",
        "--timestamps",
        "--since",
        "15m",
        "--until=2999-01-01T00:00:00+01:00",
        "-n",
        "1",
        "pocketid",
    ]);
    assert_eq!(code, 0);
    let (stamp, line) = stdout.trim_end().split_once(' ').unwrap();
    assert!(stamp.len() == 30 && stamp.ends_with('Z'), "{stamp}");
    assert!(line.ends_with(
        "ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client"
    ));
    let (code, stdout, _) = ct.docker(&["logs", "-t", "--since", "2999-01-01", "pocketid"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "zero lines is still success"
    );

    let (code, _, stderr) = ct.docker(&["logs", "--since", "7d", "pocketid"]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "invalid value for \"since\": failed to parse value as time or duration: \"7d\"\n"
        )
    );
    let (code, _, stderr) = ct.docker(&["logs", "pocket-id"]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "Error response from daemon: No such container: pocket-id\n"
        )
    );

    // docker ps by compose service.
    let ps = [
        "ps",
        "--filter",
        "label=com.docker.compose.service=pocket-id",
        "--format",
        "{{.Names}}",
    ];
    assert_eq!(ct.docker(&ps), (0, String::new(), String::new()));
    ct.containers
        .set_compose_service(123, "pocketid", "pocket-id")
        .unwrap();
    assert_eq!(ct.docker(&ps), (0, "pocketid\n".into(), String::new()));

    // The daemon down, then docker not installed.
    ct.containers.set_docker_running(123, false).unwrap();
    let (code, _, stderr) = ct.docker(&["logs", "pocketid"]);
    assert_eq!(
        (code, stderr.as_str()),
        (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n")
    );
    ct.containers.set_docker_running(123, true).unwrap();
    ct.containers.set_docker_installed(123, false).unwrap();
    let (code, _, stderr) = ct.docker(&["logs", "pocketid"]);
    assert_eq!(code, 127);
    assert!(stderr.contains("Failed to exec \"docker\""), "{stderr}");
    ct.containers.set_docker_installed(123, true).unwrap();
    assert_eq!(ct.docker(&["logs", "pocketid"]).0, 0);
}

/// The format the login-code fallback sends to find `/app/data`'s mount.
const DATA_MOUNT: &str =
    r#"{{range .Mounts}}{{if eq .Destination "/app/data"}}{{.Source}}{{end}}{{end}}"#;

#[test]
fn app_data_owner_and_the_cli_user() {
    let pid = PocketId::start(PocketIdOptions::default()).unwrap();
    pid.add_user("alice", None, false);
    let ct = Standin::new(&pid);
    let (code, source, _) =
        ct.docker(&["container", "inspect", "--format", DATA_MOUNT, "pocketid"]);
    assert_eq!(
        (code, source.as_str()),
        (0, "/var/lib/docker/volumes/pocketid_data/_data\n")
    );
    // The distroless image's user, as stat in the CT reports the volume's owner.
    let (code, owner, _) = ct.exec("stat", &["-c", "%u:%g", "--", source.trim()]);
    assert_eq!((code, owner.as_str()), (0, "65532:65532\n"));
    let cli = |user: &str| {
        ct.docker(&[
            "exec",
            "-u",
            user,
            "pocketid",
            "/app/pocket-id",
            "one-time-access-token",
            "alice",
        ])
    };
    let (code, _, err) = cli("1000:1000");
    assert_eq!(code, 1);
    assert!(err.contains("readonly database"), "{err}");
    let (code, url, _) = cli("65532:65532");
    assert_eq!(code, 0);
    assert!(url.contains("/lc/"));
    // The standard image; no mount at all; an unknown container; a missing path.
    ct.containers
        .set_pocketid_data_owner(123, "pocketid", Some("1000:1000"))
        .unwrap();
    assert_eq!(
        ct.exec("stat", &["-c", "%u:%g", "--", source.trim()]).1,
        "1000:1000\n"
    );
    assert_eq!(cli("1000:1000").0, 0);
    ct.containers
        .set_pocketid_data_owner(123, "pocketid", None)
        .unwrap();
    let (code, source, _) =
        ct.docker(&["container", "inspect", "--format", DATA_MOUNT, "pocketid"]);
    assert_eq!((code, source.as_str()), (0, "\n"));
    let (code, _, err) = ct.docker(&["container", "inspect", "--format", DATA_MOUNT, "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nope"), "{err}");
    let (code, _, err) = ct.exec("stat", &["-c", "%u:%g", "--", "/no/such"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such file or directory"), "{err}");
}
