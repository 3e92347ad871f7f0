//! Property tests of the masker (`ansible_module::mask`, `Secret`): every registered value of at
//! least `MIN_MASK_LEN` characters is gone from the masked text, also JSON-escaped, a shorter one
//! is masked as a whole field, masking is idempotent, `Secret` never prints its value, and JSON
//! masking reaches keys and nested values.
//!
//! Values are drawn without `*`: the mask itself is `********`, so a value made of or holding `*`
//! can reappear next to a mask (see `docs/faults.md`). Short by default (256 cases); a long run
//! (the process-wide value set grows with every case, so keep it to a few thousand):
//! `PROPTEST_CASES=4000 cargo test -p ansible_module --test proptest_mask`

use ansible_module::{mask, mask_json, register_secret, Secret, MASK, MIN_MASK_LEN};
use proptest::prelude::*;
use serde_json::{json, Value};

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^*]{1,24}",
        "[a-c]{1,4}",
        "[A-Za-z0-9+/=_-]{8,40}",
        " ?[a-z]{1,8}\n?",
    ]
    .prop_filter("blank", |s| !s.trim().is_empty())
}

/// Text with the values embedded (overlapping, adjacent, repeated) among random filler.
fn text_with(values: Vec<String>) -> impl Strategy<Value = (Vec<String>, String)> {
    let n = values.len();
    proptest::collection::vec((0..n + 2, "[^*]{0,6}"), 0..16).prop_map(move |parts| {
        let mut t = String::new();
        for (i, filler) in parts {
            t.push_str(&filler);
            if i < n {
                t.push_str(&values[i]);
            }
        }
        (values.clone(), t)
    })
}

fn case() -> impl Strategy<Value = (Vec<String>, String)> {
    proptest::collection::vec(value(), 1..5).prop_flat_map(text_with)
}

/// Every key and string value of a JSON document.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Value::Object(m) => m.iter().for_each(|(k, i)| {
            out.push(k.clone());
            all_strings(i, out)
        }),
        _ => {}
    }
}

/// The masker's value set is process-wide and the tests of this file run on parallel threads: a
/// value registered by one test may appear in another's random text between its two `mask` calls.
/// Each property body holds this lock so the properties see a stable set.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a value is masked inside text; shorter ones only as whole fields.
fn long(v: &str) -> bool {
    v.trim().chars().count() >= MIN_MASK_LEN
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// After masking, no registered value (nor its trimmed form) of at least `MIN_MASK_LEN`
    /// characters is left, a shorter one is masked as a whole field, and masking again changes
    /// nothing.
    #[test]
    fn masking_removes_every_value_and_is_idempotent((values, text) in case()) {
        let _serial = serial();
        for v in &values {
            register_secret(v);
        }
        let once = mask(&text);
        for v in values.iter().filter(|v| long(v)) {
            prop_assert!(!once.contains(v.as_str()), "{v:?} left in {once:?}");
            prop_assert!(!once.contains(v.trim()), "{:?} left in {once:?}", v.trim());
        }
        for v in &values {
            prop_assert_eq!(mask(v), MASK);
        }
        prop_assert_eq!(mask(&once), once.clone());
    }

    /// A `Secret` never shows its value through Debug or Display, and creating it is enough for
    /// the masker to hide the value anywhere.
    #[test]
    fn secret_never_prints((values, text) in case()) {
        let _serial = serial();
        let secrets: Vec<Secret> = values.iter().map(|v| Secret::new(v.clone())).collect();
        // Debug and Display do not depend on the value at all.
        let reference = Secret::new("reference-value-for-debug");
        for (s, v) in secrets.iter().zip(&values) {
            prop_assert_eq!(format!("{s}"), MASK);
            prop_assert_eq!(format!("{s:?}"), format!("{reference:?}"));
            prop_assert_eq!(s.expose(), v.as_str());
        }
        let masked = mask(&format!("{text} {:?}", secrets));
        for v in values.iter().filter(|v| long(v)) {
            prop_assert!(!masked.contains(v.trim()));
        }
    }

    /// `mask_json` reaches keys, nested lists and objects.
    #[test]
    fn mask_json_reaches_everything((values, text) in case()) {
        let _serial = serial();
        for v in &values {
            register_secret(v);
        }
        let doc = json!({
            "msg": text,
            text.clone(): [text.clone(), {"inner": text.clone(), text.clone(): 1}],
            "n": 1,
        });
        let mut seen = Vec::new();
        all_strings(&mask_json(&doc), &mut seen);
        for s in &seen {
            for v in values.iter().filter(|v| long(v)) {
                prop_assert!(!s.contains(v.trim()), "{v:?} in {s:?}");
            }
        }
    }

    /// A value echoed JSON-escaped (once or twice, as a proxy echoing a JSON body in a JSON error
    /// does) is masked like the raw value.
    #[test]
    fn json_escaped_forms_are_masked(v in "[^*]{4,24}", filler in "[a-z ]{0,8}") {
        prop_assume!(long(&v));
        let _serial = serial();
        register_secret(&v);
        let once = serde_json::to_string(&v).unwrap();
        let once = &once[1..once.len() - 1];
        let twice = serde_json::to_string(once).unwrap();
        let twice = &twice[1..twice.len() - 1];
        for form in [once, twice] {
            let masked = mask(&format!("{filler}{form}{filler}"));
            prop_assert!(!masked.contains(form), "{form:?} left in {masked:?}");
            prop_assert!(masked.contains(MASK), "{masked:?}");
        }
    }
}
