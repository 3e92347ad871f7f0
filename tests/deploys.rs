//! The deploy that every deploy-<service> workflow runs (`scripts/deploy-service.sh`, through the
//! composite action `.forgejo/actions/deploy`) against the lab: real OpenBao with the AppRole, real
//! sshd with the `pct` stand-in, the service's node looked up among several.

use e2e::{assert_no_secret, E2e};
use lab::tools::repo_root;
use std::collections::BTreeMap;
use std::process::{Command, Output};

struct Deploy<'a> {
    e: &'a E2e,
    env: BTreeMap<String, String>,
}

impl<'a> Deploy<'a> {
    /// The deploy of `service` as its workflow passes it: the catalog's facts, the lab's Vault and a
    /// one-node PROXMOX_NODES.
    fn of(e: &'a E2e, service: &str) -> Self {
        let svc = lab::catalog::services()
            .into_iter()
            .find(|s| s.name == service)
            .expect("service in the catalog");
        let lab: BTreeMap<String, String> = e.lab.env().into_iter().collect();
        let keys: Vec<String> = svc.keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("SERVICE", svc.name.to_string()),
            ("NODE", "pve".to_string()),
            ("VMID", svc.vmid.to_string()),
            ("ENV_PATH", svc.env_path.clone()),
            ("ENV_KEYS", keys.join(" ")),
            ("REASON", "test".to_string()),
            ("VAULT_ADDR", lab["VAULT_ADDR"].clone()),
            ("VAULT_ROLE_ID", lab["VAULT_ROLE_ID"].clone()),
            ("VAULT_SECRET_ID", lab["VAULT_SECRET_ID"].clone()),
            ("PROXMOX_NODES", format!("pve={}", node_address(&lab))),
            ("PROXMOX_SSH_USER", lab["PROXMOX_SSH_USER"].clone()),
            ("PROXMOX_SSH_KEY_FILE", lab["PROXMOX_SSH_KEY_FILE"].clone()),
            (
                "PROXMOX_KNOWN_HOSTS_FILE",
                lab["PROXMOX_KNOWN_HOSTS_FILE"].clone(),
            ),
            ("PCT_PATH", lab["PROXMOX_PCT_PATH"].clone()),
        ] {
            env.insert(k.to_string(), v);
        }
        Deploy { e, env }
    }

    fn set(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/deploy-service.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.e.dir.path())
            .envs(&self.env);
        cmd
    }

    fn run(&self) -> (Output, String) {
        let out = self.command().output().expect("running the deploy script");
        (out.clone(), text_of(&out))
    }
}

fn text_of(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A deploy held at its `at`-th SSH command (1: the .env write, 2: the restart, 3: Grafana's
/// reset) by an `ssh` first on its PATH, until [`Held::release`]: a slow runner, or a killed run's
/// deploy still going, while a newer one runs.
struct Held {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Held {
    fn start(deploy: Deploy<'_>, at: u32) -> Held {
        let dir = tempfile::tempdir().unwrap();
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v ssh"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let shim = format!(
            "#!/bin/bash\nd={d}\nn=$(( $(cat \"$d/count\" 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > \"$d/count\"\nif [ \"$n\" = {at} ]; then touch \"$d/held\"; while [ ! -e \"$d/go\" ]; do sleep 0.05; done; fi\nexec {real} \"$@\"\n",
            d = dir.path().display(),
            real = real.trim(),
        );
        let ssh = dir.path().join("ssh");
        std::fs::write(&ssh, shim).unwrap();
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = deploy
            .set("PATH", &path)
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let held = dir.path().join("held");
        lab::proc::wait_for(std::time::Duration::from_secs(60), || {
            held.exists().then_some(())
        })
        .expect("the held deploy reached its SSH command");
        Held { dir, child }
    }

    fn release(self) -> (Output, String) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let text = text_of(&out);
        (out, text)
    }
}

fn node_address(lab: &BTreeMap<String, String>) -> String {
    format!("{}:{}", lab["PROXMOX_SSH_HOST"], lab["PROXMOX_SSH_PORT"])
}

/// A port on loopback where nothing listens (a node that is not this one).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn compose_log(e: &E2e, vmid: u32) -> String {
    std::fs::read_to_string(
        e.lab
            .containers
            .root
            .join(vmid.to_string())
            .join("compose.log"),
    )
    .unwrap_or_default()
}

