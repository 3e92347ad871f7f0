//! `redeploy_trigger` against the Forgejo emulator of the lab (real HTTP on 127.0.0.1).

use ansible_module::run_for_test;
use forgejo_dispatch::{max_status_requests, RedeployTrigger};
use lab::catalog::REDEPLOY_TARGETS;
use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts, RunOutcome};
use serde_json::{json, Map, Value};
use std::time::Duration;
use testkit::module::spawn_module;

fn files() -> Vec<String> {
    REDEPLOY_TARGETS
        .iter()
        .map(|s| format!("deploy-{s}.yml"))
        .collect()
}

fn args(fj: &Forgejo, extra: Value) -> Value {
    let mut a = json!({
        "url": fj.url(),
        "token": fj.token(),
        "repo": fj.repo(),
        "ref": "main",
        "poll_interval": 0.5,
        "wait_timeout": 60,
        "pickup_timeout": 30,
    });
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn run(fj: &Forgejo, extra: Value) -> Map<String, Value> {
    run_for_test::<RedeployTrigger>(args(fj, extra))
}

fn failed(r: &Map<String, Value>) -> bool {
    r.get("failed").and_then(Value::as_bool) == Some(true)
}

fn msg(r: &Map<String, Value>) -> String {
    r.get("msg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Status requests (GET of the run) the emulator received for run `id`.
fn status_requests(fj: &Forgejo, id: i64) -> u64 {
    fj.requests_to(
        "GET",
        &format!("/api/v1/repos/{}/actions/runs/{id}", fj.repo()),
    ) as u64
}

fn posts(fj: &Forgejo) -> usize {
    fj.request_log()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

#[test]
fn nine_workflows_with_different_durations_all_succeed() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    for (i, f) in files().iter().enumerate() {
        fj.set_behaviour(
            f,
            Behaviour::lasting(Duration::from_millis(500 + 300 * i as u64)),
        );
    }
    let r = run(
        &fj,
        json!({"workflows": files(), "inputs": {"reason": "rotation"}}),
    );
    assert!(!failed(&r), "{r:?}");
    assert_eq!(r["changed"], json!(true));
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 9);
    let mut ids = std::collections::BTreeSet::new();
    for run in runs {
        assert_eq!(run["status"], "success", "{run}");
        assert!(ids.insert(run["run_id"].as_i64().unwrap()));
        let n = run["run_number"].as_i64().unwrap();
        assert!(
            run["html_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/actions/runs/{n}")),
            "{run}"
        );
        assert!(run["duration"].as_f64().unwrap() > 0.0);
    }
    // Dispatched all, then waited on all concurrently (checked from the order of requests, not
    // from timing): every dispatch precedes the first status poll, and the polls of different
    // runs interleave (waiting one run after another would switch runs only 8 times).
    let log = fj.request_log();
    let runs_prefix = format!("/api/v1/repos/{}/actions/runs/", fj.repo());
    let first_poll = log
        .iter()
        .position(|r| r.method == "GET" && r.path.starts_with(&runs_prefix))
        .expect("status polls");
    let last_dispatch = log
        .iter()
        .rposition(|r| r.method == "POST")
        .expect("dispatches");
    assert!(
        last_dispatch < first_poll,
        "every workflow is dispatched before waiting starts"
    );
    let polled: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(&runs_prefix))
        .map(|r| r.path.as_str())
        .collect();
    let switches = polled.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > 8,
        "runs were waited on one after another ({switches} switches)"
    );
    for f in files() {
        assert_eq!(fj.dispatch_requests(&f), 1, "{f} dispatched once");
    }
    // Bounded polling: the documented bound for the time each run was waited on (its reported
    // duration, rounded to 0.1 s), whatever the machine's speed.
    for run in runs {
        let id = run["run_id"].as_i64().unwrap();
        let polls = status_requests(&fj, id);
        let secs = run["duration"].as_f64().unwrap() + 0.05;
        let bound = max_status_requests(0.5, secs);
        assert!(polls <= bound, "run {id}: {polls} polls > {bound}");
        assert!(polls >= 1);
    }
    // The emulator received the inputs as strings, the boolean default explicitly.
    let snap = fj.runs();
    assert!(snap.iter().all(|s| s.info.inputs["reason"] == "rotation"));
    assert!(snap.iter().all(|s| s.info.inputs["dry_run"] == "false"));
}

