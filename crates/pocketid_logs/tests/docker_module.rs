//! `pocketid_logs` with `docker logs` over the lab's sshd and `pct` stand-in, the PocketID
//! emulator writing the container's log: the docker source, the Compose service lookup, `auto`
//! falling back when Loki is down or not ready, Docker's failures told apart, and both sources
//! down.

mod common;

use common::{merged, run};
use lab::fixtures::Containers;
use lab::loki::{Loki, LokiOptions};
use lab::pocketid::{Level, LogRecord, PocketId, PocketIdOptions};
use lab::sshd::Sshd;
use serde_json::{json, Value};

struct Lab {
    pid: PocketId,
    containers: Containers,
    sshd: Sshd,
    _tmp: tempfile::TempDir,
}

fn lab(opts: PocketIdOptions) -> Lab {
    let pid = PocketId::start(opts).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let containers = Containers::create(tmp.path().join("ct")).unwrap();
    containers.add(123, "pocketid", true).unwrap();
    containers
        .add_pocketid_docker(123, "pocketid-pocket-id-1", pid.url())
        .unwrap();
    containers.add(124, "stopped", false).unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"), &containers).unwrap();
    Lab {
        pid,
        containers,
        sshd,
        _tmp: tmp,
    }
}

impl Lab {
    fn args(&self, extra: Value) -> Value {
        let s = &self.sshd;
        merged(
            json!({
                "source": "docker", "since": "1h",
                "ssh_host": s.host, "ssh_port": s.port, "ssh_user": s.user,
                "ssh_private_key": s.private_key, "ssh_known_hosts": s.known_hosts,
                "pct_path": s.pct_path, "vmid": 123, "container": "pocketid-pocket-id-1",
            }),
            extra,
        )
    }

    /// A token request with a wrong secret, and a script with a revoked API key.
    fn failures(&self) {
        self.pid.emit(
            LogRecord::new(Level::Error, "Failed to create access request")
                .attr("error", "invalid_client"),
        );
        let c = httpx::Client::new(httpx::HttpConfig::new("PocketID", self.pid.url())).unwrap();
        let r = c
            .send(
                "GET",
                "/api/oidc/clients",
                &[("X-API-Key", "revoked-key-canary-0123")],
                httpx::Body::None,
                httpx::Retry::Never,
            )
            .unwrap();
        assert_eq!(r.status, 401);
    }
}

#[test]
fn docker_source_and_compose_service() {
    let lab = lab(PocketIdOptions::default());
    lab.failures();
    let r = run(lab.args(json!({})));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["source"], json!("docker"));
    assert_eq!(r.json["container"], json!("pocketid-pocket-id-1"));
    assert_eq!(r.json["counts"]["api_key_refused"], json!(1), "{}", r.json);
    assert_eq!(r.json["counts"]["invalid_client"], json!(1), "{}", r.json);
    assert!(r.json["lines"].as_u64().unwrap() >= 2);
    assert!(!r.output().contains("revoked-key-canary"));
    // Found by its Compose service instead of its name.
    lab.containers
        .set_compose_service(123, "pocketid-pocket-id-1", "pocket-id")
        .unwrap();
    let r = run(lab.args(json!({"container": "wrong", "compose_service": "pocket-id"})));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["container"], json!("pocketid-pocket-id-1"));
    let r = run(lab.args(json!({"compose_service": "pocketid"})));
    assert!(
        r.msg().contains("no running container of Compose service"),
        "{}",
        r.msg()
    );
}

#[test]
fn json_log_through_docker() {
    let lab = lab(PocketIdOptions {
        log_json: true,
        ..PocketIdOptions::default()
    });
    lab.pid.emit(
        LogRecord::new(Level::Error, "Failed to create access request").attr(
            "error",
            json!({"error": "invalid_grant", "error_description": "The authorization code has already been used."}),
        ),
    );
    let r = run(lab.args(json!({"since": "1d"})));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["counts"], json!({"invalid_grant": 1}), "{}", r.json);
    assert!(r.json["events"][0]["hint"]
        .as_str()
        .unwrap()
        .contains("already been used"));
}

#[test]
fn auto_falls_back_to_docker_when_loki_is_down_or_not_ready() {
    let lab = lab(PocketIdOptions::default());
    lab.failures();
    let loki = Loki::start(LokiOptions::default()).unwrap();
    let url = loki.url().to_string();
    loki.set_ready(false);
    let r = run(lab.args(json!({"source": "auto", "loki_url": url, "retries": 0})));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["source"], json!("docker"));
    assert!(
        r.json["fallback"].as_str().unwrap().contains("not ready"),
        "{}",
        r.json
    );
    assert!(
        r.json["warnings"].to_string().contains("docker logs"),
        "{}",
        r.json
    );
    drop(loki);
    let r = run(lab.args(json!({"source": "auto", "loki_url": url, "retries": 0})));
    assert_eq!(r.json["source"], json!("docker"), "{}", r.json);
    assert!(
        r.json["fallback"]
            .as_str()
            .unwrap()
            .contains("refused the connection"),
        "{}",
        r.json
    );
    assert_eq!(r.json["counts"]["api_key_refused"], json!(1));
    // Both down: one message naming both.
    lab.containers.set_docker_running(123, false).unwrap();
    let r = run(lab.args(json!({"source": "auto", "loki_url": url, "retries": 0})));
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("Loki at")
            && m.contains("fallback to docker logs failed too")
            && m.contains("Docker daemon"),
        "{m}"
    );
}

#[test]
fn docker_failures_are_clear() {
    let lab = lab(PocketIdOptions::default());
    let r = run(lab.args(json!({"container": "pocketid"})));
    assert!(
        r.msg().contains("has no Docker container \"pocketid\""),
        "{}",
        r.msg()
    );
    let r = run(lab.args(json!({"vmid": 124})));
    assert!(
        r.msg().contains("CT 124") && r.msg().contains("not running"),
        "{}",
        r.msg()
    );
    let r = run(lab.args(json!({"vmid": 125})));
    assert!(r.msg().contains("CT 125 does not exist"), "{}", r.msg());
    lab.containers.set_docker_installed(123, false).unwrap();
    let r = run(lab.args(json!({})));
    assert!(
        r.msg().contains("docker is not installed in CT 123"),
        "{}",
        r.msg()
    );
    lab.containers.set_docker_installed(123, true).unwrap();
    lab.containers.set_docker_running(123, false).unwrap();
    let r = run(lab.args(json!({})));
    assert!(
        r.msg().contains("Docker daemon in CT 123 is not running"),
        "{}",
        r.msg()
    );
    let r = run(lab.args(json!({"container": "x; reboot"})));
    assert!(r.msg().contains("is not a Docker container"), "{}", r.msg());
    let r = run(lab.args(json!({"ssh_host": null})));
    assert!(r.msg().contains("ssh_host"), "{}", r.msg());
}

#[test]
fn an_empty_log_and_log_level_warn() {
    let lab = lab(PocketIdOptions {
        log_level: Level::Warn,
        ..PocketIdOptions::default()
    });
    let r = run(lab.args(json!({})));
    assert_eq!(r.json["lines"], json!(0), "{}", r.json);
    assert!(r.json["warnings"]
        .to_string()
        .contains("no line in this window"));
    lab.failures();
    let r = run(lab.args(json!({})));
    assert_eq!(r.json["counts"], json!({"invalid_client": 1}), "{}", r.json);
    assert!(
        r.json["warnings"].to_string().contains("LOG_LEVEL=warn"),
        "{}",
        r.json
    );
}
