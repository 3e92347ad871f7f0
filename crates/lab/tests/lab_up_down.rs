//! The lab's real servers through `sso-lab up`/`down`: OpenBao KV v2 over HTTP and HTTPS, sshd with
//! host key verification and the `pct` stand-in's error cases, PocketID's log in Loki and through
//! `docker logs`, and nothing left running after down.

use lab::openbao::OpenBao;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// Processes whose command line mentions `needle` (the lab dir is in every server's arguments).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

fn ssh(env: &BTreeMap<String, String>, remote: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            env["PROXMOX_KNOWN_HOSTS_FILE"]
        ))
        .arg("-i")
        .arg(&env["PROXMOX_SSH_KEY_FILE"])
        .arg("-p")
        .arg(&env["PROXMOX_SSH_PORT"])
        .arg(format!(
            "{}@{}",
            env["PROXMOX_SSH_USER"], env["PROXMOX_SSH_HOST"]
        ))
        .arg(remote)
        .output()
        .unwrap()
}

#[test]
fn sso_lab_up_serves_everything_and_down_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let bin = env!("CARGO_BIN_EXE_sso-lab");
    testkit::succeed(Command::new(bin).arg("up").arg("--dir").arg(&lab_dir));
    let env = env_file(&lab_dir.join("lab.env"));

    // Vault: KV v2 write and read with the root token.
    let client =
        httpx::Client::new(httpx::HttpConfig::new("Vault", env["VAULT_ADDR"].clone())).unwrap();
    let token = env["LAB_VAULT_ROOT_TOKEN"].as_str();
    let w = client
        .send(
            "POST",
            "/v1/secret/data/lab-check",
            &[("X-Vault-Token", token)],
            httpx::Body::Json(json!({"data": {"k": "v"}})),
            httpx::Retry::Never,
        )
        .unwrap();
    assert_eq!(w.status, 200);
    let r = client
        .send(
            "GET",
            "/v1/secret/data/lab-check",
            &[("X-Vault-Token", token)],
            httpx::Body::None,
            httpx::Retry::Safe,
        )
        .unwrap();
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["data"]["data"]["k"], "v");
    // The runbook secret is seeded with its 15 keys.
    let r = client
        .send(
            "GET",
            "/v1/secret/data/homelab-sso",
            &[("X-Vault-Token", token)],
            httpx::Body::None,
            httpx::Retry::Safe,
        )
        .unwrap();
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["data"]["data"].as_object().unwrap().len(), 15);

    // sshd with strict host key checking, and the runbook's command.
    let out = ssh(
        &env,
        "pct exec 119 -- cat -- /opt/homelab/oauth2-gateway/.env",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OAUTH2_PROXY_CLIENT_SECRET="));
    // The stand-in's error cases, with Proxmox's texts.
    let cases = [
        ("pct exec 999 -- cat -- /x", "Configuration file 'nodes/"),
        (
            "pct exec 120 -- cat -- /opt/homelab/stopped-svc/.env",
            "container '120' not running!",
        ),
        (
            "pct exec 121 -- cat -- /opt/homelab/no-env-svc/.env",
            "No such file or directory",
        ),
        (
            "pct exec 122 -- cat -- /opt/homelab/locked-svc/.env",
            "Permission denied",
        ),
        (
            "pct exec abc -- cat -- /x",
            "vmid: type check ('integer') failed - got 'abc'",
        ),
        ("pct exec 119 ls -la", "Unknown option: la"),
        (
            "pct exec 119 -- nosuchprog",
            "Failed to exec \"nosuchprog\"",
        ),
    ];
    for (cmd, want) in cases {
        let out = ssh(&env, cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} succeeded");
        assert!(err.contains(want), "{cmd}: stderr {err:?} lacks {want:?}");
    }
    // PocketID's log: a request's line in Loki under the catalog's selector, and through
    // `docker logs` in LXC 123.
    let pid = httpx::Client::new(httpx::HttpConfig::new(
        "PocketID",
        env["POCKETID_URL"].clone(),
    ))
    .unwrap();
    let r = pid
        .send(
            "GET",
            "/api/version/current",
            &[("X-API-Key", env["POCKETID_API_KEY"].as_str())],
            httpx::Body::None,
            httpx::Retry::Safe,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let loki =
        httpx::Client::new(httpx::HttpConfig::new("Loki", env["LOKI_ADDR"].clone())).unwrap();
    let get = |path: &str| {
        loki.send("GET", path, &[], httpx::Body::None, httpx::Retry::Safe)
            .unwrap()
    };
    assert_eq!(get("/ready").status, 200);
    let q = httpx::encode(lab::catalog::LOGS_LOKI_SELECTOR);
    let r = get(&format!("/loki/api/v1/query_range?query={q}&limit=1000"));
    assert_eq!(r.status, 200);
    assert!(
        String::from_utf8_lossy(&r.body).contains("path=/api/version/current"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let out = ssh(&env, "pct exec 123 -- docker logs --timestamps pocketid");
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        logs.contains(" INF HTTP request completed ") && logs.contains("path=/api/version/current"),
        "{logs}"
    );
    let out = ssh(
        &env,
        "pct exec 123 -- docker ps --filter label=com.docker.compose.service=pocket-id --format '{{.Names}}'",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pocketid\n");

    // A wrong known_hosts entry is refused before anything runs.
    let bad_kh = dir.path().join("bad_known_hosts");
    std::fs::write(
        &bad_kh,
        format!(
            "[{}]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBadBadBadBadBadBadBadBadBadBadBadBadBadBadBad0\n",
            env["PROXMOX_SSH_HOST"], env["PROXMOX_SSH_PORT"]
        ),
    )
    .unwrap();
    let mut env2 = env.clone();
    env2.insert(
        "PROXMOX_KNOWN_HOSTS_FILE".into(),
        bad_kh.display().to_string(),
    );
    let out = ssh(&env2, "pct list");
    assert!(!out.status.success(), "a wrong host key must be refused");

    assert!(!processes_mentioning(&lab_dir.display().to_string()).is_empty());
    let down = Command::new(bin)
        .arg("down")
        .arg("--dir")
        .arg(&lab_dir)
        .output()
        .unwrap();
    assert!(down.status.success());
    let left = processes_mentioning(&lab_dir.display().to_string());
    assert!(left.is_empty(), "processes left after down: {left:?}");
    // The emulators' ports are closed too.
    assert!(
        std::net::TcpStream::connect(env["POCKETID_URL"].trim_start_matches("http://")).is_err()
    );
    assert!(
        std::net::TcpStream::connect(env["FORGEJO_URL"].trim_start_matches("http://")).is_err()
    );
    assert!(std::net::TcpStream::connect(env["LOKI_ADDR"].trim_start_matches("http://")).is_err());
}

#[test]
fn openbao_over_https_needs_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start_tls(dir.path()).unwrap();
    assert!(bao.addr.starts_with("https://127.0.0.1:"));
    let no_ca = httpx::Client::new(httpx::HttpConfig::new("Vault", bao.addr.clone())).unwrap();
    let err = no_ca
        .send(
            "GET",
            "/v1/sys/health",
            &[],
            httpx::Body::None,
            httpx::Retry::Never,
        )
        .unwrap_err();
    assert!(matches!(err, httpx::HttpError::Tls { .. }), "{err}");
    let mut cfg = httpx::HttpConfig::new("Vault", bao.addr.clone());
    cfg.ca_cert = bao.ca_cert.clone();
    let client = httpx::Client::new(cfg).unwrap();
    let w = client
        .send(
            "POST",
            "/v1/secret/data/tls-check",
            &[("X-Vault-Token", bao.root_token.as_str())],
            httpx::Body::Json(json!({"data": {"a": "b"}})),
            httpx::Retry::Never,
        )
        .unwrap();
    assert_eq!(w.status, 200);
    assert_eq!(bao.kv_get("tls-check").unwrap().unwrap().0["a"], "b");
}

/// The dev server's log holds the root token and the unseal key: mode 0600 in a 0700 directory,
/// like `lab.env` (it was 0644).
#[test]
fn openbao_log_holding_the_root_token_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bao_dir = dir.path().join("openbao");
    std::fs::create_dir(&bao_dir).unwrap();
    std::fs::set_permissions(&bao_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bao = OpenBao::start(&bao_dir).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The banner with the unseal key and root token comes after the server is ready.
    let banner = lab::proc::wait_for(std::time::Duration::from_secs(30), || {
        let log = std::fs::read_to_string(&bao.log).ok()?;
        log.contains("Unseal Key").then_some(())
    });
    assert!(banner.is_some(), "the log is the secret-bearing file");
    assert_eq!(mode(&bao.log), 0o600, "{}", bao.log.display());
    assert_eq!(mode(&bao_dir), 0o700);
}
