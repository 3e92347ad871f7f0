//! `redeploy_trigger`: dispatches Forgejo Actions `workflow_dispatch` runs (one or many), after
//! validating their inputs against the workflow files at `ref`; then waits for all of them at once
//! and reports each run's id, number, URL, status and duration.

pub mod client;
pub mod workflow;

use ansible_module::{Context, Failure, Module, Opt, Outcome, Secret};
use client::{Forgejo, ForgejoError, Settings, WORKFLOW_DIRS};
use httpx::HttpError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use workflow::InputValue;

pub struct RedeployTrigger;

#[derive(Debug, Deserialize)]
pub struct Params {
    pub url: String,
    pub token: Secret,
    pub repo: String,
    pub workflows: Vec<Value>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub inputs: Option<Map<String, Value>>,
    pub wait: bool,
    pub timeout: u64,
    pub poll_interval: f64,
    pub pickup_timeout: u64,
    pub skipped_is_success: bool,
    pub validate_certs: bool,
    pub ca_cert: Option<PathBuf>,
    pub request_timeout: u64,
    pub retries: u32,
}

impl Module for RedeployTrigger {
    const NAME: &'static str = "redeploy_trigger";
    const ABOUT: &'static str =
        "Dispatch Forgejo Actions workflows (validated against their files), wait for all runs, report each";
    type Params = Params;

    fn options() -> Vec<Opt> {
        vec![
            Opt::str("url")
                .env("FORGEJO_URL")
                .required()
                .help("Forgejo base URL, e.g. https://forgejo.example.org"),
            Opt::str("token")
                .env("FORGEJO_TOKEN")
                .required()
                .no_log()
                .help("Access token with write:repository"),
            Opt::str("repo")
                .required()
                .help("Repository holding the workflows, as owner/name"),
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
            Opt::int("timeout")
                .default(1800)
                .range(1, 86400)
                .help("Seconds to wait for each run, from its dispatch"),
            Opt::float("poll_interval")
                .default(5.0)
                .range_f(0.1, 3600.0)
                .help("Longest wait in seconds between two status requests for a run (the waits grow from 0.25 s)"),
            Opt::int("pickup_timeout")
                .default(300)
                .range(1, 86400)
                .help("Seconds a run may wait for a runner before it counts as not picked up"),
            Opt::bool("skipped_is_success")
                .default(false)
                .help("Count a skipped run as a success"),
            Opt::bool("validate_certs")
                .default(true)
                .help("Verify the server's TLS certificate"),
            Opt::path("ca_cert")
                .env("FORGEJO_CACERT")
                .help("PEM CA file to trust for the server"),
            Opt::int("request_timeout")
                .default(30)
                .range(1, 3600)
                .help("Seconds for one HTTP request"),
            Opt::int("retries").default(3).help(
                "Further attempts (0-10, with backoff) for status reads after a connection error or HTTP 429/5xx; a dispatch is never repeated",
            ),
        ]
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        run(p, ctx)
    }
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

/// One dispatched run and what happened to it.
#[derive(Debug, Clone)]
struct Tracked {
    file: String,
    inputs: BTreeMap<String, String>,
    id: Option<i64>,
    run_number: Option<i64>,
    jobs: Vec<String>,
    html_url: String,
    status: String,
    dispatched_at: Instant,
    duration: Option<f64>,
    /// Why it counts as failed (None: success or not waited for).
    problem: Option<String>,
    /// Set when the module stopped waiting because Forgejo stopped answering: the last error.
    lost_contact: Option<String>,
}

impl Tracked {
    fn to_json(&self) -> Value {
        let mut m = json!({
            "workflow": self.file,
            "run_id": self.id,
            "run_number": self.run_number,
            "html_url": self.html_url,
            "status": self.status,
            "duration": self.duration,
            "jobs": self.jobs,
            "inputs": self.inputs,
        });
        if let Some(p) = &self.problem {
            m["error"] = json!(p);
        }
        m
    }
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    if !(p.poll_interval > 0.0 && p.poll_interval.is_finite()) {
        return Err(Failure::new(
            "poll_interval must be a positive number of seconds",
        ));
    }
    if p.timeout == 0 {
        return Err(Failure::new("timeout must be at least 1 second"));
    }
    if p.git_ref.trim().is_empty() {
        return Err(Failure::new(
            "ref is empty: give a branch, tag or commit (Forgejo answers 400 `ref is empty`)",
        ));
    }
    let targets = targets(&p)?;
    // Backoff doubles per attempt: more than 10 would wait for minutes on a dead server.
    if p.retries > 10 {
        return Err(Failure::new(format!(
            "`retries` must be 0 to 10 (each retry waits twice as long as the one before), got {}",
            p.retries
        )));
    }
    let api = Forgejo::new(&Settings {
        url: p.url.clone(),
        token: p.token.clone(),
        repo: p.repo.clone(),
        validate_certs: p.validate_certs,
        ca_cert: p.ca_cert.clone(),
        request_timeout: Duration::from_secs(p.request_timeout.max(1)),
        retries: p.retries,
    })?;
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

