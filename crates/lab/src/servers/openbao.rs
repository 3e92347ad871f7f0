//! A real OpenBao dev server (`.venv/bin/bao server -dev`) on a free loopback port, for tests and
//! the demo: KV v2 at `secret/`, a random root token, optional TLS (`-dev-tls`), helpers for
//! policies, AppRole, userpass, sealing, plain KV access and an audit log that counts requests.
//! Stopped (its whole process group) on drop.

use crate::error::{IoContext, LabError, Result};
use crate::proc::{free_port, wait_for, ManagedChild};
use crate::tools::venv_bin;
use httpx::{Body, Client, HttpConfig, Retry};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running OpenBao dev server.
#[derive(Debug)]
pub struct OpenBao {
    /// `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`.
    pub addr: String,
    /// The dev root token (random per server).
    pub root_token: String,
    /// The dev CA (`<dir>/vault-ca.pem`) when started with TLS.
    pub ca_cert: Option<PathBuf>,
    /// The server's working directory (HOME, log, TLS files, audit log).
    pub dir: PathBuf,
    /// The server's stdout/stderr.
    pub log: PathBuf,
    audit_log: Option<PathBuf>,
    client: Client,
    child: ManagedChild,
}

/// A random lower-case hex string of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("OS random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free port whose successor is free too (the dev server also binds the cluster port, +1).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
    panic!("no pair of free consecutive ports on 127.0.0.1");
}

impl OpenBao {
    /// Starts a plain-HTTP dev server whose files live in `dir`.
    pub fn start(dir: &Path) -> Result<Self> {
        Self::launch(dir, false)
    }

    /// Starts a dev server with TLS (`-dev-tls`); its CA is `ca_cert`.
    pub fn start_tls(dir: &Path) -> Result<Self> {
        Self::launch(dir, true)
    }

