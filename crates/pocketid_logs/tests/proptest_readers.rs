//! Property tests of every reader of remote text in `pocketid_logs`: log lines (parser,
//! classifier, summary, redactor), `docker logs` output, Loki's `query_range` bodies and
//! PocketID's audit-log entries. For arbitrary bytes and for mutations of real-shaped lines:
//! nothing panics, nothing returned holds a control character, and nothing returned matches a
//! one-time code, `code`, `state` or `nonce` pattern.
//!
//! Short by default (256 cases per property). A long run:
//! `PROPTEST_CASES=20000 cargo test -p pocketid_logs --test proptest_readers`.

use pocketid_logs::summary::{summarize, RawLine};
use pocketid_logs::{audit, docker, loki, parse, redact};
use proptest::prelude::*;
use regex::Regex;
use serde_json::{json, Value};

/// Values planted where PocketID logs secrets.
const PLANTED: [&str; 4] = ["Xk7pQ2", "Zz9Yy8Ww7Vv6", "St4teS3cretVal", "N0nceS3cretVal"];

/// Real-shaped lines (contract pocketid-logs-and-access §1.4, §2) holding the planted values.
fn templates() -> Vec<String> {
    let v = "app=pocket-id version=2.14.0";
    vec![
        format!(r#"Aug 20 10:12:01 ERR Failed to create access request {v} error="invalid_client\ngithub.com/ory/x/errorsx.WithStack\n\tgithub.com/ory/x@v0.0.729/errorsx/errors.go:43""#),
        format!(r#"Aug 20 10:13:40 INF HTTP request completed {v} request_id=9a41 error_code=token_invalid_or_expired status=401 method=POST path=/api/one-time-access-token/Xk7pQ2 query="" route=/api/one-time-access-token/:token ip=192.168.1.20 latency=3.1ms referer=https://id.example.org/login/alternative/code?code=Xk7pQ2 user_agent="Mozilla/5.0 (X11)" body_size=131"#),
        format!(r#"Aug 20 10:13:41 INF HTTP request completed {v} status=404 method=GET path=/lc/Zz9Yy8Ww7Vv6 query="" route="" ip=192.168.1.20"#),
        format!(r#"Aug 20 10:12:30 ERR Failed to create authorize request {v} error=invalid_request"#),
        format!(r#"Aug 20 10:12:30 INF HTTP request completed {v} status=302 method=GET path=/authorize query="client_id=grafana&redirect_uri=https%3A%2F%2Fg.example.org%2Fcb%3Fcode%3DXk7pQ2&state=St4teS3cretVal&nonce=N0nceS3cretVal" route="" ip=192.168.1.20"#),
        format!(r#"Aug 20 10:12:31 INF HTTP request completed {v} status=200 method=GET path=/interaction/error query="error=%25%E2%82%AC%3Fcode%3DXk7pQ2%26state%3DSt4teS3cretVal" route="" ip=192.168.1.20"#),
        r#"{"time":"2026-08-20T10:12:01.1Z","level":"ERROR","msg":"Failed to create access request","app":"pocket-id","version":"2.14.0","error":{"error":"invalid_grant","error_description":"bad {\"code\":\"Xk7pQ2\",\"state\":\"St4teS3cretVal\"} \u001b[2J"}}"#.into(),
        r#"{"time":"2026-08-20T10:12:02Z","level":"WARN","msg":"HTTP request completed","app":"pocket-id","version":"2.14.0","status":429,"error_code":"rate_limited","path":"/lc/Zz9Yy8Ww7Vv6\u009b","method":"GET"}"#.into(),
        "Aug 20 10:11:12 WRN Request with errors: Error #01: You are not signed in".into(),
        r#" app=pocket-id version=2.12.0 status=401 method=GET path=/api/one-time-access-token/Xk7pQ2 query="state=St4teS3cretVal" ip=192.168.1.20"#.into(),
        r#"Aug 20 10:15:00 WRN Error getting logout callback URL, the user has to confirm the logout manually app=pocket-id version=2.14.0 error="Callback URL https://a.example.org/x?state=St4teS3cretVal is invalid""#.into(),
        r#"Aug 20 10:15:01 ERR Request failed app=pocket-id version=2.14.0 request_id=r1 error_code=internal http_status=500 http_method=GET http_path=/lc/Xk7pQ2 error="db: code=Xk7pQ2""#.into(),
    ]
}

/// A secret left in clear: a value after a code path, or a `code`/`state`/`nonce` value that is
/// not the redaction marker.
fn leak_pattern() -> Regex {
    Regex::new(
        r#"(?i)(/lc/|one-time-access-token/)[A-Za-z0-9]{6}|(^|[^A-Za-z0-9_-])(code|state|nonce)("\s*:|"?\s*=)\s*"?[^\s\["&,;}#<>)']"#,
    )
    .unwrap()
}

fn bad_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Every string in `v` (keys too).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

fn check_output(v: &Value, planted_must_be_gone: bool) -> Result<(), TestCaseError> {
    let re = leak_pattern();
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in &all {
        prop_assert!(!s.chars().any(bad_char), "control character in {s:?}");
        prop_assert!(!re.is_match(s), "secret pattern in {s:?}");
        if planted_must_be_gone {
            for p in PLANTED {
                prop_assert!(!s.contains(p), "{p} in {s:?}");
            }
        }
    }
    Ok(())
}

fn summary_of(lines: &[String]) -> Value {
    let raw: Vec<RawLine> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| RawLine {
            ts: i as i128 * 1_000_000,
            stream: 0,
            line: l.clone(),
        })
        .collect();
    let mut s = summarize(&raw);
    let mut f = s.fields(1000);
    f.insert("warnings".into(), json!(std::mem::take(&mut s.warnings)));
    Value::Object(f)
}

/// Text that hostile input is made of: multi-byte characters, controls, escapes, delimiters.
fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("€".to_string()),
            Just("\u{1b}[31m".to_string()),
            Just("\u{9b}".to_string()),
            Just("\u{7}".to_string()),
            Just("\u{202e}".to_string()),
            Just("%".to_string()),
            Just("%E2%82".to_string()),
            Just("%1B".to_string()),
            Just("\\u001b".to_string()),
            Just("\\x1b".to_string()),
            Just("\\".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just(" app=".to_string()),
            Just("/lc/".to_string()),
            Just("code=".to_string()),
            Just("=".to_string()),
            any::<char>().prop_map(String::from),
        ],
        0..6,
    )
    .prop_map(|v| v.concat())
}

/// A template mutated: text inserted at, or a range deleted from, a character position.
fn mutated() -> impl Strategy<Value = String> {
    (0..templates().len(), any::<usize>(), 0usize..12, hostile()).prop_map(|(t, at, del, ins)| {
        let line = &templates()[t];
        let chars: Vec<char> = line.chars().collect();
        let at = at % (chars.len() + 1);
        let end = (at + del).min(chars.len());
        let mut out: String = chars[..at].iter().collect();
        out.push_str(&ins);
        out.extend(&chars[end..]);
        out
    })
}

#[test]
fn the_templates_hold_nothing_in_clear_after_reading() {
    check_output(&summary_of(&templates()), true).unwrap();
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_return_nothing_unsafe(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)
    ) {
        let text: Vec<String> = lines.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        check_output(&summary_of(&text), false)?;
        for t in &text {
            for out in [redact::text(t, 300), redact::path(t), redact::url(t), redact::query(t)] {
                check_output(&json!(out), false)?;
            }
            let _ = parse::parse_line(t);
            let _ = parse::query_value(t, "error");
        }
    }

    #[test]
    fn mutated_real_lines_never_panic_and_return_nothing_unsafe(
        lines in proptest::collection::vec(mutated(), 1..10)
    ) {
        check_output(&summary_of(&lines), false)?;
    }

    #[test]
    fn hostile_text_through_the_redactor(t in hostile(), u in hostile(), s in "[A-Za-z0-9]{6,12}") {
        for raw in [
            format!("{t}/lc/{s}{u}"),
            format!("{t}?code={s}{u}"),
            format!("{t}%3Fstate%3D{s}{u}"),
            format!(r#"{t}{{"nonce":"{s}"}}{u}"#),
        ] {
            let out = redact::text(&raw, 1000);
            check_output(&json!(out), false)?;
            prop_assert!(!out.contains(&s), "{raw:?} -> {out:?}");
            prop_assert_eq!(redact::secrets(&out), out.clone());
        }
    }

    #[test]
    fn docker_logs_output_never_panics(stdout in proptest::collection::vec(any::<u8>(), 0..600), cut in any::<bool>()) {
        let lines = docker::split_lines(&stdout, cut);
        let texts: Vec<String> = lines.into_iter().map(|l| l.line).collect();
        check_output(&summary_of(&texts), false)?;
        let r = failed_exec(&String::from_utf8_lossy(&stdout));
        let e = docker::fail_on(&r, 123, "pve.example.org", "docker logs", "pocketid");
        if let Err(e) = e {
            check_output(&json!(e.to_string()), false)?;
        }
    }

    #[test]
    fn loki_bodies_never_panic(body in loki_body()) {
        if let Ok(entries) = loki::parse_streams(&body) {
            let texts: Vec<String> = entries.into_iter().map(|e| e.2).collect();
            check_output(&summary_of(&texts), false)?;
        }
    }

    #[test]
    fn loki_bodies_from_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = loki::parse_streams(&v);
        }
    }

    #[test]
    fn audit_entries_never_panic_and_return_nothing_unsafe(entries in proptest::collection::vec(json_value(), 0..6)) {
        let m = audit::latest_per_client(&entries);
        check_output(&Value::Object(m), false)?;
    }
}

fn failed_exec(stderr: &str) -> proxmox_ssh::ExecResult {
    proxmox_ssh::ExecResult {
        stderr: stderr.to_string(),
        exit_status: Some(1),
        ..Default::default()
    }
}

/// Arbitrary JSON, with strings of hostile text, at most three levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        hostile().prop_map(Value::String),
        Just(json!("2026-08-20T10:00:00Z")),
        Just(json!("CLIENT_AUTHORIZATION")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("createdAt".to_string()),
                        Just("data".to_string()),
                        Just("clientName".to_string()),
                        Just("username".to_string()),
                        hostile()
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Loki answers: the right outline with hostile parts, or anything at all.
fn loki_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        proptest::collection::vec((json_value(), json_value(), hostile()), 0..4).prop_map(|vals| {
            let values: Vec<Value> = vals
                .into_iter()
                .map(|(ts, extra, line)| json!([ts.as_str().map_or_else(|| json!("1"), |_| ts.clone()), line, extra]))
                .collect();
            json!({"status": "success", "data": {"resultType": "streams", "result": [{"stream": {"job": "auth"}, "values": values}]}})
        }),
    ]
}

