//! The operational Forgejo workflows run end to end under `act` (host mode, `-P
//! homelab-sso=-self-hosted`) against the lab: checkout (act copies the working tree for
//! `actions/checkout`), install the collection tarball, prepare SSH credentials from secrets, run
//! the playbook with the workflow's inputs and the lab's inventory (`vars.HOMELAB_SSO_INVENTORY`).
//! The operational workflows run as on a stock runner: Debian's PATH only (no project venv), each
//! job provisioning itself (`scripts/ci-provision.sh`).

use e2e::{assert_no_secret, build_collection, ActRun, E2e};
use lab::tools::repo_root;
use std::process::Command;

/// The secrets the operational workflows read between them.
const OPERATIONAL_SECRETS: [&str; 6] = [
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "POCKETID_API_KEY",
    "DEPLOY_TOKEN",
    "PROXMOX_SSH_KEY",
    "PROXMOX_KNOWN_HOSTS",
];

fn logged(logs: &mut Vec<String>, r: ActRun) -> ActRun {
    logs.push(r.output.clone());
    r
}

#[test]
fn operational_workflows_run_end_to_end_under_act() {
    let mut e = E2e::up();
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab.forgejo.set_behaviour(
            &wf,
            lab::forgejo::Behaviour::lasting(std::time::Duration::from_millis(300)),
        );
    }
    let tarball = build_collection(e.dir.path());
    // A stock runner: Debian's PATH, and ansible-core provisioned by the first job from the
    // package index, then reused.
    let tools = e.dir.path().join("runner-tools");
    let stock = e2e::ActExtra {
        stock_runner: Some(&tools),
        ..Default::default()
    };
    let mut logs: Vec<String> = Vec::new();
    let before = e.vault();
    let mut secrets = before.clone();
    secrets.insert("api_key".into(), e.lab.pocketid.admin_key().to_string());
    secrets.insert("secret_id".into(), e.lab.secret_id.clone());

    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "drift-check.yml",
            serde_json::json!({"services": ""}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "drift-check under act failed:\n{}", r.output);
    assert!(
        r.output.contains("installing ansible-core"),
        "the first job provisions ansible-core:\n{}",
        r.output
    );
    assert!(r.output.contains("in sync"), "{}", r.output);

    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "pocketid-setup.yml",
            serde_json::json!({"rotate_secrets": "false", "dry_run": "false"}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "pocketid-setup under act failed:\n{}", r.output);

    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "vault-write.yml",
            serde_json::json!({"source": "harvest", "patch": "false", "keys": "", "dry_run": "true"}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "vault-write under act failed:\n{}", r.output);
    assert!(e.vault() == before, "a dry run writes nothing");

    e.lab.bao.enable_audit().unwrap();
    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "rotate-homelab-sso.yml",
            serde_json::json!({"keys": "", "dry_run": "false"}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "rotate-homelab-sso under act failed:\n{}", r.output);
    assert!(r.output.contains("Rotation complete"), "{}", r.output);
    let after = e.vault();
    assert!(
        after["n8n_cookie_secret"] != before["n8n_cookie_secret"],
        "n8n_cookie_secret was not rotated"
    );
    e.assert_deployed_matches_vault();
    // The runbook's single full write: one write of the secret's data, not a PATCH.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let writes: Vec<String> = e
        .lab
        .bao
        .audited_operations("secret/data/homelab-sso")
        .into_iter()
        .filter(|op| op != "read")
        .collect();
    assert!(
        writes.len() == 1 && writes[0] != "patch",
        "the workflow's rotation sends one non-PATCH write, got {writes:?}"
    );

    // sso-doctor after the rotation: every app healthy, nothing to fix.
    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "sso-doctor.yml",
            serde_json::json!({"service": "", "since": "1h", "fix": "false"}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "sso-doctor under act failed:\n{}", r.output);
    assert!(r.output.contains("grafana: healthy"), "{}", r.output);

    // sso-status on demand after the rotation: a clean report and an alert summary of names only
    // (the alert itself is sent by scheduled runs only).
    let r = logged(
        &mut logs,
        e.act_with(
            Some(&tarball),
            "sso-status.yml",
            serde_json::json!({}),
            &OPERATIONAL_SECRETS,
            &stock,
        ),
    );
    assert!(r.ok, "sso-status under act failed:\n{}", r.output);
    assert!(r.output.contains("SSO status: ok"), "{}", r.output);
    assert!(
        r.output.contains(r#""workflow": "sso-status""#) && r.output.contains(r#""verdict": "ok""#),
        "{}",
        r.output
    );

    // Nothing secret in act's logs, old values or new.
    for text in &logs {
        assert_no_secret(text, &before, "act log");
        assert_no_secret(text, &after, "act log");
        assert_no_secret(text, &secrets, "act log");
    }
}

