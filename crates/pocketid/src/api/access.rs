//! Access recovery calls (`pocketid-logs-and-access.md` §3, §4): users search, one-time login
//! codes, and the audit log.

use super::{ApiError, PocketIdApi};
use ansible_module::Secret;
use httpx::Retry;
use serde_json::{json, Value};

impl PocketIdApi {
    /// `GET /api/users?search=<term>`, every page. PocketID's search is a `LIKE '%term%'` over
    /// e-mail, names and username with `%` and `_` unescaped, so callers pick exact matches.
    pub fn search_users(&self, term: &str) -> Result<Vec<Value>, ApiError> {
        self.list_all("/users", Some(term), "username")
    }

    /// `GET /api/audit-logs/all` (admin) for any of `events` (the repeatable `filters[event][i]`),
    /// newest first (`createdAt desc`: without a sort PocketID has no order), every page.
    pub fn audit_log(&self, events: &[&str]) -> Result<Vec<Value>, ApiError> {
        let keys: Vec<String> = (0..events.len())
            .map(|i| format!("filters[event][{i}]"))
            .collect();
        let filters: Vec<(&str, &str)> = keys
            .iter()
            .map(String::as_str)
            .zip(events.iter().copied())
            .collect();
        self.list_sorted("/audit-logs/all", &filters, "createdAt", "desc")
    }

    /// `POST /api/users/{id}/one-time-access-token {"ttl": <seconds>}` (admin): a single-use login
    /// code, held only as a [`Secret`]. Sent once: a repeat would make a second code.
    pub fn create_login_code(&self, user_id: &str, ttl_secs: u64) -> Result<Secret, ApiError> {
        let path = format!("/users/{}/one-time-access-token", httpx::encode(user_id));
        let v = self
            .call(
                "POST",
                &path,
                Some(json!({ "ttl": ttl_secs })),
                Retry::Never,
            )?
            .unwrap_or(Value::Null);
        match v.get("token").and_then(Value::as_str) {
            Some(t) if is_plain_code(t) => Ok(Secret::new(t)),
            Some(t) if !t.is_empty() => Err(ApiError::Decode {
                method: "POST".into(),
                path: format!("/api{path}"),
                detail: "its `token` holds characters no PocketID code has (codes are letters and digits only); it is neither shown nor written, so no terminal escape reaches the screen or the file, and it expires unused: check the server and any proxy in front of it".into(),
            }),
            _ => Err(ApiError::Decode {
                method: "POST".into(),
                path: format!("/api{path}"),
                detail: "no `token` in the answer".into(),
            }),
        }
    }

    /// `POST /api/users/{id}/one-time-access-email {"ttl": <seconds>}` (admin): PocketID makes a
    /// code and mails it to the user (asynchronously: an SMTP failure is only in its log).
    pub fn email_login_code(&self, user_id: &str, ttl_secs: u64) -> Result<(), ApiError> {
        let path = format!("/users/{}/one-time-access-email", httpx::encode(user_id));
        self.call(
            "POST",
            &path,
            Some(json!({ "ttl": ttl_secs })),
            Retry::Never,
        )?;
        Ok(())
    }
}

/// Whether `code` is made only of what PocketID's login codes use: ASCII letters and digits
/// (6 digits, or 12 alphanumeric characters; the CLI's are alike). Anything else, such as a
/// terminal escape, is refused before it reaches a terminal or a file.
pub fn is_plain_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod code_tests {
    use super::is_plain_code;

    #[test]
    fn only_letters_and_digits_are_a_code() {
        assert!(is_plain_code("123456"));
        assert!(is_plain_code("aB3dE6gH9jK2"));
        for hostile in [
            "",
            "\x1b]52;c;Y2FuYXJ5\x07",
            "abc\x1b]0;title\x07",
            "\x1b[2J\x1b[H123456",
            "12 34",
            "123456\n",
            "ab/../c",
            "ａｂｃ",
        ] {
            assert!(!is_plain_code(hostile), "{hostile:?}");
        }
        assert!(!is_plain_code(&"a".repeat(65)));
    }
}
