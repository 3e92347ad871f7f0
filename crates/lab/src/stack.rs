//! The whole lab at once, as `sso-lab up` and the end-to-end tests use it: OpenBao with the
//! runbook's secrets and an AppRole for the playbooks, PocketID with the oauth2-gateway client
//! and its log shipped to Loki, the fixture containers rendered from Vault (PocketID's Docker
//! container in LXC 123), sshd with the `pct` stand-in, and Forgejo whose deploy runs re-render
//! each service's `.env` from Vault; and a webhook receiver for the workflows' alerts.

use crate::catalog::{self, Service, COOKIE_SERVICES};
use crate::emulator::forgejo::{self, Forgejo, ForgejoOpts, RunInfo};
use crate::emulator::loki::{Loki, LokiOptions};
use crate::emulator::pocketid::{PocketId, PocketIdOptions};
use crate::emulator::webhook::Webhook;
use crate::error::{IoContext, LabError, Result};
use crate::fixtures::{self, Containers};
use crate::login::{self, LoginOutcome};
use crate::servers::openbao::{random_hex, OpenBao};
use crate::servers::sshd::Sshd;
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Versions the emulators pretend to be.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub pocketid_version: String,
    pub forgejo_version: String,
    /// OpenBao without the playbooks' policy and AppRole (`role_id`/`secret_id` empty), as a Vault
    /// is before `playbooks/bootstrap.yml` runs.
    pub bare_vault: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            pocketid_version: "2.14.0".into(),
            forgejo_version: "15.0.3".into(),
            bare_vault: false,
        }
    }
}

/// The client oauth2-proxy uses; its secret is `pocketid_client_secret` in Vault.
pub const OIDC_CLIENT_ID: &str = "oauth2-gateway";
pub const OIDC_GROUP: &str = "homelab-users";
/// The lab's user: a member of [`OIDC_GROUP`], so it may sign in to the lab's client.
pub const LAB_USER: &str = "lab-user";
/// Where Grafana's effective admin password lives in the loki-stack container (the lab's stand-in
/// for Grafana's database: only a deploy with `reset_grafana_admin: true` changes it).
pub const GRAFANA_DB_PATH: &str = "/var/lib/grafana/admin-password.sha256";
/// Policy of the playbooks' AppRole, from the one file users load into their Vault too.
pub const PLAYBOOK_POLICY: &str = include_str!("../../../ansible/vault/homelab-sso.hcl");

/// A running lab. Dropping it stops every process and server it started.
pub struct Lab {
    pub dir: PathBuf,
    pub bao: OpenBao,
    pub containers: Containers,
    pub sshd: Sshd,
    pub pocketid: PocketId,
    /// PocketID's log lines, under the catalog's selector (`homelab_sso_logs`).
    pub loki: Loki,
    pub forgejo: Forgejo,
    /// The alerts' webhook (`NOTIFY_WEBHOOK_URL`/`NOTIFY_WEBHOOK_TOKEN` in [`Lab::env`]).
    pub webhook: Webhook,
    pub role_id: String,
    pub secret_id: String,
}

/// New values as the runbook generates them: oauth2-proxy cookie secrets are 32 random bytes in
/// URL-safe base64; passwords and tokens are random text.
pub fn generate_initial_values(client_secret: &str) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("pocketid_client_id".to_string(), OIDC_CLIENT_ID.to_string());
    v.insert(
        "pocketid_client_secret".to_string(),
        client_secret.to_string(),
    );
    for s in COOKIE_SERVICES {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("random bytes");
        v.insert(
            format!("{s}_cookie_secret"),
            base64::engine::general_purpose::URL_SAFE.encode(bytes),
        );
    }
    v.insert("grafana_admin_password".into(), random_hex(16));
    v.insert("n8n_webhook_token".into(), random_hex(32));
    v
}

