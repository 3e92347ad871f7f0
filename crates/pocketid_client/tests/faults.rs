//! Fault matrix for pocketid_client (docs/faults.md): the real binary in module mode against the
//! PocketID emulator with the server down, a refused API key, a 429 storm that does not end, and a
//! 500 on the secret POST, a TLS certificate it does not trust, a server that never answers and a
//! secret POST that never gets an answer. Each case: one JSON result, no panic, an error naming PocketID and what
//! to do, no key or secret in the output, and a re-run that converges (creates nothing twice).

use lab::faults::BlackHole;
use lab::module::{run_module, spawn_module, ModuleRun};
use lab::pocketid::{HostileLists, PocketId, PocketIdOptions};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// An HTTP/1.1 forwarder in front of the emulator that passes every request through (one
/// upstream connection each, `Connection: close`) except those whose request line starts with
/// `hold`: those are counted and never answered, as by a server that hangs in that handler.
struct Gate {
    url: String,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
fn read_request(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn forward(head: &str, body: &[u8], upstream: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).ok()?;
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    s.write_all(out.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    Some(resp)
}

impl Gate {
    fn start(upstream: &str, hold: &str) -> Gate {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let hold = hold.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (h, st, op) = (held.clone(), stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((mut client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                if let Ok(c) = client.try_clone() {
                    op.lock().unwrap().push(c);
                }
                let (h, upstream, hold) = (h.clone(), upstream.clone(), hold.clone());
                std::thread::spawn(move || {
                    while let Some((head, body)) = read_request(&mut client) {
                        if head.starts_with(&hold) {
                            h.fetch_add(1, Ordering::SeqCst);
                            // Never answered; the connection stays open until the client
                            // gives up or the gate is dropped.
                            let mut sink = [0u8; 1024];
                            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                            return;
                        }
                        let Some(resp) = forward(&head, &body, &upstream) else {
                            return;
                        };
                        if client.write_all(&resp).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Gate {
            url,
            held,
            stop,
            open,
            thread: Some(thread),
        }
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
