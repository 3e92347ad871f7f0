//! A blocking KV v2 client on `httpx`: read (data + version), metadata, subkeys, full write with
//! `cas`, merge-patch, and version reads for rollback. Every failure is a [`VaultError`] whose
//! text says what failed, where and what to do — never a token or a value (remote bodies go
//! through `httpx::safe_text`, which masks every registered secret).

use ansible_module::secret::register_secret_json;
use ansible_module::Secret;
use httpx::{encode, safe_text, ApiFailure, Body, Client, HttpError, Response, Retry};
use serde_json::{json, Map, Value};

/// Errors of the KV v2 client and of authentication.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("Vault at {url} is sealed (HTTP 503 on {op}): unseal it (`bao operator unseal` / `vault operator unseal`) and re-run; nothing was written")]
    Sealed { url: String, op: String },
    #[error("permission denied (HTTP 403) for {op} `{api_path}`: it needs the `{capability}` capability on `{api_path}` in the token's policy{hint}")]
    PermissionDenied {
        op: String,
        api_path: String,
        capability: &'static str,
        hint: String,
        /// Vault does not accept the token at all (lookup-self fails too).
        token_refused: bool,
    },
    #[error("{path} changed since read (check-and-set expected version {expected}): another writer updated it and nothing was written; re-run to compare against the new version")]
    CasMismatch { path: String, expected: u64 },
    #[error("{path}: the mount requires check-and-set (`cas_required`) but `cas` is disabled: remove `cas: disabled`")]
    CasRequired { path: String },
    #[error("no KV v2 secrets engine is mounted at `{mount}/` on {url} (HTTP 404 no handler for route): check `mount` (for example `secret`) and the namespace")]
    NoMount { mount: String, url: String },
    #[error("{op} `{api_path}` failed with HTTP {status}: {body}{}", next_step(*status))]
    Api {
        op: String,
        api_path: String,
        status: u16,
        body: String,
    },
    #[error("{op} `{api_path}`: the answer is not the expected KV v2 JSON ({detail}); is `{mount}` a KV version 2 mount?")]
    Decode {
        op: String,
        api_path: String,
        mount: String,
        detail: String,
    },
    #[error("{method} login at `auth/{mount}` failed (HTTP {status}): {body}; check the credentials and the auth mount (`auth_mount`)")]
    Login {
        method: &'static str,
        mount: String,
        status: u16,
        body: String,
    },
    #[error("refusing to patch {path}: its latest version {version} is {state}, so there is no data to merge into and the new version would hold only the patched keys; {next}")]
    PatchOnDeleted {
        path: String,
        version: u64,
        state: &'static str,
        next: String,
    },
    #[error("{0}")]
    Usage(String),
}

impl VaultError {
    /// The refusal of a patch onto a deleted or destroyed latest version (`bao kv patch` refuses
    /// too: "patch only works on existing data"), with the way out for each case.
    pub fn patch_on_deleted(at: &KvPath, version: u64, destroyed: bool) -> Self {
        let (mount, path) = (at.mount(), at.path());
        let (state, next) = if destroyed {
            (
                "destroyed",
                "its data is gone for good: write the whole secret with `patch: false`, or roll back to an earlier live version with `rollback_to`".to_string(),
            )
        } else {
            (
                "deleted",
                format!(
                    "undelete it first (`bao kv undelete -mount={mount} -versions={version} {path}`) and re-run, or write the whole secret with `patch: false`"
                ),
            )
        };
        VaultError::PatchOnDeleted {
            path: at.to_string(),
            version,
            state,
            next,
        }
    }
}

/// A KV v2 version number given as an option. Versions start at 1; Vault reads `?version=0` (and
/// an absent version) as the latest, so 0 would silently mean "the latest" instead of failing.
pub fn version_option(
    option: &str,
    value: Option<i64>,
    unset: &str,
) -> Result<Option<u64>, VaultError> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 => Ok(Some(v as u64)),
        Some(v) => Err(VaultError::Usage(format!(
            "`{option}` must be a version number of 1 or more, got {v}: KV v2 versions start at 1, and Vault reads version 0 as the latest; {unset}"
        ))),
    }
}