fn sha256_hex(s: &str) -> String {
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Lab {
    pub fn up(dir: &Path, opts: &LabOptions) -> Result<Lab> {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        let bao = OpenBao::start(&dir.join("openbao"))?;
        let (role_id, secret_id) = if opts.bare_vault {
            (String::new(), String::new())
        } else {
            bao.write_policy("homelab-sso", PLAYBOOK_POLICY)?;
            bao.enable_approle("homelab-sso", &["homelab-sso"])?
        };

        let pocketid = PocketId::start(PocketIdOptions {
            version: opts.pocketid_version.clone(),
            ..Default::default()
        })?;
        let loki = Loki::start(LokiOptions::default())?;
        pocketid.log_to_loki(&loki);
        pocketid.seed_groups(&[OIDC_GROUP]);
        pocketid.seed_client(
            Some(OIDC_CLIENT_ID),
            json!({
                "name": OIDC_CLIENT_ID,
                "callbackURLs": catalog::app_callback_urls(),
                "logoutCallbackURLs": catalog::app_logout_callback_urls(),
                "isPublic": false,
                "pkceEnabled": true
            }),
        );
        // As the catalog describes the client: only `homelab-users` may sign in.
        pocketid.restrict_client_to_groups(OIDC_CLIENT_ID, &[OIDC_GROUP]);
        let user = pocketid.add_user(LAB_USER, Some("lab-user@example.org"), false);
        pocketid.add_user_to_group(&user, OIDC_GROUP);
        let (_, client_secret) = pocketid.add_client_secret(OIDC_CLIENT_ID).ok_or_else(|| {
            LabError::msg("the PocketID emulator minted no secret for the lab client")
        })?;

        let values = generate_initial_values(&client_secret);
        bao.kv_put(catalog::VAULT_PATH, json!(values))?;
        bao.kv_put("pocketid", json!({"api_key": pocketid.admin_key()}))?;

        let containers = Containers::create(dir.join("containers"))?;
        containers.populate_runbook(&values)?;
        // LXC 123 runs PocketID in Docker (compose service `pocket-id`): its CLI (one-time access
        // codes) and `docker logs` answer over `pct exec`.
        let (vmid, name) = (catalog::LOGS_VMID, catalog::LOGS_CONTAINER);
        containers.add_pocketid_docker(vmid, name, pocketid.url())?;
        containers.set_compose_service(vmid, name, "pocket-id")?;
        containers.write_file(
            138,
            GRAFANA_DB_PATH,
            sha256_hex(&values["grafana_admin_password"]).as_bytes(),
        )?;
        let sshd = Sshd::start(&dir.join("sshd"), &containers)?;

        let forgejo = Forgejo::start(ForgejoOpts {
            owner: "homelab".into(),
            repo: "deploys".into(),
            ..ForgejoOpts::version(&opts.forgejo_version)
        })?;
        // The alerts' webhook (n8n's stand-in), guarded by a token as an n8n header auth is.
        let webhook = Webhook::start(Some(random_hex(16)))?;
        let lab = Lab {
            dir: dir.to_path_buf(),
            webhook,
            bao,
            containers,
            sshd,
            pocketid,
            loki,
            forgejo,
            role_id,
            secret_id,
        };
        for (svc, _) in forgejo::deploy_workflows() {
            lab.install_deploy_hook(svc.name);
        }
        Ok(lab)
    }

    /// (Re)installs the real deploy of `service`: its run executes `scripts/deploy-service.sh`, the
    /// script every deploy workflow runs through `.forgejo/actions/deploy`, with the run's inputs,
    /// against this lab (the AppRole, the sshd and its `pct` stand-in). It renders the `.env` from
    /// Vault and restarts the service; loki-stack's also resets Grafana's admin password when
    /// asked.
    pub fn install_deploy_hook(&self, service: &str) {
        let Some((svc, workflow)) = forgejo::deploy_workflows()
            .into_iter()
            .find(|(s, _)| s.name == service)
        else {
            return;
        };
        let env = self.deploy_env(&svc);
        let script = crate::tools::repo_root().join("scripts/deploy-service.sh");
        self.forgejo.set_hook(
            &workflow,
            Box::new(move |run: &RunInfo| {
                let mut cmd = std::process::Command::new("bash");
                cmd.arg(&script)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .envs(env.iter().map(|(k, v)| (k, v)));
                for (input, var) in [
                    ("reason", "REASON"),
                    ("dry_run", "DRY_RUN"),
                    ("restart", "RESTART"),
                    ("reset_grafana_admin", "RESET_GRAFANA_ADMIN"),
                ] {
                    if let Some(v) = run.inputs.get(input) {
                        cmd.env(var, v);
                    }
                }
                let out = cmd
                    .output()
                    .map_err(|e| format!("running {}: {e}", script.display()))?;
                if out.status.success() {
                    return Ok(());
                }
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "the deploy failed ({}): {}",
                    out.status,
                    stderr.lines().last().unwrap_or("no error output")
                ))
            }),
        );
    }

    /// What a deploy workflow hands the deploy script for `svc` in this lab (one node, `pve`).
    fn deploy_env(&self, svc: &Service) -> Vec<(String, String)> {
        let s = &self.sshd;
        let keys: Vec<String> = svc.keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut env: Vec<(String, String)> = vec![
            ("SERVICE".into(), svc.name.to_string()),
            ("NODE".into(), "pve".into()),
            ("VMID".into(), svc.vmid.to_string()),
            ("ENV_PATH".into(), svc.env_path.clone()),
            ("ENV_KEYS".into(), keys.join(" ")),
            ("VAULT_ADDR".into(), self.bao.addr.clone()),
            ("VAULT_ROLE_ID".into(), self.role_id.clone()),
            ("VAULT_SECRET_ID".into(), self.secret_id.clone()),
            ("PROXMOX_NODES".into(), format!("pve={}:{}", s.host, s.port)),
            ("PROXMOX_SSH_USER".into(), s.user.clone()),
            (
                "PROXMOX_SSH_KEY_FILE".into(),
                s.private_key.display().to_string(),
            ),
            (
                "PROXMOX_KNOWN_HOSTS_FILE".into(),
                s.known_hosts.display().to_string(),
            ),
            ("PCT_PATH".into(), s.pct_path.display().to_string()),
        ];
        if let Some(ca) = &self.bao.ca_cert {
            env.push(("VAULT_CACERT".into(), ca.display().to_string()));
        }
        env
    }

    /// Logs the lab's user in to the oauth2-gateway app through `callback_url`, with the client id
    /// and secret its **deployed** `.env` in CT 119 holds (what oauth2-proxy would use), as
    /// [`login::oidc_login`] does. Each call signs the user in anew (a one-time access code).
    pub fn login_as_app(&self, callback_url: &str) -> Result<LoginOutcome> {
        let svc = catalog::services()
            .into_iter()
            .find(|s| s.name == "oauth2-gateway")
            .ok_or_else(|| LabError::msg("the catalog has no oauth2-gateway service"))?;
        let raw = self.containers.read_file(svc.vmid, &svc.env_path)?;
        let env = fixtures::read_env(&String::from_utf8_lossy(&raw));
        let deployed = |key: &str| {
            svc.keys
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, var)| env.get(var).cloned())
                .ok_or_else(|| {
                    LabError::msg(format!(
                        "the deployed {} in CT {} holds no variable for {key}",
                        svc.env_path, svc.vmid
                    ))
                })
        };
        let client_id = deployed("pocketid_client_id")?;
        let client_secret = deployed("pocketid_client_secret")?;
        let session = login::sign_in(self.pocketid.url(), self.pocketid.admin_key(), LAB_USER)?;
        login::oidc_login(
            self.pocketid.url(),
            &client_id,
            &client_secret,
            callback_url,
            &session,
        )
    }

    /// Current `secret/homelab-sso` data (for tests; never print it).
    pub fn vault_values(&self) -> Result<BTreeMap<String, String>> {
        read_values(
            &self.bao.addr,
            &self.bao.root_token,
            self.bao.ca_cert.as_deref(),
        )
    }

    /// Whether Grafana's effective admin password is `password` (lab stand-in for its DB).
    pub fn grafana_password_is(&self, password: &str) -> bool {
        self.containers
            .read_file(138, GRAFANA_DB_PATH)
            .map(|b| b == sha256_hex(password).as_bytes())
            .unwrap_or(false)
    }

    /// Variables for playbooks, workflows and the modules' environment fallbacks.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = &self.sshd;
        vec![
            ("LAB_DIR".into(), self.dir.display().to_string()),
            ("VAULT_ADDR".into(), self.bao.addr.clone()),
            ("VAULT_ROLE_ID".into(), self.role_id.clone()),
            ("VAULT_SECRET_ID".into(), self.secret_id.clone()),
            ("LAB_VAULT_ROOT_TOKEN".into(), self.bao.root_token.clone()),
            ("POCKETID_URL".into(), self.pocketid.url().to_string()),
            (
                "POCKETID_API_KEY".into(),
                self.pocketid.admin_key().to_string(),
            ),
            ("LOKI_ADDR".into(), self.loki.url().to_string()),
            ("FORGEJO_URL".into(), self.forgejo.url().to_string()),
            ("FORGEJO_TOKEN".into(), self.forgejo.token()),
            ("FORGEJO_REPO".into(), self.forgejo.repo()),
            ("NOTIFY_WEBHOOK_URL".into(), self.webhook.url()),
            (
                "NOTIFY_WEBHOOK_TOKEN".into(),
                self.webhook.token().unwrap_or_default(),
            ),
            ("PROXMOX_SSH_HOST".into(), s.host.clone()),
            ("PROXMOX_SSH_PORT".into(), s.port.to_string()),
            ("PROXMOX_SSH_USER".into(), s.user.clone()),
            (
                "PROXMOX_SSH_KEY_FILE".into(),
                s.private_key.display().to_string(),
            ),
            (
                "PROXMOX_KNOWN_HOSTS_FILE".into(),
                s.known_hosts.display().to_string(),
            ),
            ("PROXMOX_PCT_PATH".into(), s.pct_path.display().to_string()),
        ]
    }

    /// An inventory for the lab: the controller plus one Proxmox node (`pve`) reached over the lab
    /// sshd.
    pub fn inventory(&self) -> String {
        let s = &self.sshd;
        format!(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n  children:\n    proxmox_nodes:\n      vars:\n        ansible_connection: local\n      hosts:\n        pve:\n          proxmox_ssh_host: \"{}\"\n          proxmox_ssh_port: {}\n          proxmox_ssh_user: \"{}\"\n          proxmox_pct_path: \"{}\"\n",
            s.host,
            s.port,
            s.user,
            s.pct_path.display()
        )
    }

    /// Writes `lab.env` (shell `KEY='value'` lines, mode 0600) and `inventory.yml` into the lab dir.
    pub fn write_files(&self) -> Result<(PathBuf, PathBuf)> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let env_path = self.dir.join("lab.env");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&env_path)
            .ctx(|| format!("writing {}", env_path.display()))?;
        for (k, v) in self.env() {
            writeln!(f, "{k}='{}'", v.replace('\'', "'\\''")).ctx(|| "writing lab.env".into())?;
        }
        let inv = self.dir.join("inventory.yml");
        std::fs::write(&inv, self.inventory()).ctx(|| format!("writing {}", inv.display()))?;
        Ok((env_path, inv))
    }
}

/// Reads `secret/homelab-sso` the way a deploy does (a plain KV v2 GET).
fn read_values(addr: &str, token: &str, ca: Option<&Path>) -> Result<BTreeMap<String, String>> {
    let mut cfg = httpx::HttpConfig::new("Vault", addr);
    cfg.ca_cert = ca.map(Path::to_path_buf);
    cfg.retries = 1;
    let client = httpx::Client::new(cfg).map_err(|e| LabError::msg(e.to_string()))?;
    let path = format!("/v1/{}/data/{}", catalog::VAULT_MOUNT, catalog::VAULT_PATH);
    let resp = client
        .send(
            "GET",
            &path,
            &[("X-Vault-Token", token)],
            httpx::Body::None,
            httpx::Retry::Safe,
        )
        .map_err(|e| LabError::msg(e.to_string()))?;
    if !resp.is_success() {
        return Err(LabError::msg(format!(
            "reading Vault {path}: HTTP {}",
            resp.status
        )));
    }
    let body: Value = resp.json().map_err(|e| LabError::msg(e.to_string()))?;
    let data = body["data"]["data"]
        .as_object()
        .ok_or_else(|| LabError::msg("Vault answered without data"))?;
    Ok(data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect())
}
