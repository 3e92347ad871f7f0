//! OIDC clients and user groups: the stored records and their DTOs, create and full-replace
//! update with PocketID's validation, get, delete, allowed groups, and the lists.

use super::secrets::SecretRec;
use super::{
    client_not_found, decode_client_id, err, now_secs, paginate, validation, PocketId, State,
    Version,
};
use crate::emulator::time::rfc3339;
use crate::emulator::{Request, Response};
use serde_json::{json, Map, Value};

pub(super) struct ClientRec {
    /// The stored `OidcClientDto` fields except `credentials.secrets` and the groups.
    pub(super) fields: Map<String, Value>,
    pub(super) groups: Vec<String>,
    pub(super) secrets: Vec<SecretRec>,
    /// ≤2.13: the one secret.
    pub(super) legacy_hash: Option<String>,
    pub(super) created_seq: u64,
}

impl ClientRec {
    pub(super) fn id(&self) -> &str {
        self.fields.get("id").and_then(Value::as_str).unwrap_or("")
    }
    pub(super) fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

pub(super) struct GroupRec {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) friendly_name: String,
    pub(super) created_at: i64,
    pub(super) seq: u64,
}

impl PocketId {
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
}

impl State {
    pub(super) fn insert_client(&mut self, id: &str, body: &Map<String, Value>, client_type: &str) {
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
    pub(super) fn group_min_dto(&self, g: &GroupRec) -> Value {
        json!({
            "id": g.id, "friendlyName": g.friendly_name, "name": g.name, "customClaims": [],
            "userCount": 0, "ldapId": null, "createdAt": rfc3339(g.created_at),
        })
    }
    pub(super) fn client_dto(&self, c: &ClientRec, with_groups: bool) -> Value {
        let mut m = c.fields.clone();
        m.remove("createdAt");
        let mut creds = Map::new();
        // `json:"federatedIdentities,omitempty"` (dto/oidc_dto.go): absent when empty.
        if let Some(f) = c
            .fields
            .get("__federated")
            .filter(|f| f.as_array().is_some_and(|a| !a.is_empty()))
        {
            creds.insert("federatedIdentities".into(), f.clone());
        }
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

pub(super) fn list_clients(st: &mut State, req: &Request) -> Response {
    let search = req.q("search").unwrap_or("").to_string();
    let items: Vec<(Value, String, u64)> = st
        .clients
        .iter()
        .filter(|c| c.name().contains(&search))
        .map(|c| (st.client_dto(c, false), c.name().to_string(), c.created_seq))
        .collect();
    paginate(st, req, items)
}

pub(super) fn list_groups(st: &mut State, req: &Request) -> Response {
    let search = req.q("search").unwrap_or("").to_string();
    let items: Vec<(Value, String, u64)> = st
        .groups
        .iter()
        .filter(|g| g.name.contains(&search))
        .map(|g| (st.group_min_dto(g), g.name.clone(), g.seq))
        .collect();
    paginate(st, req, items)
}

/// Type and rule checks of `OidcClientCreateDto` / `OidcClientUpdateDto`.
fn validate_client(body: &Map<String, Value>, create: bool) -> std::result::Result<(), Response> {
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

pub(super) fn create(st: &mut State, body: Map<String, Value>) -> Response {
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
                // 2.13 made it a conflict; 2.12 answered 400 (pocketid-api §2).
                let status = if st.version.legacy() { 400 } else { 409 };
                return err(
                    status,
                    "client_id_already_exists",
                    "Client ID already in use",
                );
            }
            id.to_string()
        }
        None => st.uuid(),
    };
    st.insert_client(&id, &body, "standard");
    let c = st.clients.last().expect("just inserted");
    Response::json(201, st.client_dto(c, true))
}

pub(super) fn update(st: &mut State, id: &str, body: Map<String, Value>) -> Response {
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
    Response::json(200, st.client_dto(&st.clients[idx], true))
}

/// `GET /api/oidc/clients/{id}/meta`: public, what the login page shows.
pub(super) fn meta(st: &State, raw_id: &str) -> Response {
    let id = decode_client_id(raw_id);
    match st.clients.iter().find(|c| c.id() == id) {
        Some(c) => Response::json(
            200,
            json!({"id": c.id(), "name": c.name(), "hasLogo": false, "hasDarkLogo": false,
                   "launchURL": c.fields.get("launchURL"), "requiresReauthentication": c.fields.get("requiresReauthentication"),
                   "clientType": c.fields.get("clientType")}),
        ),
        None => client_not_found(),
    }
}

pub(super) fn get(st: &State, raw_id: &str) -> Response {
    let id = decode_client_id(raw_id);
    match st.clients.iter().find(|c| c.id() == id) {
        Some(c) => Response::json(200, st.client_dto(c, true)),
        None => client_not_found(),
    }
}

pub(super) fn delete(st: &mut State, raw_id: &str) -> Response {
    let id = decode_client_id(raw_id);
    let before = st.clients.len();
    st.clients.retain(|c| c.id() != id);
    // 2.12 deleted without looking first: 204 for an unknown id too.
    if st.clients.len() < before || st.version.legacy() {
        Response::empty(204)
    } else {
        client_not_found()
    }
}

/// `PUT /api/oidc/clients/{id}/allowed-user-groups`: unknown group ids are dropped.
pub(super) fn set_allowed_groups(
    st: &mut State,
    raw_id: &str,
    body: Option<&Map<String, Value>>,
) -> Response {
    let id = decode_client_id(raw_id);
    let ids = match body.and_then(|b| b.get("userGroupIds")) {
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
    Response::json(200, dto)
}
