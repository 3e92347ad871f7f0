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

use crate::error::Error;
use ansible_module::text::sanitize;
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

/// What to do with a host key that is not in known_hosts (the `host_key_checking` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    #[default]
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

impl Auth {
    /// A key file, else key text, else ssh-agent; `None` when both a file and text are given.
    pub fn from_options(file: Option<&PathBuf>, data: Option<&Secret>) -> Option<Auth> {
        match (file, data) {
            (Some(_), Some(_)) => None,
            (Some(k), None) => Some(Auth::KeyFile(k.clone())),
            (None, Some(d)) => Some(Auth::KeyData(d.clone())),
            (None, None) => Some(Auth::Agent),
        }
    }
}

/// `~/.ssh/known_hosts` of the user the module runs as, the known_hosts file when none is given.
pub fn default_known_hosts() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".ssh/known_hosts")
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

/// Why one remote command produced no usable result (the texts are built by the caller, which
/// knows the target; the `reason`s are libssh2's short local texts, never remote output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The command did not finish within the timeout.
    TimedOut { secs: u64 },
    /// The SSH connection broke while this command was in flight (`during`: "reading", …).
    ConnectionLost {
        during: &'static str,
        reason: String,
    },
    /// The connection had already broken before this command's turn: nothing was sent.
    NotSent,
    /// The server refused or failed this one channel; the connection itself still worked.
    /// `refused`: the server answered the channel open with a failure (what sshd does when
    /// `MaxSessions` is reached), as opposed to any other channel-level error.
    Channel {
        during: &'static str,
        reason: String,
        refused: bool,
    },
    /// The remote command was killed by a signal.
    Signal(String),
}

/// The result of one remote command. Its Debug shows sizes, never the output: stdout may hold a
/// `.env` file or a login code.
#[derive(Default)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    /// stdout exceeded [`STDOUT_CAP`]; the channel was closed early.
    pub stdout_truncated: bool,
    /// stderr with control characters removed, at most [`STDERR_CAP`] bytes kept.
    pub stderr: String,
    pub exit_status: Option<i32>,
    /// A channel- or connection-level failure (open refused, timeout, connection lost).
    pub error: Option<ExecError>,
}

impl std::fmt::Debug for ExecResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecResult")
            .field("stdout_bytes", &self.stdout.len())
            .field("stdout_truncated", &self.stdout_truncated)
            .field("stderr_bytes", &self.stderr.len())
            .field("exit_status", &self.exit_status)
            .field("error", &self.error)
            .finish()
    }
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

/// Standard base64 with padding (host keys here; `env_harvest` returns a value that is not UTF-8
/// this way).
pub fn b64(data: &[u8]) -> String {
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

fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(-9) | ssh2::ErrorCode::Session(-30)
    )
}

/// libssh2 codes meaning the connection itself is gone or unusable: banner recv/send (-2/-3),
/// socket send (-7), decrypt (-12), disconnect (-13), socket recv (-43), encrypt (-44),
/// bad socket (-45).
fn connection_broken(code: ssh2::ErrorCode) -> bool {
    matches!(
        code,
        ssh2::ErrorCode::Session(-2 | -3 | -7 | -12 | -13 | -43 | -44 | -45)
    )
}

/// libssh2's short message of an error, cleaned for display (no code prefix).
fn reason_of(e: &ssh2::Error) -> String {
    sanitize(e.message().as_bytes())
}

/// A failure to connect to the node, with the reason.
fn connect_error(o: &ConnectOptions, reason: String) -> Error {
    Error::Connect {
        host: o.host.clone(),
        port: o.port,
        user: o.user.clone(),
        reason,
    }
}

/// The TCP connection to the node: each address of the host in turn, each bounded by
/// `timeout`.
fn connect_tcp(o: &ConnectOptions) -> Result<TcpStream, Error> {
    let cerr = |reason: String| connect_error(o, reason);
    let addrs: Vec<_> = (o.host.as_str(), o.port)
        .to_socket_addrs()
        .map_err(|e| cerr(format!("cannot resolve the host: {e}")))?
        .collect();
    let mut last = "the name has no address".to_string();
    let mut timed_out = false;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, o.timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => {
                timed_out = matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock);
                last = e.to_string();
            }
        }
    }
    match tcp {
        Some(t) => Ok(t),
        None if timed_out => Err(Error::ConnectTimeout {
            host: o.host.clone(),
            port: o.port,
            user: o.user.clone(),
            secs: o.timeout.as_secs().max(1),
        }),
        None => Err(cerr(last)),
    }
}

