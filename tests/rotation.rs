//! The full rotation of secret/homelab-sso end to end: real ansible-playbook, real OpenBao and
//! sshd, the PocketID and Forgejo emulators whose deploy runs re-render the fixture `.env` files.

use e2e::{assert_no_secret, E2e};
use lab::forgejo::{Behaviour, RunOutcome};
use std::time::Duration;

/// The operations that wrote the SSO secret's data (reads left out), from OpenBao's audit log.
fn written_operations(e: &E2e) -> Vec<String> {
    // The audit device writes the response entry after answering; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    e.lab
        .bao
        .audited_operations("secret/data/homelab-sso")
        .into_iter()
        .filter(|op| op != "read")
        .collect()
}

fn fast(e: &E2e) {
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab
            .forgejo
            .set_behaviour(&wf, Behaviour::lasting(Duration::from_millis(300)));
    }
}

#[test]
fn full_rotation_changes_every_key_redeploys_verifies_and_retires() {
    let mut e = E2e::up();
    fast(&e);
    e.lab.bao.enable_audit().unwrap();
    let before = e.vault();
    let v_before = e.vault_version();
    let old_secret = before["pocketid_client_secret"].clone();
    let run = e.playbook("rotate-homelab-sso.yml", &["-vvvv"], &[]);
    run.assert_ok();
    let after = e.vault();
    assert_eq!(after.len(), 15, "one version holding all 15 keys");
    assert_eq!(
        e.vault_version(),
        v_before + 1,
        "exactly one new Vault version"
    );
    // The runbook's "single full write with all keys": one write, and not a PATCH.
    let writes = written_operations(&e);
    assert!(
        writes.len() == 1 && writes[0] != "patch",
        "a full rotation sends exactly one non-PATCH write to secret/data/homelab-sso, got {writes:?}"
    );
    for (k, v) in &before {
        if k == "pocketid_client_id" {
            assert!(
                &after[k] == v,
                "the client id is an identifier, not rotated"
            );
        } else {
            assert!(&after[k] != v, "{k} was not rotated");
        }
    }
    // Nine deploy runs, all successful.
    let runs = e.lab.forgejo.runs();
    assert_eq!(runs.len(), 9, "nine deploy runs");
    assert!(
        runs.iter().all(|r| r.status == "success"),
        "a deploy run did not succeed"
    );
    // Deployed == Vault, the new secret works, the old one is retired.
    e.assert_deployed_matches_vault();
    let pid = &e.lab.pocketid;
    assert!(pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &after["pocketid_client_secret"]));
    assert!(
        !pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &old_secret),
        "old secret must be retired"
    );
    // Grafana's admin password really changed (not just the .env).
    assert!(e.lab.grafana_password_is(&after["grafana_admin_password"]));
    // The summary names keys, versions and runs.
    assert!(run.stdout.contains("Rotation complete"), "{}", run.stdout);
    let summary = &run.stdout[run.stdout.find("TASK [Summary").expect("summary")..];
    for k in lab::catalog::vault_keys() {
        assert!(summary.contains(&k), "the summary names {k}");
    }
    assert!(
        summary.contains("kept keys: pocketid_client_id"),
        "{summary}"
    );
    assert!(run.stdout.contains("drift check: clean"), "{}", run.stdout);
    // No secret value, old or new, in the complete output at -vvvv.
    let all = run.all_output();
    assert_no_secret(&all, &before, "rotation output");
    assert_no_secret(&all, &after, "rotation output");
    assert!(
        !all.contains(e.lab.pocketid.admin_key()),
        "PocketID API key in the output"
    );
    assert!(
        !all.contains(&e.lab.secret_id),
        "AppRole secret_id in the output"
    );

    // A second rotation of a subset changes only that subset.
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "rotate_keys=n8n_webhook_token,glance_cookie_secret"],
        &[],
    );
    run.assert_ok();
    let third = e.vault();
    for (k, v) in &after {
        if k == "n8n_webhook_token" || k == "glance_cookie_secret" {
            assert!(&third[k] != v, "{k} should rotate");
        } else {
            assert!(&third[k] == v, "{k} should be carried over");
        }
    }
    e.assert_deployed_matches_vault();
    assert!(pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &third["pocketid_client_secret"]));
    // The shared webhook token reached both of its holders.
    assert!(e.deployed("gatus")["n8n_webhook_token"] == third["n8n_webhook_token"]);
    assert!(e.deployed("n8n")["n8n_webhook_token"] == third["n8n_webhook_token"]);
    let writes = written_operations(&e);
    assert!(
        writes.len() == 2 && writes.iter().all(|op| op != "patch"),
        "a subset rotation is a full write too, got {writes:?}"
    );
}

