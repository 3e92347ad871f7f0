//! `env_harvest`: reads deployed `.env` values from LXC containers on a Proxmox host over one SSH
//! connection (`pct exec <vmid> -- cat -- <path>`), parsed with Docker Compose's `.env` rules,
//! mapped to Vault key names, returned as secrets and/or salted fingerprints.

pub mod dotenv;
pub mod ssh;

use ansible_module::{
    fingerprint_bytes, ArgsError, Context, Failure, Kind, Module, Opt, Outcome, Secret,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use ssh::{shell_quote, Auth, ConnectOptions, ExecError, ExecResult, HostKeyChecking};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// Why a target was refused before anything was sent.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {index} ({name}): vmid must be an integer matching ^[1-9][0-9]{{2,8}}$ (a Proxmox CT id)")]
    Vmid { index: usize, name: String },
    #[error("target {index} ({name}): path must be absolute, at most 4095 characters (255 per component), without '.', '..' or empty components, and use only letters, digits and . _ - + @ = , in each component")]
    Path { index: usize, name: String },
    #[error("target {index} ({name}): keys must map Vault key names to env names made of letters, digits and _ . -")]
    Keys { index: usize, name: String },
    #[error("{0} must be an absolute path without quotes, spaces or shell characters")]
    Program(&'static str),
}

/// One `.env` to read.
#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub vmid: Option<Value>,
    pub path: String,
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    #[serde(default)]
    pub optional_keys: Vec<String>,
    /// Keys of the dict that are none of the above: refused (see [`check_suboptions`]), so that
    /// a typo such as `key:` does not silently read nothing.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// The suboptions of `targets` (the sidecar documents the same).
pub const TARGET_OPTIONS: [&str; 5] = ["keys", "name", "optional_keys", "path", "vmid"];

/// Refuses unknown keys in `targets[]` with AnsibleModule's own text for unknown suboptions
/// (`Unsupported parameters for (env_harvest) module: targets.key. Supported parameters
/// include: …`): names from all elements, each once, sorted.
pub fn check_suboptions(module: &str, targets: &[Target]) -> Result<(), ArgsError> {
    let unknown: BTreeSet<String> = targets
        .iter()
        .flat_map(|t| t.unknown.keys())
        .map(|k| format!("targets.{k}"))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ArgsError::Unsupported {
        module: module.to_string(),
        unsupported: unknown.into_iter().collect::<Vec<_>>().join(", "),
        supported: TARGET_OPTIONS.join(", "),
    })
}

#[derive(Debug, Deserialize)]
pub struct Params {
    pub host: String,
    pub port: i64,
    pub user: String,
    pub private_key: Option<PathBuf>,
    pub private_key_data: Option<Secret>,
    pub passphrase: Option<Secret>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_fingerprint: Option<String>,
    pub host_key_checking: String,
    pub timeout: i64,
    pub pct_path: String,
    pub sudo: bool,
    pub mode: String,
    pub parallel: i64,
    pub targets: Vec<Target>,
    pub return_values: bool,
    pub salt: Option<String>,
    pub fail_on_missing: bool,
    pub public_keys: Vec<String>,
}

fn valid_vmid(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=9).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)
}

/// An absolute path of plain components: no quoting is needed, though every word is quoted anyway.
/// At most Linux's PATH_MAX (4096) and NAME_MAX (255 per component): `cat` could not open a
/// longer one, and a huge path would only make a huge command and huge messages.
pub fn valid_path(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && p.len() < 4096
        && rest.split('/').all(|c| {
            !c.is_empty()
                && c.len() <= 255
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+@=,".contains(&b))
        })
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_.-[]".contains(c))
}

