//! A PocketID emulator faithful to `contracts/pocketid-api.md`: v2.14 behaviour, and a v2.13 mode
//! with the legacy replace-the-secret API.
//!
//! It serves the admin REST API the project uses on a free loopback port from one `tiny_http`
//! thread: `X-API-Key` auth (401/403 bodies), `/api/version/current`, `/api/users/me`, OIDC
//! clients (list with pagination clamping and no order without `sort`, get, create with a custom
//! id, full-replace PUT, delete), allowed user groups, user groups, client secrets (2.14 additive
//! `/secrets` with the cap of 20 and the public-client refusal; 2.13 `/secret` replace), API keys
//! (list, revoke, 403 on create with an API key), Content-Type checks, error bodies of the 2.13+
//! shape and a token-bucket rate limit with `Retry-After`. Access recovery (users search, one-time
//! login codes, the admin login-code e-mail into an outbox, the audit log, the container CLI) is
//! in `pocketid/access.rs`.
//!
//! Test hooks: seed clients and groups, make API keys as the admin panel would, inject a one-shot
//! 500 on the next secret POST or a burst of 429s, refuse the revocation of a key, make paginated
//! lists hostile (endless, slow or oversized pages), read the request log (method and path only,
//! never a header value), and ask whether a client secret would be accepted by the token endpoint.

use crate::{LabError, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod access;
pub use access::Mail;

/// Which PocketID release to behave like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 2.13: legacy `POST …/secret` replaces the one secret; no `/secrets` routes.
    V2_13,
    /// 2.14: additive `/secrets`, `/secret` is gone (404).
    V2_14,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2_13 => "2.13.0",
            Version::V2_14 => "2.14.0",
        }
    }
    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "2.13" | "2.13.0" => Some(Version::V2_13),
            "2.14" | "2.14.0" => Some(Version::V2_14),
            _ => None,
        }
    }
}

/// The `api` rate-limit policy: a token bucket per server (all test callers share 127.0.0.1).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct PocketIdOptions {
    /// `"2.14.0"` or `"2.13.0"`.
    pub version: String,
    /// `None` is `DISABLE_RATE_LIMITING=true`; PocketID's default is 100 req/s, burst 300.
    pub rate_limit: Option<RateLimit>,
}

impl Default for PocketIdOptions {
    fn default() -> Self {
        PocketIdOptions {
            version: "2.14.0".into(),
            rate_limit: Some(RateLimit {
                per_second: 100.0,
                burst: 300,
            }),
        }
    }
}

impl PocketIdOptions {
    pub fn version(v: &str) -> Self {
        PocketIdOptions {
            version: v.into(),
            ..Default::default()
        }
    }
}

/// Hostile answers to paginated lists (the `hostile_lists` test hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileLists {
    /// Every page is full of new items and `totalPages` is always one more than the page asked:
    /// the list never ends.
    EndlessPages,
    /// The real items, but `totalPages` claims 100 pages and every answer is delayed this long.
    SlowPages(Duration),
    /// Every page holds this many new items, whatever `pagination[limit]` asked for.
    OversizedPages(usize),
}

/// An API key made by a test "in the admin panel".
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub token: String,
}

/// One logged request: method and path (query included), never a header or body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
}

struct User {
    id: String,
    username: String,
    is_admin: bool,
    disabled: bool,
}

struct KeyRec {
    id: String,
    name: String,
    description: Option<String>,
    user_id: String,
    hash: String,
    expires_at: i64,
    last_used_at: Option<i64>,
    created_at: i64,
}

struct SecretRec {
    id: String,
    prefix: String,
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
}

impl SecretRec {
    fn active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
    fn dto(&self, now: i64) -> Value {
        json!({
            "id": self.id, "prefix": self.prefix, "createdAt": rfc3339(self.created_at),
            "expiresAt": self.expires_at.map(rfc3339), "isActive": self.active(now),
        })
    }
}

struct ClientRec {
    /// The stored `OidcClientDto` fields except `credentials.secrets` and the groups.
    fields: Map<String, Value>,
    groups: Vec<String>,
    secrets: Vec<SecretRec>,
    /// ≤2.13: the one secret.
    legacy_hash: Option<String>,
    created_seq: u64,
}

impl ClientRec {
    fn id(&self) -> &str {
        self.fields.get("id").and_then(Value::as_str).unwrap_or("")
    }
    fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

struct GroupRec {
    id: String,
    name: String,
    friendly_name: String,
    created_at: i64,
    seq: u64,
}

struct State {
    version: Version,
    rate: Option<RateLimit>,
    tokens: f64,
    last_refill: Instant,
    users: Vec<User>,
    keys: Vec<KeyRec>,
    clients: Vec<ClientRec>,
    groups: Vec<GroupRec>,
    log: Vec<LoggedRequest>,
    fail_next_secret_post: bool,
    throttle_next: u32,
    /// API key ids whose revocation answers 403 (a test hook).
    refused_revokes: Vec<String>,
    /// Hostile list answers (a test hook).
    hostile_lists: Option<HostileLists>,
    seq: u64,
    rng: u64,
    access: access::AccessState,
}

/// The running emulator; stopped on drop.
pub struct PocketId {
    url: String,
    version: Version,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    admin: ApiKey,
    non_admin: ApiKey,
}

impl std::fmt::Debug for PocketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketId").field("url", &self.url).finish()
    }
}

const ADMIN_USER: &str = "u-admin";
const PLAIN_USER: &str = "u-user";
const DISABLED_ADMIN: &str = "u-disabled";

