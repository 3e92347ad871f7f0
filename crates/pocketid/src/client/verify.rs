//! `secret: verify`: whether PocketID accepts a client secret, asked at its token endpoint with a
//! code it never issued. Client authentication comes first, so the answer tells `invalid_client`
//! (refused) from `invalid_grant` (accepted) and nothing is issued, minted or changed.

use super::{connect, find_client, id_of, Params, SecretPolicy, State};
use crate::api::SecretCheck;
use ansible_module::{Context, Failure, Outcome};
use serde_json::Value;

/// Field options a verify never applies (it changes nothing).
const FIELD_OPTIONS: [&str; 12] = [
    "description",
    "callback_urls",
    "logout_callback_urls",
    "launch_url",
    "public",
    "pkce",
    "requires_reauthentication",
    "pushed_authorization_requests",
    "skip_consent",
    "access_token_duration",
    "refresh_token_duration",
    "allowed_groups",
];

/// Refuses what cannot go with a verify, before any request.
fn check_options(p: &Params) -> Result<(), Failure> {
    if p.secret != SecretPolicy::Verify {
        return Err(Failure::new(
            "`client_secret` is only used with `secret: verify` (it checks a secret, it never sets one); PocketID generates secrets, use `secret: rotate` to mint one",
        ));
    }
    if p.client_secret.is_none() {
        return Err(Failure::new(
            "`secret: verify` needs `client_secret`, the secret to check",
        ));
    }
    if p.state == State::Absent || p.retire_secrets {
        return Err(Failure::new(
            "`secret: verify` changes nothing, so it cannot be combined with `state: absent` or `retire_secrets: true`",
        ));
    }
    Ok(())
}

/// The options set besides the client's identity: a verify does not apply them.
pub(super) fn ignored_fields(p: &Params) -> Vec<&'static str> {
    let set = [
        p.description.is_some(),
        p.callback_urls.is_some(),
        p.logout_callback_urls.is_some(),
        p.launch_url.is_some(),
        p.public.is_some(),
        p.pkce.is_some(),
        p.requires_reauthentication.is_some(),
        p.pushed_authorization_requests.is_some(),
        p.skip_consent.is_some(),
        p.access_token_duration.is_some(),
        p.refresh_token_duration.is_some(),
        p.allowed_groups.is_some(),
    ];
    FIELD_OPTIONS
        .iter()
        .zip(set)
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect()
}

/// A registered callback URL to send along: the first one that is not a pattern.
fn callback_of(client: &Value) -> Option<String> {
    client
        .get("callbackURLs")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(Value::as_str)
        .find(|u| !u.contains('*'))
        .map(str::to_string)
}

pub(super) fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    check_options(&p)?;
    let ignored = ignored_fields(&p);
    if !ignored.is_empty() {
        ctx.warn(format!(
            "secret: verify changes nothing, so these options were not applied: {}",
            ignored.join(", ")
        ));
    }
    let (api, version) = connect(&p)?;
    let existing = find_client(&api, &p)?;
    let found = existing.as_ref().and_then(id_of);
    let id = match (&existing, found, &p.client_id) {
        (Some(_), Some(found), _) => found,
        (None, _, Some(id)) => id.clone(),
        _ => {
            return Err(Failure::new(format!(
                "no PocketID client is named {:?}, so there is no client id to check the secret for; set `client_id`",
                p.name.as_deref().unwrap_or_default()
            )))
        }
    };
    if let Some(c) = &existing {
        if c.get("isPublic").and_then(Value::as_bool) == Some(true) {
            return Err(Failure::new(format!(
                "client {id:?} is public: PocketID does not authenticate public clients, so it would take any secret and there is nothing to verify"
            )));
        }
    }
    let callback = existing.as_ref().and_then(callback_of);
    let secret = p.client_secret.as_ref().expect("checked by check_options");
    let check = api
        .check_client_secret(&id, secret, callback.as_deref())
        .map_err(|e| Failure::new(e.to_string()).set("client_id", id.clone()))?;
    let accepted = check == SecretCheck::Accepted;
    let msg = match (accepted, existing.is_some()) {
        (true, _) => format!("PocketID accepts the given secret for client {id}"),
        (false, true) => format!(
            "PocketID refuses the given secret for client {id} (invalid_client): it is wrong, retired or expired; deploy a current secret or mint one (secret: rotate)"
        ),
        (false, false) => format!(
            "client {id} does not exist in PocketID, so every secret is refused (invalid_client)"
        ),
    };
    let mut client_out = existing.clone().unwrap_or(Value::Null);
    if let Some(o) = client_out.as_object_mut() {
        o.remove("allowedUserGroupsCount");
    }
    Ok(Outcome::new(false)
        .msg(msg)
        .set("client_id", id)
        .set("client_exists", existing.is_some())
        .set("client", client_out)
        .set("secret_accepted", accepted)
        .set(
            "secret_check",
            if accepted { "accepted" } else { "refused" },
        )
        .set("server_version", version.map(|v| v.to_string()))
        .set("created", false)
        .set("secret_minted", false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn callback_skips_patterns() {
        let c = json!({"callbackURLs": ["https://*.example.org/cb", "https://a.example.org/cb"]});
        assert_eq!(callback_of(&c).as_deref(), Some("https://a.example.org/cb"));
        assert_eq!(callback_of(&json!({"callbackURLs": null})), None);
    }
}
