//! What a module returns: the result JSON, built so that only fields declared secret can carry a
//! secret value.

use crate::secret::{mask, mask_json, short_secret_warning};
use serde_json::{Map, Value};

/// A successful run. Every field except those set with [`Outcome::secret`] is masked on output.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub changed: bool,
    pub msg: Option<String>,
    pub skipped: bool,
    pub diff: Option<Value>,
    fields: Map<String, Value>,
    computed_fields: Map<String, Value>,
    secret_fields: Map<String, Value>,
}

/// The module's warnings plus the masker's warning about secret values too short to mask inside
/// text.
fn all_warnings(warnings: &[String]) -> Vec<String> {
    let mut all = warnings.to_vec();
    all.extend(short_secret_warning());
    all
}

impl Outcome {
    pub fn new(changed: bool) -> Self {
        Outcome {
            changed,
            ..Default::default()
        }
    }
    pub fn unchanged() -> Self {
        Self::new(false)
    }
    pub fn msg(mut self, msg: impl Into<String>) -> Self {
        self.msg = Some(msg.into());
        self
    }
    /// A result field. Secret values inside it are masked.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_string(), value.into());
    }
    /// A result field the module computed that cannot carry a secret (versions, timestamps,
    /// metadata): returned as is, so a secret's text occurring in it by chance cannot corrupt it.
    pub fn computed(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.computed_fields.insert(key.to_string(), value.into());
        self
    }
    /// A result field that carries secret values on purpose (a minted secret, harvested values).
    /// It is returned unmasked; the module's docs must say so and playbooks register it `no_log`.
    pub fn secret(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.secret_fields.insert(key.to_string(), value.into());
        self
    }
    /// A diff in Ansible's `{before, after}` form; shown only in diff mode when changed.
    pub fn diff(mut self, before: impl Into<Value>, after: impl Into<Value>) -> Self {
        self.diff = Some(serde_json::json!({"before": before.into(), "after": after.into()}));
        self
    }
    pub fn diff_value(mut self, diff: Value) -> Self {
        self.diff = Some(diff);
        self
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .get(key)
            .or_else(|| self.computed_fields.get(key))
            .or_else(|| self.secret_fields.get(key))
    }
    pub fn secret_keys(&self) -> impl Iterator<Item = &String> {
        self.secret_fields.keys()
    }
    pub(crate) fn into_json(self, diff_mode: bool, warnings: &[String]) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in self.fields {
            out.insert(k, mask_json(&v));
        }
        for (k, v) in self.computed_fields {
            out.insert(k, v);
        }
        out.insert("changed".into(), Value::Bool(self.changed));
        if self.skipped {
            out.insert("skipped".into(), Value::Bool(true));
        }
        if let Some(m) = self.msg {
            out.insert("msg".into(), Value::String(mask(&m)));
        }
        if let (true, true, Some(d)) = (diff_mode, self.changed, self.diff) {
            out.insert("diff".into(), mask_json(&d));
        }
        let warnings = all_warnings(warnings);
        if !warnings.is_empty() {
            out.insert(
                "warnings".into(),
                warnings.iter().map(|w| Value::String(mask(w))).collect(),
            );
        }
        for (k, v) in self.secret_fields {
            out.insert(k, v);
        }
        out
    }
}

/// A failed run: a message saying what failed and what to do, plus any partial results.
#[derive(Debug, Clone)]
pub struct Failure {
    pub msg: String,
    fields: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            fields: Map::new(),
        }
    }
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }
    pub(crate) fn into_json(self, warnings: &[String]) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in self.fields {
            out.insert(k, mask_json(&v));
        }
        out.insert("failed".into(), Value::Bool(true));
        out.insert(
            "changed".into(),
            out.get("changed").cloned().unwrap_or(Value::Bool(false)),
        );
        out.insert("msg".into(), Value::String(mask(&self.msg)));
        let warnings = all_warnings(warnings);
        if !warnings.is_empty() {
            out.insert(
                "warnings".into(),
                warnings.iter().map(|w| Value::String(mask(w))).collect(),
            );
        }
        out
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask(&self.msg))
    }
}

/// Any error type becomes a failure with its `Display` text (masked on output). Crates define
/// their errors with `thiserror` and let `?` do the rest.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.to_string())
    }
}