/// Release → install, closed: the collection published with `scripts/ci-release-asset.sh` (tarball
/// and SHA256SUMS as release assets, through the API) is what the drift-check workflow installs,
/// found through the API with the job's token and verified by checksum; a tampered asset, a
/// missing release and a missing checksum are refused with a clear message.
#[test]
fn workflows_install_the_pinned_release_verified_by_checksum() {
    let e = E2e::up();
    let tarball = build_collection(e.dir.path());
    let token = e.lab.forgejo.token();
    let api = format!("{}/api/v1", e.lab.forgejo.url());
    let repo = e.lab.forgejo.repo();
    // The release workflow's matrix names each tarball after its architecture; the install picks
    // this machine's and never the other one (a decoy with other bytes).
    let dist = e.dir.path().join("release-dist");
    std::fs::create_dir_all(&dist).unwrap();
    let version = tarball
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("homelab-sso-")
        .trim_end_matches(".tar.gz")
        .to_string();
    let arch = std::env::consts::ARCH;
    let other = if arch == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let name = format!("homelab-sso-{version}-linux-{arch}.tar.gz");
    let decoy = format!("homelab-sso-{version}-linux-{other}.tar.gz");
    std::fs::copy(&tarball, dist.join(&name)).unwrap();
    std::fs::write(dist.join(&decoy), b"not this architecture").unwrap();
    let tarball = dist.join(&name);

    // Nothing published yet: the install fails and says why.
    let github = [
        format!("GITHUB_API_URL={api}"),
        format!("GITHUB_SERVER_URL={}", e.lab.forgejo.url()),
        format!("GITHUB_REPOSITORY={repo}"),
    ];
    let run = |vars: &[&str]| {
        let mut vars: Vec<&str> = vars.to_vec();
        vars.push("HOMELAB_SSO_COLLECTION=");
        let r = act_with_env(&e, &github, &vars, &token);
        assert!(
            !r.output.contains(&token),
            "the job's token appears in act's log"
        );
        r
    };
    let r = run(&[]);
    assert!(!r.ok, "an install without a release must fail");
    assert!(
        r.output
            .contains(&format!("{repo} has no published release")),
        "{}",
        r.output
    );

    // Publish v0.1.0 as the release workflow does.
    let publish = || {
        Command::new("bash")
            .arg(repo_root().join("scripts/ci-release-asset.sh"))
            .current_dir(e.dir.path())
            .env("API", format!("{api}/repos/{repo}"))
            .env("TAG", "v0.1.0")
            .env("FORGEJO_TOKEN", &token)
            .env("DIST", &dist)
            .output()
            .unwrap()
    };
    let out = publish();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ci-release-asset.sh failed:\n{text}");
    assert!(!text.contains(&token));
    let sum = Command::new("sha256sum").arg(&tarball).output().unwrap();
    let digest = String::from_utf8_lossy(&sum.stdout)[..64].to_string();
    assert!(text.contains(&digest), "{text}");
    // A re-run replaces the pair instead of adding a second one.
    let again = publish();
    assert!(again.status.success());
    let names: Vec<String> = e.lab.forgejo.with_extras(|ex| {
        ex.0.releases[0]
            .assets
            .iter()
            .map(|a| a.name.clone())
            .collect()
    });
    let mut expected = vec![decoy.clone(), name.clone()];
    expected.sort();
    expected.push("SHA256SUMS".to_string());
    assert_eq!(names, expected);

    // The pinned release (and the latest, the default) installs, verified, and the check passes.
    let r = run(&["HOMELAB_SSO_VERSION=v0.1.0"]);
    assert!(
        r.ok,
        "drift-check with the pinned release failed:\n{}",
        r.output
    );
    assert!(
        r.output
            .contains(&format!("{name} of v0.1.0, sha256 {digest} verified")),
        "{}",
        r.output
    );
    assert!(r.output.contains("in sync"), "{}", r.output);
    let downloads = e
        .lab
        .forgejo
        .request_log()
        .iter()
        // Forgejo 15's browser_download_url: <repo>/releases/download/<tag>/<name>.
        .filter(|l| l.path.contains("/releases/download/v0.1.0/") && l.status == 200)
        .count();
    assert_eq!(downloads, 2, "the tarball and SHA256SUMS were downloaded");

    let r = run(&["HOMELAB_SSO_VERSION=v9.9.9"]);
    assert!(!r.ok);
    assert!(
        r.output
            .contains(&format!("{repo} has no release tagged v9.9.9")),
        "{}",
        r.output
    );

    // A tampered tarball is refused before anything is installed.
    e.lab.forgejo.with_extras(|ex| {
        let a = ex.0.asset_mut("v0.1.0", &name).unwrap();
        let mid = a.data.len() / 2;
        a.data[mid] ^= 0x01;
    });
    let r = run(&[]);
    assert!(!r.ok, "a tampered asset must be refused");
    assert!(
        r.output
            .contains(&format!("checksum mismatch for {name} of v0.1.0")),
        "{}",
        r.output
    );
    assert!(
        !r.output.contains("Drift check"),
        "nothing ran after the refusal"
    );

    // Without the checksum asset there is nothing to verify against: refused too.
    e.lab.forgejo.with_extras(|ex| {
        ex.0.releases[0].assets.retain(|a| a.name != "SHA256SUMS");
    });
    let r = run(&[]);
    assert!(!r.ok);
    assert!(r.output.contains("has no SHA256SUMS asset"), "{}", r.output);
}

/// The drift-check workflow under act with GitHub context overrides (`--env GITHUB_*`), `vars`,
/// and `token` as the job's token (`github.token`).
fn act_with_env(e: &E2e, github: &[String], vars: &[&str], token: &str) -> ActRun {
    let env: Vec<&str> = github.iter().map(String::as_str).collect();
    e.act_with(
        None,
        "drift-check.yml",
        serde_json::json!({"services": ""}),
        &OPERATIONAL_SECRETS,
        &e2e::ActExtra {
            vars,
            env: &env,
            secrets: &[("GITHUB_TOKEN", token)],
            ..Default::default()
        },
    )
}
