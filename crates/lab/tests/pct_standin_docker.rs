//! The `pct` stand-in's `docker logs` and `docker ps` (contract pocketid-logs-and-access §5) over
//! a PocketID container fixture answered by the emulator: options, `-t` stamps, Docker's
//! `--since` errors, an unknown container, the daemon down and docker not installed.

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
    fn pct(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .unwrap()
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

    let (code, stdout, stderr) = out(&ct.pct(&["exec", "123", "--", "docker", "logs", "pocketid"]));
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), pid.log_lines());
    let (code, stdout, _) = out(&ct.pct(&[
        "exec",
        "123",
        "--",
        "docker",
        "logs",
        "--timestamps",
        "--since",
        "15m",
        "--until=2999-01-01T00:00:00+01:00",
        "-n",
        "1",
        "pocketid",
    ]));
    assert_eq!(code, 0);
    let (stamp, line) = stdout.trim_end().split_once(' ').unwrap();
    assert!(stamp.len() == 30 && stamp.ends_with('Z'), "{stamp}");
    assert!(line.ends_with(
        "ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client"
    ));
    let (code, stdout, _) = out(&ct.pct(&[
        "exec",
        "123",
        "--",
        "docker",
        "logs",
        "-t",
        "--since",
        "2999-01-01",
        "pocketid",
    ]));
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "zero lines is still success"
    );

    let (code, _, stderr) = out(&ct.pct(&[
        "exec", "123", "--", "docker", "logs", "--since", "7d", "pocketid",
    ]));
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "invalid value for \"since\": failed to parse value as time or duration: \"7d\"\n"
        )
    );
    let (code, _, stderr) = out(&ct.pct(&["exec", "123", "--", "docker", "logs", "pocket-id"]));
    assert_eq!(
        (code, stderr.as_str()),
        (
            1,
            "Error response from daemon: No such container: pocket-id\n"
        )
    );

    // docker ps by compose service.
    let ps = [
        "exec",
        "123",
        "--",
        "docker",
        "ps",
        "--filter",
        "label=com.docker.compose.service=pocket-id",
        "--format",
        "{{.Names}}",
    ];
    assert_eq!(out(&ct.pct(&ps)), (0, String::new(), String::new()));
    ct.containers
        .set_compose_service(123, "pocketid", "pocket-id")
        .unwrap();
    assert_eq!(out(&ct.pct(&ps)), (0, "pocketid\n".into(), String::new()));

    // The daemon down, then docker not installed.
    ct.containers.set_docker_running(123, false).unwrap();
    let (code, _, stderr) = out(&ct.pct(&["exec", "123", "--", "docker", "logs", "pocketid"]));
    assert_eq!(
        (code, stderr.as_str()),
        (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n")
    );
    ct.containers.set_docker_running(123, true).unwrap();
    ct.containers.set_docker_installed(123, false).unwrap();
    let (code, _, stderr) = out(&ct.pct(&["exec", "123", "--", "docker", "logs", "pocketid"]));
    assert_eq!(code, 127);
    assert!(stderr.contains("Failed to exec \"docker\""), "{stderr}");
    ct.containers.set_docker_installed(123, true).unwrap();
    assert_eq!(
        out(&ct.pct(&["exec", "123", "--", "docker", "logs", "pocketid"])).0,
        0
    );
}