/// No idle wait: the first status request follows the dispatch at once, and each next one a
/// eighth of the run's age later (at least 0.25 s). So with poll_interval 60, runs of 1.9 s
/// (the lab's deploy runs) are seen ending within 0.25 s of their end, not a poll_interval (or,
/// as when the waits doubled from 0.25 s, at 3.75 s) later. Proven by a deadline far from the
/// run lengths, by request counts, and by how late each end was seen, with 0.6 s to spare for a
/// busy machine (the doubling waits were 1.85 s late).
#[test]
fn short_runs_are_seen_ending_without_waiting_a_poll_interval() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let wfs = ["deploy-n8n.yml", "deploy-gatus.yml", "deploy-glance.yml"];
    for w in wfs {
        fj.set_behaviour(w, Behaviour::lasting(Duration::from_millis(1900)));
    }
    let a = args(
        &fj,
        json!({"workflows": wfs, "poll_interval": 60, "pickup_timeout": 120, "wait_timeout": 300}),
    );
    let r = spawn_module(
        std::path::Path::new(env!("CARGO_BIN_EXE_redeploy_trigger")),
        &a,
        &["FORGEJO_URL", "FORGEJO_TOKEN", "FORGEJO_CACERT"],
        &[],
    )
    .finish(Duration::from_secs(40));
    assert!(!r.failed(), "{}", r.msg());
    let runs = r.json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let lasted: std::collections::BTreeMap<i64, f64> = fj
        .runs()
        .iter()
        .map(|s| (s.info.id, s.lasted.expect("ended").as_secs_f64()))
        .collect();
    for run in runs {
        assert_eq!(run["status"], "success", "{run}");
        let id = run["run_id"].as_i64().unwrap();
        let polls = status_requests(&fj, id);
        // Every wait is 0.25 s at least, and the reported duration (dispatch to the request
        // that saw the end, rounded to 0.1 s) covers all of them.
        let secs = run["duration"].as_f64().unwrap() + 0.05;
        let bound = 1 + (secs / 0.25).floor() as u64;
        assert!(
            (1..=bound).contains(&polls),
            "run {id}: {polls} status requests in {secs:.2}s, expected 1..={bound}"
        );
        let ran = lasted[&id];
        let late = secs - ran;
        assert!(
            late <= (ran / 8.0).max(0.25) + 0.6,
            "run {id} of {ran:.2}s was seen ending {late:.2}s late"
        );
    }
}

#[test]
fn one_failure_names_the_run_and_its_url_and_reports_the_others() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    for f in files() {
        fj.set_behaviour(&f, Behaviour::lasting(Duration::from_millis(300)));
    }
    fj.set_behaviour(
        "deploy-n8n.yml",
        Behaviour::lasting(Duration::from_millis(300)).outcome(RunOutcome::Failure),
    );
    let r = run(&fj, json!({"workflows": files()}));
    assert!(failed(&r), "{r:?}");
    let m = msg(&r);
    let n8n = fj
        .runs()
        .into_iter()
        .find(|s| s.info.workflow_id == "deploy-n8n.yml")
        .unwrap();
    let url = format!(
        "{}/{}/actions/runs/{}",
        fj.url(),
        fj.repo(),
        n8n.info.run_number
    );
    assert!(
        m.contains("deploy-n8n.yml") && m.contains("failed") && m.contains(&url),
        "{m}"
    );
    assert!(m.starts_with("1 of 9"), "{m}");
    assert_eq!(r["changed"], json!(true));
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 9);
    assert_eq!(runs.iter().filter(|x| x["status"] == "success").count(), 8);
    let f = r["failed_runs"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["workflow"], "deploy-n8n.yml");
    assert_eq!(f[0]["html_url"], json!(url));
}

