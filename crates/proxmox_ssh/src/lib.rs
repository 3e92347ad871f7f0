//! `proxmox_ssh`: the verified SSH transport to a Proxmox node, a backend beside the Vault and
//! PocketID clients. One ssh2 (libssh2) connection with the host key checked before any
//! authentication ([`ssh`]), many commands over it in parallel channels, `pct exec` commands and
//! the reading of what pct reports ([`pct`]), and the SSH options the modules declare
//! ([`conn`]: `host`, `port`, … for `env_harvest`; the same names with an `ssh_` prefix for the
//! modules that need SSH only sometimes). Its one error type is [`Error`].
//!
//! OpenSSL and zlib are built into this crate (ssh2's `vendored-openssl`, libz-sys' `static`),
//! so the binaries that use it need no libssl or libz at run time.

pub mod conn;
pub mod error;
pub mod pct;
pub mod ssh;

pub use conn::{conn_options, prefixed_conn_options, PrefixedSshConn, SshConn};
pub use error::Error;
pub use pct::{
    build_command, classify, exec_error_text, pct_exec, shorten, target_text, valid_path,
    valid_vmid, vmid_text, Mode, Place, TargetStatus, NAME_SHOWN, PATH_SHOWN,
};
pub use ssh::{ConnectOptions, Connection, ExecError, ExecResult, HostKeyChecking};
