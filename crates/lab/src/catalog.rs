//! The lab's homelab, as the runbook describes it: the 15 keys of `secret/homelab-sso`, the LXC
//! containers, which Vault key each `.env` holds under which name, and the nine deploy targets.
//! `ansible/playbooks/group_vars/all/catalog.yml` describes the same homelab for the playbooks; a test keeps
//! the two in agreement.

use std::sync::LazyLock;

/// The module binaries the collection `homelab.sso` ships (one sidecar doc each), in the order of
/// `ansible/modules.txt`, the one list of modules (the Makefile and scripts read it too).
pub const MODULE_BINARIES: ModuleList = ModuleList;

/// The names in `ansible/modules.txt`, built into the binary: `for m in MODULE_BINARIES` or
/// `MODULE_BINARIES.iter()`.
#[derive(Debug, Clone, Copy)]
pub struct ModuleList;

static MODULE_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("../../../ansible/modules.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect()
});

impl ModuleList {
    pub fn iter(self) -> std::slice::Iter<'static, &'static str> {
        MODULE_NAMES.iter()
    }
}

impl IntoIterator for ModuleList {
    type Item = &'static str;
    type IntoIter = std::iter::Copied<std::slice::Iter<'static, &'static str>>;
    fn into_iter(self) -> Self::IntoIter {
        MODULE_NAMES.iter().copied()
    }
}

/// Vault mount and path of the SSO secret.
pub const VAULT_MOUNT: &str = "secret";
pub const VAULT_PATH: &str = "homelab-sso";

/// Services behind oauth2-proxy, each with its own cookie secret (`<name>_cookie_secret`), in the
/// runbook's order. All of them live in the oauth2-gateway `.env`.
pub const COOKIE_SERVICES: [&str; 11] = [
    "n8n",
    "open_webui",
    "glance",
    "gatus",
    "the_lounge",
    "filedump",
    "homebridge",
    "qbitwebui",
    "seedbox",
    "normal",
    "grafana",
];

/// The 15 keys of `secret/homelab-sso`.
pub fn vault_keys() -> Vec<String> {
    let mut keys = vec![
        "pocketid_client_id".to_string(),
        "pocketid_client_secret".to_string(),
    ];
    keys.extend(COOKIE_SERVICES.iter().map(|s| format!("{s}_cookie_secret")));
    keys.push("grafana_admin_password".into());
    keys.push("n8n_webhook_token".into());
    keys
}

/// How each key is made on rotation (`homelab_sso_keys` in catalog.yml): `static`, `pocketid`,
/// `cookie_secret`, `password` or `token`.
pub fn key_kind(key: &str) -> &'static str {
    match key {
        "pocketid_client_id" => "static",
        "pocketid_client_secret" => "pocketid",
        "grafana_admin_password" => "password",
        "n8n_webhook_token" => "token",
        _ => "cookie_secret",
    }
}

/// Days a key of each kind may get old before its rotation is due (`homelab_sso_max_age_days`);
/// `static` keys never fall due.
pub const MAX_AGE_DAYS: [(&str, u64); 4] = [
    ("pocketid", 90),
    ("cookie_secret", 180),
    ("token", 180),
    ("password", 365),
];

/// A key's max_age in days, `None` for a static key.
pub fn max_age_days(key: &str) -> Option<u64> {
    let kind = key_kind(key);
    MAX_AGE_DAYS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, days)| *days)
}

/// One service in one LXC container.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: &'static str,
    pub vmid: u32,
    /// Path of the `.env` inside the container.
    pub env_path: String,
    /// Deploy workflow file in the Forgejo repository, if the service is a redeploy target.
    pub workflow: Option<String>,
    /// `(vault_key, ENV_NAME)` pairs the `.env` holds.
    pub keys: Vec<(String, String)>,
}

fn env_path(name: &str) -> String {
    format!("/opt/homelab/{name}/.env")
}

/// The services of the lab. LXC 119 `oauth2-gateway` runs one oauth2-proxy per protected service
/// and holds the client id/secret and all cookie secrets; n8n and gatus both hold the webhook token
/// (n8n receives webhooks with it, gatus calls them); loki-stack holds Grafana's admin password;
/// LXC 123 is PocketID itself.
pub fn services() -> Vec<Service> {
    let mut gateway_keys = vec![
        (
            "pocketid_client_id".to_string(),
            "OAUTH2_PROXY_CLIENT_ID".to_string(),
        ),
        (
            "pocketid_client_secret".to_string(),
            "OAUTH2_PROXY_CLIENT_SECRET".to_string(),
        ),
    ];
    gateway_keys.extend(COOKIE_SERVICES.iter().map(|s| {
        (
            format!("{s}_cookie_secret"),
            format!("{}_COOKIE_SECRET", s.to_uppercase()),
        )
    }));
    let svc = |name: &'static str, vmid: u32, keys: Vec<(&str, &str)>| Service {
        name,
        vmid,
        env_path: env_path(name),
        workflow: Some(format!("deploy-{name}.yml")),
        keys: keys
            .into_iter()
            .map(|(k, e)| (k.to_string(), e.to_string()))
            .collect(),
    };
    vec![
        Service {
            name: "oauth2-gateway",
            vmid: 119,
            env_path: env_path("oauth2-gateway"),
            workflow: Some("deploy-oauth2-gateway.yml".into()),
            keys: gateway_keys,
        },
        Service {
            name: "pocketid",
            vmid: 123,
            env_path: env_path("pocketid"),
            workflow: None,
            keys: vec![],
        },
        svc("n8n", 131, vec![("n8n_webhook_token", "N8N_WEBHOOK_TOKEN")]),
        svc("open-webui", 132, vec![]),
        svc("glance", 133, vec![]),
        svc(
            "gatus",
            134,
            vec![("n8n_webhook_token", "N8N_WEBHOOK_TOKEN")],
        ),
        svc("the-lounge", 135, vec![]),
        svc("qbitwebui", 136, vec![]),
        svc("seedbox", 137, vec![]),
        svc(
            "loki-stack",
            138,
            vec![("grafana_admin_password", "GF_SECURITY_ADMIN_PASSWORD")],
        ),
    ]
}

