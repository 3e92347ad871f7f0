//! The `pocketid_client` module: one OIDC client as code, and its secrets.

use crate::api::{connection_options, Connection, PocketIdApi, ServerVersion};
use ansible_module::{Context, Failure, Kind, Module, Opt, Outcome, Secret};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

mod apply;
mod info;
mod plan;
mod verify;

use plan::Plan;

pub struct PocketIdClient;

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(flatten)]
    pub conn: Connection,
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub callback_urls: Option<Vec<String>>,
    pub logout_callback_urls: Option<Vec<String>>,
    pub launch_url: Option<String>,
    pub public: Option<bool>,
    pub pkce: Option<bool>,
    pub requires_reauthentication: Option<bool>,
    pub pushed_authorization_requests: Option<bool>,
    pub skip_consent: Option<bool>,
    pub access_token_duration: Option<i64>,
    pub refresh_token_duration: Option<i64>,
    pub allowed_groups: Option<Vec<String>>,
    pub state: State,
    pub secret: SecretPolicy,
    pub secret_id: Option<String>,
    pub retire_secrets: bool,
    /// Days a minted secret stays valid (2.14+): its `expiresAt`.
    pub secret_expires_days: Option<i64>,
    /// The secret value `retire_secrets` keeps (e.g. Vault's), found by its 4-character prefix.
    pub keep_secret: Option<Secret>,
    /// The secret `secret: verify` presents.
    pub client_secret: Option<Secret>,
}

/// Errors of this module's own logic (API errors convert from [`ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{count} PocketID clients are named {name:?} (ids: {ids}); names are not unique, so set `client_id` to the one to manage")]
    Ambiguous {
        name: String,
        count: usize,
        ids: String,
    },
    #[error("unknown PocketID user group(s): {0}; create them first (group names are exact and case-sensitive)")]
    UnknownGroups(String),
    #[error("client {0:?} is a CIMD client (its metadata document is the source of truth); PocketID ignores most fields on update, so it is not managed here")]
    Cimd(String),
    #[error("{0}")]
    Invalid(String),
    #[error("PocketID did not apply the allowed groups of client {id:?}: expected {expected}, it holds {actual}")]
    GroupsNotApplied {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("client {0:?} is public: PocketID creates no secrets for public clients (set `public: false` or `secret: keep`)")]
    PublicHasNoSecret(String),
    #[error("retire_secrets needs `secret_id` (the secret to keep) unless this run mints one: refusing to delete every secret")]
    RetireWithoutKeep,
    #[error("retire_secrets: secret {keep:?} is not a secret of client {id:?}; refusing to delete the others (check `secret_id`)")]
    RetireUnknownKeep { keep: String, id: String },
    #[error("retire_secrets: {count} secrets of client {id:?} may be the one `keep_secret` names (same 4-character prefix, or a migrated secret without a prefix); refusing to guess which one to keep: delete the unused ones in PocketID's admin panel (Applications, the client, Client secrets) and re-run")]
    KeepAmbiguous { count: usize, id: String },
    #[error("retire_secrets: no secret of client {id:?} has the prefix of `keep_secret`, so PocketID does not hold it (a login with it fails); refusing to delete the client's {count} secret(s) without minting a new one: run with `secret: rotate` (the rotation, or sso-doctor with fix, does)")]
    KeepNotHeld { count: usize, id: String },
    #[error("secret_expires_days needs PocketID 2.14 or later (client secrets with an expiry); {version} has only the legacy secret API, whose secret never expires: unset secret_expires_days (the catalog's homelab_sso_client_secret_grace_days) or upgrade PocketID")]
    ExpiryNeedsMultipleSecrets { version: String },
}

impl Module for PocketIdClient {
    const NAME: &'static str = "pocketid_client";
    const ABOUT: &'static str =
        "Ensure a PocketID OIDC client (fields, allowed groups, secrets) idempotently";
    type Params = Params;

