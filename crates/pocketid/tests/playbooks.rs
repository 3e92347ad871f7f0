//! The real playbooks (`pocketid-setup.yml`, `pocketid-api-key.yml`) through the real
//! ansible-playbook at `-vvvv`, against the PocketID emulator and a real OpenBao: minted secrets
//! land in Vault, the API key rotates, and no API key or client secret shows in the output,
//! failures included.

use lab::ansible::{module_library, run_playbook};
use lab::openbao::OpenBao;
use lab::pocketid::{PocketId, PocketIdOptions};
use lab::tools::repo_root;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_pocketid_client");
const KEY_BIN: &str = env!("CARGO_BIN_EXE_pocketid_api_key");

/// The Vault modules live in another package of the workspace (`vault_kv`): build them into the same target dir.
/// Builds the Vault modules the playbooks also use and returns the path of `name`.
fn vault_bin(name: &str) -> PathBuf {
    let dir = Path::new(CLIENT_BIN).parent().unwrap();
    let bin = dir.join(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "vault_kv", "--bins"])
        .current_dir(repo_root())
        .status()
        .expect("run cargo build -p vault_kv");
    assert!(
        status.success() && bin.exists(),
        "the vault_kv package did not build {name}"
    );
    bin
}

fn playbook(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("ansible/playbooks").join(name)).unwrap()
}

