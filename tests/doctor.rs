//! sso-doctor against broken homelabs, through the real ansible-playbook: each breakage is named
//! with its cause and the runbook's remedy, and with fix the remedy is applied until a real OIDC
//! login through the lab (the deployed client secret, the app's callback) succeeds again. No
//! secret appears in any output.

use e2e::{assert_no_secret, E2e};
use lab::login::LoginOutcome;

/// The app the login goes through: grafana (behind oauth2-gateway, run by loki-stack).
const APP: &str = "grafana";

fn callback(app: &str) -> String {
    lab::catalog::APPS
        .iter()
        .find(|a| a.name == app)
        .map(|a| format!("{}/oauth2/callback", a.url))
        .expect("app in the catalog")
}

fn login(e: &E2e) -> LoginOutcome {
    e.lab.login_as_app(&callback(APP)).expect("login stand-in")
}

fn assert_logs_in(e: &E2e) {
    let out = login(e);
    assert!(
        matches!(out, LoginOutcome::Tokens(_)),
        "login through {APP} failed: {out:?}"
    );
}

/// The report line of one app.
fn report_line<'a>(out: &'a str, app: &str) -> &'a str {
    let needle = format!("\"msg\": \"{app}: ");
    out.lines()
        .rev()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no report line for {app}:\n{out}"))
}

/// Runs the doctor for `APP`: without fix it fails and the app's report line names `cause` and
/// `remedy`; with fix (at -vvvv) it succeeds, the app is healthy again and a real login works.
/// Returns the output of both runs.
fn diagnose_then_fix(e: &E2e, cause: &str, remedy: &str) -> String {
    let app = format!("doctor_service={APP}");
    let run = e.playbook("sso-doctor.yml", &["-e", &app], &[]);
    run.assert_failed();
    let diagnosis = run.all_output();
    let line = report_line(&diagnosis, APP);
    assert!(line.contains(&format!("UNHEALTHY ({cause})")), "{line}");
    assert!(line.contains(&format!("remedy: {remedy}")), "{line}");

    let run = e.playbook(
        "sso-doctor.yml",
        &["-vvvv", "-e", &app, "-e", "doctor_fix=true"],
        &[],
    );
    run.assert_ok();
    let fixed = run.all_output();
    assert!(
        report_line(&fixed, APP).contains(&format!("{APP}: healthy")),
        "{fixed}"
    );
    assert_logs_in(e);
    format!("{diagnosis}\n{fixed}")
}