/// The nine redeploy targets, in the runbook's order.
pub const REDEPLOY_TARGETS: [&str; 9] = [
    "oauth2-gateway",
    "n8n",
    "open-webui",
    "glance",
    "gatus",
    "the-lounge",
    "qbitwebui",
    "seedbox",
    "loki-stack",
];

/// An app behind single sign-on: its public URL (the PocketID client has a callback under it),
/// its cookie secret in oauth2-gateway, and the catalog service that runs it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App {
    pub name: &'static str,
    pub url: &'static str,
    pub cookie_secret: &'static str,
    pub service: Option<&'static str>,
}

const fn app(
    name: &'static str,
    url: &'static str,
    cookie_secret: &'static str,
    service: Option<&'static str>,
) -> App {
    App {
        name,
        url,
        cookie_secret,
        service,
    }
}

/// The eleven apps, in the runbook's order of their cookie secrets (`homelab_sso_apps`).
pub const APPS: [App; 11] = [
    app(
        "n8n",
        "https://n8n.example.org",
        "n8n_cookie_secret",
        Some("n8n"),
    ),
    app(
        "open-webui",
        "https://open-webui.example.org",
        "open_webui_cookie_secret",
        Some("open-webui"),
    ),
    app(
        "glance",
        "https://glance.example.org",
        "glance_cookie_secret",
        Some("glance"),
    ),
    app(
        "gatus",
        "https://gatus.example.org",
        "gatus_cookie_secret",
        Some("gatus"),
    ),
    app(
        "the-lounge",
        "https://the-lounge.example.org",
        "the_lounge_cookie_secret",
        Some("the-lounge"),
    ),
    app(
        "filedump",
        "https://filedump.example.org",
        "filedump_cookie_secret",
        None,
    ),
    app(
        "homebridge",
        "https://homebridge.example.org",
        "homebridge_cookie_secret",
        None,
    ),
    app(
        "qbitwebui",
        "https://qbitwebui.example.org",
        "qbitwebui_cookie_secret",
        Some("qbitwebui"),
    ),
    app(
        "seedbox",
        "https://seedbox.example.org",
        "seedbox_cookie_secret",
        Some("seedbox"),
    ),
    app(
        "normal",
        "https://normal.example.org",
        "normal_cookie_secret",
        None,
    ),
    app(
        "grafana",
        "https://grafana.example.org",
        "grafana_cookie_secret",
        Some("loki-stack"),
    ),
];

/// The PocketID client's callback URLs: oauth2-proxy's `/oauth2/callback` under every app.
pub fn app_callback_urls() -> Vec<String> {
    APPS.iter()
        .map(|a| format!("{}/oauth2/callback", a.url))
        .collect()
}

/// Its logout callback URLs: `/oauth2/sign_out` under every app.
pub fn app_logout_callback_urls() -> Vec<String> {
    APPS.iter()
        .map(|a| format!("{}/oauth2/sign_out", a.url))
        .collect()
}

/// Where PocketID's log is read (`homelab_sso_logs`): its Loki selector, and its Docker
/// container in LXC 123.
pub const LOGS_LOKI_SELECTOR: &str = r#"{job="auth", container="pocketid"}"#;
pub const LOGS_VMID: u32 = 123;
pub const LOGS_CONTAINER: &str = "pocketid";

/// Fixture containers for error cases: stopped, no `.env`, and a `.env` that cannot be read.
pub const VMID_STOPPED: u32 = 120;
pub const VMID_NO_FILE: u32 = 121;
pub const VMID_PERMISSION_DENIED: u32 = 122;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_keys_all_deployed_somewhere() {
        let keys = vault_keys();
        assert_eq!(keys.len(), 15);
        let deployed: std::collections::BTreeSet<String> = services()
            .into_iter()
            .flat_map(|s| s.keys.into_iter().map(|(k, _)| k))
            .collect();
        for k in &keys {
            assert!(deployed.contains(k), "{k} is deployed nowhere");
        }
        let targets: Vec<_> = services()
            .into_iter()
            .filter(|s| s.workflow.is_some())
            .collect();
        assert_eq!(targets.len(), REDEPLOY_TARGETS.len());
    }

    #[test]
    fn every_cookie_secret_has_its_app() {
        let secrets: Vec<String> = COOKIE_SERVICES
            .iter()
            .map(|s| format!("{s}_cookie_secret"))
            .collect();
        let apps: Vec<&str> = APPS.iter().map(|a| a.cookie_secret).collect();
        assert_eq!(apps, secrets);
        let names: Vec<&str> = services().iter().map(|s| s.name).collect();
        for a in APPS {
            if let Some(s) = a.service {
                assert!(names.contains(&s), "{a:?}");
            }
        }
    }
}
