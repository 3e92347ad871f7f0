//! A Forgejo Actions client ([`client`]) and the `redeploy_trigger` module: it dispatches
//! `workflow_dispatch` runs (one or many), after validating their inputs against the workflow
//! files at `ref`; then waits for all of them at once and reports each run's id, number, URL,
//! status and duration.

pub mod client;
mod wait;
pub mod workflow;

pub use wait::max_status_requests;

use ansible_module::{Context, Failure, Module, Opt, Outcome};
use client::{conn_options, Forgejo, ForgejoConn, ForgejoError, WORKFLOW_DIRS};
use httpx::HttpError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wait::{RunStatus, Tracked, Waiter};
use workflow::InputValue;

pub struct RedeployTrigger;

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(flatten)]
    pub conn: ForgejoConn,
    pub workflows: Vec<Value>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub inputs: Option<Map<String, Value>>,
    pub wait: bool,
    pub wait_timeout: u64,
    pub poll_interval: f64,
    pub pickup_timeout: u64,
    pub skipped_is_success: bool,
}

impl Module for RedeployTrigger {
    const NAME: &'static str = "redeploy_trigger";
    const ABOUT: &'static str =
        "Dispatch Forgejo Actions workflows (validated against their files), wait for all runs, report each";
    type Params = Params;

    fn options() -> Vec<Opt> {
        let mut o = conn_options();
        o.extend([
            Opt::list("workflows", ansible_module::Kind::Raw)
                .required()
                .alias("workflow")
                .help("Workflow file names (deploy-n8n.yml), or dicts {workflow, inputs}"),
            Opt::str("ref")
                .default("main")
                .help("Branch, tag or commit to run the workflows at"),
            Opt::dict("inputs")
                .help("Inputs for every workflow (per-workflow inputs override them)"),
            Opt::bool("wait")
                .default(true)
                .help("Wait for every run to finish"),
            Opt::int("wait_timeout")
                .default(1800)
                .range(1, 86400)
                .help("Seconds to wait for each run, from its dispatch"),
            Opt::float("poll_interval")
                .default(5.0)
                .range_f(0.1, 3600.0)
                .help("Longest wait in seconds between two status requests for a run (each wait an eighth of the run's age, at least 0.25 s)"),
            Opt::int("pickup_timeout")
                .default(300)
                .range(1, 86400)
                .help("Seconds a run may wait for a runner before it counts as not picked up"),
            Opt::bool("skipped_is_success")
                .default(false)
                .help("Count a skipped run as a success"),
        ]);
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        let targets = check(&p)?;
        let api = Forgejo::new(&p.conn)?;
        let plan = Plan::new(&api, &p, &targets, ctx)?;
        if ctx.check_mode {
            return Ok(plan.report_check(&p.git_ref));
        }
        let mut dispatched = plan.apply(&api, &p.git_ref, ctx);
        if p.wait {
            Waiter {
                api: &api,
                major: plan.major,
                interval: Duration::from_secs_f64(p.poll_interval),
                timeout: Duration::from_secs(p.wait_timeout),
                pickup: Duration::from_secs(p.pickup_timeout),
                skipped_is_success: p.skipped_is_success,
            }
            .wait_all(&mut dispatched.runs, ctx);
        }
        dispatched.report(&api, &p, &plan)
    }
}

/// The options that need no request, then the workflows they name.
fn check(p: &Params) -> Result<Vec<Target>, Failure> {
    if !(p.poll_interval > 0.0 && p.poll_interval.is_finite()) {
        return Err(Failure::new(
            "poll_interval must be a positive number of seconds",
        ));
    }
    if p.wait_timeout == 0 {
        return Err(Failure::new("wait_timeout must be at least 1 second"));
    }
    if p.git_ref.trim().is_empty() {
        return Err(Failure::new(
            "ref is empty: give a branch, tag or commit (Forgejo answers 400 `ref is empty`)",
        ));
    }
    // Backoff doubles per attempt: more than 10 would wait for minutes on a dead server.
    if p.conn.retries > 10 {
        return Err(Failure::new(format!(
            "`retries` must be 0 to 10 (each retry waits twice as long as the one before), got {}",
            p.conn.retries
        )));
    }
    targets(p)
}

/// One workflow to dispatch.
#[derive(Debug, Clone)]
struct Target {
    file: String,
    inputs: Map<String, Value>,
}

