//! Runs: their records, how they move on wall-clock time (and run their hooks), and the runs and
//! tasks APIs.

use super::workflow::Job;
use super::{api_error, major, not_found, Behaviour, RunInfo, State};
use crate::emulator::time::rfc3339_at as rfc3339;
use crate::emulator::{Paging, Request, Response};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) type HookSlot = Arc<Mutex<Option<std::result::Result<(), String>>>>;

pub(super) struct Run {
    pub(super) info: RunInfo,
    pub(super) title: String,
    pub(super) commit_sha: String,
    pub(super) prettyref: String,
    pub(super) job_list: Vec<Job>,
    pub(super) behaviour: Behaviour,
    pub(super) created: SystemTime,
    pub(super) created_at: Instant,
    pub(super) started: Option<(SystemTime, Instant)>,
    pub(super) stopped: Option<SystemTime>,
    pub(super) status: &'static str,
    pub(super) hook_slot: Option<HookSlot>,
    pub(super) hook_error: Option<String>,
    /// The run's concurrency group (lower-cased) and mode.
    pub(super) concurrency_group: String,
    pub(super) concurrency: Concurrency,
}

/// Forgejo's `ConcurrencyMode` of a run (`models/actions/run.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Concurrency {
    Unlimited,
    /// Not picked up while a run of its group runs, or an older one of its group is pending
    /// (`models/actions/task.go: getConcurrencyCondition`): the group's runs start one at a
    /// time, oldest first; none is cancelled.
    QueueBehind,
    /// Cancels the group's pending and running runs when dispatched
    /// (`CancelPreviousWithConcurrencyGroup`).
    CancelInProgress,
}

const PENDING: [&str; 4] = ["unknown", "waiting", "running", "blocked"];

/// Cancels every run of `group` that has not ended (at a dispatch with `cancel-in-progress`).
/// A hook already started keeps running; its result is ignored.
pub(super) fn cancel_group(s: &mut State, group: &str) {
    if major(s) < 14 {
        return;
    }
    for run in s.runs.iter_mut() {
        if run.concurrency_group == group && PENDING.contains(&run.status) {
            run.status = "cancelled";
            run.stopped = Some(SystemTime::now());
        }
    }
}

/// Whether a waiting run must stay waiting for its concurrency group (v14+).
fn queued_behind(s: &State, run: &Run) -> bool {
    major(s) >= 14
        && run.concurrency == Concurrency::QueueBehind
        && s.runs.iter().any(|o| {
            o.info.id != run.info.id
                && o.concurrency_group == run.concurrency_group
                && (o.status == "running"
                    || (PENDING.contains(&o.status) && o.info.run_number < run.info.run_number))
        })
}

pub(super) fn tick(state: &Mutex<State>) {
    let mut s = super::lock(state);
    let now = Instant::now();
    let hooks = s.hooks.clone();
    for i in 0..s.runs.len() {
        // One at a time: a run picked up here blocks the next of its group in this same tick.
        let queued = s.runs[i].status == "waiting" && queued_behind(&s, &s.runs[i]);
        let run = &mut s.runs[i];
        match run.status {
            "waiting" => {
                let stuck = run.behaviour.no_runner || run.job_list.iter().any(|j| j.no_runner);
                if !stuck && !queued && now >= run.created_at + run.behaviour.pickup {
                    run.status = "running";
                    run.started = Some((SystemTime::now(), now));
                    if let Some(hook) = hooks.get(&run.info.workflow_id) {
                        let slot = Arc::new(Mutex::new(None));
                        let (hook, slot2, info) = (hook.clone(), slot.clone(), run.info.clone());
                        std::thread::spawn(move || {
                            let r = hook(&info);
                            *slot2.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        });
                        run.hook_slot = Some(slot);
                    }
                }
            }
            "running" => {
                let started = run.started.map(|(_, i)| i).unwrap_or(now);
                if now < started + run.behaviour.duration {
                    continue;
                }
                let hook_result = match &run.hook_slot {
                    None => Some(Ok(())),
                    Some(slot) => slot.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                };
                match hook_result {
                    None => continue,
                    Some(Ok(())) => run.status = run.behaviour.outcome.status(),
                    Some(Err(e)) => {
                        run.status = "failure";
                        run.hook_error = Some(e);
                    }
                }
                run.stopped = Some(SystemTime::now());
            }
            _ => {}
        }
    }
}

