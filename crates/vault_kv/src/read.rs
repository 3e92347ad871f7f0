//! The `vault_kv_read` module: a KV v2 secret's key/values (`secret`), or salted per-key fingerprints,
//! plus its version and metadata.

use crate::ages::key_ages;
use crate::auth_info::auth_info;
use crate::conn::{conn_options, ConnParams};
use crate::kv::{version_option, ReadResult};
use ansible_module::spec::Kind;
use ansible_module::{fingerprint, Context, Failure, Module, Opt, Outcome, Secret};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub struct ReadParams {
    #[serde(flatten)]
    pub conn: ConnParams,
    pub version: Option<i64>,
    pub return_values: bool,
    pub salt: Option<Secret>,
    pub keys: Option<Vec<String>>,
    pub missing_ok: bool,
    pub public_keys: Vec<String>,
    pub key_ages: bool,
    pub max_versions: u64,
    pub auth_info: bool,
}

pub struct VaultKvRead;

/// The collection version that drops the deprecated `data` return value.
pub const DATA_REMOVED_IN: &str = "1.1.0";

/// The text a value is fingerprinted as: a string as is, anything else as its JSON text.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Module for VaultKvRead {
    const NAME: &'static str = "vault_kv_read";
    const ABOUT: &'static str = "Read a Vault/OpenBao KV v2 secret: its values (secret) or salted per-key fingerprints, version and metadata";
    type Params = ReadParams;

    fn options() -> Vec<Opt> {
        let mut o = conn_options();
        o.extend([
            // Checked in `run`, with a message that says why 0 is refused.
            Opt::int("version").help("Version to read, 1 or more (default: the latest)"),
            Opt::bool("return_values")
                .default(true)
                .help("Return `secret` (secret values); false returns fingerprints only"),
            Opt::str("salt")
                .no_log()
                .help("Salt for `fingerprints` = hex sha256(salt || value) per key"),
            Opt::list("keys", Kind::Str).help("Only these keys (default: all)"),
            Opt::bool("missing_ok")
                .default(false)
                .help("A missing or deleted secret is `found: false` instead of a failure"),
            Opt::list("public_keys", Kind::Str)
                .default(serde_json::json!([]))
                .help("Keys whose values are identifiers, not secrets (an OIDC client id): not masked in other output"),
            Opt::bool("key_ages").default(false).help(
                "Return `key_ages`: per key, the version and time it last changed, from the `rotated/<key>` entries vault_full_write records in custom_metadata, else from the version history (salted fingerprints compared inside the module, never returned)",
            ),
            Opt::int("max_versions")
                .default(10)
                .range(1, 1000)
                .help("key_ages: read at most this many older versions (10 is KV v2's default `max_versions`)"),
            Opt::bool("auth_info").default(false).help(
                "Return `auth_info`: when the credential this run logged in with was created and expires (an AppRole secret_id, by its role's secret-id lookup; a token, by lookup-self) - never the credential itself",
            ),
        ]);
        o
    }

    fn run(p: ReadParams, ctx: &mut Context) -> Result<Outcome, Failure> {
        let salt = p.salt.as_ref().filter(|s| !s.is_empty());
        if !p.return_values && salt.is_none() && !p.key_ages {
            return Err(Failure::new(
                "`return_values: false` returns fingerprints only, which need a `salt` (a random string per run, the same one the other side uses), or key ages only (`key_ages: true`)",
            ));
        }
        let version = version_option(
            "version",
            p.version,
            "leave `version` unset to read the latest",
        )?;
        if p.key_ages && version.is_some() {
            return Err(Failure::new(
                "`key_ages` describes the latest version: leave `version` unset",
            ));
        }
        let kv = p.conn.connect()?.with_public_keys(p.public_keys.clone());
        let display = kv.at().to_string();
        let credential = p.auth_info.then(|| {
            let (info, warning) = auth_info(&p.conn, &kv);
            if let Some(w) = warning {
                ctx.warn(w);
            }
            info
        });
        let with_credential = |o: Outcome| match &credential {
            Some(info) => o.set("auth_info", info.clone()),
            None => o,
        };
        let (data, version, metadata) = match kv.read(version)? {
            ReadResult::Present {
                data,
                version,
                metadata,
            } => (data, version, metadata),
            other => return not_found(other, version, &display, p.missing_ok).map(with_credential),
        };
        let selected: Map<String, Value> = match &p.keys {
            Some(keys) => {
                let missing: Vec<&String> =
                    keys.iter().filter(|k| !data.contains_key(*k)).collect();
                if !missing.is_empty() {
                    return Err(Failure::new(format!(
                        "{display} version {version} has no key(s) {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                keys.iter().map(|k| (k.clone(), data[k].clone())).collect()
            }
            None => data,
        };
        let key_names: Vec<Value> = selected.keys().cloned().map(Value::String).collect();
        let mut out = Outcome::unchanged()
            .set("found", true)
            .set("path", display.clone())
            .set("version", version)
            .set("keys", Value::Array(key_names))
            // Timestamps and versions: a secret's text occurring in them by chance must not
            // corrupt them.
            .computed("metadata", metadata)
            .msg(format!(
                "read {display} version {version} ({} keys)",
                selected.len()
            ));
        out = with_credential(out);
        if p.key_ages {
            let (ages, read) = key_ages(&kv, &selected, version, p.max_versions)?;
            out = out
                .computed("key_ages", Value::Object(ages))
                .computed("key_ages_versions_read", read);
        }
        if let Some(salt) = salt {
            let fps: Map<String, Value> = selected
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(fingerprint(salt.expose(), &value_text(v))),
                    )
                })
                .collect();
            out = out.set("fingerprints", Value::Object(fps));
        }
        if p.return_values {
            // `secret`, as community.hashi_vault's vault_kv2_get names it. `data` is the old name,
            // kept (same values) until DATA_REMOVED_IN with a deprecation in Ansible's form, which
            // ansible-core prints as a deprecation warning naming the collection.
            let values = Value::Object(selected);
            out = out
                .secret("secret", values.clone())
                .secret("data", values)
                .set(
                    "deprecations",
                    serde_json::json!([{
                        "msg": "vault_kv_read's `data` is renamed `secret` (as in community.hashi_vault's vault_kv2_get); read `secret` instead",
                        "version": DATA_REMOVED_IN,
                        "collection_name": "homelab.sso",
                    }]),
                );
        }
        Ok(out)
    }
}

/// The answer for a secret or version that cannot be read: `found: false` with `missing_ok`,
/// else a failure saying why.
fn not_found(
    other: ReadResult,
    version: Option<u64>,
    display: &str,
    missing_ok: bool,
) -> Result<Outcome, Failure> {
    let what = match (&other, version) {
        (
            ReadResult::Deleted {
                destroyed: true,
                version,
            },
            _,
        ) => format!("version {version} is destroyed"),
        (ReadResult::Deleted { version, .. }, _) => {
            format!("version {version} is deleted")
        }
        (_, Some(v)) => {
            format!("version {v} does not exist (never written, or pruned by max_versions)")
        }
        _ => "it does not exist".to_string(),
    };
    if missing_ok {
        let mut o = Outcome::unchanged()
            .set("found", false)
            .set("path", display)
            .msg(format!("{display}: {what}"));
        if let ReadResult::Deleted { version, .. } = other {
            o = o.set("version", version);
        }
        return Ok(o);
    }
    Err(Failure::new(format!(
        "cannot read {display}: {what}; check `path`, `mount` and `version` (or set `missing_ok: true`)"
    )))
}