/// A version just written: its number and the server's `created_time` for it (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version: u64,
    pub created_time: Option<String>,
}

/// The answer to a write of the secret's metadata (`custom_metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataWrite {
    Done,
    /// 403 (no `patch` capability for a PATCH) or 405: the caller may fall back to a
    /// read-modify-write.
    Unsupported,
    /// OpenBao's metadata check-and-set (`metadata_cas`) did not match (another writer changed
    /// the metadata since it was read), or the secret requires one and none was sent.
    Conflict,
    /// 404: the path has no metadata (any more).
    Missing,
}

/// The answer to a merge-patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patched {
    /// Written as this new version.
    Version(Written),
    /// The server cannot patch for this token (403 without the `patch` capability, or 405): the
    /// caller may fall back to a read-modify-write with CAS.
    Unsupported,
    /// 404 with an empty body: the path has no secret (any more).
    Missing,
    /// 404 with the version metadata: the latest version is deleted or destroyed.
    LatestDeleted { version: u64, destroyed: bool },
}

/// The latest (or a given) version of a secret as `GET data/P` reports it.
#[derive(Debug, Clone)]
pub enum ReadResult {
    /// Never written, metadata deleted, or (with `?version=`) an unknown or pruned version.
    Missing,
    /// The version exists but is soft-deleted or destroyed (data is gone).
    Deleted { version: u64, destroyed: bool },
    /// The data and its version metadata.
    Present {
        data: Map<String, Value>,
        version: u64,
        metadata: Value,
    },
}

/// A secret's place: its KV v2 mount and its path inside the mount, cleaned of outer slashes
/// once, here. `Display` is the form users write (`secret/homelab-sso`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPath {
    mount: String,
    path: String,
}

impl KvPath {
    pub fn new(mount: &str, path: &str) -> Self {
        KvPath {
            mount: mount.trim_matches('/').to_string(),
            path: path.trim_matches('/').to_string(),
        }
    }
    pub fn mount(&self) -> &str {
        &self.mount
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The API path of one endpoint kind (`secret/data/homelab-sso`), as policies name it.
    pub fn api(&self, kind: &str) -> String {
        format!("{}/{kind}/{}", self.mount, self.path)
    }
    /// The request path of one endpoint kind, each segment percent-encoded.
    fn url(&self, kind: &str) -> String {
        format!(
            "/v1/{}/{kind}/{}",
            encode_path(&self.mount),
            encode_path(&self.path)
        )
    }
}

impl std::fmt::Display for KvPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.mount, self.path)
    }
}

/// One KV v2 secret reached with one token.
#[derive(Debug)]
pub struct Kv {
    http: Client,
    token: Secret,
    namespace: Option<String>,
    at: KvPath,
    /// Keys whose values are identifiers, not secrets: read values of these are not masked.
    public_keys: Vec<String>,
    /// The AppRole role the token was issued for (the login answer's `auth.metadata.role_name`).
    role_name: Option<String>,
}

fn encode_path(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty())
        .map(encode)
        .collect::<Vec<_>>()
        .join("/")
}

impl Kv {
    pub fn new(http: Client, token: Secret, namespace: Option<String>, at: KvPath) -> Self {
        Kv {
            http,
            token,
            namespace,
            at,
            public_keys: Vec::new(),
            role_name: None,
        }
    }

    /// Records the AppRole role a login named (see [`LoggedIn`]).
    pub fn with_role_name(mut self, role_name: Option<String>) -> Self {
        self.role_name = role_name;
        self
    }

    pub fn role_name(&self) -> Option<&str> {
        self.role_name.as_deref()
    }