/// Authenticates with the key file, the key text or ssh-agent; called after the host key check.
fn authenticate(sess: &Session, o: &ConnectOptions) -> Result<(), Error> {
    let (host, port) = (o.host.clone(), o.port);
    let secs = o.timeout.as_secs().max(1);
    let user = &o.user;
    let auth_err = |method: &'static str, e: Option<&ssh2::Error>| {
        let hint = match e {
                Some(e) if is_timeout(e) => format!(
                    "the node did not answer within {secs} s; raise `timeout` or check the node's load"
                ),
                Some(e) if connection_broken(e.code()) => {
                    "the connection broke during authentication; check that sshd on the node is up and re-run".to_string()
                }
                _ if method == "ssh-agent" => format!(
                    "check that ssh-agent runs (SSH_AUTH_SOCK is set) and holds a key that is in {user}'s ~/.ssh/authorized_keys on the node, or set private_key"
                ),
                _ => format!(
                    "check that the key's public half is in {user}'s ~/.ssh/authorized_keys on the node (and that `passphrase` is right if the key has one)"
                ),
            };
        Error::Auth {
            user: user.clone(),
            host: host.clone(),
            port,
            method,
            reason: e
                .map(reason_of)
                .unwrap_or_else(|| "the server did not accept the key".into()),
            hint,
        }
    };
    let pass = o.passphrase.as_ref().map(Secret::expose);
    let res = match &o.auth {
        Auth::KeyFile(p) => sess
            .userauth_pubkey_file(&o.user, None, p, pass)
            .map_err(|e| auth_err("private_key", Some(&e))),
        Auth::KeyData(k) => sess
            .userauth_pubkey_memory(&o.user, None, k.expose(), pass)
            .map_err(|e| auth_err("private_key_data", Some(&e))),
        Auth::Agent => sess
            .userauth_agent(&o.user)
            .map_err(|e| auth_err("ssh-agent", Some(&e))),
    };
    res?;
    if !sess.authenticated() {
        return Err(auth_err("publickey", None));
    }
    Ok(())
}

/// Reads known_hosts into libssh2 line by line; returns the `@revoked` lines' rest.
fn load_known_hosts<'t>(kh: &mut ssh2::KnownHosts, text: &'t [u8]) -> Vec<&'t str> {
    let mut revoked = Vec::new();
    for raw in text.split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // Markers (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): libssh2 knows none and would read
        // the marker as a host name. `@revoked` keys are collected and refused below, as
        // OpenSSH refuses them. `@cert-authority` lines are skipped: libssh2 does not accept
        // host certificates, so a CA cannot vouch for a host here, and such a host is
        // unknown unless its own key is listed. Unknown markers are skipped, as OpenSSH does.
        if let Some(rest) = l.strip_prefix("@revoked") {
            if rest.starts_with(char::is_whitespace) {
                revoked.push(rest.trim());
            }
            continue;
        }
        if l.starts_with('@') {
            continue;
        }
        let _ = kh.read_str(l, KnownHostFileKind::OpenSSH);
    }
    revoked
}

