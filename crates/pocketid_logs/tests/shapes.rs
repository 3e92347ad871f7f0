//! The reader against lines in every mode PocketID writes - text (tint) and JSON (slog), each
//! as 2.12 and before, 2.13 and 2.14 write them - built from the shapes of the contract
//! (pocketid-logs-and-access §1.2, §1.4, §2), not from the lab's emulator: the token error's
//! stack trace in text mode and its plain string in JSON mode, the two physical lines of a
//! ≤2.12 `Request with errors` record, and the logout callback's WRN line with its 302.

use pocketid_logs::docker::split_lines;
use pocketid_logs::summary::{summarize, RawLine, Summary};
use serde_json::{json, Value};

const UA: &str =
    r#"user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0""#;

fn lines(texts: &[String]) -> Vec<RawLine> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| RawLine {
            ts: 1_000_000_000_000 + i as i128 * 1_000_000,
            stream: 0,
            line: t.clone(),
        })
        .collect()
}

fn counts(s: &Summary) -> Value {
    s.fields(100)["counts"].clone()
}

fn events(s: &Summary) -> Vec<Value> {
    s.fields(100)["events"].as_array().unwrap().clone()
}

/// The stack frames tint writes after a token error (`%+v` of ory/x `errorsx.WithStack`).
const STACK: &str = r"\ngithub.com/ory/x/errorsx.WithStack\n\tgithub.com/ory/x@v0.0.729/errorsx/errors.go:43\ngithub.com/ory/fosite.(*Fosite).NewAccessRequest\n\tgithub.com/pocket-id/fosite@v1.3.0/access_request_handler.go:92\ngithub.com/pocket-id/pocket-id/backend/internal/oidc.(*tokenHandler).token\n\t/app/backend/internal/oidc/token_handler.go:41";

fn text_token_failure(version: &str, error: &str) -> Vec<String> {
    vec![
        format!(
            r#"Aug 20 10:12:01 ERR Failed to create access request app=pocket-id version={version} error="{error}{STACK}""#
        ),
        format!(
            r#"Aug 20 10:12:01 INF HTTP request completed app=pocket-id version={version} request_id=0c8e status=401 method=POST path=/api/oidc/token query="" route=/api/oidc/token ip=172.18.0.7 latency=2.9ms referer="" user_agent=Go-http-client/1.1 body_size=156"#
        ),
    ]
}

#[test]
fn text_token_errors_with_a_stack_trace_are_classified_on_their_first_line() {
    for version in ["2.13.0", "2.14.0"] {
        let mut t = text_token_failure(version, "invalid_client");
        t.extend(text_token_failure(version, "invalid_grant"));
        let s = summarize(&lines(&t));
        assert_eq!(counts(&s), json!({"invalid_client": 1, "invalid_grant": 1}));
        let e = events(&s);
        assert_eq!(e[0]["error"], json!("invalid_client"));
        assert_eq!(e[0]["status"], json!(401));
        let all = serde_json::to_string(&e).unwrap();
        assert!(
            !all.contains("github.com") && !all.contains(".go:"),
            "{all}"
        );
    }
}

#[test]
fn json_token_errors_as_strings_and_as_objects() {
    let req = |v: &str| {
        format!(
            r#"{{"time":"2026-08-20T10:12:01.2Z","level":"INFO","msg":"HTTP request completed","app":"pocket-id","version":"{v}","request_id":"0c8e","status":401,"method":"POST","path":"/api/oidc/token","query":"","route":"/api/oidc/token","ip":"172.18.0.7","latency":2900000,"referer":"","user_agent":"Go-http-client/1.1","body_size":156}}"#
        )
    };
    for version in ["2.13.0", "2.14.0"] {
        let t = vec![
            format!(
                r#"{{"time":"2026-08-20T10:12:01.1Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"{version}","error":"invalid_client"}}"#
            ),
            req(version),
            format!(
                r#"{{"time":"2026-08-20T10:12:02.1Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"{version}","error":{{"error":"invalid_grant","error_description":"The provided authorization grant is invalid."}}}}"#
            ),
            req(version),
        ];
        let s = summarize(&lines(&t));
        assert_eq!(counts(&s), json!({"invalid_client": 1, "invalid_grant": 1}));
        assert_eq!(events(&s)[0]["status"], json!(401));
    }
}

