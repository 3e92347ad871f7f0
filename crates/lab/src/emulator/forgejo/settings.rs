//! A repository's Actions secrets and variables in the Forgejo emulator, as Forgejo serves them
//! (`routers/api/v1/repo/action.go`, `services/secrets`, the stored swagger spec):
//!
//! - `PUT /actions/secrets/{name}` `{"data"}` → 201 created, 204 updated; `GET /actions/secrets`
//!   lists names and creation times only (a secret is never read back); `DELETE` → 204 or 404.
//! - `GET /actions/variables` → names without values; `GET /actions/variables/{name}` →
//!   `ActionVariable` with `data`; `POST` → 204, 409 `variable name … already exists`; `PUT` →
//!   204, 404 when missing; `DELETE` → 204 or 404.
//! - Names are stored upper-case and must match `(?i)^[A-Z_][A-Z0-9_]*$` and not
//!   `(?i)^FORGEJO_|GITEA_|GITHUB_` (`services/secrets/validation.go`, for variables too; by the
//!   regex's precedence `GITEA_` and `GITHUB_` are refused anywhere in the name, `FORGEJO_` only at
//!   its start); a variable may not be called `CI`. 400 otherwise; CRLF in values becomes LF.

use super::releases::{Answer, Ctx};
use crate::emulator::time::rfc3339_at;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The repository's Actions settings. Secret values are kept so tests can check what was set.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub secrets: BTreeMap<String, (String, SystemTime)>,
    pub variables: BTreeMap<String, String>,
}

fn error(ctx: &Ctx, status: u16, message: &str) -> Answer {
    Answer::Json(
        status,
        json!({"message": message, "url": format!("{}/api/swagger", ctx.base_url)}),
    )
}

fn not_found(ctx: &Ctx, what: &str) -> Answer {
    Answer::Json(
        404,
        json!({"errors": [what], "message": "The target couldn't be found.",
               "url": format!("{}/api/swagger", ctx.base_url)}),
    )
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
    first_ok
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("FORGEJO_")
        && !name.contains("GITEA_")
        && !name.contains("GITHUB_")
}

/// The required string field `field` of a JSON body, line endings normalised.
fn field(body: &[u8], field: &str) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    doc.get(field)?
        .as_str()
        .map(|s| s.replace("\r\n", "\n").replace('\r', "\n"))
}

fn validation_error(name: &str) -> Answer {
    Answer::Json(
        422,
        json!([{"fieldNames": [name], "classification": "RequiredError", "message": "Required"}]),
    )
}

/// `rest`: the path after `/repos/{owner}/{repo}/actions`, starting with `secrets` or `variables`.
pub fn api(set: &mut Settings, ctx: &Ctx, method: &str, rest: &[&str], body: &[u8]) -> Answer {
    // Actions settings belong to repository admins; the lab's write token is one.
    if !ctx.can_write {
        return error(ctx, 403, "user should have a permission to write to a repo");
    }
    let upper = |n: &str| n.to_ascii_uppercase();
    match (method, rest) {
        ("GET", ["secrets"]) => Answer::Json(
            200,
            Value::Array(
                set.secrets
                    .iter()
                    .map(|(n, (_, t))| json!({"name": n, "created_at": rfc3339_at(*t)}))
                    .collect(),
            ),
        ),
        ("PUT", ["secrets", name]) => {
            let name = upper(name);
            if !valid_name(&name) {
                return error(ctx, 400, "invalid secret name");
            }
            let Some(data) = field(body, "data") else {
                return validation_error("Data");
            };
            match set.secrets.get_mut(&name) {
                Some(s) => {
                    s.0 = data;
                    Answer::Empty(204)
                }
                None => {
                    set.secrets.insert(name, (data, SystemTime::now()));
                    Answer::Empty(201)
                }
            }
        }
        ("DELETE", ["secrets", name]) => match set.secrets.remove(&upper(name)) {
            Some(_) => Answer::Empty(204),
            None => not_found(ctx, "secret not found"),
        },
        ("GET", ["variables"]) => Answer::Json(
            200,
            Value::Array(
                set.variables
                    .keys()
                    .map(|n| json!({"owner_id": 0, "repo_id": 7, "name": n}))
                    .collect(),
            ),
        ),
        ("GET", ["variables", name]) => match set.variables.get(&upper(name)) {
            Some(v) => Answer::Json(
                200,
                json!({"owner_id": 0, "repo_id": 7, "name": upper(name), "data": v}),
            ),
            None => not_found(ctx, "variable not found"),
        },
        ("POST", ["variables", name]) => {
            let name = upper(name);
            if set.variables.contains_key(&name) {
                return error(ctx, 409, &format!("variable name {name} already exists"));
            }
            if !valid_name(&name) || name == "CI" {
                return error(ctx, 400, "invalid secret name");
            }
            let Some(value) = field(body, "value") else {
                return validation_error("Value");
            };
            set.variables.insert(name, value);
            Answer::Empty(204)
        }
        ("PUT", ["variables", name]) => {
            let name = upper(name);
            if !set.variables.contains_key(&name) {
                return not_found(ctx, "variable not found");
            }
            let Some(value) = field(body, "value") else {
                return validation_error("Value");
            };
            // An optional `name` renames the variable.
            let new = field(body, "name")
                .filter(|n| !n.is_empty())
                .map(|n| upper(&n))
                .unwrap_or(name.clone());
            if !valid_name(&new) || new == "CI" {
                return error(ctx, 400, "invalid secret name");
            }
            set.variables.remove(&name);
            set.variables.insert(new, value);
            Answer::Empty(204)
        }
        ("DELETE", ["variables", name]) => match set.variables.remove(&upper(name)) {
            Some(_) => Answer::Empty(204),
            None => not_found(ctx, "variable not found"),
        },
        _ => not_found(ctx, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("VAULT_ROLE_ID"));
        assert!(valid_name("_X1"));
        assert!(!valid_name("1X"));
        assert!(!valid_name("GITHUB_TOKEN"));
        assert!(!valid_name("FORGEJO_X"));
        assert!(!valid_name("A-B"));
        assert!(!valid_name("MY_GITHUB_TOKEN"));
        assert!(valid_name("DEPLOY_FORGEJO_URL"));
    }
}
