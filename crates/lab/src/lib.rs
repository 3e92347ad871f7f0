//! The stand-in homelab (`sso-lab`): real OpenBao and OpenSSH servers plus PocketID, Forgejo and Loki
//! emulators, each on a free loopback port, started by tests and the demo and stopped on drop.
//!
//! [`servers`] drives the real servers, [`emulator`] holds the emulators on their shared HTTP kit,
//! and [`stack`] brings the whole lab up from the [`catalog`] over the [`fixtures`] containers.

pub mod ansible;
pub mod catalog;
pub mod emulator;
mod error;
pub mod fixtures;
pub mod login;
pub mod proc;
pub mod servers;
pub mod stack;
pub mod tools;

pub use error::{IoContext, LabError, Result};

// The servers' modules keep their old paths (`lab::openbao`, `lab::sshd`).
pub use servers::{openbao, sshd};
// The emulators' too (`lab::pocketid`, `lab::forgejo`, `lab::loki`, `lab::http`).
pub use emulator::{forgejo, http, loki, pocketid, webhook};