/// The vmid of a target as text (Ansible may pass an int or a string).
fn vmid_text(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Builds the remote command for a target: every word single-quoted, `--` before argv.
pub fn build_command(
    mode_pct: bool,
    pct_path: &str,
    sudo: bool,
    vmid: Option<&str>,
    path: &str,
) -> String {
    let mut words: Vec<&str> = Vec::new();
    if sudo {
        words.extend(["sudo", "-n", "--"]);
    }
    if mode_pct {
        words.extend([pct_path, "exec", vmid.unwrap_or_default(), "--"]);
    }
    words.extend(["cat", "--", path]);
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the commands ran, for messages: the SSH server and the login user.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
}

/// Longest path and target name shown in a message; longer ones are shortened in the middle.
pub const PATH_SHOWN: usize = 160;
pub const NAME_SHOWN: usize = 80;

/// `s` if it has at most `max` characters, else its start and end around `…`, so that no
/// message grows with what it quotes.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max / 2).collect();
    let tail: String = s.chars().skip(n - (max - max / 2 - 1)).collect();
    format!("{head}…{tail}")
}

/// A target as messages name it: `CT 119's /opt/…/.env` (pct mode) or `/opt/…/.env on the node`.
pub fn target_text(vmid: Option<&str>, path: &str) -> String {
    let path = shorten(path, PATH_SHOWN);
    match vmid {
        Some(v) => format!("CT {v}'s {path}"),
        None => format!("{path} on the node"),
    }
}

/// Longest libssh2 reason shown (short local texts, bounded all the same).
const REASON_SHOWN: usize = 120;

/// The signal name sshd reported, if it looks like one (`KILL`, `SEGV`); sshd builds it, but it
/// is bounded like everything else a message quotes.
fn signal_text(sig: &str) -> String {
    let plain = !sig.is_empty()
        && sig.len() <= 24
        && sig
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.".contains(&b));
    if plain {
        sig.to_string()
    } else {
        "(an unrecognised signal name)".into()
    }
}

/// The message of a channel- or connection-level failure: what failed, where, and what to do.
/// Built from the target's name and libssh2's short reason only; never file content.
pub fn exec_error_text(e: &ExecError, at: Place<'_>, what: &str) -> String {
    let Place { host, port, user } = at;
    match e {
        ExecError::ConnectionLost { during, reason } => format!(
            "the SSH connection to {host}:{port} (user {user}) was lost while {during} {what} ({}): check that sshd on the Proxmox node is up and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::NotSent => format!(
            "not read: the SSH connection to {host}:{port} (user {user}) was lost before {what} was requested; check that sshd on the Proxmox node is up and re-run"
        ),
        ExecError::TimedOut { secs } => format!(
            "reading {what} over SSH on {host}:{port} (user {user}) did not finish within {secs} s (timeout): raise `timeout` or check the node's load (a hung pct or cat there holds the read)"
        ),
        // sshd answers a channel open past its MaxSessions with a failure: only then is
        // `parallel` the likely cause.
        ExecError::Channel {
            reason,
            refused: true,
            ..
        } => format!(
            "sshd on {host}:{port} (user {user}) refused to open a channel for {what} ({}): it does so when `parallel` reaches its MaxSessions (10 by default), so lower `parallel` (or raise MaxSessions on the node) and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::Channel {
            during,
            reason,
            refused: false,
        } => format!(
            "{during} {what} failed on the SSH connection to {host}:{port} (user {user}) ({}): check sshd's log on the node and re-run",
            shorten(reason, REASON_SHOWN)
        ),
        ExecError::Signal(sig) => format!(
            "the command reading {what} on {host}:{port} (user {user}) was killed by signal {}: check the node's logs (e.g. the OOM killer) and re-run",
            signal_text(sig)
        ),
    }
}

/// The reason of a `cat: <path>: <reason>` message when it has the shape of a C library error
/// text (letters, spaces, `/ ' -`, at most 64 characters). The container writes this stream and
/// could put anything there, file content included, so nothing else of it is shown.
fn cat_reason(stderr: &str) -> Option<&str> {
    // The path is ours and holds no `: ` (valid_path), so the first `: ` ends it.
    let (_, reason) = stderr.strip_prefix("cat: ")?.split_once(": ")?;
    let plain = (1..=64).contains(&reason.len())
        && reason
            .chars()
            .all(|c| c.is_ascii_alphabetic() || " /'-".contains(c));
    plain.then_some(reason)
}

