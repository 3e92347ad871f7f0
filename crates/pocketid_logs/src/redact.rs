//! Redaction of what PocketID logs in clear (contract pocketid-logs-and-access §1.2, §6.7):
//! one-time codes in `/lc/<code>` and `/api/one-time-access-token/<code>` paths and in a
//! referer's `?code=`, and the `/authorize` query's `state`, `code_challenge`, `nonce` and
//! `code`. Every path, query, URL and free text the module returns goes through here first.

pub const REDACTED: &str = "[redacted]";

/// Path prefixes whose next segment is a one-time login code.
const CODE_PATHS: [&str; 2] = ["/lc/", "one-time-access-token/"];

/// Query parameters whose values are secrets or single-use values.
const SECRET_PARAMS: [&str; 9] = [
    "code",
    "state",
    "nonce",
    "code_challenge",
    "code_verifier",
    "token",
    "id_token_hint",
    "access_token",
    "client_secret",
];

/// A request path with the code after a login-code prefix replaced (decoded and sanitised
/// first, like everything here).
pub fn path(p: &str) -> String {
    scrub(p)
}

/// A raw query string (`a=1&b=2`) with the values of secret parameters replaced.
pub fn query(q: &str) -> String {
    scrub(q)
}

/// A URL (a referer, a redirect URI): its path, query and fragment redacted.
pub fn url(u: &str) -> String {
    scrub(u)
}

/// Free text (an error message, a hint): decoded, sanitised, cut to `max` characters, every
/// secret in it redacted, then masked (registered secrets).
pub fn text(t: &str, max: usize) -> String {
    let clean = decoded(t);
    let mut cut: String = clean.chars().take(max).collect();
    if clean.chars().count() > max {
        cut.push('…');
    }
    ansible_module::mask(&secrets(&cut))
}

/// Percent-decoded until nothing changes (an encoded `%3Fcode%3D…` is found as `?code=…`),
/// then sanitised. What stays encoded after eight rounds is not shown at all.
fn decoded(t: &str) -> String {
    let mut cur = t.to_string();
    for _ in 0..8 {
        let next = crate::parse::percent_decode(&cur);
        if next == cur {
            return crate::parse::sanitize(&cur);
        }
        cur = next;
    }
    REDACTED.to_string()
}

fn scrub(t: &str) -> String {
    secrets(&decoded(t))
}

/// `t` with every login code after a code path and every value of a secret parameter
/// (`name=value`, JSON `"name": "value"`) replaced. Applying it twice changes nothing.
pub fn secrets(t: &str) -> String {
    params(&code_paths(t))
}

/// Where a value ends: query, JSON and prose delimiters, and for a path segment `/` and `?`.
fn value_end(s: &str, segment: bool) -> usize {
    s.find(|c: char| {
        c.is_whitespace() || "&\"',;}#<>)".contains(c) || (segment && (c == '/' || c == '?'))
    })
    .unwrap_or(s.len())
}

