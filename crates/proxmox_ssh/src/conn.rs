//! The SSH connection options of a Proxmox node, flattened into a module's params, and turning
//! them into the transport's [`ConnectOptions`].

use crate::error::Error;
use crate::pct::Place;
use crate::ssh::{default_known_hosts, Auth, ConnectOptions, HostKeyChecking};
use ansible_module::{Opt, Secret};
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
    pub fn connect_options(&self) -> Result<ConnectOptions, Error> {
        self.named_options("")
    }

    /// [`Self::connect_options`], its messages naming the options with `prefix`.
    fn named_options(&self, prefix: &'static str) -> Result<ConnectOptions, Error> {
        if !(1..=65535).contains(&self.port) {
            return Err(Error::Port {
                prefix,
                port: self.port,
            });
        }
        if self.timeout < 1 {
            return Err(Error::Timeout {
                prefix,
                secs: self.timeout,
            });
        }
        let known_hosts = self.known_hosts.clone().unwrap_or_else(default_known_hosts);
        let auth = Auth::from_options(self.private_key.as_ref(), self.private_key_data.as_ref())
            .ok_or(Error::KeyExclusive { prefix })?;
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

/// [`SshConn`]'s options, each named with an `ssh_` prefix, plus `pct_path` and `sudo`: for
/// modules where `host` and `timeout` mean something else and SSH is needed only sometimes
/// (`pocketid_logs`' docker source, `pocketid_login_code`'s fallback).
#[derive(Debug, Deserialize)]
pub struct PrefixedSshConn {
    pub ssh_host: Option<String>,
    pub ssh_port: i64,
    pub ssh_user: String,
    pub ssh_private_key: Option<PathBuf>,
    pub ssh_private_key_data: Option<Secret>,
    pub ssh_passphrase: Option<Secret>,
    pub ssh_known_hosts: Option<PathBuf>,
    pub ssh_host_key_fingerprint: Option<String>,
    /// Strict when a module does not declare the option.
    #[serde(default)]
    pub ssh_host_key_checking: HostKeyChecking,
    pub ssh_timeout: i64,
    pub pct_path: String,
    pub sudo: bool,
}

/// The options behind [`PrefixedSshConn`]; none is required.
pub fn prefixed_conn_options() -> Vec<Opt> {
    let mut out: Vec<Opt> = conn_options()
        .into_iter()
        .map(|mut o| {
            o.name = prefixed(o.name);
            o.required = false;
            o
        })
        .collect();
    out.push(
        Opt::str("pct_path")
            .default("/usr/sbin/pct")
            .help("Path of pct on the Proxmox node"),
    );
    out.push(
        Opt::bool("sudo")
            .default(false)
            .help("Run pct through sudo -n"),
    );
    out
}

/// `host` → `ssh_host`, for every option [`conn_options`] declares (option names are static).
fn prefixed(name: &str) -> &'static str {
    match name {
        "host" => "ssh_host",
        "port" => "ssh_port",
        "user" => "ssh_user",
        "private_key" => "ssh_private_key",
        "private_key_data" => "ssh_private_key_data",
        "passphrase" => "ssh_passphrase",
        "known_hosts" => "ssh_known_hosts",
        "host_key_fingerprint" => "ssh_host_key_fingerprint",
        "host_key_checking" => "ssh_host_key_checking",
        "timeout" => "ssh_timeout",
        other => panic!("conn_options has a new option {other:?}: name it in conn::prefixed"),
    }
}

impl PrefixedSshConn {
    /// `ssh_host`, when set.
    pub fn host(&self) -> Option<&str> {
        self.ssh_host.as_deref().filter(|h| !h.is_empty())
    }

    /// The transport's settings, or `None` without `ssh_host` (each module says why it needs
    /// one); checks the options and sends nothing.
    pub fn connect_options(&self) -> Result<Option<ConnectOptions>, Error> {
        let Some(host) = self.host() else {
            return Ok(None);
        };
        let conn = SshConn {
            host: host.to_string(),
            port: self.ssh_port,
            user: self.ssh_user.clone(),
            private_key: self.ssh_private_key.clone(),
            private_key_data: self.ssh_private_key_data.clone(),
            passphrase: self.ssh_passphrase.clone(),
            known_hosts: self.ssh_known_hosts.clone(),
            host_key_fingerprint: self.ssh_host_key_fingerprint.clone(),
            host_key_checking: self.ssh_host_key_checking,
            timeout: self.ssh_timeout,
        };
        conn.named_options("ssh_").map(Some)
    }
}

impl ConnectOptions {
    /// Where the commands run, for messages.
    pub fn place(&self) -> Place<'_> {
        Place {
            host: &self.host,
            port: self.port,
            user: &self.user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prefixed_params(extra: serde_json::Value) -> PrefixedSshConn {
        let mut v = json!({
            "ssh_host": "pve.example.org", "ssh_port": 22, "ssh_user": "root",
            "ssh_timeout": 30, "pct_path": "/usr/sbin/pct", "sudo": false,
        });
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            v[k] = x;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_conn_option_has_a_prefixed_name_and_none_is_required() {
        let names: Vec<&str> = prefixed_conn_options().iter().map(|o| o.name).collect();
        assert_eq!(names.len(), conn_options().len() + 2);
        assert!(names
            .iter()
            .all(|n| n.starts_with("ssh_") || *n == "pct_path" || *n == "sudo"));
        assert!(prefixed_conn_options().iter().all(|o| !o.required));
    }

    #[test]
    fn prefixed_options_become_the_transport_settings() {
        let o = prefixed_params(json!({"ssh_host_key_checking": "accept-new", "ssh_timeout": 7}))
            .connect_options()
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.timeout.as_secs()),
            ("pve.example.org", 22, 7)
        );
        assert_eq!(o.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(o.place().host, "pve.example.org");
        // A module that does not declare ssh_host_key_checking gets strict checking.
        let strict = prefixed_params(json!({}))
            .connect_options()
            .unwrap()
            .unwrap();
        assert_eq!(strict.host_key_checking, HostKeyChecking::Strict);
        assert!(prefixed_params(json!({"ssh_host": ""}))
            .connect_options()
            .unwrap()
            .is_none());
        let both = prefixed_params(json!({
            "ssh_private_key": "/k", "ssh_private_key_data": "key text"
        }));
        let e = both.connect_options().unwrap_err().to_string();
        assert!(e.contains("ssh_private_key|ssh_private_key_data"), "{e}");
        let bad = prefixed_params(json!({"ssh_port": 0, "ssh_timeout": 0}));
        let e = bad.connect_options().unwrap_err().to_string();
        assert!(e.starts_with("ssh_port 0 is not a TCP port"), "{e}");
    }
}