    // Validate everything before dispatching anything.
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for t in &targets {
        let text = match read_workflow(&api, &t.file, &p.git_ref)? {
            Ok(text) => text,
            Err(e) => {
                errors.push(format!("{}: {e}", t.file));
                continue;
            }
        };
        let wf = match workflow::parse(&text) {
            Ok(wf) => wf,
            Err(e) => {
                errors.push(format!("{}: the workflow file {e}", t.file));
                continue;
            }
        };
        if !wf.dispatchable {
            errors.push(format!(
                "{}: the workflow has no workflow_dispatch trigger (Forgejo would still run all its jobs); add `on: workflow_dispatch` or pick the deploy workflow",
                t.file
            ));
            continue;
        }
        match workflow::validate(&wf, &t.inputs) {
            Ok(inputs) => planned.push(Planned {
                file: if t.file.ends_with(".yml") || t.file.ends_with(".yaml") {
                    t.file.clone()
                } else {
                    format!("{}.yml", t.file)
                },
                inputs,
            }),
            Err(es) => errors.extend(es.into_iter().map(|e| format!("{}: {e}", t.file))),
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
    let encode = |inputs: &BTreeMap<String, InputValue>| -> BTreeMap<String, String> {
        inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.encode(major)))
            .collect()
    };
    if ctx.check_mode {
        let plan: Vec<Value> = planned
            .iter()
            .map(|w| {
                json!({
                    "workflow": w.file,
                    "ref": p.git_ref,
                    "inputs": w.inputs.iter().map(|(k, v)| (k.clone(), v.display())).collect::<BTreeMap<_, _>>(),
                })
            })
            .collect();
        return Ok(Outcome::new(true)
            .msg(format!(
                "check mode: {} workflow(s) valid at ref '{}', none dispatched",
                planned.len(),
                p.git_ref
            ))
            .set("runs", plan)
            .set("forgejo_version", version));
    }

