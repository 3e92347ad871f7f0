//! The one secret type, and the masker every output passes through.
//!
//! Every [`Secret`] registers its value with a process-wide mask set when it is created, so any
//! text that later reaches `msg`, `warnings`, `diff` or an error has it replaced by `********`,
//! whether the value came from an option, a remote API or a harvested file.
//!
//! A value is also found in the escaped forms a server may echo it in (JSON as serde, Go or
//! Python's `ensure_ascii` write it, Python's `repr`, HTML entities, percent-encoding, and JSON
//! escaped twice), so a proxy that echoes a request body cannot leak a value holding `"`, `\`,
//! a control character, `é`, `<&>` or U+2028.
//!
//! Values shorter than [`MIN_MASK_LEN`] characters are not masked inside other text: a value
//! `7` would blank out digits of every version, fingerprint and timestamp. They are masked where
//! a whole field (or a whole message) equals them, and the result warns, naming their keys.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// What replaces a secret value in any text the module prints.
pub const MASK: &str = "********";

/// Values with fewer characters (after trimming) are masked only as whole fields, never inside
/// other text. Four characters: a three-character value (`"7"`, `"abc"`, `"on"`) occurs by chance
/// inside versions, hex fingerprints, timestamps and words; a longer one rarely does.
pub const MIN_MASK_LEN: usize = 4;

/// One registered value: its text and, per character, every form it may appear in.
struct Entry {
    forms: Vec<Vec<String>>,
    /// Every character has only its raw form: plain substring search suffices.
    plain: bool,
    /// The first bytes a match can start with (a quick filter before trying the forms).
    first_bytes: Vec<u8>,
}

#[derive(Default)]
struct Masker {
    /// Values masked wherever they occur, with their forms.
    long: BTreeMap<String, Entry>,
    /// Values masked only as whole fields.
    short: BTreeMap<String, Entry>,
    /// Per short value (trimmed), the names (keys, options) it was registered under, for the
    /// warning; an empty set when it came without a name.
    short_names: BTreeMap<String, BTreeSet<String>>,
    /// Texts the module computed that cannot carry a secret (salted fingerprints): never masked.
    computed: HashSet<String>,
}

static MASKER: Mutex<Option<Masker>> = Mutex::new(None);

fn masker() -> MutexGuard<'static, Option<Masker>> {
    // A panic while the lock was held must not stop the panic report from being masked.
    MASKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn push_unicode_escapes(out: &mut Vec<String>, c: char) {
    let mut units = [0u16; 2];
    let units = c.encode_utf16(&mut units);
    let lower: String = units.iter().map(|u| format!("\\u{u:04x}")).collect();
    let upper: String = units.iter().map(|u| format!("\\u{u:04X}")).collect();
    out.push(lower);
    out.push(upper);
}