    /// A call to a non-KV endpoint (`auth/...`), relative to `/v1/`: the JSON body on 200, `None`
    /// on 204 or 404 (Vault's answers for an unknown secret_id), a typed error otherwise.
    /// Repeated like a read: the endpoints used here only look things up.
    pub fn lookup_json(
        &self,
        method: &str,
        api_path: &str,
        body: Option<Value>,
        op: &str,
        capability: &'static str,
    ) -> Result<Option<Value>, VaultError> {
        let body = body.map_or(Body::None, Body::Json);
        let resp = self.send(method, &format!("/v1/{api_path}"), body, None, Retry::Safe)?;
        match resp.status {
            200 => resp
                .json()
                .map(Some)
                .map_err(|e| self.decode_error(op, api_path, e.to_string())),
            204 | 404 => Ok(None),
            503 | 403 => Err(self
                .common_error(&resp, op, api_path, capability)
                .unwrap_or_else(|| self.api_error(&resp, op, api_path))),
            _ => Err(self.api_error(&resp, op, api_path)),
        }
    }

    /// Declares keys whose values are identifiers (an OIDC client id) rather than secrets.
    pub fn with_public_keys(mut self, keys: Vec<String>) -> Self {
        self.public_keys = keys;
        self
    }

    pub fn at(&self) -> &KvPath {
        &self.at
    }

    pub fn http(&self) -> &Client {
        &self.http
    }

