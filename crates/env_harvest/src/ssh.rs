//! One SSH connection (ssh2 / libssh2) with the host key verified before any authentication, and
//! many commands run over it in parallel channels.
//!
//! Concurrency design: libssh2 needs every call on one session serialised, and sharing a blocking
//! `Session` across threads corrupted the stream in testing (contract §2.8). So after
//! authentication the session is switched to non-blocking mode and driven by a single thread: a
//! poll loop steps up to `parallel` channel state machines (open → exec → send_eof → read stdout
//! and stderr together → close → wait_close → exit status), waiting on the socket only when no
//! channel made progress. Reading both streams on every pass avoids the 2 MiB shared-window
//! deadlock (§2.6).

use ansible_module::Secret;
use ssh2::{BlockDirections, CheckResult, HashType, HostKeyType, KnownHostFileKind, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest stdout kept per command (a `.env` file); more closes the channel and marks it truncated.
pub const STDOUT_CAP: usize = 1024 * 1024;
/// Largest stderr kept per command; the rest is read and discarded.
pub const STDERR_CAP: usize = 4096;

/// What to do with a host key that is not in known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    Strict,
    AcceptNew,
}

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    KeyFile(PathBuf),
    KeyData(Secret),
    Agent,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    pub passphrase: Option<Secret>,
    pub known_hosts: PathBuf,
    pub host_key_fingerprint: Option<String>,
    pub host_key_checking: HostKeyChecking,
    pub timeout: Duration,
}

/// Why the connection failed. Texts name the host and what to do; never key material.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "could not connect to {host}:{port}: {reason}. Check host, port and that sshd runs there"
    )]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("SSH handshake with {host}:{port} failed: {0}", .source)]
    Handshake {
        host: String,
        port: u16,
        source: ssh2::Error,
    },
    #[error("HOST KEY MISMATCH for {host}:{port}: the server presented {fingerprint}, which differs from {expected}. Possible man-in-the-middle; nothing was sent to the server. If the key was changed on purpose, update the known_hosts entry or host_key_fingerprint")]
    HostKeyMismatch {
        host: String,
        port: u16,
        fingerprint: String,
        expected: String,
    },
    #[error("the host key of {host}:{port} ({fingerprint}) is not in {known_hosts}; nothing was sent to the server. Add it (ssh-keyscan, then verify the fingerprint), pin it with host_key_fingerprint, or set host_key_checking=accept-new to trust it on first use")]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("could not check the host key of {host}:{port} against {known_hosts}: {reason}")]
    KnownHosts {
        host: String,
        port: u16,
        known_hosts: String,
        reason: String,
    },
    #[error("authentication as {user} on {host}:{port} failed ({method}): {reason}")]
    Auth {
        user: String,
        host: String,
        port: u16,
        method: &'static str,
        reason: String,
    },
    #[error("SSH session error on {host}:{port}: {reason}")]
    Session {
        host: String,
        port: u16,
        reason: String,
    },
}

/// The result of one remote command.
#[derive(Debug, Default)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    /// stdout exceeded [`STDOUT_CAP`]; the channel was closed early.
    pub stdout_truncated: bool,
    /// stderr with control characters removed, at most [`STDERR_CAP`] bytes kept.
    pub stderr: String,
    pub exit_status: Option<i32>,
    /// A channel-level failure (open refused, timeout, transport error).
    pub error: Option<String>,
}

/// An authenticated connection.
pub struct Connection {
    sess: Session,
    fd: RawFd,
    pub host: String,
    pub port: u16,
    /// The server's host key fingerprint (`SHA256:…`).
    pub fingerprint: String,
    /// True when accept-new added the key to known_hosts.
    pub host_key_added: bool,
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `SHA256:<base64 without padding>` as `ssh-keygen -l` prints it.
fn fingerprint_of(sess: &Session) -> String {
    let h = sess.host_key_hash(HashType::Sha256).unwrap_or_default();
    format!("SHA256:{}", b64(h).trim_end_matches('='))
}

fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-37)
}

