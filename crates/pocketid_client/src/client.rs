//! The `pocketid_client` module: one OIDC client as code, and its secrets.

use crate::api::{
    connection_options, ApiError, Connection, MintedSecret, PocketIdApi, ServerVersion,
};
use ansible_module::{Context, Failure, Kind, Module, Opt, Outcome};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

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
    pub state: String,
    pub secret: String,
    pub secret_id: Option<String>,
    pub retire_secrets: bool,
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
                .choices(&["keep", "ensure", "rotate"])
                .default("ensure")
                .help("keep: never mint; ensure: mint when the client has no secret we know; rotate: mint a new one"),
            Opt::str("secret_id").help("id of the secret you track (2.14+): `ensure` mints when it is gone or expired; `retire_secrets` keeps it"),
            Opt::bool("retire_secrets")
                .default(false)
                .help("delete every secret except `secret_id` (or the one minted by this run) (2.14+)"),
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

impl Run<'_> {
    /// A failure that keeps what was already done visible (`changed`, the client id).
    fn fail(&self, e: impl std::fmt::Display) -> Failure {
        let mut f = Failure::new(e.to_string()).set("changed", self.changed);
        if let Some(id) = &self.client_id {
            f = f.set("client_id", id.clone());
        }
        f
    }
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
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
    crate::api::check_retries(p.conn.retries)?;
    let api = PocketIdApi::new(&p.conn)?;
    let version = api.version()?;
    let multi = version.is_some_and(ServerVersion::has_multiple_secrets);
    let mut r = Run {
        api,
        ctx,
        changed: false,
        client_id: None,
    };

    // Find the client: custom id first, else an exact, unique name (CIMD clients excluded).
    let existing: Option<Value> = match &p.client_id {
        Some(id) => r.api.get_client(id)?,
        None => {
            let name = p.name.as_deref().unwrap_or_default();
            let matches: Vec<Value> = r
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
                    r.api.get_client(&id)?
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
        r.client_id = c.get("id").and_then(Value::as_str).map(str::to_string);
    }

    if p.state == "absent" {
        return absent(r, existing, version);
    }

    // Resolve group names before changing anything.
    let wanted_groups: Option<Vec<(String, String)>> = match &p.allowed_groups {
        None => None,
        Some(names) => {
            let all = r.api.list_groups()?;
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
            Some(resolved)
        }
    };
    let restricted = wanted_groups.as_ref().map(|g| !g.is_empty());
    let wanted_group_ids: Option<BTreeSet<String>> = wanted_groups
        .as_ref()
        .map(|g| g.iter().map(|(_, id)| id.clone()).collect());
    let wanted_group_names: Option<Vec<String>> = wanted_groups
        .as_ref()
        .map(|g| g.iter().map(|(n, _)| n.clone()).collect());

    let desired = desired_fields(&p);
    let fields: Vec<&str> = desired.iter().map(|(k, _)| *k).collect();
    let mut created = false;
    let before_view;
    let after_view;
    let mut current: Value;

    match existing {
        None => {
            if p.name.is_none() {
                return Err(ClientError::Invalid(format!(
                    "client {:?} does not exist and `name` is required to create it",
                    p.client_id.as_deref().unwrap_or_default()
                ))
                .into());
            }
            created = true;
            before_view = Value::Null;
            let mut body = put_body(&json!({}), &desired, restricted);
            if let Some(id) = &p.client_id {
                body["id"] = json!(id);
            }
            after_view = view(
                body.as_object().unwrap_or(&Map::new()),
                &fields,
                wanted_group_names.clone(),
            );
            if r.ctx.check_mode {
                r.changed = true;
                let minted = p.secret != "keep" && p.public != Some(true);
                return Ok(Outcome::new(true)
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
                    .diff(before_view, after_view));
            }
            current = r.api.create_client(body).map_err(|e| r.fail(e))?;
            r.changed = true;
            r.client_id = current
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Some(c) => {
            current = c;
            let obj = current.as_object().cloned().unwrap_or_default();
            // What the object would hold after the PUT (pkceEnabled depends on isPublic).
            let merged = put_body(&current, &desired, restricted);
            let merged_obj = merged.as_object().cloned().unwrap_or_default();
            let mut field_changed = desired.iter().any(|(k, v)| {
                effective(k, Some(v), &merged_obj) != effective(k, obj.get(*k), &obj)
            });
            if let Some(rs) = restricted {
                field_changed |= obj
                    .get("isGroupRestricted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    != rs;
            }
            let groups_changed = wanted_group_ids
                .as_ref()
                .is_some_and(|w| *w != group_ids(&current));
            let mut before_obj = obj.clone();
            let mut after_obj = merged_obj.clone();
            for f in &fields {
                before_obj.insert(f.to_string(), effective(f, obj.get(*f), &obj));
                after_obj.insert(f.to_string(), effective(f, merged_obj.get(*f), &merged_obj));
            }
            before_view = view(
                &before_obj,
                &fields,
                wanted_group_names.as_ref().map(|_| group_names(&current)),
            );
            after_view = view(&after_obj, &fields, wanted_group_names.clone());
            if field_changed || groups_changed {
                r.changed = true;
                if !r.ctx.check_mode {
                    let id = r.client_id.clone().unwrap_or_default();
                    if field_changed {
                        current = r.api.update_client(&id, merged).map_err(|e| r.fail(e))?;
                    }
                }
            }
        }
    }

    let id = r.client_id.clone().unwrap_or_default();
    // Groups: the restricted flag went with the client PUT/POST; now the set, then verify.
    if let Some(wanted) = &wanted_group_ids {
        if *wanted != group_ids(&current) && !r.ctx.check_mode {
            let ids: Vec<String> = wanted.iter().cloned().collect();
            r.api.set_allowed_groups(&id, &ids).map_err(|e| r.fail(e))?;
            r.changed = true;
            current = r
                .api
                .get_client(&id)
                .map_err(|e| r.fail(e))?
                .ok_or_else(|| {
                    r.fail(format!(
                        "client {id:?} disappeared while its groups were set"
                    ))
                })?;
            let actual = group_ids(&current);
            if actual != *wanted {
                return Err(r.fail(ClientError::GroupsNotApplied {
                    id: id.clone(),
                    expected: wanted_group_names.clone().unwrap_or_default().join(", "),
                    actual: group_names(&current).join(", "),
                }));
            }
        }
    }

    // Secrets.
    let is_public = current
        .get("isPublic")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || (r.ctx.check_mode && p.public == Some(true));
    let secrets = secrets_of(&current);
    let active_ids: Vec<String> = secrets
        .iter()
        .filter(|s| s.get("isActive").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|s| s.get("id")?.as_str().map(str::to_string))
        .collect();
    let want_mint = match p.secret.as_str() {
        "rotate" => true,
        "ensure" => {
            created
                || (multi
                    && (active_ids.is_empty()
                        || p.secret_id
                            .as_ref()
                            .is_some_and(|sid| !active_ids.contains(sid))))
        }
        _ => false,
    };
    if is_public && p.secret == "rotate" {
        return Err(r.fail(format!(
            "client {id:?} is public: PocketID creates no secrets for public clients (set `public: false` or `secret: keep`)"
        )));
    }
    let want_mint = want_mint && !is_public;
    let mut minted: Option<MintedSecret> = None;
    if want_mint {
        r.changed = true;
        if !r.ctx.check_mode {
            let res = if multi {
                r.api.add_secret(&id)
            } else {
                r.api.replace_secret_legacy(&id)
            };
            minted = Some(res.map_err(|e| r.fail(mint_error(e)))?);
        }
    }

    // Retire every secret except the kept one (2.14+).
    let mut retired: Vec<String> = Vec::new();
    if p.retire_secrets {
        if !multi {
            r.ctx.warn(format!(
                "retire_secrets does nothing on PocketID {}: the legacy API keeps a single secret, replaced by each rotation",
                version.map(|v| v.to_string()).unwrap_or_else(|| "< 2.3".into())
            ));
        } else {
            let keep = p
                .secret_id
                .clone()
                .or_else(|| minted.as_ref().and_then(|m| m.id.clone()));
            let Some(keep) = keep else {
                return Err(r.fail(
                    "retire_secrets needs `secret_id` (the secret to keep) unless this run mints one: refusing to delete every secret",
                ));
            };
            let all_ids: Vec<String> = secrets
                .iter()
                .filter_map(|s| s.get("id")?.as_str().map(str::to_string))
                .collect();
            let minted_now = minted.as_ref().and_then(|m| m.id.as_deref()) == Some(keep.as_str());
            if !(minted_now || all_ids.contains(&keep) || (r.ctx.check_mode && want_mint)) {
                return Err(r.fail(format!(
                    "retire_secrets: secret {keep:?} is not a secret of client {id:?}; refusing to delete the others (check `secret_id`)"
                )));
            }
            for sid in all_ids.into_iter().filter(|s| *s != keep) {
                r.changed = true;
                if !r.ctx.check_mode {
                    r.api.delete_secret(&id, &sid).map_err(|e| r.fail(e))?;
                }
                retired.push(sid);
            }
        }
    }

    if r.changed && !r.ctx.check_mode && (minted.is_some() || !retired.is_empty()) {
        if let Ok(Some(c)) = r.api.get_client(&id) {
            current = c;
        }
    }

    let mut after_view = after_view;
    if want_mint {
        after_view["secret"] = json!(if multi { "<added>" } else { "<replaced>" });
    }
    if !retired.is_empty() {
        after_view["retiredSecrets"] = json!(retired);
    }
    let mut client_out = current.clone();
    if let Some(o) = client_out.as_object_mut() {
        o.remove("allowedUserGroupsCount");
    }
    let verb = if created {
        "created"
    } else if r.changed {
        "updated"
    } else {
        "already as desired"
    };
    let mut out = Outcome::new(r.changed)
        .msg(format!(
            "client {id} {}{}{}",
            verb,
            if want_mint {
                if r.ctx.check_mode {
                    "; a secret would be minted"
                } else {
                    "; a secret was minted"
                }
            } else {
                ""
            },
            if retired.is_empty() {
                String::new()
            } else {
                format!("; {} old secret(s) retired", retired.len())
            }
        ))
        .set("client_id", id.clone())
        .set("created", created)
        .set("client", client_out)
        .set("secret_minted", want_mint)
        .set("retired_secret_ids", json!(retired))
        .set("secret_api", if multi { "secrets" } else { "legacy" })
        .set("server_version", version.map(|v| v.to_string()))
        .diff(before_view, after_view);
    if let Some(m) = minted {
        out = out
            .set("secret_id", m.id.clone())
            .set("secret_prefix", m.prefix.clone())
            .set("secret_expires_at", m.expires_at.clone())
            .secret("client_secret", m.value.expose());
    }
    Ok(out)
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
