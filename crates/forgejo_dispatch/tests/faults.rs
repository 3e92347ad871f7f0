//! Fault matrix for redeploy_trigger (docs/faults.md): the real binary in module mode against the
//! Forgejo emulator with the server down, the server gone while the module waits for the runs it
//! dispatched, an untrusted TLS certificate, a server that never answers, and 429/5xx answers
//! (`Forgejo::fail_next`) on the dispatch and while waiting. Each case: one JSON result, no panic, an error naming Forgejo and what to do, no
//! token in the output, never a second dispatch in the same run, and a re-run that converges.
//! (401/403, "no runner" vs timeout and failed runs are in `tests/dispatch.rs`.)

use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::faults::{BlackHole, Flaky};
use testkit::module::{spawn_module, Running, RUN_LIMIT};

fn args(fj: &Forgejo, workflows: &[&str]) -> Value {
    json!({"url": fj.url(), "token": fj.token(), "repo": fj.repo(), "ref": "main",
           "workflows": workflows, "poll_interval": 0.5, "wait_timeout": 60, "pickup_timeout": 30,
           "timeout": 5})
}

fn spawn(args: &Value) -> Running {
    spawn_with_env(args, &[])
}

fn spawn_with_env(args: &Value, env: &[(&str, &str)]) -> Running {
    spawn_module(
        Path::new(env!("CARGO_BIN_EXE_redeploy_trigger")),
        args,
        &["FORGEJO_URL", "FORGEJO_TOKEN", "FORGEJO_CACERT"],
        env,
    )
}

/// Waits for the module; the token must appear nowhere in its output.
fn finish(running: Running, token: &str) -> Value {
    let r = running.finish(RUN_LIMIT);
    assert!(!r.output().contains(token), "token in the output");
    r.json
}

fn msg(r: &Value) -> String {
    r["msg"].as_str().unwrap_or_default().to_string()
}

fn assert_converges(fj: &Forgejo, workflows: &[&str]) {
    let r = finish(spawn(&args(fj, workflows)), &fj.token());
    assert_ne!(r["failed"], true, "{}", msg(&r));
    for w in workflows {
        assert_eq!(fj.dispatch_requests(w), 1, "{w} dispatched once");
    }
}

#[test]
fn server_down_connection_refused() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let a = args(&fj, &["deploy-n8n.yml"]);
    let (url, token) = (fj.url().to_string(), fj.token());
    drop(fj);
    let r = finish(spawn(&a), &token);
    assert_eq!(r["failed"], true);
    let m = msg(&r);
    assert!(
        m.contains("Forgejo") || m.contains(&url),
        "names the server: {m}"
    );
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    fj.set_behaviour(
        "deploy-n8n.yml",
        Behaviour::lasting(Duration::from_millis(300)),
    );
    assert_converges(&fj, &["deploy-n8n.yml"]);
}

#[test]
fn server_gone_while_waiting_reports_the_dispatched_runs() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = ["deploy-n8n.yml", "deploy-glance.yml"];
    for w in wf {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_secs(120)));
    }
    let (url, token) = (fj.url().to_string(), fj.token());
    let mut a = args(&fj, &wf);
    a["pickup_timeout"] = json!(10);
    let child = spawn(&a);
    // Both dispatched: the module is now waiting.
    let dispatched = lab::proc::wait_for(Duration::from_secs(60), || {
        wf.iter()
            .all(|w| fj.dispatch_requests(w) == 1)
            .then_some(())
    });
    assert!(dispatched.is_some(), "the module never dispatched");
    for w in wf {
        assert_eq!(fj.dispatch_requests(w), 1);
    }
    drop(fj);
    let r = finish(child, &token);
    assert_eq!(r["failed"], true, "{r}");
    // The server problem comes first, then each dispatched run with its URL so the user can
    // look at it; never "no runner picked it up" (the runner is not the problem).
    let m = msg(&r);
    assert!(
        m.starts_with(&format!("lost contact with Forgejo at {url} while waiting")),
        "names the server problem first: {m}"
    );
    assert!(!m.contains("no runner"), "not a runner problem: {m}");
    for n in [1, 2] {
        assert!(
            m.contains(&format!("/actions/runs/{n}")),
            "run {n} reported: {m}"
        );
    }
    let runs = r["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{r}");
    for run in runs {
        assert_eq!(run["status"], "unknown", "{run}");
        let e = run["error"].as_str().unwrap_or_default();
        assert!(
            e.starts_with(&format!("lost contact with Forgejo at {url}")),
            "{e}"
        );
        assert!(e.contains("may still be running"), "{e}");
        assert!(e.contains(run["html_url"].as_str().unwrap()), "{e}");
        assert!(!e.contains("no runner"), "{e}");
    }
    assert_eq!(r["failed_runs"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["changed"], true, "runs were dispatched: changed");
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    for w in wf {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_millis(300)));
    }
    assert_converges(&fj, &wf);
}

