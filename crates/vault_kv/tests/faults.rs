//! Fault matrix for vault_full_write (docs/faults.md): the real binary in module mode against a
//! real OpenBao dev server that is killed or frozen between the read and the write, rate-limited
//! (HTTP 429 from a rate-limit quota), or answering 403 to the write. Each case: one JSON result,
//! no panic, an error naming Vault and what to do, Vault either untouched or at one complete new
//! version, and a re-run that converges. Sealed (503), stopped, TLS and wrong-token cases live in
//! `tests/write.rs`.

mod common;

use common::{args, assert_no_secrets, paused_run, run, start, Run, WRITE};
use lab::openbao::OpenBao;
use serde_json::{json, Value};
use std::time::Duration;

fn old() -> Value {
    json!({"a": "old-1-Zq8x", "b": "old-2-Zq8x"})
}
fn new() -> Value {
    json!({"a": "new-1-Zq8x", "b": "new-2-Zq8x", "c": "new-3-Zq8x"})
}

fn assert_clean(r: &Run) {
    // Shown with --nocapture: the messages quoted in docs/faults.md.
    eprintln!("module msg: {}", r.json["msg"]);
    assert!(!r.output.contains("internal error (panic"), "{}", r.output);
    assert!(!r.output.contains("panicked"), "{}", r.output);
    assert_no_secrets(&r.output, &["new-1-Zq8x", "old-1-Zq8x"]);
}

fn converge(bao: &OpenBao, path: &str) -> u64 {
    let r = run(WRITE, args(bao, path, json!({"data": new()})), &[]);
    assert_clean(&r);
    r.ok();
    let (data, v) = bao.kv_get(path).unwrap().unwrap();
    assert_eq!(data, new());
    // A second run changes nothing.
    let again = run(WRITE, args(bao, path, json!({"data": new()})), &[]);
    again.ok();
    assert_eq!(again.json["changed"], false);
    assert_eq!(bao.current_version(path).unwrap(), v);
    v
}

#[test]
fn server_killed_between_read_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = start(dir.path());
    bao.kv_put("app", old()).unwrap();
    let (handle, gate) = paused_run(
        dir.path(),
        args(&bao, "app", json!({"data": new(), "timeout": 5})),
    );
    bao.stop();
    std::fs::write(&gate, b"").unwrap();
    let r = handle.join().unwrap();
    assert_clean(&r);
    r.fails();
    let m = r.msg();
    assert!(
        m.contains(&bao.addr) || m.contains("Vault"),
        "names the server: {m}"
    );
    assert!(m.contains("refused the connection"), "{m}");
    // Repair: a server again (the dev server keeps nothing: the secret is written afresh).
    let bao = start(&dir.path().join("again"));
    bao.kv_put("app", old()).unwrap();
    assert_eq!(converge(&bao, "app"), 2);
}

#[test]
fn server_frozen_between_read_and_write_times_out_then_is_complete_or_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", old()).unwrap();
    let (handle, gate) = paused_run(
        dir.path(),
        args(&bao, "app", json!({"data": new(), "timeout": 2})),
    );
    bao.freeze();
    std::fs::write(&gate, b"").unwrap();
    let r = handle.join().unwrap();
    bao.thaw();
    assert_clean(&r);
    r.fails();
    let m = r.msg();
    assert!(m.contains("did not answer within"), "{m}");
    // The write was sent before the freeze ended: once the server runs again it may apply it.
    // Either way the secret is one whole version: the old data (v1) or all of the new (v2).
    // Give a pending write time to land (generously: the machine may be busy) before judging.
    let _ = lab::proc::wait_for(Duration::from_secs(10), || {
        (bao.current_version("app").ok() == Some(2)).then_some(())
    });
    let (data, v) = bao.kv_get("app").unwrap().unwrap();
    match v {
        1 => assert_eq!(data, old()),
        2 => assert_eq!(data, new()),
        other => panic!("unexpected version {other}"),
    }
    assert_eq!(converge(&bao, "app"), 2, "the re-run adds no extra version");
}

#[test]
fn rate_limited_429_storm_fails_clearly_and_leaves_a_whole_version() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", old()).unwrap();
    // One request per 30 s on the KV mount: everything after the first answers 429.
    let (status, body) = bao
        .request(
            "POST",
            "/v1/sys/quotas/rate-limit/storm",
            Some(json!({"path": "secret/", "rate": 1, "interval": "30s"})),
        )
        .unwrap();
    assert!(status < 300, "rate-limit quota: {status} {body}");
    // Use the one allowed request so that the module meets only 429s.
    let _ = bao.kv_get("app");
    let r = run(
        WRITE,
        args(&bao, "app", json!({"data": new(), "timeout": 5})),
        &[],
    );
    assert_clean(&r);
    r.fails();
    let m = r.msg();
    assert!(
        m.contains("429") && m.contains("rate-limiting") && m.contains("raise the quota"),
        "{m}"
    );
    let (status, _) = bao
        .request("DELETE", "/v1/sys/quotas/rate-limit/storm", None)
        .unwrap();
    assert!(status < 300);
    let (data, v) = bao.kv_get("app").unwrap().unwrap();
    assert_eq!((data, v), (old(), 1), "Vault untouched");
    assert_eq!(converge(&bao, "app"), 2);
}