/// What a failed command's error output says, in fixed words: for the failures that have a
/// known next step, that step; otherwise only its size. The text itself is never echoed, as
/// the container can write to that stream (and could echo the file there).
fn failure_hint(stderr: &str, code: Option<i32>, user: &str) -> String {
    if stderr.is_empty() {
        return "no error output".into();
    }
    if stderr.starts_with("sudo: ") {
        if stderr.contains("a password is required") {
            return format!(
                "sudo needs a password (sudo -n): add a NOPASSWD sudoers rule for {user} and pct"
            );
        }
        return format!("sudo refused the command: check the sudoers rule for {user} and pct");
    }
    if stderr.contains("please run as root") {
        return "pct must run as root: log in as root or set `sudo: true`".into();
    }
    if stderr.starts_with("lxc-attach: ") && stderr.contains("Failed to exec") {
        return "lxc-attach could not run cat in the container: check that the container has coreutils".into();
    }
    if code == Some(127)
        && (stderr.contains("command not found") || stderr.contains("No such file or directory"))
    {
        return "the program was not found on the node: check `pct_path` and that this is a Proxmox node".into();
    }
    format!(
        "its error output ({} bytes) is not shown, since the container can write to it: run the command on the node to read it",
        stderr.len()
    )
}

/// Per-target status (contract §1.2: classified by exit code and stderr prefix). `what` names
/// the target in transport messages (see [`target_text`]). No message quotes the remote error
/// output beyond a C library error text of `cat` (see [`cat_reason`]).
pub fn classify(r: &ExecResult, at: Place<'_>, what: &str) -> (&'static str, String) {
    if let Some(e) = &r.error {
        return ("ssh_error", exec_error_text(e, at, what));
    }
    let err = r.stderr.as_str();
    if err.starts_with("Configuration file '") && err.contains("does not exist") {
        return (
            "container_missing",
            "the container does not exist on this node".into(),
        );
    }
    if err.starts_with("container '") && err.contains("not running") {
        return ("container_stopped", "the container is not running".into());
    }
    if r.exit_status == Some(1) && err.starts_with("cat: ") {
        return match cat_reason(err) {
            Some("Permission denied") => (
                "permission_denied",
                "the file cannot be read (Permission denied)".into(),
            ),
            Some("Is a directory") => ("file_missing", "the path is a directory".into()),
            Some("No such file or directory" | "Not a directory") => {
                ("file_missing", "the file does not exist".into())
            }
            Some(reason) => ("file_missing", format!("cat could not read the file ({reason})")),
            None => (
                "file_missing",
                "cat could not read the file (its error text is not shown: it is not a plain system error message)".into(),
            ),
        };
    }
    if r.stdout_truncated {
        return (
            "parse_error",
            format!(
                "the file is larger than {} bytes; not read",
                ssh::STDOUT_CAP
            ),
        );
    }
    match r.exit_status {
        Some(0) => ("ok", String::new()),
        code => {
            let shown = code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            (
                "ssh_error",
                format!(
                    "the remote command exited with status {shown}: {}",
                    failure_hint(err, code, at.user)
                ),
            )
        }
    }
}

/// One harvested value. JSON strings hold only text, so a value that is not UTF-8 (a Latin-1
/// file, which compose reads as it is) is kept as the base64 of its raw bytes and returned in
/// `values_base64`, never in `values`, where a consumer would take it for the value itself.
#[derive(Clone)]
struct Found {
    /// The text, or the base64 of the raw bytes when `utf8` is false.
    value: Secret,
    utf8: bool,
    /// Salted fingerprint of the raw bytes (equal to the text's for a UTF-8 value).
    fingerprint: Option<String>,
}

