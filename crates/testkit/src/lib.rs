//! The test kit: what the tests of several crates share, and only tests use (a dev-dependency).
//! [`module`] runs a module binary as Ansible does and checks the module contract on every run;
//! [`faults`] holds servers and proxies that misbehave on purpose. Everything listens on
//! 127.0.0.1 only.

pub mod faults;
pub mod module;
