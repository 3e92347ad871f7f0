//! Child processes that never outlive their owner, free ports, and polling.

use crate::error::{IoContext, LabError, Result};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A child in its own process group; dropping it kills the whole group (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct ManagedChild {
    child: Option<Child>,
    name: String,
}

impl ManagedChild {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        cmd.process_group(0);
        let child = cmd.spawn().ctx(|| format!("starting {name}"))?;
        Ok(ManagedChild {
            child: Some(child),
            name: name.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Fails with the process name if it already exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.exited() {
            return Err(LabError::msg(format!(
                "{} exited during start-up",
                self.name
            )));
        }
        Ok(())
    }

    /// Sends `signal` to the process group (e.g. SIGSTOP to freeze a server in a fault test).
    pub fn signal(&self, signal: i32) {
        let pid = self.pid() as i32;
        if pid > 0 {
            // SAFETY: kill(2) on our own child's process group.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    /// Stops the group and waits for the process.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.signal_group(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.signal_group(&child, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    fn signal_group(&self, child: &Child, signal: i32) {
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.stop();
    }
}
