//! `env_harvest`: reads deployed `.env` values from LXC containers on a Proxmox host over one SSH
//! connection (`pct exec <vmid> -- cat -- <path>`), parsed with Docker Compose's `.env` rules,
//! mapped to Vault key names, returned as secrets and/or salted fingerprints.

pub mod dotenv;
pub mod ssh;

use ansible_module::{fingerprint, Context, Failure, Kind, Module, Opt, Outcome, Secret};
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
    #[error("target {index} ({name}): path must be absolute, without '.', '..' or empty components, and use only letters, digits and . _ - + @ = , in each component")]
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
pub fn valid_path(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest.split('/').all(|c| {
            !c.is_empty()
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

/// A target as messages name it: `CT 119's /opt/…/.env` (pct mode) or `/opt/…/.env on the node`.
pub fn target_text(vmid: Option<&str>, path: &str) -> String {
    match vmid {
        Some(v) => format!("CT {v}'s {path}"),
        None => format!("{path} on the node"),
    }
}

/// The message of a channel- or connection-level failure: what failed, where, and what to do.
/// Built from the target's name and libssh2's short reason only; never file content.
pub fn exec_error_text(e: &ExecError, at: Place<'_>, what: &str) -> String {
    let Place { host, port, user } = at;
    match e {
        ExecError::ConnectionLost { during, reason } => format!(
            "the SSH connection to {host}:{port} (user {user}) was lost while {during} {what} ({reason}): check that sshd on the Proxmox node is up and re-run"
        ),
        ExecError::NotSent => format!(
            "not read: the SSH connection to {host}:{port} (user {user}) was lost before {what} was requested; check that sshd on the Proxmox node is up and re-run"
        ),
        ExecError::TimedOut { secs } => format!(
            "reading {what} over SSH on {host}:{port} (user {user}) did not finish within {secs} s (timeout): raise `timeout` or check the node's load (a hung pct or cat there holds the read)"
        ),
        ExecError::Channel { during, reason } => format!(
            "{during} {what} failed on the SSH connection to {host}:{port} (user {user}) ({reason}): if sshd refused the channel, keep `parallel` below its MaxSessions (10 by default); otherwise check sshd's log on the node and re-run"
        ),
        ExecError::Signal(sig) => format!(
            "the command reading {what} on {host}:{port} (user {user}) was killed by signal {sig}: check the node's logs (e.g. the OOM killer) and re-run"
        ),
    }
}

/// Per-target status (contract §1.2: classified by exit code and stderr prefix). `what` names
/// the target in transport messages (see [`target_text`]).
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
        if err.contains("Permission denied") {
            return (
                "permission_denied",
                "the file cannot be read (Permission denied)".into(),
            );
        }
        if err.contains("Is a directory") {
            return ("file_missing", "the path is a directory".into());
        }
        return ("file_missing", "the file does not exist".into());
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
            let code = code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "unknown".into());
            let mut text: String = r.stderr.chars().take(300).collect();
            if text.is_empty() {
                text = "no error output".into();
            }
            (
                "ssh_error",
                format!("the remote command exited with status {code}: {text}"),
            )
        }
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
            name.clone()
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

    let mut values: BTreeMap<String, Secret> = BTreeMap::new();
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
        let mut found: BTreeMap<String, Secret> = BTreeMap::new();
        let mut unset_refs = Vec::new();
        if status == "ok" {
            match dotenv::parse(&r.stdout) {
                Ok(file) => {
                    for (vault_key, env) in &t.target.keys {
                        if let Some(v) = file.values.get(env) {
                            // Values of keys declared public (identifiers) are not masked.
                            let value = if p.public_keys.contains(vault_key) {
                                Secret::unmasked(v.clone())
                            } else {
                                Secret::named(vault_key, v.clone())
                            };
                            found.insert(vault_key.clone(), value);
                        }
                    }
                    unset_refs = file
                        .unset_references
                        .into_iter()
                        .map(|(l, n)| format!("line {l}: ${n}"))
                        .collect();
                    // Parsed values that are not mapped are dropped here, unread.
                }
                Err(e) => {
                    status = "parse_error";
                    msg = format!("{}: {e}", t.target.path);
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
            failed_targets.push(format!("{} ({status})", t.name));
            if first_problem.is_none() && !msg.is_empty() {
                first_problem = Some(format!("{}: {msg}", t.name));
            }
        }
        let mut tfp = Map::new();
        for (k, v) in &found {
            if let Some(salt) = &p.salt {
                tfp.insert(k.clone(), Value::String(fingerprint(salt, v.expose())));
            }
            match values.get(k) {
                Some(existing) if existing != v => {
                    conflicts.insert(k.clone());
                }
                Some(_) => {}
                None => {
                    values.insert(k.clone(), v.clone());
                    if let Some(salt) = &p.salt {
                        fingerprints
                            .insert(k.clone(), Value::String(fingerprint(salt, v.expose())));
                    }
                }
            }
        }
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
        per_target.push(entry);
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
        .set("host_key_fingerprint", host_fp)
        .set("host_key_added", host_key_added);
    if p.salt.is_some() {
        out = out.set("fingerprints", Value::Object(fingerprints));
    }
    if p.return_values {
        let v: Map<String, Value> = values
            .iter()
            .map(|(k, s)| (k.clone(), Value::String(s.expose().to_string())))
            .collect();
        out = out.secret("values", Value::Object(v));
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
    }
}
