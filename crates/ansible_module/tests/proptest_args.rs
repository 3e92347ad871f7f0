//! Property tests of argument validation and coercion (`ansible_module::spec`): random args
//! files against a spec holding every kind, aliases, choices, env fallbacks and `no_log` options.
//! Properties: no panic; terminates; a `no_log` value never survives in the masked error text
//! (neither as itself nor as Python's escaped `repr`); a successful validation is a fixed point.
//!
//! Short by default (256 cases). A long run (the masker's value set grows with every case, so
//! keep it to a few thousand):
//! `PROPTEST_CASES=4000 cargo test -p ansible_module --test proptest_args`

use ansible_module::spec::{coerce, validate, ArgsError, Kind, Opt};
use ansible_module::{mask, pyfmt};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn spec() -> Vec<Opt> {
    vec![
        Opt::str("name").required(),
        Opt::str("token").no_log().env("PT_TOKEN"),
        Opt::int("pin").no_log(),
        Opt::dict("creds").no_log(),
        Opt::list("keys", Kind::Str).no_log().alias("secret_keys"),
        Opt::str("secret_mode").no_log().choices(&["x", "y"]),
        Opt::int("count").default(3),
        Opt::bool("flag"),
        Opt::float("ratio"),
        Opt::list("items", Kind::Str),
        Opt::list("ports", Kind::Int),
        Opt::list("switches", Kind::Bool),
        Opt::dict("extra"),
        Opt::str("mode").choices(&["a", "b"]).alias("kind"),
        Opt::path("where"),
        Opt::raw("anything"),
    ]
}

const NO_LOG: [&str; 6] = [
    "token",
    "pin",
    "creds",
    "keys",
    "secret_keys",
    "secret_mode",
];
const OTHER: [&str; 13] = [
    "name", "count", "flag", "ratio", "items", "ports", "switches", "extra", "mode", "kind",
    "where", "anything", "bogus",
];

/// A secret-looking string: any text without `*` (the mask is made of `*`, see the masker's
/// properties) and not only whitespace (blank values are never registered). At least 6
/// characters: the mask set is process-wide, and one-letter values registered by earlier cases
/// would mask most of every later error text and weaken the check.
fn secret_str() -> impl Strategy<Value = String> {
    "[^*\u{0}]{6,16}".prop_filter("blank", |s| !s.trim().is_empty())
}

fn leaf(s: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        s.prop_map(Value::String),
        prop_oneof![
            Just("yes"),
            Just("off"),
            Just("5"),
            Just("5.0"),
            Just("1e3"),
            Just("a,b,c"),
            Just("k=v other=w"),
            Just("{\"k\": 1}"),
            Just("[1, 2]"),
            Just("0x1f"),
            Just("nan"),
            Just("~/x"),
            Just("$HOME/x"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn json(s: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    leaf(s).prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn params() -> impl Strategy<Value = Map<String, Value>> {
    let secret = proptest::collection::vec(
        (
            proptest::sample::select(NO_LOG.to_vec()),
            json(secret_str().boxed()),
        ),
        0..4,
    );
    let other = proptest::collection::vec(
        (
            proptest::sample::select(OTHER.to_vec()),
            json(any::<String>().boxed()),
        ),
        0..6,
    );
    (secret, other).prop_map(|(s, o)| {
        s.into_iter()
            .chain(o)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    })
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Validation never panics; when it fails, the masked error text holds no `no_log` value.
    #[test]
    fn no_log_values_never_in_masked_errors(
        p in params(),
        ignore_unknown in any::<bool>(),
        env_token in proptest::option::of(secret_str()),
    ) {
        let env = env_token.clone();
        let lookup = move |var: &str| if var == "PT_TOKEN" { env.clone() } else { None };
        let result = validate("probe", &spec(), &p, ignore_unknown, &lookup);
        let Err(e) = result else { return Ok(()) };
        let shown = mask(&e.to_string());
        let mut secrets = Vec::new();
        for name in NO_LOG {
            if let Some(v) = p.get(name) {
                strings(v, &mut secrets);
            }
        }
        // The env fallback is read (and registered) only once the names are accepted, and only
        // when the option is absent.
        if !p.contains_key("token") && !matches!(e, ArgsError::Unsupported { .. }) {
            secrets.extend(env_token);
        }
        // Values shorter than MIN_MASK_LEN are masked only as whole fields, never inside text.
        for s in secrets
            .iter()
            .filter(|s| s.trim().chars().count() >= ansible_module::MIN_MASK_LEN)
        {
            prop_assert!(!shown.contains(s.as_str()), "value {s:?} in {shown:?}");
            let r = pyfmt::repr(&Value::String(s.clone()));
            let inner = &r[1..r.len() - 1];
            if inner != s && inner.len() >= 4 {
                prop_assert!(!shown.contains(inner), "escaped value {inner:?} in {shown:?}");
            }
        }
    }

    /// What validation accepts, validated again, comes back unchanged (coercion is idempotent).
    #[test]
    fn validation_is_a_fixed_point(p in params()) {
        let spec = spec();
        if let Ok(once) = validate("probe", &spec, &p, true, &|_| None) {
            let again = validate("probe", &spec, &once, true, &|_| None)
                .map_err(|e| TestCaseError::fail(format!("second validation failed: {e}")))?;
            prop_assert_eq!(once, again);
        }
    }

    /// Every kind on every value: a result or an error string, never a panic.
    #[test]
    fn coerce_never_panics(v in json(any::<String>().boxed())) {
        for kind in [Kind::Raw, Kind::Bool, Kind::Int, Kind::Float, Kind::Str, Kind::Path, Kind::List, Kind::Dict] {
            let _ = coerce(kind, &v);
        }
    }
}