impl PocketId {
    /// Starts the emulator on a free 127.0.0.1 port with an admin user (and its first API key),
    /// a non-admin user (with a key) and a disabled admin.
    pub fn start(opts: PocketIdOptions) -> Result<PocketId> {
        let version = Version::parse(&opts.version).ok_or_else(|| {
            LabError::msg(format!(
                "PocketID emulator: unsupported version {:?} (use \"2.14.0\" or \"2.13.0\")",
                opts.version
            ))
        })?;
        let server = crate::http::loopback_server()
            .map_err(|e| LabError::msg(format!("PocketID emulator: cannot bind 127.0.0.1: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| LabError::msg("PocketID emulator: no TCP address"))?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        let mut st = State {
            version,
            rate: opts.rate_limit,
            tokens: opts.rate_limit.map(|r| r.burst as f64).unwrap_or(0.0),
            last_refill: Instant::now(),
            users: vec![
                User {
                    id: ADMIN_USER.into(),
                    username: "admin".into(),
                    is_admin: true,
                    disabled: false,
                },
                User {
                    id: PLAIN_USER.into(),
                    username: "user".into(),
                    is_admin: false,
                    disabled: false,
                },
                User {
                    id: DISABLED_ADMIN.into(),
                    username: "disabled-admin".into(),
                    is_admin: true,
                    disabled: true,
                },
            ],
            keys: Vec::new(),
            clients: Vec::new(),
            groups: Vec::new(),
            log: Vec::new(),
            fail_next_secret_post: false,
            throttle_next: 0,
            refused_revokes: Vec::new(),
            hostile_lists: None,
            seq: 0,
            rng: seed,
            access: access::AccessState::new(format!("http://127.0.0.1:{port}")),
        };
        let admin = st.add_key(ADMIN_USER, "automation", 365 * 86400);
        let non_admin = st.add_key(PLAIN_USER, "user key", 365 * 86400);
        let state = Arc::new(Mutex::new(st));
        let server = Arc::new(server);
        let thread = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("pocketid-emulator".into())
                .spawn(move || serve(&server, &state))
                .map_err(|e| {
                    LabError::msg(format!("PocketID emulator: cannot start thread: {e}"))
                })?
        };
        Ok(PocketId {
            url: format!("http://127.0.0.1:{port}"),
            version,
            state,
            server,
            thread: Some(thread),
            admin,
            non_admin,
        })
    }

    /// `http://127.0.0.1:<port>` (the API is under `/api`).
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn version(&self) -> Version {
        self.version
    }
    /// The token of the admin user's first API key.
    pub fn admin_key(&self) -> &str {
        &self.admin.token
    }
    pub fn admin_key_id(&self) -> &str {
        &self.admin.id
    }
    /// A key of a user without `isAdmin`.
    pub fn non_admin_key(&self) -> &str {
        &self.non_admin.token
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new key for the admin user, as the admin panel would make it (the token is shown once).
    pub fn add_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(ADMIN_USER, name, 365 * 86400)
    }
    /// A key for the non-admin user.
    pub fn add_user_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(PLAIN_USER, name, 365 * 86400)
    }
    /// A key of an admin whose account is disabled.
    pub fn add_disabled_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(DISABLED_ADMIN, name, 365 * 86400)
    }
    /// An admin key that expired a minute ago.
    pub fn add_expired_admin_api_key(&self, name: &str) -> ApiKey {
        self.st().add_key(ADMIN_USER, name, -60)
    }
    /// Whether a token would authenticate (exists and not expired).
    pub fn api_key_valid(&self, token: &str) -> bool {
        let h = sha256_hex(token);
        let now = now_secs();
        self.st()
            .keys
            .iter()
            .any(|k| k.hash == h && k.expires_at > now)
    }
    /// Ids of the admin user's keys.
    pub fn admin_key_ids(&self) -> Vec<String> {
        self.st()
            .keys
            .iter()
            .filter(|k| k.user_id == ADMIN_USER)
            .map(|k| k.id.clone())
            .collect()
    }

    /// Creates `n` clients named `seed-client-<i>` (server UUIDs, no secrets).
    pub fn seed_clients(&self, n: usize) {
        let mut st = self.st();
        for i in 0..n {
            let id = st.uuid();
            let mut body = Map::new();
            body.insert("name".into(), json!(format!("seed-client-{i}")));
            body.insert(
                "callbackURLs".into(),
                json!([format!("https://app{i}.example.org/callback")]),
            );
            st.insert_client(&id, &body, "standard");
        }
    }
    /// Creates a client from a create body (the UI's way: no validation shortcuts needed by tests).
    pub fn seed_client(&self, id: Option<&str>, body: Value) -> String {
        let mut st = self.st();
        let id = id.map(str::to_string).unwrap_or_else(|| st.uuid());
        let body = body.as_object().cloned().unwrap_or_default();
        st.insert_client(&id, &body, "standard");
        id
    }
    /// A CIMD client (id is an https URL), as PocketID lists them.
    pub fn seed_cimd_client(&self, url_id: &str, name: &str) {
        let mut st = self.st();
        let mut body = Map::new();
        body.insert("name".into(), json!(name));
        body.insert(
            "callbackURLs".into(),
            json!(["https://cimd.example.org/cb"]),
        );
        st.insert_client(url_id, &body, "cimd");
    }
    /// Creates groups by name; returns their ids in the same order.
    pub fn seed_groups(&self, names: &[&str]) -> Vec<String> {
        let mut st = self.st();
        names
            .iter()
            .map(|n| {
                let id = st.uuid();
                st.seq += 1;
                let seq = st.seq;
                st.groups.push(GroupRec {
                    id: id.clone(),
                    name: n.to_string(),
                    friendly_name: n.to_string(),
                    created_at: now_secs(),
                    seq,
                });
                id
            })
            .collect()
    }
    /// The client as `GET /api/oidc/clients/{id}` returns it.
    pub fn client(&self, id: &str) -> Option<Value> {
        let st = self.st();
        st.clients
            .iter()
            .find(|c| c.id() == id)
            .map(|c| st.client_dto(c, true))
    }
    /// Ids of every client with this exact name.
    pub fn client_ids_named(&self, name: &str) -> Vec<String> {
        self.st()
            .clients
            .iter()
            .filter(|c| c.name() == name)
            .map(|c| c.id().to_string())
            .collect()
    }
    pub fn client_count(&self) -> usize {
        self.st().clients.len()
    }
    /// Sets one stored field of a client, as an admin would in the UI.
    pub fn set_client_field(&self, id: &str, field: &str, value: Value) {
        let mut st = self.st();
        if let Some(c) = st.clients.iter_mut().find(|c| c.id() == id) {
            c.fields.insert(field.to_string(), value);
        }
    }
    /// Allowed group ids of a client.
    pub fn client_group_ids(&self, id: &str) -> Vec<String> {
        self.st()
            .clients
            .iter()
            .find(|c| c.id() == id)
            .map(|c| c.groups.clone())
            .unwrap_or_default()
    }
    /// Secrets of a client as `GET …/secrets` lists them (2.14; empty on 2.13).
    pub fn client_secrets(&self, id: &str) -> Vec<Value> {
        let st = self.st();
        let now = now_secs();
        st.clients
            .iter()
            .find(|c| c.id() == id)
            .map(|c| c.secrets.iter().map(|s| s.dto(now)).collect())
            .unwrap_or_default()
    }
    /// Adds a secret as the admin panel would; returns `(secret_id, value)`.
    pub fn add_client_secret(&self, id: &str) -> Option<(String, String)> {
        let mut st = self.st();
        let sid = st.uuid();
        let value = random_alnum(32);
        let c = st.clients.iter_mut().find(|c| c.id() == id)?;
        c.secrets.push(SecretRec {
            id: sid.clone(),
            prefix: value[..4].to_string(),
            hash: sha256_hex(&value),
            created_at: now_secs(),
            expires_at: None,
        });
        c.legacy_hash = Some(sha256_hex(&value));
        Some((sid, value))
    }
    /// What the token endpoint would accept: any active secret (2.14) or the one secret (2.13).
    pub fn client_secret_valid(&self, client_id: &str, secret: &str) -> bool {
        let st = self.st();
        let Some(c) = st.clients.iter().find(|c| c.id() == client_id) else {
            return false;
        };
        let h = sha256_hex(secret);
        match st.version {
            Version::V2_14 => {
                let now = now_secs();
                c.secrets.iter().any(|s| s.hash == h && s.active(now))
            }
            Version::V2_13 => c.legacy_hash.as_deref() == Some(h.as_str()),
        }
    }
    /// The next secret POST (`/secrets` or `/secret`) answers 500 `internal_error` and mints
    /// nothing.
    pub fn fail_next_secret_post(&self) {
        self.st().fail_next_secret_post = true;
    }
    /// Revoking the API key `key_id` answers 403 `forbidden` (and revokes nothing) from now on.
    pub fn refuse_revoke(&self, key_id: &str) {
        self.st().refused_revokes.push(key_id.to_string());
    }
    /// Makes every paginated list (`/api/oidc/clients`, `/api/user-groups`, `/api/api-keys`)
    /// answer in a hostile way; `None` restores the real answers.
    pub fn hostile_lists(&self, mode: Option<HostileLists>) {
        self.st().hostile_lists = mode;
    }
    /// The next `n` requests answer 429 `rate_limited` with `Retry-After: 1`.
    pub fn throttle_next(&self, n: u32) {
        self.st().throttle_next = n;
    }
    /// Every request so far (method and path with query).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.st().log.clone()
    }
    pub fn clear_requests(&self) {
        self.st().log.clear();
    }
    /// Requests with this method whose path (without query) equals `path`.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.st()
            .log
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }
}

