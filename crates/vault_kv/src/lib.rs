//! Safe writes and reads of Vault / OpenBao KV v2 secrets, as Ansible binary modules.
//!
//! - [`kv`]: a small blocking KV v2 client on the project's `httpx` (ureq): read data + version,
//!   metadata, subkeys, full write with `cas`, merge-patch, version reads for rollback.
//! - [`conn`]: connection and auth options (token, AppRole, userpass; `VAULT_*` fallbacks).
//! - [`ages`]: when each key last changed (recorded in `custom_metadata`, or from the history).
//! - [`auth_info`]: when the credential a run logged in with expires (AppRole secret_id, token).
//! - [`write`]: the `vault_full_write` module; [`read`]: the `vault_kv_read` module.
//!
//! Why not `vaultrs`: it is async only (reqwest + tokio), brings a second TLS provider
//! (aws-lc-rs) next to ureq's ring, and has neither PATCH nor subkeys — both needed here for
//! merge-patch and for write-only tokens. The whole client is a few hundred lines on `httpx`.

pub mod ages;
pub mod auth_info;
pub mod conn;
pub mod kv;
pub mod read;
pub mod write;

pub use ansible_module::fingerprint;
pub use kv::{Kv, ReadResult, VaultError, Written};
pub use read::VaultKvRead;
pub use write::{merge_patch, Cas, KeyChanges, VaultFullWrite, TEST_PAUSE_ENV};
