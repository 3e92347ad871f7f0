//! `pocketid_logs` (the real binary, module mode) against the lab's Loki emulator: paging past
//! `batch_size` across equal-timestamp boundaries and several streams, the tenant header, basic
//! and bearer authentication as the server received them, Loki's plain-text errors, the
//! classification and redaction of a constructed log, and the LOG_LEVEL warnings.

mod common;

use common::{merged, now_ns, run, text_counts, text_lines, SECRETS};
use lab::loki::{Loki, LokiOptions};
use serde_json::{json, Value};

const LABELS: [(&str, &str); 2] = [("job", "auth"), ("container", "pocketid")];

fn loki() -> Loki {
    Loki::start(LokiOptions::default()).unwrap()
}

fn args(url: &str, extra: Value) -> Value {
    merged(
        json!({"source": "loki", "loki_url": url, "since": "1h"}),
        extra,
    )
}

fn push_text(l: &Loki, base: u128) {
    for (ms, line) in text_lines() {
        l.push(&LABELS, base + ms as u128 * 1_000_000, &line);
    }
}

fn query_requests(l: &Loki) -> usize {
    l.requests()
        .iter()
        .filter(|r| r.path.starts_with("/loki/api/v1/query_range"))
        .count()
}

#[test]
fn a_constructed_log_is_classified_counted_and_redacted() {
    let l = loki();
    push_text(&l, now_ns() - 600 * 1_000_000_000);
    // Another service's lines are not PocketID's.
    l.push(
        &[("job", "auth"), ("container", "other")],
        now_ns() - 1_000_000_000,
        "Aug 20 10:11:12 ERR Failed to create access request app=x error=invalid_grant",
    );
    let r = run(args(l.url(), json!({"_ansible_check_mode": true})));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["source"], json!("loki"));
    assert_eq!(r.json["fallback"], Value::Null);
    assert_eq!(r.json["lines"], json!(text_lines().len()));
    assert_eq!(r.json["counts"], text_counts(), "{}", r.json);
    assert_eq!(r.json["pocketid_version"], json!("2.14.0"));
    assert_eq!(
        r.json["by_client"]["grafana"],
        json!({"redirect_uri_not_allowed": 1, "user_disabled": 1})
    );
    assert_eq!(r.json["by_client"]["n8n"], json!({"access_denied": 1}));
    assert_eq!(
        r.json["by_redirect_uri"]["https://grafana.example.org/login/generic_oauth"],
        json!({"redirect_uri_not_allowed": 1})
    );
    let events = r.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 10);
    let token = &events[0];
    assert_eq!(token["kind"], json!("invalid_client"));
    assert_eq!(token["status"], json!(401));
    assert_eq!(token["path"], json!("/api/oidc/token"));
    assert_eq!(token["request_id"], json!("0c8e1111"));
    let redirect = &events[1];
    assert!(
        redirect["hint"]
            .as_str()
            .unwrap()
            .contains("pre-registered redirect urls"),
        "{redirect}"
    );
    assert_eq!(redirect["error"], json!("invalid_request"));
    let code = &events[3];
    assert_eq!(code["kind"], json!("login_code_refused"));
    assert_eq!(code["path"], json!("/api/one-time-access-token/[redacted]"));
    assert_eq!(code["error_code"], json!("token_invalid_or_expired"));
    let server = events.iter().find(|e| e["kind"] == "server_error").unwrap();
    assert_eq!(server["error"], json!("database is locked"));
    assert_eq!(server["status"], json!(500));
    assert!(r.json["first"].as_str().unwrap() < r.json["last"].as_str().unwrap());
    let window = &r.json["window"];
    assert!(
        window["start"].as_str().unwrap() < window["end"].as_str().unwrap(),
        "{window}"
    );
    for s in SECRETS {
        assert!(!r.output().contains(s), "{s} is in the output");
    }
    // max_events keeps the newest, newest last.
    let r = run(args(l.url(), json!({"max_events": 2})));
    let events = r.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["kind"], json!("server_error"));
}