impl Drop for PocketId {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State helpers

impl State {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uuid(&mut self) -> String {
        let a = self.next_rand();
        let b = self.next_rand();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
    fn add_key(&mut self, user: &str, name: &str, ttl_secs: i64) -> ApiKey {
        let id = self.uuid();
        let token = random_alnum(32);
        let now = now_secs();
        self.keys.push(KeyRec {
            id: id.clone(),
            name: name.into(),
            description: None,
            user_id: user.into(),
            hash: sha256_hex(&token),
            expires_at: now + ttl_secs,
            last_used_at: None,
            created_at: now,
        });
        ApiKey { id, token }
    }
    fn insert_client(&mut self, id: &str, body: &Map<String, Value>, client_type: &str) {
        let mut fields = Map::new();
        fields.insert("id".into(), json!(id));
        fields.insert("clientType".into(), json!(client_type));
        fields.insert("hasLogo".into(), json!(false));
        fields.insert("hasDarkLogo".into(), json!(false));
        fields.insert("createdAt".into(), json!(rfc3339(now_secs())));
        apply_update(&mut fields, body, false);
        self.seq += 1;
        let seq = self.seq;
        self.clients.push(ClientRec {
            fields,
            groups: Vec::new(),
            secrets: Vec::new(),
            legacy_hash: None,
            created_seq: seq,
        });
    }
    fn group_min_dto(&self, g: &GroupRec) -> Value {
        json!({
            "id": g.id, "friendlyName": g.friendly_name, "name": g.name, "customClaims": [],
            "userCount": 0, "ldapId": null, "createdAt": rfc3339(g.created_at),
        })
    }
    fn client_dto(&self, c: &ClientRec, with_groups: bool) -> Value {
        let mut m = c.fields.clone();
        m.remove("createdAt");
        let mut creds = Map::new();
        creds.insert(
            "federatedIdentities".into(),
            c.fields
                .get("__federated")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
        );
        m.remove("__federated");
        if self.version == Version::V2_14 {
            let now = now_secs();
            let secrets: Vec<Value> = c.secrets.iter().map(|s| s.dto(now)).collect();
            creds.insert(
                "secrets".into(),
                if secrets.is_empty() {
                    Value::Null
                } else {
                    Value::Array(secrets)
                },
            );
        }
        m.insert("credentials".into(), Value::Object(creds));
        if with_groups {
            let groups: Vec<Value> = c
                .groups
                .iter()
                .filter_map(|gid| self.groups.iter().find(|g| &g.id == gid))
                .map(|g| self.group_min_dto(g))
                .collect();
            m.insert("allowedUserGroups".into(), Value::Array(groups));
        } else {
            m.insert("allowedUserGroupsCount".into(), json!(c.groups.len()));
        }
        Value::Object(m)
    }
}

/// Overlays an update body onto the stored fields as `updateOIDCClientModelFromDto` does: a full
/// replace (omitted bools false, omitted lists null, durations back to their defaults).
fn apply_update(fields: &mut Map<String, Value>, body: &Map<String, Value>, cimd: bool) {
    let b = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| match body.get(k) {
        Some(Value::Array(a)) => Value::Array(a.clone()),
        _ => Value::Null,
    };
    let dur = |k: &str, d: i64| match body.get(k).and_then(Value::as_i64) {
        Some(v) if v > 0 => v,
        _ => d,
    };
    if !cimd {
        fields.insert("name".into(), json!(s("name").unwrap_or_default()));
        fields.insert("callbackURLs".into(), list("callbackURLs"));
        fields.insert("logoutCallbackURLs".into(), list("logoutCallbackURLs"));
        let public = b("isPublic");
        fields.insert("isPublic".into(), json!(public));
        fields.insert("pkceEnabled".into(), json!(public || b("pkceEnabled")));
        fields.insert(
            "__federated".into(),
            body.get("credentials")
                .and_then(|c| c.get("federatedIdentities"))
                .filter(|v| v.is_array())
                .cloned()
                .unwrap_or(Value::Array(vec![])),
        );
    }
    fields.insert(
        "description".into(),
        json!(s("description").unwrap_or_default()),
    );
    fields.insert(
        "requiresReauthentication".into(),
        json!(b("requiresReauthentication")),
    );
    fields.insert(
        "requiresPushedAuthorizationRequests".into(),
        json!(b("requiresPushedAuthorizationRequests")),
    );
    fields.insert("skipConsent".into(), json!(b("skipConsent")));
    fields.insert(
        "launchURL".into(),
        s("launchURL").map(Value::String).unwrap_or(Value::Null),
    );
    fields.insert("isGroupRestricted".into(), json!(b("isGroupRestricted")));
    fields.insert(
        "accessTokenDurationMinutes".into(),
        json!(dur("accessTokenDurationMinutes", 60)),
    );
    fields.insert(
        "refreshTokenDurationMinutes".into(),
        json!(dur("refreshTokenDurationMinutes", 43200)),
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Req {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    api_key: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

struct Resp {
    status: u16,
    body: Option<Value>,
    text: Option<String>,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn json(status: u16, v: Value) -> Resp {
        Resp {
            status,
            body: Some(v),
            text: None,
            headers: Vec::new(),
        }
    }
    fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: None,
            text: None,
            headers: Vec::new(),
        }
    }
    fn not_found_route() -> Resp {
        Resp {
            status: 404,
            body: None,
            text: Some("404 page not found".into()),
            headers: Vec::new(),
        }
    }
}

fn serve(server: &tiny_http::Server, state: &Mutex<State>) {
    for mut rq in server.incoming_requests() {
        let url = rq.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), parse_query(q)),
            None => (url.clone(), Vec::new()),
        };
        let header = |name: &str| {
            rq.headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_string())
        };
        let api_key = header("x-api-key");
        let content_type = header("content-type");
        let mut body = Vec::new();
        let _ = rq.as_reader().take(4 * 1024 * 1024).read_to_end(&mut body);
        let req = Req {
            method: rq.method().as_str().to_uppercase(),
            path,
            query,
            api_key,
            content_type,
            body,
        };
        let resp = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.log.push(LoggedRequest {
                method: req.method.clone(),
                path: url.clone(),
            });
            let mut resp = handle(&mut st, &req);
            let rid = st.uuid();
            if let Some(Value::Object(m)) = resp.body.as_mut() {
                if m.contains_key("error") {
                    m.insert("request_id".into(), json!(rid));
                }
            }
            resp.headers.push(("X-Request-ID".into(), rid));
            resp
        };
        let (bytes, ctype) = match (&resp.body, &resp.text) {
            (Some(v), _) => (
                serde_json::to_vec(v).unwrap_or_default(),
                "application/json; charset=utf-8",
            ),
            (None, Some(t)) => (t.clone().into_bytes(), "text/plain"),
            (None, None) => (Vec::new(), ""),
        };
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !ctype.is_empty() {
            headers.push(("Content-Type", ctype));
        }
        headers.extend(resp.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        crate::http::respond(rq, resp.status, &headers, &bytes);
    }
}