const STRICT: &str = r#"name: deploy-strict
on:
  workflow_dispatch:
    inputs:
      ticket:
        description: Change ticket
        type: string
        required: true
      mode:
        type: choice
        options: [restart, recreate]
        default: restart
      replicas:
        type: number
        default: "1"
jobs:
  deploy:
    runs-on: self-hosted
    steps:
      - run: "true"
"#;

fn strict() -> Forgejo {
    Forgejo::start(ForgejoOpts::default().file(
        "main",
        ".forgejo/workflows/deploy-strict.yml",
        STRICT,
    ))
    .unwrap()
}

#[test]
fn invalid_requests_fail_clearly_and_dispatch_nothing() {
    let fj = strict();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"workflows": ["deploy-nope.yml"]}),
            "workflow file not found in .forgejo/workflows/",
        ),
        (
            json!({"workflows": ["deploy-n8n.yml"], "ref": "nope"}),
            "ref 'nope' does not exist",
        ),
        (
            json!({"workflows": ["deploy-strict.yml"]}),
            "missing required input 'ticket' (Change ticket)",
        ),
        (
            json!({"workflows": [{"workflow": "deploy-strict.yml", "inputs": {"ticket": "T-1", "mode": "bogus"}}]}),
            "must be one of: restart, recreate",
        ),
        (
            json!({"workflows": ["deploy-strict.yml"], "inputs": {"ticket": ["T-1"]}}),
            "input 'ticket' (Change ticket) is a list",
        ),
        (
            json!({"workflows": ["deploy-strict.yml"], "inputs": {"ticket": "T-1", "replicas": "many"}}),
            "is a number",
        ),
        (
            json!({"workflows": ["deploy-n8n.yml"], "inputs": {"colour": "red"}}),
            "unknown input 'colour'",
        ),
        (
            json!({"workflows": ["deploy-n8n.yml"], "inputs": {"dry_run": "maybe"}}),
            "is a boolean",
        ),
    ];
    for (extra, want) in cases {
        let r = run(&fj, extra.clone());
        assert!(failed(&r), "{extra}: {r:?}");
        let m = msg(&r);
        assert!(
            m.contains("nothing was dispatched") && m.contains(want),
            "{extra}: {m}"
        );
    }
    // One bad workflow among good ones: still nothing dispatched.
    let r = run(
        &fj,
        json!({"workflows": ["deploy-n8n.yml", "deploy-glance.yml", "deploy-nope.yml"]}),
    );
    assert!(failed(&r) && msg(&r).contains("deploy-nope.yml"), "{r:?}");
    assert_eq!(posts(&fj), 0, "{:?}", fj.request_log());
    assert!(fj.runs().is_empty());
    assert!(!msg(&r).contains(&fj.token()));
}

#[test]
fn check_mode_validates_and_dispatches_nothing() {
    let fj = strict();
    let r = run(
        &fj,
        json!({"workflows": ["deploy-strict.yml"], "inputs": {"ticket": "T-1"}, "_ansible_check_mode": true}),
    );
    assert!(!failed(&r), "{r:?}");
    assert_eq!(r["changed"], json!(true));
    assert_eq!(posts(&fj), 0);
    let r = run(
        &fj,
        json!({"workflows": ["deploy-strict.yml"], "_ansible_check_mode": true}),
    );
    assert!(
        failed(&r) && msg(&r).contains("missing required input"),
        "{r:?}"
    );
}

fn boolean_arrives_as_true(version: &str) {
    let fj = Forgejo::start(ForgejoOpts::version(version)).unwrap();
    fj.set_behaviour(
        "deploy-glance.yml",
        Behaviour::lasting(Duration::from_millis(200)),
    );
    let r = run(
        &fj,
        json!({"workflows": [{"workflow": "deploy-glance.yml", "inputs": {"dry_run": true}}]}),
    );
    assert!(!failed(&r), "{version}: {r:?}");
    let runs = fj.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].info.inputs["dry_run"], "true", "{version}");
    let r = run(
        &fj,
        json!({"workflows": ["deploy-glance.yml"], "inputs": {"dry_run": "no"}}),
    );
    assert!(!failed(&r), "{version}: {r:?}");
    assert_eq!(fj.runs()[1].info.inputs["dry_run"], "false", "{version}");
}

