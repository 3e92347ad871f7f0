//! Property tests of the compose `.env` parser (`env_harvest::dotenv`): it never panics, it
//! terminates on bounded input, and no error text ever carries a value of the file.
//!
//! Short by default (256 cases per property). A long run:
//! `PROPTEST_CASES=100000 cargo test -p env_harvest --test proptest_dotenv`
//! (figures of one such run are in `docs/faults.md`).

use env_harvest::dotenv;
use proptest::prelude::*;

/// A secret-looking value: letters and digits around a fixed marker, optionally with the
/// punctuation that real tokens carry (base64, URL-safe base64, passwords).
fn canary() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{4,12}",
        proptest::option::of("[+/=_.!@%^&*()~,;-]{1,3}"),
        "[A-Za-z0-9]{4,12}",
    )
        .prop_map(|(a, p, b)| format!("Cnry{a}{}{b}", p.unwrap_or_default()))
}

/// One line holding the canary in a value position, in one of the ways a file can quote it
/// (or fail to).
fn canary_line(c: String) -> impl Strategy<Value = String> {
    (
        0usize..14,
        "[A-Z][A-Z0-9_]{0,8}",
        "[ a-z$#\\\\]{0,4}",
        any::<bool>(),
    )
        .prop_map(move |(form, key, junk, export)| {
            let prefix = if export { "export " } else { "" };
            let v = match form {
                0 => c.clone(),
                1 => format!("\"{c}\""),
                2 => format!("'{c}'"),
                3 => format!("\"{c}"),
                4 => format!("'{c}"),
                5 => format!("\"{junk}{c}{junk}\""),
                6 => format!("{junk}{c} # {c}"),
                7 => format!("${{{c}"),
                8 => format!("${{UNSET_X:?{c}}}"),
                9 => format!("${{UNSET_X?{c}}}"),
                10 => format!("${{UNSET_X:-{c}}}${{"),
                11 => format!("\"${{BAD-{c}}}\""),
                12 => format!("{c}\"{junk}"),
                _ => format!("${{{c}:%}}"),
            };
            format!("{prefix}{key}={v}")
        })
}

/// Lines that are not about the canary: well-formed ones, comments and junk made of the
/// characters the grammar cares about.
fn other_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z_][A-Z0-9_]{0,6}=[a-z0-9 ]{0,10}",
        "[A-Z_][A-Z0-9_]{0,6}=\"[a-z0-9 $\\\\n]{0,10}\"",
        "#[ -~]{0,20}",
        "[ \t]{0,3}",
        "[=\"'${}#:\\\\ a-zA-Z0-9_\\-.\\[\\]]{0,16}",
        "[A-Z]{1,4}=\\$\\{[A-Z]{1,4}(:?[-?+])?[a-z]{0,4}\\}",
    ]
}

