//! When each key of a secret last changed, never from its values.
//!
//! - [`record`]: after a write, `vault_full_write` records every key it wrote with a new value in
//!   the secret's KV v2 `custom_metadata`, one entry per key: `rotated/<key>` = `<version>@<time>`
//!   (the version written and the server's `created_time` of it, RFC 3339). Vault bounds
//!   `custom_metadata` to 64 entries, keys of 128 bytes and values of 512 bytes; an entry takes
//!   8 bytes of prefix and about 40 of value. It is a merge-patch of those entries (`PATCH
//!   metadata/P`), other entries kept: the server merges under the secret's lock, so it needs no
//!   read of the metadata first (the entries already there came with the write's read of the
//!   data; OpenBao `builtin/logical/kv/path_metadata.go`, `pathMetadataPatch`): a changed write
//!   is one read, one write and this patch. Without the `patch` capability, or when the entries
//!   are not known, a read-modify-write (`GET metadata/P`, then `POST` of the merged map with
//!   OpenBao's `metadata_cas`).
//! - [`key_ages`]: `vault_kv_read` reads those entries and the version history from the newest
//!   version back, comparing salted fingerprints of consecutive versions (random salt, per run),
//!   until each key's last change is found, a metadata entry confirms it, or the history ends
//!   (pruned, deleted or destroyed versions, or the `max_versions` bound).

use crate::kv::{Kv, KvPath, MetadataWrite, ReadResult, VaultError, Written};
use crate::read::value_text;
use ansible_module::fingerprint;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The prefix of the entries the module owns in `custom_metadata`.
pub const ENTRY_PREFIX: &str = "rotated/";
/// Vault's limits on `custom_metadata` (hashicorp/vault-plugin-secrets-kv and OpenBao
/// `path_metadata.go`: `maxCustomMetadataKeys`, `…KeyLength`, `…ValueLength`).
pub const MAX_ENTRIES: usize = 64;
pub const MAX_ENTRY_KEY_LEN: usize = 128;
pub const MAX_ENTRY_VALUE_LEN: usize = 512;
/// Attempts of the metadata merge when another writer changes the metadata in between.
const ATTEMPTS: usize = 3;

/// The entry key of a secret key: `rotated/<key>`.
pub fn entry_key(key: &str) -> String {
    format!("{ENTRY_PREFIX}{key}")
}

/// A recorded change: the version that wrote the key's new value and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub version: u64,
    pub time: String,
}

impl Change {
    /// The entry value, `<version>@<RFC 3339>`.
    pub fn entry_value(&self) -> String {
        format!("{}@{}", self.version, self.time)
    }
    /// Reads an entry value; `None` unless it is `<version ≥ 1>@<RFC 3339 time>`.
    pub fn parse(text: &str) -> Option<Change> {
        let (v, t) = text.split_once('@')?;
        let version: u64 = v.parse().ok().filter(|v| *v >= 1)?;
        httpx::time::parse_rfc3339_ns(t)?;
        Some(Change {
            version,
            time: t.to_string(),
        })
    }
}

/// What a write recorded: the keys recorded and a warning for those it could not record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub keys: Vec<String>,
    pub unrecorded: Vec<String>,
    pub warnings: Vec<String>,
}

fn now_rfc3339() -> String {
    httpx::time::format_rfc3339_ns(httpx::time::now_ns(), false)
}

/// Records `changed` keys as written in `written`, and drops the entries of `removed` keys.
/// `known`: the secret's `custom_metadata` as read before the write, when known.
/// Never fails: a failure leaves the write as it is and becomes a warning saying what to do.
pub fn record(
    kv: &Kv,
    changed: &BTreeSet<String>,
    removed: &BTreeSet<String>,
    written: &Written,
    known: Option<&Map<String, Value>>,
) -> Recorded {
    let at = kv.at();
    let (fit, too_long): (Vec<String>, Vec<String>) = changed
        .iter()
        .cloned()
        .partition(|k| entry_key(k).len() <= MAX_ENTRY_KEY_LEN);
    let mut out = Recorded::default();
    if !too_long.is_empty() {
        out.warnings.push(format!(
            "the change of {} in {at} is not recorded in its custom_metadata: a key name longer than {} bytes does not fit a custom_metadata key (at most {MAX_ENTRY_KEY_LEN} bytes with the `{ENTRY_PREFIX}` prefix); its age comes from the version history",
            too_long.join(", "),
            MAX_ENTRY_KEY_LEN - ENTRY_PREFIX.len()
        ));
        out.unrecorded.extend(too_long);
    }
    if fit.is_empty() && removed.is_empty() {
        return out;
    }
    let change = Change {
        version: written.version,
        time: written.created_time.clone().unwrap_or_else(now_rfc3339),
    };
    match merge(kv, &fit, removed, &change, known) {
        Ok(true) => out.keys = fit,
        Ok(false) => {}
        Err(reason) => {
            out.warnings.push(format!(
                "wrote {at} version {v}, but could not record when its keys changed in the secret's custom_metadata ({api}): {reason}. The write itself stands; {keys} get their age from the version history until a write records them",
                v = written.version,
                api = at.api("metadata"),
                keys = if fit.is_empty() { "its keys".to_string() } else { fit.join(", ") },
            ));
            out.unrecorded.extend(fit);
        }
    }
    out
}