impl Connection {
    /// Connects, verifies the host key, then authenticates.
    pub fn open(o: &ConnectOptions) -> Result<Connection, SshError> {
        let (host, port) = (o.host.clone(), o.port);
        let cerr = |reason: String| SshError::Connect {
            host: host.clone(),
            port,
            reason,
        };
        let addrs: Vec<_> = (o.host.as_str(), o.port)
            .to_socket_addrs()
            .map_err(|e| cerr(format!("cannot resolve the host: {e}")))?
            .collect();
        let mut last = "no address".to_string();
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, o.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let tcp = tcp.ok_or_else(|| cerr(last))?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let mut sess = Session::new().map_err(|e| cerr(e.to_string()))?;
        sess.set_timeout(
            u32::try_from(o.timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
        );
        sess.set_tcp_stream(tcp);
        sess.handshake().map_err(|source| SshError::Handshake {
            host: host.clone(),
            port,
            source,
        })?;

        // Host key: checked here, before any authentication call.
        let fingerprint = fingerprint_of(&sess);
        let host_key_added = Self::check_host_key(&sess, o, &fingerprint)?;

        let auth_err = |method: &'static str, reason: String| SshError::Auth {
            user: o.user.clone(),
            host: host.clone(),
            port,
            method,
            reason,
        };
        let pass = o.passphrase.as_ref().map(Secret::expose);
        let res = match &o.auth {
            Auth::KeyFile(p) => sess
                .userauth_pubkey_file(&o.user, None, p, pass)
                .map_err(|e| auth_err("private_key", e.message().to_string())),
            Auth::KeyData(k) => sess
                .userauth_pubkey_memory(&o.user, None, k.expose(), pass)
                .map_err(|e| auth_err("private_key_data", e.message().to_string())),
            Auth::Agent => sess
                .userauth_agent(&o.user)
                .map_err(|e| auth_err("ssh-agent", e.message().to_string())),
        };
        res?;
        if !sess.authenticated() {
            return Err(auth_err(
                "publickey",
                "the server did not accept the key".into(),
            ));
        }
        Ok(Connection {
            sess,
            fd,
            host,
            port,
            fingerprint,
            host_key_added,
        })
    }