/// A file: other lines with canary lines at random positions, random line endings, an optional
/// BOM, optionally one invalid UTF-8 byte.
fn file_with_canary() -> impl Strategy<Value = (String, Vec<u8>)> {
    canary().prop_flat_map(|c| {
        let lines = proptest::collection::vec(
            prop_oneof![3 => other_line(), 2 => canary_line(c.clone()), 1 => Just(format!("# {c}"))],
            1..24,
        );
        (
            Just(c),
            lines,
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(c, lines, crlf, bom, bad_byte)| {
                let sep = if crlf { "\r\n" } else { "\n" };
                let mut bytes = Vec::new();
                if bom {
                    bytes.extend_from_slice("\u{feff}".as_bytes());
                }
                bytes.extend_from_slice(lines.join(sep).as_bytes());
                if let Some(ix) = bad_byte {
                    let at = ix.index(bytes.len() + 1);
                    bytes.insert(at, 0xff);
                }
                (c, bytes)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Any bytes at all: no panic (the test process would abort), a result or an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = dotenv::parse(&bytes);
    }

    /// Grammar-shaped text: no panic, and any error is a line number within the file.
    #[test]
    fn grammar_shaped_text_never_panics(lines in proptest::collection::vec(other_line(), 0..40)) {
        let text = lines.join("\n");
        if let Err(e) = dotenv::parse(text.as_bytes()) {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "line {} of {}", e.line, text.lines().count());
        }
    }

    /// A value never reaches an error text or an unset reference: the canary may sit bare,
    /// quoted, half-quoted, inside broken `${…}` templates, in `${VAR:?message}`, after junk, in
    /// comments.
    #[test]
    fn no_value_in_error_text((c, bytes) in file_with_canary()) {
        match dotenv::parse(&bytes) {
            // Unset references name lines and keys, never the referenced text.
            Ok(f) => {
                let refs = format!("{:?}", f.unset_references);
                prop_assert!(!refs.contains(&c), "unset_references show the value: {refs}");
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(!shown.contains(&c), "error text shows the value: {shown}");
                let debug = format!("{e:?}");
                prop_assert!(!debug.contains(&c), "error Debug shows the value: {debug}");
            }
        }
    }

    /// What the lab's deploy renders (double-quoted, compose-escaped) reads back exactly.
    #[test]
    fn double_quoted_values_round_trip(v in "[^\u{0}\r]{0,64}") {
        let text = format!("KEY=\"{}\"\n", lab::fixtures::escape_double_quoted(&v));
        let parsed = dotenv::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.text("KEY"), Some(v.as_str()));
    }
}

/// One link of a growth chain: the previous key referenced `copies` times, in one of the ways
/// interpolation can reach it (bare, braced, as a default, as a `:+` alternative, quoted).
fn growth_line(i: usize, copies: usize, form: usize) -> String {
    let p = format!("K{}", i - 1);
    let one = match form % 5 {
        0 => format!("${p}"),
        1 => format!("${{{p}}}"),
        2 => format!("${{UNSET_X:-${p}}}"),
        3 => format!("${{{p}:+${p}}}"),
        _ => format!("${{{p}-}}"),
    };
    let v = one.repeat(copies);
    if form >= 5 {
        format!("K{i}=\"{v}\"")
    } else {
        format!("K{i}={v}")
    }
}

proptest! {
    // Each case may build megabytes: fewer cases than the other properties.
    #![proptest_config(ProptestConfig { cases: cases().min(64), ..ProptestConfig::default() })]

    /// Interpolation chains (`K1=$K0$K0`, `K2=$K1$K1`, … with 2 to 4 copies a line) either parse
    /// within the bounds or are refused with a size error naming a line and key of the chain,
    /// never the text; the parser never builds a value over the bound.
    #[test]
    fn interpolation_growth_is_bounded(
        seed_len in 1usize..5000,
        links in proptest::collection::vec((2usize..5, 0usize..10), 1..60),
    ) {
        let mut text = format!("K0={}\n", "q".repeat(seed_len));
        for (i, (copies, form)) in links.iter().enumerate() {
            text.push_str(&growth_line(i + 1, *copies, *form));
            text.push('\n');
        }
        match dotenv::parse(text.as_bytes()) {
            Ok(f) => {
                let total: usize = f.values.iter().map(|(k, v)| k.len() + v.len()).sum();
                prop_assert!(total <= dotenv::MAX_TOTAL_BYTES, "total {total}");
                prop_assert!(f.values.values().all(|v| v.len() <= dotenv::MAX_VALUE_BYTES));
            }
            Err(e) => {
                prop_assert!(
                    matches!(e.kind, dotenv::ParseErrorKind::ValueTooLarge | dotenv::ParseErrorKind::TooLarge),
                    "unexpected error: {e}"
                );
                prop_assert!(e.line >= 2 && e.line <= links.len() + 1, "line {}", e.line);
                prop_assert_eq!(e.key.clone(), Some(format!("K{}", e.line - 1)));
                prop_assert!(!e.to_string().contains("qq"), "{e}");
            }
        }
    }
}

/// `PROPTEST_CASES` (proptest reads it too, but an explicit config would shadow it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}
