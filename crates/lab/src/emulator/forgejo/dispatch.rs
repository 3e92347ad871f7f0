//! `POST …/actions/workflows/{file}/dispatches`: the request body bound as go-chi binds
//! `DispatchWorkflowOption`, the ref and workflow looked up, inputs resolved per version, and a
//! new run.

use super::contents::{commit_sha, resolve_ref};
use super::runs::{self, Concurrency, Run};
use super::workflow::{parse_workflow, workflow_dir, WorkflowDef};
use super::{api_error, hidden_500, major, RunInfo, State, Token};
use crate::emulator::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// `api.DispatchWorkflowOption` as go-chi binds it: `ref`, `inputs` (strings), `return_run_info`.
struct DispatchOption {
    git_ref: String,
    inputs: BTreeMap<String, String>,
    return_run_info: bool,
}

pub(super) fn dispatch(s: &mut State, token: &Token, file: &str, body: &[u8]) -> Response {
    if !token.can_write {
        return api_error(s, 403, "user should have a permission to write to a repo");
    }
    if s.opts.archived {
        return api_error(s, 423, "repo is archived");
    }
    let DispatchOption {
        git_ref,
        inputs: given,
        return_run_info,
    } = match bind(s, body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if git_ref.is_empty() {
        return api_error(s, 400, "ref is empty");
    }
    let resolved = match resolve_ref(s, &git_ref) {
        Ok(r) => r,
        Err(true) => {
            return api_error(
                s,
                404,
                &format!("object does not exist [id: {git_ref}, rel_path: ]"),
            )
        }
        Err(false) => return hidden_500(s), // could not expand reference
    };
    let files = &s.opts.branches[&resolved.branch];
    let ext_ok = file.ends_with(".yml") || file.ends_with(".yaml");
    let text = workflow_dir(files)
        .filter(|_| ext_ok)
        .and_then(|d| files.get(&format!("{d}/{file}")));
    let Some(wf) = text.and_then(|t| parse_workflow(t)) else {
        return hidden_500(s); // errors.New("workflow not found")
    };
    let inputs = match resolve_inputs(s, &wf, &given) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let v = major(s);
    let id = s.next_id;
    let number = s.next_number;
    s.next_id += 1;
    s.next_number += 1;
    let mut job_ids: Vec<String> = wf.jobs.iter().map(|j| j.id.clone()).collect();
    if !job_ids.is_empty() {
        let k = (id as usize) % job_ids.len();
        job_ids.rotate_left(k); // Go map order: not the file's
    }
    let behaviour = s
        .behaviours
        .get(file)
        .cloned()
        .unwrap_or_else(|| s.opts.default_behaviour.clone());
    let (concurrency_group, concurrency) = concurrency_of(&wf, &resolved.full_ref, file);
    if concurrency == Concurrency::CancelInProgress {
        runs::cancel_group(s, &concurrency_group);
    }
    let info = RunInfo {
        id,
        run_number: number,
        workflow_id: file.to_string(),
        git_ref: resolved.full_ref.clone(),
        inputs,
        jobs: job_ids.clone(),
    };
    s.runs.push(Run {
        title: wf.name.clone().unwrap_or_else(|| file.to_string()),
        commit_sha: commit_sha(&resolved.branch),
        prettyref: resolved.prettyref.clone(),
        job_list: wf.jobs,
        behaviour,
        created: SystemTime::now(),
        created_at: Instant::now(),
        started: None,
        stopped: None,
        status: "waiting",
        hook_slot: None,
        hook_error: None,
        concurrency_group,
        concurrency,
        info,
    });
    if v >= 11 && return_run_info {
        Response::json(
            201,
            json!({"id": id, "run_number": number, "jobs": job_ids}),
        )
    } else {
        Response::empty(204)
    }
}

fn bind(s: &State, body: &[u8]) -> Result<DispatchOption, Response> {
    // go-chi binding of api.DispatchWorkflowOption.
    let unmarshal = |s: &State, what: String| -> Result<DispatchOption, Response> {
        Err(api_error(
            s,
            422,
            &format!("[]: json: cannot unmarshal {what}"),
        ))
    };
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(api_error(s, 422, &format!("[]: invalid JSON: {e}"))),
    };
    let Value::Object(doc) = doc else {
        return unmarshal(
            s,
            format!(
                "{} into Go value of type structs.DispatchWorkflowOption",
                go_type(&doc)
            ),
        );
    };
    let git_ref = match doc.get("ref") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) => r.clone(),
        Some(other) => {
            return unmarshal(
                s,
                format!(
                    "{} into Go struct field DispatchWorkflowOption.ref of type string",
                    go_type(other)
                ),
            )
        }
    };
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    match doc.get("inputs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(x) => {
                        given.insert(k.clone(), x.clone());
                    }
                    Value::Null => {}
                    other => {
                        return unmarshal(
                            s,
                            format!(
                            "{} into Go struct field DispatchWorkflowOption.inputs of type string",
                            go_type(other)
                        ),
                        )
                    }
                }
            }
        }
        Some(other) => {
            return unmarshal(
                s,
                format!(
                "{} into Go struct field DispatchWorkflowOption.inputs of type map[string]string",
                go_type(other)
            ),
            )
        }
    }
    let return_run_info = match doc.get("return_run_info") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return unmarshal(
                s,
                format!(
                    "{} into Go struct field DispatchWorkflowOption.return_run_info of type bool",
                    go_type(other)
                ),
            )
        }
    };
    Ok(DispatchOption {
        git_ref,
        inputs: given,
        return_run_info,
    })
}

