//! Drivers of the real servers the lab runs: an OpenBao dev server, and OpenSSH's sshd with the
//! `pct` stand-in over the fixture containers. Each starts on a free loopback port and stops (its
//! whole process group) on drop.

pub mod openbao;
pub mod sshd;