#[test]
fn deploy_renders_from_vault_restarts_and_resets_grafana() {
    let e = E2e::up();
    let mut values = e.vault();
    values.insert(
        "n8n_webhook_token".into(),
        "new-token-with-$dollar-\"quote\"-and-\\backslash".into(),
    );
    values.insert(
        "grafana_admin_password".into(),
        "new-grafana-password-0123".into(),
    );
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::json!(values))
        .unwrap();

    // A dry run compares and changes nothing.
    let (out, text) = Deploy::of(&e, "n8n").set("DRY_RUN", "true").run();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would change"), "{text}");
    assert!(e.deployed("n8n")["n8n_webhook_token"] != values["n8n_webhook_token"]);
    assert!(
        compose_log(&e, 131).is_empty(),
        "a dry run restarts nothing"
    );

    // The deploy writes the exact value (compose's escapes read back) and restarts the service.
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(out.status.success(), "{text}");
    assert!(e.deployed("n8n")["n8n_webhook_token"] == values["n8n_webhook_token"]);
    assert_eq!(compose_log(&e, 131).trim(), "/opt/homelab/n8n up -d");
    assert_no_secret(&text, &values, "deploy output");
    let (_, text) = Deploy::of(&e, "n8n").set("DRY_RUN", "true").run();
    assert!(text.contains("is up to date"), "{text}");

    // loki-stack: Grafana's database gets the password too, only when asked.
    let (out, text) = Deploy::of(&e, "loki-stack")
        .set("RESTART", "recreate")
        .run();
    assert!(out.status.success(), "{text}");
    assert!(!e.lab.grafana_password_is("new-grafana-password-0123"));
    assert!(compose_log(&e, 138).contains("up -d --force-recreate"));
    let (out, text) = Deploy::of(&e, "loki-stack")
        .set("RESET_GRAFANA_ADMIN", "true")
        .run();
    assert!(out.status.success(), "{text}");
    assert!(e.lab.grafana_password_is("new-grafana-password-0123"));
    assert!(text.contains("Grafana admin password applied"), "{text}");
    assert_no_secret(&text, &values, "deploy output");
}

#[test]
fn deploy_reaches_the_services_own_node_in_a_cluster() {
    let e = E2e::up();
    let lab: BTreeMap<String, String> = e.lab.env().into_iter().collect();
    let here = node_address(&lab);
    let elsewhere = format!("127.0.0.1:{}", closed_port());
    let values = e.vault();

    // n8n runs on pve2, which is this lab's sshd; pve is a node that does not answer.
    let nodes = format!("pve={elsewhere} pve2={here}");
    let (out, text) = Deploy::of(&e, "n8n")
        .set("NODE", "pve2")
        .set("PROXMOX_NODES", &nodes)
        .run();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("on node pve2 via {here}")), "{text}");
    assert!(e.deployed("n8n")["n8n_webhook_token"] == values["n8n_webhook_token"]);

    // The same service on pve goes to pve's address (and fails there, writing nothing).
    std::fs::write(e.lab.containers.root.join("131/compose.log"), "").unwrap();
    let (out, text) = Deploy::of(&e, "n8n").set("PROXMOX_NODES", &nodes).run();
    assert!(!out.status.success(), "{text}");
    assert!(compose_log(&e, 131).is_empty());

    // A node missing from PROXMOX_NODES is named, with the fix.
    let (out, text) = Deploy::of(&e, "n8n")
        .set("NODE", "pve3")
        .set("PROXMOX_NODES", &nodes)
        .run();
    assert!(!out.status.success());
    assert!(
        text.contains("PROXMOX_NODES has no address for node 'pve3'"),
        "{text}"
    );
    assert_no_secret(&text, &values, "deploy output");
}

