//! Running a module binary the way Ansible does (`<bin> <args-file>`) and checking the module
//! contract on every run: exactly one JSON object on stdout, exit 1 exactly when it failed, no
//! panic report. Used by the modules' integration and fault tests.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variables that mark a CI job. Tests remove them, so that a module (which keeps a
/// login code out of a CI log) sees only the CI a test sets.
pub const CI_VARS: [&str; 6] = [
    "CI",
    "GITHUB_ACTIONS",
    "FORGEJO_ACTIONS",
    "GITEA_ACTIONS",
    "GITLAB_CI",
    "ACT",
];

/// How long a module may run before a test gives up on it (a hang is a failure, not a wait).
pub const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The result of one module run.
#[derive(Debug)]
pub struct ModuleRun {
    pub json: Value,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ModuleRun {
    pub fn failed(&self) -> bool {
        self.json["failed"] == true
    }
    pub fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or_default().to_string()
    }
    /// stdout and stderr together, for leak checks.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A module started in module mode; its args file lives as long as this value.
pub struct Running {
    child: Child,
    name: String,
    _args_dir: tempfile::TempDir,
}

/// Starts `bin` on `args`, with the given environment variables removed (so a developer's own
/// `VAULT_TOKEN` and the like cannot leak into a test) and then `env` set.
pub fn spawn_module(
    bin: &Path,
    args: &Value,
    env_remove: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir for the args file");
    let file = dir.path().join("args");
    std::fs::write(&file, args.to_string()).expect("writing the args file");
    let mut cmd = Command::new(bin);
    cmd.arg(&file).stdout(Stdio::piped()).stderr(Stdio::piped());
    for v in env_remove {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Running {
        child: cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}")),
        name,
        _args_dir: dir,
    }
}

impl Running {
    /// Waits for the module (at most `limit`) and checks the module contract.
    pub fn finish(mut self, limit: Duration) -> ModuleRun {
        let deadline = Instant::now() + limit;
        while self
            .child
            .try_wait()
            .expect("waiting for the module")
            .is_none()
        {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not finish within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().expect("module output");
        let stdout = String::from_utf8(out.stdout).expect("module stdout is UTF-8");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stdout.contains("internal error (panic"),
            "{} panicked",
            self.name
        );
        assert!(!stderr.contains("panicked"), "{} panicked", self.name);
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: exactly one JSON line expected",
            self.name
        );
        let json: Value = serde_json::from_str(lines[0]).expect("the module's line is JSON");
        let code = out.status.code().unwrap_or(-1);
        let want = if json["failed"] == true { 1 } else { 0 };
        assert_eq!(code, want, "{}: exit code must follow `failed`", self.name);
        // Shown with --nocapture: the messages quoted in docs/faults.md.
        eprintln!("module msg: {}", json["msg"]);
        ModuleRun {
            json,
            code,
            stdout,
            stderr,
        }
    }
}

/// Runs `bin` on `args` to completion (see [`spawn_module`]).
pub fn run_module(
    bin: &Path,
    args: &Value,
    env_remove: &[&str],
    env: &[(&str, &str)],
) -> ModuleRun {
    spawn_module(bin, args, env_remove, env).finish(RUN_LIMIT)
}
