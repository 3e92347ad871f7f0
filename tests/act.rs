//! The operational Forgejo workflows run end to end under `act` (host mode, `-P
//! homelab-sso=-self-hosted`) against the lab: checkout (act copies the working tree for
//! `actions/checkout`), install the collection tarball, prepare SSH credentials from secrets, run
//! the playbook with the workflow's inputs and the lab's inventory (`vars.HOMELAB_SSO_INVENTORY`).

use e2e::{assert_no_secret, build_collection, E2e};
use lab::tools::{repo_root, venv_bin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

struct ActRun {
    ok: bool,
    output: String,
}

fn act(e: &E2e, tarball: &Path, workflow: &str, inputs: serde_json::Value) -> ActRun {
    let collection = format!("HOMELAB_SSO_COLLECTION={}", tarball.display());
    act_with(e, workflow, inputs, &[collection.as_str()], &[])
}

/// Runs `workflow` under act with the lab's variables and secrets, plus `vars` (`NAME=value`) and
/// `secrets` (name, value; passed through act's environment, never on its command line).
fn act_with(
    e: &E2e,
    workflow: &str,
    inputs: serde_json::Value,
    vars: &[&str],
    extra_secrets: &[(&str, &str)],
) -> ActRun {
    let dir = e.dir.path().join(format!("act-{workflow}"));
    std::fs::create_dir_all(&dir).unwrap();
    let event = dir.join("event.json");
    std::fs::write(&event, serde_json::json!({ "inputs": inputs }).to_string()).unwrap();
    let env: BTreeMap<String, String> = e.lab.env().into_iter().collect();
    let root = repo_root();
    let path = format!(
        "{}:{}",
        venv_bin("ansible-playbook").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(venv_bin("act"));
    cmd.current_dir(&root)
        .arg("workflow_dispatch")
        .arg("-W")
        .arg(root.join(".forgejo/workflows").join(workflow))
        .args([
            "-P",
            "homelab-sso=-self-hosted",
            "--action-offline-mode",
            "-e",
        ])
        .arg(&event)
        .arg("--env")
        .arg(format!("PATH={path}"))
        .arg("--env")
        .arg(format!(
            "ANSIBLE_PYTHON_INTERPRETER={}",
            venv_bin("python").display()
        ))
        // The provisioning step finds the pinned ansible-core in the project's venv and reuses it
        // (tests/portable.rs proves the install from scratch).
        .arg("--env")
        .arg(format!(
            "HOMELAB_SSO_TOOLS={}",
            venv_bin("python")
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .display()
        ))
        .args(["--var", &format!("VAULT_ADDR={}", env["VAULT_ADDR"])])
        .args(["--var", &format!("POCKETID_URL={}", env["POCKETID_URL"])])
        .args([
            "--var",
            &format!("DEPLOY_FORGEJO_URL={}", env["FORGEJO_URL"]),
        ])
        .args([
            "--var",
            &format!("HOMELAB_SSO_INVENTORY={}", e.inventory.display()),
        ])
        .args(["--var", "VAULT_CACERT="]);
    // Secrets come from this process's environment (`-s NAME`), so none is on act's command line.
    let secrets = [
        ("VAULT_ROLE_ID", env["VAULT_ROLE_ID"].clone()),
        ("VAULT_SECRET_ID", env["VAULT_SECRET_ID"].clone()),
        ("POCKETID_API_KEY", env["POCKETID_API_KEY"].clone()),
        ("DEPLOY_TOKEN", env["FORGEJO_TOKEN"].clone()),
        (
            "PROXMOX_SSH_KEY",
            std::fs::read_to_string(&env["PROXMOX_SSH_KEY_FILE"]).unwrap(),
        ),
        (
            "PROXMOX_KNOWN_HOSTS",
            std::fs::read_to_string(&env["PROXMOX_KNOWN_HOSTS_FILE"]).unwrap(),
        ),
    ];
    for v in vars {
        // `@env:NAME=value` sets the job's environment (act's GitHub context follows GITHUB_*).
        match v.strip_prefix("@env:") {
            Some(env) => cmd.args(["--env", env]),
            None => cmd.args(["--var", v]),
        };
    }
    for (k, v) in &secrets {
        cmd.arg("-s").arg(k).env(k, v);
    }
    for (k, v) in extra_secrets {
        cmd.arg("-s").arg(k).env(k, v);
    }
    cmd.env_remove("VAULT_TOKEN").env("HOME", &dir);
    let out = cmd.output().expect("running act (run `make setup`)");
    ActRun {
        ok: out.status.success(),
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

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
    let mut logs: Vec<String> = Vec::new();
    let before = e.vault();
    let mut secrets = before.clone();
    secrets.insert("api_key".into(), e.lab.pocketid.admin_key().to_string());
    secrets.insert("secret_id".into(), e.lab.secret_id.clone());

    let r = logged(
        &mut logs,
        act(
            &e,
            &tarball,
            "drift-check.yml",
            serde_json::json!({"services": ""}),
        ),
    );
    assert!(r.ok, "drift-check under act failed:\n{}", r.output);
    assert!(r.output.contains("in sync"), "{}", r.output);

    let r = logged(
        &mut logs,
        act(
            &e,
            &tarball,
            "pocketid-setup.yml",
            serde_json::json!({"rotate_secrets": "false", "dry_run": "false"}),
        ),
    );
    assert!(r.ok, "pocketid-setup under act failed:\n{}", r.output);

    let r = logged(
        &mut logs,
        act(
            &e,
            &tarball,
            "vault-write.yml",
            serde_json::json!({"source": "harvest", "patch": "false", "keys": "", "dry_run": "true"}),
        ),
    );
    assert!(r.ok, "vault-write under act failed:\n{}", r.output);
    assert!(e.vault() == before, "a dry run writes nothing");

    e.lab.bao.enable_audit().unwrap();
    let r = logged(
        &mut logs,
        act(
            &e,
            &tarball,
            "rotate-homelab-sso.yml",
            serde_json::json!({"keys": "", "dry_run": "false"}),
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
    let name = tarball.file_name().unwrap().to_str().unwrap().to_string();

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
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/ci-release-asset.sh"))
        .current_dir(e.dir.path())
        .env("API", format!("{api}/repos/{repo}"))
        .env("TAG", "v0.1.0")
        .env("FORGEJO_TOKEN", &token)
        .env("DIST", tarball.parent().unwrap())
        .output()
        .unwrap();
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
    let again = Command::new("bash")
        .arg(repo_root().join("scripts/ci-release-asset.sh"))
        .current_dir(e.dir.path())
        .env("API", format!("{api}/repos/{repo}"))
        .env("TAG", "v0.1.0")
        .env("FORGEJO_TOKEN", &token)
        .env("DIST", tarball.parent().unwrap())
        .output()
        .unwrap();
    assert!(again.status.success());
    let names: Vec<String> = e.lab.forgejo.with_extras(|ex| {
        ex.0.releases[0]
            .assets
            .iter()
            .map(|a| a.name.clone())
            .collect()
    });
    assert_eq!(names, vec![name.clone(), "SHA256SUMS".to_string()]);

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
        .filter(|l| l.path.starts_with("/attachments/") && l.status == 200)
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
    let mut all: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
    all.extend(github.iter().map(|g| format!("@env:{g}")));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    act_with(
        e,
        "drift-check.yml",
        serde_json::json!({"services": ""}),
        &refs,
        &[("GITHUB_TOKEN", token)],
    )
}