fn user_json(s: &State) -> Value {
    json!({
        "id": 1,
        "login": "deploy-bot",
        "login_name": "",
        "full_name": "Deploy bot",
        "email": "deploy-bot@example.org",
        "avatar_url": format!("{}/avatars/deploy-bot", s.base_url),
        "html_url": format!("{}/deploy-bot", s.base_url),
        "language": "",
        "is_admin": false,
        "restricted": false,
        "active": true,
        "prohibit_login": false,
        "visibility": "public",
    })
}

fn repo_json(s: &State) -> Value {
    let full = format!("{}/{}", s.opts.owner, s.opts.repo);
    json!({
        "id": 7,
        "owner": {
            "id": 2, "login": s.opts.owner, "full_name": "", "email": "",
            "avatar_url": format!("{}/avatars/{}", s.base_url, s.opts.owner),
            "html_url": format!("{}/{}", s.base_url, s.opts.owner),
        },
        "name": s.opts.repo,
        "full_name": full,
        "description": "Homelab SSO rotation",
        "private": true,
        "fork": false,
        "archived": s.opts.archived,
        "html_url": format!("{}/{full}", s.base_url),
        "clone_url": format!("{}/{full}.git", s.base_url),
        "default_branch": s.opts.default_branch,
        "has_actions": true,
    })
}

fn run_json(s: &State, r: &Run) -> Value {
    let epoch = rfc3339(UNIX_EPOCH);
    let started = r
        .started
        .map(|(t, _)| rfc3339(t))
        .unwrap_or_else(|| epoch.clone());
    let stopped = r.stopped.map(rfc3339).unwrap_or_else(|| epoch.clone());
    let updated = r.stopped.or(r.started.map(|(t, _)| t)).unwrap_or(r.created);
    let payload = json!({
        "inputs": r.info.inputs,
        "ref": r.info.git_ref,
        "repository": {"full_name": format!("{}/{}", s.opts.owner, s.opts.repo)},
        "sender": {"login": "deploy-bot"},
        "workflow": r.info.workflow_id,
    });
    let mut m = json!({
        "id": r.info.id,
        "title": r.title,
        "repository": repo_json(s),
        "trigger_user": user_json(s),
        "ScheduleID": 0,
        "prettyref": r.prettyref,
        "is_ref_deleted": false,
        "commit_sha": r.commit_sha,
        "is_fork_pull_request": false,
        "need_approval": false,
        "approved_by": 0,
        "event": "workflow_dispatch",
        "event_payload": payload.to_string(),
        "trigger_event": "workflow_dispatch",
        "status": r.status,
        "started": started,
        "stopped": stopped,
        "created": rfc3339(r.created),
        "updated": rfc3339(updated),
        "html_url": format!("{}/{}/{}/actions/runs/{}", s.base_url, s.opts.owner, s.opts.repo, r.info.run_number),
        "index_in_repo": r.info.run_number,
        "workflow_id": r.info.workflow_id,
    });
    let dur = match (r.started, r.stopped) {
        (Some((st, _)), Some(sp)) => sp.duration_since(st).unwrap_or_default(),
        (Some((_, i)), None) => i.elapsed(),
        _ => Duration::ZERO,
    };
    if !dur.is_zero() {
        m["duration"] = json!(dur.as_nanos() as i64);
    }
    m
}