    // Dispatch all (each POST exactly once), then wait on all.
    let mut tracked = Vec::new();
    let mut dispatch_errors = Vec::new();
    for w in &planned {
        let sent = encode(&w.inputs);
        let dispatched_at = Instant::now();
        match api.dispatch(&w.file, &p.git_ref, &sent, major >= 11) {
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
                tracked.push(Tracked {
                    file: w.file.clone(),
                    inputs: w
                        .inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.display()))
                        .collect(),
                    id,
                    run_number: number,
                    jobs,
                    html_url,
                    status: if id.is_some() {
                        "waiting".into()
                    } else {
                        "dispatched".into()
                    },
                    dispatched_at,
                    duration: None,
                    problem: None,
                    lost_contact: None,
                });
            }
            Err(e) => dispatch_errors.push(format!("{}: {}", w.file, explain_dispatch_error(e))),
        }
    }
    if p.wait {
        wait_all(&api, &p, major, &mut tracked, ctx);
    }
    let runs: Vec<Value> = tracked.iter().map(Tracked::to_json).collect();
    let mut failed: Vec<Value> = tracked
        .iter()
        .filter(|t| t.problem.is_some())
        .map(|t| json!({"workflow": t.file, "status": t.status, "html_url": t.html_url, "error": t.problem}))
        .collect();
    failed.extend(dispatch_errors.iter().map(|e| json!({"error": e})));
    let changed = !tracked.is_empty();
    if !failed.is_empty() {
        let mut parts: Vec<String> = tracked
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
        parts.extend(
            dispatch_errors
                .iter()
                .map(|e| format!("dispatch failed: {e}")),
        );
        let total = planned.len();
        let lost: Vec<&Tracked> = tracked
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
        return Err(Failure::new(format!(
            "{head}{} of {total} deploy run(s) did not succeed: {}",
            failed.len(),
            parts.join("; ")
        ))
        .set("changed", changed)
        .set("runs", runs)
        .set("failed_runs", failed)
        .set("forgejo_version", version));
    }
    let msg = if p.wait {
        let slowest = tracked
            .iter()
            .filter_map(|t| t.duration.map(|d| (d, &t.file)))
            .fold(None::<(f64, &String)>, |acc, x| match acc {
                Some(a) if a.0 >= x.0 => Some(a),
                _ => Some(x),
            });
        match slowest {
            Some((d, f)) => format!(
                "all {} run(s) succeeded (slowest: {f}, {d:.1}s)",
                tracked.len()
            ),
            None => format!("all {} run(s) succeeded", tracked.len()),
        }
    } else {
        format!(
            "dispatched {} workflow(s) at ref '{}' without waiting",
            tracked.len(),
            p.git_ref
        )
    };
    Ok(Outcome::new(changed)
        .msg(msg)
        .set("runs", runs)
        .set("failed_runs", Vec::<Value>::new())
        .set("forgejo_version", version))
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

const DONE: [&str; 4] = ["success", "failure", "cancelled", "skipped"];

/// Consecutive failed status requests (transport failure or 5xx) before the module stops
/// waiting on a run and reports it as `unknown`, provided [`lost_contact_window`] has passed too.
const LOST_CONTACT_POLLS: u32 = 3;
/// The shortest outage that counts as lost contact, whatever `poll_interval` is.
const LOST_CONTACT_MIN: Duration = Duration::from_secs(30);

/// How long status requests must keep failing (from the start of the first failed one) before
/// the module gives up on a run: max(3 × poll_interval, 30 s). A shorter outage is tolerated.
fn lost_contact_window(interval: Duration) -> Duration {
    interval
        .saturating_mul(LOST_CONTACT_POLLS)
        .max(LOST_CONTACT_MIN)
}