fn err(status: u16, code: &str, msg: &str) -> Resp {
    Resp::json(status, json!({"error": msg, "code": code}))
}

fn validation(fields: Vec<(String, &str, String)>) -> Resp {
    let first = fields
        .first()
        .map(|(f, _, m)| format!("{} {}", capitalise(f), m))
        .unwrap_or_default();
    let details: Vec<Value> = fields
        .iter()
        .map(|(f, c, m)| json!({"field": f, "code": c, "message": m}))
        .collect();
    Resp::json(
        400,
        json!({"error": first, "code": "validation_failed", "details": {"fields": details}}),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn client_not_found() -> Resp {
    Resp::json(
        404,
        json!({"error": "OIDC client not found", "code": "not_found", "details": {"resource": "OIDC client"}}),
    )
}

enum Auth {
    Admin(String),
    User(String),
}

fn handle(st: &mut State, req: &Req) -> Resp {
    // Rate limit first, as the middleware does.
    if st.throttle_next > 0 {
        st.throttle_next -= 1;
        let mut r = err(429, "rate_limited", "Too many requests");
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if let Some(rate) = st.rate {
        let now = Instant::now();
        let elapsed = now.duration_since(st.last_refill).as_secs_f64();
        st.last_refill = now;
        st.tokens = (st.tokens + elapsed * rate.per_second).min(rate.burst as f64);
        if st.tokens < 1.0 {
            let wait = ((1.0 - st.tokens) / rate.per_second).ceil().max(1.0) as u64;
            let mut r = err(429, "rate_limited", "Too many requests");
            r.headers.push(("Retry-After".into(), wait.to_string()));
            return r;
        }
        st.tokens -= 1.0;
    }
    let segs: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    if segs.first() != Some(&"api") {
        return Resp::not_found_route();
    }
    let segs = &segs[1..];
    let m = req.method.as_str();
    // Public route.
    if m == "GET"
        && segs.len() == 4
        && segs[0] == "oidc"
        && segs[1] == "clients"
        && segs[3] == "meta"
    {
        let id = decode_client_id(segs[2]);
        return match st.clients.iter().find(|c| c.id() == id) {
            Some(c) => Resp::json(
                200,
                json!({"id": c.id(), "name": c.name(), "hasLogo": false, "hasDarkLogo": false,
                       "launchURL": c.fields.get("launchURL"), "requiresReauthentication": c.fields.get("requiresReauthentication"),
                       "clientType": c.fields.get("clientType")}),
            ),
            None => client_not_found(),
        };
    }
    if let Some(r) = access::route(st, req, segs) {
        return r;
    }
    if !route_exists(st.version, m, segs) {
        return Resp::not_found_route();
    }
    let auth = match authenticate(st, req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (user_id, is_admin) = match &auth {
        Auth::Admin(u) => (u.clone(), true),
        Auth::User(u) => (u.clone(), false),
    };
    match (m, segs) {
        ("GET", ["version", "current"]) => {
            return Resp::json(200, json!({"currentVersion": st.version.as_str()}))
        }
        ("GET", ["users", "me"]) => {
            let u = st.users.iter().find(|u| u.id == user_id);
            return Resp::json(
                200,
                json!({"id": user_id, "username": u.map(|u| u.username.clone()), "isAdmin": is_admin,
                       "disabled": false, "email": format!("{}@example.org", u.map(|u| u.username.as_str()).unwrap_or("x"))}),
            );
        }
        ("GET", ["api-keys"]) => return list_api_keys(st, req, &user_id),
        ("POST", ["api-keys"]) | ("POST", ["api-keys", _, "renew"]) => {
            return err(
                403,
                "api_key_auth_not_allowed",
                "API key authentication is not allowed for this endpoint",
            )
        }
        ("DELETE", ["api-keys", id]) => {
            if st.refused_revokes.iter().any(|r| r == id) {
                return err(
                    403,
                    "forbidden",
                    "You don't have permission to access this resource",
                );
            }
            let before = st.keys.len();
            st.keys.retain(|k| !(k.id == *id && k.user_id == user_id));
            return if st.keys.len() < before {
                Resp::empty(204)
            } else {
                err(404, "api_key_not_found", "API key not found")
            };
        }
        _ => {}
    }
    if !is_admin {
        return err(
            403,
            "forbidden",
            "You don't have permission to access this resource",
        );
    }
    // Bodies of JSON routes need the JSON content type (2.13+).
    let needs_json = matches!(m, "POST" | "PUT");
    let optional_body = m == "POST" && matches!(segs.last(), Some(&"secrets") | Some(&"secret"));
    let body: Option<Map<String, Value>> = if needs_json {
        if optional_body && req.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let ct_ok = req
                .content_type
                .as_deref()
                .map(|c| {
                    let base = c
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    base == "application/json" || base.ends_with("+json")
                })
                .unwrap_or(false);
            if !ct_ok {
                return err(
                    400,
                    "invalid_request_body",
                    "Content-Type must be application/json",
                );
            }
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(o)) => Some(o),
                _ => return err(400, "invalid_request_body", "Invalid request body"),
            }
        }
    } else {
        None
    };
    match (m, segs) {
        ("GET", ["user-groups"]) => list_groups(st, req),
        ("GET", ["oidc", "clients"]) => list_clients(st, req),
        ("POST", ["oidc", "clients"]) => create_client(st, body.unwrap_or_default()),
        ("GET", ["oidc", "clients", id]) => {
            let id = decode_client_id(id);
            match st.clients.iter().find(|c| c.id() == id) {
                Some(c) => Resp::json(200, st.client_dto(c, true)),
                None => client_not_found(),
            }
        }
        ("PUT", ["oidc", "clients", id]) => {
            update_client(st, &decode_client_id(id), body.unwrap_or_default())
        }
        ("DELETE", ["oidc", "clients", id]) => {
            let id = decode_client_id(id);
            let before = st.clients.len();
            st.clients.retain(|c| c.id() != id);
            if st.clients.len() < before {
                Resp::empty(204)
            } else {
                client_not_found()
            }
        }
        ("PUT", ["oidc", "clients", id, "allowed-user-groups"]) => {
            let id = decode_client_id(id);
            let ids = match body.as_ref().and_then(|b| b.get("userGroupIds")) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
                _ => {
                    return validation(vec![(
                        "userGroupIds".into(),
                        "required",
                        "is required".into(),
                    )]);
                }
            };
            let known: Vec<String> = ids
                .into_iter()
                .filter(|i| st.groups.iter().any(|g| &g.id == i))
                .collect();
            let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
                return client_not_found();
            };
            st.clients[idx].groups = known;
            let mut dto = st.client_dto(&st.clients[idx], true);
            if let Some(o) = dto.as_object_mut() {
                o.remove("allowedUserGroups");
            }
            Resp::json(200, dto)
        }
        ("GET", ["oidc", "clients", id, "secrets"]) => {
            let id = decode_client_id(id);
            let now = now_secs();
            match st.clients.iter().find(|c| c.id() == id) {
                Some(c) => Resp::json(
                    200,
                    Value::Array(c.secrets.iter().map(|s| s.dto(now)).collect()),
                ),
                None => client_not_found(),
            }
        }
        ("POST", ["oidc", "clients", id, "secrets"]) => {
            create_secret(st, &decode_client_id(id), body)
        }
        ("DELETE", ["oidc", "clients", id, "secrets", sid]) => {
            let id = decode_client_id(id);
            let Some(c) = st.clients.iter_mut().find(|c| c.id() == id) else {
                return client_not_found();
            };
            let before = c.secrets.len();
            c.secrets.retain(|s| s.id != *sid);
            if c.secrets.len() < before {
                Resp::empty(204)
            } else {
                Resp::json(
                    404,
                    json!({"error": "Client secret not found", "code": "not_found", "details": {"resource": "Client secret"}}),
                )
            }
        }
        ("POST", ["oidc", "clients", id, "secret"]) => {
            legacy_secret(st, &decode_client_id(id), body)
        }
        _ => Resp::not_found_route(),
    }
}