fn targets(p: &Params) -> Result<Vec<Target>, Failure> {
    let global = p.inputs.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, w) in p.workflows.iter().enumerate() {
        let (file, own) = match w {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Object(m) => {
                let unknown: Vec<&String> = m
                    .keys()
                    .filter(|k| *k != "workflow" && *k != "inputs")
                    .collect();
                if !unknown.is_empty() {
                    errors.push(format!(
                        "workflows[{i}] has unknown keys {unknown:?}: use {{workflow, inputs}}"
                    ));
                    continue;
                }
                let file = match m.get("workflow") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        errors.push(format!(
                            "workflows[{i}] needs `workflow`: a workflow file name"
                        ));
                        continue;
                    }
                };
                let own = match m.get("inputs") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(o)) => o.clone(),
                    Some(_) => {
                        errors.push(format!("workflows[{i}] ({file}): `inputs` must be a dict"));
                        continue;
                    }
                };
                (file, own)
            }
            _ => {
                errors.push(format!(
                    "workflows[{i}] must be a workflow file name or a dict {{workflow, inputs}}"
                ));
                continue;
            }
        };
        let file = file.trim().to_string();
        if file.is_empty() || file.contains('/') {
            errors.push(format!(
                "workflows[{i}]: {file:?} is not a workflow file name (give the bare name, e.g. deploy-n8n.yml)"
            ));
            continue;
        }
        // The name is a path segment of the dispatch URL.
        if let Err(e) = httpx::check_segments(&format!("workflows[{i}]"), &file) {
            errors.push(e);
            continue;
        }
        let mut inputs = global.clone();
        inputs.extend(own);
        out.push(Target { file, inputs });
    }
    if out.is_empty() && errors.is_empty() {
        errors.push("`workflows` is empty: name at least one workflow file".into());
    }
    if !errors.is_empty() {
        return Err(Failure::new(format!(
            "nothing was dispatched: {}",
            errors.join("; ")
        )));
    }
    Ok(out)
}

/// A workflow ready to dispatch.
struct Planned {
    file: String,
    inputs: BTreeMap<String, InputValue>,
}

impl Planned {
    /// The inputs as the result shows them.
    fn displayed_inputs(&self) -> BTreeMap<String, String> {
        self.inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.display()))
            .collect()
    }
}

/// Reads the workflow file the way Forgejo finds it (first existing workflow directory only).
fn read_workflow(
    api: &Forgejo,
    file: &str,
    git_ref: &str,
) -> Result<Result<String, String>, ForgejoError> {
    let candidates: Vec<String> = if file.ends_with(".yml") || file.ends_with(".yaml") {
        vec![file.to_string()]
    } else {
        vec![format!("{file}.yml"), format!("{file}.yaml")]
    };
    for dir in WORKFLOW_DIRS {
        for name in &candidates {
            if let Some(text) = api.file(&format!("{dir}/{name}"), git_ref)? {
                return Ok(Ok(text));
            }
        }
        if api.dir_exists(dir, git_ref)? {
            return Ok(Err(format!(
                "workflow file not found in {dir}/ at ref '{git_ref}' (Forgejo only reads the first of {} that exists; it answers a dispatch of a missing workflow with HTTP 500 and an empty message)",
                WORKFLOW_DIRS.join(", ")
            )));
        }
    }
    if !api.dir_exists("", git_ref)? {
        return Ok(Err(format!(
            "ref '{git_ref}' does not exist in the repository (give a branch, tag or commit; Forgejo answers a dispatch at an unknown short ref with HTTP 500 and an empty message)"
        )));
    }
    Ok(Err(format!(
        "the repository has no workflow directory ({}) at ref '{git_ref}'",
        WORKFLOW_DIRS.join(", ")
    )))
}

/// What will be dispatched: every workflow validated at `ref` before anything is sent.
struct Plan {
    version: String,
    major: u64,
    workflows: Vec<Planned>,
}

impl Plan {
    /// Reads the server's version and each workflow file; refuses before any dispatch when a
    /// workflow is missing, not dispatchable or given inputs it does not take.
    fn new(
        api: &Forgejo,
        p: &Params,
        targets: &[Target],
        ctx: &mut Context,
    ) -> Result<Plan, Failure> {
        let (version, major) = api.version()?;
        if major < 8 {
            return Err(Failure::new(format!(
                "Forgejo {version} at {} has no workflow dispatch API (it appeared in Forgejo 8)",
                api.base_url()
            )));
        }
        if p.wait && major < 11 {
            return Err(Failure::new(format!(
                "wait: true needs Forgejo ≥ 11 (≥ 12 for run status); {} runs Forgejo {version}, whose dispatch returns no run id. Set wait: false to dispatch without waiting, or upgrade Forgejo",
                api.base_url()
            )));
        }
        if p.wait && major == 11 {
            ctx.warn(format!(
                "Forgejo {version} has no run status API (v12+): waiting follows the run's tasks, best effort"
            ));
        }
        let mut workflows = Vec::new();
        let mut errors = Vec::new();
        for t in targets {
            match plan_one(api, t, &p.git_ref)? {
                Ok(w) => workflows.push(w),
                Err(es) => errors.extend(es),
            }
        }
        if !errors.is_empty() {
            return Err(Failure::new(format!(
                "nothing was dispatched; {} problem(s): {}",
                errors.len(),
                errors.join("; ")
            ))
            .set("errors", errors));
        }
        Ok(Plan {
            version,
            major,
            workflows,
        })
    }

