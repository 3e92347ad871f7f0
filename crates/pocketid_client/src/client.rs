//! The `pocketid_client` module: one OIDC client as code, and its secrets.

use crate::api::{
    connection_options, ApiError, Connection, MintedSecret, PocketIdApi, ServerVersion,
};
use ansible_module::{Context, Failure, Kind, Module, Opt, Outcome, Secret};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

mod verify;

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
            Opt::str("state").choices(&["present", "absent"]).default("present"),
            Opt::str("secret")
                .choices(&["keep", "ensure", "rotate", "verify"])
                .default("ensure")
                .help("keep: never mint; ensure: mint when the client has no secret we know; rotate: mint a new one; verify: only check that PocketID accepts `client_secret`"),
            Opt::str("secret_id").help("id of the secret you track (2.14+): `ensure` mints when it is gone or expired; `retire_secrets` keeps it"),
            Opt::bool("retire_secrets")
                .default(false)
                .help("delete every secret except `secret_id` (or the one minted by this run) (2.14+)"),
            Opt::str("client_secret")
                .no_log()
                .help("with `secret: verify`: the secret to check at the token endpoint (changes nothing)"),
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

struct Run<'a> {
    api: PocketIdApi,
    ctx: &'a mut Context,
    changed: bool,
    client_id: Option<String>,
}

impl<'a> Run<'a> {
    /// Connects and reads the server's version (`None` before 2.3.0).
    fn start(
        p: &Params,
        ctx: &'a mut Context,
    ) -> Result<(Run<'a>, Option<ServerVersion>), Failure> {
        let api = PocketIdApi::new(&p.conn)?;
        let version = api.version()?;
        let r = Run {
            api,
            ctx,
            changed: false,
            client_id: None,
        };
        Ok((r, version))
    }

    /// A failure that keeps what was already done visible (`changed`, the client id).
    fn fail(&self, e: impl std::fmt::Display) -> Failure {
        let mut f = Failure::new(e.to_string()).set("changed", self.changed);
        if let Some(id) = &self.client_id {
            f = f.set("client_id", id.clone());
        }
        f
    }
}

/// The `state` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Present,
    Absent,
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
    crate::api::check_retries(p.conn.server.retries)?;
    Ok(())
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    check_identity(&p)?;
    if p.secret == SecretPolicy::Verify || p.client_secret.is_some() {
        return verify::run(p, ctx);
    }
    let (mut r, version) = Run::start(&p, ctx)?;
    let multi = version.is_some_and(ServerVersion::has_multiple_secrets);
    let existing = r.find_client(&p)?;
    if p.state == State::Absent {
        return absent(r, existing, version);
    }
    let groups = resolve_groups(&r.api, p.allowed_groups.as_deref())?;
    let plan = FieldPlan::new(&p, existing, groups)?;
    if plan.created && r.ctx.check_mode {
        return Ok(plan.report_check_create(&p));
    }
    let mut current = r.apply_fields(&plan)?;
    let id = r.client_id.clone().unwrap_or_default();
    r.apply_groups(&plan, &id, &mut current)?;

    let secrets = SecretPlan::new(&p, &current, plan.created, multi, r.ctx.check_mode);
    if secrets.is_public && p.secret == SecretPolicy::Rotate {
        return Err(r.fail(format!(
            "client {id:?} is public: PocketID creates no secrets for public clients (set `public: false` or `secret: keep`)"
        )));
    }
    let minted = r.mint(&secrets, &id, multi)?;
    let retired = r.retire(&p, &secrets, &id, multi, version, minted.as_ref())?;
    if r.changed && !r.ctx.check_mode && (minted.is_some() || !retired.is_empty()) {
        if let Ok(Some(c)) = r.api.get_client(&id) {
            current = c;
        }
    }
    Ok(Report {
        plan,
        id,
        current,
        mint: secrets.mint,
        minted,
        retired,
        multi,
        version,
    }
    .outcome(&r))
}