#[test]
fn paging_beyond_batch_size_keeps_every_line_at_equal_timestamps() {
    let l = loki();
    let base = now_ns() - 300 * 1_000_000_000;
    // 7 bursts of 3 lines at one nanosecond each, split over two streams (stdout and stderr
    // labels), so that page boundaries (4 lines) fall inside bursts; one line text repeats in
    // both streams.
    let mut n = 0;
    for burst in 0..7u128 {
        for i in 0..3 {
            let stream = if i % 2 == 0 { "stdout" } else { "stderr" };
            let labels = [LABELS[0], LABELS[1], ("stream", stream)];
            let text = if i < 2 {
                "Aug 20 10:12:01 ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_grant".to_string()
            } else {
                format!(
                    "Aug 20 10:12:01 INF Pocket ID is starting app=pocket-id version=2.14.0 n={n}"
                )
            };
            l.push(&labels, base + burst * 1000, &text);
            n += 1;
        }
    }
    let r = run(args(l.url(), json!({"batch_size": 4})));
    assert!(!r.failed(), "{}", r.json);
    assert!(r.json.get("warnings").is_none(), "{}", r.json);
    assert_eq!(r.json["lines"], json!(21), "{}", r.json);
    assert_eq!(r.json["counts"], json!({"invalid_grant": 14}));
    assert!(query_requests(&l) >= 7, "{} pages", query_requests(&l));
    // One nanosecond holding more lines than a page: paging stops and says so.
    let l2 = loki();
    for i in 0..5 {
        l2.push(
            &LABELS,
            base,
            &format!("Aug 20 10:12:01 INF x app=pocket-id n={i}"),
        );
    }
    let r = run(args(l2.url(), json!({"batch_size": 2})));
    assert!(!r.failed(), "{}", r.json);
    let w = r.json["warnings"].to_string();
    assert!(w.contains("Raise batch_size"), "{w}");
}

#[test]
fn many_pages_of_large_unique_lines_stop_at_max_bytes_with_a_warning() {
    let l = loki();
    let base = now_ns() - 600 * 1_000_000_000;
    let filler = "x".repeat(2048);
    for i in 0..400u128 {
        l.push(
            &LABELS,
            base + i * 1_000_000,
            &format!("Aug 20 10:12:01 INF HTTP request completed app=pocket-id version=2.14.0 status=200 method=GET path=/api/users/me n={i} user_agent={filler}"),
        );
    }
    let r = run(args(l.url(), json!({"batch_size": 20, "max_bytes": 65536})));
    assert!(!r.failed(), "{}", r.json);
    let w = r.json["warnings"].to_string();
    assert!(w.contains("max_bytes"), "{w}");
    let bytes = r.json["bytes"].as_u64().unwrap();
    assert!(bytes <= 65536 && bytes > 60_000, "{bytes}");
    assert!(
        r.json["lines"].as_u64().unwrap() < 40,
        "{}",
        r.json["lines"]
    );
    // Reading stopped: the pages after the bound were never asked for.
    assert!(query_requests(&l) <= 2, "{} pages", query_requests(&l));
}

#[test]
fn tenant_header_and_loki_errors_in_plain_text() {
    let l = Loki::start(LokiOptions {
        tenant: Some("homelab".into()),
        max_entries: 100,
    })
    .unwrap();
    push_text(&l, now_ns() - 60 * 1_000_000_000);
    let r = run(args(l.url(), json!({})));
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("HTTP 401") && m.contains("no org id") && m.contains("loki_tenant"),
        "{m}"
    );
    let r = run(args(
        l.url(),
        json!({"loki_tenant": "homelab", "batch_size": 50}),
    ));
    assert!(!r.failed(), "{}", r.json);
    assert_eq!(r.json["lines"], json!(text_lines().len()));
    // Another tenant sees nothing: an empty log, said as such.
    let r = run(args(
        l.url(),
        json!({"loki_tenant": "other", "batch_size": 50}),
    ));
    assert_eq!(r.json["lines"], json!(0));
    assert!(
        r.json["warnings"]
            .to_string()
            .contains("no line in this window"),
        "{}",
        r.json
    );
    // A 400 is shown as Loki wrote it, and never retried.
    let before = query_requests(&l);
    let r = run(args(
        l.url(),
        json!({"loki_tenant": "homelab", "batch_size": 1000, "retries": 3}),
    ));
    let m = r.msg();
    assert!(
        m.contains("HTTP 400") && m.contains("max entries limit per query exceeded"),
        "{m}"
    );
    assert_eq!(query_requests(&l) - before, 1);
}

