//! Fault matrix for redeploy_trigger (docs/faults.md): the real binary in module mode against the
//! Forgejo emulator with the server down, and the server gone while the module waits for the runs
//! it dispatched. Each case: one JSON result, no panic, an error naming Forgejo and what to do, no
//! token in the output, never a second dispatch in the same run, and a re-run that converges.
//! (401/403, "no runner" vs timeout and failed runs are in `tests/dispatch.rs`.)

use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn args(fj: &Forgejo, workflows: &[&str]) -> Value {
    json!({"url": fj.url(), "token": fj.token(), "repo": fj.repo(), "ref": "main",
           "workflows": workflows, "poll_interval": 0.5, "timeout": 60, "pickup_timeout": 30,
           "request_timeout": 5})
}

fn spawn(dir: &Path, args: &Value) -> Child {
    let file = dir.join(format!("args-{}.json", lab::openbao::random_hex(3)));
    std::fs::write(&file, args.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_redeploy_trigger"))
        .arg(&file)
        .env_remove("FORGEJO_URL")
        .env_remove("FORGEJO_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut child: Child, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("redeploy_trigger did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains("internal error (panic"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "token in the output"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line: {stdout}");
    let r: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        out.status.code(),
        Some(if r["failed"] == true { 1 } else { 0 })
    );
    // Shown with --nocapture: the messages quoted in docs/faults.md.
    eprintln!("module msg: {}", r["msg"]);
    r
}

fn msg(r: &Value) -> String {
    r["msg"].as_str().unwrap_or_default().to_string()
}

fn assert_converges(dir: &Path, fj: &Forgejo, workflows: &[&str]) {
    let r = finish(spawn(dir, &args(fj, workflows)), &fj.token());
    assert_ne!(r["failed"], true, "{}", msg(&r));
    for w in workflows {
        assert_eq!(fj.dispatch_requests(w), 1, "{w} dispatched once");
    }
}

#[test]
fn server_down_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let a = args(&fj, &["deploy-n8n.yml"]);
    let (url, token) = (fj.url().to_string(), fj.token());
    drop(fj);
    let r = finish(spawn(dir.path(), &a), &token);
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
    assert_converges(dir.path(), &fj, &["deploy-n8n.yml"]);
}

#[test]
fn server_gone_while_waiting_reports_the_dispatched_runs() {
    let dir = tempfile::tempdir().unwrap();
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = ["deploy-n8n.yml", "deploy-glance.yml"];
    for w in wf {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_secs(120)));
    }
    let (url, token) = (fj.url().to_string(), fj.token());
    let mut a = args(&fj, &wf);
    a["pickup_timeout"] = json!(10);
    let child = spawn(dir.path(), &a);
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
    assert_converges(dir.path(), &fj, &wf);
}

/// A TCP forwarder in front of the emulator that can cut every connection and drop new ones for
/// a while: the short outage a server restart or a network blip makes.
struct Flaky {
    url: String,
    down: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Flaky {
    fn start(upstream: &str) -> Flaky {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (d, dr, st, op) = (down.clone(), dropped.clone(), stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if d.load(Ordering::SeqCst) {
                    dr.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                if let (Ok(c2), Ok(s2), Ok(c3)) =
                    (client.try_clone(), server.try_clone(), client.try_clone())
                {
                    op.lock().unwrap().push(c3);
                    std::thread::spawn(move || pipe(client, server));
                    std::thread::spawn(move || pipe(s2, c2));
                }
            }
        });
        Flaky {
            url,
            down,
            dropped,
            stop,
            open,
            thread: Some(thread),
        }
    }

    /// Cuts the open connections and drops new ones until `up`.
    fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for Flaky {
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
fn short_outage_while_waiting_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wf = "deploy-n8n.yml";
    fj.set_behaviour(wf, Behaviour::lasting(Duration::from_secs(10)));
    let proxy = Flaky::start(fj.url());
    let mut a = args(&fj, &[wf]);
    a["url"] = json!(proxy.url);
    let child = spawn(dir.path(), &a);
    let dispatched = lab::proc::wait_for(Duration::from_secs(60), || {
        (fj.dispatch_requests(wf) == 1).then_some(())
    });
    assert!(dispatched.is_some(), "the module never dispatched");
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