#[test]
fn dry_run_changes_nothing_and_names_what_would_change() {
    let e = E2e::up();
    fast(&e);
    let before = e.vault();
    let v = e.vault_version();
    let run = e.playbook("rotate-homelab-sso.yml", &["-e", "dry_run=true"], &[]);
    run.assert_ok();
    assert!(e.vault() == before, "a dry run changes no value");
    assert_eq!(e.vault_version(), v);
    assert!(
        e.lab.forgejo.runs().is_empty(),
        "a dry run dispatches nothing"
    );
    assert!(
        run.stdout.contains("Dry run: nothing was changed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("n8n_cookie_secret"), "{}", run.stdout);
    assert_eq!(
        e.lab
            .pocketid
            .client_secrets(lab::stack::OIDC_CLIENT_ID)
            .len(),
        1,
        "no secret minted"
    );
}

/// The preflight refuses, before anything changes, a static or unknown key in rotate_keys and a
/// Vault secret that lacks a key, naming each and the way out.
#[test]
fn preflight_refuses_unknown_and_static_keys_and_an_incomplete_secret() {
    let e = E2e::up();
    fast(&e);
    let unchanged = |e: &E2e, v: u64| {
        assert_eq!(e.vault_version(), v, "nothing written");
        assert!(e.lab.forgejo.runs().is_empty(), "nothing dispatched");
        assert_eq!(
            e.lab
                .pocketid
                .client_secrets(lab::stack::OIDC_CLIENT_ID)
                .len(),
            1,
            "nothing minted"
        );
    };
    let v = e.vault_version();
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &[
            "-e",
            "rotate_keys=pocketid_client_id,n8n_cookie_secret,no_such_key",
        ],
        &[],
    );
    run.assert_failed();
    assert!(
        run.stdout.contains(
            "Preflight refused the rotation: rotate_keys names pocketid_client_id, no_such_key, which are not a rotatable key"
        ),
        "{}",
        run.stdout
    );
    unchanged(&e, v);

    let mut without: serde_json::Map<String, serde_json::Value> = e
        .vault()
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    without.remove("gatus_cookie_secret");
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::Value::Object(without))
        .unwrap();
    let v = e.vault_version();
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_failed();
    assert!(
        run.stdout.contains(&format!(
            "(version {v}) lacks gatus_cookie_secret. Backfill it from the deployed .env files first"
        )),
        "{}",
        run.stdout
    );
    unchanged(&e, v);
}

#[test]
fn kill_point_vault_down_before_the_write_keeps_sso_working_and_rerun_converges() {
    let e = E2e::up();
    fast(&e);
    let before = e.vault();
    let v = e.vault_version();
    let gate = e.dir.path().join("write-gate");
    let reached = e.dir.path().join("write-gate.reached");
    let gate_s = gate.display().to_string();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            e.playbook(
                "rotate-homelab-sso.yml",
                &[],
                &[("HOMELAB_SSO_TEST_PAUSE_BEFORE_WRITE", &gate_s)],
            )
        });
        lab::proc::wait_for(Duration::from_secs(120), || reached.exists().then_some(()))
            .expect("the write was never reached");
        // Vault goes down (sealed: every request answers 503) between the read and the write.
        e.lab.bao.seal().unwrap();
        std::fs::write(&gate, "go").unwrap();
        let run = h.join().unwrap();
        e.lab.bao.unseal().unwrap();
        run.assert_failed();
        let out = run.all_output();
        assert!(out.contains("step 3 (write)"), "{out}");
        assert!(out.contains("sealed"), "{out}");
        assert_no_secret(&out, &before, "the failed rotation's output");
    });
    assert!(
        e.vault() == before,
        "Vault must still hold the complete previous version"
    );
    assert_eq!(e.vault_version(), v);
    assert!(e.lab.pocketid.client_secret_valid(
        lab::stack::OIDC_CLIENT_ID,
        &before["pocketid_client_secret"]
    ));
    e.assert_deployed_matches_vault();
    // Re-run converges.
    e.playbook("rotate-homelab-sso.yml", &[], &[]).assert_ok();
    e.assert_deployed_matches_vault();
    assert_eq!(
        e.lab
            .pocketid
            .client_secrets(lab::stack::OIDC_CLIENT_ID)
            .len(),
        1,
        "orphan secrets retired"
    );
}

