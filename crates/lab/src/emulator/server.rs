//! Serving an emulator: a tiny_http server on a free loopback port, worker threads that parse
//! each request, call the emulator's routes, log and answer, and a stop on drop.

use super::request::{Body, Request, Response};
use crate::error::{LabError, Result};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How an emulator is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names the emulator in errors and its threads' names.
    pub name: &'static str,
    /// Threads answering requests. One serves requests strictly in order.
    pub workers: usize,
    /// The most of a request body read; the rest is ignored.
    pub max_body: u64,
    /// `Content-Type` of JSON bodies (servers differ in the spacing).
    pub json_type: &'static str,
    /// Query parameters the request log leaves out (credentials).
    pub hidden_query: &'static [&'static str],
    /// `Content-Type` of text bodies.
    pub text_type: &'static str,
}

impl Options {
    pub fn new(name: &'static str) -> Options {
        Options {
            name,
            workers: 1,
            max_body: 4 << 20,
            json_type: "application/json; charset=utf-8",
            hidden_query: &["token", "access_token"],
            text_type: "text/plain",
        }
    }
}

/// One logged request: method, path with the decoded query (hidden parameters left out), and
/// the status answered. Never a header value or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A bound emulator that does not answer yet: its URL is known, so state can be built with it.
pub struct Listener {
    server: tiny_http::Server,
    url: String,
    opts: Options,
}

impl Listener {
    /// Binds a free 127.0.0.1 port.
    pub fn bind(opts: Options) -> Result<Listener> {
        let server = super::http::loopback_server()
            .map_err(|e| LabError::msg(format!("{}: cannot bind 127.0.0.1: {e}", opts.name)))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| LabError::msg(format!("{}: no TCP address", opts.name)))?;
        Ok(Listener {
            server,
            url: format!("http://127.0.0.1:{port}"),
            opts,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts answering every request with `routes`.
    pub fn serve<F>(self, routes: F) -> Result<Emulator>
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            server: self.server,
            opts: self.opts,
            stop: AtomicBool::new(false),
            served: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let routes = Arc::new(routes);
        let mut emulator = Emulator {
            url: self.url,
            shared,
            threads: Vec::new(),
        };
        for i in 0..emulator.shared.opts.workers.max(1) {
            let (shared, routes) = (emulator.shared.clone(), routes.clone());
            emulator.spawn(&format!("worker-{i}"), move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    match shared.server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(rq)) => shared.answer(rq, &*routes),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })?;
        }
        Ok(emulator)
    }
}

struct Shared {
    server: tiny_http::Server,
    opts: Options,
    stop: AtomicBool,
    served: AtomicU64,
    log: Mutex<Vec<LoggedRequest>>,
}

impl Shared {
    fn answer(&self, mut rq: tiny_http::Request, routes: &dyn Fn(&Request) -> Response) {
        self.served.fetch_add(1, Ordering::SeqCst);
        let headers = rq
            .headers()
            .iter()
            .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
            .collect();
        let mut body = Vec::new();
        let _ = rq
            .as_reader()
            .take(self.opts.max_body)
            .read_to_end(&mut body);
        let req = Request::new(rq.method().as_str(), rq.url(), headers, body);
        let resp = routes(&req);
        // Logged before the answer leaves: a client that has its answer finds its request logged.
        self.log().push(LoggedRequest {
            method: req.method.clone(),
            path: req.logged_path(self.opts.hidden_query),
            status: resp.status,
        });
        let (bytes, ctype) = match resp.body {
            Body::Json(v) => (
                serde_json::to_vec(&v).unwrap_or_default(),
                self.opts.json_type,
            ),
            Body::RawJson(t) => (t.into_bytes(), self.opts.json_type),
            Body::Text(t) => (t.into_bytes(), self.opts.text_type),
            Body::Bytes(b) => (b, "application/octet-stream"),
            Body::Empty => (Vec::new(), ""),
        };
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !ctype.is_empty() {
            headers.push(("Content-Type", ctype));
        }
        headers.extend(resp.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        super::http::respond(rq, resp.status, &headers, &bytes);
    }

    fn log(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A serving emulator; dropping it stops its threads.
pub struct Emulator {
    url: String,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// Logged requests with this method whose path (query left out) equals `path`.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }

    /// Runs `tick` every `period` until the emulator stops (state that moves on wall-clock time).
    pub fn every<F>(&mut self, period: Duration, tick: F) -> Result<()>
    where
        F: Fn() + Send + 'static,
    {
        let shared = self.shared.clone();
        self.spawn("ticker", move || {
            while !shared.stop.load(Ordering::SeqCst) {
                tick();
                std::thread::sleep(period);
            }
        })
    }

    fn spawn(&mut self, what: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let name = self.shared.opts.name;
        let t = std::thread::Builder::new()
            .name(format!("{name}-{what}"))
            .spawn(f)
            .map_err(|e| LabError::msg(format!("{name}: cannot start a thread: {e}")))?;
        self.threads.push(t);
        Ok(())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.server.unblock();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
