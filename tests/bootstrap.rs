//! `playbooks/bootstrap.yml` against a lab whose Vault has neither the playbooks' policy nor an
//! AppRole and whose Forgejo repository has no Actions secrets or variables: host keys are pinned
//! only when confirmed, `--check` changes nothing, the real run leaves an AppRole that can do
//! exactly what the playbooks need and every secret and variable the workflows read, nothing
//! secret is printed at `-vvvv`, and a second run changes nothing.

use e2e::{assert_no_secret, E2e};
use lab::catalog::services;
use lab::stack::LabOptions;
use lab::tools::repo_root;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn bootstrap_lists_every_secret_and_variable_the_workflows_read() {
    let text =
        std::fs::read_to_string(repo_root().join("ansible/playbooks/bootstrap.yml")).unwrap();
    let (secrets, vars) = e2e::workflow_settings();
    assert!(secrets.contains("VAULT_SECRET_ID") && vars.contains("VAULT_ADDR"));
    for n in secrets.iter().chain(vars.iter()) {
        assert!(
            text.contains(&format!("      - {n}\n")),
            "bootstrap.yml does not set {n}"
        );
    }
}

fn random(n: usize) -> String {
    lab::openbao::random_hex(n)
}

#[test]
fn bootstrap_from_nothing_converges_and_leaves_exactly_what_the_workflows_need() {
    let mut e = E2e::up_with(&LabOptions {
        bare_vault: true,
        ..Default::default()
    });
    let root = e.lab.bao.root_token.clone();
    let token = e.lab.forgejo.token();
    let release_token = random(20);
    let vault_password = random(20);
    let notify_token = random(20);
    let sshd_port = e.lab.sshd.port;
    let fingerprint = e.lab.sshd.host_key_fingerprint.clone();
    let webhook = e.lab.webhook.url();
    let env: Vec<(&str, &str)> = vec![
        ("VAULT_TOKEN", root.as_str()),
        ("FORGEJO_ADMIN_TOKEN", token.as_str()),
        ("DEPLOY_TOKEN", token.as_str()),
        ("RELEASE_TOKEN", release_token.as_str()),
        ("ANSIBLE_VAULT_PASSWORD", vault_password.as_str()),
        ("NOTIFY_WEBHOOK_URL", webhook.as_str()),
        ("NOTIFY_WEBHOOK_TOKEN", notify_token.as_str()),
    ];
    let optional_vars = serde_json::json!({
        "VAULT_CACERT": "/etc/ssl/certs/vault-ca.pem",
        "PROXMOX_HOST": format!("127.0.0.1:{sshd_port}"),
        "HOMELAB_SSO_VERSION": "v0.1.0",
        "HOMELAB_SSO_COLLECTION": "https://git.example.org/homelab/homelab-sso/releases/download/v0.1.0/homelab-sso-0.1.0.tar.gz",
        "HOMELAB_SSO_INVENTORY": "/etc/homelab-sso/hosts.yml",
        "ROTATE_DUE": "false",
    });
    let write_vars = |name: &str, fps: serde_json::Value| {
        let p = e.dir.path().join(name);
        std::fs::write(
            &p,
            serde_json::json!({
                "bootstrap_host_key_fingerprints": fps,
                "bootstrap_variables": optional_vars,
                "bootstrap_secret_id_ttl": "2160h",
            })
            .to_string(),
        )
        .unwrap();
        format!("@{}", p.display())
    };
    let good = write_vars("good.json", serde_json::json!({"pve": [fingerprint]}));
    let wrong = write_vars(
        "wrong.json",
        serde_json::json!({"pve": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    );
    let nothing_changed = |e: &E2e, when: &str| {
        let (status, _) = e
            .lab
            .bao
            .request("GET", "/v1/sys/policies/acl/homelab-sso", None)
            .unwrap();
        assert_eq!(status, 404, "{when}: the policy was written");
        e.lab.forgejo.with_extras(|ex| {
            assert!(ex.1.secrets.is_empty(), "{when}: secrets were set");
            assert!(ex.1.variables.is_empty(), "{when}: variables were set");
        });
    };

    // Never trust on first use: without a terminal or listed fingerprints, and with a wrong one,
    // the run stops before changing anything.
    let run = e.playbook("bootstrap.yml", &[], &env);
    assert!(!run.ok(), "an unconfirmed host key must stop the run");
    assert!(
        run.all_output()
            .contains("The host keys were not confirmed"),
        "{}",
        run.all_output()
    );
    assert!(
        run.all_output().contains(&fingerprint),
        "the fingerprint is shown"
    );
    nothing_changed(&e, "unconfirmed");
    let run = e.playbook("bootstrap.yml", &["-e", &wrong], &env);
    assert!(!run.ok());
    assert!(
        run.all_output().contains("refusing to pin"),
        "{}",
        run.all_output()
    );
    nothing_changed(&e, "wrong fingerprint");

    // --check shows everything it would do, and does nothing.
    let run = e.playbook("bootstrap.yml", &["--check", "-e", &good], &env);
    run.assert_ok();
    let out = run.all_output();
    assert!(out.contains("check mode: nothing is changed"), "{out}");
    assert!(out.contains("Vault: write the policy homelab-sso"), "{out}");
    assert!(
        out.contains("Vault: enable the AppRole auth method"),
        "{out}"
    );
    assert!(out.contains("Vault: create a secret_id"), "{out}");
    let (secrets, vars) = e2e::workflow_settings();
    for n in secrets.iter().chain(vars.iter()) {
        assert!(
            out.contains(n.as_str()),
            "the plan does not name {n}:\n{out}"
        );
    }
    nothing_changed(&e, "check mode");

    // The real run, at -vvvv.
    let run = e.playbook("bootstrap.yml", &["-vvvv", "-e", &good], &env);
    run.assert_ok();
    let first_output = run.all_output();
    let held: BTreeMap<String, String> = e.lab.forgejo.with_extras(|ex| {
        ex.1.secrets
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    });
    let variables = e.lab.forgejo.with_extras(|ex| ex.1.variables.clone());
    for n in &secrets {
        assert!(held.contains_key(n), "Forgejo lacks the secret {n}");
    }
    for n in &vars {
        assert!(variables.contains_key(n), "Forgejo lacks the variable {n}");
    }
    let known_hosts = std::fs::read_to_string(&e.lab.sshd.known_hosts).unwrap();
    assert_eq!(held["PROXMOX_KNOWN_HOSTS"].trim(), known_hosts.trim());
    assert_eq!(
        held["PROXMOX_SSH_KEY"].trim(),
        std::fs::read_to_string(&e.lab.sshd.private_key)
            .unwrap()
            .trim()
    );
    assert_eq!(held["DEPLOY_TOKEN"], token);
    assert_eq!(held["RELEASE_TOKEN"], release_token);
    // The alerts' webhook, from the environment (the lab's receiver).
    assert_eq!(held["NOTIFY_WEBHOOK_URL"], e.lab.webhook.url());
    assert_eq!(variables["ROTATE_DUE"], "false");
    assert_eq!(
        variables["PROXMOX_NODES"],
        format!("pve=127.0.0.1:{sshd_port}")
    );
    assert_eq!(variables["VAULT_ADDR"], e.lab.bao.addr);
    assert_eq!(variables["HOMELAB_SSO_VERSION"], "v0.1.0");

    // Nothing secret in the output: the admin tokens and every value set.
    let mut secret_values = held.clone();
    secret_values.insert("vault root token".into(), root.clone());
    secret_values.remove("PROXMOX_KNOWN_HOSTS"); // public keys
    for line in held["PROXMOX_SSH_KEY"]
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        secret_values.insert(format!("ssh key line {}", line.len()), line.to_string());
    }
    assert_no_secret(&first_output, &secret_values, "bootstrap -vvvv output");

    // A second run changes nothing: no task changed, the same secrets, one secret_id.
    let run = e.playbook("bootstrap.yml", &["-e", &good], &env);
    run.assert_ok();
    assert!(
        run.stdout.contains("changed=0"),
        "a second run changed something:\n{}",
        run.stdout
    );
    let again: BTreeMap<String, String> = e.lab.forgejo.with_extras(|ex| {
        ex.1.secrets
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    });
    assert_eq!(again, held, "a second run rewrote secrets");
    let (_, ids) = e
        .lab
        .bao
        .request(
            "GET",
            "/v1/auth/approle/role/homelab-sso/secret-id?list=true",
            None,
        )
        .unwrap();
    assert_eq!(
        ids["data"]["keys"].as_array().map(Vec::len),
        Some(1),
        "one secret_id"
    );
    // It lives bootstrap_secret_id_ttl (90 days), and the status report sees that.
    let (_, found) = e
        .lab
        .bao
        .request(
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id/lookup",
            Some(serde_json::json!({"secret_id": held["VAULT_SECRET_ID"]})),
        )
        .unwrap();
    assert_eq!(found["data"]["secret_id_ttl"], 7_776_000, "{found}");

    // The AppRole can do exactly what the playbooks need: a rotation passes with it…
    e.lab.role_id = held["VAULT_ROLE_ID"].clone();
    e.lab.secret_id = held["VAULT_SECRET_ID"].clone();
    for svc in services() {
        e.lab.install_deploy_hook(svc.name);
    }
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab.forgejo.set_behaviour(
            &wf,
            lab::forgejo::Behaviour::lasting(Duration::from_millis(300)),
        );
    }
    let before = e.vault();
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_ok();
    assert!(e.vault()["n8n_cookie_secret"] != before["n8n_cookie_secret"]);
    e.assert_deployed_matches_vault();
    // …records each rotated key's change in custom_metadata (the policy's `patch` on metadata)…
    let meta = e.lab.bao.metadata("homelab-sso").unwrap();
    let written = format!("{}@", meta["current_version"]);
    assert!(
        meta["custom_metadata"]["rotated/n8n_cookie_secret"]
            .as_str()
            .is_some_and(|entry| entry.starts_with(&written)),
        "{meta}"
    );
    // …and nothing else: a write elsewhere and a policy change are refused.
    let (status, login) = e
        .lab
        .bao
        .request(
            "POST",
            "/v1/auth/approle/login",
            Some(serde_json::json!({"role_id": held["VAULT_ROLE_ID"], "secret_id": held["VAULT_SECRET_ID"]})),
        )
        .unwrap();
    assert_eq!(status, 200);
    let approle_token = login["auth"]["client_token"].as_str().unwrap().to_string();
    for (method, path, body) in [
        (
            "POST",
            "/v1/secret/data/other",
            serde_json::json!({"data": {"a": "b"}}),
        ),
        (
            "PUT",
            "/v1/sys/policies/acl/homelab-sso",
            serde_json::json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}),
        ),
        (
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id",
            serde_json::json!({}),
        ),
        (
            "POST",
            "/v1/auth/approle/role/other/secret-id/lookup",
            serde_json::json!({"secret_id": held["VAULT_SECRET_ID"]}),
        ),
    ] {
        let (status, _) = e
            .lab
            .bao
            .request_as(&approle_token, method, path, Some(body))
            .unwrap();
        assert_eq!(status, 403, "the AppRole may not {method} {path}");
    }
    // Its own secret_id's expiry it may look up (sso-status), nothing more of it.
    let (status, own) = e
        .lab
        .bao
        .request_as(
            &approle_token,
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id/lookup",
            Some(serde_json::json!({"secret_id": held["VAULT_SECRET_ID"]})),
        )
        .unwrap();
    assert_eq!(status, 200, "{own}");
}

/// A Vault and a Forgejo (or a proxy in front of them) that echo the request in their error
/// bodies: the bootstrap names what failed, but never prints the admin tokens.
#[test]
fn error_bodies_that_echo_the_request_do_not_expose_the_admin_tokens() {
    let e = E2e::up();
    let echo = testkit::faults::Echo::start();
    let vault_token = format!("hvs.{}", random(24));
    let forgejo_token = random(40);
    let run = e.playbook(
        "bootstrap.yml",
        &["-vvv"],
        &[
            ("VAULT_ADDR", echo.url.as_str()),
            ("VAULT_TOKEN", vault_token.as_str()),
            ("FORGEJO_URL", echo.url.as_str()),
            ("FORGEJO_ADMIN_TOKEN", forgejo_token.as_str()),
            ("DEPLOY_TOKEN", forgejo_token.as_str()),
        ],
    );
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("HTTP 403"), "{out}");
    assert!(out.contains("********"), "the echo is shown masked: {out}");
    assert!(
        !out.contains(&vault_token),
        "Vault's admin token in the output"
    );
    assert!(
        !out.contains(&forgejo_token),
        "Forgejo's admin token in the output"
    );
}
