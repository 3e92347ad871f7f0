//! The emulators' HTTP plumbing on tiny_http: a loopback server whose connections have
//! TCP_NODELAY, and responses sent in one write.
//!
//! tiny_http's own `respond` writes the head and the body through a 1 KiB buffer, so a body that
//! does not fit leaves as a second small write. Nagle's algorithm holds that write until the
//! client acknowledges the first one, and the client delays its ACK (up to 40 ms on Linux):
//! every response over about 1 KiB took 40 ms more than it should.

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;

/// A tiny_http server on a free 127.0.0.1 port. Its connections have TCP_NODELAY: tiny_http
/// never shows the accepted sockets, so the option is set on the listening socket, from which
/// Linux copies it to every accepted connection.
pub fn loopback_server() -> io::Result<tiny_http::Server> {
    tiny_http::Server::from_listener(nodelay_listener()?, None)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// A listener on a free 127.0.0.1 port with TCP_NODELAY set (inherited by accepted sockets).
pub fn nodelay_listener() -> io::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Answers `req` with status line, headers, `Content-Length` and body in one write (see the
/// module doc). Header names and values are the emulators' own, never a client's.
pub fn respond(req: tiny_http::Request, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let reason = tiny_http::StatusCode(status).default_reason_phrase();
    // RFC 9110: no body on 1xx, 204 and 304, and none on a HEAD request.
    let bodyless = matches!(status, 100..=199 | 204 | 304);
    let send_body = !bodyless && *req.method() != tiny_http::Method::Head;
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for (k, v) in headers {
        debug_assert!(!k.contains(['\r', '\n']) && !v.contains(['\r', '\n']));
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !bodyless {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if send_body {
        out.extend_from_slice(body);
    }
    // The writer buffers 1 KiB: a larger slice goes straight to the socket in one write, a
    // smaller one leaves with the flush. A client that hung up is not an emulator error.
    let mut w = req.into_writer();
    let _ = w.write_all(&out).and_then(|()| w.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    #[test]
    fn accepted_connections_have_nodelay() {
        let listener = nodelay_listener().unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    /// One write arrives as one segment on loopback, so the client's first read holds the whole
    /// response; tiny_http's `respond` sent a 4 KiB body after the head, held back by Nagle.
    /// Checked on two requests of one keep-alive connection.
    #[test]
    fn a_response_arrives_whole_in_the_first_read() {
        let server = loopback_server().unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let body = vec![b'x'; 4096];
        let serving = {
            let body = body.clone();
            std::thread::spawn(move || {
                for _ in 0..2 {
                    let req = server.recv().unwrap();
                    respond(req, 200, &[("Content-Type", "text/plain")], &body);
                }
            })
        };
        let mut c = TcpStream::connect(addr).unwrap();
        for _ in 0..2 {
            c.write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let n = c.read(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            let (head, got) = text.split_once("\r\n\r\n").expect("a whole head");
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains("\r\nContent-Length: 4096"), "{head}");
            assert_eq!(got.len(), body.len(), "the first read ends the response");
        }
        serving.join().unwrap();
    }

    #[test]
    fn no_body_on_204_or_head() {
        let server = loopback_server().unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let serving = std::thread::spawn(move || {
            let req = server.recv().unwrap();
            respond(req, 204, &[], b"ignored");
            let req = server.recv().unwrap();
            respond(req, 200, &[], b"not sent");
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\nHEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        serving.join().unwrap();
        assert_eq!(
            all,
            "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"
        );
    }
}
