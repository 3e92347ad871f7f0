//! Fault matrix for pocketid_client (docs/faults.md): the real binary in module mode against the
//! PocketID emulator with the server down, a refused API key, a 429 storm that does not end, and a
//! 500 on the secret POST. Each case: one JSON result, no panic, an error naming PocketID and what
//! to do, no key or secret in the output, and a re-run that converges (creates nothing twice).

use lab::pocketid::{PocketId, PocketIdOptions};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    json: Value,
    output: String,
}

impl Run {
    fn failed(&self) -> bool {
        self.json["failed"] == true
    }
    fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or_default().to_string()
    }
}

fn run(args: &Value) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("args.json");
    std::fs::write(&file, args.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketid_client"))
        .arg(&file)
        .env_remove("POCKETID_URL")
        .env_remove("POCKETID_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pocketid_client did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains("internal error (panic"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line: {stdout}");
    let json: Value = serde_json::from_str(lines[0]).unwrap();
    let code = out.status.code();
    assert_eq!(code, Some(if json["failed"] == true { 1 } else { 0 }));
    // Shown with --nocapture: the messages quoted in docs/faults.md.
    eprintln!("module msg: {}", json["msg"]);
    Run {
        json,
        output: format!("{stdout}\n{stderr}"),
    }
}

fn start() -> PocketId {
    PocketId::start(PocketIdOptions::version("2.14.0")).expect("PocketID emulator")
}

fn args(pid: &PocketId, extra: Value) -> Value {
    let mut a = json!({"url": pid.url(), "api_key": pid.admin_key(), "client_id": "grafana",
                       "name": "Grafana", "callback_urls": ["https://grafana.example.org/cb"]});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// The run after the repair creates the client (once) with one secret; the next one is unchanged.
fn assert_converges(pid: &PocketId) {
    let r = run(&args(pid, json!({})));
    assert!(!r.failed(), "{}", r.msg());
    assert_eq!(pid.client_ids_named("Grafana").len(), 1, "one client");
    assert_eq!(pid.client_secrets("grafana").len(), 1, "one secret");
    let again = run(&args(
        pid,
        json!({"secret_id": r.json["secret_id"].clone()}),
    ));
    assert!(!again.failed(), "{}", again.msg());
    assert_eq!(again.json["changed"], false, "{}", again.msg());
    assert_eq!(pid.client_secrets("grafana").len(), 1);
}

#[test]
fn server_down_connection_refused() {
    let pid = start();
    let a = args(&pid, json!({}));
    let key = pid.admin_key().to_string();
    let url = pid.url().to_string();
    drop(pid);
    let r = run(&a);
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("PocketID") || m.contains(&url),
        "names the server: {m}"
    );
    assert!(!r.output.contains(&key), "API key in the output");
    let pid = start();
    assert_converges(&pid);
}

#[test]
fn refused_api_key_changes_nothing() {
    let pid = start();
    let mut a = args(&pid, json!({}));
    a["api_key"] = json!("not-a-valid-key-Zq8x-canary");
    let r = run(&a);
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("401") || m.to_lowercase().contains("api key"),
        "{m}"
    );
    assert!(!r.output.contains("not-a-valid-key-Zq8x-canary"));
    assert_eq!(pid.client_count(), 0, "nothing created");
    assert_converges(&pid);
}

#[test]
fn endless_429_storm_gives_up_without_creating() {
    let pid = start();
    pid.throttle_next(10_000);
    let r = run(&args(&pid, json!({"timeout": 5})));
    assert!(r.failed(), "a storm that never ends must fail");
    let m = r.msg();
    assert!(m.contains("429"), "{m}");
    assert_eq!(pid.client_count(), 0, "nothing created");
    assert!(!r.output.contains(pid.admin_key()));
    // Repair: the storm ends (a fresh server with no throttling left).
    let pid = start();
    assert_converges(&pid);
}

#[test]
fn secret_post_500_then_rerun_mints_exactly_once() {
    let pid = start();
    pid.fail_next_secret_post();
    let r = run(&args(&pid, json!({})));
    assert!(r.failed());
    let m = r.msg();
    assert!(m.contains("500"), "{m}");
    assert_eq!(
        pid.client_ids_named("Grafana").len(),
        1,
        "the client exists"
    );
    assert_eq!(
        pid.client_secrets("grafana").len(),
        0,
        "no secret was minted"
    );
    assert_converges(&pid);
}