/// The allowed groups asked for, resolved from names to ids.
struct WantedGroups {
    ids: BTreeSet<String>,
    names: Vec<String>,
    /// The client is restricted to groups (an empty list opens it to everyone).
    restricted: bool,
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

/// The client's fields and groups: create or update, decided from the read alone.
struct FieldPlan {
    created: bool,
    /// The client as read (update), or `None` (create).
    existing: Option<Value>,
    /// The POST body (create) or the full-replace PUT body (update).
    body: Value,
    field_changed: bool,
    groups_changed: bool,
    groups: Option<WantedGroups>,
    before_view: Value,
    after_view: Value,
}

impl FieldPlan {
    fn new(
        p: &Params,
        existing: Option<Value>,
        groups: Option<WantedGroups>,
    ) -> Result<FieldPlan, Failure> {
        let desired = desired_fields(p);
        let fields: Vec<&str> = desired.iter().map(|(k, _)| *k).collect();
        let restricted = groups.as_ref().map(|g| g.restricted);
        let wanted_names = groups.as_ref().map(|g| g.names.clone());
        let Some(current) = existing else {
            if p.name.is_none() {
                return Err(ClientError::Invalid(format!(
                    "client {:?} does not exist and `name` is required to create it",
                    p.client_id.as_deref().unwrap_or_default()
                ))
                .into());
            }
            let mut body = put_body(&json!({}), &desired, restricted);
            if let Some(id) = &p.client_id {
                body["id"] = json!(id);
            }
            let after_view = view(
                body.as_object().unwrap_or(&Map::new()),
                &fields,
                wanted_names,
            );
            return Ok(FieldPlan {
                created: true,
                existing: None,
                body,
                field_changed: true,
                groups_changed: false,
                groups,
                before_view: Value::Null,
                after_view,
            });
        };
        let obj = current.as_object().cloned().unwrap_or_default();
        // What the object would hold after the PUT (pkceEnabled depends on isPublic).
        let merged = put_body(&current, &desired, restricted);
        let merged_obj = merged.as_object().cloned().unwrap_or_default();
        let mut field_changed = desired
            .iter()
            .any(|(k, v)| effective(k, Some(v), &merged_obj) != effective(k, obj.get(*k), &obj));
        if let Some(rs) = restricted {
            field_changed |= obj
                .get("isGroupRestricted")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                != rs;
        }
        let groups_changed = groups
            .as_ref()
            .is_some_and(|w| w.ids != group_ids(&current));
        let mut before_obj = obj.clone();
        let mut after_obj = merged_obj.clone();
        for f in &fields {
            before_obj.insert(f.to_string(), effective(f, obj.get(*f), &obj));
            after_obj.insert(f.to_string(), effective(f, merged_obj.get(*f), &merged_obj));
        }
        let before_view = view(
            &before_obj,
            &fields,
            wanted_names.as_ref().map(|_| group_names(&current)),
        );
        let after_view = view(&after_obj, &fields, wanted_names);
        Ok(FieldPlan {
            created: false,
            existing: Some(current),
            body: merged,
            field_changed,
            groups_changed,
            groups,
            before_view,
            after_view,
        })
    }