    fn launch(dir: &Path, tls: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        // The server log holds the root token and the unseal key: only the owner may enter.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod 0700 {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .ctx(|| format!("resolving {}", dir.display()))?;
        let mut last_err = None;
        // A port can be taken between probing and binding: try a few times.
        for _ in 0..3 {
            match Self::launch_once(&dir, tls) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| LabError::msg("OpenBao did not start")))
    }

    fn launch_once(dir: &Path, tls: bool) -> Result<Self> {
        let port = free_port_pair();
        let token = format!("lab-root-{}", random_hex(12));
        let log = dir.join(format!("bao-{port}.log"));
        // Mode 0600 like `lab.env`: the dev server prints its root token and unseal key here.
        let log_file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&log)
            .ctx(|| format!("creating {}", log.display()))?;
        // `mode` applies only to a new file; an older log may be readable by others.
        log_file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .ctx(|| format!("chmod 0600 {}", log.display()))?;
        let log_err = log_file.try_clone().ctx(|| "cloning log handle".into())?;
        // OpenBao ≥ 2.2 refuses audit devices created through the API unless the config allows
        // it; `enable_audit` needs it.
        let config = dir.join("lab-server.hcl");
        std::fs::write(&config, "unsafe_allow_api_audit_creation = true\n")
            .ctx(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(venv_bin("bao"));
        cmd.arg("server")
            .arg("-dev")
            .arg(format!("-config={}", config.display()))
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg("-dev-no-store-token");
        let cert_dir = dir.join(format!("tls-{port}"));
        if tls {
            std::fs::create_dir_all(&cert_dir).ctx(|| "creating TLS dir".into())?;
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", cert_dir.display()));
        }
        cmd.env("HOME", dir)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        let mut child = ManagedChild::spawn("bao server -dev", &mut cmd)?;
        let scheme = if tls { "https" } else { "http" };
        let addr = format!("{scheme}://127.0.0.1:{port}");
        let ca_cert = tls.then(|| cert_dir.join("vault-ca.pem"));
        if let Some(ca) = &ca_cert {
            let started = wait_for(Duration::from_secs(60), || ca.exists().then_some(()));
            if started.is_none() || child.exited() {
                return Err(Self::start_error(&log, "the dev TLS CA was not written"));
            }
            // The file may exist before it is complete.
            std::thread::sleep(Duration::from_millis(100));
        }
        let client = Self::client(&addr, ca_cert.clone())?;
        let mut server = OpenBao {
            addr,
            root_token: token,
            ca_cert,
            dir: dir.to_path_buf(),
            log: log.clone(),
            audit_log: None,
            client,
            child,
        };
        // Ready only when a KV write succeeds (the dev `secret/` mount comes after unseal).
        let ready = wait_for(Duration::from_secs(90), || {
            if server.child.exited() {
                return Some(false);
            }
            match server.request(
                "POST",
                "/v1/secret/data/lab-ready",
                Some(json!({"data": {"ok": "1"}})),
            ) {
                Ok((200, _)) => Some(true),
                _ => {
                    std::thread::sleep(Duration::from_millis(50));
                    None
                }
            }
        });
        if ready != Some(true) {
            return Err(Self::start_error(&log, "no KV write succeeded"));
        }
        let _ = server.request("DELETE", "/v1/secret/metadata/lab-ready", None);
        Ok(server)
    }

    fn start_error(log: &Path, what: &str) -> LabError {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        LabError::msg(format!(
            "OpenBao did not become ready ({what}); log {}:\n{}",
            log.display(),
            tail.join("\n")
        ))
    }

    fn client(addr: &str, ca: Option<PathBuf>) -> Result<Client> {
        let mut cfg = HttpConfig::new("OpenBao (lab)", addr);
        cfg.ca_cert = ca;
        cfg.retries = 0;
        cfg.timeout = Duration::from_secs(20);
        Client::new(cfg).map_err(|e| LabError::msg(e.to_string()))
    }

    /// `host:port` of the listener.
    pub fn host_port(&self) -> &str {
        self.addr.split("://").nth(1).unwrap_or(&self.addr)
    }

    /// One request with the root token; returns the status and the JSON body (`null` if empty).
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        self.request_as(&self.root_token, method, path, body)
    }

    /// One request with `token`.
    pub fn request_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let body = match body {
            Some(v) => Body::Json(v),
            None => Body::None,
        };
        let resp = self
            .client
            .send(
                method,
                path,
                &[("X-Vault-Token", token)],
                body,
                Retry::Never,
            )
            .map_err(|e| LabError::msg(e.to_string()))?;
        let v = if resp.body.is_empty() {
            Value::Null
        } else {
            resp.json().unwrap_or(Value::Null)
        };
        Ok((resp.status, v))
    }

    fn expect(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, v) = self.request(method, path, body)?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(LabError::msg(format!(
                "OpenBao (lab) {method} {path} → {status}: {v}"
            )))
        }
    }

    /// Creates or replaces an ACL policy.
    pub fn write_policy(&self, name: &str, hcl: &str) -> Result<()> {
        self.expect(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )?;
        Ok(())
    }

    /// A new token with exactly these policies (no `default`).
    pub fn token_with_policy(&self, policies: &[&str]) -> Result<String> {
        let v = self.expect(
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": policies, "no_default_policy": true, "ttl": "1h"})),
        )?;
        v["auth"]["client_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| LabError::msg("token create: no client_token"))
    }

    fn enable_auth(&self, kind: &str) -> Result<()> {
        let (status, v) = self.request(
            "POST",
            &format!("/v1/sys/auth/{kind}"),
            Some(json!({ "type": kind })),
        )?;
        if (200..300).contains(&status) || v.to_string().contains("already in use") {
            Ok(())
        } else {
            Err(LabError::msg(format!(
                "enabling {kind} auth → {status}: {v}"
            )))
        }
    }

    /// Enables AppRole (once) and creates `role` with `policies`; returns `(role_id, secret_id)`.
    pub fn enable_approle(&self, role: &str, policies: &[&str]) -> Result<(String, String)> {
        self.enable_auth("approle")?;
        self.expect(
            "POST",
            &format!("/v1/auth/approle/role/{role}"),
            Some(json!({"token_policies": policies, "token_no_default_policy": true, "token_ttl": "1h"})),
        )?;
        let r = self.expect(
            "GET",
            &format!("/v1/auth/approle/role/{role}/role-id"),
            None,
        )?;
        let s = self.expect(
            "POST",
            &format!("/v1/auth/approle/role/{role}/secret-id"),
            Some(json!({})),
        )?;
        let role_id = r["data"]["role_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let secret_id = s["data"]["secret_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((role_id, secret_id))
    }

    /// Enables userpass (once) and creates `user` with `pass` and `policies`.
    pub fn enable_userpass(&self, user: &str, pass: &str, policies: &[&str]) -> Result<()> {
        self.enable_auth("userpass")?;
        self.expect(
            "POST",
            &format!("/v1/auth/userpass/users/{user}"),
            Some(json!({"password": pass, "token_policies": policies, "token_no_default_policy": true})),
        )?;
        Ok(())
    }

    /// Seals the server (every KV request then answers 503).
    pub fn seal(&self) -> Result<()> {
        self.expect("PUT", "/v1/sys/seal", None)?;
        Ok(())
    }

    /// Unseals a sealed dev server with the unseal key it printed at start-up.
    pub fn unseal(&self) -> Result<()> {
        let log = std::fs::read_to_string(&self.log).ctx(|| "reading the OpenBao log".into())?;
        let key = log
            .lines()
            .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
            .ok_or_else(|| LabError::msg("the OpenBao dev server printed no unseal key"))?
            .trim()
            .to_string();
        self.expect(
            "PUT",
            "/v1/sys/unseal",
            Some(serde_json::json!({ "key": key })),
        )?;
        Ok(())
    }

    /// Full write of `secret/<path>` (no cas); returns the new version.
    pub fn kv_put(&self, path: &str, data: Value) -> Result<u64> {
        let v = self.expect(
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(json!({ "data": data })),
        )?;
        Ok(v["data"]["version"].as_u64().unwrap_or(0))
    }

    /// The latest data of `secret/<path>` and its version; `None` if never written or deleted.
    pub fn kv_get(&self, path: &str) -> Result<Option<(Value, u64)>> {
        self.kv_get_version(path, None)
    }

    /// Version `version` (or the latest) of `secret/<path>`.
    pub fn kv_get_version(&self, path: &str, version: Option<u64>) -> Result<Option<(Value, u64)>> {
        let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let (status, v) = self.request("GET", &format!("/v1/secret/data/{path}{q}"), None)?;
        match status {
            200 if !v["data"]["data"].is_null() => Ok(Some((
                v["data"]["data"].clone(),
                v["data"]["metadata"]["version"].as_u64().unwrap_or(0),
            ))),
            200 | 404 => Ok(None),
            s => Err(LabError::msg(format!("kv_get {path} → {s}: {v}"))),
        }
    }

    /// The metadata (`data` of `GET secret/metadata/<path>`), `null` if none.
    pub fn metadata(&self, path: &str) -> Result<Value> {
        let (status, v) = self.request("GET", &format!("/v1/secret/metadata/{path}"), None)?;
        match status {
            200 => Ok(v["data"].clone()),
            404 => Ok(Value::Null),
            s => Err(LabError::msg(format!("metadata {path} → {s}: {v}"))),
        }
    }

    /// `current_version` from the metadata (0 if the path has none).
    pub fn current_version(&self, path: &str) -> Result<u64> {
        Ok(self.metadata(path)?["current_version"]
            .as_u64()
            .unwrap_or(0))
    }

    /// Soft-deletes versions of `secret/<path>`.
    pub fn kv_delete_versions(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.expect(
            "POST",
            &format!("/v1/secret/delete/{path}"),
            Some(json!({ "versions": versions })),
        )?;
        Ok(())
    }

    /// Destroys versions of `secret/<path>`.
    pub fn kv_destroy_versions(&self, path: &str, versions: &[u64]) -> Result<()> {
        self.expect(
            "POST",
            &format!("/v1/secret/destroy/{path}"),
            Some(json!({ "versions": versions })),
        )?;
        Ok(())
    }

    /// Enables a file audit device (`<dir>/audit.log`) so that requests can be counted.
    pub fn enable_audit(&mut self) -> Result<PathBuf> {
        let path = self.dir.join(format!("audit-{}.log", random_hex(4)));
        self.expect(
            "PUT",
            "/v1/sys/audit/lab-file",
            Some(json!({"type": "file", "options": {"file_path": path.display().to_string()}})),
        )?;
        self.audit_log = Some(path.clone());
        Ok(path)
    }

    /// Requests seen by the audit device since `enable_audit` (response entries whose path
    /// starts with `prefix`, e.g. `secret/`).
    pub fn audited_requests(&self, prefix: &str) -> usize {
        let Some(p) = &self.audit_log else { return 0 };
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "response")
            .filter(|v| {
                v["request"]["path"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(prefix))
            })
            .count()
    }

    /// The operations (`read`, `create`, `update`, `patch`, …) of the requests the audit device saw
    /// on exactly `path` (e.g. `secret/data/homelab-sso`), in order.
    pub fn audited_operations(&self, path: &str) -> Vec<String> {
        let Some(p) = &self.audit_log else {
            return Vec::new();
        };
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "response" && v["request"]["path"] == path)
            .filter_map(|v| v["request"]["operation"].as_str().map(str::to_string))
            .collect()
    }

    /// Stops the server now (a "server down" test); the address then refuses connections.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Freezes the server (SIGSTOP): connections are accepted but never answered (timeout tests).
    pub fn freeze(&self) {
        self.child.signal(libc::SIGSTOP);
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.child.signal(libc::SIGCONT);
    }

    /// Environment for the `bao` CLI or a module run against this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut e = vec![
            ("VAULT_ADDR".to_string(), self.addr.clone()),
            ("VAULT_TOKEN".to_string(), self.root_token.clone()),
        ];
        if let Some(ca) = &self.ca_cert {
            e.push(("VAULT_CACERT".to_string(), ca.display().to_string()));
        }
        e
    }
}
