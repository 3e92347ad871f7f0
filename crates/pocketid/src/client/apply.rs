//! Performing a `pocketid_client` plan, and the result of a run (applied or checked).

use super::plan::{FieldPlan, Plan, Retire, SecretPlan};
use super::{fail, group_ids, group_names, ClientError, Params};
use crate::api::{ApiError, MintedSecret, PocketIdApi, ServerVersion};
use ansible_module::{Context, Failure, Outcome};
use serde_json::{json, Value};

/// What an apply has done so far: a failure reports it (`changed`, the client id).
struct Progress<'a> {
    api: &'a PocketIdApi,
    changed: bool,
    client_id: Option<String>,
}

/// What an apply did.
pub(super) struct Applied {
    id: String,
    /// The client as PocketID holds it afterwards.
    current: Value,
    minted: Option<MintedSecret>,
    retired: Vec<String>,
    changed: bool,
}

impl Plan {
    /// Performs the plan in order: fields, groups, mint, retire. A guard's refusal stops it at
    /// its step; what was done before is reported with the failure.
    pub(super) fn apply(&self, api: &PocketIdApi, ctx: &mut Context) -> Result<Applied, Failure> {
        let mut run = Progress {
            api,
            changed: false,
            client_id: self.fields.existing_id(),
        };
        let mut current = run.write_fields(&self.fields)?;
        let id = run.client_id.clone().unwrap_or_default();
        run.write_groups(&self.fields, &id, &mut current)?;
        if self.secrets.public_refused {
            return Err(run.fail(ClientError::PublicHasNoSecret(id)));
        }
        let retire = &self.secrets.retire;
        let early = if retire.before_mint() {
            run.retire(retire, &id, None, self.version, ctx)?
        } else {
            Vec::new()
        };
        let minted = run.mint(&self.secrets, &id, self.multi)?;
        let retired = if retire.before_mint() {
            early
        } else {
            run.retire(retire, &id, minted.as_ref(), self.version, ctx)?
        };
        if minted.is_some() || !retired.is_empty() {
            if let Ok(Some(c)) = api.get_client(&id) {
                current = c;
            }
        }
        Ok(Applied {
            id,
            current,
            minted,
            retired,
            changed: run.changed,
        })
    }

    /// The result of an applied plan.
    pub(super) fn report(self, done: Applied) -> Outcome {
        Report {
            id: done.id,
            current: done.current,
            minted: done.minted,
            retired: done.retired,
            changed: done.changed,
            check_mode: false,
            plan: self,
        }
        .outcome()
    }

    /// Check mode: the plan as the result, including a guard's refusal; nothing is sent.
    pub(super) fn report_check(self, p: &Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        // A client to create has no id until PocketID assigns one.
        let client_id = self.fields.existing_id().or_else(|| p.client_id.clone());
        let label = client_id
            .clone()
            .or_else(|| p.name.clone())
            .unwrap_or_default();
        let changes = self.fields.changes();
        if self.secrets.public_refused {
            let e = ClientError::PublicHasNoSecret(label);
            return Err(fail(e, changes, client_id.as_deref()));
        }
        if let Some(w) = self.secrets.retire.warning(self.version) {
            ctx.warn(w);
        }
        if let Some(e) = self.secrets.retire.refusal(&label) {
            return Err(fail(e, changes || self.secrets.mint, client_id.as_deref()));
        }
        if self.fields.created {
            return Ok(self.fields.report_check_create(p, self.secrets.mint));
        }
        let retired = self.secrets.retire.ids().to_vec();
        Ok(Report {
            id: label,
            current: self.fields.existing.clone().unwrap_or_default(),
            minted: None,
            changed: changes || self.secrets.mint || !retired.is_empty(),
            retired,
            check_mode: true,
            plan: self,
        }
        .outcome())
    }
}

