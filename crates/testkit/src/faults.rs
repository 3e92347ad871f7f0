//! Servers and proxies that misbehave on purpose, for fault tests: a server that never answers
//! ([`BlackHole`]), a proxy that holds chosen requests ([`Gate`]), and one that goes down and
//! comes back ([`Flaky`]). All listen on 127.0.0.1 and stop on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A loopback listener that hands each accepted connection to its handler (on the accept thread)
/// and keeps what the handler returns, so that the connections can be cut at once; cut and
/// stopped on drop.
struct Acceptor {
    url: String,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(mut on_accept: impl FnMut(TcpStream) -> Option<TcpStream> + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (st, op) = (stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                if let Some(kept) = on_accept(conn) {
                    op.lock().unwrap().push(kept);
                }
            }
        });
        Acceptor {
            url,
            stop,
            open,
            thread: Some(thread),
        }
    }

    /// Shuts down every kept connection.
    fn cut(&self) {
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server that accepts every connection and never answers (a hung server, or a dead backend
/// behind a proxy that holds the connection). Counts the connections it accepted.
pub struct BlackHole {
    pub url: String,
    accepted: Arc<AtomicUsize>,
    _acceptor: Acceptor,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        let acceptor = Acceptor::start(move |c| {
            acc.fetch_add(1, Ordering::SeqCst);
            Some(c)
        });
        BlackHole {
            url: acceptor.url.clone(),
            accepted,
            _acceptor: acceptor,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// An HTTP/1.1 forwarder in front of a server that passes every request through (one upstream
/// connection each, `Connection: close`) except those whose request line starts with `hold`:
/// those are counted and never answered, as by a server that hangs in that handler.
pub struct Gate {
    pub url: String,
    held: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    _acceptor: Acceptor,
}

impl Gate {
    /// Forwards to `upstream` (`http://host:port`), holding requests whose request line starts
    /// with `hold` (e.g. `"POST /api/oidc/clients/x/secrets "`).
    pub fn start(upstream: &str, hold: &str) -> Gate {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let hold = hold.to_string();
        let held = Arc::new(AtomicUsize::new(0));
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let (h, seen) = (held.clone(), heads.clone());
        let acceptor = Acceptor::start(move |mut client| {
            let kept = client.try_clone().ok();
            let (h, upstream, hold) = (h.clone(), upstream.clone(), hold.clone());
            let seen = seen.clone();
            std::thread::spawn(move || {
                while let Some((head, body)) = read_request(&mut client) {
                    seen.lock().unwrap().push(head.clone());
                    if head.starts_with(&hold) {
                        h.fetch_add(1, Ordering::SeqCst);
                        // Never answered; the connection stays open until the client gives up
                        // or the gate is dropped.
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
            kept
        });
        Gate {
            url: acceptor.url.clone(),
            held,
            heads,
            _acceptor: acceptor,
        }
    }

    /// Requests held so far.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The head (request line and headers) of every request seen so far, oldest first: what a
    /// client sent, as the server behind the gate received it.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
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

/// A TCP forwarder in front of a server that can cut every connection and drop new ones for a
/// while: the short outage a server restart or a network blip makes.
pub struct Flaky {
    pub url: String,
    down: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    acceptor: Acceptor,
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
    /// Forwards to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Flaky {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let down = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (d, dr) = (down.clone(), dropped.clone());
        let acceptor = Acceptor::start(move |client| {
            if d.load(Ordering::SeqCst) {
                dr.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                return None;
            }
            let server = TcpStream::connect(&upstream).ok()?;
            let (c2, s2, kept) = (
                client.try_clone().ok()?,
                server.try_clone().ok()?,
                client.try_clone().ok()?,
            );
            std::thread::spawn(move || pipe(client, server));
            std::thread::spawn(move || pipe(s2, c2));
            Some(kept)
        });
        Flaky {
            url: acceptor.url.clone(),
            down,
            dropped,
            acceptor,
        }
    }

    /// Cuts the open connections and drops new ones until `up`.
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.acceptor.cut();
    }

    /// Lets connections through again.
    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Connections dropped while down.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// An HTTP server that answers every request with 403 and a JSON body quoting the whole request
/// (head and body) in `errors` and `message`, as a debugging proxy or a careless server may: a
/// client that prints error bodies unmasked would print its own credentials.
pub struct Echo {
    pub url: String,
    _acceptor: Acceptor,
}

impl Echo {
    pub fn start() -> Echo {
        let acceptor = Acceptor::start(|mut c| {
            let (head, body) = read_request(&mut c)?;
            let request = format!("{head}{}", String::from_utf8_lossy(&body));
            let answer = format!(
                "{{\"errors\":[{r}],\"message\":{r}}}",
                r = serde_json::Value::String(request)
            );
            let _ = write!(
                c,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            None
        });
        Echo {
            url: acceptor.url.clone(),
            _acceptor: acceptor,
        }
    }
}