impl Found {
    fn new(raw: &[u8], key: &str, public: bool, salt: Option<&str>) -> Found {
        let (text, utf8) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), true),
            Err(_) => (ssh::b64(raw), false),
        };
        // Values of keys declared public (identifiers) are not masked; the others are registered
        // under their key, so a warning about a value too short to mask can name it.
        let value = if public {
            Secret::unmasked(text)
        } else {
            Secret::named(key, text)
        };
        Found {
            value,
            utf8,
            fingerprint: salt.map(|s| fingerprint_bytes(s, raw)),
        }
    }

    fn same(&self, other: &Found) -> bool {
        self.utf8 == other.utf8 && self.value == other.value
    }
}

pub struct EnvHarvest;

impl Module for EnvHarvest {
    const NAME: &'static str = "env_harvest";
    const ABOUT: &'static str =
        "Read deployed .env values from LXC containers over one SSH connection (pct exec … cat), never printing them";
    type Params = Params;

    fn options() -> Vec<Opt> {
        vec![
            Opt::str("host").required().help("SSH host (the Proxmox node)"),
            Opt::int("port").default(22).range(1, 65535).help("SSH port"),
            Opt::str("user").default("root").help("SSH user (pct needs root, or sudo)"),
            Opt::path("private_key").help("Private key file; without it and private_key_data, ssh-agent is used"),
            Opt::str("private_key_data").no_log().help("Private key text (OpenSSH or PEM)"),
            Opt::str("passphrase").no_log().help("Passphrase of the private key"),
            Opt::path("known_hosts").help("known_hosts file [default: ~/.ssh/known_hosts]"),
            Opt::str("host_key_fingerprint").help("Pin the host key (SHA256:… as ssh-keygen -l prints); replaces the known_hosts check"),
            Opt::str("host_key_checking").default("strict").choices(&["strict", "accept-new"]).help("Unknown host keys: fail, or append one line to known_hosts"),
            Opt::int("timeout").default(30).range(1, 3600).help("Seconds for connecting and for each remote command"),
            Opt::str("pct_path").default("/usr/sbin/pct").help("Path of pct on the host"),
            Opt::bool("sudo").default(false).help("Run pct (or cat) through sudo -n"),
            Opt::str("mode").default("pct").choices(&["pct", "direct"]).help("pct: read inside each CT; direct: cat on the SSH host itself"),
            Opt::int("parallel").default(8).range(1, 64).help("Channels in flight on the one connection (keep below sshd's MaxSessions, 10 by default)"),
            Opt::list("targets", Kind::Dict).required().help("Files to read: {name, vmid, path, keys: {vault_key: ENV_NAME}, optional_keys}"),
            Opt::bool("return_values").default(true).help("Return the values (secret) in `values`"),
            Opt::str("salt").help("Return salted SHA-256 fingerprints of the values in `fingerprints`"),
            Opt::bool("fail_on_missing").default(true).help("Fail when a required key is missing"),
            Opt::list("public_keys", Kind::Str)
                .default(serde_json::json!([]))
                .help("Vault keys whose values are identifiers, not secrets (an OIDC client id): still returned only in `values`, but not masked in other output"),
        ]
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        if !ctx.ignore_unknown_opts {
            check_suboptions(&ctx.module_name, &p.targets)
                .map_err(|e| Failure::new(e.to_string()))?;
        }
        run(p, ctx)
    }
}

struct Planned {
    name: String,
    vmid: Option<String>,
    target: Target,
    command: String,
}

