//! The PocketID emulator per version it claims (contracts pocketid-api.md §2–§3 and
//! pocketid-logs-and-access.md §1.2, §2, checked against PocketID's source v2.12.0–v2.14.0):
//! error bodies, duplicate and unknown clients, the log records of 2.12 (split over two
//! physical lines in text mode) and of 2.13+, the token error's stack form (text) and string
//! form (JSON), and the 2.14 details of secrets, unknown API routes, `federatedIdentities` and
//! the audit log's order; and 2.2, before `/api/version/current` existed.

mod common;

use common::{create_app_and_public_clients, json, req};
use httpx::{Body, Client, Retry};
use lab::pocketid::{Level, PocketId, PocketIdOptions};
use serde_json::{json, Value};

const VERSIONS: [&str; 3] = ["2.12.0", "2.13.0", "2.14.0"];

fn start(version: &str, log_json: bool) -> (PocketId, Client) {
    common::start_with(PocketIdOptions {
        version: version.into(),
        log_json,
        log_level: Level::Info,
        ..Default::default()
    })
}

#[test]
fn error_bodies_duplicates_and_unknown_clients_per_version() {
    for v in VERSIONS {
        let (pid, c) = start(v, false);
        let k = pid.admin_key();
        let nf = req(&c, k, "GET", "/api/oidc/clients/nope", None);
        assert_eq!(nf.status, 404, "{v}");
        let body = json(&nf);
        let new_client =
            json!({"id": "app", "name": "App", "callbackURLs": ["https://app.example.org/cb"]});
        assert_eq!(
            req(&c, k, "POST", "/api/oidc/clients", Some(new_client.clone())).status,
            201
        );
        let dup = req(&c, k, "POST", "/api/oidc/clients", Some(new_client));
        let del = req(&c, k, "DELETE", "/api/oidc/clients/nope", None);
        if v == "2.12.0" {
            assert_eq!(body, json!({"error": "Record not found"}), "{v}");
            assert_eq!(dup.status, 400, "{v}");
            assert_eq!(json(&dup), json!({"error": "Client ID already in use"}));
            assert_eq!(del.status, 204, "{v}");
        } else {
            assert_eq!(body["code"], json!("not_found"), "{v}");
            assert!(body["request_id"].is_string(), "{v}");
            assert_eq!(dup.status, 409, "{v}");
            assert_eq!(json(&dup)["code"], json!("client_id_already_exists"));
            assert_eq!(del.status, 404, "{v}");
        }
        // gin's NoRoute for /api/ (frontend/frontend_included.go) in every version.
        let r = req(&c, k, "GET", "/api/no-such-route", None);
        assert_eq!(
            (r.status, json(&r)),
            (404, json!({"error": "API endpoint not found"})),
            "{v}"
        );
    }
}

#[test]
fn request_records_per_version_and_format() {
    for v in VERSIONS {
        for log_json in [false, true] {
            let (pid, c) = start(v, log_json);
            req(&c, "not-a-key", "GET", "/api/users/me", None);
            let lines = pid.log_lines();
            let last = lines.last().unwrap();
            match (v, log_json) {
                ("2.12.0", false) => {
                    let n = lines.len();
                    assert!(n >= 2, "{lines:?}");
                    assert!(
                        lines[n - 2].ends_with(
                            " WRN Request with errors: Error #01: You are not signed in"
                        ),
                        "{lines:?}"
                    );
                    assert!(last.starts_with(" app=pocket-id version=2.12.0 status=401 method=GET path=/api/users/me"), "{last}");
                    assert!(
                        !last.contains("request_id") && !last.contains("error_code"),
                        "{last}"
                    );
                }
                ("2.12.0", true) => {
                    let l: Value = serde_json::from_str(last).unwrap();
                    assert_eq!(l["level"], json!("WARN"));
                    assert_eq!(
                        l["msg"],
                        json!("Request with errors: Error #01: You are not signed in\n")
                    );
                    assert!(
                        l.get("request_id").is_none() && l.get("error_code").is_none(),
                        "{l}"
                    );
                    assert_eq!(l["status"], json!(401));
                }
                (_, false) => {
                    assert!(
                        last.contains(" INF HTTP request completed app=pocket-id"),
                        "{last}"
                    );
                    assert!(
                        last.contains(" error_code=not_signed_in status=401"),
                        "{last}"
                    );
                }
                (_, true) => {
                    let l: Value = serde_json::from_str(last).unwrap();
                    assert_eq!(
                        (l["level"].clone(), l["error_code"].clone()),
                        (json!("INFO"), json!("not_signed_in"))
                    );
                }
            }
        }
    }
}