#[test]
fn a_healthy_homelab_is_reported_healthy_with_no_remedy() {
    let e = E2e::up();
    assert_logs_in(&e);
    let values = e.vault();
    let run = e.playbook("sso-doctor.yml", &["-vvvv"], &[]);
    run.assert_ok();
    let out = run.all_output();
    for app in lab::catalog::APPS {
        assert!(
            report_line(&out, app.name).contains(&format!("{}: healthy", app.name)),
            "{out}"
        );
    }
    assert!(!out.contains("remedy:"), "{out}");
    assert!(out.contains("reachable, version 2.14.0"), "{out}");
    assert!(out.contains("Logs since 1h: from loki"), "{out}");
    assert!(
        out.contains("latest authorization of oauth2-gateway"),
        "{out}"
    );
    assert_no_secret(&out, &values, "sso-doctor output");
    assert!(!out.contains(e.lab.pocketid.admin_key()));

    // An app asked for by the service that runs it; an unknown name is refused before any check.
    let run = e.playbook("sso-doctor.yml", &["-e", "doctor_service=loki-stack"], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(report_line(&out, APP).contains("grafana: healthy"), "{out}");
    assert!(!out.contains("\"msg\": \"n8n: "), "{out}");
    let run = e.playbook("sso-doctor.yml", &["-e", "doctor_service=nextcloud"], &[]);
    run.assert_failed();
    assert!(
        run.all_output()
            .contains("Unknown app or service nextcloud"),
        "{}",
        run.all_output()
    );
}

#[test]
fn a_drifted_deployed_secret_is_resynced_by_redeploying() {
    let e = E2e::up();
    let values = e.vault();
    e.render_with(
        "oauth2-gateway",
        &values,
        "pocketid_client_secret",
        "drifted-client-secret-0123456789",
    );
    assert!(matches!(login(&e), LoginOutcome::TokenFailed(_)));

    let out = diagnose_then_fix(&e, "drift", "redeploy oauth2-gateway");
    assert!(
        out.contains("oauth2-gateway pocketid_client_secret"),
        "{out}"
    );
    assert!(out.contains("Vault's client secret accepted"), "{out}");
    assert_no_secret(&out, &values, "sso-doctor output");
    assert!(!out.contains("drifted-client-secret-0123456789"));
}

#[test]
fn a_stale_secret_is_replaced_by_pocketid_setup_then_redeployed() {
    let e = E2e::up();
    let before = e.vault();
    assert!(e.lab.pocketid.make_client_secrets_stale("oauth2-gateway"));
    // Orphans of earlier runs up to PocketID's cap of 20: the fix retires them before it mints
    // (none is Vault's, which PocketID refuses), or its mint would be refused.
    for _ in 0..20 {
        e.lab.pocketid.add_client_secret("oauth2-gateway").unwrap();
    }
    assert!(matches!(login(&e), LoginOutcome::TokenFailed(_)));

    let out = diagnose_then_fix(
        &e,
        "stale_secret",
        "run pocketid-setup (mint, store in Vault), then redeploy oauth2-gateway",
    );
    assert!(out.contains("Vault's client secret refused"), "{out}");
    // The refused token request of the failed login is in PocketID's log.
    assert!(out.contains("failures: invalid_client: "), "{out}");
    let after = e.vault();
    let secrets = e.lab.pocketid.client_secrets("oauth2-gateway");
    assert_eq!(secrets.len(), 1, "only the new secret is left: {secrets:?}");
    assert_ne!(
        after["pocketid_client_secret"],
        before["pocketid_client_secret"]
    );
    assert_no_secret(&out, &before, "sso-doctor output");
    assert_no_secret(&out, &after, "sso-doctor output");
}

#[test]
fn a_missing_callback_is_restored_by_pocketid_setup() {
    let e = E2e::up();
    let values = e.vault();
    let others: Vec<String> = lab::catalog::app_callback_urls()
        .into_iter()
        .filter(|c| *c != callback(APP))
        .collect();
    e.lab
        .pocketid
        .set_client_field("oauth2-gateway", "callbackURLs", serde_json::json!(others));
    assert!(matches!(login(&e), LoginOutcome::AuthorizeFailed(_)));

    let run = e.playbook("sso-doctor.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    let line = report_line(&out, APP);
    assert!(line.contains("UNHEALTHY (callback_missing)"), "{line}");
    assert!(line.contains(&callback(APP)), "{line}");
    assert!(line.contains("remedy: run pocketid-setup"), "{line}");
    assert!(report_line(&out, "n8n").contains("n8n: healthy"), "{out}");
    // The failed authorize is in PocketID's log, attributed to the app's callback.
    assert!(line.contains("log: redirect_uri_not_allowed: 1"), "{line}");

    let run = e.playbook("sso-doctor.yml", &["-e", "doctor_fix=true"], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(report_line(&out, APP).contains("grafana: healthy"), "{out}");
    assert_eq!(e.vault(), values, "no secret was minted for a callback");
    assert_logs_in(&e);
}

#[test]
fn without_loki_the_docker_log_is_read_and_without_both_the_checks_still_run() {
    let e = E2e::up();
    e.lab.loki.set_ready(false);
    let run = e.playbook("sso-doctor.yml", &["-e", "doctor_service=grafana"], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(out.contains("Logs since 1h: from docker"), "{out}");
    assert!(out.contains("not ready"), "{out}");

    e.lab.containers.set_docker_running(123, false).unwrap();
    let run = e.playbook("sso-doctor.yml", &["-e", "doctor_service=grafana"], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(out.contains("Logs since 1h: UNAVAILABLE"), "{out}");
    assert!(out.contains("Cannot connect to the Docker daemon"), "{out}");
    assert!(report_line(&out, APP).contains("grafana: healthy"), "{out}");
    assert!(out.contains("reachable, version 2.14.0"), "{out}");
}