#[test]
fn kill_point_failed_deploy_keeps_sso_working_and_rerun_converges() {
    let e = E2e::up();
    fast(&e);
    let before = e.vault();
    e.lab.forgejo.set_behaviour(
        "deploy-gatus.yml",
        Behaviour::lasting(Duration::from_millis(300)).outcome(RunOutcome::Failure),
    );
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("step 4 (redeploy)"), "{out}");
    assert!(out.contains("deploy-gatus.yml"), "{out}");
    let mid = e.vault();
    assert_eq!(mid.len(), 15, "Vault holds a complete version");
    // Both secrets work: the old one is not retired yet, the new one is deployed on the gateway.
    let pid = &e.lab.pocketid;
    assert!(pid.client_secret_valid(
        lab::stack::OIDC_CLIENT_ID,
        &before["pocketid_client_secret"]
    ));
    assert!(pid.client_secret_valid(
        lab::stack::OIDC_CLIENT_ID,
        &e.deployed("oauth2-gateway")["pocketid_client_secret"]
    ));
    e.lab.forgejo.set_behaviour(
        "deploy-gatus.yml",
        Behaviour::lasting(Duration::from_millis(300)),
    );
    e.playbook("rotate-homelab-sso.yml", &[], &[]).assert_ok();
    e.assert_deployed_matches_vault();
    let now = e.vault();
    assert!(!pid.client_secret_valid(
        lab::stack::OIDC_CLIENT_ID,
        &before["pocketid_client_secret"]
    ));
    assert!(pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &now["pocketid_client_secret"]));
}

#[test]
fn kill_point_drift_keeps_the_old_secret_and_rerun_converges() {
    let e = E2e::up();
    fast(&e);
    let before = e.vault();
    // A deploy that reports success but renders nothing: n8n keeps its old token.
    e.lab
        .forgejo
        .set_hook("deploy-n8n.yml", Box::new(|_| Ok(())));
    let summary = e.summary_file("rotation-summary.json");
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[summary.env()]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("Drift:"), "{out}");
    assert!(out.contains("n8n n8n_webhook_token DRIFT"), "{out}");
    assert!(
        out.contains("Rotation stopped at step 5 (verify): 1 service/key"),
        "{out}"
    );
    // The alert's summary is the rotation's, naming what differs.
    assert_eq!(
        summary.read(&out),
        serde_json::json!({"workflow": "rotate-homelab-sso", "verdict": "failed",
                           "services": ["n8n"], "keys": ["n8n_webhook_token"]})
    );
    assert!(
        e.lab.pocketid.client_secret_valid(
            lab::stack::OIDC_CLIENT_ID,
            &before["pocketid_client_secret"]
        ),
        "the old secret stays valid when verification fails"
    );
    assert_eq!(e.vault().len(), 15);
    // Restore the real deploy and re-run.
    e.lab.install_deploy_hook("n8n");
    e.playbook("rotate-homelab-sso.yml", &[], &[]).assert_ok();
    e.assert_deployed_matches_vault();
}

#[test]
fn legacy_pocketid_rotation_warns_about_the_outage_window_and_still_converges() {
    let e = E2e::up_with(&lab::stack::LabOptions {
        pocketid_version: "2.13.0".into(),
        ..Default::default()
    });
    fast(&e);
    let before = e.vault();
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains("has only the legacy secret API"),
        "{}",
        run.stdout
    );
    let after = e.vault();
    let pid = &e.lab.pocketid;
    assert!(pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &after["pocketid_client_secret"]));
    assert!(
        !pid.client_secret_valid(
            lab::stack::OIDC_CLIENT_ID,
            &before["pocketid_client_secret"]
        ),
        "on 2.13 the old secret is replaced"
    );
    e.assert_deployed_matches_vault();
}

