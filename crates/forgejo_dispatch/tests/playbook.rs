//! `ansible/playbooks/redeploy.yml` through the real ansible-playbook, against the emulator.

use lab::ansible::{module_library, run_playbook};
use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts};
use lab::tools::repo_root;
use std::path::Path;
use std::time::Duration;

#[test]
fn redeploy_playbook_runs_all_nine_and_never_prints_the_token() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    for s in lab::catalog::REDEPLOY_TARGETS {
        fj.set_behaviour(
            &format!("deploy-{s}.yml"),
            Behaviour::lasting(Duration::from_millis(300)),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = module_library(
        dir.path(),
        &[(
            "redeploy_trigger",
            Path::new(env!("CARGO_BIN_EXE_redeploy_trigger")),
        )],
    )
    .unwrap();
    let playbook =
        std::fs::read_to_string(repo_root().join("ansible/playbooks/redeploy.yml")).unwrap();
    let token = fj.token();
    let run = run_playbook(
        dir.path(),
        &lib,
        &playbook,
        &[
            "-vvvv",
            "-e",
            "redeploy_poll_interval=0.5",
            "-e",
            "homelab_sso_forgejo_repo=homelab/homelab-sso",
        ],
        &[("FORGEJO_URL", fj.url()), ("FORGEJO_TOKEN", &token)],
    )
    .unwrap();
    run.assert_ok();
    assert!(
        !run.all_output().contains(&token),
        "token leaked in -vvvv output"
    );
    let runs = fj.runs();
    assert_eq!(runs.len(), 9);
    assert!(runs
        .iter()
        .all(|r| r.status == "success" && r.info.inputs["dry_run"] == "false"));
    for s in lab::catalog::REDEPLOY_TARGETS {
        assert_eq!(fj.dispatch_requests(&format!("deploy-{s}.yml")), 1);
        assert!(
            run.stdout.contains(&format!("deploy-{s}.yml: success")),
            "{}",
            run.stdout
        );
    }

    // A subset of services.
    let run = run_playbook(
        dir.path(),
        &lib,
        &playbook,
        &[
            "-e",
            r#"{"redeploy_services": ["n8n", "gatus"], "redeploy_poll_interval": 0.5}"#,
            "-e",
            "homelab_sso_forgejo_repo=homelab/homelab-sso",
        ],
        &[("FORGEJO_URL", fj.url()), ("FORGEJO_TOKEN", &token)],
    )
    .unwrap();
    run.assert_ok();
    assert_eq!(fj.runs().len(), 11);
}