fn route_exists(v: Version, m: &str, segs: &[&str]) -> bool {
    matches!(
        (m, segs),
        ("GET", ["version", "current"])
            | ("GET", ["users", "me"])
            | ("GET", ["api-keys"])
            | ("POST", ["api-keys"])
            | ("POST", ["api-keys", _, "renew"])
            | ("DELETE", ["api-keys", _])
            | ("GET", ["user-groups"])
            | ("GET", ["oidc", "clients"])
            | ("POST", ["oidc", "clients"])
            | ("GET", ["oidc", "clients", _])
            | ("PUT", ["oidc", "clients", _])
            | ("DELETE", ["oidc", "clients", _])
            | ("PUT", ["oidc", "clients", _, "allowed-user-groups"])
    ) || match v {
        Version::V2_14 => matches!(
            (m, segs),
            ("GET", ["oidc", "clients", _, "secrets"])
                | ("POST", ["oidc", "clients", _, "secrets"])
                | ("DELETE", ["oidc", "clients", _, "secrets", _])
        ),
        Version::V2_13 => matches!((m, segs), ("POST", ["oidc", "clients", _, "secret"])),
    }
}

fn authenticate(st: &mut State, req: &Req) -> std::result::Result<Auth, Resp> {
    let unauth = || err(401, "not_signed_in", "You are not signed in");
    let Some(token) = req.api_key.as_deref().filter(|t| !t.is_empty()) else {
        return Err(unauth());
    };
    let h = sha256_hex(token);
    let now = now_secs();
    let Some(key) = st
        .keys
        .iter_mut()
        .find(|k| k.hash == h && k.expires_at > now)
    else {
        return Err(unauth());
    };
    key.last_used_at = Some(now);
    let uid = key.user_id.clone();
    let Some(user) = st.users.iter().find(|u| u.id == uid) else {
        return Err(unauth());
    };
    if user.disabled {
        return Err(err(403, "user_disabled", "User account is disabled"));
    }
    Ok(if user.is_admin {
        Auth::Admin(uid)
    } else {
        Auth::User(uid)
    })
}