fn legacy_text(version: &str) -> Vec<String> {
    vec![
        "Aug 20 10:11:12 WRN Request with errors: Error #01: You are not signed in".into(),
        format!(r#" app=pocket-id version={version} status=401 method=GET path=/api/users/me query="" ip=192.168.1.20 latency=1.1ms {UA} body_size=40"#),
        "Aug 20 10:11:13 INF Request app=pocket-id version=2.12.0 status=200 method=GET path=/api/users/me query=\"\" ip=192.168.1.20".replace("2.12.0", version),
        "Aug 20 10:11:14 WRN Request with errors: Error #01: Too many requests".into(),
        format!(r#" app=pocket-id version={version} status=429 method=POST path=/api/one-time-access-token/Xk7pQ2 query="" ip=192.168.1.20 latency=1ms {UA} body_size=40"#),
    ]
}

#[test]
fn legacy_text_records_split_over_two_lines_are_joined() {
    let s = summarize(&lines(&legacy_text("2.12.0")));
    assert_eq!(s.lines, 3, "a split record counts once");
    assert_eq!(s.unparsed, 0);
    assert_eq!(counts(&s), json!({"not_signed_in": 1, "rate_limited": 1}));
    let e = events(&s);
    assert_eq!(e[0]["error"], json!("You are not signed in"));
    assert_eq!(e[1]["path"], json!("/api/one-time-access-token/[redacted]"));
    assert!(
        s.warnings.iter().any(|w| w.contains("before 2.13")),
        "{:?}",
        s.warnings
    );
    // The same from docker logs --timestamps: each physical line has its own prefix.
    let out: String = legacy_text("2.11.0")
        .iter()
        .enumerate()
        .map(|(i, l)| format!("2026-08-20T10:11:1{i}.000000000Z {l}\n"))
        .collect();
    let s = summarize(&split_lines(out.as_bytes(), false));
    assert_eq!(counts(&s), json!({"not_signed_in": 1, "rate_limited": 1}));
}

#[test]
fn a_lone_continuation_or_head_is_never_fatal() {
    let t: Vec<String> = vec![
        " app=pocket-id version=2.12.0 status=401 method=GET path=/x".into(),
        "Aug 20 10:11:14 WRN Request with errors: Error #01: Too many requests".into(),
    ];
    let s = summarize(&lines(&t));
    assert_eq!(s.lines, 2);
    assert_eq!(s.unparsed, 1);
    assert!(s.warnings.iter().any(|w| w.contains("unparsed")));
}

#[test]
fn legacy_json_records_are_one_line_with_a_trailing_newline_in_msg() {
    let t = vec![
        r#"{"time":"2026-08-20T10:11:12Z","level":"WARN","msg":"Request with errors: Error #01: You are not signed in\n","app":"pocket-id","version":"2.12.0","status":401,"method":"GET","path":"/api/users/me","query":"","ip":"192.168.1.20","latency":1100000,"user_agent":"curl/8.0","body_size":40}"#.to_string(),
        r#"{"time":"2026-08-20T10:11:13Z","level":"WARN","msg":"Request with errors: Error #01: user is disabled\n","app":"pocket-id","version":"2.12.0","status":403,"method":"GET","path":"/authorize","query":"client_id=grafana&state=st4te-s3cret","ip":"192.168.1.20"}"#.to_string(),
    ];
    let s = summarize(&lines(&t));
    assert_eq!(
        counts(&s),
        json!({"api_key_refused": 1, "user_disabled": 1})
    );
    assert!(s.warnings.iter().any(|w| w.contains("before 2.13")));
    assert!(!serde_json::to_string(&events(&s))
        .unwrap()
        .contains("st4te"));
}

#[test]
fn error_codes_of_2_13_and_later_in_both_formats() {
    for v in ["2.13.0", "2.14.0"] {
        let t = vec![
            format!(
                r#"Aug 20 10:14:00 INF HTTP request completed app=pocket-id version={v} request_id=c1 error_code=not_signed_in status=401 method=GET path=/api/oidc/clients query="" route=/api/oidc/clients ip=10.0.0.5 latency=1ms referer="" user_agent=homelab-sso/0.1.0 body_size=80"#
            ),
            format!(
                r#"{{"time":"2026-08-20T10:14:01Z","level":"WARN","msg":"HTTP request completed","app":"pocket-id","version":"{v}","request_id":"c2","error_code":"rate_limited","status":429,"method":"POST","path":"/api/one-time-access-token/Xk7pQ2","query":"","ip":"192.168.1.20"}}"#
            ),
        ];
        let s = summarize(&lines(&t));
        assert_eq!(counts(&s), json!({"api_key_refused": 1, "rate_limited": 1}));
        assert!(!s.warnings.iter().any(|w| w.contains("before 2.13")));
    }
}

/// The logout callback's WRN record and its request record, as PocketID writes them (and the
/// lab's emulator, `crates/lab/tests/pocketid_oidc.rs`): the error's text is
/// `common/errors.go`'s in 2.12 and `apperror`'s since 2.13; 2.12's request record is
/// `Request`, without `request_id`.
fn logout_callback_lines(v: &str, json_mode: bool) -> Vec<String> {
    const WARNING: &str =
        "Error getting logout callback URL, the user has to confirm the logout manually";
    let old = v == "2.12.0";
    let error = if old {
        "invalid callback URL, it might be necessary for an admin to fix this"
    } else {
        "Callback URL is invalid and may need to be corrected by an administrator"
    };
    let query = "id_token_hint=eyJh.eyJz.c2ln&post_logout_redirect_uri=https%3A%2F%2Fevil.example.org%2F&state=st4te-s3cret";
    let (msg, rid_json, rid_text) = if old {
        ("Request", String::new(), String::new())
    } else {
        (
            "HTTP request completed",
            r#""request_id":"e1","#.to_string(),
            "request_id=e1 ".to_string(),
        )
    };
    if json_mode {
        vec![
            format!(
                r#"{{"time":"2026-08-20T10:15:00Z","level":"WARN","msg":"{WARNING}","app":"pocket-id","version":"{v}","error":"{error}"}}"#
            ),
            format!(
                r#"{{"time":"2026-08-20T10:15:00.1Z","level":"INFO","msg":"{msg}","app":"pocket-id","version":"{v}",{rid_json}"status":302,"method":"GET","path":"/api/oidc/end-session","query":"{query}","route":"/api/oidc/end-session","ip":"192.168.1.20","latency":22415,"referer":"","user_agent":"Mozilla/5.0","body_size":-1}}"#
            ),
        ]
    } else {
        vec![
            format!(r#"Aug 20 10:15:00 WRN {WARNING} app=pocket-id version={v} error="{error}""#),
            format!(
                r#"Aug 20 10:15:00 INF {msg} app=pocket-id version={v} {rid_text}status=302 method=GET path=/api/oidc/end-session query="{query}" route=/api/oidc/end-session ip=192.168.1.20 latency=24.887µs referer="" {UA} body_size=-1"#
            ),
        ]
    }
}

#[test]
fn an_unaccepted_logout_callback_is_a_warn_line_and_a_302() {
    for v in ["2.12.0", "2.13.0", "2.14.0"] {
        for json_mode in [false, true] {
            let s = summarize(&lines(&logout_callback_lines(v, json_mode)));
            assert_eq!(
                counts(&s),
                json!({"logout_callback_invalid": 1}),
                "{v} {json_mode}"
            );
            let e = &events(&s)[0];
            assert_eq!(e["status"], json!(302), "{v} {json_mode}");
            assert_eq!(e["path"], json!("/api/oidc/end-session"));
            let error = e["error"].as_str().unwrap().to_lowercase();
            assert!(error.contains("callback url"), "{v} {json_mode}: {e}");
            let shown = serde_json::to_string(&s.fields(100)).unwrap();
            assert!(!shown.contains("st4te-s3cret"), "{v} {json_mode}: {shown}");
        }
    }
}