    fn report_check(&self, git_ref: &str) -> Outcome {
        let runs: Vec<Value> = self
            .workflows
            .iter()
            .map(|w| {
                json!({
                    "workflow": w.file,
                    "ref": git_ref,
                    "inputs": w.displayed_inputs(),
                })
            })
            .collect();
        Outcome::new(true)
            .msg(format!(
                "check mode: {} workflow(s) valid at ref '{git_ref}', none dispatched",
                self.workflows.len(),
            ))
            .set("runs", runs)
            .set("forgejo_version", self.version.clone())
    }

    /// Dispatches every workflow, each POST exactly once.
    fn apply(&self, api: &Forgejo, git_ref: &str, ctx: &Context) -> Dispatched {
        let mut runs = Vec::new();
        let mut errors = Vec::new();
        for w in &self.workflows {
            let sent: BTreeMap<String, String> = w
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.encode(self.major)))
                .collect();
            let dispatched_at = Instant::now();
            match api.dispatch(&w.file, git_ref, &sent, self.major >= 11) {
                Ok(run) => {
                    let (id, number, jobs) = match &run {
                        Some(r) => (Some(r.id), Some(r.run_number), r.jobs.clone()),
                        None => (None, None, Vec::new()),
                    };
                    let html_url = match number {
                        Some(n) if n > 0 => api.run_url(n),
                        _ => api.workflow_url(&w.file),
                    };
                    ctx.progress(&format!("dispatched {}", w.file));
                    runs.push(Tracked {
                        file: w.file.clone(),
                        inputs: w.displayed_inputs(),
                        id,
                        run_number: number,
                        jobs,
                        html_url,
                        status: if id.is_some() {
                            RunStatus::Waiting
                        } else {
                            RunStatus::Dispatched
                        },
                        dispatched_at,
                        duration: None,
                        problem: None,
                        lost_contact: None,
                    });
                }
                Err(e) => errors.push(format!("{}: {}", w.file, explain_dispatch_error(e))),
            }
        }
        Dispatched { runs, errors }
    }
}

/// Reads and validates one workflow: the workflow ready to dispatch, or what is wrong with it.
fn plan_one(
    api: &Forgejo,
    t: &Target,
    git_ref: &str,
) -> Result<Result<Planned, Vec<String>>, ForgejoError> {
    let text = match read_workflow(api, &t.file, git_ref)? {
        Ok(text) => text,
        Err(e) => return Ok(Err(vec![format!("{}: {e}", t.file)])),
    };
    let wf = match workflow::parse(&text) {
        Ok(wf) => wf,
        Err(e) => return Ok(Err(vec![format!("{}: the workflow file {e}", t.file)])),
    };
    if !wf.dispatchable {
        return Ok(Err(vec![format!(
            "{}: the workflow has no workflow_dispatch trigger (Forgejo would still run all its jobs); add `on: workflow_dispatch` or pick the deploy workflow",
            t.file
        )]));
    }
    Ok(match workflow::validate(&wf, &t.inputs) {
        Ok(inputs) => Ok(Planned {
            file: if t.file.ends_with(".yml") || t.file.ends_with(".yaml") {
                t.file.clone()
            } else {
                format!("{}.yml", t.file)
            },
            inputs,
        }),
        Err(es) => Err(es.into_iter().map(|e| format!("{}: {e}", t.file)).collect()),
    })
}

/// The runs dispatched, and the dispatches that failed.
struct Dispatched {
    runs: Vec<Tracked>,
    errors: Vec<String>,
}

