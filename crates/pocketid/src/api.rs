//! PocketID's admin REST API on the shared `httpx` plumbing (contract `pocketid-api.md`).
//!
//! Reads, updates and deletes are retried on 429/502/503/504 with backoff and `Retry-After`;
//! requests that mint (a client secret, a client create) are sent exactly once.

use ansible_module::{Opt, Secret};
use httpx::{ApiFailure, Body, HttpConfig, HttpError, Retry};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) mod access;
mod token;

pub use token::SecretCheck;

/// Where PocketID is and how to reach it: the options every PocketID module shares.
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub url: String,
    #[serde(default = "yes")]
    pub validate_certs: bool,
    pub ca_cert: Option<PathBuf>,
    #[serde(default = "thirty")]
    pub timeout: u64,
    #[serde(default = "five")]
    pub retries: u32,
}

/// A server and the API key to use there, flattened into a module's params.
#[derive(Debug, Deserialize)]
pub struct Connection {
    #[serde(flatten)]
    pub server: Server,
    pub api_key: Secret,
}

fn yes() -> bool {
    true
}
fn thirty() -> u64 {
    30
}
/// PocketID's limiter answers 429 with Retry-After; five retries give a burst room to drain.
fn five() -> u32 {
    5
}

/// Backoff doubles per attempt, so more than this would wait for minutes on a dead server.
pub const MAX_RETRIES: u32 = 10;

/// The `retries` option's range check, before any request.
pub fn check_retries(retries: u32) -> Result<(), ansible_module::Failure> {
    if retries > MAX_RETRIES {
        return Err(ansible_module::Failure::new(format!(
            "`retries` must be 0 to {MAX_RETRIES} (each retry waits twice as long as the one before), got {retries}"
        )));
    }
    Ok(())
}

/// The option definitions of [`Server`].
pub fn server_options() -> Vec<Opt> {
    vec![
        Opt::str("url")
            .env("POCKETID_URL")
            .required()
            .help("PocketID base URL, e.g. https://id.example.org (env POCKETID_URL)"),
        Opt::bool("validate_certs")
            .default(true)
            .help("verify the server's TLS certificate"),
        Opt::path("ca_cert")
            .env("POCKETID_CACERT")
            .help("PEM file of the CA that signed PocketID's certificate (env POCKETID_CACERT)"),
        Opt::int("timeout")
            .default(30)
            .range(1, 3600)
            .help("seconds per HTTP request, and for reading a whole paginated list"),
        Opt::int("retries").default(5).help(
            "further attempts (0-10, with backoff) for reads, updates and deletes after a connection error or HTTP 429/5xx; a request that mints or creates is never repeated, except after a 429 (up to 5 times)",
        ),
    ]
}

/// The option definitions of [`Connection`].
pub fn connection_options() -> Vec<Opt> {
    let mut o = server_options();
    o.insert(
        1,
        Opt::str("api_key")
            .env("POCKETID_API_KEY")
            .required()
            .no_log()
            .help("API key of an admin user, sent as X-API-Key (env POCKETID_API_KEY)"),
    );
    o
}

/// Why a PocketID call failed. Messages name the request and what to do, never a key or secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Status(Box<StatusError>),
    #[error(
        "PocketID answered {method} {path} with a body that is not the expected JSON ({detail})"
    )]
    Decode {
        method: String,
        path: String,
        detail: String,
    },
    #[error("refusing {method} {path}: an id in it is `.` or `..` (taken from the server's answer), which would address another path on the server; check the PocketID server and its data")]
    DotSegment { method: String, path: String },
    #[error("PocketID's list {path} holds more than {MAX_LIST_ITEMS} items ({detail}); this module reads at most {MAX_LIST_ITEMS}, so it stopped: check the server (or a proxy in front of it) for pagination that never ends, or remove unused entries")]
    ListTooLong { path: String, detail: String },
    #[error("PocketID answered page {page} of {path} with {got} items although at most {PAGE_LIMIT} were asked for (pagination[limit]); a server that ignores the page size is refused: check the PocketID version and any proxy in front of it")]
    PageTooLarge { path: String, page: u64, got: usize },
    #[error("PocketID's token endpoint answered a client secret check with HTTP {status} ({error}) instead of 401 invalid_client (refused) or 400 invalid_grant (accepted); check that `url` is PocketID itself and not a proxy or another service")]
    TokenCheck { status: u16, error: String },
    #[error("the system random source failed ({0}); nothing was sent")]
    Random(String),
    #[error("reading PocketID's list {path} did not finish within {secs}s (`timeout` bounds the whole list; {pages} page(s) read, the server claims {claimed}): raise `timeout` or check the server's load")]
    ListTimeout {
        path: String,
        secs: u64,
        pages: u64,
        claimed: u64,
    },
}