impl Progress<'_> {
    fn fail(&self, e: impl std::fmt::Display) -> Failure {
        fail(e, self.changed, self.client_id.as_deref())
    }

    /// Creates the client or updates its fields (the restricted flag goes with them); returns
    /// the client as it now stands.
    fn write_fields(&mut self, plan: &FieldPlan) -> Result<Value, Failure> {
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
            if plan.field_changed {
                let id = self.client_id.clone().unwrap_or_default();
                current = self
                    .api
                    .update_client(&id, plan.body.clone())
                    .map_err(|e| self.fail(e))?;
            }
        }
        Ok(current)
    }

    /// Sets the allowed groups when the client as written differs, then verifies that PocketID
    /// applied them.
    fn write_groups(
        &mut self,
        plan: &FieldPlan,
        id: &str,
        current: &mut Value,
    ) -> Result<(), Failure> {
        let Some(wanted) = &plan.groups else {
            return Ok(());
        };
        if wanted.ids == group_ids(current) {
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
        let res = if multi {
            self.api.add_secret(id, plan.expires_at.as_deref())
        } else {
            self.api.replace_secret_legacy(id)
        };
        res.map(Some).map_err(|e| self.fail(mint_error(e)))
    }

    /// Retires every secret except the kept one (2.14+); returns the retired ids.
    fn retire(
        &mut self,
        plan: &Retire,
        id: &str,
        minted: Option<&MintedSecret>,
        version: Option<ServerVersion>,
        ctx: &mut Context,
    ) -> Result<Vec<String>, Failure> {
        if let Some(w) = plan.warning(version) {
            ctx.warn(w);
        }
        if let Some(e) = plan.refusal(id) {
            return Err(self.fail(e));
        }
        let ids = match plan {
            Retire::Others { keep, ids } => {
                // The secret to keep is the one just minted: PocketID must have said which it is.
                if keep.is_none() && minted.and_then(|m| m.id.as_ref()).is_none() {
                    return Err(self.fail(ClientError::RetireWithoutKeep));
                }
                ids
            }
            Retire::Orphans { ids } => ids,
            _ => return Ok(Vec::new()),
        };
        let mut retired = Vec::new();
        for sid in ids {
            self.changed = true;
            self.api.delete_secret(id, sid).map_err(|e| self.fail(e))?;
            retired.push(sid.clone());
        }
        Ok(retired)
    }
}

fn mint_error(e: ApiError) -> String {
    format!(
        "{e}. The secret request was sent once and not retried, because a repeat could mint extra secrets; check the client's secrets in PocketID and re-run (secret: ensure mints only when needed)"
    )
}

/// What the run did (or, in check mode, would do), as the result reports it.
struct Report {
    plan: Plan,
    id: String,
    current: Value,
    minted: Option<MintedSecret>,
    retired: Vec<String>,
    changed: bool,
    check_mode: bool,
}

impl Report {
    fn outcome(self) -> Outcome {
        let Plan {
            fields,
            secrets,
            multi,
            version,
        } = self.plan;
        let mint = secrets.mint;
        let mut after_view = fields.after_view;
        if mint {
            after_view["secret"] = json!(if multi { "<added>" } else { "<replaced>" });
        }
        if !self.retired.is_empty() {
            after_view["retiredSecrets"] = json!(self.retired);
        }
        let mut client_out = self.current;
        if let Some(o) = client_out.as_object_mut() {
            o.remove("allowedUserGroupsCount");
        }
        let verb = if fields.created {
            "created"
        } else if self.changed {
            "updated"
        } else {
            "already as desired"
        };
        let minted_text = match (mint, self.check_mode) {
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
        let mut out = Outcome::new(self.changed)
            .msg(format!("client {id} {verb}{minted_text}{retired_text}"))
            .set("client_id", id.clone())
            .set("created", fields.created)
            .set("client", client_out)
            .set("secret_minted", mint)
            .set("retired_secret_ids", json!(self.retired))
            .set("secret_api", if multi { "secrets" } else { "legacy" })
            .set("server_version", version.map(|v| v.to_string()))
            .diff(fields.before_view, after_view);
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