fn decode_client_id(raw: &str) -> String {
    let raw = percent_decode(raw);
    if let Some(b64) = raw.strip_prefix('~') {
        use base64::Engine;
        if let Ok(bytes) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim_end_matches('='))
        {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    raw
}

/// Pagination as `utils/list_request_util.go`: page defaults to 1 and is clamped to the last page,
/// limit defaults to 20 and is clamped to 100, `totalPages` is 1 for an empty list.
fn paginate(st: &mut State, req: &Req, mut items: Vec<(Value, String, u64)>) -> Resp {
    match req.q("sort[column]") {
        Some("name") => items.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2))),
        Some(_) => items.sort_by_key(|a| a.2),
        None => {
            // No ORDER BY: the database returns rows in whatever order it likes.
            for i in (1..items.len()).rev() {
                let j = (st.next_rand() % (i as u64 + 1)) as usize;
                items.swap(i, j);
            }
        }
    }
    if req.q("sort[column]").is_some()
        && req
            .q("sort[direction]")
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"))
    {
        items.reverse();
    }
    let limit = match req
        .q("pagination[limit]")
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(l) if l > 100 => 100,
        Some(l) if l >= 1 => l as usize,
        _ => 20,
    };
    let total = items.len();
    let total_pages = total.div_ceil(limit).max(1);
    let page = match req
        .q("pagination[page]")
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(p) if p >= 1 => (p as usize).min(total_pages),
        _ => 1,
    };
    let asked_page = req
        .q("pagination[page]")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    let made_up = |page: usize, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("hostile-{page}-{i}"), "name": format!("hostile {page}-{i}")}))
            .collect()
    };
    match st.hostile_lists {
        Some(HostileLists::EndlessPages) => {
            return Resp::json(
                200,
                json!({"data": made_up(asked_page, limit), "pagination": {"totalPages": asked_page + 1,
                        "totalItems": (asked_page + 1) * limit, "currentPage": asked_page, "itemsPerPage": limit}}),
            )
        }
        Some(HostileLists::OversizedPages(n)) => {
            return Resp::json(
                200,
                json!({"data": made_up(asked_page, n), "pagination": {"totalPages": 1,
                        "totalItems": n, "currentPage": 1, "itemsPerPage": limit}}),
            )
        }
        Some(HostileLists::SlowPages(delay)) => std::thread::sleep(delay),
        None => {}
    }
    let claimed_pages = match st.hostile_lists {
        Some(HostileLists::SlowPages(_)) => 100,
        _ => total_pages,
    };
    let data: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|i| i.0)
        .collect();
    Resp::json(
        200,
        json!({"data": data, "pagination": {"totalPages": claimed_pages, "totalItems": total,
                "currentPage": page, "itemsPerPage": limit}}),
    )
}

