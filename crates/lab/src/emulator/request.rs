//! A request as the emulators see it, and the response they give.

use serde_json::Value;

/// One parsed request. `path` is the URL path as sent (not decoded); `query` is decoded.
#[derive(Debug, Clone)]
pub struct Request {
    /// Upper-case (`GET`, `POST`, …).
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The query string as sent, without `?` (what a server's access log shows).
    pub raw_query: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(super) fn new(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Request {
        let (path, raw_query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method: method.to_uppercase(),
            path: path.to_string(),
            query: parse_query(raw_query),
            raw_query: raw_query.to_string(),
            headers,
            body,
        }
    }

    /// The first value of query parameter `key`.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `key`, in order (`?status=a&status=b`).
    pub fn q_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value (name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The credential of `Authorization: <scheme> <credential>` when the scheme is one of
    /// `schemes` (compared without case); `None` when absent or of another scheme.
    pub fn authorization(&self, schemes: &[&str]) -> Option<&str> {
        let (scheme, rest) = self.header("authorization")?.trim().split_once(' ')?;
        schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
            .then(|| rest.trim())
    }

    /// Whether the body is declared JSON: `application/json` or a `+json` type, parameters aside.
    pub fn has_json_body(&self) -> bool {
        self.header("content-type").is_some_and(|c| {
            let base = c
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            base == "application/json" || base.ends_with("+json")
        })
    }

    /// The path's segments after the leading `/`, a trailing `/` ignored: `/api/x/` → `[api, x]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_end_matches('/').split('/').skip(1).collect()
    }

    /// The path as the request log keeps it: the decoded query re-joined, `hidden` keys left out.
    pub(super) fn logged_path(&self, hidden: &[&str]) -> String {
        let kept: Vec<String> = self
            .query
            .iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if kept.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, kept.join("&"))
        }
    }
}

/// What a response carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    /// Sent with the emulator's JSON content type ([`super::Options::json_type`]).
    Json(Value),
    /// JSON already written (a server's own key order kept), sent as [`Body::Json`].
    RawJson(String),
    /// Sent with the emulator's text content type ([`super::Options::text_type`]).
    Text(String),
    /// Sent as `application/octet-stream` (a file download).
    Bytes(Vec<u8>),
}

/// A response: status, body, and headers beyond `Content-Type` and `Content-Length`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, v: Value) -> Response {
        Response {
            status,
            body: Body::Json(v),
            headers: Vec::new(),
        }
    }
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            body: Body::Empty,
            headers: Vec::new(),
        }
    }
    pub fn text(status: u16, t: impl Into<String>) -> Response {
        Response {
            status,
            body: Body::Text(t.into()),
            headers: Vec::new(),
        }
    }
    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// `application/x-www-form-urlencoded` decoding: `%XX` escapes and `+` as space; a malformed
/// escape stays as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string's `key=value` pairs, decoded, in order; a key without `=` has an empty value.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("pagination%5Bpage%5D=2&sort[column]=name&search=a%20b&flag");
        assert_eq!(q[0], ("pagination[page]".into(), "2".into()));
        assert_eq!(q[1], ("sort[column]".into(), "name".into()));
        assert_eq!(q[2], ("search".into(), "a b".into()));
        assert_eq!(q[3], ("flag".into(), String::new()));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz+x"), "%zz x");
    }

    #[test]
    fn headers_and_paths() {
        let r = Request::new(
            "get",
            "/api/v1/x/?token=t&a=1",
            vec![
                ("Authorization".into(), "token abc ".into()),
                (
                    "Content-Type".into(),
                    "application/merge-patch+json; q=1".into(),
                ),
            ],
            Vec::new(),
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.segments(), ["api", "v1", "x"]);
        assert_eq!(r.authorization(&["Bearer", "Token"]), Some("abc"));
        assert_eq!(r.authorization(&["Basic"]), None);
        assert!(r.has_json_body());
        assert_eq!(r.logged_path(&["token"]), "/api/v1/x/?a=1");
    }
}