const STATUSES: [&str; 8] = [
    "unknown",
    "waiting",
    "running",
    "success",
    "failure",
    "cancelled",
    "skipped",
    "blocked",
];

fn status_filter(s: &State, req: &Request) -> std::result::Result<Vec<String>, Response> {
    let mut out = Vec::new();
    for v in req.q_all("status") {
        if !STATUSES.contains(&v) {
            return Err(api_error(s, 400, &format!("unknown status: {v}")));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

pub(super) fn list_runs(s: &State, req: &Request) -> Response {
    let statuses = match status_filter(s, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = |k: &str| req.q(k);
    let v15 = major(s) >= 15;
    let mut runs: Vec<&Run> = s
        .runs
        .iter()
        .filter(|r| statuses.is_empty() || statuses.iter().any(|st| st == r.status))
        .filter(|_| q("event").is_none_or(|e| e == "workflow_dispatch"))
        .filter(|r| q("run_number").is_none_or(|n| n == r.info.run_number.to_string()))
        .filter(|r| q("head_sha").is_none_or(|h| h == r.commit_sha))
        .filter(|r| !v15 || q("ref").is_none_or(|x| x == r.info.git_ref))
        .filter(|r| !v15 || q("workflow_id").is_none_or(|w| w == r.info.workflow_id))
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.info.id));
    let total = runs.len();
    let items: Vec<Value> = paging(req)
        .slice(runs)
        .into_iter()
        .map(|r| run_json(s, r))
        .collect();
    Response::json(200, json!({"workflow_runs": items, "total_count": total}))
}

pub(super) fn get_run(s: &State, id: &str) -> Response {
    match id
        .parse::<i64>()
        .ok()
        .and_then(|id| s.runs.iter().find(|r| r.info.id == id))
    {
        Some(r) => Response::json(200, run_json(s, r)),
        None => not_found(s, &[format!("run with id {id}: action run does not exist")]),
    }
}

pub(super) fn list_tasks(s: &State, req: &Request) -> Response {
    let statuses = if major(s) >= 15 {
        match status_filter(s, req) {
            Ok(x) => x,
            Err(r) => return r,
        }
    } else {
        Vec::new()
    };
    // A task exists once a runner picked the job up.
    let mut tasks = Vec::new();
    for r in s.runs.iter().filter(|r| r.started.is_some()) {
        for (i, job) in r.job_list.iter().enumerate() {
            let id = r.info.id * 100 + i as i64;
            tasks.push((id, r, job));
        }
    }
    let tasks: Vec<_> = tasks
        .into_iter()
        .filter(|(_, r, _)| statuses.is_empty() || statuses.iter().any(|st| st == r.status))
        .collect();
    let total = tasks.len();
    let mut tasks = tasks;
    tasks.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
    let items: Vec<Value> = paging(req)
        .slice(tasks)
        .into_iter()
        .map(|(id, r, job)| {
            let started = r.started.map(|(t, _)| rfc3339(t)).unwrap_or_else(|| rfc3339(UNIX_EPOCH));
            json!({
                "id": id,
                "name": job.name,
                "head_branch": r.prettyref,
                "head_sha": r.commit_sha,
                "run_number": r.info.run_number,
                "event": "workflow_dispatch",
                "display_title": r.title,
                "status": r.status,
                "workflow_id": r.info.workflow_id,
                "url": format!("{}/{}/{}/actions/runs/{}", s.base_url, s.opts.owner, s.opts.repo, r.info.run_number),
                "created_at": rfc3339(r.created),
                "updated_at": rfc3339(r.stopped.unwrap_or(r.created)),
                "run_started_at": started,
            })
        })
        .collect();
    Response::json(200, json!({"workflow_runs": items, "total_count": total}))
}

/// `page` (from 1) and `limit` (default 30, at most 50), as Forgejo's list APIs read them.
fn paging(req: &Request) -> Paging {
    Paging::from_query(req, "page", "limit", 30, 50)
}