#[test]
fn setup_and_api_key_playbooks_end_to_end_without_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(&tmp.path().join("bao")).expect("start OpenBao");
    let pid = PocketId::start(PocketIdOptions::version("2.14.0")).unwrap();
    pid.seed_groups(&["homelab-users"]);
    pid.seed_clients(40);
    let work = tmp.path().join("pb");
    std::fs::create_dir_all(&work).unwrap();
    // The homelab catalog and its derived vars next to the playbook, as in the repository.
    std::fs::create_dir_all(work.join("group_vars/all")).unwrap();
    for f in ["catalog.yml", "derived.yml"] {
        std::fs::copy(
            repo_root().join("ansible/playbooks/group_vars/all").join(f),
            work.join("group_vars/all").join(f),
        )
        .unwrap();
    }
    let vfw = vault_bin("vault_full_write");
    let vkr = vault_bin("vault_kv_read");
    let lib = module_library(
        &work,
        &[
            ("pocketid_client", Path::new(CLIENT_BIN)),
            ("pocketid_api_key", Path::new(KEY_BIN)),
            ("vault_full_write", vfw.as_path()),
            ("vault_kv_read", vkr.as_path()),
        ],
    )
    .unwrap();
    let admin = pid.admin_key().to_string();
    let env = |extra: &[(&'static str, String)]| {
        let mut e: Vec<(&'static str, String)> = vec![
            ("POCKETID_URL", pid.url().to_string()),
            ("POCKETID_API_KEY", admin.clone()),
            ("VAULT_ADDR", bao.addr.clone()),
            ("VAULT_TOKEN", bao.root_token.clone()),
        ];
        e.extend(extra.iter().cloned());
        e
    };

    // 1. pocketid-setup: the default client (from the catalog defaults) is created, its secret
    //    minted and written to Vault with its id.
    let e = env(&[]);
    let e2: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-setup.yml"),
        &["-vvvv"],
        &e2,
    )
    .unwrap();
    run.assert_ok();
    let (data, _) = bao.kv_get("homelab-sso").unwrap().expect("secret written");
    assert_eq!(data["pocketid_client_id"], json!("oauth2-gateway"));
    let secret = data["pocketid_client_secret"].as_str().unwrap().to_string();
    assert!(pid.client_secret_valid("oauth2-gateway", &secret));
    assert_eq!(pid.client_group_ids("oauth2-gateway").len(), 1);
    let out = run.all_output();
    assert!(!out.contains(&secret), "client secret leaked");
    assert!(!out.contains(&admin), "API key leaked");

    // 2. Second run: nothing changes, nothing minted, Vault untouched.
    let v1 = bao.current_version("homelab-sso").unwrap();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-setup.yml"),
        &["-vvvv"],
        &e2,
    )
    .unwrap();
    run.assert_ok();
    assert_eq!(bao.current_version("homelab-sso").unwrap(), v1);
    assert_eq!(pid.count_requests("POST", "/api/oidc/clients"), 1);

    // 3. Rotation: a new secret in Vault, the old one still valid (2.14 is additive).
    let rot: Vec<(&str, &str)> = e2
        .iter()
        .cloned()
        .chain([("ROTATE_SECRETS", "true")])
        .collect();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-setup.yml"),
        &["-vvvv"],
        &rot,
    )
    .unwrap();
    run.assert_ok();
    let (data, _) = bao.kv_get("homelab-sso").unwrap().unwrap();
    let rotated = data["pocketid_client_secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);
    assert!(
        pid.client_secret_valid("oauth2-gateway", &secret)
            && pid.client_secret_valid("oauth2-gateway", &rotated)
    );
    let out = run.all_output();
    assert!(
        !out.contains(&rotated) && !out.contains(&secret) && !out.contains(&admin),
        "leak on rotation"
    );

    // 4. A failure (unknown group) at -vvvv: fails, says why, leaks nothing.
    let vars = json!({"pocketid_clients": [{"client_id": "oauth2-gateway", "name": "oauth2-gateway", "allowed_groups": ["no-such-group"]}]});
    std::fs::write(work.join("bad.json"), vars.to_string()).unwrap();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-setup.yml"),
        &["-vvvv", "-e", "@bad.json"],
        &e2,
    )
    .unwrap();
    run.assert_failed();
    let out = run.all_output();
    assert!(
        !out.contains(&admin) && !out.contains(&rotated) && !out.contains(&secret),
        "leak on failure"
    );

    // 5. API-key rotation: verify → Vault → revoke. A non-admin new key fails first, Vault untouched.
    // secret/pocketid holds more than the API key (the admin credentials the runbook falls back on):
    // the runbook's `vault kv patch secret/pocketid api_key=<new-key>` leaves them alone.
    bao.kv_put(
        "pocketid",
        json!({"api_key": admin, "admin_password": "lab-admin-password-0123"}),
    )
    .unwrap();
    let user_key = pid.add_user_api_key("user-key");
    let bad: Vec<(&str, &str)> = e2
        .iter()
        .cloned()
        .chain([
            ("POCKETID_NEW_API_KEY", user_key.token.as_str()),
            ("POCKETID_NEW_API_KEY_NAME", "user-key"),
        ])
        .collect();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-api-key.yml"),
        &["-vvvv"],
        &bad,
    )
    .unwrap();
    run.assert_failed();
    assert!(
        run.all_output().contains("not an admin"),
        "{}",
        run.all_output()
    );
    let (data, pocketid_version) = bao.kv_get("pocketid").unwrap().expect("secret/pocketid");
    assert_eq!(
        data["api_key"],
        json!(admin),
        "Vault untouched when the new key is bad"
    );
    assert!(!run.all_output().contains(&user_key.token) && !run.all_output().contains(&admin));

    let new = pid.add_admin_api_key("automation-2026");
    let good: Vec<(&str, &str)> = e2
        .iter()
        .cloned()
        .chain([
            ("POCKETID_NEW_API_KEY", new.token.as_str()),
            ("POCKETID_NEW_API_KEY_NAME", "automation-2026"),
        ])
        .collect();
    let run = run_playbook(
        &work,
        &lib,
        &playbook("pocketid-api-key.yml"),
        &["-vvvv"],
        &good,
    )
    .unwrap();
    run.assert_ok();
    let (data, version) = bao.kv_get("pocketid").unwrap().expect("api key stored");
    assert_eq!(data["api_key"], json!(new.token));
    assert_eq!(
        data["admin_password"],
        json!("lab-admin-password-0123"),
        "a patch write: the other keys of secret/pocketid are untouched"
    );
    assert_eq!(version, pocketid_version + 1, "one new version");
    assert!(!pid.api_key_valid(&admin), "old key answers 401");
    assert!(pid.api_key_valid(&new.token), "new key works");
    let out = run.all_output();
    assert!(
        !out.contains(&new.token) && !out.contains(&admin),
        "API key leaked"
    );
}