#[test]
fn token_errors_are_a_stack_in_text_and_a_string_in_json() {
    for v in VERSIONS {
        for log_json in [false, true] {
            let (pid, c) = start(v, log_json);
            let r = c
                .send(
                    "POST",
                    "/api/oidc/token",
                    &[],
                    Body::Raw {
                        content_type: "application/x-www-form-urlencoded",
                        bytes: b"grant_type=authorization_code&code=x&client_id=nope&client_secret=wrong-secret-0123456789".to_vec(),
                    },
                    Retry::Never,
                )
                .unwrap();
            assert_eq!(r.status, 401, "{v}");
            let lines = pid.log_lines();
            let line = lines
                .iter()
                .find(|l| l.contains("Failed to create access request"))
                .unwrap_or_else(|| panic!("{lines:?}"));
            if log_json {
                let l: Value = serde_json::from_str(line).unwrap();
                assert_eq!(l["error"], json!("invalid_client"), "{line}");
            } else {
                assert!(
                    line.contains(
                        r#" error="invalid_client\ngithub.com/ory/x/errorsx.WithStack\n\t"#
                    ),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn secrets_federated_identities_and_audit_order_of_2_14() {
    let (pid, c) = start("2.14.0", false);
    let k = pid.admin_key();
    create_app_and_public_clients(&c, k);
    let client = json(&req(&c, k, "GET", "/api/oidc/clients/app", None));
    assert!(
        client["credentials"].get("federatedIdentities").is_none(),
        "{client}"
    );
    assert_eq!(client["credentials"]["secrets"], Value::Null, "{client}");
    let past = req(
        &c,
        k,
        "POST",
        "/api/oidc/clients/app/secrets",
        Some(json!({"expiresAt": "2001-01-01T00:00:00Z"})),
    );
    assert_eq!(past.status, 400);
    let b = json(&past);
    assert_eq!(
        (b["code"].clone(), b["error"].clone()),
        (
            json!("validation_failed"),
            json!("The expiration date of a client secret must be in the future")
        )
    );
    let public = json(&req(&c, k, "POST", "/api/oidc/clients/pub/secrets", None));
    assert_eq!(public["code"], json!("validation_failed"), "{public}");
    for _ in 0..20 {
        assert_eq!(
            req(&c, k, "POST", "/api/oidc/clients/app/secrets", None).status,
            201
        );
    }
    let cap = json(&req(&c, k, "POST", "/api/oidc/clients/app/secrets", None));
    assert_eq!(cap["code"], json!("validation_failed"), "{cap}");
    assert_eq!(
        cap["error"],
        json!("A client cannot have more than 20 secrets")
    );
    // Entries written out of date order come back by createdAt.
    let admin = json(&req(&c, k, "GET", "/api/users/me", None))["id"]
        .as_str()
        .unwrap()
        .to_string();
    pid.add_audit_event("SIGN_IN", &admin, &[], 60);
    pid.add_audit_event("SIGN_IN", &admin, &[], 3600);
    pid.add_audit_event("SIGN_IN", &admin, &[], 600);
    let page = json(&req(
        &c,
        k,
        "GET",
        "/api/audit-logs/all?sort%5Bcolumn%5D=createdAt&sort%5Bdirection%5D=desc",
        None,
    ));
    let times: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["createdAt"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(times, sorted);
}

/// `/api/version/current` came in 2.3 (`controller/version_controller.go`); before it the route
/// is unknown: 404 `{"error":"API endpoint not found"}` (`frontend_included.go`, `NoRoute`).
#[test]
fn the_version_route_exists_from_2_3_on() {
    for v in ["2.2.0", "2.12.0", "2.13.0", "2.14.0"] {
        let (pid, c) = start(v, false);
        let r = req(&c, pid.admin_key(), "GET", "/api/version/current", None);
        if v == "2.2.0" {
            assert_eq!(r.status, 404, "{v}");
            assert_eq!(json(&r), json!({"error": "API endpoint not found"}), "{v}");
        } else {
            assert_eq!(r.status, 200, "{v}");
            assert_eq!(json(&r), json!({"currentVersion": v}), "{v}");
        }
    }
}