    /// Returns whether a key was added (accept-new).
    fn check_host_key(
        sess: &Session,
        o: &ConnectOptions,
        fingerprint: &str,
    ) -> Result<bool, SshError> {
        let (host, port) = (o.host.clone(), o.port);
        let kh_name = o.known_hosts.display().to_string();
        if let Some(pin) = &o.host_key_fingerprint {
            let want = pin.trim().trim_end_matches('=');
            if want != fingerprint {
                return Err(SshError::HostKeyMismatch {
                    host,
                    port,
                    fingerprint: fingerprint.to_string(),
                    expected: format!("the pinned host_key_fingerprint {want}"),
                });
            }
            return Ok(false);
        }
        let (key, key_type) = sess.host_key().ok_or_else(|| SshError::KnownHosts {
            host: host.clone(),
            port,
            known_hosts: kh_name.clone(),
            reason: "the server sent no host key".into(),
        })?;
        let mut kh = sess.known_hosts().map_err(|e| SshError::KnownHosts {
            host: host.clone(),
            port,
            known_hosts: kh_name.clone(),
            reason: e.to_string(),
        })?;
        // Line by line: one unparsable line must not make the whole file unreadable (§2.4).
        let text = match std::fs::read_to_string(&o.known_hosts) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(SshError::KnownHosts {
                    host,
                    port,
                    known_hosts: kh_name,
                    reason: e.to_string(),
                })
            }
        };
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let _ = kh.read_str(l, KnownHostFileKind::OpenSSH);
        }
        match kh.check_port(&o.host, o.port, key) {
            CheckResult::Match => Ok(false),
            CheckResult::Mismatch => Err(SshError::HostKeyMismatch {
                host,
                port,
                fingerprint: fingerprint.to_string(),
                expected: format!("the key recorded in {kh_name}"),
            }),
            CheckResult::NotFound if o.host_key_checking == HostKeyChecking::AcceptNew => {
                let line = format!(
                    "{} {} {}\n",
                    host_pattern(&o.host, o.port),
                    key_type_name(key_type),
                    b64(key)
                );
                append_line(&o.known_hosts, &text, &line).map_err(|e| SshError::KnownHosts {
                    host,
                    port,
                    known_hosts: kh_name,
                    reason: format!("could not add the host key: {e}"),
                })?;
                Ok(true)
            }
            CheckResult::NotFound => Err(SshError::HostKeyUnknown {
                host,
                port,
                fingerprint: fingerprint.to_string(),
                known_hosts: kh_name,
            }),
            CheckResult::Failure => Err(SshError::KnownHosts {
                host,
                port,
                known_hosts: kh_name,
                reason: "libssh2 could not compare the key".into(),
            }),
        }
    }

    /// Runs `commands` with at most `parallel` channels open at a time, each bounded by `timeout`.
    /// `progress(done, total)` is called as commands finish. Results are in command order.
    pub fn run_all(
        &mut self,
        commands: &[String],
        parallel: usize,
        timeout: Duration,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Vec<ExecResult> {
        let parallel = parallel.max(1);
        let mut results: Vec<Option<ExecResult>> = commands.iter().map(|_| None).collect();
        self.sess.set_blocking(false);
        let mut next = 0;
        let mut active: Vec<Job> = Vec::new();
        let mut done = 0;
        loop {
            while active.len() < parallel && next < commands.len() {
                active.push(Job::new(next, timeout));
                next += 1;
            }
            if active.is_empty() {
                break;
            }
            let mut progressed = false;
            for job in active.iter_mut() {
                progressed |= job.step(&self.sess, &commands[job.idx]);
            }
            let mut i = 0;
            while i < active.len() {
                if matches!(active[i].phase, Phase::Done) {
                    let job = active.swap_remove(i);
                    results[job.idx] = Some(job.result);
                    done += 1;
                    progress(done, commands.len());
                    progressed = true;
                } else {
                    i += 1;
                }
            }
            if !progressed {
                self.wait_socket();
            }
        }
        self.sess.set_blocking(true);
        results.into_iter().map(Option::unwrap_or_default).collect()
    }

    fn wait_socket(&self) {
        let mut events = libc::POLLIN;
        if matches!(
            self.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: poll(2) on one valid descriptor owned by the session; bounded wait.
        unsafe {
            libc::poll(&mut pfd, 1, 50);
        }
    }

    /// Ends the session politely.
    pub fn close(self) {
        self.sess.set_blocking(true);
        let _ = self.sess.disconnect(None, "done", None);
    }
}

fn append_line(path: &Path, existing: &str, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())
}

enum Phase {
    Open,
    Exec,
    SendEof,
    Read,
    Close,
    WaitClose,
    Done,
}

struct Job {
    idx: usize,
    phase: Phase,
    ch: Option<ssh2::Channel>,
    deadline: Instant,
    out_done: bool,
    err_done: bool,
    err_raw: Vec<u8>,
    result: ExecResult,
}

impl Job {
    fn new(idx: usize, timeout: Duration) -> Job {
        Job {
            idx,
            phase: Phase::Open,
            ch: None,
            deadline: Instant::now() + timeout,
            out_done: false,
            err_done: false,
            err_raw: Vec::new(),
            result: ExecResult::default(),
        }
    }

    fn fail(&mut self, what: &str, e: impl std::fmt::Display) {
        self.result.error = Some(format!("{what}: {e}"));
        self.finish();
    }

    fn finish(&mut self) {
        self.result.stderr = sanitize(&self.err_raw);
        self.ch = None;
        self.phase = Phase::Done;
    }

