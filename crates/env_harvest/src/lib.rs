//! `env_harvest`: reads deployed `.env` values from LXC containers on a Proxmox host over one SSH
//! connection (`pct exec <vmid> -- cat -- <path>`, through the `proxmox_ssh` transport), parsed
//! with Docker Compose's `.env` rules, mapped to Vault key names, returned as secrets and/or
//! salted fingerprints.

pub mod dotenv;

use ansible_module::{
    fingerprint_bytes, ArgsError, Context, Failure, Kind, Module, Opt, Outcome, Secret,
};
use proxmox_ssh::ssh::{self, ConnectOptions, ExecError, ExecResult};
use proxmox_ssh::{
    build_command, classify, conn_options, shorten, target_text, valid_path, valid_vmid, vmid_text,
    Mode, Place, SshConn, TargetStatus, NAME_SHOWN, PATH_SHOWN,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

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
    #[serde(flatten)]
    pub conn: SshConn,
    pub pct_path: String,
    pub sudo: bool,
    pub mode: Mode,
    pub parallel: i64,
    pub targets: Vec<Target>,
    pub return_values: bool,
    pub salt: Option<String>,
    pub fail_on_missing: bool,
    pub public_keys: Vec<String>,
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_.-[]".contains(c))
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
        let mut o = conn_options();
        o.extend([
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
        ]);
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        if !ctx.ignore_unknown_opts {
            check_suboptions(&ctx.module_name, &p.targets)
                .map_err(|e| Failure::new(e.to_string()))?;
        }
        if !(1..=64).contains(&p.parallel) {
            return Err(Failure::new(
                "parallel must be between 1 and 64 (and below the server's MaxSessions)",
            ));
        }
        let planned = plan(&p)?;
        let opts = p.conn.connect_options()?;
        let read = read_all(&opts, &planned, p.parallel as usize, ctx)?;
        let mut harvest = Harvest::default();
        for (t, r) in planned.iter().zip(&read.results) {
            harvest.add(t, r, &p, p.conn.place());
        }
        harvest.report(&p, &planned, read.host_key_added, read.host_fp, ctx)
    }
}

/// One target, checked and with its command built.
struct Planned {
    name: String,
    vmid: Option<String>,
    target: Target,
    command: String,
}

/// Checks every target and builds its command; sends nothing.
fn plan(p: &Params) -> Result<Vec<Planned>, TargetError> {
    let mode_pct = p.mode == Mode::Pct;
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
        let command = build_command(p.mode, &p.pct_path, p.sudo, vmid.as_deref(), &t.path);
        out.push(Planned {
            name,
            vmid: if mode_pct { vmid } else { None },
            target: t.clone(),
            command,
        });
    }
    Ok(out)
}

/// What the one connection brought back.
struct Read {
    results: Vec<ExecResult>,
    host_key_added: bool,
    host_fp: String,
}

/// Runs every planned command over one SSH connection.
fn read_all(
    opts: &ConnectOptions,
    planned: &[Planned],
    parallel: usize,
    ctx: &mut Context,
) -> Result<Read, Failure> {
    ctx.progress(&format!("connecting to {}:{}", opts.host, opts.port));
    let mut conn = ssh::Connection::open(opts)?;
    let commands: Vec<String> = planned.iter().map(|t| t.command.clone()).collect();
    let total = commands.len();
    let results = {
        let c: &Context = ctx;
        conn.run_all(&commands, parallel, opts.timeout, &mut |done, _| {
            c.progress(&format!("harvested {done}/{total} targets"));
        })
    };
    ctx.progress_done();
    let read = Read {
        results,
        host_key_added: conn.host_key_added,
        host_fp: conn.fingerprint.clone(),
    };
    conn.close();
    Ok(read)
}

/// The values and per-target entries gathered from the read results.
#[derive(Default)]
struct Harvest {
    values: BTreeMap<String, Found>,
    fingerprints: Map<String, Value>,
    conflicts: BTreeSet<String>,
    required_missing: BTreeSet<String>,
    per_target: Vec<Value>,
    failed_targets: Vec<String>,
    /// The first problem's message, quoted in the top-level msg.
    first_problem: Option<String>,
    /// Connection loss: the first lost target's message, and every target left unread.
    lost_msg: Option<String>,
    unread: Vec<String>,
}

/// What one target's file held, as far as the module reads it.
#[derive(Default)]
struct Parsed {
    found: BTreeMap<String, Found>,
    unset_refs: Vec<String>,
}

impl Harvest {
    fn add(&mut self, t: &Planned, r: &ExecResult, p: &Params, place: Place<'_>) {
        let what = target_text(t.vmid.as_deref(), &t.target.path);
        let (mut status, mut msg) = classify(r, place, &what);
        match &r.error {
            Some(ExecError::ConnectionLost { .. }) => {
                self.lost_msg.get_or_insert_with(|| msg.clone());
                self.unread.push(t.name.clone());
            }
            Some(ExecError::NotSent) => self.unread.push(t.name.clone()),
            _ => {}
        }
        let mut parsed = Parsed::default();
        if status == TargetStatus::Ok {
            match parse_target(&r.stdout, t, p) {
                Ok(pr) => parsed = pr,
                Err(e) => {
                    status = TargetStatus::ParseError;
                    msg = format!("{}: {e}", shorten(&t.target.path, PATH_SHOWN));
                }
            }
        }
        let found = parsed.found;
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
        self.required_missing
            .extend(req_missing.iter().map(|k| (*k).clone()));
        if !req_missing.is_empty() || status != TargetStatus::Ok {
            self.failed_targets
                .push(format!("{} ({status})", shorten(&t.name, NAME_SHOWN)));
            if self.first_problem.is_none() && !msg.is_empty() {
                self.first_problem = Some(format!("{}: {msg}", shorten(&t.name, NAME_SHOWN)));
            }
        }
        let tfp = self.merge(&found);
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
        if !parsed.unset_refs.is_empty() {
            entry["unset_references"] = json!(parsed.unset_refs);
        }
        if !non_utf8.is_empty() {
            entry["non_utf8_keys"] = json!(non_utf8);
        }
        self.per_target.push(entry);
    }

