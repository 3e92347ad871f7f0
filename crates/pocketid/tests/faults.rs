//! Fault matrix for pocketid_client (docs/faults.md): the real binary in module mode against the
//! PocketID emulator with the server down, a refused API key, a 429 storm that does not end, and a
//! 500 on the secret POST, a TLS certificate it does not trust, a server that never answers and a
//! secret POST that never gets an answer. Each case: one JSON result, no panic, an error naming PocketID and what
//! to do, no key or secret in the output, and a re-run that converges (creates nothing twice).

use lab::pocketid::{HostileLists, PocketId, PocketIdOptions};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::faults::{BlackHole, Gate};
use testkit::module::{run_module, spawn_module, ModuleRun};

fn run(args: &Value) -> ModuleRun {
    run_with_env(args, &[])
}

fn run_with_env(args: &Value, env: &[(&str, &str)]) -> ModuleRun {
    run_module(
        Path::new(env!("CARGO_BIN_EXE_pocketid_client")),
        args,
        &["POCKETID_URL", "POCKETID_API_KEY", "POCKETID_CACERT"],
        env,
    )
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
    assert!(!r.output().contains(&key), "API key in the output");
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
    assert!(!r.output().contains("not-a-valid-key-Zq8x-canary"));
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
    assert!(!r.output().contains(pid.admin_key()));
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

#[test]
fn tls_failure_names_pocketid_the_url_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A real TLS server whose certificate is signed by a CA the module does not trust: the
    // handshake fails before any HTTP, so what answers behind it does not matter.
    let bao = lab::openbao::OpenBao::start_tls(dir.path()).expect("OpenBao -dev-tls");
    let pid = start();
    let mut a = args(&pid, json!({}));
    a["url"] = json!(bao.addr);
    let r = run(&a);
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("TLS to PocketID at"),
        "names TLS and PocketID: {m}"
    );
    assert!(m.contains(&bao.addr), "names the URL: {m}");
    assert!(m.contains("`ca_cert`"), "tells to set ca_cert: {m}");
    assert!(m.contains("`validate_certs: false`"), "{m}");
    assert!(
        !r.output().contains(pid.admin_key()),
        "API key in the output"
    );
    assert_eq!(pid.client_count(), 0, "nothing created");
    // The fix the message gives works: with the CA (here from POCKETID_CACERT) the handshake
    // succeeds and the failure is no longer about TLS (the server is OpenBao, not PocketID).
    let ca = bao.ca_cert.clone().expect("the dev CA");
    let r = run_with_env(&a, &[("POCKETID_CACERT", ca.to_str().unwrap())]);
    assert!(r.failed());
    assert!(
        !r.msg().contains("TLS"),
        "the CA is trusted now: {}",
        r.msg()
    );
    assert_converges(&pid);
}

#[test]
fn black_hole_server_times_out_after_timeout() {
    let hole = BlackHole::start();
    let pid = start();
    let mut a = args(&pid, json!({"timeout": 2}));
    a["url"] = json!(hole.url);
    let started = Instant::now();
    let r = run(&a);
    let took = started.elapsed();
    assert!(r.failed());
    let m = r.msg();
    assert!(m.contains(&format!("PocketID at {}", hole.url)), "{m}");
    assert!(
        m.contains("did not answer within 2s"),
        "says it timed out: {m}"
    );
    assert!(m.contains("raise `timeout`"), "says what to do: {m}");
    // Loose: 6 attempts of 2 s plus backoff of a safe GET, far below this on any machine.
    assert!(took < Duration::from_secs(90), "took {took:?}");
    assert!(hole.accepted() >= 1, "the module connected");
    assert!(
        !r.output().contains(pid.admin_key()),
        "API key in the output"
    );
    assert_eq!(pid.client_count(), 0, "nothing created");
    assert_converges(&pid);
}

#[test]
fn secret_post_timeout_is_sent_once_and_not_retried() {
    let pid = start();
    let gate = Gate::start(pid.url(), "POST /api/oidc/clients/grafana/secrets ");
    let mut a = args(&pid, json!({"timeout": 2}));
    a["url"] = json!(gate.url);
    let r = run(&a);
    assert!(r.failed());
    let m = r.msg();
    assert!(
        m.contains("did not answer within 2s"),
        "says it timed out: {m}"
    );
    assert!(
        m.contains("sent once and not retried"),
        "says the mint was not repeated: {m}"
    );
    assert!(m.contains("check the client's secrets"), "what to do: {m}");
    assert_eq!(gate.held(), 1, "the minting POST was sent exactly once");
    assert_eq!(
        pid.client_ids_named("Grafana").len(),
        1,
        "the client exists"
    );
    assert_eq!(pid.client_secrets("grafana").len(), 0, "no secret minted");
    assert!(r.json.get("client_secret").is_none(), "{}", r.json);
    assert!(
        !r.output().contains(pid.admin_key()),
        "API key in the output"
    );
    drop(gate);
    assert_converges(&pid);
}

