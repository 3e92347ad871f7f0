//! Helpers: run the real module binaries against a real OpenBao dev server.
#![allow(dead_code)]

use lab::openbao::OpenBao;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Duration;

pub const WRITE: &str = env!("CARGO_BIN_EXE_vault_full_write");
pub const READ: &str = env!("CARGO_BIN_EXE_vault_kv_read");

pub struct Run {
    pub code: i32,
    pub json: Value,
    pub output: String,
}

impl Run {
    pub fn failed(&self) -> bool {
        self.json["failed"] == json!(true)
    }
    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().unwrap_or_default()
    }
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "module failed: {}", self.output);
        self
    }
    pub fn fails(&self) -> &Self {
        assert_eq!(self.code, 1, "module did not fail: {}", self.output);
        assert!(self.failed());
        self
    }
}

/// Runs a module binary in module mode with `args` and only the given environment variables of
/// the VAULT_* family.
pub fn run(bin: &str, args: Value, env: &[(&str, &str)]) -> Run {
    let remove = [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_CACERT",
        "VAULT_NAMESPACE",
        "VAULT_SKIP_VERIFY",
        write_pause(),
    ];
    let r = testkit::module::run_module(Path::new(bin), &args, &remove, env);
    Run {
        code: r.code,
        output: r.output(),
        json: r.json,
    }
}

fn write_pause() -> &'static str {
    vault_kv::TEST_PAUSE_ENV
}

/// Connection args for `bao` with its root token.
pub fn conn(bao: &OpenBao, path: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("url".into(), json!(bao.addr));
    m.insert("token".into(), json!(bao.root_token));
    m.insert("path".into(), json!(path));
    if let Some(ca) = &bao.ca_cert {
        m.insert("ca_cert".into(), json!(ca.display().to_string()));
    }
    m
}

/// `conn` plus extra args.
pub fn args(bao: &OpenBao, path: &str, extra: Value) -> Value {
    let mut m = conn(bao, path);
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Value::Object(m)
}

pub fn start(dir: &Path) -> OpenBao {
    OpenBao::start(dir).expect("OpenBao dev server")
}

/// The 15 keys of the runbook's secret, with canary values.
pub fn fifteen(tag: &str) -> Value {
    let mut m = Map::new();
    for i in 1..=15 {
        m.insert(
            format!("key_{i:02}"),
            json!(format!("canary-{tag}-{i:02}-Zq8x")),
        );
    }
    Value::Object(m)
}

pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked in:\n{text}");
    }
}

/// Runs the module in a thread with the pause hook; returns once it has read and waits to write.
pub fn paused_run(dir: &Path, a: Value) -> (std::thread::JoinHandle<Run>, std::path::PathBuf) {
    let gate = dir.join(format!("gate-{}", lab::openbao::random_hex(3)));
    let gate_s = gate.display().to_string();
    let handle =
        std::thread::spawn(move || run(WRITE, a, &[(vault_kv::TEST_PAUSE_ENV, gate_s.as_str())]));
    let mut reached = gate.clone().into_os_string();
    reached.push(".reached");
    let reached = std::path::PathBuf::from(reached);
    assert!(
        lab::proc::wait_for(Duration::from_secs(120), || reached.exists().then_some(())).is_some(),
        "module never reached the write"
    );
    (handle, gate)
}