#[test]
fn short_outage_while_waiting_is_tolerated() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = "deploy-n8n.yml";
    fj.set_behaviour(wf, Behaviour::lasting(Duration::from_secs(10)));
    let proxy = Flaky::start(fj.url());
    let mut a = args(&fj, &[wf]);
    a["url"] = json!(proxy.url);
    let child = spawn(&a);
    // The outage starts once the module is waiting (its first status request answered): a cut
    // during the dispatch's own answer would be another fault (a dispatch is never repeated).
    let waiting = lab::proc::wait_for(Duration::from_secs(60), || {
        fj.request_log()
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("/actions/runs/"))
            .then_some(())
    });
    assert!(
        waiting.is_some(),
        "the module never asked for the run's status"
    );
    assert_eq!(fj.dispatch_requests(wf), 1, "dispatched once");
    // Cut long enough for at least two whole status polls to fail (each is up to 4 attempts),
    // far shorter than the 30 s after which the module would stop waiting.
    proxy.down();
    let failed_polls = lab::proc::wait_for(Duration::from_secs(60), || {
        (proxy.dropped() >= 8).then_some(())
    });
    assert!(failed_polls.is_some(), "the module stopped polling");
    proxy.up();
    let r = finish(child, &fj.token());
    assert_ne!(r["failed"], true, "{}", msg(&r));
    assert_eq!(r["runs"][0]["status"], "success", "{r}");
    assert_eq!(fj.dispatch_requests(wf), 1, "dispatched once");
}

#[test]
fn tls_failure_names_forgejo_the_url_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A real TLS server whose certificate is signed by a CA the module does not trust: the
    // handshake fails before any HTTP, so what answers behind it does not matter.
    let bao = lab::openbao::OpenBao::start_tls(&dir.path().join("bao")).expect("OpenBao -dev-tls");
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let mut a = args(&fj, &["deploy-n8n.yml"]);
    a["url"] = json!(bao.addr);
    let r = finish(spawn(&a), &fj.token());
    assert_eq!(r["failed"], true, "{r}");
    let m = msg(&r);
    assert!(
        m.contains("TLS to Forgejo at"),
        "names TLS and Forgejo: {m}"
    );
    assert!(m.contains(&bao.addr), "names the URL: {m}");
    assert!(m.contains("`ca_cert`"), "tells to set ca_cert: {m}");
    assert!(m.contains("`validate_certs: false`"), "{m}");
    assert_eq!(
        fj.dispatch_requests("deploy-n8n.yml"),
        0,
        "nothing dispatched"
    );
    // The fix the message gives works: with the CA (from FORGEJO_CACERT here) the handshake
    // succeeds and the failure is no longer about TLS (the server is OpenBao, not Forgejo).
    let ca = bao.ca_cert.clone().expect("the dev CA");
    let ca = ca.display().to_string();
    let child = spawn_with_env(&a, &[("FORGEJO_CACERT", &ca)]);
    let r = finish(child, &fj.token());
    assert_eq!(r["failed"], true, "{r}");
    assert!(
        !msg(&r).contains("TLS"),
        "the CA is trusted now: {}",
        msg(&r)
    );
    assert_eq!(fj.dispatch_requests("deploy-n8n.yml"), 0);
    assert_converges(&fj, &["deploy-n8n.yml"]);
}

