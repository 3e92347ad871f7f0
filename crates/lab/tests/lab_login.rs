//! A real OIDC login through the whole lab: the lab's user signs in to the oauth2-gateway app
//! with the client id and secret its deployed `.env` in CT 119 holds, as oauth2-proxy would.

use lab::login::LoginOutcome;
use lab::stack::{Lab, LabOptions};

/// The first app's callback (n8n's), one the lab's client allows as the catalog says.
fn callback() -> String {
    lab::catalog::app_callback_urls()[0].clone()
}

fn lab() -> (tempfile::TempDir, Lab) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::up(&dir.path().join("lab"), &LabOptions::default()).expect("lab up");
    (dir, lab)
}

#[test]
fn a_healthy_lab_login_succeeds_and_an_unregistered_callback_fails_at_authorize() {
    let (_dir, lab) = lab();
    let out = lab.login_as_app(&callback()).unwrap();
    let LoginOutcome::Tokens(t) = &out else {
        panic!("the lab's login failed: {out:?}")
    };
    assert_eq!(t.token_type, "bearer");
    assert!(t.has_id_token);

    let out = lab
        .login_as_app("https://n8n.example.org/oauth2/other")
        .unwrap();
    let LoginOutcome::AuthorizeFailed(a) = out else {
        panic!("expected an authorize failure: {out:?}")
    };
    assert_eq!(a.status, 302);
    assert_eq!(a.location.as_deref(), Some("/interaction/error"));
    assert!(a
        .hint
        .unwrap()
        .contains("does not match any of the OAuth 2.0 Client's pre-registered redirect urls"));
}

#[test]
fn a_wrong_deployed_secret_fails_at_the_token_step() {
    let (_dir, lab) = lab();
    let svc = lab::catalog::services()
        .into_iter()
        .find(|s| s.name == "oauth2-gateway")
        .unwrap();
    let mut values = lab.vault_values().unwrap();
    values.insert(
        "pocketid_client_secret".into(),
        "not-the-secret-pocketid-knows".into(),
    );
    lab.containers.render_service(&svc, &values).unwrap();
    let out = lab.login_as_app(&callback()).unwrap();
    let LoginOutcome::TokenFailed(t) = out else {
        panic!("expected a token failure: {out:?}")
    };
    assert_eq!((t.status, t.error.as_str()), (401, "invalid_client"));
    // PocketID still recorded the authorization: the failure is after the authorize step.
    let events = lab.pocketid.audit_events();
    assert!(events.iter().any(|(e, _)| e == "NEW_CLIENT_AUTHORIZATION"));
}
