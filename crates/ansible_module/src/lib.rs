//! Ansible's JSON protocol for binary modules, once for every binary of the project.
//!
//! A module declares its options once ([`Opt`]), a `serde` params struct and a `run` function;
//! [`main`] does the rest: module mode (`<bin> <args-file>`, exactly one JSON object on stdout,
//! exit 0/1, even on panic) or CLI mode (clap flags from the same options, human output or
//! `--json`), AnsibleModule's validation and error texts, check/diff flags, and masking of every
//! secret value in `msg`, `warnings`, `diff` and error text.

mod cli;
pub mod fingerprint;
mod outcome;
pub mod pyfmt;
pub mod secret;
pub mod spec;
pub mod text;

pub use fingerprint::{fingerprint, fingerprint_bytes};
pub use outcome::{Failure, Outcome};
pub use secret::{
    mask, mask_json, register_secret, register_secret_named, Secret, MASK, MIN_MASK_LEN,
};
pub use spec::{ArgsError, Kind, Opt};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What every module provides.
pub trait Module {
    /// The short module name (`vault_full_write`); Ansible's `_ansible_module_name` overrides it
    /// in messages.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    type Params: DeserializeOwned;
    fn options() -> Vec<Opt>;
    fn run(params: Self::Params, ctx: &mut Context) -> Result<Outcome, Failure>;
}

/// The run's flags from Ansible (or the CLI) and the module's own warnings.
#[derive(Debug, Default)]
pub struct Context {
    pub module_name: String,
    pub check_mode: bool,
    pub diff_mode: bool,
    pub no_log: bool,
    pub verbosity: u64,
    /// True in CLI mode with stderr on a terminal: the module may show progress there.
    pub interactive: bool,
    pub cli: bool,
    /// `_ansible_ignore_unknown_opts`: unknown options are ignored, not refused; a module that
    /// checks suboptions itself honours it too, as AnsibleModule does.
    pub ignore_unknown_opts: bool,
    warnings: Vec<String>,
}

impl Context {
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// A progress line on stderr in interactive CLI mode; nothing in module mode (Ansible drops
    /// stderr, and stdout must hold only the result).
    pub fn progress(&self, line: &str) {
        if self.interactive {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", mask(line));
            let _ = err.flush();
        }
    }
    pub fn progress_done(&self) {
        if self.interactive {
            let _ = writeln!(std::io::stderr());
        }
    }
    /// A test-only context (module mode, no flags).
    pub fn for_tests() -> Self {
        Context {
            module_name: "test".into(),
            ..Default::default()
        }
    }
}

static EMITTED: AtomicBool = AtomicBool::new(false);
static STATE_MAY_HAVE_CHANGED: AtomicBool = AtomicBool::new(false);

/// Records that a request that may change state (a write, a mint, a dispatch) is about to be
/// sent. From then on a panic report says `changed: true` and that the state is unknown, instead
/// of claiming nothing was done. `httpx` calls it before every request other than GET/HEAD.
pub fn mark_state_may_have_changed() {
    STATE_MAY_HAVE_CHANGED.store(true, Ordering::SeqCst);
}

/// Whether [`mark_state_may_have_changed`] was called in this process.
pub fn state_may_have_changed() -> bool {
    STATE_MAY_HAVE_CHANGED.load(Ordering::SeqCst)
}

/// The failed result a panic becomes. Before any state-changing request it says nothing after
/// the panic was done; after one, that the state is unknown and a re-run converges.
pub fn panic_failure(payload: &str, location: &str) -> Failure {
    if state_may_have_changed() {
        Failure::new(format!(
            "internal error (panic{location}): {payload}. This is a bug in the module. A request that changes state may have been sent before it, so `changed` is true and the state is unknown: re-run, the module reads the current state and converges"
        ))
        .set("changed", true)
    } else {
        Failure::new(format!(
            "internal error (panic{location}): {payload}. This is a bug in the module; nothing after this point was done"
        ))
    }
}
static OUTPUT_MODE: Mutex<Option<cli::OutputMode>> = Mutex::new(None);

/// Runs module `M` from `std::env::args` and exits. Never returns.
pub fn main<M: Module>() -> ! {
    install_panic_hook();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = if args.len() == 1 && !args[0].starts_with('-') {
        set_output_mode(cli::OutputMode::ModuleJson);
        module_mode::<M>(&args[0])
    } else {
        cli::run::<M>(args)
    };
    std::process::exit(code)
}

fn set_output_mode(m: cli::OutputMode) {
    *OUTPUT_MODE.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
}

fn output_mode() -> cli::OutputMode {
    OUTPUT_MODE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(cli::OutputMode::ModuleJson)
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        emit_failure(panic_failure(&payload, &location), &[]);
        std::process::exit(1);
    }));
}

/// Prints the one result of this process. Later calls do nothing, so a panic after the result was
/// printed cannot add a second JSON object.
fn emit(json: Map<String, Value>, failed: bool, secret_keys: &[String]) {
    if EMITTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mode = output_mode();
    let mut out = std::io::stdout().lock();
    match mode {
        cli::OutputMode::ModuleJson => {
            let text = serde_json::to_string(&Value::Object(json)).unwrap_or_else(|_| {
                r#"{"failed": true, "msg": "internal error: result could not be serialised"}"#
                    .into()
            });
            let _ = writeln!(out, "{text}");
        }
        cli::OutputMode::Human => {
            let _ = out.write_all(cli::render_human(&json, failed, secret_keys).as_bytes());
        }
    }
    let _ = out.flush();
}

