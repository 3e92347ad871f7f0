//! The `pocketid_api_key` module: the runbook's "rotate the API key", minus the one step PocketID
//! reserves for a signed-in user (an API key cannot create API keys, contract §4). Given the new
//! key made in the admin panel, it verifies the key works and belongs to an enabled admin, and
//! revokes the owner's other keys (all but the new one, or listed ids/names).

use crate::api::{server_options, Connection, PocketIdApi, Server};
use ansible_module::{Context, Failure, Kind, Module, Opt, Outcome, Secret};
use serde::Deserialize;
use serde_json::{json, Value};

mod info;

pub struct PocketIdApiKey;

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(flatten)]
    pub server: Server,
    /// The key in use so far (optional): checked to belong to the same user.
    pub api_key: Option<Secret>,
    /// Unset: the module only reports `api_key`'s owner's keys and their expiry.
    pub new_api_key: Option<Secret>,
    pub new_api_key_name: Option<String>,
    pub revoke_others: bool,
    pub revoke_key_ids: Vec<String>,
    pub revoke_key_names: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the new API key belongs to {0:?}, which is not an admin: pocketid_client needs an admin's key")]
    NotAdmin(String),
    #[error("the new API key belongs to user {new:?} but the current key to {old:?}: create the new key as the same user")]
    OtherUser { new: String, old: String },
    #[error("{0}")]
    Usage(String),
    #[error("after revoking, the new API key no longer works: it was among the revoked keys ({0}); create another key in the admin panel")]
    RevokedSelf(String),
    #[error("new API key verified (admin {username}), but only {revoked} of {total} old key(s) were revoked{revoked_names}; PocketID refused the others, which still work: {failures}. Revoke them in PocketID's admin panel (or fix the cause and re-run: revoked keys are not listed again)")]
    PartialRevoke {
        username: String,
        revoked: usize,
        total: usize,
        /// ` (name [id], …)` of the revoked keys, or empty.
        revoked_names: String,
        failures: String,
    },
}

/// `name [id]` of a key entry: names and ids only, never a key.
fn key_label(k: &Value) -> String {
    format!(
        "{} [{}]",
        k["name"].as_str().unwrap_or_default(),
        k["id"].as_str().unwrap_or_default()
    )
}

fn key_list(keys: &[Value]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            keys.iter().map(key_label).collect::<Vec<_>>().join(", ")
        )
    }
}

impl Module for PocketIdApiKey {
    const NAME: &'static str = "pocketid_api_key";
    const ABOUT: &'static str =
        "Verify a new PocketID API key (works, admin) and revoke the owner's old keys";
    type Params = Params;

    fn options() -> Vec<Opt> {
        let mut o = server_options();
        o.insert(
            1,
            Opt::str("api_key")
                .env("POCKETID_API_KEY")
                .no_log()
                .help("the key in use so far (env POCKETID_API_KEY); if set, it must belong to the same user"),
        );
        o.extend([
            Opt::str("new_api_key")
                .no_log()
                .help("the new key, created by a signed-in admin in PocketID's admin panel; unset: only report the keys of `api_key`'s owner and their expiry, changing nothing"),
            Opt::str("new_api_key_name").help("the new key's name as created (must be unique among the owner's keys); needed by revoke_others"),
            Opt::bool("revoke_others").default(false).help("revoke every other key of the owner"),
            Opt::list("revoke_key_ids", Kind::Str).default(json!([])).help("revoke these key ids"),
            Opt::list("revoke_key_names", Kind::Str)
                .default(json!([]))
                .help("revoke the owner's keys with these exact names"),
        ]);
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        run(p, ctx)
    }
}

fn conn(p: &Params, key: &Secret) -> Connection {
    Connection {
        server: p.server.clone(),
        api_key: key.clone(),
    }
}

fn str_field(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Check → read (verify the new key, list the keys) → plan → apply → report; check mode reports
/// the plan's revocations without applying them.
fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    crate::api::check_retries(p.server.retries)?;
    let Some(new_key) = p.new_api_key.clone() else {
        return info::run(&p);
    };
    let new = PocketIdApi::new(&conn(&p, &new_key))?;
    let owner = verify(&p, &new, ctx)?;
    let keys = new.list_api_keys()?;
    let plan = RevokePlan::new(&p, &keys, &owner.username, ctx)?;
    let revoked = if ctx.check_mode {
        Revoked(plan.targets.clone())
    } else {
        plan.apply(&new, &owner)?
    };
    Ok(revoked.report(owner, plan.keep_id))
}

/// The user the new key belongs to.
struct Owner {
    user_id: String,
    username: String,
}