/// Every form a character may take in echoed text, the raw character first.
fn char_forms(c: char) -> Vec<String> {
    let mut f = vec![c.to_string()];
    let code = c as u32;
    // JSON short escapes (serde, Go, Python), Python's repr escapes and a PHP-style `\/`.
    match c {
        '"' => f.extend(["\\\"".into(), "&quot;".into(), "&#34;".into()]),
        '\\' => f.push("\\\\".into()),
        '/' => f.push("\\/".into()),
        '\'' => f.extend(["\\'".into(), "&#39;".into(), "&#x27;".into()]),
        '\n' => f.push("\\n".into()),
        '\r' => f.push("\\r".into()),
        '\t' => f.push("\\t".into()),
        '\u{8}' => f.push("\\b".into()),
        '\u{c}' => f.push("\\f".into()),
        '<' => f.push("&lt;".into()),
        '>' => f.push("&gt;".into()),
        '&' => f.push("&amp;".into()),
        _ => {}
    }
    // `\u00XX` for what JSON encoders escape: control characters, quotes, Go's `<>&`, and any
    // non-ASCII character (ensure_ascii, U+2028/2029).
    if c.is_control() || matches!(c, '"' | '\\' | '\'' | '<' | '>' | '&') || code > 0x7e {
        push_unicode_escapes(&mut f, c);
    }
    // Python's `\xNN` and `\UNNNNNNNN`.
    if c.is_control() || (0x7f..=0xff).contains(&code) || matches!(c, '"' | '\\' | '\'') {
        f.push(format!("\\x{code:02x}"));
        f.push(format!("\\x{code:02X}"));
    }
    if code > 0xffff {
        f.push(format!("\\U{code:08x}"));
        f.push(format!("\\U{code:08X}"));
    }
    // Percent-encoding (a value echoed in a URL or a form body).
    if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')) {
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        f.push(bytes.iter().map(|b| format!("%{b:02X}")).collect());
        f.push(bytes.iter().map(|b| format!("%{b:02x}")).collect());
        if c == ' ' {
            f.push("+".into());
        }
    }
    // JSON escaped twice (a JSON body echoed inside a JSON string): `\` and `"` escaped again.
    let twice: Vec<String> = f
        .iter()
        .filter(|s| s.len() > 1 && (s.contains('\\') || s.contains('"')))
        .map(|s| s.replace('\\', "\\\\").replace('"', "\\\""))
        .collect();
    f.extend(twice);
    let mut seen = HashSet::new();
    f.retain(|s| seen.insert(s.clone()));
    f
}

fn entry(value: &str) -> Entry {
    let forms: Vec<Vec<String>> = value.chars().map(char_forms).collect();
    let plain = forms.iter().all(|f| f.len() == 1);
    let mut first_bytes: Vec<u8> = forms
        .first()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_bytes().first().copied())
        .collect();
    first_bytes.sort_unstable();
    first_bytes.dedup();
    Entry {
        forms,
        plain,
        first_bytes,
    }
}