    /// Adds one target's values (the first target's value wins; a different one is a
    /// conflict); returns that target's fingerprints.
    fn merge(&mut self, found: &BTreeMap<String, Found>) -> Map<String, Value> {
        let mut tfp = Map::new();
        for (k, v) in found {
            if let Some(fp) = &v.fingerprint {
                tfp.insert(k.clone(), Value::String(fp.clone()));
            }
            match self.values.get(k) {
                Some(existing) if !existing.same(v) => {
                    self.conflicts.insert(k.clone());
                }
                Some(_) => {}
                None => {
                    self.values.insert(k.clone(), v.clone());
                    if let Some(fp) = &v.fingerprint {
                        self.fingerprints
                            .insert(k.clone(), Value::String(fp.clone()));
                    }
                }
            }
        }
        tfp
    }

    fn report(
        self,
        p: &Params,
        planned: &[Planned],
        host_key_added: bool,
        host_fp: String,
        ctx: &mut Context,
    ) -> Result<Outcome, Failure> {
        let non_utf8_keys: Vec<&String> = self
            .values
            .iter()
            .filter(|(_, v)| !v.utf8)
            .map(|(k, _)| k)
            .collect();
        for k in &non_utf8_keys {
            ctx.warn(format!(
                "key {k}: the deployed value is not valid UTF-8 text (a Latin-1 file?); it is returned base64-encoded in `values_base64`, not in `values`, and its fingerprint is over the raw bytes. Vault holds text: convert the file to UTF-8 before backfilling Vault from it"
            ));
        }
        for k in &self.conflicts {
            ctx.warn(format!(
                "key {k} has different values in different targets; `values` holds the first target's"
            ));
        }
        let missing_list: Vec<&String> = self.required_missing.iter().collect();
        if let Some(fmsg) = self.failure_message(p, planned.len()) {
            let mut f = Failure::new(fmsg)
                .set("targets", Value::Array(self.per_target.clone()))
                .set("missing_keys", json!(missing_list))
                .set("non_utf8_keys", json!(non_utf8_keys))
                .set("host_key_fingerprint", host_fp)
                .set("conflicting_keys", json!(self.conflicts));
            if p.salt.is_some() {
                f = f.set("fingerprints", Value::Object(self.fingerprints.clone()));
            }
            return Err(f);
        }
        for t in &self.failed_targets {
            ctx.warn(format!("target {t} had problems"));
        }
        let ok_count = self
            .per_target
            .iter()
            .filter(|e| e["status"] == TargetStatus::Ok.as_str())
            .count();
        let summary = format!(
            "read {ok_count} of {} targets from {}:{}; {} keys found, {} required keys missing",
            self.per_target.len(),
            p.conn.host,
            p.conn.port,
            self.values.len(),
            self.required_missing.len()
        );
        let mut out = Outcome::new(host_key_added)
            .msg(summary)
            .set("targets", Value::Array(self.per_target.clone()))
            .set("missing_keys", json!(missing_list))
            .set("conflicting_keys", json!(self.conflicts))
            .set("non_utf8_keys", json!(non_utf8_keys))
            .set("host_key_fingerprint", host_fp)
            .set("host_key_added", host_key_added);
        if p.salt.is_some() {
            out = out.set("fingerprints", Value::Object(self.fingerprints.clone()));
        }
        if p.return_values {
            let pick = |utf8: bool| -> Map<String, Value> {
                self.values
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

    /// Why the run fails, if it does. A lost connection fails it whatever fail_on_missing says:
    /// the unread targets' keys are unknown, not missing, and a partial `values` would look
    /// complete.
    fn failure_message(&self, p: &Params, total: usize) -> Option<String> {
        if let Some(lost) = &self.lost_msg {
            return Some(format!(
                "{lost}; nothing was returned for the unread targets ({} of {total}: {}), and no values at all",
                self.unread.len(),
                self.unread.join(", ")
            ));
        }
        if !p.fail_on_missing || self.required_missing.is_empty() {
            return None;
        }
        let mut m = format!(
            "required keys missing: {}; targets with problems: {}. Each target's status and msg say why",
            self.required_missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.failed_targets.join(", ")
        );
        if let Some(first) = &self.first_problem {
            m.push_str(&format!(". First problem, {first}"));
        }
        Some(m)
    }
}

/// The mapped values of one target's file, and its references to unset variables.
fn parse_target(stdout: &[u8], t: &Planned, p: &Params) -> Result<Parsed, dotenv::ParseError> {
    let file = dotenv::parse(stdout)?;
    let mut found = BTreeMap::new();
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
    let unset_refs = file
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
    Ok(Parsed { found, unset_refs })
}