fn plan(p: &Params) -> Result<Vec<Planned>, TargetError> {
    let mode_pct = p.mode == "pct";
    if mode_pct && !valid_path(&p.pct_path) {
        return Err(TargetError::Program("pct_path"));
    }
    let mut out = Vec::new();
    for (i, t) in p.targets.iter().enumerate() {
        let index = i + 1;
        let vmid = vmid_text(&t.vmid);
        let name = t
            .name
            .clone()
            .or_else(|| vmid.clone())
            .unwrap_or_else(|| t.path.clone());
        let shown = if name.chars().all(|c| !c.is_control()) {
            shorten(&name, NAME_SHOWN)
        } else {
            format!("#{index}")
        };
        if mode_pct && !vmid.as_deref().is_some_and(valid_vmid) {
            return Err(TargetError::Vmid { index, name: shown });
        }
        if !valid_path(&t.path) {
            return Err(TargetError::Path { index, name: shown });
        }
        if t.keys
            .iter()
            .any(|(k, e)| k.is_empty() || !valid_env_name(e))
        {
            return Err(TargetError::Keys { index, name: shown });
        }
        let command = build_command(mode_pct, &p.pct_path, p.sudo, vmid.as_deref(), &t.path);
        out.push(Planned {
            name,
            vmid: if mode_pct { vmid } else { None },
            target: t.clone(),
            command,
        });
    }
    Ok(out)
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    if !(1..=65535).contains(&p.port) {
        return Err(Failure::new("port must be between 1 and 65535"));
    }
    if !(1..=64).contains(&p.parallel) {
        return Err(Failure::new(
            "parallel must be between 1 and 64 (and below the server's MaxSessions)",
        ));
    }
    if p.timeout < 1 {
        return Err(Failure::new("timeout must be at least 1 second"));
    }
    let planned = plan(&p)?;
    let known_hosts = p.known_hosts.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".ssh/known_hosts")
    });
    let auth = match (&p.private_key, &p.private_key_data) {
        (Some(_), Some(_)) => {
            return Err(Failure::new(
                "parameters are mutually exclusive: private_key|private_key_data",
            ))
        }
        (Some(k), None) => Auth::KeyFile(k.clone()),
        (None, Some(d)) => Auth::KeyData(d.clone()),
        (None, None) => Auth::Agent,
    };
    let timeout = Duration::from_secs(p.timeout as u64);
    let opts = ConnectOptions {
        host: p.host.clone(),
        port: p.port as u16,
        user: p.user.clone(),
        auth,
        passphrase: p.passphrase.clone(),
        known_hosts,
        host_key_fingerprint: p
            .host_key_fingerprint
            .clone()
            .filter(|s| !s.trim().is_empty()),
        host_key_checking: if p.host_key_checking == "accept-new" {
            HostKeyChecking::AcceptNew
        } else {
            HostKeyChecking::Strict
        },
        timeout,
    };
    ctx.progress(&format!("connecting to {}:{}", p.host, p.port));
    let mut conn = ssh::Connection::open(&opts)?;
    let commands: Vec<String> = planned.iter().map(|t| t.command.clone()).collect();
    let total = commands.len();
    let results = {
        let c: &Context = ctx;
        conn.run_all(&commands, p.parallel as usize, timeout, &mut |done, _| {
            c.progress(&format!("harvested {done}/{total} targets"));
        })
    };
    ctx.progress_done();
    let host_key_added = conn.host_key_added;
    let host_fp = conn.fingerprint.clone();
    conn.close();

    let mut values: BTreeMap<String, Found> = BTreeMap::new();
    let mut fingerprints = Map::new();
    let mut conflicts = BTreeSet::new();
    let mut required_missing: BTreeSet<String> = BTreeSet::new();
    let mut per_target = Vec::new();
    let mut failed_targets = Vec::new();
    // The first problem's message, quoted in the top-level msg.
    let mut first_problem: Option<String> = None;
    // Connection loss: the first lost target's message, and every target left unread.
    let mut lost_msg: Option<String> = None;
    let mut unread: Vec<String> = Vec::new();
    let place = Place {
        host: &p.host,
        port: p.port as u16,
        user: &p.user,
    };
    for (t, r) in planned.iter().zip(results) {
        let what = target_text(t.vmid.as_deref(), &t.target.path);
        let (mut status, mut msg) = classify(&r, place, &what);
        match &r.error {
            Some(ExecError::ConnectionLost { .. }) => {
                lost_msg.get_or_insert_with(|| msg.clone());
                unread.push(t.name.clone());
            }
            Some(ExecError::NotSent) => unread.push(t.name.clone()),
            _ => {}
        }
        let mut found: BTreeMap<String, Found> = BTreeMap::new();
        let mut unset_refs = Vec::new();
        if status == "ok" {
            match dotenv::parse(&r.stdout) {
                Ok(file) => {
                    for (vault_key, env) in &t.target.keys {
                        if let Some(raw) = file.values.get(env) {
                            let public = p.public_keys.contains(vault_key);
                            found.insert(
                                vault_key.clone(),
                                Found::new(raw, vault_key, public, p.salt.as_deref()),
                            );
                        }
                    }
                    // Line and key only: the referenced name is text of the value.
                    unset_refs = file
                        .unset_references
                        .iter()
                        .map(|(l, k)| {
                            format!(
                                "line {l}: {} references an unset variable",
                                dotenv::shown_key(k)
                            )
                        })
                        .collect();
                    // Parsed values that are not mapped are dropped here, unread.
                }
                Err(e) => {
                    status = "parse_error";
                    msg = format!("{}: {e}", shorten(&t.target.path, PATH_SHOWN));
                }
            }
        }
        let missing: Vec<String> = t
            .target
            .keys
            .keys()
            .filter(|k| !found.contains_key(*k))
            .cloned()
            .collect();
        let req_missing: Vec<&String> = missing
            .iter()
            .filter(|k| !t.target.optional_keys.contains(k))
            .collect();
        required_missing.extend(req_missing.iter().map(|k| (*k).clone()));
        if !req_missing.is_empty() || status != "ok" {
            failed_targets.push(format!("{} ({status})", shorten(&t.name, NAME_SHOWN)));
            if first_problem.is_none() && !msg.is_empty() {
                first_problem = Some(format!("{}: {msg}", shorten(&t.name, NAME_SHOWN)));
            }
        }
        let mut tfp = Map::new();
        for (k, v) in &found {
            if let Some(fp) = &v.fingerprint {
                tfp.insert(k.clone(), Value::String(fp.clone()));
            }
            match values.get(k) {
                Some(existing) if !existing.same(v) => {
                    conflicts.insert(k.clone());
                }
                Some(_) => {}
                None => {
                    values.insert(k.clone(), v.clone());
                    if let Some(fp) = &v.fingerprint {
                        fingerprints.insert(k.clone(), Value::String(fp.clone()));
                    }
                }
            }
        }
        let non_utf8: Vec<&String> = found
            .iter()
            .filter(|(_, v)| !v.utf8)
            .map(|(k, _)| k)
            .collect();
        let mut entry = json!({
            "name": t.name,
            "vmid": t.vmid,
            "path": t.target.path,
            "status": status,
            "found_keys": found.keys().collect::<Vec<_>>(),
            "missing_keys": missing,
        });
        if !msg.is_empty() {
            entry["msg"] = Value::String(msg);
        }
        if let Some(code) = r.exit_status {
            entry["exit_status"] = json!(code);
        }
        if p.salt.is_some() {
            entry["fingerprints"] = Value::Object(tfp);
        }
        if !unset_refs.is_empty() {
            entry["unset_references"] = json!(unset_refs);
        }
        if !non_utf8.is_empty() {
            entry["non_utf8_keys"] = json!(non_utf8);
        }
        per_target.push(entry);
    }
    let non_utf8_keys: Vec<&String> = values
        .iter()
        .filter(|(_, v)| !v.utf8)
        .map(|(k, _)| k)
        .collect();
    for k in &non_utf8_keys {
        ctx.warn(format!(
            "key {k}: the deployed value is not valid UTF-8 text (a Latin-1 file?); it is returned base64-encoded in `values_base64`, not in `values`, and its fingerprint is over the raw bytes. Vault holds text: convert the file to UTF-8 before backfilling Vault from it"
        ));
    }
    for k in &conflicts {
        ctx.warn(format!(
            "key {k} has different values in different targets; `values` holds the first target's"
        ));
    }
    let ok_count = per_target.iter().filter(|e| e["status"] == "ok").count();
    let summary = format!(
        "read {ok_count} of {} targets from {}:{}; {} keys found, {} required keys missing",
        per_target.len(),
        p.host,
        p.port,
        values.len(),
        required_missing.len()
    );
    let missing_list: Vec<&String> = required_missing.iter().collect();
    // A lost connection fails the run whatever fail_on_missing says: the unread targets' keys
    // are unknown, not missing, and a partial `values` would look complete.
    let failure_msg = if let Some(lost) = &lost_msg {
        Some(format!(
            "{lost}; nothing was returned for the unread targets ({} of {}: {}), and no values at all",
            unread.len(),
            planned.len(),
            unread.join(", ")
        ))
    } else if p.fail_on_missing && !required_missing.is_empty() {
        let mut m = format!(
            "required keys missing: {}; targets with problems: {}. Each target's status and msg say why",
            missing_list.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            failed_targets.join(", ")
        );
        if let Some(first) = &first_problem {
            m.push_str(&format!(". First problem, {first}"));
        }
        Some(m)
    } else {
        None
    };
    if let Some(fmsg) = failure_msg {
        let mut f = Failure::new(fmsg)
            .set("targets", Value::Array(per_target))
            .set("missing_keys", json!(missing_list))
            .set("non_utf8_keys", json!(non_utf8_keys))
            .set("host_key_fingerprint", host_fp)
            .set("conflicting_keys", json!(conflicts));
        if p.salt.is_some() {
            f = f.set("fingerprints", Value::Object(fingerprints));
        }
        return Err(f);
    }
    for t in &failed_targets {
        ctx.warn(format!("target {t} had problems"));
    }
    let mut out = Outcome::new(host_key_added)
        .msg(summary)
        .set("targets", Value::Array(per_target))
        .set("missing_keys", json!(missing_list))
        .set("conflicting_keys", json!(conflicts))
        .set("non_utf8_keys", json!(non_utf8_keys))
        .set("host_key_fingerprint", host_fp)
        .set("host_key_added", host_key_added);
    if p.salt.is_some() {
        out = out.set("fingerprints", Value::Object(fingerprints));
    }
    if p.return_values {
        let pick = |utf8: bool| -> Map<String, Value> {
            values
                .iter()
                .filter(|(_, v)| v.utf8 == utf8)
                .map(|(k, v)| (k.clone(), Value::String(v.value.expose().to_string())))
                .collect()
        };
        out = out.secret("values", Value::Object(pick(true)));
        if !non_utf8_keys.is_empty() {
            out = out.secret("values_base64", Value::Object(pick(false)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_commands() {
        assert!(valid_vmid("119"));
        for bad in ["119; touch /tmp/x", "99", "0119", "-1", "abc", "1234567890"] {
            assert!(!valid_vmid(bad), "{bad}");
        }
        assert!(valid_path("/opt/homelab/oauth2-gateway/.env"));
        for bad in [
            "opt/x",
            "/opt/'x",
            "/opt/$(id)/.env",
            "/opt/../etc/shadow",
            "-rf",
            "/opt//x",
            "/opt/./x",
            "/opt/a b",
            "/",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
        assert_eq!(
            build_command(
                true,
                "/usr/sbin/pct",
                false,
                Some("119"),
                "/opt/homelab/x/.env"
            ),
            "'/usr/sbin/pct' 'exec' '119' '--' 'cat' '--' '/opt/homelab/x/.env'"
        );
        assert_eq!(
            build_command(false, "/usr/sbin/pct", true, None, "/a/.env"),
            "'sudo' '-n' '--' 'cat' '--' '/a/.env'"
        );
        // PATH_MAX and NAME_MAX: a longer path is refused before anything is sent.
        assert!(valid_path(&format!("/{}", "a".repeat(255))));
        assert!(!valid_path(&format!("/{}", "a".repeat(256))));
        assert!(valid_path(&"/a".repeat(2047)));
        assert!(!valid_path(&"/a".repeat(2048)));
        assert!(!valid_path(&"/a".repeat(50_000)));
    }

    const AT: Place<'static> = Place {
        host: "127.0.0.1",
        port: 22,
        user: "root",
    };

    fn failed(code: i32, stderr: &str) -> (&'static str, String) {
        let r = ExecResult {
            stderr: stderr.into(),
            exit_status: Some(code),
            ..ExecResult::default()
        };
        classify(&r, AT, "CT 119's /opt/x/.env")
    }

    /// Issue #12: `the remote command exited with status N: <300 characters of stderr>` could
    /// echo whatever the container wrote there, file content included.
    #[test]
    fn remote_error_output_is_never_echoed() {
        let (status, msg) = failed(1, "SECRET=stderr-canary cat: /opt/x/.env: No such file");
        assert_eq!(status, "ssh_error");
        assert!(!msg.contains("canary"), "{msg}");
        assert!(
            msg.contains("exited with status 1") && msg.contains("not shown"),
            "{msg}"
        );
        let (_, msg) = failed(2, &"x".repeat(4000));
        assert!(msg.len() < 300, "{msg}");
        // cat's reason is shown only when it is a plain system error text.
        let (status, msg) = failed(1, "cat: /opt/x/.env: Input/output error");
        assert_eq!(
            (status, msg.as_str()),
            (
                "file_missing",
                "cat could not read the file (Input/output error)"
            )
        );
        let (_, msg) = failed(
            1,
            "cat: /opt/x/.env: stderr-canary=1 cat: /opt/x/.env: No such file or directory",
        );
        assert!(!msg.contains("canary"), "{msg}");
        assert_eq!(
            failed(1, "cat: /opt/x/.env: No such file or directory").1,
            "the file does not exist"
        );
        assert_eq!(
            failed(1, "cat: /opt/x/.env: Permission denied").0,
            "permission_denied"
        );
        // Known node-side failures get their next step in fixed words.
        assert!(failed(1, "sudo: a password is required")
            .1
            .contains("NOPASSWD"));
        assert!(failed(255, "please run as root").1.contains("`sudo: true`"));
        assert!(failed(
            127,
            "bash: line 1: /usr/sbin/pct: No such file or directory"
        )
        .1
        .contains("`pct_path`"));
        assert!(failed(3, "").1.ends_with("no error output"));
    }

    /// Issue #12: every channel error advised MaxSessions; only a refused channel open should.
    #[test]
    fn channel_advice_matches_the_failure() {
        let refused = ExecError::Channel {
            during: "opening a channel to read",
            reason: "Channel open failure (connect failed)".into(),
            refused: true,
        };
        let msg = exec_error_text(&refused, AT, "CT 119's /opt/x/.env");
        assert!(
            msg.contains("MaxSessions") && msg.contains("`parallel`"),
            "{msg}"
        );
        let other = ExecError::Channel {
            during: "starting the command to read",
            reason: "x".repeat(100_000),
            refused: false,
        };
        let msg = exec_error_text(&other, AT, &target_text(Some("119"), &"/a".repeat(50_000)));
        assert!(!msg.contains("MaxSessions"), "{msg}");
        assert!(msg.len() < 600, "{} bytes", msg.len());
        let sig = ExecError::Signal("KILL; SECRET=canary and more".into());
        assert!(!exec_error_text(&sig, AT, "x").contains("canary"));
        assert!(exec_error_text(&ExecError::Signal("KILL".into()), AT, "x").contains("signal KILL"));
    }
}
