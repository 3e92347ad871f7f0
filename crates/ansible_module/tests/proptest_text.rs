//! Property tests of the sanitiser of remote text (`ansible_module::text`): for arbitrary bytes
//! it never panics, returns no control character, no ESC and (with bidi) no bidirectional
//! override, is trimmed, and is idempotent. Short by default (256 cases); a long run:
//! `PROPTEST_CASES=20000 cargo test -p ansible_module --test proptest_text`

use ansible_module::text::{is_bidi, sanitize, sanitize_bidi};
use proptest::prelude::*;

/// Bytes rich in what terminals act on: ESC, CSI and OSC introducers, C1, BEL, bidi overrides.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"\x1b[".to_vec()),
        Just(b"\x1b]52;c;".to_vec()),
        Just(b"\x07".to_vec()),
        Just("\u{9b}".as_bytes().to_vec()),
        Just("\u{202e}".as_bytes().to_vec()),
        Just("\u{2066}".as_bytes().to_vec()),
        "[a-z ;0-9]{0,6}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn sanitized_text_holds_nothing_a_terminal_acts_on(bytes in hostile()) {
        let out = sanitize(&bytes);
        prop_assert!(!out.chars().any(char::is_control), "{out:?}");
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert_eq!(sanitize(out.as_bytes()), out.clone());
        let text = String::from_utf8_lossy(&bytes);
        let shown = sanitize_bidi(&text);
        prop_assert!(!shown.chars().any(|c| c.is_control() || is_bidi(c)), "{shown:?}");
        prop_assert_eq!(sanitize_bidi(&shown), shown.clone());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = sanitize(&bytes);
        let _ = sanitize_bidi(&String::from_utf8_lossy(&bytes));
    }
}