/// The run's inputs: given, else the default; a required one missing fails; sent booleans as the
/// version writes them (a default stays as written); too many inputs is a hidden 500.
fn resolve_inputs(
    s: &State,
    wf: &WorkflowDef,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Response> {
    let v = major(s);
    let mut inputs = BTreeMap::new();
    for (key, desc, required, default, kind) in &wf.inputs {
        let mut val = given.get(key).cloned().filter(|x| !x.is_empty());
        let sent = val.is_some();
        if val.is_none() {
            val = default.clone().filter(|x| !x.is_empty());
        }
        let Some(mut val) = val else {
            if *required {
                let label = desc.clone().unwrap_or_else(|| key.clone());
                return Err(api_error(s, 400, &format!("input required for '{label}'")));
            }
            continue;
        };
        // Only a sent value is mapped (`resolveDispatchInput`): a default is used as written.
        if kind == "boolean" && sent {
            val = if v <= 13 {
                (val == "on").to_string()
            } else if val == "on" {
                "true".into()
            } else {
                val
            };
        }
        inputs.insert(key.clone(), val);
    }
    let limit = if v >= 15 { 100 } else { 10 };
    if inputs.len() > limit {
        return Err(hidden_500(s)); // too many inputs
    }
    Ok(inputs)
}

/// The run's concurrency group and mode, as Forgejo (v14+) sets them
/// (`services/actions/workflows.go: ConfigureActionRunConcurrency`): a group is lower-cased, and
/// without one it is `<ref>_<workflow>_<event>__auto`; `cancel-in-progress: true` cancels the
/// group's pending and running runs at dispatch; `false` with a group queues the run behind
/// them; without `cancel-in-progress` (or with `false` and no group) a dispatched run is limited
/// by nothing. Before v14 dispatched runs never limit each other.
fn concurrency_of(wf: &WorkflowDef, full_ref: &str, file: &str) -> (String, Concurrency) {
    let (group, cancel) = wf.concurrency.clone().unwrap_or_default();
    let name = if group.is_empty() {
        format!("{full_ref}_{file}_workflow_dispatch__auto")
    } else {
        group.to_lowercase()
    };
    let mode = match cancel {
        Some(true) => Concurrency::CancelInProgress,
        Some(false) if !group.is_empty() => Concurrency::QueueBehind,
        _ => Concurrency::Unlimited,
    };
    (name, mode)
}