#[test]
fn boolean_input_arrives_as_true_in_v13() {
    boolean_arrives_as_true("13.0.2");
}

#[test]
fn boolean_input_arrives_as_true_in_v15() {
    boolean_arrives_as_true("15.0.3");
}

#[test]
fn no_runner_is_reported_as_not_picked_up() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    fj.set_behaviour("deploy-gatus.yml", Behaviour::no_runner());
    fj.set_behaviour(
        "deploy-glance.yml",
        Behaviour::lasting(Duration::from_millis(200)),
    );
    let r = run(
        &fj,
        json!({"workflows": ["deploy-gatus.yml", "deploy-glance.yml"], "pickup_timeout": 2, "wait_timeout": 30}),
    );
    assert!(failed(&r), "{r:?}");
    let m = msg(&r);
    assert!(
        m.contains("deploy-gatus.yml no runner picked it up within 2s"),
        "{m}"
    );
    assert!(!m.contains("timed out"), "{m}");
    assert!(!m.contains("deploy-glance.yml"), "{m}");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "waiting");
    assert_eq!(runs[1]["status"], "success");
}

#[test]
fn runs_on_no_runner_label_stays_waiting() {
    let wf = "name: x\non:\n  workflow_dispatch:\njobs:\n  deploy:\n    runs-on: no-runner\n    steps:\n      - run: \"true\"\n";
    let fj =
        Forgejo::start(ForgejoOpts::default().file("main", ".forgejo/workflows/deploy-x.yml", wf))
            .unwrap();
    let r = run(
        &fj,
        json!({"workflows": ["deploy-x.yml"], "pickup_timeout": 1}),
    );
    assert!(
        msg(&r).contains("no runner picked it up within 1s"),
        "{r:?}"
    );
}

#[test]
fn running_too_long_is_a_timeout_not_a_missing_runner() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    fj.set_behaviour(
        "deploy-seedbox.yml",
        Behaviour::lasting(Duration::from_secs(60)),
    );
    let r = run(
        &fj,
        json!({"workflows": ["deploy-seedbox.yml"], "wait_timeout": 2, "pickup_timeout": 1}),
    );
    let m = msg(&r);
    assert!(
        failed(&r) && m.contains("timed out running after 2s"),
        "{m}"
    );
    assert!(!m.contains("no runner"), "{m}");
}

fn old_version_refuses_wait(version: &str) {
    let fj = Forgejo::start(ForgejoOpts::version(version)).unwrap();
    let r = run(&fj, json!({"workflows": ["deploy-n8n.yml"], "wait": true}));
    assert!(failed(&r), "{r:?}");
    assert!(
        msg(&r).contains("needs Forgejo ≥ 11 (≥ 12 for run status)"),
        "{}",
        msg(&r)
    );
    assert_eq!(posts(&fj), 0);
    let r = run(
        &fj,
        json!({"workflows": ["deploy-n8n.yml", "deploy-gatus.yml"], "wait": false}),
    );
    assert!(!failed(&r), "{r:?}");
    assert_eq!(r["changed"], json!(true));
    assert_eq!(fj.runs().len(), 2);
    assert_eq!(fj.dispatch_requests("deploy-n8n.yml"), 1);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "dispatched");
    assert_eq!(runs[0]["run_id"], Value::Null);
}

#[test]
fn v8_refuses_wait_and_dispatches_without_it() {
    old_version_refuses_wait("8.0.3");
}

#[test]
fn v10_refuses_wait_and_dispatches_without_it() {
    old_version_refuses_wait("10.0.3");
}