#[test]
fn deploy_refuses_to_render_a_key_vault_lacks() {
    let e = E2e::up();
    let before = e.deployed("n8n");
    let mut values = e.vault();
    values.remove("n8n_webhook_token");
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::json!(values))
        .unwrap();
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Vault lacks n8n_webhook_token"), "{text}");
    assert!(
        e.deployed("n8n") == before,
        "the deployed .env is untouched"
    );
    assert!(compose_log(&e, 131).is_empty(), "nothing restarted");
}

/// Without RUNNER_TEMP the key goes into a new private directory: one another local user created
/// beforehand at a guessable name is never written into.
#[test]
fn ci_ssh_credentials_never_reuse_an_existing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |pid_guess: bool| {
        if pid_guess {
            // The old name was `homelab-sso-ssh.$$`: pre-create every plausible one.
            for pid in 1..200 {
                let _ = std::fs::create_dir(tmp.path().join(format!("homelab-sso-ssh.{pid}")));
            }
        }
        let env_file = tmp.path().join("github_env");
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/ci-ssh-credentials.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", tmp.path())
            .env("GITHUB_ENV", &env_file)
            .env("PROXMOX_SSH_KEY", "key-canary-2718")
            .env("PROXMOX_KNOWN_HOSTS", "[192.0.2.10]:22 ssh-ed25519 AAAA")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("canary"));
        std::fs::read_to_string(env_file).unwrap()
    };
    let env = run(true);
    let key = env
        .lines()
        .find_map(|l| l.strip_prefix("PROXMOX_SSH_KEY_FILE="))
        .expect("the key file is exported");
    let dir = std::path::Path::new(key).parent().unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("homelab-sso-ssh.") && name.len() >= "homelab-sso-ssh.".len() + 10,
        "a new random directory, got {name}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the directory is private");
    assert_eq!(std::fs::read_to_string(key).unwrap(), "key-canary-2718\n");
}

/// A value Vault lacks, or cannot give, stops the deploy before any restart or Grafana reset: the
/// reset used to run with empty input after the restart.
#[test]
fn deploy_without_grafanas_password_fails_before_any_restart_or_reset() {
    let e = E2e::up();
    let mut values = e.vault();
    values.remove("grafana_admin_password");
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::json!(values))
        .unwrap();
    // The reset alone (no .env keys), as a deploy whose render has nothing to write.
    let (out, text) = Deploy::of(&e, "loki-stack")
        .set("ENV_KEYS", "")
        .set("RESET_GRAFANA_ADMIN", "true")
        .run();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "deploy: Vault lacks grafana_admin_password; nothing was written or restarted"
        ),
        "{text}"
    );
    assert!(compose_log(&e, 138).is_empty(), "nothing restarted: {text}");
    assert!(!e.lab.grafana_password_is(""), "no reset with empty input");

    // Vault unreachable: the same, before anything is written.
    let before = e.deployed("loki-stack");
    let (out, text) = Deploy::of(&e, "loki-stack")
        .set("VAULT_ADDR", &format!("http://127.0.0.1:{}", closed_port()))
        .set("RESET_GRAFANA_ADMIN", "true")
        .run();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("nothing was written or restarted"), "{text}");
    assert!(compose_log(&e, 138).is_empty(), "nothing restarted: {text}");
    assert!(e.deployed("loki-stack") == before);
}

/// vault_full_write stores a YAML number as a JSON number: it is rendered as its text, as compose
/// reads it, and no tool's error text ever carries a value into the log.
#[test]
fn numbers_render_as_text_and_no_error_quotes_a_value() {
    let e = E2e::up();
    let mut data = serde_json::json!(e.vault());
    data["n8n_webhook_token"] = serde_json::json!(987654321012_u64);
    e.lab.bao.kv_put("homelab-sso", data.clone()).unwrap();
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(out.status.success(), "{text}");
    assert_eq!(e.deployed("n8n")["n8n_webhook_token"], "987654321012");
    assert!(!text.contains("987654321012"), "{text}");

    // A value compose cannot hold (an object): refused, naming the key and its type only.
    data["n8n_webhook_token"] = serde_json::json!({"nested": "object-canary-31415"});
    e.lab.bao.kv_put("homelab-sso", data).unwrap();
    let before = e.deployed("n8n");
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("deploy: Vault holds n8n_webhook_token as object, not as a text or a number"),
        "{text}"
    );
    assert!(!text.contains("object-canary-31415"), "{text}");
    assert!(e.deployed("n8n") == before);
}