/// The end of the longest match of `e` in `text` starting at byte `start`, if any. Tracks every
/// reachable position per character (a form may be a prefix of another, e.g. `\` and `\\`), so
/// the work stays linear in the value's length.
fn match_at(text: &str, start: usize, e: &Entry) -> Option<usize> {
    let mut reach = vec![start];
    for forms in &e.forms {
        let mut next = Vec::new();
        for &p in &reach {
            let rest = &text[p..];
            for f in forms {
                if rest.starts_with(f.as_str()) && !next.contains(&(p + f.len())) {
                    next.push(p + f.len());
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        reach = next;
    }
    reach.into_iter().max()
}

/// Replaces every occurrence of `e` (in any of its forms) in `text` by [`MASK`].
fn mask_entry(text: &str, value: &str, e: &Entry) -> String {
    if e.plain {
        return if text.contains(value) {
            text.replace(value, MASK)
        } else {
            text.to_string()
        };
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        // Forms start with ASCII or a UTF-8 lead byte, never a continuation byte, so a byte
        // that passes the filter is at a character boundary.
        if e.first_bytes.binary_search(&bytes[i]).is_ok() && text.is_char_boundary(i) {
            if let Some(end) = match_at(text, i, e) {
                out.push_str(&text[copied..i]);
                out.push_str(MASK);
                i = end;
                copied = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn whole_match(text: &str, e: &Entry) -> bool {
    match_at(text, 0, e) == Some(text.len())
}

/// Registers a value that must never appear in output. Empty values are ignored (they would mask
/// every gap between characters).
pub fn register_secret(value: &str) {
    register(None, value);
}

/// Registers a value under the name of its key or option: if the value is too short to be
/// masked inside text, the result's warning names it.
pub fn register_secret_named(name: &str, value: &str) {
    register(Some(name), value);
}

fn register(name: Option<&str>, value: &str) {
    let trimmed = value.trim();
    // A value made only of `*` is indistinguishable from the mask itself (masking it would grow
    // the mask on every pass); it carries no information to hide.
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '*') {
        return;
    }
    let mut guard = masker();
    let m = guard.get_or_insert_with(Masker::default);
    // A value with a trailing newline (a file read) also leaks without it.
    for v in [value, trimmed] {
        if trimmed.chars().count() < MIN_MASK_LEN {
            if !m.short.contains_key(v) {
                m.short.insert(v.to_string(), entry(v));
            }
        } else if !m.long.contains_key(v) {
            m.long.insert(v.to_string(), entry(v));
        }
    }
    if trimmed.chars().count() < MIN_MASK_LEN {
        let names = m.short_names.entry(trimmed.to_string()).or_default();
        if let Some(n) = name {
            names.insert(n.to_string());
        }
    }
}

/// Registers every string leaf of a JSON value (dict values, list items, numbers as text); a
/// dict's values are registered under their keys.
pub fn register_secret_json(value: &Value) {
    register_json(None, value);
}

/// [`register_secret_json`] for an option's value, named after the option.
pub fn register_secret_json_named(name: &str, value: &Value) {
    register_json(Some(name), value);
}

fn register_json(name: Option<&str>, value: &Value) {
    match value {
        Value::String(s) => register(name, s),
        Value::Number(n) => register(name, &n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| register_json(name, i)),
        Value::Object(map) => map.iter().for_each(|(k, v)| register_json(Some(k), v)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Declares a text the module computed that cannot reveal a secret (a salted fingerprint): a
/// result field equal to it is never masked, so a secret that happens to occur inside the hex
/// digits cannot make two equal fingerprints look different.
pub fn register_computed(text: &str) {
    masker()
        .get_or_insert_with(Masker::default)
        .computed
        .insert(text.to_string());
}

/// The warning about registered values too short to be masked inside text, naming their keys
/// (never the values); `None` when there are none.
pub fn short_secret_warning() -> Option<String> {
    let guard = masker();
    let m = guard.as_ref()?;
    if m.short_names.is_empty() {
        return None;
    }
    let named: BTreeSet<&String> = m.short_names.values().flatten().collect();
    let unnamed = m.short_names.values().filter(|n| n.is_empty()).count();
    let mut who: Vec<String> = named.into_iter().cloned().collect();
    if unnamed > 0 {
        who.push(format!("{unnamed} value(s) without a key name"));
    }
    Some(format!(
        "secret value(s) of {} are shorter than {MIN_MASK_LEN} characters: such a value is masked only where a whole field equals it, not inside other text (masking it there would corrupt versions, fingerprints and messages), so a message may show it. Use longer secret values",
        who.join(", ")
    ))
}

/// Replaces every registered secret value in `text` by [`MASK`], longest values first so that a
/// value containing another is masked whole. A text that as a whole equals a short value
/// (see [`MIN_MASK_LEN`]) becomes [`MASK`].
pub fn mask(text: &str) -> String {
    let guard = masker();
    let Some(m) = guard.as_ref() else {
        return text.to_string();
    };
    let whole = text.trim();
    if !whole.is_empty() && m.short.values().any(|e| whole_match(whole, e)) {
        return MASK.to_string();
    }
    let mut values: Vec<(&String, &Entry)> = m.long.iter().collect();
    values.sort_by_key(|(v, _)| std::cmp::Reverse(v.chars().count()));
    let mut out = text.to_string();
    for (v, e) in values {
        out = mask_entry(&out, v, e);
    }
    out
}

fn is_computed(text: &str) -> bool {
    masker().as_ref().is_some_and(|m| m.computed.contains(text))
}

/// Masks every string inside a JSON value, keys included; fingerprints the module computed
/// ([`register_computed`]) are left as they are.
pub fn mask_json(value: &Value) -> Value {
    match value {
        Value::String(s) if is_computed(s) => value.clone(),
        Value::String(s) => Value::String(mask(s)),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        if is_computed(k) { k.clone() } else { mask(k) },
                        mask_json(v),
                    )
                })
                .collect(),
        ),
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

    /// A secret that belongs to a key or option `name`: if the value is too short to be masked
    /// inside text, the result's warning names `name` (never the value).
    pub fn named(name: &str, value: impl Into<String>) -> Self {
        let value: String = value.into();
        register_secret_named(name, &value);
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

    /// Go's encoding/json: `<`, `>`, `&` as `\u003c…`, U+2028/2029 as `\u2028`, `\n \r \t`
    /// short, other control characters as `\u00XX`.
    fn go_json(s: &str) -> String {
        let mut o = String::new();
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                '\r' => o.push_str("\\r"),
                '\t' => o.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    o.push_str(&format!("\\u{:04x}", c as u32))
                }
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o
    }

    /// Python's json.dumps (ensure_ascii): every non-ASCII character as `\u00e9`.
    fn ascii_json(s: &str) -> String {
        let serde = serde_json::to_string(s).unwrap();
        let inner = &serde[1..serde.len() - 1];
        let mut o = String::new();
        for c in inner.chars() {
            if (c as u32) > 0x7e {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    o.push_str(&format!("\\u{u:04x}"));
                }
            } else {
                o.push(c);
            }
        }
        o
    }

    fn serde_inner(s: &str) -> String {
        let j = serde_json::to_string(s).unwrap();
        j[1..j.len() - 1].to_string()
    }

    #[test]
    fn escaped_forms_of_a_secret_are_masked() {
        let secret = "esc\"q\\b\tt<&>\u{e9}\u{2028}\u{1}end-unit";
        register_secret(secret);
        let forms = [
            secret.to_string(),
            serde_inner(secret),
            go_json(secret),
            ascii_json(secret),
            serde_inner(&serde_inner(secret)),
            serde_inner(&go_json(secret)),
            crate::pyfmt::repr(&Value::String(secret.into())),
        ];
        for f in forms {
            let body = format!("{{\"error\":\"bad request {f} rejected\"}}");
            let out = mask(&body);
            assert!(
                out.contains(MASK) && !out.contains("end-unit"),
                "form {f:?} leaked: {out}"
            );
        }
    }

    #[test]
    fn a_secret_with_a_tab_is_masked_in_its_raw_and_json_forms() {
        register_secret("tab\tkey-unit-secret");
        assert_eq!(mask("x tab\tkey-unit-secret y"), "x ******** y");
        assert_eq!(mask("x tab\\tkey-unit-secret y"), "x ******** y");
    }

    #[test]
    fn short_values_are_masked_only_as_whole_fields_and_named_in_a_warning() {
        register_secret_named("short_unit_key", "7");
        // Inside text (versions, fingerprints, timestamps) a short value is left alone.
        assert_eq!(
            mask("version 17, 7a7f, 2027-07-07"),
            "version 17, 7a7f, 2027-07-07"
        );
        // As a whole field (or a whole message) it is masked, in escaped forms too.
        assert_eq!(mask("7"), MASK);
        assert_eq!(mask(" 7\n"), MASK);
        let v = serde_json::json!({"a": "7", "b": "17", "version": 7});
        assert_eq!(
            mask_json(&v),
            serde_json::json!({"a": MASK, "b": "17", "version": 7})
        );
        let w = short_secret_warning().expect("a warning");
        assert!(
            w.contains("short_unit_key") && w.contains("shorter than 4"),
            "{w}"
        );
        assert!(!w.contains(" 7 "), "{w}");
    }

    #[test]
    fn dict_values_are_registered_under_their_keys() {
        register_secret_json(&serde_json::json!({"dict_short_unit": "ab"}));
        let w = short_secret_warning().expect("a warning");
        assert!(w.contains("dict_short_unit"), "{w}");
    }

    #[test]
    fn fingerprints_are_never_masked() {
        let fp = crate::fingerprint("salt-unit", "value-unit");
        // A (long) secret that happens to occur inside the hex digits.
        register_secret(&fp[10..20]);
        let v = serde_json::json!({"fingerprints": {"k": fp.clone()}});
        assert_eq!(mask_json(&v), v);
    }
}