/// Runs the module with the client looked up by name (a paginated list) while the emulator's
/// lists are hostile; a run past `limit` fails the test (the unbounded loop used to run for
/// minutes).
fn run_against_hostile_lists(
    pid: &PocketId,
    mode: HostileLists,
    extra: Value,
    limit: Duration,
) -> (ModuleRun, Duration) {
    pid.hostile_lists(Some(mode));
    pid.clear_requests();
    let mut a = args(pid, extra);
    a.as_object_mut().unwrap().remove("client_id");
    let t = Instant::now();
    let r = spawn_module(
        Path::new(env!("CARGO_BIN_EXE_pocketid_client")),
        &a,
        &["POCKETID_URL", "POCKETID_API_KEY", "POCKETID_CACERT"],
        &[],
    )
    .finish(limit);
    let took = t.elapsed();
    pid.hostile_lists(None);
    assert!(r.failed(), "{}", r.json);
    assert_eq!(pid.client_count(), 0, "nothing created");
    assert!(
        !r.output().contains(pid.admin_key()),
        "API key in the output"
    );
    (r, took)
}

#[test]
fn endless_pages_stop_at_the_item_cap() {
    let pid = start();
    let (r, _) = run_against_hostile_lists(
        &pid,
        HostileLists::EndlessPages,
        json!({}),
        Duration::from_secs(60),
    );
    let m = r.msg();
    assert!(
        m.contains("PocketID's list /api/oidc/clients holds more than 10000 items (the server claims 101 pages of 100)"),
        "{m}"
    );
    assert!(
        m.contains("pagination that never ends"),
        "what to check: {m}"
    );
    // Page 100 claims a 101st page, more than 10,000 items can fill: no request for it.
    assert_eq!(pid.count_requests("GET", "/api/oidc/clients"), 100);
    assert_converges(&pid);
}

#[test]
fn slow_pages_are_bounded_by_timeout_for_the_whole_list() {
    let pid = start();
    let (r, took) = run_against_hostile_lists(
        &pid,
        HostileLists::SlowPages(Duration::from_millis(500)),
        json!({"timeout": 2}),
        Duration::from_secs(30),
    );
    let m = r.msg();
    assert!(
        m.contains("reading PocketID's list /api/oidc/clients did not finish within 2s"),
        "{m}"
    );
    assert!(m.contains("raise `timeout`"), "what to do: {m}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let pages = pid.count_requests("GET", "/api/oidc/clients");
    assert!((3..=6).contains(&pages), "{pages} pages read");
    assert_converges(&pid);
}

#[test]
fn oversized_pages_are_refused() {
    let pid = start();
    let (r, _) = run_against_hostile_lists(
        &pid,
        HostileLists::OversizedPages(5000),
        json!({}),
        Duration::from_secs(60),
    );
    let m = r.msg();
    assert!(
        m.contains("PocketID answered page 1 of /api/oidc/clients with 5000 items although at most 100 were asked for"),
        "{m}"
    );
    assert_eq!(pid.count_requests("GET", "/api/oidc/clients"), 1);
    assert_converges(&pid);
}

/// `timeout: 9223372036854775807` used to panic (a `Duration` overflow in the HTTP client). Every
/// number option is range-checked before any request, with AnsibleModule's message shape.
#[test]
fn extreme_numbers_are_refused_before_any_request() {
    let hole = BlackHole::start();
    let base = json!({"url": hole.url, "api_key": "key-extreme-Zq8x", "client_id": "grafana",
                      "name": "Grafana", "callback_urls": ["https://grafana.example.org/cb"]});
    for (opt, value, text) in [
        (
            "timeout",
            json!(9223372036854775807_i64),
            "value of timeout must be between 1 and 3600, got: 9223372036854775807",
        ),
        (
            "access_token_duration",
            json!(525_601),
            "value of access_token_duration must be between 0 and 525600, got: 525601",
        ),
    ] {
        let mut a = base.clone();
        a[opt] = value;
        let r = run(&a);
        assert!(r.failed(), "{opt}: {}", r.output());
        assert_eq!(r.msg(), text);
        assert!(!r.output().contains("key-extreme-Zq8x"));
    }
    assert_eq!(hole.accepted(), 0, "no request was sent");
}