/// Whether a failed status request means the server is unreachable or broken (connection
/// refused, timeout, TLS, 5xx) rather than an answer about the run.
fn server_trouble(e: &ForgejoError) -> bool {
    match e {
        ForgejoError::Http(h) => match h {
            HttpError::Connect { .. }
            | HttpError::ConnectionLost { .. }
            | HttpError::Timeout { .. }
            | HttpError::Tls { .. }
            | HttpError::Other { .. } => true,
            HttpError::GaveUp { status, .. } => *status >= 500,
            HttpError::CaFile { .. }
            | HttpError::BadUrl { .. }
            | HttpError::BadHeader { .. }
            | HttpError::UrlCredentials { .. }
            | HttpError::Decode { .. } => false,
        },
        ForgejoError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A run of consecutive status requests that failed with [`server_trouble`].
#[derive(Debug, Clone)]
struct Outage {
    /// When the first failed request of the run of failures was started.
    since: Instant,
    polls: u32,
    last: String,
}

impl Outage {
    /// Records one more failed poll (started at `started`); true once the outage is long enough
    /// (both [`LOST_CONTACT_POLLS`] polls and `window`) to stop waiting.
    fn record(
        slot: &mut Option<Outage>,
        started: Instant,
        error: String,
        now: Instant,
        window: Duration,
    ) -> bool {
        let o = slot.get_or_insert(Outage {
            since: started,
            polls: 0,
            last: String::new(),
        });
        o.polls += 1;
        o.last = error;
        o.polls >= LOST_CONTACT_POLLS && now.saturating_duration_since(o.since) >= window
    }
}

/// Stops waiting on a run whose status Forgejo no longer gives.
fn give_up_lost(api: &Forgejo, t: &mut Tracked, o: &Outage, now: Instant) {
    let secs = now.saturating_duration_since(o.since).as_secs();
    t.status = "unknown".into();
    t.problem = Some(format!(
        "lost contact with Forgejo at {} while waiting ({} status request(s) in a row failed over {secs}s; the last: {}); the run was dispatched (id {}, {}) and may still be running: check it there",
        api.base_url(),
        o.polls,
        o.last,
        t.id.unwrap_or_default(),
        t.html_url
    ));
    t.lost_contact = Some(o.last.clone());
}

/// Polls every run in its own thread until it ends, times out or is not picked up; shows progress.
/// Returns as soon as the last run is settled: progress follows the runs' own status reports
/// rather than a clock.
fn wait_all(api: &Forgejo, p: &Params, major: u64, tracked: &mut [Tracked], ctx: &Context) {
    let interval = Duration::from_secs_f64(p.poll_interval);
    let timeout = Duration::from_secs(p.timeout);
    let pickup = Duration::from_secs(p.pickup_timeout);
    let mut live: Vec<String> = tracked.iter().map(|t| t.status.clone()).collect();
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    std::thread::scope(|scope| {
        for (i, t) in tracked.iter_mut().enumerate() {
            if t.id.is_none() {
                continue;
            }
            let tx = tx.clone();
            scope.spawn(move || {
                wait_one(
                    api,
                    major,
                    t,
                    interval,
                    timeout,
                    pickup,
                    p.skipped_is_success,
                    |s| {
                        let _ = tx.send((i, s.to_string()));
                    },
                )
            });
        }
        // The loop below ends when every waiting thread has dropped its sender.
        drop(tx);
        for (i, status) in rx {
            live[i] = status;
            if ctx.interactive {
                let done = live.iter().filter(|s| DONE.contains(&s.as_str())).count();
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for s in &live {
                    *by.entry(s.as_str()).or_default() += 1;
                }
                let summary: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
                ctx.progress(&format!(
                    "{done}/{} runs done: {}",
                    live.len(),
                    summary.join(", ")
                ));
            }
        }
        ctx.progress_done();
    });
}

/// The wait before the second status request of a run; each later wait doubles, up to
/// `poll_interval`. The first request goes out right after the dispatch.
const FIRST_POLL_DELAY: Duration = Duration::from_millis(250);

/// The waits between a run's status requests: 0.25 s, 0.5 s, 1 s, … up to `interval`, then
/// `interval`. Short runs are seen ending soon after they end; long ones cost few requests.
fn poll_delays(interval: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST_POLL_DELAY.min(interval)), move |d| {
        Some(d.saturating_mul(2).min(interval))
    })
}

/// The most status requests one run costs when waited on for `secs` seconds (as documented for
/// `poll_interval`): the first one, the doubling ones below `poll_interval`,
/// ⌈secs / poll_interval⌉ more, and one for the pickup deadline, which may cut a wait short.
/// HTTP retries of a failed request are not counted.
pub fn max_status_requests(poll_interval: f64, secs: f64) -> u64 {
    let ramp = (poll_interval / FIRST_POLL_DELAY.as_secs_f64())
        .log2()
        .ceil()
        .max(0.0);
    2 + ramp as u64 + (secs / poll_interval).ceil().max(0.0) as u64
}