/// A server on 127.0.0.1 answering every request with the current (status, body).
struct Canned {
    url: String,
    answer: std::sync::Arc<std::sync::Mutex<(u16, Vec<u8>)>>,
}

impl Canned {
    fn start() -> Canned {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = std::sync::Arc::new(std::sync::Mutex::new((200u16, Vec::new())));
        let shared = answer.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let (status, body) = shared.lock().unwrap().clone();
                let mut c = r.into_inner();
                let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&body);
            }
        });
        Canned { url, answer }
    }

    fn set(&self, status: u16, body: Vec<u8>) {
        *self.answer.lock().unwrap() = (status, body);
    }
}

fn remote_body() -> impl Strategy<Value = (u16, Vec<u8>)> {
    (
        prop_oneof![Just(200u16), Just(400), Just(404), Just(500)],
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(json_value(), 0..4).prop_map(|d| {
                json!({"data": d, "pagination": {"totalPages": 1}})
                    .to_string()
                    .into_bytes()
            }),
            Just(br#"{"data":null,"pagination":{"totalPages":1,"totalItems":0}}"#.to_vec()),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pocketid_and_loki_answers_never_panic((status, body) in remote_body()) {
        use std::sync::OnceLock;
        static SERVER: OnceLock<Canned> = OnceLock::new();
        let s = SERVER.get_or_init(Canned::start);
        s.set(status, body);
        let conn = pocketid::Connection {
            server: pocketid::Server { url: s.url.clone(), validate_certs: true, ca_cert: None, timeout: 5, retries: 0 },
            api_key: ansible_module::Secret::new("k3y-under-test".to_string()),
        };
        match audit::latest_authorizations(&conn) {
            Ok(m) => check_output(&Value::Object(m), false)?,
            Err(e) => check_output(&json!(audit::failure_warning(&e)), false)?,
        }
        let cfg = loki::LokiConfig {
            url: s.url.clone(), selector: r#"{job="auth"}"#.into(), tenant: None, username: None,
            password: None, token: None, validate_certs: true, ca_cert: None, timeout: 5, retries: 0,
            batch_size: 100,
        };
        let l = loki::Loki::new(&cfg).unwrap();
        let mut sink = pocketid_logs::summary::Summarizer::new(1 << 20);
        match l.query_range(0, 1_000_000_000, &mut sink) {
            Ok(_) => {
                let mut f = sink.finish().fields(100);
                f.remove("events");
                check_output(&Value::Object(f), false)?;
            }
            Err(e) => check_output(&json!(e.to_string()), false)?,
        }
    }
}