/// Two deploys of one service out of order: the older (it read Vault version N) is held while
/// Vault gets version N+1 and a newer deploy writes it; released, the older one leaves the newer
/// `.env` (and Grafana's newer password) alone, restarts nothing, and succeeds.
#[test]
fn an_older_deploy_finishing_last_leaves_the_newer_files() {
    let e = E2e::up();
    let put = |key: &str, value: &str| {
        let mut values = e.vault();
        values.insert(key.into(), value.into());
        e.lab
            .bao
            .kv_put("homelab-sso", serde_json::json!(values))
            .unwrap();
        values
    };
    // The .env: held at its write.
    put("n8n_webhook_token", "older-token-0123456789");
    let older = Held::start(Deploy::of(&e, "n8n"), 1);
    let newer = put("n8n_webhook_token", "newer-token-9876543210");
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(out.status.success(), "{text}");
    let (out, text) = older.release();
    assert!(
        out.status.success(),
        "an older deploy finishing last does not fail: {text}"
    );
    let v = e.vault_version();
    assert!(
        text.contains(&format!(
            "deploy: /opt/homelab/n8n/.env was rendered from Vault version {v}, newer than version {} that this deploy read: left as it is",
            v - 1
        )),
        "{text}"
    );
    assert_eq!(
        e.deployed("n8n")["n8n_webhook_token"],
        "newer-token-9876543210"
    );
    assert_eq!(
        compose_log(&e, 131).lines().count(),
        1,
        "only the newer deploy restarted n8n"
    );
    assert_no_secret(&text, &newer, "deploy output");
    let env = String::from_utf8(
        e.lab
            .containers
            .read_file(131, "/opt/homelab/n8n/.env")
            .unwrap(),
    )
    .unwrap();
    assert!(
        env.lines().any(|l| l == format!("# vault-version: {v}")),
        "{env}"
    );

    // Grafana's password: the older deploy wrote its .env and restarted before the newer one ran,
    // and is held at the reset.
    put("grafana_admin_password", "older-grafana-0123456789");
    let older = Held::start(
        Deploy::of(&e, "loki-stack").set("RESET_GRAFANA_ADMIN", "true"),
        3,
    );
    put("grafana_admin_password", "newer-grafana-9876543210");
    let (out, text) = Deploy::of(&e, "loki-stack")
        .set("RESET_GRAFANA_ADMIN", "true")
        .run();
    assert!(out.status.success(), "{text}");
    let (out, text) = older.release();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("deploy: Grafana's admin password was applied from Vault version"),
        "{text}"
    );
    assert!(e.lab.grafana_password_is("newer-grafana-9876543210"));
    assert_eq!(
        e.deployed("loki-stack")["grafana_admin_password"],
        "newer-grafana-9876543210"
    );
    let record = e
        .lab
        .containers
        .read_file(138, "/opt/homelab/loki-stack/.grafana-admin-applied")
        .unwrap();
    assert_eq!(
        String::from_utf8(record).unwrap(),
        format!("GRAFANA_ADMIN_APPLIED=version-{}\n", e.vault_version())
    );

    // A file without the line (rendered before deploys recorded it) is replaced as before.
    e.lab
        .containers
        .write_file(
            131,
            "/opt/homelab/n8n/.env",
            b"N8N_WEBHOOK_TOKEN=\"legacy-value-00000\"\n",
        )
        .unwrap();
    let (out, text) = Deploy::of(&e, "n8n").run();
    assert!(out.status.success(), "{text}");
    assert_eq!(
        e.deployed("n8n")["n8n_webhook_token"],
        "newer-token-9876543210"
    );
}