/// Orphans of runs that died after their mint: 19 of them next to the secret Vault holds fill
/// PocketID's cap of 20, so a rotation that minted first could never converge.
#[test]
fn nineteen_orphan_secrets_are_retired_before_the_mint_and_one_run_converges() {
    let e = E2e::up();
    fast(&e);
    let pid = &e.lab.pocketid;
    let id = lab::stack::OIDC_CLIENT_ID;
    let held = pid.client_secrets(id).len();
    for _ in held..20 {
        pid.add_client_secret(id).expect("the client exists");
    }
    assert_eq!(
        pid.client_secrets(id).len(),
        20,
        "the client is at PocketID's cap"
    );
    let before = e.vault();
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_ok();
    let after = e.vault();
    assert_eq!(
        pid.client_secrets(id).len(),
        1,
        "only the new secret remains"
    );
    assert!(pid.client_secret_valid(id, &after["pocketid_client_secret"]));
    e.assert_deployed_matches_vault();
    assert!(
        run.stdout
            .contains("orphan PocketID secrets retired before the mint: 19"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run.all_output(), &before, "the rotation's output");
    assert_no_secret(&run.all_output(), &after, "the rotation's output");

    // A rotation that does not touch the client secret retires orphans too.
    pid.add_client_secret(id).unwrap();
    pid.add_client_secret(id).unwrap();
    e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "rotate_keys=n8n_webhook_token"],
        &[],
    )
    .assert_ok();
    assert_eq!(
        pid.client_secrets(id).len(),
        1,
        "the two orphans were retired"
    );
    assert!(pid.client_secret_valid(id, &after["pocketid_client_secret"]));
}

/// A failed mint may still have minted (only the answer lost): step 2 must not claim that nothing
/// changed, and the next run retires what PocketID may hold.
#[test]
fn a_failed_mint_says_a_secret_may_have_been_added_and_the_rerun_retires_it() {
    let e = E2e::up();
    fast(&e);
    let before = e.vault();
    e.lab.pocketid.fail_next_secret_post();
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("Rotation stopped at step 2 (mint)"), "{out}");
    assert!(!out.contains("Nothing was changed"), "{out}");
    assert!(
        out.contains("if PocketID minted and only its answer was lost, it holds one unused secret, which the next run retires before it mints"),
        "{out}"
    );
    assert!(e.vault() == before, "Vault unchanged");
    // An orphan as a lost answer leaves it; the re-run retires it before its own mint.
    e.lab
        .pocketid
        .add_client_secret(lab::stack::OIDC_CLIENT_ID)
        .unwrap();
    e.playbook("rotate-homelab-sso.yml", &[], &[]).assert_ok();
    assert_eq!(
        e.lab
            .pocketid
            .client_secrets(lab::stack::OIDC_CLIENT_ID)
            .len(),
        1
    );
    e.assert_deployed_matches_vault();
}

/// PocketID before 2.14 replaces the secret at the mint: oauth2-gateway is redeployed first and
/// alone, and when that deploy fails the message says SSO is broken and gives the one command.
#[test]
fn legacy_pocketid_gateway_deploy_failure_says_sso_is_broken_and_how_to_restore_it() {
    let e = E2e::up_with(&lab::stack::LabOptions {
        pocketid_version: "2.13.0".into(),
        ..Default::default()
    });
    fast(&e);
    let v = e.vault_version();
    e.lab.forgejo.set_behaviour(
        "deploy-oauth2-gateway.yml",
        Behaviour::lasting(Duration::from_millis(300)).outcome(RunOutcome::Failure),
    );
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    let expected = format!(
        "SSO is BROKEN: PocketID 2.13.0 holds only the new client secret, which is in Vault version {}, but oauth2-gateway still runs with the old one. Restore it with: ansible-playbook playbooks/redeploy.yml -e '{{\"redeploy_services\": [\"oauth2-gateway\"]}}'",
        v + 1
    );
    assert!(
        out.contains("Rotation stopped at step 4 (redeploy of oauth2-gateway)"),
        "{out}"
    );
    assert!(out.contains(&expected), "{out}");
    assert!(!out.contains("SSO works"), "{out}");
    // The gateway went alone: no other deploy was dispatched.
    assert_eq!(
        e.lab.forgejo.runs().len(),
        1,
        "only oauth2-gateway was dispatched"
    );
    // The one command restores SSO.
    e.lab.forgejo.set_behaviour(
        "deploy-oauth2-gateway.yml",
        Behaviour::lasting(Duration::from_millis(300)),
    );
    e.playbook(
        "redeploy.yml",
        &["-e", r#"{"redeploy_services": ["oauth2-gateway"]}"#],
        &[],
    )
    .assert_ok();
    let after = e.vault();
    assert!(e
        .lab
        .pocketid
        .client_secret_valid(lab::stack::OIDC_CLIENT_ID, &after["pocketid_client_secret"]));
    assert!(
        e.deployed("oauth2-gateway")["pocketid_client_secret"] == after["pocketid_client_secret"]
    );
}

/// The recovery offered after a failed redeploy includes Grafana's admin password reset, and
/// running it applies the password (the drift check alone cannot see Grafana's database).
#[test]
fn the_recovery_after_a_failed_redeploy_resets_grafanas_admin_password() {
    let e = E2e::up();
    fast(&e);
    e.lab.forgejo.set_behaviour(
        "deploy-loki-stack.yml",
        Behaviour::lasting(Duration::from_millis(300)).outcome(RunOutcome::Failure),
    );
    let run = e.playbook("rotate-homelab-sso.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(
        out.contains("run playbooks/redeploy.yml -e reset_grafana_admin=true and then playbooks/drift-check.yml"),
        "{out}"
    );
    // A password Grafana's database does not hold yet: only the reset can apply it.
    let mut after = e.vault();
    after.insert(
        "grafana_admin_password".into(),
        "recovery-grafana-password-4711".into(),
    );
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::json!(after))
        .unwrap();
    assert!(!e.lab.grafana_password_is(&after["grafana_admin_password"]));
    e.lab.forgejo.set_behaviour(
        "deploy-loki-stack.yml",
        Behaviour::lasting(Duration::from_millis(300)),
    );
    e.playbook(
        "redeploy.yml",
        &[
            "-e",
            "reset_grafana_admin=true",
            "-e",
            r#"{"redeploy_services": ["loki-stack"]}"#,
        ],
        &[],
    )
    .assert_ok();
    assert!(
        e.lab.grafana_password_is(&after["grafana_admin_password"]),
        "the recovery applied Grafana's admin password"
    );
}