#[test]
fn basic_and_bearer_credentials_reach_loki_and_nothing_else() {
    let l = loki();
    push_text(&l, now_ns() - 60 * 1_000_000_000);
    let gate = testkit::faults::Gate::start(l.url(), "NEVER-HELD ");
    let r = run(args(
        &gate.url,
        json!({"loki_token": "bearer-t0ken-canary"}),
    ));
    assert!(!r.failed(), "{}", r.json);
    let r2 = run(args(
        &gate.url,
        json!({"loki_username": "12345", "loki_password": "basic-pw-canary"}),
    ));
    assert!(!r2.failed(), "{}", r2.json);
    let heads = gate.heads();
    let query_heads: Vec<&String> = heads
        .iter()
        .filter(|h| h.contains("/loki/api/v1/query_range"))
        .collect();
    assert_eq!(query_heads.len(), 2);
    assert!(
        query_heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer bearer-t0ken-canary"),
        "{}",
        query_heads[0]
    );
    // base64("12345:basic-pw-canary")
    assert!(
        query_heads[1].contains("Basic MTIzNDU6YmFzaWMtcHctY2FuYXJ5"),
        "{}",
        query_heads[1]
    );
    for out in [r.output(), r2.output()] {
        assert!(!out.contains("canary") && !out.contains("MTIzNDU6YmFzaWMtcHctY2FuYXJ5"));
    }
    let r = run(args(
        &gate.url,
        json!({"loki_token": "t", "loki_password": "p", "loki_username": "u"}),
    ));
    assert!(r.msg().contains("not both"), "{}", r.msg());
}

#[test]
fn json_log_and_a_log_that_hides_4xx() {
    let l = loki();
    let base = now_ns() - 60 * 1_000_000_000;
    l.push(&LABELS, base, r#"{"time":"2026-08-20T10:12:01.123456789Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"2.14.0","error":{"error":"invalid_grant","error_description":"The PKCE code challenge did not match the code verifier."}}"#);
    l.push(&LABELS, base + 1, r#"{"time":"2026-08-20T10:12:01.124Z","level":"INFO","msg":"HTTP request completed","app":"pocket-id","version":"2.14.0","request_id":"f1","status":400,"method":"POST","path":"/api/oidc/token","query":"","latency":2900000}"#);
    let r = run(args(l.url(), json!({})));
    assert_eq!(r.json["counts"], json!({"invalid_grant": 1}), "{}", r.json);
    let e = &r.json["events"][0];
    assert_eq!(e["status"], json!(400));
    assert!(e["hint"].as_str().unwrap().contains("PKCE"), "{e}");
    assert!(r.json.get("warnings").is_none(), "{}", r.json);
    // LOG_LEVEL=warn: only WRN/ERR lines, so no 401/403/404 can be seen.
    let l = loki();
    l.push(&LABELS, base, "Aug 20 10:12:01 ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client");
    l.push(&LABELS, base + 5, "Aug 20 10:12:02 WRN Rate limiter unavailable, allowing request app=pocket-id version=2.14.0 policy=x");
    let r = run(args(l.url(), json!({})));
    let w = r.json["warnings"].to_string();
    assert!(w.contains("LOG_LEVEL=warn"), "{w}");
    assert_eq!(r.json["counts"], json!({"invalid_client": 1}));
}

#[test]
fn bad_options_are_refused_before_any_request() {
    let l = loki();
    for (extra, want) in [
        (
            json!({"loki_selector": r#"{container="pocketid"} |= "x""#}),
            "not a LogQL stream selector",
        ),
        (json!({"since": "7days"}), "neither a duration"),
        (json!({"since": "1h", "until": "2h"}), "window is empty"),
        (json!({"batch_size": 6000}), "batch_size"),
    ] {
        let r = run(args(l.url(), extra));
        assert!(r.msg().contains(want), "{want}: {}", r.msg());
    }
    let r = run(json!({"source": "loki"}));
    assert!(r.msg().contains("loki_url"), "{}", r.msg());
    assert_eq!(query_requests(&l), 0);
}

#[test]
fn auto_without_a_fallback_says_what_to_set() {
    let l = loki();
    l.set_ready(false);
    let r = run(json!({"loki_url": l.url()}));
    assert!(r.failed());
    let m = r.msg();
    assert!(m.contains("not ready") && m.contains("ssh_host"), "{m}");
    drop(l);
}