    /// Check mode for a client that does not exist yet.
    fn report_check_create(&self, p: &Params) -> Outcome {
        let minted = p.secret != SecretPolicy::Keep && p.public != Some(true);
        Outcome::new(true)
            .msg(format!(
                "client {} would be created",
                p.name.as_deref().unwrap_or_default()
            ))
            .set(
                "client_id",
                p.client_id
                    .clone()
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            )
            .set("created", true)
            .set("secret_minted", minted)
            .diff(self.before_view.clone(), self.after_view.clone())
    }
}

/// The client's secrets: whether to mint, decided from the client as it stands.
struct SecretPlan {
    mint: bool,
    is_public: bool,
    /// Every secret id the client has.
    all_ids: Vec<String>,
}

impl SecretPlan {
    fn new(p: &Params, current: &Value, created: bool, multi: bool, check: bool) -> SecretPlan {
        let is_public = current
            .get("isPublic")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || (check && p.public == Some(true));
        let secrets = secrets_of(current);
        let active_ids: Vec<String> = secrets
            .iter()
            .filter(|s| s.get("isActive").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(|s| s.get("id")?.as_str().map(str::to_string))
            .collect();
        let want_mint = match p.secret {
            SecretPolicy::Rotate => true,
            SecretPolicy::Ensure => {
                created
                    || (multi
                        && (active_ids.is_empty()
                            || p.secret_id
                                .as_ref()
                                .is_some_and(|sid| !active_ids.contains(sid))))
            }
            SecretPolicy::Keep | SecretPolicy::Verify => false,
        };
        SecretPlan {
            mint: want_mint && !is_public,
            is_public,
            all_ids: secrets
                .iter()
                .filter_map(|s| s.get("id")?.as_str().map(str::to_string))
                .collect(),
        }
    }
}

impl Run<'_> {
    /// Finds the client: custom id first, else an exact, unique name (CIMD clients excluded).
    fn find_client(&mut self, p: &Params) -> Result<Option<Value>, Failure> {
        let existing: Option<Value> = match &p.client_id {
            Some(id) => self.api.get_client(id)?,
            None => {
                let name = p.name.as_deref().unwrap_or_default();
                let matches: Vec<Value> = self
                    .api
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
                        self.api.get_client(&id)?
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
            self.client_id = c.get("id").and_then(Value::as_str).map(str::to_string);
        }
        Ok(existing)
    }

    /// Creates the client or updates its fields (the restricted flag goes with them); returns
    /// the client as it now stands.
    fn apply_fields(&mut self, plan: &FieldPlan) -> Result<Value, Failure> {
        let Some(existing) = &plan.existing else {
            let current = self
                .api
                .create_client(plan.body.clone())
                .map_err(|e| self.fail(e))?;
            self.changed = true;
            self.client_id = current
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string);
            return Ok(current);
        };
        let mut current = existing.clone();
        if plan.field_changed || plan.groups_changed {
            self.changed = true;
            if !self.ctx.check_mode && plan.field_changed {
                let id = self.client_id.clone().unwrap_or_default();
                current = self
                    .api
                    .update_client(&id, plan.body.clone())
                    .map_err(|e| self.fail(e))?;
            }
        }
        Ok(current)
    }

    /// Sets the allowed groups when they differ, then verifies that PocketID applied them.
    fn apply_groups(
        &mut self,
        plan: &FieldPlan,
        id: &str,
        current: &mut Value,
    ) -> Result<(), Failure> {
        let Some(wanted) = &plan.groups else {
            return Ok(());
        };
        if wanted.ids == group_ids(current) || self.ctx.check_mode {
            return Ok(());
        }
        let ids: Vec<String> = wanted.ids.iter().cloned().collect();
        self.api
            .set_allowed_groups(id, &ids)
            .map_err(|e| self.fail(e))?;
        self.changed = true;
        *current = self
            .api
            .get_client(id)
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| {
                self.fail(format!(
                    "client {id:?} disappeared while its groups were set"
                ))
            })?;
        if group_ids(current) != wanted.ids {
            return Err(self.fail(ClientError::GroupsNotApplied {
                id: id.to_string(),
                expected: wanted.names.join(", "),
                actual: group_names(current).join(", "),
            }));
        }
        Ok(())
    }

    /// Mints a secret when the plan says so: added (2.14+) or replaced (legacy).
    fn mint(
        &mut self,
        plan: &SecretPlan,
        id: &str,
        multi: bool,
    ) -> Result<Option<MintedSecret>, Failure> {
        if !plan.mint {
            return Ok(None);
        }
        self.changed = true;
        if self.ctx.check_mode {
            return Ok(None);
        }
        let res = if multi {
            self.api.add_secret(id)
        } else {
            self.api.replace_secret_legacy(id)
        };
        res.map(Some).map_err(|e| self.fail(mint_error(e)))
    }

