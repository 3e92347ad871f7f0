//! `playbooks/sso-status.yml` against the lab: each key's age against the catalog's max_age, names
//! and times only, failing when a key is overdue; and the catalog's max_ages held to the lab's.

use e2e::{assert_no_secret, E2e};
use lab::tools::repo_root;
use std::time::Duration;

fn catalog_yaml() -> serde_norway::Value {
    let path = repo_root().join("ansible/playbooks/group_vars/all/catalog.yml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_catalogs_max_ages_are_the_labs() {
    let y = catalog_yaml();
    let by_kind: Vec<(String, u64)> = y["homelab_sso_max_age_days"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_u64().unwrap()))
        .collect();
    let lab: Vec<(String, u64)> = lab::catalog::MAX_AGE_DAYS
        .iter()
        .map(|(k, d)| (k.to_string(), *d))
        .collect();
    assert_eq!(by_kind, lab);
    assert_eq!(
        y["homelab_sso_key_max_age_days"]
            .as_mapping()
            .map(|m| m.len()),
        Some(0)
    );
    for (key, kind) in y["homelab_sso_keys"].as_mapping().unwrap() {
        let key = key.as_str().unwrap();
        assert_eq!(kind.as_str(), Some(lab::catalog::key_kind(key)), "{key}");
    }
}

/// `days` ago, in the form Vault writes times.
fn days_ago(days: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        - Duration::from_secs(days * 86400);
    httpx::time::format_rfc3339_ns(secs.as_nanos() as i128, false)
}

#[test]
fn sso_status_reports_ages_and_fails_on_an_overdue_key() {
    let e = E2e::up();
    let values = e.vault();
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_ok();
    let out = run.all_output();
    let version = e.vault_version();
    assert!(
        out.contains(&format!("n8n_cookie_secret | {version} | ")),
        "{out}"
    );
    assert!(out.contains("| 0 | 180 | "), "{out}");
    assert!(out.contains("pocketid_client_id | "), "{out}");
    assert!(out.contains("| - | - | no max_age"), "{out}");
    assert_no_secret(&out, &values, "sso-status output");

    // A key made old: its recorded change back-dated past its max_age.
    let entry = format!("{version}@{}", days_ago(200));
    let (status, body) = e
        .lab
        .bao
        .request(
            "POST",
            "/v1/secret/metadata/homelab-sso",
            Some(serde_json::json!({"custom_metadata": {"rotated/n8n_cookie_secret": entry}})),
        )
        .unwrap();
    assert!((200..300).contains(&status), "{body}");
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("| 200 | 180 | "), "{out}");
    assert!(out.contains("| OVERDUE"), "{out}");
    assert!(
        out.contains(
            "1 key(s) of secret/homelab-sso are older than their max_age: n8n_cookie_secret."
        ),
        "{out}"
    );
    assert!(out.contains("rotate_keys=n8n_cookie_secret"), "{out}");
    assert_no_secret(&out, &values, "sso-status output");

    // The rotation it names makes the report clean again, the new version recorded.
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab.forgejo.set_behaviour(
            &wf,
            lab::forgejo::Behaviour::lasting(Duration::from_millis(300)),
        );
    }
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "rotate_keys=n8n_cookie_secret"],
        &[],
    );
    run.assert_ok();
    let rotated = e.vault_version();
    assert_eq!(rotated, version + 1);
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(
        out.contains(&format!("n8n_cookie_secret | {rotated} | ")),
        "{out}"
    );
    assert!(!out.contains("OVERDUE"), "{out}");
    assert_no_secret(&out, &e.vault(), "sso-status output");
}