    fn send(
        &self,
        method: &str,
        url_path: &str,
        body: Body<'_>,
        content_type: Option<&str>,
        retry: Retry,
    ) -> Result<Response, VaultError> {
        let mut headers: Vec<(&str, &str)> = vec![
            ("X-Vault-Token", self.token.expose()),
            ("X-Vault-Request", "true"),
        ];
        if let Some(ns) = &self.namespace {
            headers.push(("X-Vault-Namespace", ns));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        Ok(self.http.send(method, url_path, &headers, body, retry)?)
    }

    /// Maps the errors every endpoint shares (sealed, denied, missing mount); `None` if the
    /// answer is not one of them.
    fn common_error(
        &self,
        resp: &Response,
        op: &str,
        api_path: &str,
        capability: &'static str,
    ) -> Option<VaultError> {
        match resp.status {
            503 => Some(VaultError::Sealed {
                url: self.http.base_url().to_string(),
                op: op.to_string(),
            }),
            403 => {
                let token_refused = Self::token_refused(resp);
                Some(VaultError::PermissionDenied {
                    op: op.to_string(),
                    api_path: api_path.to_string(),
                    capability,
                    hint: if token_refused {
                        " (or the token itself was refused: it may be wrong, expired or revoked — check `token`/VAULT_TOKEN or the login)".into()
                    } else {
                        String::new()
                    },
                    token_refused,
                })
            }
            404 if resp.safe_text().contains("no handler for route") => Some(VaultError::NoMount {
                mount: self.at.mount().to_string(),
                url: self.http.base_url().to_string(),
            }),
            _ => None,
        }
    }

    /// Tells an ACL denial from a token Vault does not accept at all, by the body: an unknown,
    /// expired or revoked token gets exactly `{"errors":["permission denied"]}`, an ACL denial
    /// `1 error occurred:\n\t* permission denied\n\n` (verified on OpenBao 2.7.2; the same code
    /// paths as Vault). No extra request: `lookup-self` would also fail for valid tokens without
    /// the `default` policy.
    fn token_refused(resp: &Response) -> bool {
        resp.json::<Value>()
            .ok()
            .and_then(|v| v["errors"].as_array().cloned())
            .is_some_and(|e| {
                e.len() == 1 && e[0].as_str().map(str::trim) == Some("permission denied")
            })
    }

    fn api_error(&self, resp: &Response, op: &str, api_path: &str) -> VaultError {
        VaultError::Api {
            op: op.to_string(),
            api_path: api_path.to_string(),
            status: resp.status,
            body: resp.safe_text(),
        }
    }

    fn decode_error(&self, op: &str, api_path: &str, detail: impl Into<String>) -> VaultError {
        VaultError::Decode {
            op: op.to_string(),
            api_path: api_path.to_string(),
            mount: self.at.mount().to_string(),
            detail: detail.into(),
        }
    }

    /// `GET data/P[?version=V]`. Values read are registered with the masker.
    pub fn read(&self, version: Option<u64>) -> Result<ReadResult, VaultError> {
        if version == Some(0) {
            // `?version=0` is the latest version to Vault: never what a caller naming 0 meant.
            return Err(
                version_option("version", Some(0), "name an existing version").unwrap_err(),
            );
        }
        let api = self.at.api("data");
        let op = match version {
            Some(v) => format!("read (version {v}) of"),
            None => "read of".to_string(),
        };
        let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let resp = self.send(
            "GET",
            &format!("{}{q}", self.at.url("data")),
            Body::None,
            None,
            Retry::Safe,
        )?;
        if let Some(e) = self.common_error(&resp, &op, &api, "read") {
            return Err(e);
        }
        let body: Value = if resp.body.is_empty() {
            Value::Null
        } else {
            resp.json()
                .map_err(|e| self.decode_error(&op, &api, e.to_string()))?
        };
        match resp.status {
            200 | 404 => {
                let d = &body["data"];
                let meta = &d["metadata"];
                match (&d["data"], meta["version"].as_u64()) {
                    (Value::Object(data), Some(v)) => {
                        let secret_part: serde_json::Map<String, Value> = data
                            .iter()
                            .filter(|(k, _)| !self.public_keys.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        register_secret_json(&Value::Object(secret_part));
                        Ok(ReadResult::Present {
                            data: data.clone(),
                            version: v,
                            metadata: meta.clone(),
                        })
                    }
                    (Value::Null, Some(v)) => Ok(ReadResult::Deleted {
                        version: v,
                        destroyed: meta["destroyed"].as_bool().unwrap_or(false),
                    }),
                    // `{"errors":[]}`: never written / unknown version. A 404 with a
                    // message (e.g. `namespace not found`) is an error, not a missing secret.
                    _ if resp.status == 404
                        && body["errors"].as_array().is_none_or(|e| e.is_empty()) =>
                    {
                        Ok(ReadResult::Missing)
                    }
                    _ if resp.status == 404 => Err(self.api_error(&resp, &op, &api)),
                    _ => Err(self.decode_error(&op, &api, "no data.data/data.metadata.version")),
                }
            }
            _ => Err(self.api_error(&resp, &op, &api)),
        }
    }

    /// `GET metadata/P`: the `data` object, or `None` when the path has no metadata.
    pub fn metadata(&self) -> Result<Option<Value>, VaultError> {
        let body = self.get_json("metadata", "", "metadata read of")?;
        Ok(body.map(|v| v["data"].clone()))
    }

    /// `GET subkeys/P?depth=1`: the key names of the latest version, `None` when missing/deleted.
    pub fn subkeys(&self) -> Result<Option<Vec<String>>, VaultError> {
        let body = self.get_json("subkeys", "?depth=1", "key-name (subkeys) read of")?;
        Ok(body.and_then(|v| match &v["data"]["subkeys"] {
            Value::Object(m) => Some(m.keys().cloned().collect()),
            _ => None,
        }))
    }

    /// A read of `<kind>/P<query>`: the JSON body on 200, `None` on 404, a typed error otherwise.
    fn get_json(&self, kind: &str, query: &str, op: &str) -> Result<Option<Value>, VaultError> {
        let api = self.at.api(kind);
        let resp = self.send(
            "GET",
            &format!("{}{query}", self.at.url(kind)),
            Body::None,
            None,
            Retry::Safe,
        )?;
        if let Some(e) = self.common_error(&resp, op, &api, "read") {
            return Err(e);
        }
        match resp.status {
            200 => resp
                .json()
                .map(Some)
                .map_err(|e| self.decode_error(op, &api, e.to_string())),
            404 => Ok(None),
            _ => Err(self.api_error(&resp, op, &api)),
        }
    }

    fn write_result(
        &self,
        resp: Response,
        op: &str,
        api: &str,
        cas: Option<u64>,
        capability: &'static str,
    ) -> Result<Written, VaultError> {
        if let Some(e) = self.common_error(&resp, op, api, capability) {
            return Err(e);
        }
        let text = resp.safe_text();
        match resp.status {
            200 | 204 => {
                let v: Value = resp
                    .json()
                    .map_err(|e| self.decode_error(op, api, e.to_string()))?;
                let version = v["data"]["version"]
                    .as_u64()
                    .ok_or_else(|| self.decode_error(op, api, "no data.version in the answer"))?;
                Ok(Written {
                    version,
                    created_time: v["data"]["created_time"].as_str().map(str::to_string),
                })
            }
            400 if text.contains("check-and-set parameter did not match") => {
                Err(VaultError::CasMismatch {
                    path: self.at.to_string(),
                    expected: cas.unwrap_or(0),
                })
            }
            400 if text.contains("check-and-set parameter required") => {
                Err(VaultError::CasRequired {
                    path: self.at.to_string(),
                })
            }
            _ => Err(self.api_error(&resp, op, api)),
        }
    }

    /// Full write: `POST data/P {"data":…, "options":{"cas":N}}`; returns the new version. The
    /// stored map is exactly `data`. Sent once (never retried: a lost answer plus a retry would
    /// turn our own write into a CAS conflict).
    pub fn write(
        &self,
        data: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Written, VaultError> {
        let api = self.at.api("data");
        let mut body = json!({ "data": data });
        if let Some(c) = cas {
            body["options"] = json!({ "cas": c });
        }
        let resp = self.send(
            "POST",
            &self.at.url("data"),
            Body::Json(body),
            None,
            Retry::Never,
        )?;
        let cap = if cas == Some(0) { "create" } else { "update" };
        self.write_result(resp, "write to", &api, cas, cap)
    }

    /// Merge-patch: `PATCH data/P` (`application/merge-patch+json`, `null` deletes a key). Sent
    /// once. A 404 tells a missing path (empty body) from a deleted latest version (the version
    /// metadata), which a read-modify-write must not paper over.
    pub fn patch(
        &self,
        patch: &Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<Patched, VaultError> {
        let api = self.at.api("data");
        let mut body = json!({ "data": patch });
        if let Some(c) = cas {
            body["options"] = json!({ "cas": c });
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let resp = self.send(
            "PATCH",
            &self.at.url("data"),
            Body::Raw {
                content_type: "application/merge-patch+json",
                bytes,
            },
            Some("application/merge-patch+json"),
            Retry::Never,
        )?;
        match resp.status {
            403 | 405 => return Ok(Patched::Unsupported),
            404 if !resp.safe_text().contains("no handler for route") => {
                // Unlike a read, the PATCH's 404 carries the version metadata as `data` itself
                // (verified on OpenBao 2.7.2).
                let meta = resp
                    .json::<Value>()
                    .ok()
                    .map(|v| v["data"].clone())
                    .unwrap_or(Value::Null);
                return Ok(match meta["version"].as_u64() {
                    Some(version) => Patched::LatestDeleted {
                        version,
                        destroyed: meta["destroyed"].as_bool().unwrap_or(false),
                    },
                    None => Patched::Missing,
                });
            }
            _ => {}
        }
        self.write_result(resp, "patch of", &api, cas, "patch")
            .map(Patched::Version)
    }

    /// Writes `custom_metadata` entries: `PATCH metadata/P` (merge-patch, `null` removes an
    /// entry, other entries kept) when `patch`, else `POST metadata/P` with the whole map (it
    /// replaces `custom_metadata`; other metadata settings are kept). `metadata_cas` is OpenBao's
    /// check-and-set on the metadata's own version (`current_metadata_version`); HashiCorp Vault
    /// has none. Sent once.
    pub fn write_custom_metadata(
        &self,
        entries: &Map<String, Value>,
        patch: bool,
        metadata_cas: Option<u64>,
    ) -> Result<MetadataWrite, VaultError> {
        let api = self.at.api("metadata");
        let mut body = json!({ "custom_metadata": entries });
        if let Some(c) = metadata_cas {
            body["metadata_cas"] = json!(c);
        }
        let (method, op, capability, body, ct) = if patch {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let raw = Body::Raw {
                content_type: "application/merge-patch+json",
                bytes,
            };
            let ct = Some("application/merge-patch+json");
            ("PATCH", "metadata patch of", "patch", raw, ct)
        } else {
            (
                "POST",
                "metadata write to",
                "update",
                Body::Json(body),
                None,
            )
        };
        let resp = self.send(method, &self.at.url("metadata"), body, ct, Retry::Never)?;
        let text = resp.safe_text();
        match resp.status {
            200 | 204 => return Ok(MetadataWrite::Done),
            403 | 405 if patch => return Ok(MetadataWrite::Unsupported),
            // OpenBao: another writer came first, or the secret requires `metadata_cas`
            // (`metadata_cas_required`) and none was sent; either way: read, then retry with it.
            400 if text.contains("metadata check-and-set parameter does not match")
                || text.contains("metadata check-and-set parameter required") =>
            {
                return Ok(MetadataWrite::Conflict)
            }
            404 if !text.contains("no handler for route") => return Ok(MetadataWrite::Missing),
            _ => {}
        }
        Err(self
            .common_error(&resp, op, &api, capability)
            .unwrap_or_else(|| self.api_error(&resp, op, &api)))
    }
}

/// What a login returned: the client token (registered as a secret) and, for AppRole, the role.
pub struct LoggedIn {
    pub token: Secret,
    pub role_name: Option<String>,
}

/// Login to an auth method.
pub fn login(
    http: &Client,
    namespace: Option<&str>,
    method: &'static str,
    mount: &str,
    url_tail: &str,
    body: Value,
) -> Result<LoggedIn, VaultError> {
    let mut headers: Vec<(&str, &str)> = vec![("X-Vault-Request", "true")];
    if let Some(ns) = namespace {
        headers.push(("X-Vault-Namespace", ns));
    }
    let url = format!("/v1/auth/{}/login{}", encode_path(mount), url_tail);
    match http.json::<Value>("POST", &url, &headers, Body::Json(body), Retry::Never) {
        Ok(v) => v["auth"]["client_token"]
            .as_str()
            .map(|t| LoggedIn {
                token: Secret::new(t),
                role_name: v["auth"]["metadata"]["role_name"]
                    .as_str()
                    .map(str::to_string),
            })
            .ok_or_else(|| VaultError::Login {
                method,
                mount: mount.to_string(),
                status: 200,
                body: "the answer holds no auth.client_token".into(),
            }),
        Err(ApiFailure::Transport(e)) => Err(e.into()),
        Err(ApiFailure::Status(r)) if r.status == 503 => Err(VaultError::Sealed {
            url: http.base_url().to_string(),
            op: format!("{method} login"),
        }),
        Err(ApiFailure::Status(r)) => Err(VaultError::Login {
            method,
            mount: mount.to_string(),
            status: r.status,
            body: safe_text(&String::from_utf8_lossy(&r.body)),
        }),
    }
}

/// What to do about an unexpected HTTP status (sealed, 403 and CAS have their own errors).
fn next_step(status: u16) -> &'static str {
    match status {
        429 => ". Vault is rate-limiting this client (a rate-limit quota) even after the retries: wait, lower the rate of runs, or raise the quota; nothing was written by this request",
        500..=599 => ". Vault failed on its side: check its server log and health (`/v1/sys/health`), then re-run; a write either happened whole or not at all",
        400 => ". Vault refused the request as invalid: check the options (path, data, cas)",
        _ => "",
    }
}