#[allow(clippy::too_many_arguments)]
fn wait_one(
    api: &Forgejo,
    major: u64,
    t: &mut Tracked,
    interval: Duration,
    timeout: Duration,
    pickup: Duration,
    skipped_is_success: bool,
    report: impl Fn(&str),
) {
    let Some(id) = t.id else { return };
    let mut picked_up = false;
    let window = lost_contact_window(interval);
    let mut outage: Option<Outage> = None;
    let mut delays = poll_delays(interval);
    loop {
        let poll_started = Instant::now();
        let polled = if major >= 12 {
            api.run(id).map(|r| {
                if !r.html_url.is_empty() {
                    t.html_url = r.html_url.clone();
                }
                r.status
            })
        } else {
            api.tasks().map(|tasks| tasks_status(&tasks, t))
        };
        let mut last_error: Option<String> = None;
        match polled {
            Ok(status) => {
                outage = None;
                t.status = status;
                report(&t.status);
            }
            Err(e @ (ForgejoError::Unauthorized { .. } | ForgejoError::Forbidden { .. })) => {
                t.problem = Some(format!("could not be followed: {e}"));
                t.status = "unknown".into();
                return;
            }
            Err(e) if server_trouble(&e) => {
                let now = Instant::now();
                if Outage::record(&mut outage, poll_started, e.to_string(), now, window) {
                    if let Some(o) = &outage {
                        give_up_lost(api, t, o, now);
                    }
                    return;
                }
                last_error = Some(e.to_string());
            }
            Err(e) => {
                outage = None;
                last_error = Some(e.to_string());
            }
        }
        let status = t.status.as_str();
        if status == "running" {
            picked_up = true;
        }
        if DONE.contains(&status) {
            t.duration = Some(round1(t.dispatched_at.elapsed()));
            t.problem = match status {
                "success" => None,
                "skipped" if skipped_is_success => None,
                "skipped" => Some(
                    "was skipped (every job's `if:` was false; set skipped_is_success to accept)"
                        .into(),
                ),
                "failure" => Some("failed".into()),
                other => Some(format!("ended {other}")),
            };
            return;
        }
        let elapsed = t.dispatched_at.elapsed();
        // Only a status just read counts: after a failed request it is stale.
        if last_error.is_none()
            && !picked_up
            && matches!(status, "waiting" | "blocked" | "unknown")
            && elapsed >= pickup
        {
            t.problem = Some(format!(
                "no runner picked it up within {}s (still {status}; check that a runner with the job's runs-on label is online)",
                pickup.as_secs()
            ));
            return;
        }
        if elapsed >= timeout {
            if let Some(o) = &outage {
                give_up_lost(api, t, o, Instant::now());
                return;
            }
            t.problem = Some(match &last_error {
                Some(e) => format!(
                    "timed out after {}s; the last status request failed: {e}",
                    timeout.as_secs()
                ),
                None if picked_up => format!(
                    "timed out running after {}s (still {status})",
                    timeout.as_secs()
                ),
                None => format!("timed out after {}s (still {status})", timeout.as_secs()),
            });
            return;
        }
        // Never sleep past the pickup or timeout deadline: each is judged on a fresh status.
        let mut next = delays.next().unwrap_or(interval);
        if !picked_up && pickup > elapsed {
            next = next.min(pickup - elapsed);
        }
        if timeout > elapsed {
            next = next.min(timeout - elapsed);
        }
        std::thread::sleep(next);
    }
}

