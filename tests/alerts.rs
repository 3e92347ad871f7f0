//! The alerts of the scheduled workflows: `scripts/notify-webhook.sh` run as the workflows' `Alert`
//! step runs it, against the lab's webhook receiver. A drift in the nightly check reaches the
//! webhook as one message naming the service and key, never a value; a refused or unreachable
//! delivery fails loudly without the URL's capability path or the token; and the workflows hold
//! the step as documented.

use e2e::{assert_no_secret, E2e};
use lab::tools::repo_root;
use lab::webhook::{TokenSeen, Webhook};
use std::path::Path;
use std::process::Command;

/// Forgejo's run context as a scheduled run sets it (`GITHUB_RUN_NUMBER`: the run's index in the
/// repository, which its web URL uses).
const RUN_ENV: [(&str, &str); 5] = [
    ("GITHUB_SERVER_URL", "https://git.example.org"),
    ("GITHUB_REPOSITORY", "homelab/homelab-sso"),
    ("GITHUB_RUN_NUMBER", "42"),
    ("GITHUB_RUN_ID", "9001"),
    ("GITHUB_EVENT_NAME", "schedule"),
];

struct Notified {
    ok: bool,
    output: String,
}

/// `scripts/notify-webhook.sh WORKFLOW SUMMARY` with the run context and `env` (the webhook's).
fn notify(workflow: &str, summary: &Path, env: &[(&str, &str)]) -> Notified {
    let mut cmd = Command::new(repo_root().join("scripts/notify-webhook.sh"));
    cmd.arg(workflow)
        .arg(summary)
        .env_remove("NOTIFY_WEBHOOK_URL")
        .env_remove("NOTIFY_WEBHOOK_TOKEN");
    for (k, v) in RUN_ENV.iter().chain(env) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running scripts/notify-webhook.sh");
    Notified {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The webhook URL's path: a capability that no log may show.
fn capability(url: &str) -> String {
    let path = &url[url.find("/webhook/").expect("an n8n-style webhook URL")..];
    path.to_string()
}

#[test]
fn a_drift_in_the_nightly_check_reaches_the_webhook_as_one_message_without_values() {
    let e = E2e::up();
    let values = e.vault();
    e.render_with(
        "n8n",
        &values,
        "n8n_webhook_token",
        "drifted-token-0123456789",
    );

    // The workflow's step: the playbook writes the summary, then fails on the drift.
    let summary_file = e.summary_file("drift-check.json");
    let run = e.playbook("drift-check.yml", &[], &[summary_file.env()]);
    run.assert_failed();
    let written = summary_file.read(&run.stdout);
    assert_eq!(
        written,
        serde_json::json!({"workflow": "drift-check", "verdict": "drift",
                           "services": ["n8n"], "keys": ["n8n_webhook_token"]})
    );

    // The Alert step, with the webhook's secrets.
    let url = e.lab.webhook.url();
    let token = e.lab.webhook.token().unwrap();
    let sent = notify(
        "drift-check",
        summary_file.path(),
        &[
            ("NOTIFY_WEBHOOK_URL", url.as_str()),
            ("NOTIFY_WEBHOOK_TOKEN", token.as_str()),
        ],
    );
    assert!(sent.ok, "{}", sent.output);
    assert!(sent.output.contains("delivered"), "{}", sent.output);
    let received = e.lab.webhook.received();
    assert_eq!(received.len(), 1, "one message");
    let m = &received[0];
    assert_eq!(m.token, TokenSeen::Matched);
    assert!(m.json_type);
    assert_eq!(m.json["workflow"], "drift-check");
    assert_eq!(m.json["verdict"], "drift");
    assert_eq!(m.json["services"], serde_json::json!(["n8n"]));
    assert_eq!(m.json["keys"], serde_json::json!(["n8n_webhook_token"]));
    assert_eq!(m.json["event"], "schedule");
    assert_eq!(
        m.json["run_url"],
        "https://git.example.org/homelab/homelab-sso/actions/runs/42"
    );
    assert!(
        m.json["text"]
            .as_str()
            .unwrap()
            .starts_with("drift-check failed: drift; services: n8n; keys: n8n_webhook_token"),
        "{}",
        m.body
    );
    assert!(!m.body.contains("drifted-token-0123456789"), "{}", m.body);
    assert_no_secret(&m.body, &values, "the alert");
    assert!(!sent.output.contains(&capability(&url)), "{}", sent.output);
    assert!(!sent.output.contains(&token), "{}", sent.output);
}

#[test]
fn a_refused_or_unreachable_delivery_fails_loudly_without_the_capability_or_token() {
    let hook = Webhook::start(Some("t0ken-0123456789abcdef".into())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("rotate-due.json");
    std::fs::write(
        &summary,
        r#"{"workflow":"rotate-homelab-sso","verdict":"failed","services":["oauth2-gateway","n8n"],
            "keys":["n8n_cookie_secret","not a name: s3cr3t-value!"]}"#,
    )
    .unwrap();
    let url = hook.url();
    let good = [
        ("NOTIFY_WEBHOOK_URL", url.as_str()),
        ("NOTIFY_WEBHOOK_TOKEN", "t0ken-0123456789abcdef"),
    ];
    let secret_free = |out: &str| {
        assert!(!out.contains(&capability(&url)), "{out}");
        assert!(!out.contains("t0ken-0123456789abcdef"), "{out}");
    };

    // Delivered: only names pass; the summary's workflow is named as the failed step.
    let sent = notify("rotate-due", &summary, &good);
    assert!(sent.ok, "{}", sent.output);
    let m = hook.received().pop().unwrap();
    assert_eq!(m.json["workflow"], "rotate-due");
    assert_eq!(m.json["verdict"], "rotate-homelab-sso: failed");
    assert_eq!(m.json["keys"], serde_json::json!(["n8n_cookie_secret"]));
    assert_eq!(
        m.json["services"],
        serde_json::json!(["n8n", "oauth2-gateway"])
    );
    assert!(!m.body.contains("s3cr3t-value"), "{}", m.body);

    // The webhook refuses: the run fails with the status, never the answer's body.
    hook.refuse(Some(500));
    let sent = notify("rotate-due", &summary, &good);
    assert!(!sent.ok, "{}", sent.output);
    assert!(sent.output.contains("::error::"), "{}", sent.output);
    assert!(sent.output.contains("NOT delivered"), "{}", sent.output);
    assert!(sent.output.contains("HTTP 500"), "{}", sent.output);
    assert!(
        !sent.output.contains("Error in workflow"),
        "{}",
        sent.output
    );
    secret_free(&sent.output);
    hook.refuse(None);

    // A wrong token: 403, failed.
    let sent = notify(
        "rotate-due",
        &summary,
        &[
            ("NOTIFY_WEBHOOK_URL", url.as_str()),
            ("NOTIFY_WEBHOOK_TOKEN", "wrong"),
        ],
    );
    assert!(!sent.ok);
    assert!(sent.output.contains("HTTP 403"), "{}", sent.output);
    assert_eq!(hook.received().last().unwrap().token, TokenSeen::Wrong);
    secret_free(&sent.output);

    // Unreachable: failed, naming only scheme and host.
    let gone = {
        let other = Webhook::start(None).unwrap();
        other.url()
    };
    let sent = notify(
        "rotate-due",
        &summary,
        &[("NOTIFY_WEBHOOK_URL", gone.as_str())],
    );
    assert!(!sent.ok, "{}", sent.output);
    assert!(sent.output.contains("curl failed"), "{}", sent.output);
    assert!(!sent.output.contains(&capability(&gone)), "{}", sent.output);

    // No summary (the run stopped before writing one): still one alert, naming nothing.
    let before = hook.received().len();
    let sent = notify("drift-check", &dir.path().join("missing.json"), &good);
    assert!(sent.ok, "{}", sent.output);
    let received = hook.received();
    assert_eq!(received.len(), before + 1);
    let m = received.last().unwrap();
    assert_eq!(m.json["verdict"], "failed");
    assert_eq!(m.json["services"], serde_json::json!([]));

    // No webhook configured: a notice, not a failure, and nothing sent.
    let sent = notify("drift-check", &summary, &[]);
    assert!(sent.ok, "{}", sent.output);
    assert!(
        sent.output.contains("NOTIFY_WEBHOOK_URL is not set"),
        "{}",
        sent.output
    );
    assert_eq!(hook.received().len(), before + 1);
}

fn workflow(name: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(repo_root().join(".forgejo/workflows").join(name)).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn the_scheduled_workflows_alert_when_they_fail_and_rotate_due_is_off_until_enabled() {
    for (file, name, job) in [
        ("drift-check.yml", "drift-check", "drift-check"),
        ("rotate-due.yml", "rotate-due", "rotate-due"),
    ] {
        let w = workflow(file);
        assert!(w["on"]["schedule"][0]["cron"].is_string(), "{file}");
        assert!(w["on"].get("workflow_dispatch").is_some(), "{file}");
        let steps = w["jobs"][job]["steps"].as_sequence().unwrap();
        let summary = format!("$RUNNER_TEMP/{name}.json");
        let writes = steps[steps.len() - 2]["run"].as_str().unwrap();
        assert!(
            writes.contains(&format!("HOMELAB_SSO_SUMMARY_FILE=\"{summary}\"")),
            "{file}: {writes}"
        );
        let alert = steps.last().unwrap();
        assert_eq!(alert["name"], "Alert", "{file}");
        assert_eq!(
            alert["if"], "failure() && github.event_name == 'schedule'",
            "{file}"
        );
        assert_eq!(
            alert["run"].as_str(),
            Some(format!("scripts/notify-webhook.sh {name} \"{summary}\"").as_str()),
            "{file}"
        );
        assert_eq!(
            alert["env"]["NOTIFY_WEBHOOK_URL"],
            "${{ secrets.NOTIFY_WEBHOOK_URL }}"
        );
        assert_eq!(
            alert["env"]["NOTIFY_WEBHOOK_TOKEN"],
            "${{ secrets.NOTIFY_WEBHOOK_TOKEN }}"
        );
    }
    let w = workflow("rotate-due.yml");
    assert_eq!(w["jobs"]["rotate-due"]["if"], "vars.ROTATE_DUE == 'true'");
    assert_eq!(w["jobs"]["rotate-due"]["env"]["ROTATE_KEYS"], "due");
    assert_eq!(
        w["concurrency"]["group"],
        workflow("rotate-homelab-sso.yml")["concurrency"]["group"]
    );
}