#[test]
fn black_hole_server_times_out_after_timeout() {
    let hole = BlackHole::start();
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let mut a = args(&fj, &["deploy-n8n.yml"]);
    a["url"] = json!(hole.url);
    a["timeout"] = json!(2);
    let started = Instant::now();
    let r = finish(spawn(&a), &fj.token());
    let took = started.elapsed();
    assert_eq!(r["failed"], true, "{r}");
    let m = msg(&r);
    assert!(m.contains(&format!("Forgejo at {}", hole.url)), "{m}");
    assert!(
        m.contains("did not answer within 2s"),
        "says it timed out: {m}"
    );
    assert!(m.contains("raise `timeout`"), "says what to do: {m}");
    // Loose: 4 attempts of 2 s plus backoff, far below this on any machine.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(hole.accepted() >= 1, "the module connected");
    assert_eq!(
        fj.dispatch_requests("deploy-n8n.yml"),
        0,
        "nothing dispatched"
    );
    assert_converges(&fj, &["deploy-n8n.yml"]);
}

#[test]
fn short_429_burst_while_waiting_is_tolerated() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = "deploy-n8n.yml";
    fj.set_behaviour(wf, Behaviour::lasting(Duration::from_secs(4)));
    let child = spawn(&args(&fj, &[wf]));
    let dispatched = lab::proc::wait_for(Duration::from_secs(60), || {
        (fj.dispatch_requests(wf) == 1).then_some(())
    });
    assert!(dispatched.is_some(), "the module never dispatched");
    // From now on only status requests come: the next three are rate-limited.
    fj.fail_next(3, 429, Some(1));
    let r = finish(child, &fj.token());
    assert_ne!(r["failed"], true, "{}", msg(&r));
    assert_eq!(r["runs"][0]["status"], "success", "{r}");
    assert_eq!(fj.dispatch_requests(wf), 1, "dispatched once");
    let throttled = fj
        .request_log()
        .iter()
        .filter(|l| l.status == 429 && l.method == "GET")
        .count();
    assert_eq!(throttled, 3, "the burst was served: {:?}", fj.request_log());
}

fn dispatch_failure_is_reported_and_not_resent(status: u16, retry_after: Option<u64>) -> String {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = ["deploy-n8n.yml", "deploy-glance.yml"];
    for w in wf {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_millis(300)));
    }
    // Only the first dispatch POST fails; the second workflow is dispatched normally.
    fj.fail_next_dispatches(1, status, retry_after);
    let r = finish(spawn(&args(&fj, &wf)), &fj.token());
    assert_eq!(r["failed"], true, "{r}");
    let m = msg(&r);
    assert!(
        m.contains("dispatching deploy-n8n.yml at main"),
        "names the workflow: {m}"
    );
    assert!(m.contains(&format!("HTTP {status}")), "{m}");
    assert!(m.contains("not retried"), "says it was sent once: {m}");
    assert_eq!(fj.dispatch_requests("deploy-n8n.yml"), 1, "never re-sent");
    assert_eq!(fj.dispatch_requests("deploy-glance.yml"), 1);
    assert_eq!(r["changed"], true, "one run was dispatched");
    assert_eq!(r["runs"][0]["status"], "success", "{r}");
    let failed = r["failed_runs"].as_array().expect("failed_runs");
    assert_eq!(failed.len(), 1, "{r}");
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    for w in wf {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_millis(300)));
    }
    assert_converges(&fj, &wf);
    m
}

