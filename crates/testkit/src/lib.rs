//! The test kit: what the tests of several crates share, and only tests use (a dev-dependency).
//! [`module`] runs a module binary as Ansible does and checks the module contract on every run;
//! [`faults`] holds servers and proxies that misbehave on purpose; [`succeed`] runs a tool that
//! must work. Everything listens on 127.0.0.1 only.

pub mod faults;
pub mod module;

use std::process::{Command, Output};

/// Runs `cmd` to its end and returns its output; panics, showing both streams, unless it exited 0.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed ({}):\n{}\n{}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
