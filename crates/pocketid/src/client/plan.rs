//! The plan of a `pocketid_client` run, decided from the reads alone (no request is sent here):
//! whether the client is created or updated, its groups, whether a secret is minted, which
//! secrets are retired, and the guards' verdicts. Check mode reports it; `apply` performs it.

use super::{
    desired_fields, effective, group_ids, group_names, id_of, put_body, secrets_of, view,
    ClientError, Params, SecretPolicy, WantedGroups,
};
use crate::api::ServerVersion;
use ansible_module::{Failure, Outcome};
use serde_json::{json, Map, Value};

/// Everything a run would do.
pub(super) struct Plan {
    pub(super) fields: FieldPlan,
    pub(super) secrets: SecretPlan,
    /// PocketID 2.14+: secrets are added and retired; before, one secret is replaced.
    pub(super) multi: bool,
    pub(super) version: Option<ServerVersion>,
}

impl Plan {
    pub(super) fn new(
        p: &Params,
        existing: Option<Value>,
        groups: Option<WantedGroups>,
        version: Option<ServerVersion>,
    ) -> Result<Plan, Failure> {
        let multi = version.is_some_and(ServerVersion::has_multiple_secrets);
        if p.secret_expires_days.is_some() && !multi {
            return Err(ClientError::ExpiryNeedsMultipleSecrets {
                version: version.map_or_else(|| "< 2.3".into(), |v| v.to_string()),
            }
            .into());
        }
        let fields = FieldPlan::new(p, existing, groups)?;
        let secrets = SecretPlan::new(p, &fields, multi);
        Ok(Plan {
            fields,
            secrets,
            multi,
            version,
        })
    }
}

/// The client's fields and groups: create or update, decided from the read alone.
pub(super) struct FieldPlan {
    pub(super) created: bool,
    /// The client as read (update), or `None` (create).
    pub(super) existing: Option<Value>,
    /// The POST body (create) or the full-replace PUT body (update).
    pub(super) body: Value,
    pub(super) field_changed: bool,
    pub(super) groups_changed: bool,
    pub(super) groups: Option<WantedGroups>,
    pub(super) before_view: Value,
    pub(super) after_view: Value,
}

impl FieldPlan {
    pub(super) fn new(
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
    pub(super) fn report_check_create(&self, p: &Params, minted: bool) -> Outcome {
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

    /// The id of the client as read (`None` for a create).
    pub(super) fn existing_id(&self) -> Option<String> {
        self.existing.as_ref().and_then(id_of)
    }

    /// Whether the client itself changes (created, or fields or groups updated).
    pub(super) fn changes(&self) -> bool {
        self.created || self.field_changed || self.groups_changed
    }
}

/// The client's secrets, decided from the client as it will stand after the field write.
pub(super) struct SecretPlan {
    pub(super) mint: bool,
    /// The minted secret's `expiresAt` (RFC 3339), from `secret_expires_days`.
    pub(super) expires_at: Option<String>,
    /// `secret: rotate` on a public client: refused (PocketID creates no secrets for them).
    pub(super) public_refused: bool,
    pub(super) retire: Retire,
}

/// What `retire_secrets` does.
pub(super) enum Retire {
    /// `retire_secrets` is off.
    No,
    /// The legacy API keeps a single secret: nothing to retire, only a warning.
    Legacy,
    /// Delete `ids`, keeping `keep` (`None`: the secret this run mints).
    Others {
        keep: Option<String>,
        ids: Vec<String>,
    },
    /// Refused: no secret to keep is named and none is minted.
    NoKeep,
    /// Refused: `secret_id` is not a secret of the client.
    UnknownKeep(String),
    /// `keep_secret`: delete `ids` (every secret that cannot be the kept value) before any mint.
    Orphans { ids: Vec<String> },
    /// Refused: `count` secrets may be the one `keep_secret` names.
    KeepAmbiguous(usize),
    /// Refused: no secret may be the one `keep_secret` names, and nothing is minted.
    KeepNotHeld(usize),
}

impl SecretPlan {
    fn new(p: &Params, fields: &FieldPlan, multi: bool) -> SecretPlan {
        // The PUT (or POST) body is what PocketID will hold: a client made public by this run
        // gets no secret, one made confidential may.
        let is_public = fields
            .body
            .get("isPublic")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let secrets = fields.existing.as_ref().map(secrets_of).unwrap_or_default();
        let active_ids: Vec<String> = secrets
            .iter()
            .filter(|s| s.get("isActive").and_then(Value::as_bool).unwrap_or(true))
            .filter_map(id_of)
            .collect();
        let want_mint = match p.secret {
            SecretPolicy::Rotate => true,
            SecretPolicy::Ensure => {
                fields.created
                    || (multi
                        && (active_ids.is_empty()
                            || p.secret_id
                                .as_ref()
                                .is_some_and(|sid| !active_ids.contains(sid))))
            }
            SecretPolicy::Keep | SecretPolicy::Verify => false,
        };
        let mint = want_mint && !is_public;
        SecretPlan {
            mint,
            expires_at: p.secret_expires_days.filter(|_| mint).map(expiry_in_days),
            public_refused: is_public && p.secret == SecretPolicy::Rotate,
            retire: Retire::new(p, multi, mint, &secrets),
        }
    }
}

/// Whether a secret PocketID lists may be the one whose value is `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    /// Its 4-character prefix is the value's.
    Yes,
    /// A migrated secret without a prefix: it may be any value.
    Maybe,
    /// Its prefix differs: it cannot be the value.
    No,
}

/// Compares `value` with a listed secret by PocketID's 4-character `prefix`; the value is
/// compared here and never leaves.
pub(super) fn may_be(value: &str, secret: &Value) -> Match {
    let prefix: String = value.chars().take(4).collect();
    match secret.get("prefix").and_then(Value::as_str).unwrap_or("") {
        "" => Match::Maybe,
        p if p == prefix => Match::Yes,
        _ => Match::No,
    }
}

/// Now plus `days`, as RFC 3339 UTC in whole seconds.
fn expiry_in_days(days: i64) -> String {
    const SEC: i128 = 1_000_000_000;
    let now = httpx::time::now_ns().div_euclid(SEC);
    httpx::time::format_rfc3339_ns((now + i128::from(days) * 86_400) * SEC, false)
}

impl Retire {
    fn new(p: &Params, multi: bool, mint: bool, secrets: &[Value]) -> Retire {
        if !p.retire_secrets {
            return Retire::No;
        }
        if !multi {
            return Retire::Legacy;
        }
        let all_ids: Vec<String> = secrets.iter().filter_map(id_of).collect();
        if let Some(keep) = &p.keep_secret {
            return Retire::orphans(keep.expose(), secrets, mint);
        }
        match &p.secret_id {
            Some(keep) if all_ids.contains(keep) => Retire::Others {
                ids: all_ids.into_iter().filter(|s| s != keep).collect(),
                keep: Some(keep.clone()),
            },
            Some(keep) => Retire::UnknownKeep(keep.clone()),
            None if mint => Retire::Others {
                keep: None,
                ids: all_ids,
            },
            None => Retire::NoKeep,
        }
    }

