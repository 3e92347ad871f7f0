//! Connection and auth options shared by both modules (the equivalent of community.hashi_vault's
//! `connection` + `auth` doc fragments), and turning them into an authenticated [`Kv`].

use crate::kv::{login, Kv, KvPath, LoggedIn, VaultError};
use ansible_module::spec::to_bool;
use ansible_module::{Opt, Secret};
use httpx::{Client, HttpConfig};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Backoff doubles per attempt, so more than this would wait for minutes on a dead server.
pub const MAX_RETRIES: u32 = 10;
/// The `auth_method` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Token,
    Approle,
    Userpass,
}

/// Connection, auth and location options, flattened into each module's params.
#[derive(Debug, Deserialize)]
pub struct ConnParams {
    pub url: String,
    pub token: Option<Secret>,
    pub token_path: Option<String>,
    pub token_file: String,
    pub auth_method: AuthMethod,
    pub auth_mount: Option<String>,
    pub role_id: Option<Secret>,
    pub secret_id: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub namespace: Option<String>,
    pub ca_cert: Option<String>,
    pub validate_certs: Option<bool>,
    pub timeout: u64,
    pub retries: u32,
    pub mount: String,
    pub path: String,
}

/// The options behind [`ConnParams`].
pub fn conn_options() -> Vec<Opt> {
    vec![
        Opt::str("url")
            .alias("addr")
            .env("VAULT_ADDR")
            .required()
            .help("Vault/OpenBao address, e.g. https://vault.example.org:8200"),
        Opt::str("token")
            .env("VAULT_TOKEN")
            .no_log()
            .help("Token for auth_method=token (prefer VAULT_TOKEN: it does not show in `ps`)"),
        Opt::path("token_path").help(
            "Directory of the token file, read when neither `token` nor VAULT_TOKEN is set (default: the home directory)",
        ),
        Opt::str("token_file")
            .default(".vault-token")
            .help("Name of the token file in `token_path` (`bao login` and `vault login` write ~/.vault-token)"),
        Opt::str("auth_method")
            .choices(&["token", "approle", "userpass"])
            .default("token")
            .help("How to authenticate"),
        Opt::str("auth_mount")
            .alias("mount_point")
            .help("Mount path of the auth method (default: approle or userpass)"),
        Opt::str("role_id").no_log().help("AppRole role_id"),
        Opt::str("secret_id").no_log().help("AppRole secret_id"),
        Opt::str("username").help("userpass user name"),
        Opt::str("password").no_log().help("userpass password"),
        Opt::str("namespace")
            .env("VAULT_NAMESPACE")
            .help("Namespace, sent as X-Vault-Namespace"),
        Opt::path("ca_cert")
            .alias("cacert")
            .env("VAULT_CACERT")
            .help("PEM file with the CA that signed the server's certificate"),
        Opt::bool("validate_certs").help(
            "Verify the server's TLS certificate (default: true, or the inverse of VAULT_SKIP_VERIFY)",
        ),
        Opt::int("timeout")
            .default(30)
            .range(1, 3600)
            .help("Seconds per HTTP request"),
        Opt::int("retries")
            .default(3)
            .help("Further attempts (0-10, with backoff) for reads after a connection error or HTTP 429/5xx; writes are never repeated"),
        Opt::str("mount")
            .alias("engine_mount_point")
            .default("secret")
            .help("KV v2 mount"),
        Opt::str("path").required().help("Secret path inside the mount, e.g. homelab-sso"),
    ]
}

/// `VAULT_SKIP_VERIFY` as Vault's CLI reads it (a boolean); invalid values are an error.
fn skip_verify_from_env() -> Result<bool, VaultError> {
    match std::env::var("VAULT_SKIP_VERIFY") {
        Ok(v) if !v.trim().is_empty() => to_bool(&Value::String(v))
            .map_err(|e| VaultError::Usage(format!("VAULT_SKIP_VERIFY is not a boolean: {e}"))),
        _ => Ok(false),
    }
}

impl ConnParams {
    /// The secret these options name.
    pub fn at(&self) -> KvPath {
        KvPath::new(&self.mount, &self.path)
    }