fn list_clients(st: &mut State, req: &Req) -> Resp {
    let search = req.q("search").unwrap_or("").to_string();
    let items: Vec<(Value, String, u64)> = st
        .clients
        .iter()
        .filter(|c| c.name().contains(&search))
        .map(|c| (st.client_dto(c, false), c.name().to_string(), c.created_seq))
        .collect();
    paginate(st, req, items)
}

fn list_groups(st: &mut State, req: &Req) -> Resp {
    let search = req.q("search").unwrap_or("").to_string();
    let items: Vec<(Value, String, u64)> = st
        .groups
        .iter()
        .filter(|g| g.name.contains(&search))
        .map(|g| (st.group_min_dto(g), g.name.clone(), g.seq))
        .collect();
    paginate(st, req, items)
}

fn list_api_keys(st: &mut State, req: &Req, user: &str) -> Resp {
    let items: Vec<(Value, String, u64)> = st
        .keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.user_id == user)
        .map(|(i, k)| {
            (
                json!({"id": k.id, "name": k.name, "description": k.description,
                       "expiresAt": rfc3339(k.expires_at), "lastUsedAt": k.last_used_at.map(rfc3339),
                       "createdAt": rfc3339(k.created_at), "expirationEmailSent": false}),
                k.name.clone(),
                i as u64,
            )
        })
        .collect();
    paginate(st, req, items)
}

/// Type and rule checks of `OidcClientCreateDto` / `OidcClientUpdateDto`.
fn validate_client(body: &Map<String, Value>, create: bool) -> std::result::Result<(), Resp> {
    let bad_body = || err(400, "invalid_request_body", "Invalid request body");
    let mut fields: Vec<(String, &str, String)> = Vec::new();
    for k in ["name", "description", "launchURL", "id"] {
        match body.get(k) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            _ => return Err(bad_body()),
        }
    }
    for k in [
        "isPublic",
        "pkceEnabled",
        "requiresReauthentication",
        "requiresPushedAuthorizationRequests",
        "skipConsent",
        "isGroupRestricted",
        "hasLogo",
        "hasDarkLogo",
    ] {
        match body.get(k) {
            None | Some(Value::Null) | Some(Value::Bool(_)) => {}
            _ => return Err(bad_body()),
        }
    }
    if create {
        if let Some(id) = body
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let ok_chars = id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok_chars || id.len() < 2 || id.len() > 128 {
                fields.push((
                    "id".into(),
                    "client_id",
                    "must match ^[a-zA-Z0-9._-]+$ and be 2-128 characters".into(),
                ));
            }
        }
    }
    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        fields.push(("name".into(), "required", "is required".into()));
    } else if name.chars().count() > 50 {
        fields.push(("name".into(), "max", "must be at most 50 characters".into()));
    }
    if body
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| d.chars().count() > 150)
    {
        fields.push((
            "description".into(),
            "max",
            "must be at most 150 characters".into(),
        ));
    }
    for k in ["callbackURLs", "logoutCallbackURLs"] {
        match body.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for (i, u) in a.iter().enumerate() {
                    match u.as_str() {
                        Some(u) if valid_callback(u) => {}
                        Some(_) => fields.push((
                            format!("{k}[{i}]"),
                            "callback_url_pattern",
                            "must be a valid callback URL pattern".into(),
                        )),
                        None => return Err(bad_body()),
                    }
                }
            }
            _ => return Err(bad_body()),
        }
    }
    if let Some(u) = body.get("launchURL").and_then(Value::as_str) {
        if !valid_url(u) {
            fields.push(("launchURL".into(), "url", "must be a valid URL".into()));
        }
    }
    for k in ["accessTokenDurationMinutes", "refreshTokenDurationMinutes"] {
        match body.get(k) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                Some(0) => {}
                Some(n) if (1..=525_600).contains(&n) => {}
                Some(_) => fields.push((k.into(), "max", "must be between 1 and 525600".into())),
                None => return Err(bad_body()),
            },
        }
    }
    for k in ["logoUrl", "darkLogoUrl"] {
        if let Some(u) = body.get(k).and_then(Value::as_str) {
            // The emulator never downloads: private and loopback hosts are refused like PocketID's
            // SSRF guard, anything else fails the download.
            let _ = u;
            return Err(err(
                400,
                "logo_download_failed",
                "Failed to download the logo",
            ));
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(validation(fields))
    }
}