    fn options() -> Vec<Opt> {
        let mut o = connection_options();
        o.extend([
            Opt::str("client_id").alias("id").help("custom client id, the client's identity (else `name` must match exactly one client)"),
            Opt::str("name").help("display name (required to create)"),
            Opt::str("description").help("description (max 150 characters)"),
            Opt::list("callback_urls", Kind::Str).help("redirect URIs, stored verbatim"),
            Opt::list("logout_callback_urls", Kind::Str).help("post-logout redirect URIs"),
            Opt::str("launch_url").help("launch URL shown on the user's dashboard; empty clears it"),
            Opt::bool("public").help("public client (no secret; PKCE forced on)"),
            Opt::bool("pkce").alias("pkce_enabled").help("require PKCE"),
            Opt::bool("requires_reauthentication").help("ask users to authenticate on every sign-in"),
            Opt::bool("pushed_authorization_requests").help("require PAR (PocketID 2.9+)"),
            Opt::bool("skip_consent").help("skip the consent screen (PocketID 2.10+)"),
            Opt::int("access_token_duration").range(0, 525_600).help("access token lifetime in minutes (0 = default 60)"),
            Opt::int("refresh_token_duration").range(0, 525_600).help("refresh token lifetime in minutes (0 = default 43200)"),
            Opt::list("allowed_groups", Kind::Str)
                .alias("allowed_user_groups")
                .help("user group names allowed to sign in; [] opens the client to everyone; unset leaves groups alone"),
            Opt::str("state")
                .choices(&["present", "absent", "info"])
                .default("present")
                .help("absent deletes the client; info changes nothing and reports its secrets (prefix, created, expires, which one is `client_secret`)"),
            Opt::str("secret")
                .choices(&["keep", "ensure", "rotate", "verify"])
                .default("ensure")
                .help("keep: never mint; ensure: mint when the client has no secret we know; rotate: mint a new one; verify: only check that PocketID accepts `client_secret`"),
            Opt::str("secret_id").help("id of the secret you track (2.14+): `ensure` mints when it is gone or expired; `retire_secrets` keeps it"),
            Opt::int("secret_expires_days")
                .range(1, 36_500)
                .help("a secret this run mints expires after this many days (its `expiresAt`; PocketID 2.14+, refused before); unset: it never expires"),
            Opt::bool("retire_secrets")
                .default(false)
                .help("delete every secret except `secret_id`, `keep_secret` or the one minted by this run (2.14+)"),
            Opt::str("keep_secret")
                .no_log()
                .help("with `retire_secrets`: the secret value to keep (e.g. Vault's), found by its 4-character prefix; the others are deleted before any mint (refused when two could be it)"),
            Opt::str("client_secret")
                .no_log()
                .help("with `secret: verify`: the secret to check at the token endpoint (changes nothing); with `state: info`: the secret to find among the client's, by its 4-character prefix"),
        ]);
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        run(p, ctx)
    }
}