#[test]
fn forbidden_write_leaves_vault_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let bao = start(dir.path());
    bao.kv_put("app", old()).unwrap();
    bao.write_policy(
        "read-only",
        r#"path "secret/data/app" { capabilities = ["read"] }
path "secret/metadata/app" { capabilities = ["read"] }"#,
    )
    .unwrap();
    let token = bao.token_with_policy(&["read-only"]).unwrap();
    let mut a = args(&bao, "app", json!({"data": new()}));
    a["token"] = json!(token);
    let r = run(WRITE, a, &[]);
    assert_clean(&r);
    assert_no_secrets(&r.output, &[token.as_str()]);
    r.fails();
    let m = r.msg();
    assert!(m.contains("permission denied") || m.contains("403"), "{m}");
    assert!(m.contains("polic"), "says to check the policy: {m}");
    let (data, v) = bao.kv_get("app").unwrap().unwrap();
    assert_eq!((data, v), (old(), 1), "Vault untouched");
    assert_eq!(converge(&bao, "app"), 2);
}

/// `timeout: 9223372036854775807` used to panic (a `Duration` overflow in the HTTP client). Every
/// number option is range-checked before any request, with AnsibleModule's message shape.
#[test]
fn extreme_numbers_are_refused_before_any_request() {
    let hole = testkit::faults::BlackHole::start();
    let max = json!(9223372036854775807_i64);
    for (bin, extra, text) in [
        (
            WRITE,
            json!({"data": new(), "timeout": max.clone()}),
            "value of timeout must be between 1 and 3600, got: 9223372036854775807",
        ),
        (
            WRITE,
            json!({"rollback_to": 0}),
            "`rollback_to` must be a version number of 1 or more",
        ),
        (
            common::READ,
            json!({"version": -1}),
            "`version` must be a version number of 1 or more",
        ),
    ] {
        let mut a = json!({"url": hole.url, "token": "hvs.extreme-Zq8x", "path": "app"});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        let r = run(bin, a, &[]);
        assert_clean(&r);
        r.fails();
        assert!(r.msg().starts_with(text), "{}", r.msg());
        assert!(!r.output.contains("hvs.extreme-Zq8x"));
    }
    assert_eq!(hole.accepted(), 0, "no request was sent");
}

/// A proxy (or WAF) in front of Vault that answers 400 and echoes the request body in its error,
/// JSON-escaped as Go (`\u003c`, `\u2028`), serde and Python's ensure_ascii (`\u00e9`) write it:
/// an AppRole `secret_id` holding `"`, `\`, a tab, `<&>`, `é` and U+2028 used to leak in its
/// escaped forms. Every form is masked now.
#[test]
fn a_proxy_echoing_the_login_body_escaped_leaks_no_form_of_the_secret() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                }
            };
            let Some(body) = body else { continue };
            let serde = serde_json::to_string(&body).unwrap();
            let serde = &serde[1..serde.len() - 1];
            let go: String = serde
                .chars()
                .map(|c| match c {
                    '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => format!("\\u{:04x}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            let ascii: String = serde
                .chars()
                .map(|c| {
                    if (c as u32) > 0x7e {
                        format!("\\u{:04x}", c as u32)
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let answer =
                format!("{{\"errors\":[\"go: {go}\",\"serde: {serde}\",\"ascii: {ascii}\"]}}");
            let _ = write!(
                s,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    let secret_id = "sid\"q\\b\tt<&>\u{e9}\u{2028}-Zq8x";
    let a = json!({"url": url, "auth_method": "approle", "role_id": "role-echo-Zq8x",
                   "secret_id": secret_id, "path": "app", "data": new(), "timeout": 5});
    let r = run(WRITE, a, &[]);
    assert_clean(&r);
    r.fails();
    let out = &r.output;
    assert!(r.msg().contains("login"), "{}", r.msg());
    assert!(
        r.msg().contains("go: "),
        "the echo reached the message: {}",
        r.msg()
    );
    for leak in [
        "-Zq8x",
        "\\u003c\\u0026\\u003e",
        "\\u00e9",
        "\\u2028",
        "\u{2028}",
    ] {
        assert!(!out.contains(leak), "{leak:?} in {out}");
    }
}