    /// Retires every secret except the kept one (2.14+); returns the retired ids.
    fn retire(
        &mut self,
        p: &Params,
        plan: &SecretPlan,
        id: &str,
        multi: bool,
        version: Option<ServerVersion>,
        minted: Option<&MintedSecret>,
    ) -> Result<Vec<String>, Failure> {
        let mut retired: Vec<String> = Vec::new();
        if !p.retire_secrets {
            return Ok(retired);
        }
        if !multi {
            self.ctx.warn(format!(
                "retire_secrets does nothing on PocketID {}: the legacy API keeps a single secret, replaced by each rotation",
                version.map(|v| v.to_string()).unwrap_or_else(|| "< 2.3".into())
            ));
            return Ok(retired);
        }
        let keep = p
            .secret_id
            .clone()
            .or_else(|| minted.and_then(|m| m.id.clone()));
        let Some(keep) = keep else {
            return Err(self.fail(
                "retire_secrets needs `secret_id` (the secret to keep) unless this run mints one: refusing to delete every secret",
            ));
        };
        let minted_now = minted.and_then(|m| m.id.as_deref()) == Some(keep.as_str());
        if !(minted_now || plan.all_ids.contains(&keep) || (self.ctx.check_mode && plan.mint)) {
            return Err(self.fail(format!(
                "retire_secrets: secret {keep:?} is not a secret of client {id:?}; refusing to delete the others (check `secret_id`)"
            )));
        }
        for sid in plan.all_ids.iter().filter(|s| **s != keep) {
            self.changed = true;
            if !self.ctx.check_mode {
                self.api.delete_secret(id, sid).map_err(|e| self.fail(e))?;
            }
            retired.push(sid.clone());
        }
        Ok(retired)
    }
}

/// What the run did, as the result reports it.
struct Report {
    plan: FieldPlan,
    id: String,
    current: Value,
    mint: bool,
    minted: Option<MintedSecret>,
    retired: Vec<String>,
    multi: bool,
    version: Option<ServerVersion>,
}

impl Report {
    fn outcome(self, r: &Run<'_>) -> Outcome {
        let mut after_view = self.plan.after_view;
        if self.mint {
            after_view["secret"] = json!(if self.multi { "<added>" } else { "<replaced>" });
        }
        if !self.retired.is_empty() {
            after_view["retiredSecrets"] = json!(self.retired);
        }
        let mut client_out = self.current;
        if let Some(o) = client_out.as_object_mut() {
            o.remove("allowedUserGroupsCount");
        }
        let verb = if self.plan.created {
            "created"
        } else if r.changed {
            "updated"
        } else {
            "already as desired"
        };
        let minted_text = match (self.mint, r.ctx.check_mode) {
            (false, _) => "",
            (true, true) => "; a secret would be minted",
            (true, false) => "; a secret was minted",
        };
        let retired_text = if self.retired.is_empty() {
            String::new()
        } else {
            format!("; {} old secret(s) retired", self.retired.len())
        };
        let id = self.id;
        let mut out = Outcome::new(r.changed)
            .msg(format!("client {id} {verb}{minted_text}{retired_text}"))
            .set("client_id", id.clone())
            .set("created", self.plan.created)
            .set("client", client_out)
            .set("secret_minted", self.mint)
            .set("retired_secret_ids", json!(self.retired))
            .set("secret_api", if self.multi { "secrets" } else { "legacy" })
            .set("server_version", self.version.map(|v| v.to_string()))
            .diff(self.plan.before_view, after_view);
        if let Some(m) = self.minted {
            out = out
                .set("secret_id", m.id.clone())
                .set("secret_prefix", m.prefix.clone())
                .set("secret_expires_at", m.expires_at.clone())
                .secret("client_secret", m.value.expose());
        }
        out
    }
}

fn mint_error(e: ApiError) -> String {
    format!(
        "{e}. The secret request was sent once and not retried, because a repeat could mint extra secrets; check the client's secrets in PocketID and re-run (secret: ensure mints only when needed)"
    )
}

fn absent(
    mut r: Run<'_>,
    existing: Option<Value>,
    _version: Option<ServerVersion>,
) -> Result<Outcome, Failure> {
    let Some(c) = existing else {
        return Ok(Outcome::new(false)
            .msg("client already absent")
            .set("client_id", Value::Null));
    };
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !r.ctx.check_mode {
        r.api.delete_client(&id).map_err(|e| r.fail(e))?;
    }
    r.changed = true;
    let before = json!({"id": id, "name": c.get("name"), "state": "present"});
    Ok(Outcome::new(true)
        .msg(format!("client {id} deleted"))
        .set("client_id", id.clone())
        .diff(before, json!({"id": id, "state": "absent"})))
}