/// Step 1: the new key works and belongs to an enabled admin (401/403 say otherwise), and the
/// key in use so far, if given, belongs to the same user.
fn verify(p: &Params, new: &PocketIdApi, ctx: &mut Context) -> Result<Owner, Failure> {
    let me = new
        .me()
        .map_err(|e| Failure::new(format!("the new API key does not work: {e}")))?;
    let user_id = str_field(&me, "id");
    let username = str_field(&me, "username");
    if !me.get("isAdmin").and_then(Value::as_bool).unwrap_or(false) {
        return Err(KeyError::NotAdmin(username).into());
    }
    // An admin route, to be sure the key really has admin rights.
    new.list_all("/user-groups", None, "name")
        .map_err(|e| Failure::new(format!("the new API key cannot use admin routes: {e}")))?;
    if let Some(old) = p
        .api_key
        .as_ref()
        .filter(|k| !k.is_empty() && Some(*k) != p.new_api_key.as_ref())
    {
        let old_api = PocketIdApi::new(&conn(p, old))?;
        match old_api.me() {
            Ok(old_me) => {
                let old_id = old_me.get("id").and_then(Value::as_str).unwrap_or("");
                if old_id != user_id {
                    return Err(KeyError::OtherUser {
                        new: username,
                        old: str_field(&old_me, "username"),
                    }
                    .into());
                }
            }
            Err(e) if e.status() == Some(401) => {
                ctx.warn(
                    "the current API key (api_key) is already invalid; nothing to compare it with",
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Owner { user_id, username })
}

/// Step 2: which keys to revoke (the owner's own keys only, as PocketID lists them), decided
/// before any is revoked.
struct RevokePlan {
    keep_id: Option<String>,
    /// `{id, name}` of each key to revoke.
    targets: Vec<Value>,
}

impl RevokePlan {
    fn new(
        p: &Params,
        keys: &[Value],
        username: &str,
        ctx: &mut Context,
    ) -> Result<RevokePlan, Failure> {
        let name_of = |k: &Value| str_field(k, "name");
        let id_of = |k: &Value| str_field(k, "id");
        let mut keep_id: Option<String> = None;
        if let Some(n) = &p.new_api_key_name {
            let named: Vec<&Value> = keys.iter().filter(|k| name_of(k) == *n).collect();
            match named.len() {
                1 => keep_id = Some(id_of(named[0])),
                0 => {
                    return Err(KeyError::Usage(format!(
                        "no API key of {username:?} is named {n:?}; give new_api_key_name exactly as created"
                    ))
                    .into())
                }
                c => {
                    return Err(KeyError::Usage(format!(
                        "{c} API keys of {username:?} are named {n:?} (names are not unique): rename the new key or revoke by id"
                    ))
                    .into())
                }
            }
        }
        if p.revoke_others && keep_id.is_none() {
            return Err(KeyError::Usage(
                "revoke_others needs new_api_key_name, so the new key can be told apart from the old ones".into(),
            )
            .into());
        }
        let mut targets = Vec::new();
        for k in keys {
            let id = id_of(k);
            let hit = (p.revoke_others && Some(&id) != keep_id.as_ref())
                || p.revoke_key_ids.contains(&id)
                || p.revoke_key_names.contains(&name_of(k));
            if hit {
                if Some(&id) == keep_id.as_ref() {
                    return Err(KeyError::Usage(format!(
                        "refusing to revoke key {id} ({}): it is the new key",
                        name_of(k)
                    ))
                    .into());
                }
                targets.push(json!({"id": id, "name": name_of(k)}));
            }
        }
        let unknown: Vec<&str> = p
            .revoke_key_ids
            .iter()
            .filter(|id| !keys.iter().any(|k| id_of(k) == **id))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            ctx.warn(format!(
                "API key id(s) {} are not keys of {username:?} (already revoked?)",
                unknown.join(", ")
            ));
        }
        Ok(RevokePlan { keep_id, targets })
    }

    /// Step 3: revokes with the new key, then makes sure the new key still works. Every target
    /// is tried even after a refusal (each revoke stands alone), so the result can say exactly
    /// which keys are gone and which are still valid.
    fn apply(&self, new: &PocketIdApi, owner: &Owner) -> Result<Revoked, Failure> {
        let mut revoked = Vec::new();
        let mut not_revoked: Vec<(Value, String)> = Vec::new();
        for entry in &self.targets {
            if let Err(e) = new.revoke_api_key(entry["id"].as_str().unwrap_or_default()) {
                not_revoked.push((entry.clone(), e.to_string()));
                continue;
            }
            revoked.push(entry.clone());
        }
        if !revoked.is_empty() {
            if let Err(e) = new.me() {
                if e.status() == Some(401) {
                    let names: Vec<String> = revoked
                        .iter()
                        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                        .collect();
                    return Err(
                        Failure::new(KeyError::RevokedSelf(names.join(", ")).to_string())
                            .set("changed", true)
                            .set("revoked", json!(revoked)),
                    );
                }
                return Err(Failure::new(e.to_string())
                    .set("changed", true)
                    .set("revoked", json!(revoked)));
            }
        }
        if !not_revoked.is_empty() {
            let err = KeyError::PartialRevoke {
                username: owner.username.clone(),
                revoked: revoked.len(),
                total: self.targets.len(),
                revoked_names: key_list(&revoked),
                failures: not_revoked
                    .iter()
                    .map(|(k, e)| format!("{} ({e})", key_label(k)))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            return Err(Failure::new(err.to_string())
                .set("changed", !revoked.is_empty())
                .set("revoked", json!(revoked))
                .set(
                    "not_revoked",
                    json!(not_revoked
                        .iter()
                        .map(|(k, _)| k.clone())
                        .collect::<Vec<_>>()),
                )
                .set("user_id", owner.user_id.clone())
                .set("kept_key_id", self.keep_id.clone()));
        }
        Ok(Revoked(revoked))
    }
}

/// `{id, name}` of each key revoked.
struct Revoked(Vec<Value>);

impl Revoked {
    fn report(self, owner: Owner, keep_id: Option<String>) -> Outcome {
        let Owner { user_id, username } = owner;
        let revoked = self.0;
        let changed = !revoked.is_empty();
        Outcome::new(changed)
            .msg(if changed {
                format!(
                    "new API key verified (admin {username}); {} old key(s) revoked",
                    revoked.len()
                )
            } else {
                format!("new API key verified (admin {username})")
            })
            .set("user_id", user_id)
            .set("username", username)
            .set("kept_key_id", keep_id)
            .set("revoked", json!(revoked))
            .diff(
                json!({"revoked": []}),
                json!({"revoked": revoked.iter().map(|r| r["id"].clone()).collect::<Vec<_>>()}),
            )
    }
}