fn emit_failure(f: Failure, warnings: &[String]) {
    emit(f.into_json(warnings), true, &[]);
}

/// Reads `_ansible_*` flags into a context; every other `_ansible_*` key is ignored.
fn context_from(module: &str, raw: &mut Map<String, Value>) -> (Context, bool) {
    let flag = |raw: &Map<String, Value>, k: &str| {
        raw.get(k)
            .map(|v| spec::to_bool(v).unwrap_or(false))
            .unwrap_or(false)
    };
    let ctx = Context {
        module_name: raw
            .get("_ansible_module_name")
            .and_then(Value::as_str)
            .unwrap_or(module)
            .to_string(),
        check_mode: flag(raw, "_ansible_check_mode"),
        diff_mode: flag(raw, "_ansible_diff"),
        no_log: flag(raw, "_ansible_no_log"),
        verbosity: raw
            .get("_ansible_verbosity")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        ..Default::default()
    };
    let ignore_unknown = flag(raw, "_ansible_ignore_unknown_opts");
    raw.retain(|k, _| !k.starts_with("_ansible_"));
    let ctx = Context {
        ignore_unknown_opts: ignore_unknown,
        ..ctx
    };
    (ctx, ignore_unknown)
}

fn module_mode<M: Module>(path: &str) -> i32 {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            emit_failure(
                Failure::new(format!(
                    "could not read the module arguments file {path}: {e}. Run the module through Ansible, or use the CLI flags (--help)"
                )),
                &[],
            );
            return 1;
        }
    };
    let raw = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            emit_failure(
                Failure::new("the module arguments file does not hold a JSON object"),
                &[],
            );
            return 1;
        }
        // serde_json's error names a line and column, never the content.
        Err(e) => {
            emit_failure(
                Failure::new(format!(
                    "the module arguments file is not valid UTF-8 JSON: {e}"
                )),
                &[],
            );
            return 1;
        }
    };
    execute::<M>(raw, None)
}

/// Validates, runs and prints. `ctx_override` carries CLI-mode flags.
pub(crate) fn execute<M: Module>(
    mut raw: Map<String, Value>,
    ctx_override: Option<Context>,
) -> i32 {
    let (mut ctx, ignore_unknown) = context_from(M::NAME, &mut raw);
    if let Some(c) = ctx_override {
        ctx = c;
    }
    let spec = M::options();
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let params = match spec::validate(&ctx.module_name, &spec, &raw, ignore_unknown, &env) {
        Ok(p) => p,
        Err(e) => {
            emit_failure(Failure::new(e.to_string()), &[]);
            return 1;
        }
    };
    let typed: M::Params = match serde_json::from_value(Value::Object(params)) {
        Ok(t) => t,
        Err(e) => {
            emit_failure(Failure::new(format!("invalid module arguments: {e}")), &[]);
            return 1;
        }
    };
    match M::run(typed, &mut ctx) {
        Ok(outcome) => {
            let diff_mode = ctx.diff_mode;
            let secret_keys: Vec<String> = outcome.secret_keys().cloned().collect();
            emit(
                outcome.into_json(diff_mode, ctx.warnings()),
                false,
                &secret_keys,
            );
            0
        }
        Err(failure) => {
            emit_failure(failure, ctx.warnings());
            1
        }
    }
}

/// Runs a module in-process on an args object and returns its result JSON (masked as it would be
/// printed). For unit tests of modules; integration tests run the real binary.
pub fn run_for_test<M: Module>(raw: Value) -> Map<String, Value> {
    let mut raw = match raw {
        Value::Object(m) => m,
        _ => panic!("args must be an object"),
    };
    let (mut ctx, ignore_unknown) = context_from(M::NAME, &mut raw);
    let spec = M::options();
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let result = spec::validate(&ctx.module_name, &spec, &raw, ignore_unknown, &env)
        .map_err(|e| Failure::new(e.to_string()))
        .and_then(|p| {
            serde_json::from_value::<M::Params>(Value::Object(p))
                .map_err(|e| Failure::new(format!("invalid module arguments: {e}")))
        })
        .and_then(|typed| M::run(typed, &mut ctx));
    match result {
        Ok(o) => o.into_json(ctx.diff_mode, ctx.warnings()),
        Err(f) => f.into_json(ctx.warnings()),
    }
}

pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_after_a_state_changing_request_reports_changed_and_unknown_state() {
        let before = panic_failure("boom", " at x.rs:1").into_json(&[]);
        assert_eq!(before["changed"], Value::Bool(false));
        let msg = before["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("nothing after this point was done"), "{msg}");
        mark_state_may_have_changed();
        let after = panic_failure("boom", " at x.rs:1").into_json(&[]);
        assert_eq!(after["changed"], Value::Bool(true));
        assert_eq!(after["failed"], Value::Bool(true));
        let msg = after["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("may have been sent")
                && msg.contains("re-run")
                && !msg.contains("nothing after"),
            "{msg}"
        );
    }
}