impl Dispatched {
    fn report(&self, api: &Forgejo, p: &Params, plan: &Plan) -> Result<Outcome, Failure> {
        let runs: Vec<Value> = self.runs.iter().map(Tracked::to_json).collect();
        let mut failed: Vec<Value> = self
            .runs
            .iter()
            .filter(|t| t.problem.is_some())
            .map(|t| json!({"workflow": t.file, "status": t.status, "html_url": t.html_url, "error": t.problem}))
            .collect();
        failed.extend(self.errors.iter().map(|e| json!({"error": e})));
        let changed = !self.runs.is_empty();
        if !failed.is_empty() {
            return Err(Failure::new(self.failure_message(api, failed.len(), plan))
                .set("changed", changed)
                .set("runs", runs)
                .set("failed_runs", failed)
                .set("forgejo_version", plan.version.clone()));
        }
        let msg = if p.wait {
            let slowest = self
                .runs
                .iter()
                .filter_map(|t| t.duration.map(|d| (d, &t.file)))
                .fold(None::<(f64, &String)>, |acc, x| match acc {
                    Some(a) if a.0 >= x.0 => Some(a),
                    _ => Some(x),
                });
            match slowest {
                Some((d, f)) => format!(
                    "all {} run(s) succeeded (slowest: {f}, {d:.1}s)",
                    self.runs.len()
                ),
                None => format!("all {} run(s) succeeded", self.runs.len()),
            }
        } else {
            format!(
                "dispatched {} workflow(s) at ref '{}' without waiting",
                self.runs.len(),
                p.git_ref
            )
        };
        Ok(Outcome::new(changed)
            .msg(msg)
            .set("runs", runs)
            .set("failed_runs", Vec::<Value>::new())
            .set("forgejo_version", plan.version.clone()))
    }

    fn failure_message(&self, api: &Forgejo, failed: usize, plan: &Plan) -> String {
        let mut parts: Vec<String> = self
            .runs
            .iter()
            .filter_map(|t| match (&t.problem, &t.lost_contact) {
                (Some(_), Some(_)) => Some(format!(
                    "{} status unknown, may still be running (run id {}: {})",
                    t.file,
                    t.id.unwrap_or_default(),
                    t.html_url
                )),
                (Some(pr), None) => Some(format!("{} {pr} ({})", t.file, t.html_url)),
                (None, _) => None,
            })
            .collect();
        parts.extend(self.errors.iter().map(|e| format!("dispatch failed: {e}")));
        let total = plan.workflows.len();
        let lost: Vec<&Tracked> = self
            .runs
            .iter()
            .filter(|t| t.lost_contact.is_some())
            .collect();
        // The server problem comes first: it explains the runs whose state is unknown.
        let head = match lost.first().and_then(|t| t.lost_contact.as_ref()) {
            Some(last) => format!(
                "lost contact with Forgejo at {} while waiting for {} run(s) ({last}); they were dispatched and may still be running: check them there before re-running. ",
                api.base_url(),
                lost.len()
            ),
            None => String::new(),
        };
        format!(
            "{head}{failed} of {total} deploy run(s) did not succeed: {}",
            parts.join("; ")
        )
    }
}

fn explain_dispatch_error(e: ForgejoError) -> String {
    match e {
        ForgejoError::Api { status: 500, .. } => format!(
            "{e} (Forgejo hides the reason of a 500; usually the workflow file or the ref does not exist at the server). The dispatch was not retried: a run may or may not have been created; check the Actions page before re-running"
        ),
        ForgejoError::Api { status: 429, .. } => format!(
            "{e}. Forgejo (or a proxy in front of it) is rate-limiting this client; the dispatch was not retried (it is not idempotent), and a rate-limited request normally creates no run: wait and re-run (check the Actions page if unsure)"
        ),
        ForgejoError::Api { status, .. } if status >= 500 => format!(
            "{e}. The dispatch was not retried (it is not idempotent): a run may or may not have been created; check the Actions page before re-running"
        ),
        // A dispatch is not idempotent: "re-run converges" does not hold for it.
        ForgejoError::Http(HttpError::ConnectionLost { url, detail, .. }) => format!(
            "the connection to Forgejo at {url} was closed or reset after the dispatch was sent ({detail}): a run may or may not have been created, and the dispatch was not retried (it is not idempotent); check the Actions page before re-running"
        ),
        ForgejoError::Http(ref h) => format!(
            "{h}. The dispatch was not retried (it is not idempotent): check the Actions page before re-running"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_lost_after_the_dispatch_never_promises_that_a_rerun_converges() {
        let m = explain_dispatch_error(ForgejoError::Http(HttpError::ConnectionLost {
            system: "Forgejo",
            url: "http://127.0.0.1:1/api/v1/repos/o/r/actions/workflows/d.yml/dispatches".into(),
            method: "POST".into(),
            detail: "io: Peer disconnected".into(),
            request_sent: true,
        }));
        assert!(m.contains("a run may or may not have been created"), "{m}");
        assert!(m.contains("check the Actions page"), "{m}");
        assert!(!m.contains("converges") && !m.contains("refused"), "{m}");
    }
}