/// Fields of the update DTO this module manages: (option, API field).
fn desired_fields(p: &Params) -> Vec<(&'static str, Value)> {
    let mut d: Vec<(&'static str, Value)> = Vec::new();
    if let Some(v) = &p.name {
        d.push(("name", json!(v)));
    }
    if let Some(v) = &p.description {
        d.push(("description", json!(v)));
    }
    if let Some(v) = &p.callback_urls {
        d.push(("callbackURLs", json!(v)));
    }
    if let Some(v) = &p.logout_callback_urls {
        d.push(("logoutCallbackURLs", json!(v)));
    }
    if let Some(v) = &p.launch_url {
        // PocketID rejects "" (url validator): null clears it.
        d.push((
            "launchURL",
            if v.is_empty() { Value::Null } else { json!(v) },
        ));
    }
    if let Some(v) = p.public {
        d.push(("isPublic", json!(v)));
    }
    if let Some(v) = p.pkce {
        d.push(("pkceEnabled", json!(v)));
    }
    if let Some(v) = p.requires_reauthentication {
        d.push(("requiresReauthentication", json!(v)));
    }
    if let Some(v) = p.pushed_authorization_requests {
        d.push(("requiresPushedAuthorizationRequests", json!(v)));
    }
    if let Some(v) = p.skip_consent {
        d.push(("skipConsent", json!(v)));
    }
    if let Some(v) = p.access_token_duration {
        d.push(("accessTokenDurationMinutes", json!(v)));
    }
    if let Some(v) = p.refresh_token_duration {
        d.push(("refreshTokenDurationMinutes", json!(v)));
    }
    d
}

/// A field's value as the server stores it (so our comparison matches what a GET returns).
fn effective(field: &str, v: Option<&Value>, obj: &Map<String, Value>) -> Value {
    match field {
        "callbackURLs" | "logoutCallbackURLs" => {
            // Stored verbatim; compared as sets (null == []), sent exactly.
            let set: BTreeSet<String> = v
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            json!(set)
        }
        "description" | "name" => json!(v.and_then(Value::as_str).unwrap_or("")),
        "launchURL" => v
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
            .unwrap_or(Value::Null),
        "accessTokenDurationMinutes" | "refreshTokenDurationMinutes" => {
            let default = if field == "accessTokenDurationMinutes" {
                60
            } else {
                43200
            };
            match v.and_then(Value::as_i64) {
                Some(n) if n > 0 => json!(n),
                _ => json!(default),
            }
        }
        "pkceEnabled" => {
            let public = obj
                .get("isPublic")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            json!(public || v.and_then(Value::as_bool).unwrap_or(false))
        }
        _ => json!(v.and_then(Value::as_bool).unwrap_or(false)),
    }
}

fn group_names(client: &Value) -> Vec<String> {
    let mut names: Vec<String> = client
        .get("allowedUserGroups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn group_ids(client: &Value) -> BTreeSet<String> {
    client
        .get("allowedUserGroups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("id")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The managed view of a client for the diff: field names and values, never a secret.
fn view(obj: &Map<String, Value>, fields: &[&str], groups: Option<Vec<String>>) -> Value {
    let mut m = Map::new();
    for f in fields {
        let v = obj.get(*f).cloned().unwrap_or(Value::Null);
        m.insert(f.to_string(), v);
    }
    if let Some(g) = groups {
        m.insert(
            "isGroupRestricted".into(),
            obj.get("isGroupRestricted")
                .cloned()
                .unwrap_or(json!(false)),
        );
        m.insert("allowedUserGroups".into(), json!(g));
    }
    Value::Object(m)
}

fn secrets_of(client: &Value) -> Vec<Value> {
    client
        .pointer("/credentials/secrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The complete object for a full-replace PUT: everything the GET returned (unknown fields pass
/// through) minus read-only parts, with the desired fields laid over it.
fn put_body(current: &Value, desired: &[(&'static str, Value)], restricted: Option<bool>) -> Value {
    let mut body = current.as_object().cloned().unwrap_or_default();
    for k in [
        "allowedUserGroups",
        "allowedUserGroupsCount",
        "pkceSupported",
        "createdAt",
    ] {
        body.remove(k);
    }
    if let Some(Value::Object(c)) = body.get_mut("credentials") {
        c.remove("secrets");
    }
    if body
        .get("launchURL")
        .is_some_and(|v| v.as_str() == Some(""))
    {
        body.insert("launchURL".into(), Value::Null);
    }
    for (k, v) in desired {
        body.insert(k.to_string(), v.clone());
    }
    if let Some(r) = restricted {
        body.insert("isGroupRestricted".into(), json!(r));
    }
    Value::Object(body)
}

/// The `state` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Present,
    Absent,
    /// Changes nothing: reports the client's secrets (prefixes, times, which one is
    /// `client_secret`).
    Info,
}

/// The `secret` option: when to mint a client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretPolicy {
    Keep,
    Ensure,
    Rotate,
    /// Changes nothing: asks the token endpoint whether it accepts `client_secret`.
    Verify,
}

/// Refuses a client that cannot be identified, before any request.
fn check_identity(p: &Params) -> Result<(), Failure> {
    if p.client_id.is_none() && p.name.is_none() {
        return Err(Failure::new(
            "one of `client_id` or `name` is required to identify the client",
        ));
    }
    if let Some(id) = &p.client_id {
        let ok = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && (2..=128).contains(&id.len());
        if !ok {
            return Err(Failure::new(format!(
                "client_id {id:?} is not a valid PocketID custom client id: use 2-128 characters of letters, digits, '.', '_' and '-'"
            )));
        }
        // `..` passes the character rule but is a path segment of `/api/oidc/clients/{id}`.
        httpx::check_segments("client_id", id).map_err(Failure::new)?;
    }
    if p.keep_secret.is_some() && (p.secret_id.is_some() || !p.retire_secrets) {
        return Err(Failure::new(
            "`keep_secret` names the secret `retire_secrets: true` keeps, instead of `secret_id`: give it with `retire_secrets: true` and without `secret_id`",
        ));
    }
    crate::api::check_retries(p.conn.server.retries)?;
    Ok(())
}

/// Check → read → plan → apply → report; check mode reports the plan without applying it.
fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    check_identity(&p)?;
    if p.state == State::Info {
        return info::run(p, ctx);
    }
    if p.secret == SecretPolicy::Verify || p.client_secret.is_some() {
        return verify::run(p, ctx);
    }
    let (api, version) = connect(&p)?;
    let existing = find_client(&api, &p)?;
    if p.state == State::Absent {
        return absent(&api, existing, ctx.check_mode);
    }
    let groups = resolve_groups(&api, p.allowed_groups.as_deref())?;
    let plan = Plan::new(&p, existing, groups, version)?;
    if ctx.check_mode {
        return plan.report_check(&p, ctx);
    }
    let done = plan.apply(&api, ctx)?;
    Ok(plan.report(done))
}

/// Connects and reads the server's version (`None` before 2.3.0).
fn connect(p: &Params) -> Result<(PocketIdApi, Option<ServerVersion>), Failure> {
    let api = PocketIdApi::new(&p.conn)?;
    let version = api.version()?;
    Ok((api, version))
}

/// The `id` of a client or secret object.
fn id_of(v: &Value) -> Option<String> {
    v.get("id")?.as_str().map(str::to_string)
}

/// A failure that keeps what was already done visible (`changed`, the client id).
fn fail(e: impl std::fmt::Display, changed: bool, client_id: Option<&str>) -> Failure {
    let mut f = Failure::new(e.to_string()).set("changed", changed);
    if let Some(id) = client_id {
        f = f.set("client_id", id.to_string());
    }
    f
}

/// The allowed groups asked for, resolved from names to ids.
struct WantedGroups {
    pub(super) ids: BTreeSet<String>,
    pub(super) names: Vec<String>,
    /// The client is restricted to groups (an empty list opens it to everyone).
    pub(super) restricted: bool,
}

/// Resolves group names before changing anything; unknown names are refused.
fn resolve_groups(
    api: &PocketIdApi,
    names: Option<&[String]>,
) -> Result<Option<WantedGroups>, Failure> {
    let Some(names) = names else {
        return Ok(None);
    };
    let all = api.list_groups()?;
    let mut resolved = Vec::new();
    let mut unknown = Vec::new();
    for n in names {
        match all
            .iter()
            .find(|g| g.get("name").and_then(Value::as_str) == Some(n.as_str()))
        {
            Some(g) => resolved.push((
                n.clone(),
                g.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )),
            None => unknown.push(n.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(ClientError::UnknownGroups(unknown.join(", ")).into());
    }
    resolved.sort();
    resolved.dedup();
    Ok(Some(WantedGroups {
        restricted: !resolved.is_empty(),
        ids: resolved.iter().map(|(_, id)| id.clone()).collect(),
        names: resolved.into_iter().map(|(n, _)| n).collect(),
    }))
}

/// Finds the client: custom id first, else an exact, unique name (CIMD clients excluded).
fn find_client(api: &PocketIdApi, p: &Params) -> Result<Option<Value>, Failure> {
    let existing: Option<Value> = match &p.client_id {
        Some(id) => api.get_client(id)?,
        None => {
            let name = p.name.as_deref().unwrap_or_default();
            let matches: Vec<Value> = api
                .list_clients(Some(name))?
                .into_iter()
                .filter(|c| c.get("name").and_then(Value::as_str) == Some(name))
                .filter(|c| c.get("clientType").and_then(Value::as_str) != Some("cimd"))
                .collect();
            match matches.len() {
                0 => None,
                1 => {
                    let id = matches[0]
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    api.get_client(&id)?
                }
                n => {
                    let ids: Vec<&str> = matches
                        .iter()
                        .filter_map(|c| c.get("id")?.as_str())
                        .collect();
                    return Err(ClientError::Ambiguous {
                        name: name.to_string(),
                        count: n,
                        ids: ids.join(", "),
                    }
                    .into());
                }
            }
        }
    };
    if let Some(c) = &existing {
        if c.get("clientType").and_then(Value::as_str) == Some("cimd") {
            return Err(ClientError::Cimd(
                c.get("id").and_then(Value::as_str).unwrap_or("").into(),
            )
            .into());
        }
    }
    Ok(existing)
}

/// `state: absent`: the plan is the client to delete, if there is one.
fn absent(
    api: &PocketIdApi,
    existing: Option<Value>,
    check_mode: bool,
) -> Result<Outcome, Failure> {
    let Some(c) = existing else {
        return Ok(Outcome::new(false)
            .msg("client already absent")
            .set("client_id", Value::Null));
    };
    let found = id_of(&c);
    let id = found.clone().unwrap_or_default();
    if !check_mode {
        api.delete_client(&id)
            .map_err(|e| fail(e, false, found.as_deref()))?;
    }
    let before = json!({"id": id, "name": c.get("name"), "state": "present"});
    Ok(Outcome::new(true)
        .msg(format!("client {id} deleted"))
        .set("client_id", id.clone())
        .diff(before, json!({"id": id, "state": "absent"})))
}