/// The most items one paginated list may hold. A homelab has tens of clients, groups and keys;
/// a list beyond this is a broken or hostile server, and reading on would grow without bound.
pub const MAX_LIST_ITEMS: usize = 10_000;

/// Items asked for per page (PocketID's own maximum).
pub const PAGE_LIMIT: usize = 100;

/// A non-2xx answer, with the server's message (masked and cut short) and what to do.
#[derive(Debug, thiserror::Error)]
#[error("PocketID answered {method} {path} with HTTP {status}{code_note}{attempts_note}: {message}{hint}")]
pub struct StatusError {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The stable error code (2.13+), empty when the server sent none.
    pub code: String,
    code_note: String,
    attempts_note: String,
    pub message: String,
    hint: &'static str,
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status(e) => Some(e.status),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status(e) if !e.code.is_empty() => Some(&e.code),
            _ => None,
        }
    }
}

/// The server's version as `(major, minor, patch)`; `None` when `/api/version/current` is absent
/// (before 2.3.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(pub u32, pub u32, pub u32);

impl ServerVersion {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let mut it = s.split(['.', '-', '+']).map(|p| p.parse::<u32>().ok());
        Some(ServerVersion(
            it.next()??,
            it.next().flatten().unwrap_or(0),
            it.next().flatten().unwrap_or(0),
        ))
    }
    /// 2.14+: additive `/secrets`; before: the legacy `/secret` that replaces.
    pub fn has_multiple_secrets(self) -> bool {
        self >= ServerVersion(2, 14, 0)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A secret minted by PocketID: the value is only ever held as a [`Secret`].
#[derive(Debug, Clone)]
pub struct MintedSecret {
    pub value: Secret,
    /// 2.14+ only.
    pub id: Option<String>,
    pub prefix: Option<String>,
    pub expires_at: Option<String>,
}

/// A client of one PocketID server.
#[derive(Debug, Clone)]
pub struct PocketIdApi {
    http: httpx::Client,
    key: Secret,
    /// `timeout`: per request, and for a whole paginated list.
    timeout: Duration,
}

impl PocketIdApi {
    pub fn new(conn: &Connection) -> Result<Self, ApiError> {
        let server = &conn.server;
        let mut cfg = HttpConfig::new("PocketID", server.url.trim_end_matches('/'));
        cfg.validate_certs = server.validate_certs;
        cfg.ca_cert = server.ca_cert.clone();
        let timeout = Duration::from_secs(server.timeout.max(1));
        cfg.timeout = timeout;
        cfg.retries = conn.server.retries;
        Ok(PocketIdApi {
            http: httpx::Client::new(cfg)?,
            key: conn.api_key.clone(),
            timeout,
        })
    }

    /// HTTP requests sent so far (attempts included).
    pub fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        retry: Retry,
    ) -> Result<Option<Value>, ApiError> {
        let full = format!("/api{path}");
        // Options are checked where they are read; this catches ids from the server's answers
        // (every id is encoded, so a `.`/`..` segment here is an id that is exactly that).
        let path_only = full.split('?').next().unwrap_or_default();
        if httpx::check_segments("path", path_only).is_err() {
            return Err(ApiError::DotSegment {
                method: method.into(),
                path: full,
            });
        }
        let headers = [
            ("X-API-Key", self.key.expose()),
            ("Accept", "application/json"),
        ];
        let mk = |b: &Option<Value>| b.clone().map(Body::Json).unwrap_or(Body::None);
        let mut resp = self.http.send(method, &full, &headers, mk(&body), retry)?;
        // A 429 comes from the rate-limit middleware, before any handler ran: nothing was minted,
        // so even a request that is never retried otherwise may be sent again after Retry-After.
        let mut throttled = 0;
        while retry == Retry::Never && resp.status == 429 && throttled < 5 {
            throttled += 1;
            let wait = resp
                .header("retry-after")
                .and_then(httpx::parse_retry_after)
                .unwrap_or(Duration::from_secs(1));
            if wait > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(wait);
            resp = self.http.send(method, &full, &headers, mk(&body), retry)?;
        }
        if !resp.is_success() {
            return Err(status_error(method, &full, &ApiFailure::Status(resp)));
        }
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        resp.json::<Value>()
            .map(Some)
            .map_err(|e| ApiError::Decode {
                method: method.into(),
                path: full,
                detail: e.to_string(),
            })
    }

    fn get(&self, path: &str) -> Result<Value, ApiError> {
        Ok(self
            .call("GET", path, None, Retry::Safe)?
            .unwrap_or(Value::Null))
    }

    /// `GET /api/version/current`; `Ok(None)` on 404 (a server older than 2.3.0).
    pub fn version(&self) -> Result<Option<ServerVersion>, ApiError> {
        match self.get("/version/current") {
            Ok(v) => Ok(v
                .get("currentVersion")
                .and_then(Value::as_str)
                .and_then(ServerVersion::parse)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/users/me`: the key's owner.
    pub fn me(&self) -> Result<Value, ApiError> {
        self.get("/users/me")
    }

    /// Every item of a paginated list: sorted (there is no default order), [`PAGE_LIMIT`] per
    /// page, looping on `totalPages` (pages past the end repeat the last page) and de-duplicated
    /// by `id`. Bounded against a broken or hostile server: at most [`MAX_LIST_ITEMS`] items, no
    /// page larger than asked for, and the whole list within `timeout` (checked between pages).
    pub fn list_all(
        &self,
        path: &str,
        search: Option<&str>,
        sort: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let params: Vec<(&str, &str)> = search.map(|s| ("search", s)).into_iter().collect();
        self.list_sorted(path, &params, sort, "asc")
    }

    /// [`list_all`](Self::list_all) with any query parameters (`filters[event]`, `search`) and
    /// a sort direction (`asc` or `desc`).
    pub fn list_sorted(
        &self,
        path: &str,
        params: &[(&str, &str)],
        sort: &str,
        direction: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let full = format!("/api{path}");
        let deadline = Instant::now() + self.timeout;
        let mut out: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page = 1u64;
        loop {
            let mut q = format!(
                "{path}?pagination%5Bpage%5D={page}&pagination%5Blimit%5D={PAGE_LIMIT}&sort%5Bcolumn%5D={}&sort%5Bdirection%5D={}",
                httpx::encode(sort),
                httpx::encode(direction)
            );
            for (k, v) in params {
                q.push_str(&format!("&{}={}", httpx::encode(k), httpx::encode(v)));
            }
            let v = self.get(&q)?;
            let data = v
                .get("data")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if data.len() > PAGE_LIMIT {
                return Err(ApiError::PageTooLarge {
                    path: full,
                    page,
                    got: data.len(),
                });
            }
            for item in data {
                let id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if seen.insert(id) {
                    out.push(item.clone());
                }
            }
            if out.len() > MAX_LIST_ITEMS {
                return Err(ApiError::ListTooLong {
                    path: full,
                    detail: format!("{} distinct items after {page} page(s)", out.len()),
                });
            }
            let total_pages = v
                .pointer("/pagination/totalPages")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            // More pages than the cap can fill: fail now rather than after reading them.
            if total_pages > MAX_LIST_ITEMS.div_ceil(PAGE_LIMIT) as u64 {
                return Err(ApiError::ListTooLong {
                    path: full,
                    detail: format!("the server claims {total_pages} pages of {PAGE_LIMIT}"),
                });
            }
            if page >= total_pages {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ApiError::ListTimeout {
                    path: full,
                    secs: self.timeout.as_secs(),
                    pages: page,
                    claimed: total_pages,
                });
            }
            page += 1;
        }
        Ok(out)
    }

    pub fn list_clients(&self, search: Option<&str>) -> Result<Vec<Value>, ApiError> {
        self.list_all("/oidc/clients", search, "name")
    }

    pub fn list_groups(&self) -> Result<Vec<Value>, ApiError> {
        self.list_all("/user-groups", None, "name")
    }

    /// `GET /api/oidc/clients/{id}`; `Ok(None)` when it does not exist.
    pub fn get_client(&self, id: &str) -> Result<Option<Value>, ApiError> {
        match self.get(&client_path(id)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/oidc/clients`, sent once (a repeat could create a duplicate).
    pub fn create_client(&self, body: Value) -> Result<Value, ApiError> {
        Ok(self
            .call("POST", "/oidc/clients", Some(body), Retry::Never)?
            .unwrap_or(Value::Null))
    }

    /// `PUT /api/oidc/clients/{id}`: a full replace, so `body` must be the complete object.
    pub fn update_client(&self, id: &str, body: Value) -> Result<Value, ApiError> {
        Ok(self
            .call("PUT", &client_path(id), Some(body), Retry::Safe)?
            .unwrap_or(Value::Null))
    }

    /// `DELETE /api/oidc/clients/{id}`: `true` if deleted, `false` if it was already gone
    /// (404 on 2.13+; ≤2.12 answers 204 either way).
    pub fn delete_client(&self, id: &str) -> Result<bool, ApiError> {
        match self.call("DELETE", &client_path(id), None, Retry::Safe) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT …/allowed-user-groups`: replaces the whole set.
    pub fn set_allowed_groups(&self, id: &str, group_ids: &[String]) -> Result<(), ApiError> {
        self.call(
            "PUT",
            &format!("{}/allowed-user-groups", client_path(id)),
            Some(json!({ "userGroupIds": group_ids })),
            Retry::Safe,
        )?;
        Ok(())
    }

    /// `GET …/secrets` (2.14+).
    pub fn list_secrets(&self, id: &str) -> Result<Vec<Value>, ApiError> {
        let v = self.get(&format!("{}/secrets", client_path(id)))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `POST …/secrets` (2.14+): adds a secret, valid until `expires_at` (RFC 3339) when given,
    /// else forever. Sent exactly once.
    pub fn add_secret(&self, id: &str, expires_at: Option<&str>) -> Result<MintedSecret, ApiError> {
        let body = expires_at.map(|t| json!({ "expiresAt": t }));
        self.mint(&format!("{}/secrets", client_path(id)), body)
    }

    /// A minting POST (sent exactly once: a retry could mint twice) and the secret it returns;
    /// `id`, `prefix` and `expiresAt` exist only in the 2.14 answer.
    fn mint(&self, path: &str, body: Option<Value>) -> Result<MintedSecret, ApiError> {
        let v = self
            .call("POST", path, body, Retry::Never)?
            .unwrap_or(Value::Null);
        let value = v.get("secret").and_then(Value::as_str).unwrap_or("");
        if value.is_empty() {
            return Err(ApiError::Decode {
                method: "POST".into(),
                path: format!("/api{path}"),
                detail: "no `secret` in the answer".into(),
            });
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(MintedSecret {
            value: Secret::new(value),
            id: s("id"),
            prefix: s("prefix"),
            expires_at: s("expiresAt"),
        })
    }

    /// `DELETE …/secrets/{secretId}` (2.14+); `false` when it was already gone.
    pub fn delete_secret(&self, id: &str, secret_id: &str) -> Result<bool, ApiError> {
        let path = format!("{}/secrets/{}", client_path(id), httpx::encode(secret_id));
        match self.call("DELETE", &path, None, Retry::Safe) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST …/secret` (≤2.13): replaces the one secret, the old one dies at once. Sent once.
    pub fn replace_secret_legacy(&self, id: &str) -> Result<MintedSecret, ApiError> {
        self.mint(&format!("{}/secret", client_path(id)), None)
    }

    /// `GET /api/api-keys`: the caller's own keys.
    pub fn list_api_keys(&self) -> Result<Vec<Value>, ApiError> {
        self.list_all("/api-keys", None, "createdAt")
    }

    /// `DELETE /api/api-keys/{id}`; `false` when unknown (404 `api_key_not_found`).
    pub fn revoke_api_key(&self, key_id: &str) -> Result<bool, ApiError> {
        match self.call(
            "DELETE",
            &format!("/api-keys/{}", httpx::encode(key_id)),
            None,
            Retry::Safe,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A time PocketID wrote in `field` of `v` (RFC 3339, any offset) as nanoseconds since the epoch
/// and as RFC 3339 UTC text; `None` when it is absent, not a string or unreadable.
pub(crate) fn time_field(v: &Value, field: &str) -> Option<(i128, String)> {
    let ns = httpx::time::parse_rfc3339_ns(v.get(field)?.as_str()?)?;
    Some((ns, httpx::time::format_rfc3339_ns(ns, false)))
}

fn client_path(id: &str) -> String {
    format!("/oidc/clients/{}", httpx::encode(id))
}

fn status_error(method: &str, path: &str, f: &ApiFailure) -> ApiError {
    let ApiFailure::Status(resp) = f else {
        unreachable!("only called with a status failure")
    };
    let parsed: Option<Value> = resp.json().ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_str)
        .map(httpx::safe_text)
        .unwrap_or_default();
    let code_note = if code.is_empty() {
        String::new()
    } else {
        format!(" ({code})")
    };
    let mut message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(httpx::safe_text)
        .unwrap_or_else(|| resp.safe_text());
    if let Some(fields) = parsed
        .as_ref()
        .and_then(|v| v.pointer("/details/fields"))
        .and_then(Value::as_array)
    {
        let list: Vec<String> = fields
            .iter()
            .filter_map(|f| {
                Some(format!(
                    "{} {}",
                    f.get("field")?.as_str()?,
                    f.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("is invalid")
                ))
            })
            .collect();
        if !list.is_empty() {
            message = format!("{message} [{}]", httpx::safe_text(&list.join("; ")));
        }
    }
    if message.is_empty() {
        message = "(empty body)".into();
    }
    let hint = match resp.status {
        401 => " (check `api_key` / POCKETID_API_KEY: the key is unknown, revoked or expired)",
        403 => " (the API key's owner must be an enabled admin user)",
        429 => " (rate limited and still limited after retries; try again later or raise the server's limit)",
        _ => "",
    };
    let attempts_note = if resp.attempts > 1 {
        format!(" after {} attempts", resp.attempts)
    } else {
        String::new()
    };
    ApiError::Status(Box::new(StatusError {
        method: method.into(),
        path: path.to_string(),
        status: resp.status,
        code,
        code_note,
        attempts_note,
        message,
        hint,
    }))
}