impl Connection {
    /// Connects, verifies the host key, then authenticates.
    pub fn open(o: &ConnectOptions) -> Result<Connection, Error> {
        let (host, port) = (o.host.clone(), o.port);
        let secs = o.timeout.as_secs().max(1);
        let cerr = |reason: String| connect_error(o, reason);
        let tcp = connect_tcp(o)?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let mut sess = Session::new().map_err(|e| cerr(e.to_string()))?;
        sess.set_timeout(
            u32::try_from(o.timeout.as_millis())
                .unwrap_or(u32::MAX)
                .max(1),
        );
        sess.set_tcp_stream(tcp);
        sess.handshake().map_err(|e| {
            if is_timeout(&e) {
                Error::HandshakeTimeout {
                    host: host.clone(),
                    port,
                    user: o.user.clone(),
                    secs,
                }
            } else {
                Error::Handshake {
                    host: host.clone(),
                    port,
                    user: o.user.clone(),
                    reason: reason_of(&e),
                }
            }
        })?;

        // Host key: checked here, before any authentication call.
        let fingerprint = fingerprint_of(&sess);
        let host_key_added = Self::check_host_key(&sess, o, &fingerprint)?;

        authenticate(&sess, o)?;
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
    ) -> Result<bool, Error> {
        let (host, port) = (o.host.clone(), o.port);
        let kh_name = o.known_hosts.display().to_string();
        if let Some(pin) = &o.host_key_fingerprint {
            let want = pin.trim().trim_end_matches('=');
            if want != fingerprint {
                return Err(Error::HostKeyMismatch {
                    host,
                    port,
                    fingerprint: fingerprint.to_string(),
                    expected: format!("the pinned host_key_fingerprint {want}"),
                });
            }
            return Ok(false);
        }
        let (key, key_type) = sess.host_key().ok_or_else(|| Error::KnownHosts {
            host: host.clone(),
            port,
            known_hosts: kh_name.clone(),
            reason: "the server sent no host key".into(),
        })?;
        let mut kh = sess.known_hosts().map_err(|e| Error::KnownHosts {
            host: host.clone(),
            port,
            known_hosts: kh_name.clone(),
            reason: e.to_string(),
        })?;
        // Line by line: one unparsable line must not make the whole file unreadable (§2.4).
        // Read as bytes, so that a line that is not UTF-8 is skipped like any other unparsable
        // line instead of failing the whole check.
        let text = match std::fs::read(&o.known_hosts) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Error::KnownHosts {
                    host,
                    port,
                    known_hosts: kh_name,
                    reason: e.to_string(),
                })
            }
        };
        let revoked = load_known_hosts(&mut kh, &text);
        // A revoked key is refused whatever else the file says, before any other outcome (an
        // accept-new append included).
        if revoked
            .iter()
            .any(|line| revokes(sess, line, &o.host, o.port, key))
        {
            return Err(Error::HostKeyRevoked {
                host,
                port,
                fingerprint: fingerprint.to_string(),
                known_hosts: kh_name,
            });
        }
        match kh.check_port(&o.host, o.port, key) {
            CheckResult::Match => Ok(false),
            CheckResult::Mismatch => Err(Error::HostKeyMismatch {
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
                append_line(&o.known_hosts, &text, &line).map_err(|e| Error::KnownHosts {
                    host,
                    port,
                    known_hosts: kh_name,
                    reason: format!("could not add the host key: {e}"),
                })?;
                Ok(true)
            }
            CheckResult::NotFound => Err(Error::HostKeyUnknown {
                host,
                port,
                fingerprint: fingerprint.to_string(),
                known_hosts: kh_name,
            }),
            CheckResult::Failure => Err(Error::KnownHosts {
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
        // Set when a job saw the connection break: the jobs in flight are lost with it and the
        // ones not started are not sent at all.
        let mut lost: Option<String> = None;
        loop {
            if let Some(reason) = &lost {
                for job in active.iter_mut() {
                    job.lost(reason);
                }
                while next < commands.len() {
                    results[next] = Some(ExecResult {
                        error: Some(ExecError::NotSent),
                        ..ExecResult::default()
                    });
                    next += 1;
                    done += 1;
                    progress(done, commands.len());
                }
            }
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
                    if let Some(ExecError::ConnectionLost { reason, .. }) = &job.result.error {
                        lost.get_or_insert_with(|| reason.clone());
                    }
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

/// Whether the `@revoked` line `line` (without its marker: host patterns, key type, base64 key)
/// revokes `key` for `host:port`. Its patterns are matched as OpenSSH matches them: a
/// comma-separated list of names with `*` and `?` wildcards, case-insensitive, where a match of
/// a `!`-negated pattern makes the line not apply; a hashed name (`|1|…`) is checked by
/// libssh2. Like the lookup of trusted keys (libssh2's), a pattern without a port also applies
/// to a non-standard port, so a line never revokes less than a trusting line would trust.
fn revokes(sess: &Session, line: &str, host: &str, port: u16, key: &[u8]) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(patterns), Some(key_type), Some(blob)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    if blob != b64(key) {
        return false;
    }
    if patterns.starts_with('|') {
        let Ok(mut kh) = sess.known_hosts() else {
            return false;
        };
        return kh
            .read_str(
                &format!("{patterns} {key_type} {blob}"),
                KnownHostFileKind::OpenSSH,
            )
            .is_ok()
            && matches!(kh.check_port(host, port, key), CheckResult::Match);
    }
    let names = [host_pattern(host, port).to_lowercase(), host.to_lowercase()];
    let mut positive = false;
    for pat in patterns.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if names.iter().any(|n| glob(&pat.to_lowercase(), n)) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// OpenSSH's `match_pattern`: `*` is any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn append_line(path: &Path, existing: &[u8], line: &str) -> std::io::Result<()> {
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
    if !existing.is_empty() && !existing.ends_with(b"\n") {
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
    timeout_secs: u64,
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
            timeout_secs: timeout.as_secs().max(1),
            out_done: false,
            err_done: false,
            err_raw: Vec::new(),
            result: ExecResult::default(),
        }
    }

    fn fail(&mut self, e: ExecError) {
        self.result.error = Some(e);
        self.finish();
    }

    /// What the job was doing, for "… was lost while {during} <target>".
    fn during(&self) -> &'static str {
        match self.phase {
            Phase::Open => "opening a channel to read",
            Phase::Exec | Phase::SendEof => "starting the command to read",
            Phase::Read => "reading",
            Phase::Close | Phase::WaitClose | Phase::Done => "finishing the read of",
        }
    }

    /// Classifies a failed libssh2 call of this job.
    fn fail_ssh(&mut self, e: &ssh2::Error) {
        let during = self.during();
        let err = if connection_broken(e.code()) {
            ExecError::ConnectionLost {
                during,
                reason: reason_of(e),
            }
        } else if is_timeout(e) {
            ExecError::TimedOut {
                secs: self.timeout_secs,
            }
        } else {
            ExecError::Channel {
                during,
                reason: reason_of(e),
                // LIBSSH2_ERROR_CHANNEL_FAILURE: the server sent CHANNEL_OPEN_FAILURE.
                refused: matches!(self.phase, Phase::Open)
                    && e.code() == ssh2::ErrorCode::Session(-21),
            }
        };
        self.fail(err);
    }

    /// A failed read: ssh2 turns the libssh2 error into an `io::Error` without its code, so the
    /// session's last error says whether the connection broke.
    fn fail_io(&mut self, sess: &Session, e: &std::io::Error) {
        if e.kind() == ErrorKind::TimedOut {
            return self.fail(ExecError::TimedOut {
                secs: self.timeout_secs,
            });
        }
        match ssh2::Error::last_session_error(sess) {
            Some(se) if connection_broken(se.code()) || is_timeout(&se) => self.fail_ssh(&se),
            _ => {
                let during = self.during();
                self.fail(ExecError::Channel {
                    during,
                    reason: sanitize(e.to_string().as_bytes()),
                    refused: false,
                })
            }
        }
    }

    /// The connection broke under another job: this one is lost too.
    fn lost(&mut self, reason: &str) {
        if !matches!(self.phase, Phase::Done) {
            let during = self.during();
            self.fail(ExecError::ConnectionLost {
                during,
                reason: reason.to_string(),
            });
        }
    }

    fn finish(&mut self) {
        self.result.stderr = sanitize(&self.err_raw);
        self.ch = None;
        self.phase = Phase::Done;
    }

    /// Reads what stdout and stderr hold now, without blocking.
    fn read_available(&mut self, sess: &Session) -> Pumped {
        let Some(ch) = self.ch.as_mut() else {
            return Pumped::NoChannel;
        };
        let mut progressed = false;
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
                    self.fail_io(sess, &e);
                    return Pumped::Failed;
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
                    self.fail_io(sess, &e);
                    return Pumped::Failed;
                }
            }
        }
        Pumped::Read(progressed)
    }

    /// Advances the state machine as far as it goes without blocking. True if anything happened.
    fn step(&mut self, sess: &Session, cmd: &str) -> bool {
        if Instant::now() > self.deadline && !matches!(self.phase, Phase::Done) {
            if let Some(ch) = self.ch.as_mut() {
                let _ = ch.close();
            }
            self.fail(ExecError::TimedOut {
                secs: self.timeout_secs,
            });
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
                        self.fail_ssh(&e);
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
                        self.fail_ssh(&e);
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
                        self.fail_ssh(&e);
                        return true;
                    }
                    None => return progressed,
                },
                Phase::Read => match self.read_available(sess) {
                    Pumped::NoChannel => return progressed,
                    Pumped::Failed => return true,
                    Pumped::Read(read) => {
                        progressed |= read;
                        if self.out_done && self.err_done {
                            self.phase = Phase::Close;
                            progressed = true;
                        } else {
                            return progressed;
                        }
                    }
                },
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
                        self.fail_ssh(&e);
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
                                    self.result.error =
                                        Some(ExecError::Signal(sanitize(name.as_bytes())));
                                }
                            }
                            self.finish();
                            return true;
                        }
                        Err(e) if would_block(&e) => return progressed,
                        Err(e) => {
                            self.fail_ssh(&e);
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

/// What one read pass of a channel's streams did.
enum Pumped {
    NoChannel,
    /// The job failed (recorded in its result).
    Failed,
    /// Whether anything was read.
    Read(bool),
}

/// Quotes one word for a POSIX shell: `'…'` with `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_result_debugs_without_its_output() {
        let r = ExecResult {
            stdout: b"POCKETID_CLIENT_SECRET=hunter2-value\n".to_vec(),
            stderr: "cat: hunter2-stderr".into(),
            exit_status: Some(0),
            ..Default::default()
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("stdout_bytes: 37"), "{shown}");
    }

    #[test]
    fn quoting_and_sanitizing() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(b64(b"abc"), "YWJj");
        assert_eq!(b64(b"ab"), "YWI=");
    }

    #[test]
    fn host_patterns_match_as_openssh_matches_them() {
        assert!(glob("*", "[127.0.0.1]:2222"));
        assert!(glob("127.0.0.?", "127.0.0.1"));
        assert!(glob("[127.0.0.1]:*", "[127.0.0.1]:2222"));
        assert!(glob("*.example.org", "pve.example.org"));
        assert!(!glob("*.example.org", "example.org"));
        assert!(!glob("10.*", "127.0.0.1"));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
    }

    /// A known_hosts line, shaped or not: markers, patterns with wildcards and negations, hashed
    /// names, key types and base64 blobs.
    fn known_hosts_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let word = prop_oneof![
            Just("@revoked".to_string()),
            Just("@cert-authority".to_string()),
            Just("|1|abc=|def=".to_string()),
            Just("ssh-ed25519".to_string()),
            Just(
                "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".to_string()
            ),
            "[!*?,\\[\\]:.a-z0-9]{0,16}",
            "\\PC{0,8}",
        ];
        prop_oneof![
            proptest::collection::vec(word, 0..5).prop_map(|w| w.join(" ").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..80),
        ]
    }

    proptest::proptest! {
        /// known_hosts is file text: reading it, and matching `@revoked` lines, never panics.
        #[test]
        fn known_hosts_text_never_panics(
            lines in proptest::collection::vec(known_hosts_line(), 0..8),
            host in "[a-z0-9.*?]{0,12}",
            port in proptest::prelude::any::<u16>(),
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let sess = Session::new().unwrap();
            let mut kh = sess.known_hosts().unwrap();
            let text = lines.join(&b'\n');
            for line in load_known_hosts(&mut kh, &text) {
                let _ = revokes(&sess, line, &host, port, &key);
            }
            let _ = kh.check_port(&host, port, &key);
        }

        #[test]
        fn glob_never_panics(p in "[*?a-c]{0,12}", t in "[a-c]{0,12}") {
            let _ = glob(&p, &t);
        }
    }
}
