//! Redaction of what PocketID logs in clear (contract pocketid-logs-and-access §1.2, §6.7):
//! one-time codes in `/lc/<code>` and `/api/one-time-access-token/<code>` paths and in a
//! referer's `?code=`, and the `/authorize` query's `state`, `code_challenge`, `nonce` and
//! `code`. Every path, query, URL and free text the module returns goes through here first.

pub const REDACTED: &str = "[redacted]";

/// Path prefixes whose next segment is a one-time login code.
const CODE_PATHS: [&str; 2] = ["/lc/", "/api/one-time-access-token/"];

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

/// A request path with the code after a login-code prefix replaced.
pub fn path(p: &str) -> String {
    let mut out = p.to_string();
    for prefix in CODE_PATHS {
        let mut from = 0;
        while let Some(i) = out[from..].find(prefix) {
            let start = from + i + prefix.len();
            let end = out[start..]
                .find(['/', '?', '#', ' ', '"', '&'])
                .map_or(out.len(), |j| start + j);
            if end > start {
                out.replace_range(start..end, REDACTED);
            }
            from = start + REDACTED.len().min(out.len() - start);
        }
    }
    out
}

/// A raw query string (`a=1&b=2`) with the values of secret parameters replaced.
pub fn query(q: &str) -> String {
    q.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if is_secret_param(k) && !v.is_empty() => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_param(k: &str) -> bool {
    let name = crate::parse::percent_decode(k);
    SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// A URL (a referer, a redirect URI): its path and query redacted.
pub fn url(u: &str) -> String {
    let (base, frag) = match u.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (u, None),
    };
    let mut out = match base.split_once('?') {
        Some((p, q)) => format!("{}?{}", path(p), query(q)),
        None => path(base),
    };
    if let Some(f) = frag {
        out.push('#');
        out.push_str(&query(f));
    }
    out
}

/// Free text (an error message, a hint): every URL-like part and `name=value` of a secret
/// parameter redacted, then masked (registered secrets) and cut to `max` characters.
pub fn text(t: &str, max: usize) -> String {
    let mut words: Vec<String> = Vec::new();
    for w in t.split(char::is_whitespace) {
        let w = if w.contains('?') || w.contains("/lc/") || w.contains("one-time-access-token/") {
            url(w)
        } else if w.contains('=') {
            query(w)
        } else {
            w.to_string()
        };
        words.push(w);
    }
    let joined = ansible_module::mask(&words.join(" "));
    let clean: String = joined
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = clean.chars().take(max).collect();
    if clean.chars().count() > max {
        out.push('…');
    }
    out
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
            "https://id.example.org/lc/[redacted]?redirect=%2Fsettings"
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
}