fn valid_callback(u: &str) -> bool {
    if u == "*" {
        return true;
    }
    let lower = u.to_ascii_lowercase();
    if lower.starts_with("javascript:") || lower.starts_with("data:") {
        return false;
    }
    match u.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.*".contains(c))
                && !rest.is_empty()
        }
        None => false,
    }
}

fn valid_url(u: &str) -> bool {
    match u.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
                && !rest.starts_with('/')
        }
        None => false,
    }
}

fn create_client(st: &mut State, body: Map<String, Value>) -> Resp {
    if let Err(r) = validate_client(&body, true) {
        return r;
    }
    let id = match body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => {
            if st.clients.iter().any(|c| c.id() == id) {
                return err(409, "client_id_already_exists", "Client ID already in use");
            }
            id.to_string()
        }
        None => st.uuid(),
    };
    st.insert_client(&id, &body, "standard");
    let c = st.clients.last().expect("just inserted");
    Resp::json(201, st.client_dto(c, true))
}

fn update_client(st: &mut State, id: &str, body: Map<String, Value>) -> Resp {
    let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
        return client_not_found();
    };
    if let Err(r) = validate_client(&body, false) {
        return r;
    }
    let c = &mut st.clients[idx];
    let cimd = c.fields.get("clientType").and_then(Value::as_str) == Some("cimd");
    apply_update(&mut c.fields, &body, cimd);
    if c.fields.get("isGroupRestricted") == Some(&Value::Bool(false)) {
        c.groups.clear();
    }
    Resp::json(200, st.client_dto(&st.clients[idx], true))
}

fn secret_from_body(
    body: &Option<Map<String, Value>>,
) -> std::result::Result<Option<String>, Resp> {
    match body.as_ref().and_then(|b| b.get("secret")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() < 16 || !s.chars().all(|c| c.is_ascii_graphic()) {
                Err(validation(vec![(
                    "secret".into(),
                    "min",
                    "must be at least 16 printable ASCII characters".into(),
                )]))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(_) => Err(err(400, "invalid_request_body", "Invalid request body")),
    }
}

fn create_secret(st: &mut State, id: &str, body: Option<Map<String, Value>>) -> Resp {
    let now = now_secs();
    let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
        return client_not_found();
    };
    let given = match secret_from_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let expires_at = match body.as_ref().and_then(|b| b.get("expiresAt")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) if t > now => Some(t),
            Some(_) => {
                return validation(vec![(
                    "expiresAt".into(),
                    "future",
                    "must be in the future".into(),
                )])
            }
            None => return err(400, "invalid_request_body", "Invalid request body"),
        },
        Some(_) => return err(400, "invalid_request_body", "Invalid request body"),
    };
    if st.clients[idx].fields.get("isPublic") == Some(&Value::Bool(true)) {
        return err(
            400,
            "bad_request",
            "Cannot create a secret for a public client",
        );
    }
    if st.clients[idx].secrets.len() >= 20 {
        return err(
            400,
            "bad_request",
            "A client cannot have more than 20 secrets",
        );
    }
    if std::mem::take(&mut st.fail_next_secret_post) {
        return err(500, "internal_error", "Something went wrong");
    }
    let sid = st.uuid();
    let value = given.unwrap_or_else(|| random_alnum(32));
    let rec = SecretRec {
        id: sid,
        prefix: value.chars().take(4).collect(),
        hash: sha256_hex(&value),
        created_at: now,
        expires_at,
    };
    let mut dto = rec.dto(now);
    dto["secret"] = json!(value);
    st.clients[idx].secrets.push(rec);
    Resp::json(201, dto)
}

fn legacy_secret(st: &mut State, id: &str, body: Option<Map<String, Value>>) -> Resp {
    let Some(idx) = st.clients.iter().position(|c| c.id() == id) else {
        return client_not_found();
    };
    let given = match secret_from_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if st.clients[idx].fields.get("isPublic") == Some(&Value::Bool(true)) {
        return err(
            400,
            "bad_request",
            "Cannot create a secret for a public client",
        );
    }
    if std::mem::take(&mut st.fail_next_secret_post) {
        return err(500, "internal_error", "Something went wrong");
    }
    let value = given.unwrap_or_else(|| random_alnum(32));
    st.clients[idx].legacy_hash = Some(sha256_hex(&value));
    Resp::json(200, json!({"secret": value}))
}

// ---------------------------------------------------------------------------------------------
// Small utilities

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).expect("OS random source");
        for b in buf {
            // 248 = 4 * 62: reject the tail to stay unbiased.
            if b < 248 && out.len() < n {
                out.push(CHARS[(b % 62) as usize] as char);
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// RFC 3339 (`Z` or `±hh:mm`, optional fraction) to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 20 {
        return None;
    }
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    if &s[4..5] != "-" || &s[7..8] != "-" || !matches!(&s[10..11], "T" | "t" | " ") {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(0..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let oh = rest.get(1..3)?.parse::<i64>().ok()?;
        let om = rest.get(4..6)?.parse::<i64>().ok()?;
        sign * (oh * 3600 + om * 60)
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset)
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        let t = 1_787_000_000;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-08-18T12:00:00+02:00"),
            parse_rfc3339("2026-08-18T10:00:00Z")
        );
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("pagination%5Bpage%5D=2&sort[column]=name&search=a%20b");
        assert_eq!(q[0], ("pagination[page]".into(), "2".into()));
        assert_eq!(q[1], ("sort[column]".into(), "name".into()));
        assert_eq!(q[2], ("search".into(), "a b".into()));
    }
}
