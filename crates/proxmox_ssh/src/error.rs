//! The transport's one error type: options that cannot make a connection, and a connection that
//! failed before any command ran. A failed command is an [`ExecError`](crate::ssh::ExecError) of
//! its result instead, since the other commands on the connection go on.

/// Why the transport could not be set up or connect. Texts name the host, port and user (or the
/// option), and say what to do; never key material, a passphrase or remote output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not connect to {host}:{port} (user {user}): {reason}. Check host and port, and that sshd runs on the node")]
    Connect {
        host: String,
        port: u16,
        user: String,
        reason: String,
    },
    #[error("connecting to {host}:{port} (user {user}) timed out after {secs} s: raise `timeout` or check that the node is up and not overloaded (and that no firewall drops the port)")]
    ConnectTimeout {
        host: String,
        port: u16,
        user: String,
        secs: u64,
    },
    #[error("the SSH handshake with {host}:{port} (user {user}) timed out after {secs} s: the TCP connection was accepted but sshd did not answer. Raise `timeout` or check the node's load (and that sshd there is not hung)")]
    HandshakeTimeout {
        host: String,
        port: u16,
        user: String,
        secs: u64,
    },
    #[error("the SSH handshake with {host}:{port} (user {user}) failed ({reason}): check that an SSH server (sshd) listens on that port and accepts this client's algorithms, then re-run")]
    Handshake {
        host: String,
        port: u16,
        user: String,
        reason: String,
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
    #[error("HOST KEY REVOKED for {host}:{port}: the server presented {fingerprint}, which {known_hosts} marks @revoked; nothing was sent to the server. A revoked key must never be trusted (OpenSSH refuses it too): give the node a new host key, verify it and record it (keep the @revoked line)")]
    HostKeyRevoked {
        host: String,
        port: u16,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("could not check the host key of {host}:{port} against {known_hosts}: {reason}. Check that the file is readable (and writable for host_key_checking=accept-new) and holds OpenSSH known_hosts lines")]
    KnownHosts {
        host: String,
        port: u16,
        known_hosts: String,
        reason: String,
    },
    #[error("authentication as {user} on {host}:{port} failed ({method}: {reason}): {hint}")]
    Auth {
        user: String,
        host: String,
        port: u16,
        method: &'static str,
        reason: String,
        hint: String,
    },
    #[error(
        "{prefix}port {port} is not a TCP port: set {prefix}port to the node's SSH port (1-65535)"
    )]
    Port { prefix: &'static str, port: i64 },
    #[error("{prefix}timeout {secs} is too short: set {prefix}timeout to at least 1 second")]
    Timeout { prefix: &'static str, secs: i64 },
    /// AnsibleModule's own words for two exclusive options.
    #[error("parameters are mutually exclusive: {prefix}private_key|{prefix}private_key_data")]
    KeyExclusive { prefix: &'static str },
}