fn round1(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// v11: a run's status from its tasks (best effort: tasks appear only once picked up).
fn tasks_status(tasks: &[client::Task], t: &Tracked) -> String {
    let mine: Vec<&client::Task> = tasks
        .iter()
        .filter(|x| Some(x.run_number) == t.run_number && x.workflow_id == t.file)
        .collect();
    if mine.is_empty() {
        return "waiting".into();
    }
    let pending = mine.iter().any(|x| !DONE.contains(&x.status.as_str()));
    if pending || mine.len() < t.jobs.len().max(1) {
        return "running".into();
    }
    let any = |s: &str| mine.iter().any(|x| x.status == s);
    if mine.iter().all(|x| x.status == "skipped") {
        "skipped".into()
    } else if any("cancelled") {
        "cancelled".into()
    } else if any("failure") {
        "failure".into()
    } else {
        "success".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_from_a_quarter_second_to_poll_interval() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let take = |i: Duration, n| poll_delays(i).take(n).collect::<Vec<_>>();
        assert_eq!(
            take(Duration::from_secs(5), 8),
            ms(&[250, 500, 1000, 2000, 4000, 5000, 5000, 5000])
        );
        assert_eq!(
            take(Duration::from_millis(600), 4),
            ms(&[250, 500, 600, 600])
        );
        assert_eq!(take(Duration::from_millis(100), 3), ms(&[100, 100, 100]));
    }

    /// The documented bound holds for every poll_interval and run length: the schedule is
    /// played out (requests at 0, then after each delay) until the run's end is seen.
    #[test]
    fn status_requests_per_run_stay_within_the_documented_bound() {
        for interval in [0.1, 0.25, 0.3, 0.5, 1.0, 5.0, 7.0, 30.0, 60.0] {
            for tenths in 0..=3000 {
                let secs = tenths as f64 / 10.0;
                let end = Duration::from_secs_f64(secs);
                let mut at = Duration::ZERO;
                let mut requests = 1u64;
                let mut delays = poll_delays(Duration::from_secs_f64(interval));
                while at < end {
                    at += delays.next().unwrap();
                    requests += 1;
                }
                // One request is kept back for the pickup deadline.
                let bound = max_status_requests(interval, secs) - 1;
                assert!(
                    requests <= bound,
                    "poll_interval {interval}, {secs}s: {requests} > {bound}"
                );
            }
        }
        // The documented example: poll_interval 5, a 60 s run.
        assert_eq!(max_status_requests(5.0, 60.0), 19);
    }

    #[test]
    fn lost_contact_window_is_three_polls_but_at_least_30s() {
        assert_eq!(
            lost_contact_window(Duration::from_millis(500)),
            Duration::from_secs(30)
        );
        assert_eq!(
            lost_contact_window(Duration::from_secs(5)),
            Duration::from_secs(30)
        );
        assert_eq!(
            lost_contact_window(Duration::from_secs(20)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn an_outage_counts_only_after_three_polls_and_the_window() {
        let window = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut slot = None;
        // Many quick failures: not yet (window not over).
        for i in 0..10 {
            let now = t0 + Duration::from_secs(i);
            assert!(!Outage::record(&mut slot, now, "e".into(), now, window));
        }
        // Window over, and 3+ polls: lost.
        let now = t0 + Duration::from_secs(31);
        assert!(Outage::record(&mut slot, now, "last".into(), now, window));
        assert_eq!(slot.as_ref().map(|o| o.last.as_str()), Some("last"));
        // One or two failures spread over a long time are not enough.
        let mut slot = None;
        assert!(!Outage::record(&mut slot, t0, "e".into(), t0, window));
        let late = t0 + Duration::from_secs(100);
        assert!(!Outage::record(&mut slot, late, "e".into(), late, window));
        assert!(Outage::record(&mut slot, late, "e".into(), late, window));
    }

    #[test]
    fn server_trouble_is_transport_or_5xx_only() {
        let connect = ForgejoError::Http(HttpError::Connect {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            detail: "refused".into(),
        });
        let timeout = ForgejoError::Http(HttpError::Timeout {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            secs: 30,
        });
        let tls = ForgejoError::Http(HttpError::Tls {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            detail: "unknown issuer".into(),
        });
        let api = |status| ForgejoError::Api {
            what: "reading run 1".into(),
            status,
            detail: String::new(),
        };
        assert!(server_trouble(&connect));
        assert!(server_trouble(&timeout));
        assert!(server_trouble(&tls));
        assert!(server_trouble(&api(502)));
        assert!(server_trouble(&api(500)));
        assert!(!server_trouble(&api(404)));
        assert!(!server_trouble(&api(429)));
        assert!(!server_trouble(&ForgejoError::Shape {
            what: "reading run 1".into(),
            detail: "missing field".into(),
        }));
    }

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