#[test]
fn dispatch_429_is_reported_and_not_resent() {
    let m = dispatch_failure_is_reported_and_not_resent(429, Some(1));
    assert!(m.contains("rate-limit"), "{m}");
}

#[test]
fn dispatch_5xx_is_reported_and_not_resent() {
    for status in [500, 503] {
        let m = dispatch_failure_is_reported_and_not_resent(status, None);
        assert!(m.contains("may or may not have been created"), "{m}");
        assert!(m.contains("Actions page"), "says where to check: {m}");
    }
}

#[test]
fn endless_5xx_while_waiting_ends_as_lost_contact() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = "deploy-n8n.yml";
    fj.set_behaviour(wf, Behaviour::lasting(Duration::from_secs(300)));
    let (url, token) = (fj.url().to_string(), fj.token());
    let mut a = args(&fj, &[wf]);
    a["wait_timeout"] = json!(240);
    let child = spawn(&a);
    let dispatched = lab::proc::wait_for(Duration::from_secs(60), || {
        (fj.dispatch_requests(wf) == 1).then_some(())
    });
    assert!(dispatched.is_some(), "the module never dispatched");
    fj.fail_next(u32::MAX, 503, None);
    let r = finish(child, &token);
    assert_eq!(r["failed"], true, "{r}");
    let m = msg(&r);
    assert!(
        m.starts_with(&format!("lost contact with Forgejo at {url} while waiting")),
        "names the server problem first: {m}"
    );
    assert!(m.contains("503"), "names the answer: {m}");
    assert!(!m.contains("no runner"), "{m}");
    assert!(
        !m.contains("timed out after 240s"),
        "gave up before `wait_timeout`: {m}"
    );
    assert_eq!(r["runs"][0]["status"], "unknown", "{r}");
    assert_eq!(r["changed"], true);
    assert_eq!(fj.dispatch_requests(wf), 1, "dispatched once");
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    fj.set_behaviour(wf, Behaviour::lasting(Duration::from_millis(300)));
    assert_converges(&fj, &[wf]);
}

/// `poll_interval: 1e20` used to dispatch, then panic (a `Duration` overflow) with a result that
/// claimed nothing changed; `timeout` near i64::MAX panicked too. Every number option is
/// now range-checked with AnsibleModule's message shape before any request.
#[test]
fn extreme_numbers_are_refused_before_any_request() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let max = json!(9223372036854775807_i64);
    for (opt, value, text) in [
        (
            "poll_interval",
            json!(1e20),
            "value of poll_interval must be between 0.1 and 3600.0, got: 1e+20",
        ),
        (
            "timeout",
            max.clone(),
            "value of timeout must be between 1 and 3600, got: 9223372036854775807",
        ),
        // The spelling of 1.0.0 is an alias of `timeout`; the message names the option.
        (
            "request_timeout",
            max.clone(),
            "value of timeout must be between 1 and 3600, got: 9223372036854775807",
        ),
        (
            "wait_timeout",
            max.clone(),
            "value of wait_timeout must be between 1 and 86400, got: 9223372036854775807",
        ),
        (
            "pickup_timeout",
            max.clone(),
            "value of pickup_timeout must be between 1 and 86400, got: 9223372036854775807",
        ),
    ] {
        let mut a = args(&fj, &["deploy-n8n.yml"]);
        if opt == "request_timeout" {
            // Only the alias, so that its value is the one checked.
            a.as_object_mut().unwrap().remove("timeout");
        }
        a[opt] = value;
        let r = finish(spawn(&a), &fj.token());
        assert_eq!(r["failed"], true, "{opt}: {r}");
        assert_eq!(r["changed"], false, "{opt}: {r}");
        assert_eq!(msg(&r), text);
    }
    assert_eq!(fj.requests(), 0, "no request was sent");
    assert_eq!(fj.dispatch_requests("deploy-n8n.yml"), 0);
}
