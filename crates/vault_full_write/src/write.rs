//! The `vault_full_write` module: one safe write of a whole KV v2 secret.

use crate::conn::{conn_options, ConnParams};
use crate::kv::{version_option, Kv, Patched, ReadResult, VaultError};
use ansible_module::spec::{coerce, Kind};
use ansible_module::{Context, Failure, Module, Opt, Outcome};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Test-only hook: when set to a file path, the module creates `<path>.reached` right before it
/// writes and then waits (up to 120 s) until `<path>` exists. Integration tests use it to put a
/// concurrent writer between the read and the CAS write. Not for production use.
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

fn test_pause() {
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
fn read_current(kv: &Kv, path: &str, ctx: &mut Context) -> Result<Current, VaultError> {
    match kv.read(path, None) {
        Ok(ReadResult::Present { data, version, .. }) => Ok(Current {
            keys: Some(data.keys().cloned().collect()),
            data: Some(data),
            version: Some(version),
            latest_deleted: false,
            latest_destroyed: false,
            read_denied: None,
        }),
        Ok(ReadResult::Missing) => Ok(Current {
            data: Some(Map::new()),
            keys: Some(BTreeSet::new()),
            version: Some(0),
            latest_deleted: false,
            latest_destroyed: false,
            read_denied: None,
        }),
        Ok(ReadResult::Deleted { version, destroyed }) => Ok(Current {
            data: Some(Map::new()),
            keys: Some(BTreeSet::new()),
            version: Some(version),
            latest_deleted: true,
            latest_destroyed: destroyed,
            read_denied: None,
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
            let metadata: Option<Option<Value>> = match kv.metadata(path) {
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
            let keys = match kv.subkeys(path) {
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
                kv.display_path(path),
                kv.mount(),
                path.trim_matches('/'),
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

    fn run(mut p: WriteParams, ctx: &mut Context) -> Result<Outcome, Failure> {
        let cas = Cas::parse(&p.cas).map_err(Failure::new)?;
        let rollback_to = version_option(
            "rollback_to",
            p.rollback_to,
            "pick a version from the secret's metadata (`versions`), e.g. the `previous_version` of an earlier write when it is 1 or more",
        )?;
        let mut generated_keys = Vec::new();
        if let Some(generate) = p.generate.take() {
            if p.rollback_to.is_some() {
                return Err(Failure::new(
                    "`generate` and `rollback_to` are mutually exclusive",
                ));
            }
            let data = p.data.get_or_insert_with(Map::new);
            for (key, kind) in generate {
                let kind = kind.as_str().unwrap_or_default().to_string();
                let value = ansible_module::Secret::new(
                    generate_value(&kind)
                        .map_err(|e| Failure::new(format!("generate.{key}: {e}")))?,
                );
                data.insert(key.clone(), Value::String(value.expose().to_string()));
                generated_keys.push(key);
            }
        }
        let display = p.conn.display_path();
        let path = p.conn.path.trim_matches('/').to_string();
        let remove_keys: BTreeSet<String> = p
            .remove_keys
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let required: BTreeSet<String> = p
            .required_keys
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let keep_keys = p.keep_keys.take().unwrap_or_default();
        if p.data.is_none() && !keep_keys.is_empty() && p.rollback_to.is_none() {
            p.data = Some(Map::new());
        }
        match (&p.data, p.rollback_to) {
            (Some(_), Some(_)) => return Err(Failure::new("`data` and `rollback_to` are mutually exclusive: a rollback writes version N's data")),
            (None, None) => return Err(Failure::new("one of `data` or `rollback_to` is required")),
            _ => {}
        }
        if !remove_keys.is_empty() && !p.patch {
            return Err(Failure::new(
                "`remove_keys` needs `patch: true`; in a full write, leave the key out of `data` and set `allow_remove: true`",
            ));
        }
        if !keep_keys.is_empty() && (p.patch || p.rollback_to.is_some()) {
            return Err(Failure::new(
                "`keep_keys` is for full writes: a patch keeps every key it does not name, and a rollback writes version N's data",
            ));
        }
        if p.rollback_to.is_some() && p.patch {
            return Err(Failure::new(
                "`rollback_to` writes a whole version: it cannot be combined with `patch: true`",
            ));
        }
        let kv = p.conn.connect()?;

        // The data to write in full-write terms (the rollback source or `data`).
        let rollback_data = match rollback_to {
            Some(n) => match kv.read(&path, Some(n))? {
                ReadResult::Present { data, .. } => Some(data),
                ReadResult::Deleted { destroyed, .. } => {
                    return Err(Failure::new(format!(
                        "cannot roll back {display} to version {n}: that version is {}; choose a live version (see the metadata's `versions`)",
                        if destroyed { "destroyed" } else { "deleted (undelete it first)" }
                    )))
                }
                ReadResult::Missing => {
                    return Err(Failure::new(format!(
                        "cannot roll back {display} to version {n}: no such version (never written, or pruned by max_versions)"
                    )))
                }
            },
            None => None,
        };

        let current = read_current(&kv, &path, ctx)?;
        if p.patch && current.latest_deleted {
            // Merging into "no data" would drop every key the secret had (silently: the
            // removal guard compares against the empty deleted version).
            return Err(VaultError::patch_on_deleted(
                kv.mount(),
                &path,
                current.version.unwrap_or(0),
                current.latest_destroyed,
            )
            .into());
        }
        let previous_version = current.version;
        if let (Cas::Explicit(want), Some(have)) = (cas, current.version) {
            if want != have {
                return Err(VaultError::CasMismatch {
                    path: display.clone(),
                    expected: want,
                }
                .into());
            }
        }
        let cas_value = match cas {
            Cas::Read => current.version,
            Cas::Explicit(v) => Some(v),
            Cas::Disabled => None,
        };
        if cas == Cas::Read && cas_value.is_none() {
            return Err(Failure::new(format!(
                "{}; the token can read neither {display} nor its metadata, so the write cannot be guarded by check-and-set: grant `read` on {m}/metadata/{path} (and on {m}/subkeys/{path} for the key guards), or pass an explicit `cas: <current version>`, or `cas: disabled` to write blind",
                current.read_denied.as_deref().unwrap_or("read denied"),
                m = kv.mount()
            )));
        }

        if !keep_keys.is_empty() {
            keep_current_values(&keep_keys, &current, p.data.get_or_insert_with(Map::new))
                .map_err(|e| Failure::new(format!("refusing to write {display}: {e}")))?;
        }

        // Full-write desired state, or the patch document.
        let patch_doc: Option<Map<String, Value>> = p.patch.then(|| {
            let mut d = p.data.clone().unwrap_or_default();
            for k in &remove_keys {
                d.insert(k.clone(), Value::Null);
            }
            d
        });
        let full_data: Option<Map<String, Value>> = match (&rollback_data, &patch_doc) {
            (Some(d), _) => Some(d.clone()),
            (None, None) => p.data.clone(),
            (None, Some(doc)) => current.data.as_ref().map(|cur| {
                let mut m = cur.clone();
                merge_patch(&mut m, doc);
                m
            }),
        };

        // Key-level changes: exact with the values, names only otherwise.
        let changes = match (&current.data, &full_data) {
            (Some(cur), Some(new)) => Some(KeyChanges::between(cur, new)),
            _ => None,
        };
        let (added, removed, changed_keys, resulting_keys): (
            BTreeSet<String>,
            BTreeSet<String>,
            BTreeSet<String>,
            Option<BTreeSet<String>>,
        ) = match (&changes, &full_data, &current.keys) {
            (Some(c), Some(new), _) => (
                c.added.clone(),
                c.removed.clone(),
                c.changed.clone(),
                Some(new.keys().cloned().collect()),
            ),
            (None, Some(new), Some(keys)) => {
                let newk: BTreeSet<String> = new.keys().cloned().collect();
                (&newk - keys, keys - &newk, &newk & keys, Some(newk))
            }
            (None, Some(new), None) => (
                BTreeSet::new(),
                BTreeSet::new(),
                BTreeSet::new(),
                Some(new.keys().cloned().collect()),
            ),
            (None, None, Some(keys)) => {
                // write-only patch: keys after = keys + data - remove_keys
                let doc = patch_doc.clone().unwrap_or_default();
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
                (&set - keys, keys & &rm, keys & &set, Some(after))
            }
            _ => (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), None),
        };

        // Guards, before any write.
        match &resulting_keys {
            Some(keys) => {
                let missing: BTreeSet<String> = &required - keys;
                if !missing.is_empty() {
                    return Err(Failure::new(format!(
                        "refusing to write {display}: the result would lack required key(s) {}; add them to `data`",
                        list(&missing)
                    ))
                    .set("missing_keys", names(missing)));
                }
            }
            None if !required.is_empty() => {
                return Err(Failure::new(format!(
                    "cannot check `required_keys` for {display}: the token may read neither the secret nor its key names (grant `read` on {}/subkeys/{path})",
                    kv.mount()
                )))
            }
            None => {}
        }
        // Patch removals are named in `remove_keys`; full writes and rollbacks need `allow_remove`.
        if !p.patch && !p.allow_remove {
            if current.keys.is_none() {
                return Err(Failure::new(format!(
                    "cannot tell whether this full write drops keys of {display}: the token may read neither the secret nor its key names; grant `read` on {}/subkeys/{path}, or set `allow_remove: true` to write anyway",
                    kv.mount()
                )));
            }
            if !removed.is_empty() {
                return Err(Failure::new(format!(
                    "refusing a full write of {display} that would remove existing key(s) {}: add them to `data`, or set `allow_remove: true` if removing them is intended",
                    list(&removed)
                ))
                .set("removed_keys", names(removed)));
            }
        }

        let values_known = changes.is_some();
        let nothing_to_do =
            changes.as_ref().is_some_and(KeyChanges::is_empty) && !current.latest_deleted;
        let prev = previous_version.unwrap_or(0);
        let mut out = Outcome::new(false)
            .set("path", display.clone())
            .set("generated_keys", names(generated_keys.clone()))
            .set(
                "previous_version",
                previous_version.map(Value::from).unwrap_or(Value::Null),
            )
            .set("added_keys", names(added.clone()))
            .set("removed_keys", names(removed.clone()))
            .set("changed_keys", names(changed_keys.clone()))
            .set(
                "mode",
                if p.rollback_to.is_some() {
                    "rollback"
                } else if p.patch {
                    "patch"
                } else {
                    "full"
                },
            );
        if nothing_to_do {
            return Ok(out.set("version", prev).msg(format!(
                "{display} version {prev} already holds this data; nothing written"
            )));
        }
        let diff_changes = changes.clone().unwrap_or_else(|| KeyChanges {
            added: added.clone(),
            removed: removed.clone(),
            changed: changed_keys.clone(),
            unchanged: BTreeSet::new(),
        });
        if ctx.check_mode {
            let predicted = previous_version.map(|v| v + 1);
            out.changed = true;
            return Ok(out
                .set("version", predicted.map(Value::from).unwrap_or(Value::Null))
                .msg(format!(
                    "check mode: would write {display} as version {} ({} added, {} changed, {} removed)",
                    predicted.map(|v| v.to_string()).unwrap_or_else(|| "(unknown)".into()),
                    added.len(),
                    changed_keys.len(),
                    removed.len()
                ))
                .diff_value(diff_changes.diff(&display, prev, predicted)));
        }

        test_pause();
        let mut how = "write";
        let version = match (&patch_doc, &full_data) {
            // Patch: PATCH first where the server allows it (one request, no values sent back).
            (Some(doc), _) if !current.latest_deleted && previous_version != Some(0) => {
                match kv.patch(&path, doc, cas_value)? {
                    Patched::Version(v) => {
                        how = "patch";
                        v
                    }
                    // Deleted after the read (or unreadable to this token): never fall back to a
                    // write that would replace the deleted data by the patched keys alone.
                    Patched::LatestDeleted { version, destroyed } => {
                        return Err(VaultError::patch_on_deleted(
                            kv.mount(),
                            &path,
                            version,
                            destroyed,
                        )
                        .into())
                    }
                    // Unsupported: no `patch` capability. Missing: metadata deleted after the
                    // read; the CAS of the fallback write then fails as a conflict.
                    Patched::Unsupported | Patched::Missing => match &full_data {
                        Some(full) => {
                            how = "read-modify-write";
                            kv.write(&path, full, cas_value.or(previous_version))?
                        }
                        None => {
                            return Err(Failure::new(format!(
                                "cannot patch {display}: the token lacks the `patch` capability on {m}/data/{path}, and the read-modify-write fallback needs `read` on it; grant one of them",
                                m = kv.mount()
                            )))
                        }
                    },
                }
            }
            (_, Some(full)) => kv.write(&path, full, cas_value)?,
            (_, None) => {
                return Err(Failure::new(format!(
                    "cannot create {display} in patch mode without reading it: grant `read` on {}/data/{path}",
                    kv.mount()
                )))
            }
        };
        out.changed = true;
        if !values_known {
            out.insert("values_compared", false);
        }
        Ok(out
            .set("version", version)
            .msg(format!(
                "wrote {display} version {version} by {how} ({} added, {} changed, {} removed)",
                added.len(),
                changed_keys.len(),
                removed.len()
            ))
            .diff_value(diff_changes.diff(&display, prev, Some(version))))
    }
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