#[test]
fn v11_waits_through_the_tasks_list() {
    let fj = Forgejo::start(ForgejoOpts::version("11.0.4")).unwrap();
    fj.set_behaviour(
        "deploy-n8n.yml",
        Behaviour::lasting(Duration::from_millis(400)),
    );
    fj.set_behaviour(
        "deploy-gatus.yml",
        Behaviour::lasting(Duration::from_millis(400)).outcome(RunOutcome::Failure),
    );
    let r = run(
        &fj,
        json!({"workflows": ["deploy-n8n.yml", "deploy-gatus.yml"]}),
    );
    assert!(failed(&r), "{r:?}");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "success");
    assert_eq!(runs[1]["status"], "failure");
    assert!(msg(&r).starts_with("1 of 2"), "{}", msg(&r));
}

#[test]
fn wrong_token_and_missing_scope_are_clear() {
    let fj = Forgejo::start(ForgejoOpts::default().token(lab::forgejo::Token::new(
        "read-only-token-9d8e",
        &["read:repository"],
        true,
    )))
    .unwrap();
    let r = run(
        &fj,
        json!({"workflows": ["deploy-n8n.yml"], "token": "wrong-token-1234"}),
    );
    assert!(
        failed(&r) && msg(&r).contains("refused the token (HTTP 401"),
        "{r:?}"
    );
    assert!(!msg(&r).contains("wrong-token-1234"));
    let r = run(
        &fj,
        json!({"workflows": ["deploy-n8n.yml"], "token": "read-only-token-9d8e"}),
    );
    assert!(failed(&r), "{r:?}");
    let m = msg(&r);
    assert!(
        m.contains("HTTP 403") && m.contains("write:repository"),
        "{m}"
    );
    assert!(fj.runs().is_empty());
}

#[test]
fn dot_segments_in_repo_and_workflow_names_are_refused_before_any_request() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let repo = fj.repo();
    let (owner, name) = repo.split_once('/').unwrap();
    for (bad, what) in [
        (json!({"repo": format!("{owner}/..")}), "`repo`"),
        (json!({"repo": format!("../{name}")}), "`repo`"),
        (json!({"repo": format!("./{name}")}), "`repo`"),
        (json!({"workflows": [".."]}), "`workflows[0]`"),
        (json!({"workflows": [{"workflow": "."}]}), "`workflows[0]`"),
    ] {
        let mut extra = json!({"workflows": ["deploy-n8n.yml"]});
        for (k, v) in bad.as_object().unwrap() {
            extra[k] = v.clone();
        }
        let r = run(&fj, extra);
        assert!(failed(&r), "{bad}: {r:?}");
        let m = msg(&r);
        assert!(
            m.contains(what) && m.contains("holds a `.` or `..` path segment"),
            "{bad}: {m}"
        );
        assert!(fj.request_log().is_empty(), "{bad}: a request was sent");
    }
}

/// `retries`: the further attempts of a safe request (here the first one, the version read) after
/// a 5xx; 0 sends it once, and more than 10 is refused before any request.
#[test]
fn retries_option_bounds_the_attempts_of_a_read() {
    let fj = strict();
    let check = json!({"workflows": ["deploy-strict.yml"], "inputs": {"ticket": "T-1"}, "_ansible_check_mode": true});
    let with = |retries: u64| {
        let mut a = check.clone();
        a["retries"] = json!(retries);
        a
    };
    let r = run(&fj, with(11));
    assert!(
        failed(&r) && msg(&r).contains("`retries` must be 0 to 10"),
        "{r:?}"
    );
    assert_eq!(fj.requests(), 0, "refused before any request");

    fj.fail_next(1, 503, Some(0));
    let r = run(&fj, with(0));
    assert!(failed(&r), "no retry: the 503 ends the run: {r:?}");
    assert_eq!(fj.requests(), 1);

    fj.fail_next(2, 503, Some(0));
    let r = run(&fj, with(2));
    assert!(!failed(&r), "two retries get past two 503s: {r:?}");
}