/// Grafana applies its admin password only through a reset: the drift check compares the Vault
/// version whose password the last reset applied (recorded by the loki-stack deploy) with the one
/// that last changed grafana_admin_password, and tells when Grafana's database is behind.
#[test]
fn the_drift_check_tells_when_grafanas_admin_password_was_not_applied() {
    let e = E2e::up();
    fast(&e);
    let row = "loki-stack | grafana_admin_password (applied to Grafana) | ";
    // Nothing recorded yet (no reset since deploys record it): shown, not a failure.
    let run = e.playbook("drift-check.yml", &[], &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("{row}not recorded")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Grafana's admin password is not recorded")
            && run.stdout.contains(
                "one reset records it: playbooks/redeploy.yml -e reset_grafana_admin=true"
            ),
        "{}",
        run.stdout
    );

    // A rotation of the password resets Grafana and records it: in sync.
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "rotate_keys=grafana_admin_password"],
        &[],
    );
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("{row}in sync")),
        "{}",
        run.stdout
    );

    // A new password reaches the .env by a redeploy without the reset: Grafana keeps the old one.
    let mut values = e.vault();
    values.insert(
        "grafana_admin_password".into(),
        "unapplied-grafana-password-31".into(),
    );
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::json!(values))
        .unwrap();
    let v = e.vault_version();
    let redeploy = |extra: &[&str]| {
        let mut args = vec!["-e", r#"{"redeploy_services": ["loki-stack"]}"#];
        args.extend_from_slice(extra);
        e.playbook("redeploy.yml", &args, &[]).assert_ok();
    };
    redeploy(&[]);
    assert!(!e.lab.grafana_password_is("unapplied-grafana-password-31"));
    let run = e.playbook("drift-check.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(
        out.contains(&format!(
            "{row}NOT APPLIED (Grafana holds version {}'s password; Vault changed it in version {v})",
            v - 1
        )),
        "{out}"
    );
    assert!(
        out.contains("loki-stack | grafana_admin_password | in sync"),
        "the .env is: {out}"
    );
    assert!(
        out.contains(r#"playbooks/redeploy.yml -e reset_grafana_admin=true -e '{"redeploy_services": ["loki-stack"]}'"#),
        "{out}"
    );
    assert_no_secret(&out, &values, "drift-check output");

    // The remedy it names applies the password, and the drift check is clean again.
    redeploy(&["-e", "reset_grafana_admin=true"]);
    assert!(e.lab.grafana_password_is("unapplied-grafana-password-31"));
    let run = e.playbook("drift-check.yml", &[], &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("{row}in sync")),
        "{}",
        run.stdout
    );
}