/// A merge-patch of entries and the map it makes.
type Entries = (Map<String, Value>, Map<String, Value>);

/// The entries to merge: `changed` set to `value`, and `null` for the entries of `removed` keys
/// that `existing` holds. With the merged map, unless it would exceed Vault's limit.
fn entries_doc(
    existing: &Map<String, Value>,
    changed: &[String],
    removed: &BTreeSet<String>,
    value: &Value,
    at: &KvPath,
) -> Result<Entries, String> {
    let mut doc = Map::new();
    for k in changed {
        doc.insert(entry_key(k), value.clone());
    }
    for k in removed {
        if existing.contains_key(&entry_key(k)) {
            doc.insert(entry_key(k), Value::Null);
        }
    }
    let mut merged = existing.clone();
    crate::write::merge_patch(&mut merged, &doc);
    if merged.len() > MAX_ENTRIES {
        return Err(format!(
            "custom_metadata would hold {} entries, more than Vault's {MAX_ENTRIES}: remove entries that are not `{ENTRY_PREFIX}…` from {m}/metadata/{p}, or write fewer keys",
            merged.len(),
            m = at.mount(),
            p = at.path()
        ));
    }
    Ok((doc, merged))
}

/// The merge of the entries into `custom_metadata`; `Ok(false)` when there was nothing to change.
fn merge(
    kv: &Kv,
    changed: &[String],
    removed: &BTreeSet<String>,
    change: &Change,
    known: Option<&Map<String, Value>>,
) -> Result<bool, String> {
    let at = kv.at();
    let (m, p) = (at.mount(), at.path());
    let grant = format!(
        "grant `read` and `patch` on {m}/metadata/{p} (ansible/vault/homelab-sso.hcl has them)"
    );
    let value = Value::String(change.entry_value());
    let mut patch = true;
    if let Some(existing) = known {
        // The server merges a PATCH under the secret's lock: no read, no check-and-set needed.
        let (doc, _) = entries_doc(existing, changed, removed, &value, at)?;
        if doc.is_empty() {
            return Ok(false);
        }
        match kv.write_custom_metadata(&doc, true, None) {
            Ok(MetadataWrite::Done) => return Ok(true),
            // No `patch` capability (or an older server): the read-modify-write below.
            Ok(MetadataWrite::Unsupported) => patch = false,
            Ok(MetadataWrite::Conflict) => {}
            Ok(MetadataWrite::Missing) => {
                return Err("the secret has no metadata any more (deleted after the write?)".into())
            }
            Err(e @ VaultError::PermissionDenied { .. }) => return Err(format!("{e}; {grant}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    for _ in 0..ATTEMPTS {
        let meta = match kv.metadata() {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                return Err("the secret has no metadata any more (deleted after the write?)".into())
            }
            Err(e @ VaultError::PermissionDenied { .. }) => return Err(format!("{e}; {grant}")),
            Err(e) => return Err(e.to_string()),
        };
        let existing: Map<String, Value> = meta["custom_metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let cas = meta["current_metadata_version"].as_u64();
        let (doc, merged) = entries_doc(&existing, changed, removed, &value, at)?;
        if doc.is_empty() {
            return Ok(false);
        }
        let answer = match patch {
            true => match kv.write_custom_metadata(&doc, true, cas) {
                Ok(MetadataWrite::Unsupported) => kv.write_custom_metadata(&merged, false, cas),
                other => other,
            },
            false => kv.write_custom_metadata(&merged, false, cas),
        };
        match answer {
            Ok(MetadataWrite::Done) => return Ok(true),
            Ok(MetadataWrite::Conflict) => continue,
            Ok(MetadataWrite::Missing) => {
                return Err("the secret has no metadata any more (deleted after the write?)".into())
            }
            Ok(MetadataWrite::Unsupported) => return Err(grant),
            Err(e @ VaultError::PermissionDenied { .. }) => return Err(format!("{e}; {grant}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "the metadata changed under {ATTEMPTS} attempts in a row (another writer); re-run the write"
    ))
}

/// How far back the history was read, and why it stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Version 1 was read: every remaining key is as old as version 1.
    First,
    /// The history cannot be read below this version, for this reason.
    Gap(String),
}

/// One key's age as the result reports it.
fn known(version: u64, time: Option<&str>, source: &str) -> Value {
    json!({"changed_in": version, "changed_at": time, "source": source})
}

/// Per key of `latest` (version `latest_version`): `changed_in`, `changed_at` and `source`
/// (`metadata` or `history`), or `source: unknown` with `unchanged_since` (the oldest version
/// known to hold the current value), its time and a `note` saying why nothing older is known.
/// Reads at most `max_read` older versions. Returns the ages and the number of versions read.
pub fn key_ages(
    kv: &Kv,
    latest: &Map<String, Value>,
    latest_version: u64,
    max_read: u64,
) -> Result<(Map<String, Value>, u64), VaultError> {
    let meta = kv.metadata()?.unwrap_or(Value::Null);
    let time_of = |v: u64| meta["versions"][v.to_string()]["created_time"].as_str();
    let entries: BTreeMap<&String, Change> = latest
        .keys()
        .filter_map(|k| {
            let c = Change::parse(meta["custom_metadata"][entry_key(k)].as_str()?)?;
            (c.version <= latest_version).then_some((k, c))
        })
        .collect();
    let salt = random_salt();
    let prints = |data: &Map<String, Value>| -> BTreeMap<String, String> {
        data.iter()
            .map(|(k, v)| (k.clone(), fingerprint(&salt, &value_text(v))))
            .collect()
    };
    let current = prints(latest);
    let mut pending: BTreeSet<&String> = latest.keys().collect();
    let mut ages = Map::new();
    // `top`: the oldest version read; every pending key holds its current value from `top` on.
    let (mut top, mut read) = (latest_version, 0u64);
    let end = loop {
        pending.retain(|k| match entries.get(k) {
            Some(c) if c.version >= top => {
                ages.insert((*k).clone(), known(c.version, Some(&c.time), "metadata"));
                false
            }
            _ => true,
        });
        if pending.is_empty() {
            break End::First;
        }
        let v = top - 1;
        if v == 0 {
            break End::First;
        }
        if read >= max_read {
            break End::Gap(format!(
                "versions before {top} were not read (`max_versions: {max_read}`)"
            ));
        }
        if meta["versions"].get(v.to_string()).is_none() {
            break End::Gap(format!(
                "version {v} is no longer kept (KV v2 keeps `max_versions` versions)"
            ));
        }
        let older = match kv.read(Some(v))? {
            ReadResult::Present { data, .. } => prints(&data),
            ReadResult::Deleted { destroyed, .. } => {
                let state = if destroyed { "destroyed" } else { "deleted" };
                break End::Gap(format!("version {v} is {state}"));
            }
            ReadResult::Missing => {
                break End::Gap(format!("version {v} is no longer kept"));
            }
        };
        read += 1;
        pending.retain(|k| {
            if older.get(*k) == current.get(*k) {
                return true;
            }
            ages.insert((*k).clone(), known(top, time_of(top), "history"));
            false
        });
        top = v;
    };
    for k in pending {
        let age = match (&end, entries.get(k)) {
            // Not contradicted by the history that could be read.
            (_, Some(c)) => known(c.version, Some(&c.time), "metadata"),
            (End::First, None) => known(top, time_of(top), "history"),
            (End::Gap(why), None) => json!({
                "changed_in": null,
                "changed_at": null,
                "source": "unknown",
                "unchanged_since": top,
                "unchanged_since_at": time_of(top),
                "note": format!("unknown before version {top}: {why}"),
            }),
        };
        ages.insert(k.clone(), age);
    }
    Ok((ages, read))
}

/// A fresh salt per run: the fingerprints compared never leave the module.
fn random_salt() -> String {
    let mut b = [0u8; 16];
    // Without randomness the fingerprints are still never returned; a fixed salt only weakens
    // what nobody sees.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_round_trip_and_fit_vaults_limits() {
        let c = Change {
            version: 12,
            time: "2026-12-07T03:14:18.53571392Z".into(),
        };
        assert_eq!(c.entry_value(), "12@2026-12-07T03:14:18.53571392Z");
        assert_eq!(Change::parse(&c.entry_value()), Some(c.clone()));
        assert!(c.entry_value().len() <= MAX_ENTRY_VALUE_LEN);
        assert_eq!(entry_key("n8n_cookie_secret"), "rotated/n8n_cookie_secret");
        for bad in [
            "",
            "12",
            "0@2026-12-07T03:14:18Z",
            "x@2026-12-07T03:14:18Z",
            "3@yesterday",
        ] {
            assert_eq!(Change::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_an_entry_never_panics(s in ".{0,80}") {
            let _ = Change::parse(&s);
        }
    }
}
