//! The lab's homelab, as the runbook describes it: the 15 keys of `secret/homelab-sso`, the LXC
//! containers, which Vault key each `.env` holds under which name, and the nine deploy targets.
//! `ansible/playbooks/group_vars/all/catalog.yml` describes the same homelab for the playbooks; a test keeps
//! the two in agreement.

/// The module binaries the collection `homelab.sso` ships (one sidecar doc each).
pub const MODULE_BINARIES: [&str; 8] = [
    "vault_full_write",
    "vault_kv_read",
    "env_harvest",
    "pocketid_client",
    "pocketid_api_key",
    "pocketid_login_code",
    "pocketid_logs",
    "redeploy_trigger",
];

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
}
