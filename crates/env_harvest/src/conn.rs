//! The SSH connection options of a Proxmox node, flattened into a module's params, and turning
//! them into the transport's [`ConnectOptions`].

use crate::pct::Place;
use crate::ssh::{default_known_hosts, Auth, ConnectOptions, HostKeyChecking};
use ansible_module::{Failure, Opt, Secret};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize)]
pub struct SshConn {
    pub host: String,
    pub port: i64,
    pub user: String,
    pub private_key: Option<PathBuf>,
    pub private_key_data: Option<Secret>,
    pub passphrase: Option<Secret>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_fingerprint: Option<String>,
    pub host_key_checking: HostKeyChecking,
    pub timeout: i64,
}

/// The options behind [`SshConn`].
pub fn conn_options() -> Vec<Opt> {
    vec![
        Opt::str("host")
            .required()
            .help("SSH host (the Proxmox node)"),
        Opt::int("port")
            .default(22)
            .range(1, 65535)
            .help("SSH port"),
        Opt::str("user")
            .default("root")
            .help("SSH user (pct needs root, or sudo)"),
        Opt::path("private_key")
            .help("Private key file; without it and private_key_data, ssh-agent is used"),
        Opt::str("private_key_data")
            .no_log()
            .help("Private key text (OpenSSH or PEM)"),
        Opt::str("passphrase")
            .no_log()
            .help("Passphrase of the private key"),
        Opt::path("known_hosts").help("known_hosts file [default: ~/.ssh/known_hosts]"),
        Opt::str("host_key_fingerprint").help(
            "Pin the host key (SHA256:… as ssh-keygen -l prints); replaces the known_hosts check",
        ),
        Opt::str("host_key_checking")
            .default("strict")
            .choices(&["strict", "accept-new"])
            .help("Unknown host keys: fail, or append one line to known_hosts"),
        Opt::int("timeout")
            .default(30)
            .range(1, 3600)
            .help("Seconds for connecting and for each remote command"),
    ]
}

impl SshConn {
    /// Where the commands run, for messages.
    pub fn place(&self) -> Place<'_> {
        Place {
            host: &self.host,
            port: self.port as u16,
            user: &self.user,
        }
    }

    /// Checks the options and makes the transport's settings; sends nothing.
    pub fn connect_options(&self) -> Result<ConnectOptions, Failure> {
        if !(1..=65535).contains(&self.port) {
            return Err(Failure::new("port must be between 1 and 65535"));
        }
        if self.timeout < 1 {
            return Err(Failure::new("timeout must be at least 1 second"));
        }
        let known_hosts = self.known_hosts.clone().unwrap_or_else(default_known_hosts);
        let auth = Auth::from_options(self.private_key.as_ref(), self.private_key_data.as_ref())
            .ok_or_else(|| {
                Failure::new("parameters are mutually exclusive: private_key|private_key_data")
            })?;
        Ok(ConnectOptions {
            host: self.host.clone(),
            port: self.port as u16,
            user: self.user.clone(),
            auth,
            passphrase: self.passphrase.clone(),
            known_hosts,
            host_key_fingerprint: self
                .host_key_fingerprint
                .clone()
                .filter(|s| !s.trim().is_empty()),
            host_key_checking: self.host_key_checking,
            timeout: Duration::from_secs(self.timeout as u64),
        })
    }
}