fn code_paths(t: &str) -> String {
    let mut out = t.to_string();
    for prefix in CODE_PATHS {
        let mut from = 0;
        while let Some(i) = out[from..].find(prefix) {
            let start = from + i + prefix.len();
            let rest = &out[start..];
            let len = value_end(rest, true);
            if len > 0 && !rest.starts_with(REDACTED) {
                out.replace_range(start..start + len, REDACTED);
                from = start + REDACTED.len();
            } else {
                from = start + len;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn params(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if !is_ident(c) {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let len = rest.find(|x: char| !is_ident(x)).unwrap_or(rest.len());
        let name = &rest[..len];
        out.push_str(name);
        rest = &rest[len..];
        if !is_secret_param(name) {
            continue;
        }
        let quoted = out.len() > name.len() && out[..out.len() - name.len()].ends_with(['"', '\'']);
        if let Some(n) = assignment(rest, quoted) {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
            let v = value_end(rest, false);
            if v > 0 && !rest.starts_with(REDACTED) {
                out.push_str(REDACTED);
                rest = &rest[v..];
            }
        }
    }
    out
}

/// The length of `=`, or of a JSON `": "` after a quoted name (a quote on either side of it),
/// with the value's opening quote.
fn assignment(s: &str, quoted: bool) -> Option<usize> {
    let mut n = 0;
    let mut quoted = quoted;
    if s.starts_with(['"', '\'']) {
        n += 1;
        quoted = true;
    }
    n += s[n..].len() - s[n..].trim_start().len();
    match s[n..].chars().next() {
        Some('=') => n += 1,
        Some(':') if quoted => n += 1,
        _ => return None,
    }
    n += s[n..].len() - s[n..].trim_start().len();
    if s[n..].starts_with(['"', '\'']) {
        n += 1;
    }
    Some(n)
}

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_in_paths_and_referers() {
        assert_eq!(path("/lc/Xk7pQ2"), "/lc/[redacted]");
        assert_eq!(
            path("/api/one-time-access-token/Xk7pQ2abcdef"),
            "/api/one-time-access-token/[redacted]"
        );
        assert_eq!(path("/lc"), "/lc");
        assert_eq!(path("/api/users/me"), "/api/users/me");
        assert_eq!(
            url("https://id.example.org/login/alternative/code?code=Xk7pQ2"),
            "https://id.example.org/login/alternative/code?code=[redacted]"
        );
        assert_eq!(
            url("https://id.example.org/lc/Xk7pQ2?redirect=%2Fsettings"),
            "https://id.example.org/lc/[redacted]?redirect=/settings"
        );
    }

    #[test]
    fn authorize_query() {
        let q = "client_id=abc&redirect_uri=https%3A%2F%2Fapp.example.org%2Fcb&state=s3cr3t&code_challenge=xyz&code_challenge_method=S256&nonce=n1&response_type=code";
        let r = query(q);
        for gone in ["s3cr3t", "xyz", "n1"] {
            assert!(!r.contains(gone), "{r}");
        }
        assert!(r.contains("client_id=abc") && r.contains("code_challenge_method=S256"));
        assert!(r.contains("response_type=code"), "{r}");
    }

    #[test]
    fn free_text() {
        let t = text("GET /lc/Xk7pQ2 failed with state=abc and\ncode=zzz", 200);
        assert!(
            !t.contains("Xk7pQ2") && !t.contains("abc") && !t.contains("zzz"),
            "{t}"
        );
        assert!(text(&"x".repeat(500), 10).chars().count() <= 11);
    }

    #[test]
    fn an_empty_code_before_multibyte_text_is_no_panic() {
        assert_eq!(path("/lc/é"), "/lc/[redacted]");
        assert_eq!(path("/lc//€€€"), "/lc//€€€");
        assert_eq!(
            path("/api/one-time-access-token/?€€€€€€€€€€€"),
            "/api/one-time-access-token/?€€€€€€€€€€€"
        );
        assert_eq!(path("/lc/ ü/lc/"), "/lc/ ü/lc/");
    }

    #[test]
    fn encoded_and_json_written_secrets() {
        for t in [
            "error=%3Fcode%3Dc0de-s3cret%26state%3Dst4te-s3cret",
            "x %253Fcode%253Dc0de-s3cret",
            r#"bad body {"code":"c0de-s3cret","state": "st4te-s3cret"}"#,
            "redirect_uri=https%3A%2F%2Fa.example.org%2Fcb%3Fcode%3Dc0de-s3cret",
            "/lc%2Fc0de-s3cret",
        ] {
            let r = text(t, 300);
            assert!(
                !r.contains("c0de-s3cret") && !r.contains("st4te-s3cret"),
                "{t} -> {r}"
            );
            assert_eq!(secrets(&r), r);
        }
        // Names that merely contain a secret's name stay.
        let r = text("code_challenge_method=S256&response_type=code&x=code", 300);
        assert_eq!(r, "code_challenge_method=S256&response_type=code&x=code");
        assert!(!text("a\u{1b}[31m\u{9b}b\u{7}", 50)
            .chars()
            .any(char::is_control));
    }
}