    /// The secrets that cannot be `keep` (their 4-character prefix differs; a migrated secret
    /// has none, so it may be any value). The value is compared here and never leaves.
    fn orphans(keep: &str, secrets: &[Value], mint: bool) -> Retire {
        let (candidates, orphans): (Vec<&Value>, Vec<&Value>) =
            secrets.iter().partition(|s| may_be(keep, s) != Match::No);
        match candidates.len() {
            0 if !mint && !orphans.is_empty() => Retire::KeepNotHeld(orphans.len()),
            0 | 1 => Retire::Orphans {
                ids: orphans.into_iter().filter_map(id_of).collect(),
            },
            n => Retire::KeepAmbiguous(n),
        }
    }

    /// Whether the retire happens before the mint (orphans make room under PocketID's cap).
    pub(super) fn before_mint(&self) -> bool {
        matches!(self, Retire::Orphans { .. })
    }

    /// The guard's refusal for client `id`, if it refuses.
    pub(super) fn refusal(&self, id: &str) -> Option<ClientError> {
        match self {
            Retire::NoKeep => Some(ClientError::RetireWithoutKeep),
            Retire::UnknownKeep(keep) => Some(ClientError::RetireUnknownKeep {
                keep: keep.clone(),
                id: id.to_string(),
            }),
            Retire::KeepAmbiguous(count) => Some(ClientError::KeepAmbiguous {
                count: *count,
                id: id.to_string(),
            }),
            Retire::KeepNotHeld(count) => Some(ClientError::KeepNotHeld {
                count: *count,
                id: id.to_string(),
            }),
            _ => None,
        }
    }

    /// The warning of a retire that the server's API cannot do.
    pub(super) fn warning(&self, version: Option<ServerVersion>) -> Option<String> {
        matches!(self, Retire::Legacy).then(|| format!(
            "retire_secrets does nothing on PocketID {}: the legacy API keeps a single secret, replaced by each rotation",
            version.map(|v| v.to_string()).unwrap_or_else(|| "< 2.3".into())
        ))
    }

    /// The secret ids to delete.
    pub(super) fn ids(&self) -> &[String] {
        match self {
            Retire::Others { ids, .. } | Retire::Orphans { ids } => ids,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Retire;
    use serde_json::{json, Value};

    fn secrets(prefixes: &[&str]) -> Vec<Value> {
        prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"id": format!("s{i}"), "prefix": p}))
            .collect()
    }

    #[test]
    fn keep_secret_retires_what_cannot_be_it_and_refuses_ambiguity() {
        let keep = "AbCdrestofthesecretvalue00000000";
        let r = Retire::orphans(keep, &secrets(&["AbCd", "zzzz", "yyyy"]), false);
        assert!(matches!(&r, Retire::Orphans { ids } if ids == &["s1", "s2"]));
        assert!(r.before_mint());
        // A migrated secret has no prefix: it may be Vault's, so two candidates are refused.
        let r = Retire::orphans(keep, &secrets(&["AbCd", ""]), false);
        assert!(matches!(r, Retire::KeepAmbiguous(2)));
        let r = Retire::orphans(keep, &secrets(&["AbCd", "AbCd"]), true);
        assert!(matches!(r, Retire::KeepAmbiguous(2)));
        // None could be Vault's: refused unless this run mints the secret to keep.
        assert!(matches!(
            Retire::orphans(keep, &secrets(&["zzzz"]), false),
            Retire::KeepNotHeld(1)
        ));
        let r = Retire::orphans(keep, &secrets(&["zzzz"]), true);
        assert!(matches!(&r, Retire::Orphans { ids } if ids == &["s0"]));
    }
}
