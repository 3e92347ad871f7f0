//! The operational Forgejo workflows run end to end under `act` (host mode, `-P
//! homelab-sso=-self-hosted`) against the lab: checkout (act copies the working tree for
//! `actions/checkout`), install the collection tarball, prepare SSH credentials from secrets, run
//! the playbook with the workflow's inputs and the lab's inventory (`vars.HOMELAB_SSO_INVENTORY`).

use e2e::{assert_no_secret, build_collection, ActRun, E2e};

/// The secrets the operational workflows read between them.
const OPERATIONAL_SECRETS: [&str; 6] = [
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "POCKETID_API_KEY",
    "DEPLOY_TOKEN",
    "PROXMOX_SSH_KEY",
    "PROXMOX_KNOWN_HOSTS",
];

fn logged(logs: &mut Vec<String>, r: ActRun) -> ActRun {
    logs.push(r.output.clone());
    r
}

#[test]
fn operational_workflows_run_end_to_end_under_act() {
    let mut e = E2e::up();
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab.forgejo.set_behaviour(
            &wf,
            lab::forgejo::Behaviour::lasting(std::time::Duration::from_millis(300)),
        );
    }
    let tarball = build_collection(e.dir.path());
    let mut logs: Vec<String> = Vec::new();
    let before = e.vault();
    let mut secrets = before.clone();
    secrets.insert("api_key".into(), e.lab.pocketid.admin_key().to_string());
    secrets.insert("secret_id".into(), e.lab.secret_id.clone());

    let r = logged(
        &mut logs,
        e.act(
            &tarball,
            "drift-check.yml",
            serde_json::json!({"services": ""}),
            &OPERATIONAL_SECRETS,
        ),
    );
    assert!(r.ok, "drift-check under act failed:\n{}", r.output);
    assert!(r.output.contains("in sync"), "{}", r.output);

    let r = logged(
        &mut logs,
        e.act(
            &tarball,
            "pocketid-setup.yml",
            serde_json::json!({"rotate_secrets": "false", "dry_run": "false"}),
            &OPERATIONAL_SECRETS,
        ),
    );
    assert!(r.ok, "pocketid-setup under act failed:\n{}", r.output);

    let r = logged(
        &mut logs,
        e.act(
            &tarball,
            "vault-write.yml",
            serde_json::json!({"source": "harvest", "patch": "false", "keys": "", "dry_run": "true"}),
            &OPERATIONAL_SECRETS,
        ),
    );
    assert!(r.ok, "vault-write under act failed:\n{}", r.output);
    assert!(e.vault() == before, "a dry run writes nothing");

    e.lab.bao.enable_audit().unwrap();
    let r = logged(
        &mut logs,
        e.act(
            &tarball,
            "rotate-homelab-sso.yml",
            serde_json::json!({"keys": "", "dry_run": "false"}),
            &OPERATIONAL_SECRETS,
        ),
    );
    assert!(r.ok, "rotate-homelab-sso under act failed:\n{}", r.output);
    assert!(r.output.contains("Rotation complete"), "{}", r.output);
    let after = e.vault();
    assert!(
        after["n8n_cookie_secret"] != before["n8n_cookie_secret"],
        "n8n_cookie_secret was not rotated"
    );
    e.assert_deployed_matches_vault();
    // The runbook's single full write: one write of the secret's data, not a PATCH.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let writes: Vec<String> = e
        .lab
        .bao
        .audited_operations("secret/data/homelab-sso")
        .into_iter()
        .filter(|op| op != "read")
        .collect();
    assert!(
        writes.len() == 1 && writes[0] != "patch",
        "the workflow's rotation sends one non-PATCH write, got {writes:?}"
    );

    // Nothing secret in act's logs, old values or new.
    for text in &logs {
        assert_no_secret(text, &before, "act log");
        assert_no_secret(text, &after, "act log");
        assert_no_secret(text, &secrets, "act log");
    }
}
