//! `audit: true` against the PocketID emulator: the latest client authorization per client from
//! `GET /api/audit-logs/all`, sorted `createdAt desc` and read page by page; a refused key is a
//! warning beside the log results, and audit without a key is refused before anything is read.

mod common;

use common::{merged, now_ns, run};
use lab::loki::{Loki, LokiOptions};
use lab::pocketid::{PocketId, PocketIdOptions};
use serde_json::json;

#[test]
fn latest_authorization_per_client_across_pages() {
    let pid = PocketId::start(PocketIdOptions::default()).unwrap();
    let alice = pid.add_user("alice", None, false);
    let bob = pid.add_user("bob", None, false);
    // Oldest first, as they happen; more than one page of 100.
    for i in 0..120 {
        pid.add_audit_event("SIGN_IN", &alice, &[], 7200 - i);
    }
    pid.add_audit_event(
        "NEW_CLIENT_AUTHORIZATION",
        &alice,
        &[("clientName", "grafana")],
        5000,
    );
    for i in 0..105 {
        pid.add_audit_event(
            "CLIENT_AUTHORIZATION",
            &alice,
            &[("clientName", "n8n")],
            4000 - i,
        );
    }
    pid.add_audit_event(
        "CLIENT_AUTHORIZATION",
        &bob,
        &[("clientName", "grafana")],
        60,
    );
    let l = Loki::start(LokiOptions::default()).unwrap();
    l.push(&[("job", "auth"), ("container", "pocketid")], now_ns() - 1_000_000_000, "Aug 20 10:12:01 ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client");
    let base = json!({"source": "loki", "loki_url": l.url(), "pocketid_url": pid.url(),
                      "api_key": pid.admin_key(), "audit": true});
    let r = run(base.clone());
    assert!(!r.failed(), "{}", r.json);
    let a = &r.json["audit"];
    assert_eq!(a.as_object().unwrap().len(), 2, "{a}");
    assert_eq!(a["grafana"]["username"], json!("bob"));
    assert_eq!(a["grafana"]["event"], json!("CLIENT_AUTHORIZATION"));
    assert_eq!(a["n8n"]["username"], json!("alice"));
    assert!(a["n8n"]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.json["counts"], json!({"invalid_client": 1}));
    // One listing of both events (the repeatable filter): 107 entries, two pages of 100.
    let audit_reqs = pid.count_requests("GET", "/api/audit-logs/all");
    assert_eq!(audit_reqs, 2, "{audit_reqs} requests");
    assert!(pid.requests().iter().any(|q| q.path.contains(
        "filters[event][0]=CLIENT_AUTHORIZATION&filters[event][1]=NEW_CLIENT_AUTHORIZATION"
    )));
    assert!(!r.output().contains(pid.admin_key()));

    // A refused key: the log results stand, the audit is null with a warning.
    let r = run(merged(
        base.clone(),
        json!({"api_key": "revoked-key-0123456789"}),
    ));
    assert!(!r.failed(), "{}", r.json);
    assert!(r.json["audit"].is_null());
    assert!(r.json["warnings"].to_string().contains("401"), "{}", r.json);
    assert!(!r.output().contains("revoked-key-0123456789"));
    // audit without a key: refused before anything is read.
    let before = l.requests().len();
    let r = run(merged(base, json!({"api_key": null})));
    assert!(r.msg().contains("audit: true needs"), "{}", r.msg());
    assert_eq!(l.requests().len(), before);
}