    /// Advances the state machine as far as it goes without blocking. True if anything happened.
    fn step(&mut self, sess: &Session, cmd: &str) -> bool {
        if Instant::now() > self.deadline && !matches!(self.phase, Phase::Done) {
            if let Some(ch) = self.ch.as_mut() {
                let _ = ch.close();
            }
            self.fail("timed out", "the command did not finish in time");
            return true;
        }
        let mut progressed = false;
        loop {
            let before = progressed;
            match self.phase {
                Phase::Open => match sess.channel_session() {
                    Ok(ch) => {
                        self.ch = Some(ch);
                        self.phase = Phase::Exec;
                        progressed = true;
                    }
                    Err(e) if would_block(&e) => return progressed,
                    Err(e) => {
                        self.fail("could not open a channel", e);
                        return true;
                    }
                },
                Phase::Exec => match self.ch.as_mut().map(|c| c.exec(cmd)) {
                    Some(Ok(())) => {
                        self.phase = Phase::SendEof;
                        progressed = true;
                    }
                    Some(Err(e)) if would_block(&e) => return progressed,
                    Some(Err(e)) => {
                        self.fail("could not start the command", e);
                        return true;
                    }
                    None => return progressed,
                },
                Phase::SendEof => match self.ch.as_mut().map(|c| c.send_eof()) {
                    Some(Ok(())) => {
                        self.phase = Phase::Read;
                        progressed = true;
                    }
                    Some(Err(e)) if would_block(&e) => return progressed,
                    Some(Err(e)) => {
                        self.fail("could not send EOF", e);
                        return true;
                    }
                    None => return progressed,
                },
                Phase::Read => {
                    let Some(ch) = self.ch.as_mut() else {
                        return progressed;
                    };
                    let mut buf = [0u8; 32 * 1024];
                    // stdout
                    while !self.out_done {
                        match ch.read(&mut buf) {
                            Ok(0) => self.out_done = true,
                            Ok(n) => {
                                progressed = true;
                                if self.result.stdout.len() + n > STDOUT_CAP {
                                    self.result.stdout_truncated = true;
                                    self.result.stdout.clear();
                                    self.out_done = true;
                                    self.err_done = true;
                                } else {
                                    self.result.stdout.extend_from_slice(&buf[..n]);
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                self.fail("reading the command's output failed", e);
                                return true;
                            }
                        }
                    }
                    // stderr, read on every pass so neither stream can fill the shared window.
                    let mut es = ch.stderr();
                    while !self.err_done {
                        match es.read(&mut buf) {
                            Ok(0) => self.err_done = true,
                            Ok(n) => {
                                progressed = true;
                                let room = STDERR_CAP.saturating_sub(self.err_raw.len());
                                self.err_raw.extend_from_slice(&buf[..n.min(room)]);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                self.fail("reading the command's stderr failed", e);
                                return true;
                            }
                        }
                    }
                    if self.out_done && self.err_done {
                        self.phase = Phase::Close;
                        progressed = true;
                    } else {
                        return progressed;
                    }
                }
                Phase::Close => match self.ch.as_mut().map(|c| c.close()) {
                    Some(Ok(())) => {
                        self.phase = if self.result.stdout_truncated {
                            Phase::Done
                        } else {
                            Phase::WaitClose
                        };
                        if self.result.stdout_truncated {
                            self.finish();
                        }
                        progressed = true;
                    }
                    Some(Err(e)) if would_block(&e) => return progressed,
                    Some(Err(e)) => {
                        self.fail("closing the channel failed", e);
                        return true;
                    }
                    None => return progressed,
                },
                Phase::WaitClose => {
                    let Some(ch) = self.ch.as_mut() else {
                        return progressed;
                    };
                    match ch.wait_close() {
                        Ok(()) => {
                            // Only after wait_close is the exit status reliable (§2.5).
                            self.result.exit_status = ch.exit_status().ok();
                            if let Ok(sig) = ch.exit_signal() {
                                if let Some(name) = sig.exit_signal {
                                    self.result.error = Some(format!(
                                        "the command was killed by signal {}",
                                        sanitize(name.as_bytes())
                                    ));
                                }
                            }
                            self.finish();
                            return true;
                        }
                        Err(e) if would_block(&e) => return progressed,
                        Err(e) => {
                            self.fail("waiting for the channel to close failed", e);
                            return true;
                        }
                    }
                }
                Phase::Done => return progressed,
            }
            if progressed == before && !progressed {
                return false;
            }
        }
    }
}

/// Removes control characters (ANSI escapes included: ESC and the CSI introducer go, the rest is
/// plain text), decodes lossily and trims. Newlines become spaces.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Drop a CSI sequence: ESC [ params final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\n' || c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Quotes one word for a POSIX shell: `'…'` with `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_sanitizing() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(sanitize(b"\x1b[31mred\x1b[0m\r\nnext\x07"), "red next");
        assert_eq!(b64(b"abc"), "YWJj");
        assert_eq!(b64(b"ab"), "YWI=");
    }
}
