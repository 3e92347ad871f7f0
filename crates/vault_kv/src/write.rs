//! The `vault_full_write` module: one safe write of a whole KV v2 secret.

use crate::ages;
use crate::conn::{conn_options, ConnParams};
use crate::kv::{version_option, Kv, KvPath, Patched, ReadResult, VaultError, Written};
use ansible_module::spec::{coerce, Kind};
use ansible_module::{Context, Failure, Module, Opt, Outcome};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Test-only hook, compiled in only where debug assertions are on (the dev profile the tests
/// build with; never the release profile): when set to a file path, the module creates `<path>.reached` right before it writes and
/// then waits (up to 120 s) until `<path>` exists. Integration tests use it to put a concurrent
/// writer between the read and the CAS write.
pub const TEST_PAUSE_ENV: &str = "HOMELAB_SSO_TEST_PAUSE_BEFORE_WRITE";

/// How the write is guarded by check-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// `cas` = the version just read (0 when the path does not exist: create only).
    Read,
    /// An explicit version.
    Explicit(u64),
    /// No `cas` (an unconditional write).
    Disabled,
}

impl Cas {
    /// Reads the `cas` option: absent/`auto`/`read` → [`Cas::Read`]; an integer or integer
    /// string (`3`, `"3"`) → explicit; `disabled`/`false`/`off`/`no`/`none` → disabled.
    pub fn parse(v: &Value) -> Result<Cas, String> {
        let bad = || {
            format!(
                "`cas` must be a version number (0 = create only), `auto` (the version just read, the default) or `disabled`, got {}",
                ansible_module::pyfmt::str(v)
            )
        };
        match v {
            Value::Null => Ok(Cas::Read),
            Value::Bool(true) => Ok(Cas::Read),
            Value::Bool(false) => Ok(Cas::Disabled),
            Value::String(s) => match s.trim().to_lowercase().as_str() {
                "" | "auto" | "read" | "true" | "yes" | "on" => Ok(Cas::Read),
                "disabled" | "false" | "off" | "no" | "none" => Ok(Cas::Disabled),
                _ => coerce(Kind::Int, v)
                    .ok()
                    .and_then(|n| n.as_u64())
                    .map(Cas::Explicit)
                    .ok_or_else(bad),
            },
            Value::Number(_) => coerce(Kind::Int, v)
                .ok()
                .and_then(|n| n.as_u64())
                .map(Cas::Explicit)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WriteParams {
    #[serde(flatten)]
    pub conn: ConnParams,
    pub data: Option<Map<String, Value>>,
    pub patch: bool,
    pub remove_keys: Option<Vec<String>>,
    pub required_keys: Option<Vec<String>>,
    pub allow_remove: bool,
    pub cas: Value,
    pub rollback_to: Option<i64>,
    pub generate: Option<Map<String, Value>>,
    pub keep_keys: Option<Vec<String>>,
}

/// How a generated value is made (the `generate` option).
pub fn generate_value(kind: &str) -> Result<String, String> {
    use base64::Engine;
    let random = |n: usize| {
        let mut b = vec![0u8; n];
        getrandom::fill(&mut b).map_err(|e| format!("the system random source failed: {e}"))?;
        Ok::<Vec<u8>, String>(b)
    };
    match kind {
        // oauth2-proxy's cookie_secret: 32 random bytes, URL-safe base64 (decodes to 32 bytes).
        "cookie_secret" => Ok(base64::engine::general_purpose::URL_SAFE.encode(random(32)?)),
        "password" => {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            // Rejection sampling keeps every character equally likely.
            let mut out = String::with_capacity(32);
            while out.len() < 32 {
                for b in random(64)? {
                    if (b as usize) < 248 && out.len() < 32 {
                        out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
                    }
                }
            }
            Ok(out)
        }
        "token" => Ok(random(32)?.iter().map(|b| format!("{b:02x}")).collect()),
        other => Err(format!(
            "unknown generator {other:?}: use cookie_secret (32 random bytes, URL-safe base64), password (32 letters and digits) or token (32 random bytes, hex)"
        )),
    }
}

pub struct VaultFullWrite;

/// What the module knows about the current secret before writing.
struct Current {
    /// Values, when the token may read them.
    data: Option<Map<String, Value>>,
    /// Key names (from the data or from `subkeys`), when known.
    keys: Option<BTreeSet<String>>,
    /// The version CAS compares against: current_version (0 = no secret), when known.
    version: Option<u64>,
    /// The latest version is deleted/destroyed (no data, but the version number still counts).
    latest_deleted: bool,
    /// ... and destroyed (cannot be undeleted).
    latest_destroyed: bool,
    /// Why the values could not be read (the 403 text), for later error messages.
    read_denied: Option<String>,
    /// The secret's `custom_metadata` as the data read returned it (empty for a new secret),
    /// so that recording the keys' ages needs no read of the metadata.
    custom_metadata: Option<Map<String, Value>>,
}

/// RFC 7386 merge patch of `target` with `patch` (`null` deletes, objects merge recursively).
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

fn names(keys: impl IntoIterator<Item = String>) -> Value {
    Value::Array(keys.into_iter().map(Value::String).collect())
}

fn list(keys: &BTreeSet<String>) -> String {
    keys.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Key-level changes between two maps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyChanges {
    pub added: BTreeSet<String>,
    pub removed: BTreeSet<String>,
    pub changed: BTreeSet<String>,
    pub unchanged: BTreeSet<String>,
}

impl KeyChanges {
    pub fn between(before: &Map<String, Value>, after: &Map<String, Value>) -> Self {
        let mut c = KeyChanges::default();
        for (k, v) in after {
            match before.get(k) {
                None => c.added.insert(k.clone()),
                Some(b) if b != v => c.changed.insert(k.clone()),
                Some(_) => c.unchanged.insert(k.clone()),
            };
        }
        c.removed = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
        c
    }
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
    /// Ansible's diff: key names with `<added>`/`<removed>`/`<changed>` markers, never values.
    pub fn diff(&self, path: &str, before_version: u64, after_version: Option<u64>) -> Value {
        let mut before = String::new();
        let mut after = String::new();
        let all: BTreeSet<&String> = self
            .added
            .iter()
            .chain(&self.removed)
            .chain(&self.changed)
            .chain(&self.unchanged)
            .collect();
        for k in all {
            if self.removed.contains(k) {
                before.push_str(&format!("{k}: <removed>\n"));
            } else if self.added.contains(k) {
                after.push_str(&format!("{k}: <added>\n"));
            } else if self.changed.contains(k) {
                before.push_str(&format!("{k}: <changed: old value>\n"));
                after.push_str(&format!("{k}: <changed: new value>\n"));
            } else {
                before.push_str(&format!("{k}\n"));
                after.push_str(&format!("{k}\n"));
            }
        }
        let after_header = match after_version {
            Some(v) => format!("{path} (version {v})"),
            None => format!("{path} (new version)"),
        };
        serde_json::json!({
            "before": before,
            "after": after,
            "before_header": format!("{path} (version {before_version})"),
            "after_header": after_header,
        })
    }
}

/// In a release build the variable is not even read.
#[cfg(not(debug_assertions))]
fn test_pause() {}

#[cfg(debug_assertions)]
fn test_pause() {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};
    let Some(path) = std::env::var_os(TEST_PAUSE_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    let mut reached = path.clone().into_os_string();
    reached.push(".reached");
    let _ = std::fs::write(&reached, b"");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the current values of `keep` into `data`: a full write that carries keys over from the
/// module's own read, so their values never travel through Ansible.
fn keep_current_values(
    keep: &[String],
    current: &Current,
    data: &mut Map<String, Value>,
) -> Result<(), String> {
    let given: Vec<&str> = keep
        .iter()
        .filter(|k| data.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !given.is_empty() {
        return Err(format!(
            "`keep_keys` names {} which `data` or `generate` also sets; a key is either kept or written",
            given.join(", ")
        ));
    }
    let Some(cur) = &current.data else {
        return Err("`keep_keys` needs the current values, but the token may not read them: grant `read` on the secret's data path".into());
    };
    let absent: Vec<&str> = keep
        .iter()
        .filter(|k| !cur.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !absent.is_empty() {
        let version = current.version.unwrap_or(0);
        return Err(format!(
            "`keep_keys` names {} which version {version} does not hold{}; write them in `data` or `generate` instead",
            absent.join(", "),
            if current.latest_deleted { " (the latest version is deleted)" } else { "" }
        ));
    }
    for k in keep {
        data.insert(k.clone(), cur[k].clone());
    }
    Ok(())
}

/// Reads what the token may read about the current secret.
fn read_current(kv: &Kv, ctx: &mut Context) -> Result<Current, VaultError> {
    let at = kv.at();
    match kv.read(None) {
        Ok(ReadResult::Present {
            data,
            version,
            metadata,
        }) => Ok(Current {
            keys: Some(data.keys().cloned().collect()),
            data: Some(data),
            version: Some(version),
            latest_deleted: false,
            latest_destroyed: false,
            read_denied: None,
            // `null` when the secret has none; absent where the server does not return it.
            custom_metadata: match metadata.get("custom_metadata") {
                Some(Value::Object(m)) => Some(m.clone()),
                Some(Value::Null) => Some(Map::new()),
                _ => None,
            },
        }),
        Ok(ReadResult::Missing) => Ok(Current {
            data: Some(Map::new()),
            keys: Some(BTreeSet::new()),
            version: Some(0),
            latest_deleted: false,
            latest_destroyed: false,
            read_denied: None,
            custom_metadata: Some(Map::new()),
        }),
        Ok(ReadResult::Deleted { version, destroyed }) => Ok(Current {
            data: Some(Map::new()),
            keys: Some(BTreeSet::new()),
            version: Some(version),
            latest_deleted: true,
            latest_destroyed: destroyed,
            read_denied: None,
            custom_metadata: None,
        }),
        Err(
            e @ VaultError::PermissionDenied {
                token_refused: true,
                ..
            },
        ) => Err(e),
        Err(denied @ VaultError::PermissionDenied { .. }) => {
            // Write-only token (contract §2.4): learn what the policy allows without values.
            // Outer `None`: metadata not readable either.
            let metadata: Option<Option<Value>> = match kv.metadata() {
                Ok(m) => Some(m),
                Err(VaultError::PermissionDenied { .. }) => None,
                Err(e) => return Err(e),
            };
            let version = match &metadata {
                Some(Some(m)) => m["current_version"].as_u64(),
                Some(None) => Some(0),
                None => None,
            };
            let mut latest_deleted = false;
            let keys = match kv.subkeys() {
                Ok(Some(k)) => Some(k.into_iter().collect()),
                Ok(None) if version.is_some() => {
                    // subkeys answers 404 for a deleted or destroyed latest version too.
                    latest_deleted = version.is_some_and(|v| v > 0);
                    Some(BTreeSet::new())
                }
                Ok(None) => None,
                Err(VaultError::PermissionDenied { .. }) => None,
                Err(e) => return Err(e),
            };
            ctx.warn(format!(
                "the token cannot read the values of {} (no `read` on {}/data/{}): the module cannot compare values, so it writes and reports changed on every run{}",
                at,
                at.mount(),
                at.path(),
                if version.is_none() {
                    "; it cannot read metadata either, so there is no check-and-set from a read"
                } else {
                    ""
                }
            ));
            Ok(Current {
                data: None,
                keys,
                latest_destroyed: latest_deleted
                    && version.is_some_and(|v| {
                        metadata.as_ref().and_then(Option::as_ref).is_some_and(|m| {
                            m["versions"][v.to_string()]["destroyed"] == Value::Bool(true)
                        })
                    }),
                version,
                latest_deleted,
                read_denied: Some(denied.to_string()),
                custom_metadata: metadata
                    .as_ref()
                    .and_then(Option::as_ref)
                    .and_then(|m| m["custom_metadata"].as_object().cloned()),
            })
        }
        Err(e) => Err(e),
    }
}

impl Module for VaultFullWrite {
    const NAME: &'static str = "vault_full_write";
    const ABOUT: &'static str = "Write a whole Vault/OpenBao KV v2 secret safely: read, compare, write only when different with check-and-set; key guards, patch, rollback";
    type Params = WriteParams;

    fn options() -> Vec<Opt> {
        let mut o = conn_options();
        o.extend([
            Opt::dict("data")
                .no_log()
                .help("The secret's keys and values (values are secrets). Full write: exactly these keys; patch: these keys are set"),
            Opt::bool("patch")
                .default(false)
                .help("Merge into the current secret instead of replacing it"),
            Opt::list("remove_keys", Kind::Str).help("patch mode: keys to delete"),
            Opt::list("required_keys", Kind::Str).help("Keys the resulting secret must hold (checked before any write)"),
            Opt::bool("allow_remove")
                .default(false)
                .help("Allow a full write (or rollback) to drop keys the current secret has"),
            Opt::raw("cas").help("Check-and-set: `auto` (default, the version just read), a version number, or `disabled`"),
            Opt::int("rollback_to").help("Write version N's data again as a new version, N >= 1 (like `vault kv rollback`)"),
            Opt::dict("generate").help(
                "Keys whose new values the module generates itself (never shown, never returned): key -> cookie_secret | password | token; merged over `data`",
            ),
            Opt::list("keep_keys", Kind::Str).help(
                "Full write: keys whose current values the module carries over from its own read (values never pass through Ansible)",
            ),
        ]);
        o
    }

    fn run(p: WriteParams, ctx: &mut Context) -> Result<Outcome, Failure> {
        let (conn, request) = Request::check(p)?;
        let kv = conn.connect()?;
        let (rollback_data, current) = read(&kv, &request, ctx)?;
        let plan = Plan::new(request, rollback_data, &current, kv.at())?;
        if plan.nothing_to_do {
            return Ok(plan.report_nothing_to_do(kv.at()));
        }
        if ctx.check_mode {
            return Ok(plan.report_check(kv.at()));
        }
        let (written, how) = plan.apply(&kv)?;
        let recorded = ages::record(
            &kv,
            &plan.new_value_keys(),
            &plan.changes.removed,
            &written,
            plan.custom_metadata.as_ref(),
        );
        for w in &recorded.warnings {
            ctx.warn(w.clone());
        }
        Ok(plan
            .report_written(kv.at(), written.version, how)
            .set("recorded_keys", names(recorded.keys))
            .set("unrecorded_keys", names(recorded.unrecorded)))
    }
}

/// What kind of write was asked for (the result's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    Patch,
    Rollback,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Patch => "patch",
            Mode::Rollback => "rollback",
        }
    }
}

/// The options, checked against each other before any request.
struct Request {
    mode: Mode,
    /// `data` with the generated values merged in; `None` for a rollback.
    data: Option<Map<String, Value>>,
    rollback_to: Option<u64>,
    remove_keys: BTreeSet<String>,
    required: BTreeSet<String>,
    allow_remove: bool,
    cas: Cas,
    keep_keys: Vec<String>,
    generated_keys: Vec<String>,
}

impl Request {
    fn check(mut p: WriteParams) -> Result<(ConnParams, Request), Failure> {
        let cas = Cas::parse(&p.cas).map_err(Failure::new)?;
        let rollback_to = version_option(
            "rollback_to",
            p.rollback_to,
            "pick a version from the secret's metadata (`versions`), e.g. the `previous_version` of an earlier write when it is 1 or more",
        )?;
        let generated_keys = generate_into(p.generate.take(), rollback_to.is_some(), &mut p.data)?;
        let keep_keys = p.keep_keys.take().unwrap_or_default();
        if p.data.is_none() && !keep_keys.is_empty() && rollback_to.is_none() {
            p.data = Some(Map::new());
        }
        match (&p.data, rollback_to) {
            (Some(_), Some(_)) => return Err(Failure::new("`data` and `rollback_to` are mutually exclusive: a rollback writes version N's data")),
            (None, None) => return Err(Failure::new("one of `data` or `rollback_to` is required")),
            _ => {}
        }
        let remove_keys: BTreeSet<String> = p.remove_keys.unwrap_or_default().into_iter().collect();
        if !remove_keys.is_empty() && !p.patch {
            return Err(Failure::new(
                "`remove_keys` needs `patch: true`; in a full write, leave the key out of `data` and set `allow_remove: true`",
            ));
        }
        if !keep_keys.is_empty() && (p.patch || rollback_to.is_some()) {
            return Err(Failure::new(
                "`keep_keys` is for full writes: a patch keeps every key it does not name, and a rollback writes version N's data",
            ));
        }
        if rollback_to.is_some() && p.patch {
            return Err(Failure::new(
                "`rollback_to` writes a whole version: it cannot be combined with `patch: true`",
            ));
        }
        let mode = match (rollback_to, p.patch) {
            (Some(_), _) => Mode::Rollback,
            (None, true) => Mode::Patch,
            (None, false) => Mode::Full,
        };
        let request = Request {
            mode,
            data: p.data,
            rollback_to,
            remove_keys,
            required: p.required_keys.unwrap_or_default().into_iter().collect(),
            allow_remove: p.allow_remove,
            cas,
            keep_keys,
            generated_keys,
        };
        Ok((p.conn, request))
    }
}

/// Generates the values `generate` asks for into `data`; returns the generated key names.
fn generate_into(
    generate: Option<Map<String, Value>>,
    rollback: bool,
    data: &mut Option<Map<String, Value>>,
) -> Result<Vec<String>, Failure> {
    let Some(generate) = generate else {
        return Ok(Vec::new());
    };
    if rollback {
        return Err(Failure::new(
            "`generate` and `rollback_to` are mutually exclusive",
        ));
    }
    let data = data.get_or_insert_with(Map::new);
    let mut keys = Vec::new();
    for (key, kind) in generate {
        let kind = kind.as_str().unwrap_or_default().to_string();
        let value = ansible_module::Secret::new(
            generate_value(&kind).map_err(|e| Failure::new(format!("generate.{key}: {e}")))?,
        );
        data.insert(key.clone(), Value::String(value.expose().to_string()));
        keys.push(key);
    }
    Ok(keys)
}

/// The reads a plan is made from: the version to roll back to (if any), then the current secret.
fn read(
    kv: &Kv,
    request: &Request,
    ctx: &mut Context,
) -> Result<(Option<Map<String, Value>>, Current), Failure> {
    let at = kv.at();
    let rollback_data = match request.rollback_to {
        Some(n) => match kv.read(Some(n))? {
            ReadResult::Present { data, .. } => Some(data),
            ReadResult::Deleted { destroyed, .. } => {
                return Err(Failure::new(format!(
                    "cannot roll back {at} to version {n}: that version is {}; choose a live version (see the metadata's `versions`)",
                    if destroyed { "destroyed" } else { "deleted (undelete it first)" }
                )))
            }
            ReadResult::Missing => {
                return Err(Failure::new(format!(
                    "cannot roll back {at} to version {n}: no such version (never written, or pruned by max_versions)"
                )))
            }
        },
        None => None,
    };
    Ok((rollback_data, read_current(kv, ctx)?))
}

/// The write to make, decided from the options and the reads alone: making it sends nothing,
/// so check mode is this plan reported without [`Plan::apply`].
struct Plan {
    mode: Mode,
    previous_version: Option<u64>,
    /// The `cas` sent with the write.
    cas: Option<u64>,
    /// Patch mode: the merge-patch document (`null` deletes a key).
    patch_doc: Option<Map<String, Value>>,
    /// The whole secret after the write, when known (not for a patch the token may not read).
    full_data: Option<Map<String, Value>>,
    /// Key-level changes: exact with the values, by key names only otherwise.
    changes: KeyChanges,
    values_known: bool,
    /// The current version already holds this data.
    nothing_to_do: bool,
    latest_deleted: bool,
    generated_keys: Vec<String>,
    /// The `custom_metadata` read before the write, when known (see [`ages::record`]).
    custom_metadata: Option<Map<String, Value>>,
}

impl Plan {
    fn new(
        mut request: Request,
        rollback_data: Option<Map<String, Value>>,
        current: &Current,
        at: &KvPath,
    ) -> Result<Plan, Failure> {
        let patch = request.mode == Mode::Patch;
        if patch && current.latest_deleted {
            // Merging into "no data" would drop every key the secret had (silently: the
            // removal guard compares against the empty deleted version).
            return Err(VaultError::patch_on_deleted(
                at,
                current.version.unwrap_or(0),
                current.latest_destroyed,
            )
            .into());
        }
        let cas = cas_value(request.cas, current, at)?;
        if !request.keep_keys.is_empty() {
            let data = request.data.get_or_insert_with(Map::new);
            keep_current_values(&request.keep_keys, current, data)
                .map_err(|e| Failure::new(format!("refusing to write {at}: {e}")))?;
        }
        let patch_doc: Option<Map<String, Value>> = patch.then(|| {
            let mut d = request.data.clone().unwrap_or_default();
            for k in &request.remove_keys {
                d.insert(k.clone(), Value::Null);
            }
            d
        });
        let full_data: Option<Map<String, Value>> = match (rollback_data, &patch_doc) {
            (Some(d), _) => Some(d),
            (None, None) => request.data.clone(),
            (None, Some(doc)) => current.data.as_ref().map(|cur| {
                let mut m = cur.clone();
                merge_patch(&mut m, doc);
                m
            }),
        };
        let (changes, resulting_keys) =
            key_changes(current, full_data.as_ref(), patch_doc.as_ref());
        let values_known = current.data.is_some() && full_data.is_some();
        guard(
            &request,
            current,
            changes.removed.clone(),
            resulting_keys,
            at,
        )?;
        Ok(Plan {
            mode: request.mode,
            previous_version: current.version,
            cas,
            nothing_to_do: values_known && changes.is_empty() && !current.latest_deleted,
            patch_doc,
            full_data,
            changes,
            values_known,
            latest_deleted: current.latest_deleted,
            generated_keys: request.generated_keys,
            custom_metadata: current.custom_metadata.clone(),
        })
    }

    /// The result's fields every outcome has.
    fn outcome(&self, at: &KvPath) -> Outcome {
        Outcome::new(false)
            .set("path", at.to_string())
            .set("generated_keys", names(self.generated_keys.clone()))
            .set(
                "previous_version",
                self.previous_version
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            )
            .set("added_keys", names(self.changes.added.clone()))
            .set("removed_keys", names(self.changes.removed.clone()))
            .set("changed_keys", names(self.changes.changed.clone()))
            .set("mode", self.mode.name())
            .set("recorded_keys", names(Vec::new()))
            .set("unrecorded_keys", names(Vec::new()))
    }

    fn report_nothing_to_do(&self, at: &KvPath) -> Outcome {
        let prev = self.previous_version.unwrap_or(0);
        self.outcome(at).set("version", prev).msg(format!(
            "{at} version {prev} already holds this data; nothing written"
        ))
    }

    fn report_check(&self, at: &KvPath) -> Outcome {
        let predicted = self.previous_version.map(|v| v + 1);
        let mut out = self.outcome(at);
        out.changed = true;
        out.set("version", predicted.map(Value::from).unwrap_or(Value::Null))
            .msg(format!(
                "check mode: would write {at} as version {} ({} added, {} changed, {} removed)",
                predicted
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(unknown)".into()),
                self.changes.added.len(),
                self.changes.changed.len(),
                self.changes.removed.len()
            ))
            .diff_value(self.diff(at, predicted))
    }

    fn report_written(&self, at: &KvPath, version: u64, how: &str) -> Outcome {
        let mut out = self.outcome(at);
        out.changed = true;
        if !self.values_known {
            out.insert("values_compared", false);
        }
        out.set("version", version)
            .msg(format!(
                "wrote {at} version {version} by {how} ({} added, {} changed, {} removed)",
                self.changes.added.len(),
                self.changes.changed.len(),
                self.changes.removed.len()
            ))
            .diff_value(self.diff(at, Some(version)))
    }

    /// The keys this write gives a new value: added or changed when the values were compared;
    /// otherwise only those known to be new (added by name, or generated).
    fn new_value_keys(&self) -> BTreeSet<String> {
        let c = &self.changes;
        let mut keys: BTreeSet<String> = c.added.clone();
        if self.values_known {
            keys.extend(c.changed.iter().cloned());
        } else {
            keys.extend(self.generated_keys.iter().cloned());
        }
        keys
    }

    fn diff(&self, at: &KvPath, after: Option<u64>) -> Value {
        self.changes
            .diff(&at.to_string(), self.previous_version.unwrap_or(0), after)
    }

    /// Sends the planned write; returns the new version and how it was written.
    fn apply(&self, kv: &Kv) -> Result<(Written, &'static str), Failure> {
        test_pause();
        let at = kv.at();
        let (m, path) = (at.mount(), at.path());
        let written = match (&self.patch_doc, &self.full_data) {
            // Patch: PATCH first where the server allows it (one request, no values sent back).
            (Some(doc), _) if !self.latest_deleted && self.previous_version != Some(0) => {
                match kv.patch(doc, self.cas)? {
                    Patched::Version(v) => (v, "patch"),
                    // Deleted after the read (or unreadable to this token): never fall back to a
                    // write that would replace the deleted data by the patched keys alone.
                    Patched::LatestDeleted { version, destroyed } => {
                        return Err(VaultError::patch_on_deleted(at, version, destroyed).into())
                    }
                    // Unsupported: no `patch` capability. Missing: metadata deleted after the
                    // read; the CAS of the fallback write then fails as a conflict.
                    Patched::Unsupported | Patched::Missing => match &self.full_data {
                        Some(full) => (
                            kv.write(full, self.cas.or(self.previous_version))?,
                            "read-modify-write",
                        ),
                        None => {
                            return Err(Failure::new(format!(
                                "cannot patch {at}: the token lacks the `patch` capability on {m}/data/{path}, and the read-modify-write fallback needs `read` on it; grant one of them"
                            )))
                        }
                    },
                }
            }
            (_, Some(full)) => (kv.write(full, self.cas)?, "write"),
            (_, None) => {
                return Err(Failure::new(format!(
                    "cannot create {at} in patch mode without reading it: grant `read` on {m}/data/{path}"
                )))
            }
        };
        Ok(written)
    }
}

/// The `cas` to send: the version just read, an explicit one (checked against the read), or
/// none.
fn cas_value(cas: Cas, current: &Current, at: &KvPath) -> Result<Option<u64>, Failure> {
    if let (Cas::Explicit(want), Some(have)) = (cas, current.version) {
        if want != have {
            return Err(VaultError::CasMismatch {
                path: at.to_string(),
                expected: want,
            }
            .into());
        }
    }
    match cas {
        Cas::Read => current.version.map(Some).ok_or_else(|| Failure::new(format!(
            "{}; the token can read neither {at} nor its metadata, so the write cannot be guarded by check-and-set: grant `read` on {m}/metadata/{path} (and on {m}/subkeys/{path} for the key guards), or pass an explicit `cas: <current version>`, or `cas: disabled` to write blind",
            current.read_denied.as_deref().unwrap_or("read denied"),
            m = at.mount(),
            path = at.path(),
        ))),
        Cas::Explicit(v) => Ok(Some(v)),
        Cas::Disabled => Ok(None),
    }
}

/// Key-level changes of the write and the key names after it, as far as the token may know
/// them: exact with the values, from the key names (`subkeys`) otherwise.
fn key_changes(
    current: &Current,
    full_data: Option<&Map<String, Value>>,
    patch_doc: Option<&Map<String, Value>>,
) -> (KeyChanges, Option<BTreeSet<String>>) {
    let by_names = |added, removed, changed| KeyChanges {
        added,
        removed,
        changed,
        unchanged: BTreeSet::new(),
    };
    match (&current.data, full_data, &current.keys) {
        (Some(cur), Some(new), _) => (
            KeyChanges::between(cur, new),
            Some(new.keys().cloned().collect()),
        ),
        (None, Some(new), Some(keys)) => {
            let newk: BTreeSet<String> = new.keys().cloned().collect();
            (
                by_names(&newk - keys, keys - &newk, &newk & keys),
                Some(newk),
            )
        }
        (None, Some(new), None) => (KeyChanges::default(), Some(new.keys().cloned().collect())),
        (None, None, Some(keys)) => {
            // write-only patch: keys after = keys + data - remove_keys
            let doc = patch_doc.cloned().unwrap_or_default();
            let set: BTreeSet<String> = doc
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            let rm: BTreeSet<String> = doc
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            let after: BTreeSet<String> = &(keys | &set) - &rm;
            (by_names(&set - keys, keys & &rm, keys & &set), Some(after))
        }
        _ => (KeyChanges::default(), None),
    }
}

/// The guards, before any write: required keys present, no key dropped unless allowed.
fn guard(
    request: &Request,
    current: &Current,
    removed: BTreeSet<String>,
    resulting_keys: Option<BTreeSet<String>>,
    at: &KvPath,
) -> Result<(), Failure> {
    let (m, path) = (at.mount(), at.path());
    match &resulting_keys {
        Some(keys) => {
            let missing: BTreeSet<String> = &request.required - keys;
            if !missing.is_empty() {
                return Err(Failure::new(format!(
                    "refusing to write {at}: the result would lack required key(s) {}; add them to `data`",
                    list(&missing)
                ))
                .set("missing_keys", names(missing)));
            }
        }
        None if !request.required.is_empty() => {
            return Err(Failure::new(format!(
                "cannot check `required_keys` for {at}: the token may read neither the secret nor its key names (grant `read` on {m}/subkeys/{path})"
            )))
        }
        None => {}
    }
    // Patch removals are named in `remove_keys`; full writes and rollbacks need `allow_remove`.
    if request.mode != Mode::Patch && !request.allow_remove {
        if current.keys.is_none() {
            return Err(Failure::new(format!(
                "cannot tell whether this full write drops keys of {at}: the token may read neither the secret nor its key names; grant `read` on {m}/subkeys/{path}, or set `allow_remove: true` to write anyway"
            )));
        }
        if !removed.is_empty() {
            return Err(Failure::new(format!(
                "refusing a full write of {at} that would remove existing key(s) {}: add them to `data`, or set `allow_remove: true` if removing them is intended",
                list(&removed)
            ))
            .set("removed_keys", names(removed)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cas_option_forms() {
        assert_eq!(Cas::parse(&Value::Null), Ok(Cas::Read));
        assert_eq!(Cas::parse(&json!("auto")), Ok(Cas::Read));
        assert_eq!(Cas::parse(&json!("3")), Ok(Cas::Explicit(3)));
        assert_eq!(Cas::parse(&json!("3.0")), Ok(Cas::Explicit(3)));
        assert_eq!(Cas::parse(&json!(0)), Ok(Cas::Explicit(0)));
        assert_eq!(Cas::parse(&json!("disabled")), Ok(Cas::Disabled));
        assert_eq!(Cas::parse(&json!(false)), Ok(Cas::Disabled));
        assert!(Cas::parse(&json!(-1)).is_err());
        assert!(Cas::parse(&json!("3.5")).is_err());
    }

    #[test]
    fn merge_patch_is_rfc7386() {
        let mut t = json!({"a": "1", "b": "2", "n": {"x": 1, "y": 2}})
            .as_object()
            .unwrap()
            .clone();
        let p = json!({"a": "A", "b": null, "d": "4", "n": {"y": null}})
            .as_object()
            .unwrap()
            .clone();
        merge_patch(&mut t, &p);
        assert_eq!(Value::Object(t), json!({"a": "A", "d": "4", "n": {"x": 1}}));
    }

    #[test]
    fn key_changes_and_diff_carry_names_only() {
        let before = json!({"a": "secret-a", "b": "secret-b", "c": "secret-c"})
            .as_object()
            .unwrap()
            .clone();
        let after = json!({"a": "secret-a", "b": "secret-B", "d": "secret-d"})
            .as_object()
            .unwrap()
            .clone();
        let c = KeyChanges::between(&before, &after);
        assert_eq!(c.added, ["d".to_string()].into());
        assert_eq!(c.removed, ["c".to_string()].into());
        assert_eq!(c.changed, ["b".to_string()].into());
        let d = c.diff("secret/x", 1, Some(2)).to_string();
        assert!(!d.contains("secret-"), "{d}");
        assert!(
            d.contains("d: <added>") && d.contains("c: <removed>") && d.contains("b: <changed")
        );
    }

    #[test]
    fn generators_make_the_documented_shapes() {
        use base64::Engine;
        let c = generate_value("cookie_secret").unwrap();
        let decoded = base64::engine::general_purpose::URL_SAFE
            .decode(&c)
            .unwrap();
        assert_eq!(decoded.len(), 32);
        assert!(!c.contains('+') && !c.contains('/') && !c.contains('\n'));
        let p = generate_value("password").unwrap();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        let t = generate_value("token").unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(generate_value("token").unwrap(), t);
        assert!(generate_value("nope")
            .unwrap_err()
            .contains("cookie_secret"));
    }
}