    fn validate(&self) -> Result<(), VaultError> {
        let at = self.at();
        if at.path().is_empty() {
            return Err(VaultError::Usage(format!(
                "`path` must name a secret inside the mount (e.g. homelab-sso), got {:?}",
                self.path
            )));
        }
        if at.mount().is_empty() {
            return Err(VaultError::Usage(
                "`mount` must not be empty (KV v2 mounts are usually `secret`)".into(),
            ));
        }
        // Every option that becomes a URL path segment.
        let segments = [
            ("path", Some(at.path())),
            ("mount", Some(self.mount.as_str())),
            ("auth_mount", self.auth_mount.as_deref()),
            ("username", self.username.as_deref()),
        ];
        for (what, value) in segments {
            if let Some(v) = value {
                httpx::check_segments(what, v).map_err(VaultError::Usage)?;
            }
        }
        if self.token_file.is_empty() || self.token_file.contains('/') {
            return Err(VaultError::Usage(format!(
                "`token_file` must be a file name (the directory is `token_path`), got {:?}",
                self.token_file
            )));
        }
        if self.retries > MAX_RETRIES {
            return Err(VaultError::Usage(format!(
                "`retries` must be 0 to {MAX_RETRIES} (each retry waits twice as long as the one before), got {}",
                self.retries
            )));
        }
        if self.timeout == 0 {
            return Err(VaultError::Usage(
                "`timeout` must be at least 1 second".into(),
            ));
        }
        Ok(())
    }

    /// Where the token file is: `token_path` (default: `$HOME`) joined with `token_file`. A `path`
    /// option arrives with `~` and `$VAR` already expanded (ansible_module's `expand_path`).
    fn token_file_path(&self) -> Option<PathBuf> {
        let dir = match self.token_path.as_deref().filter(|s| !s.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?),
        };
        Some(dir.join(&self.token_file))
    }

    /// The token `bao login` / `vault login` left in the token file; the last resort after the
    /// `token` option and VAULT_TOKEN, as with community.hashi_vault.
    fn token_from_file(&self) -> Result<Secret, VaultError> {
        let none = "no Vault token: set `token` (or VAULT_TOKEN), log in with `bao login` (it writes ~/.vault-token; see `token_path` and `token_file`), or use auth_method approle or userpass";
        let Some(file) = self.token_file_path() else {
            return Err(VaultError::Usage(format!("{none} (HOME is not set)")));
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Usage(format!(
                    "{none} ({} does not exist)",
                    file.display()
                )))
            }
            Err(e) => {
                return Err(VaultError::Usage(format!(
                    "cannot read the token file {}: {e}",
                    file.display()
                )))
            }
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(VaultError::Usage(format!(
                "the token file {} is empty: log in again with `bao login`",
                file.display()
            )));
        }
        // Secret::new registers the value, so it is masked in every message.
        Ok(Secret::new(token))
    }

    /// The auth method's mount: `auth_mount`, else the method's default path.
    pub fn login_mount(&self) -> &str {
        let default = match self.auth_method {
            AuthMethod::Token => "token",
            AuthMethod::Approle => "approle",
            AuthMethod::Userpass => "userpass",
        };
        self.auth_mount
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(default)
    }

    /// An HTTP client for the server, then a login per `auth_method`.
    pub fn connect(&self) -> Result<Kv, VaultError> {
        self.validate()?;
        let validate_certs = match self.validate_certs {
            Some(v) => v,
            None => !skip_verify_from_env()?,
        };
        let mut cfg = HttpConfig::new("Vault", self.url.trim());
        cfg.ca_cert = self
            .ca_cert
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        cfg.validate_certs = validate_certs;
        cfg.timeout = Duration::from_secs(self.timeout);
        cfg.retries = self.retries;
        let http = Client::new(cfg)?;
        let ns = self.namespace.as_deref().filter(|s| !s.is_empty());
        let logged_in = match self.auth_method {
            AuthMethod::Token => LoggedIn {
                token: match &self.token {
                    Some(t) if !t.is_empty() => t.clone(),
                    _ => self.token_from_file()?,
                },
                role_name: None,
            },
            AuthMethod::Approle => {
                let (Some(role_id), Some(secret_id)) = (&self.role_id, &self.secret_id) else {
                    return Err(VaultError::Usage(
                        "auth_method approle needs `role_id` and `secret_id`".into(),
                    ));
                };
                let mount = self.login_mount();
                login(
                    &http,
                    ns,
                    "AppRole",
                    mount,
                    "",
                    json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()}),
                )?
            }
            AuthMethod::Userpass => {
                let (Some(user), Some(pass)) = (&self.username, &self.password) else {
                    return Err(VaultError::Usage(
                        "auth_method userpass needs `username` and `password`".into(),
                    ));
                };
                let mount = self.login_mount();
                login(
                    &http,
                    ns,
                    "userpass",
                    mount,
                    &format!("/{}", httpx::encode(user)),
                    json!({"password": pass.expose()}),
                )?
            }
        };
        Ok(
            Kv::new(http, logged_in.token, ns.map(str::to_string), self.at())
                .with_role_name(logged_in.role_name),
        )
    }
}
