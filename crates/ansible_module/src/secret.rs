//! The one secret type, and the masker every output passes through.
//!
//! Every [`Secret`] registers its value with a process-wide mask set when it is created, so any
//! text that later reaches `msg`, `warnings`, `diff` or an error has it replaced by `********`,
//! whether the value came from an option, a remote API or a harvested file.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// What replaces a secret value in any text the module prints.
pub const MASK: &str = "********";

static MASKED_VALUES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn masked_values() -> MutexGuard<'static, BTreeSet<String>> {
    // A panic while the lock was held must not stop the panic report from being masked.
    MASKED_VALUES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers a value that must never appear in output. Empty values are ignored (they would mask
/// every gap between characters).
pub fn register_secret(value: &str) {
    let trimmed = value.trim();
    // A value made only of `*` is indistinguishable from the mask itself (masking it would grow
    // the mask on every pass); it carries no information to hide.
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '*') {
        return;
    }
    let mut set = masked_values();
    set.insert(value.to_string());
    // A value with a trailing newline (a file read) also leaks without it.
    if trimmed != value {
        set.insert(trimmed.to_string());
    }
}

/// Registers every string leaf of a JSON value (dict values, list items, numbers as text).
pub fn register_secret_json(value: &Value) {
    match value {
        Value::String(s) => register_secret(s),
        Value::Number(n) => register_secret(&n.to_string()),
        Value::Array(items) => items.iter().for_each(register_secret_json),
        Value::Object(map) => map.values().for_each(register_secret_json),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Replaces every registered secret value in `text` by [`MASK`], longest values first so that a
/// value containing another is masked whole.
pub fn mask(text: &str) -> String {
    let set = masked_values();
    if set.is_empty() {
        return text.to_string();
    }
    let mut values: Vec<&String> = set.iter().collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for v in values {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), MASK);
        }
    }
    out
}

/// Masks every string inside a JSON value, keys included.
pub fn mask_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(mask(s)),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (mask(k), mask_json(v))).collect())
        }
        other => other.clone(),
    }
}

/// A secret value: never printed by `Debug`/`Display`, zeroed on drop, masked in all output.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        register_secret(&value);
        Secret(SecretString::from(value))
    }

    /// A value held like a secret (hidden from `Debug`/`Display`, zeroed on drop) but NOT added to
    /// the masker: for values the user declared public identifiers (an OIDC client id), so that
    /// service names or messages that happen to contain the same text stay readable.
    pub fn unmasked(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The value, for sending it where it must go (an HTTP header, a request body, a result field
    /// documented as secret).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Options arrive coerced to strings; numbers are accepted as their text.
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(Secret::new(s)),
            Value::Number(n) => Ok(Secret::new(n.to_string())),
            Value::Bool(b) => Ok(Secret::new(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a string secret value")),
        }
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2-unit-secret");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), "Secret(********)");
        assert_eq!(s.expose(), "hunter2-unit-secret");
    }

    #[test]
    fn mask_replaces_longest_first() {
        register_secret("abc-unit-1");
        register_secret("abc-unit-1-longer");
        assert_eq!(
            mask("x abc-unit-1-longer y abc-unit-1"),
            "x ******** y ********"
        );
    }

    #[test]
    fn mask_json_covers_nested_strings_and_keys() {
        register_secret("nested-unit-secret");
        let v = serde_json::json!({"a": ["nested-unit-secret"], "nested-unit-secret": 1});
        let out = mask_json(&v).to_string();
        assert!(!out.contains("nested-unit-secret"), "{out}");
    }

    #[test]
    fn trailing_newline_variant_is_masked_too() {
        register_secret("file-unit-secret\n");
        assert_eq!(mask("value file-unit-secret."), "value ********.");
    }

    #[test]
    fn unmasked_values_hide_from_debug_but_stay_readable_in_text() {
        let s = Secret::unmasked("public-client-id-unit");
        assert_eq!(format!("{s:?}"), "Secret(********)");
        assert_eq!(
            mask("service public-client-id-unit"),
            "service public-client-id-unit"
        );
    }

    #[test]
    fn star_only_values_do_not_grow_the_mask() {
        register_secret("**");
        register_secret("s3cr3t-star-unit");
        let once = mask("x s3cr3t-star-unit y");
        assert_eq!(once, "x ******** y");
        assert_eq!(mask(&once), once);
    }

    #[test]
    fn empty_values_are_not_registered() {
        register_secret("  ");
        assert_eq!(mask("a  b"), "a  b");
    }
}
