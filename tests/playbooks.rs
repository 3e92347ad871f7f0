//! The other playbooks end to end against the lab (drift check, backfill and the other sources of
//! vault-write, pocketid-setup, redeploy), the catalog agreeing with the lab, and the collection
//! built, installed offline and documented.

use e2e::{assert_no_secret, E2e, MODULES};
use lab::tools::{repo_root, venv_bin};
use std::process::Command;

#[test]
fn drift_check_is_clean_then_names_the_drifted_service_and_key() {
    let e = E2e::up();
    let values = e.vault();
    let run = e.playbook("drift-check.yml", &["-vvvv"], &[]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("oauth2-gateway | pocketid_client_secret | in sync"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run.all_output(), &values, "drift-check output");

    // A deployed value that differs from Vault.
    e.render_with(
        "n8n",
        &values,
        "n8n_webhook_token",
        "drifted-token-0123456789",
    );
    let run = e.playbook("drift-check.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("n8n | n8n_webhook_token | DRIFT"), "{out}");
    assert!(out.contains("n8n n8n_webhook_token DRIFT"), "{out}");
    assert!(!out.contains("drifted-token-0123456789"));
    assert_no_secret(&out, &values, "drift-check output");

    // Only the selected services are checked.
    let run = e.playbook(
        "drift-check.yml",
        &["-e", "drift_services=oauth2-gateway"],
        &[],
    );
    run.assert_ok();
    assert!(!run.stdout.contains("n8n |"), "{}", run.stdout);
}

#[test]
fn backfill_from_the_deployed_files_restores_a_complete_secret() {
    let e = E2e::up();
    let deployed = e.vault();
    // Vault lost keys (the classic partial write): only two remain.
    e.lab
        .bao
        .kv_put(
            "homelab-sso",
            serde_json::json!({"pocketid_client_id": deployed["pocketid_client_id"], "n8n_webhook_token": "stale-token-0123456789"}),
        )
        .unwrap();
    let v = e.vault_version();
    let run = e.playbook(
        "vault-write.yml",
        &["--check", "--diff", "-e", "vault_write_source=harvest"],
        &[],
    );
    run.assert_ok();
    assert_eq!(e.vault_version(), v, "check mode writes nothing");
    assert!(
        run.stdout.contains("n8n_cookie_secret: <added>"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("n8n_webhook_token: <changed: new value>"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run.all_output(), &deployed, "backfill --check output");

    // The runbook's invocation: a full write (`patch: "false"`).
    let run = e.playbook(
        "vault-write.yml",
        &[
            "-vvvv",
            "-e",
            "vault_write_source=harvest",
            "-e",
            "vault_write_patch=false",
        ],
        &[],
    );
    run.assert_ok();
    assert!(
        e.vault() == deployed,
        "Vault holds exactly what is deployed"
    );
    assert_eq!(e.vault_version(), v + 1);
    assert_no_secret(&run.all_output(), &deployed, "backfill output");
    // Idempotent.
    let run = e.playbook(
        "vault-write.yml",
        &["-e", "vault_write_source=harvest"],
        &[],
    );
    run.assert_ok();
    assert_eq!(
        e.vault_version(),
        v + 1,
        "an unchanged backfill adds no version"
    );

    // n8n and gatus share n8n_webhook_token: copies that disagree are refused, naming the key only.
    e.render_with(
        "gatus",
        &deployed,
        "n8n_webhook_token",
        "gatus-copy-0123456789abcdef",
    );
    let run = e.playbook(
        "vault-write.yml",
        &["-e", "vault_write_source=harvest"],
        &[],
    );
    run.assert_failed();
    let out = run.all_output();
    assert!(
        out.contains("different values for n8n_webhook_token"),
        "{out}"
    );
    assert!(!out.contains("gatus-copy-0123456789abcdef"));
    assert_no_secret(&out, &deployed, "refused backfill output");
    assert_eq!(e.vault_version(), v + 1, "nothing written");
}

#[test]
fn vault_write_generates_a_subset_and_reads_an_ansible_vault_file() {
    let e = E2e::up();
    let before = e.vault();
    let run = e.playbook(
        "vault-write.yml",
        &["-e", "vault_write_patch=true"],
        &[
            ("WRITE_SOURCE", "generate"),
            ("WRITE_KEYS", "n8n_webhook_token, normal_cookie_secret"),
        ],
    );
    run.assert_ok();
    let after = e.vault();
    for (k, v) in &before {
        let rotated = k == "n8n_webhook_token" || k == "normal_cookie_secret";
        assert!((&after[k] != v) == rotated, "{k}");
    }
    assert_no_secret(&run.all_output(), &after, "generate output");

    // A full write without every key is refused before anything is written.
    let run = e.playbook(
        "vault-write.yml",
        &[],
        &[
            ("WRITE_SOURCE", "generate"),
            ("WRITE_PATCH", "false"),
            ("WRITE_KEYS", "n8n_webhook_token"),
        ],
    );
    run.assert_failed();
    assert!(e.vault() == after, "a refused write changes nothing");

    // An ansible-vault encrypted values file, patched in.
    let dir = e.dir.path();
    let pw = dir.join("vault-pass");
    std::fs::write(&pw, "lab-vault-password\n").unwrap();
    let file = dir.join("values.yml");
    std::fs::write(
        &file,
        "homelab_sso_values:\n  gatus_cookie_secret: from-vault-file-0123456789abcdef\n",
    )
    .unwrap();
    testkit::succeed(
        Command::new(venv_bin("ansible-vault"))
            .args(["encrypt", "--vault-password-file"])
            .arg(&pw)
            .arg(&file),
    );
    let file_arg = format!("vault_write_file={}", file.display());
    let run = e.playbook(
        "vault-write.yml",
        &[
            "--vault-password-file",
            pw.to_str().unwrap(),
            "-e",
            "vault_write_source=vault_file",
            "-e",
            &file_arg,
            "-e",
            "vault_write_patch=true",
        ],
        &[],
    );
    run.assert_ok();
    assert_eq!(
        e.vault()["gatus_cookie_secret"],
        "from-vault-file-0123456789abcdef"
    );
    assert!(!run
        .all_output()
        .contains("from-vault-file-0123456789abcdef"));
}

#[test]
fn pocketid_setup_and_redeploy_playbooks_run_against_the_lab() {
    let e = E2e::up();
    let run = e.playbook("pocketid-setup.yml", &["-vvvv"], &[]);
    run.assert_ok();
    let values = e.vault();
    assert_no_secret(&run.all_output(), &values, "pocketid-setup output");
    // A new secret on demand: the orphans of earlier runs go first, Vault's (deployed) secret
    // stays valid beside the new one until a rotation retires it.
    let pid = &e.lab.pocketid;
    for _ in 0..3 {
        pid.add_client_secret(lab::stack::OIDC_CLIENT_ID).unwrap();
    }
    let run = e.playbook("pocketid-setup.yml", &[], &[("ROTATE_SECRETS", "true")]);
    run.assert_ok();
    let after = e.vault();
    assert_ne!(
        after["pocketid_client_secret"],
        values["pocketid_client_secret"]
    );
    assert_eq!(
        pid.client_secrets(lab::stack::OIDC_CLIENT_ID).len(),
        2,
        "Vault's old and the new one"
    );
    assert!(pid.client_secret_valid(
        lab::stack::OIDC_CLIENT_ID,
        &values["pocketid_client_secret"]
    ));
    assert!(pid.client_secret_valid(lab::stack::OIDC_CLIENT_ID, &after["pocketid_client_secret"]));
    assert_no_secret(&run.all_output(), &after, "pocketid-setup output");
    let run = e.playbook(
        "redeploy.yml",
        &["-e", "{\"redeploy_services\": [\"n8n\", \"gatus\"]}"],
        &[],
    );
    run.assert_ok();
    let runs = e.lab.forgejo.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == "success"));
    assert!(!run.all_output().contains(&e.lab.forgejo.token()));
}

#[test]
fn catalog_yaml_describes_the_lab_homelab() {
    let y = catalog_yaml();
    let keys: Vec<String> = y["homelab_sso_keys"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut want = lab::catalog::vault_keys();
    let mut got = keys.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the 15 keys");
    let services = y["homelab_sso_services"].as_sequence().unwrap();
    let lab_services = lab::catalog::services();
    assert_eq!(services.len(), lab_services.len());
    for (s, l) in services.iter().zip(&lab_services) {
        assert_eq!(s["name"].as_str(), Some(l.name));
        assert_eq!(s["vmid"].as_u64(), Some(u64::from(l.vmid)));
        assert_eq!(s["path"].as_str(), Some(l.env_path.as_str()));
        assert_eq!(s["workflow"].as_str(), l.workflow.as_deref());
        let keys: Vec<(String, String)> = s["keys"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_string(),
                    v.as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(keys, l.keys, "{}", l.name);
    }
    let redeploy: Vec<&str> = services
        .iter()
        .filter(|s| s["redeploy"].as_bool() == Some(true))
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(redeploy, lab::catalog::REDEPLOY_TARGETS);
}

/// The runbook's names, letter for letter: the 15 keys of secret/homelab-sso and the nine services
/// redeployed after a full rotation, in the runbook's order.
const RUNBOOK_KEYS: [&str; 15] = [
    "pocketid_client_id",
    "pocketid_client_secret",
    "n8n_cookie_secret",
    "open_webui_cookie_secret",
    "glance_cookie_secret",
    "gatus_cookie_secret",
    "the_lounge_cookie_secret",
    "filedump_cookie_secret",
    "homebridge_cookie_secret",
    "qbitwebui_cookie_secret",
    "seedbox_cookie_secret",
    "normal_cookie_secret",
    "grafana_cookie_secret",
    "grafana_admin_password",
    "n8n_webhook_token",
];
const RUNBOOK_REDEPLOY: [&str; 9] = [
    "oauth2-gateway",
    "n8n",
    "open-webui",
    "glance",
    "gatus",
    "the-lounge",
    "qbitwebui",
    "seedbox",
    "loki-stack",
];

fn catalog_yaml() -> serde_norway::Value {
    let text =
        std::fs::read_to_string(repo_root().join("ansible/playbooks/group_vars/all/catalog.yml"))
            .unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn catalog_names_are_the_runbooks() {
    let y = catalog_yaml();
    let keys: Vec<&str> = y["homelab_sso_keys"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys, RUNBOOK_KEYS,
        "the catalog's keys are the runbook's 15"
    );
    let services = y["homelab_sso_services"].as_sequence().unwrap();
    let redeploy: Vec<&str> = services
        .iter()
        .filter(|s| s["redeploy"].as_bool() == Some(true))
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        redeploy, RUNBOOK_REDEPLOY,
        "the runbook's nine redeploy targets"
    );
    let vmid = |name: &str| {
        services
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .and_then(|s| s["vmid"].as_u64())
    };
    assert_eq!(vmid("oauth2-gateway"), Some(119));
    assert_eq!(vmid("pocketid"), Some(123));
    assert_eq!(
        lab::catalog::vault_keys(),
        RUNBOOK_KEYS,
        "the lab's keys too"
    );
    assert_eq!(lab::catalog::REDEPLOY_TARGETS, RUNBOOK_REDEPLOY);
    // The apps behind SSO are the lab's, with the client's callbacks derived from their URLs.
    let apps = y["homelab_sso_apps"].as_sequence().unwrap();
    let app = |name: &str, url: &str, key: &str, svc: Option<&str>| {
        let svc = svc.map(str::to_string);
        (name.to_string(), url.to_string(), key.to_string(), svc)
    };
    let yaml_apps: Vec<_> = apps
        .iter()
        .map(|a| {
            let f = |k: &str| a[k].as_str().unwrap_or_default();
            app(
                f("name"),
                f("url"),
                f("cookie_secret"),
                a["service"].as_str(),
            )
        })
        .collect();
    let lab_apps: Vec<_> = lab::catalog::APPS
        .iter()
        .map(|a| app(a.name, a.url, a.cookie_secret, a.service))
        .collect();
    assert_eq!(yaml_apps, lab_apps, "catalog.yml's apps are the lab's");
    for a in apps {
        let key = a["cookie_secret"].as_str().unwrap();
        assert!(RUNBOOK_KEYS.contains(&key), "{key}");
        if let Some(svc) = a["service"].as_str() {
            assert!(
                vmid(svc).is_some(),
                "app service {svc} is not in the catalog"
            );
        }
    }
    assert_eq!(
        y["homelab_sso_pocketid_client"]["callback_urls"].as_str(),
        Some("{{ homelab_sso_app_callback_urls }}")
    );
    let logs = &y["homelab_sso_logs"];
    assert_eq!(
        logs["loki_selector"].as_str(),
        Some(lab::catalog::LOGS_LOKI_SELECTOR)
    );
    assert_eq!(logs["vmid"].as_u64(), Some(lab::catalog::LOGS_VMID.into()));
    assert_eq!(
        logs["container"].as_str(),
        Some(lab::catalog::LOGS_CONTAINER)
    );
    // n8n_webhook_token is held by both n8n and gatus.
    let holders: Vec<&str> = services
        .iter()
        .filter(|s| s["keys"]["n8n_webhook_token"].is_string())
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["n8n", "gatus"]);
    // Every cookie secret lives in the oauth2-gateway .env.
    for k in RUNBOOK_KEYS
        .iter()
        .filter(|k| k.ends_with("_cookie_secret"))
    {
        assert!(
            services[0]["keys"][*k].is_string(),
            "{k} is not in the oauth2-gateway .env"
        );
    }
}

#[test]
fn deploy_workflows_render_what_the_catalog_says() {
    let y = catalog_yaml();
    for s in y["homelab_sso_services"].as_sequence().unwrap() {
        let Some(wf) = s["workflow"].as_str() else {
            continue;
        };
        let text =
            std::fs::read_to_string(repo_root().join(".forgejo/workflows").join(wf)).unwrap();
        let w: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let steps = w["jobs"]["deploy"]["steps"].as_sequence().unwrap();
        let deploy = steps
            .iter()
            .find(|st| st["uses"].as_str() == Some("./.forgejo/actions/deploy"))
            .unwrap_or_else(|| panic!("{wf} does not use the shared deploy action"));
        let with = &deploy["with"];
        assert_eq!(with["service"].as_str(), s["name"].as_str(), "{wf}");
        assert_eq!(with["node"].as_str(), s["node"].as_str(), "{wf}");
        assert_eq!(
            with["vmid"].as_str().map(str::to_string),
            s["vmid"].as_u64().map(|v| v.to_string()),
            "{wf}"
        );
        assert_eq!(with["env-path"].as_str(), s["path"].as_str(), "{wf}");
        let want: Vec<String> = s["keys"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{}={}", k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        let got: Vec<String> = with["env-keys"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        assert_eq!(got, want, "{wf}'s env-keys");
    }
}

#[test]
fn collection_builds_installs_offline_and_documents_every_module() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = e2e::build_collection(dir.path());
    assert!(tarball.exists());
    let colls = dir.path().join("collections");
    testkit::succeed(
        Command::new(venv_bin("ansible-galaxy"))
            .args(["collection", "install", "--offline", "-p"])
            .arg(&colls)
            .arg(&tarball),
    );
    let installed = colls.join("ansible_collections/homelab/sso/plugins/modules");
    let mut doc_list = Command::new(venv_bin("ansible-doc"));
    doc_list.env("ANSIBLE_COLLECTIONS_PATH", &colls);
    e2e::assert_lists_every_module(doc_list, "the installed tarball");
    for m in MODULES {
        use std::os::unix::fs::PermissionsExt;
        // ansible-galaxy keeps the symlink in the tarball and makes it again on install.
        assert_eq!(
            std::fs::read_link(installed.join(m)).ok(),
            Some(std::path::PathBuf::from(format!("../../bin/{m}"))),
            "{m}: the installed plugins/modules/{m} is not the symlink to its binary"
        );
        let mode = std::fs::metadata(installed.join(m))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{m} lost its execute bit");
        // `ansible-doc -t module`: the way the README documents, since galaxy-importer lists no
        // binary module.
        let out = Command::new(venv_bin("ansible-doc"))
            .args(["-t", "module"])
            .arg(format!("homelab.sso.{m}"))
            .env("ANSIBLE_COLLECTIONS_PATH", &colls)
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ansible-doc {m}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for section in [
            "OPTIONS",
            "ATTRIBUTES",
            "NOTES",
            "REQUIREMENTS",
            "SEE ALSO",
            "EXAMPLES",
            "RETURN VALUES",
            "sample:",
        ] {
            assert!(text.contains(section), "{m} has no {section}: {text}");
        }
        assert!(
            text.contains(&format!("homelab.sso.{m}:")),
            "{m}: FQCN examples"
        );
    }
    // module_defaults through the action group reach the binary (a check-mode read with no url
    // in the task: it must come from group/homelab.sso.all).
    let pb = dir.path().join("pb.yml");
    std::fs::write(
        &pb,
        "- hosts: localhost\n  gather_facts: false\n  module_defaults:\n    group/homelab.sso.all:\n      url: http://127.0.0.1:9\n  tasks:\n    - homelab.sso.vault_kv_read:\n        path: x\n        token: t0ken-value-for-defaults\n        timeout: 2\n      register: r\n      ignore_errors: true\n    - assert:\n        that: \"'127.0.0.1:9' in r.msg\"\n",
    )
    .unwrap();
    testkit::succeed(
        Command::new(venv_bin("ansible-playbook"))
            .arg("-i")
            .arg("localhost,")
            .arg("-c")
            .arg("local")
            .arg(&pb)
            .env("ANSIBLE_COLLECTIONS_PATH", &colls)
            .env("ANSIBLE_PYTHON_INTERPRETER", venv_bin("python")),
    );
}

/// The binaries under `crates/*/src/bin/`, by crate.
fn binaries_by_crate(root: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let Ok(dir) = std::fs::read_dir(krate.path().join("src/bin")) else {
            continue;
        };
        let bins = dir
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.trim_end_matches(".rs").to_string()
            })
            .collect();
        out.push((krate.file_name().to_string_lossy().to_string(), bins));
    }
    out
}

/// The module names in the first column of a Markdown table headed `| Module | What it does |`.
fn module_table(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .skip_while(|l| !l.starts_with("| Module | What it does |"))
        .skip(2)
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect()
}

#[test]
fn every_module_binary_has_a_sidecar_doc_and_is_shipped() {
    let root = repo_root();
    let list: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let mut sorted = list.clone();
    sorted.sort();
    // Every binary of a crate that builds a module is a module (tools have crates of their own).
    let mut bins: Vec<String> = binaries_by_crate(&root)
        .into_iter()
        .filter(|(_, bins)| bins.iter().any(|b| list.contains(b)))
        .flat_map(|(_, bins)| bins)
        .collect();
    bins.sort();
    assert_eq!(
        bins, sorted,
        "every module binary is in the collection, and nothing else"
    );
    let modules_dir = root.join("ansible/collection/plugins/modules");
    // The modules that have a file NAME.EXT in plugins/modules, sorted.
    let with_ext = |ext: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&modules_dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_suffix(ext).map(str::to_string)
            })
            .collect();
        names.sort();
        names
    };
    let docs = with_ext(".yml");
    assert_eq!(docs, sorted, "one sidecar doc per module, and no other");
    let stubs = with_ext(".ini");
    assert_eq!(stubs, sorted, "one listing stub <module>.ini per module");
    for m in MODULES {
        let link = std::fs::read_link(modules_dir.join(m));
        assert_eq!(
            link.ok(),
            Some(std::path::PathBuf::from(format!("../../bin/{m}"))),
            "plugins/modules/{m}: the symlink to the collection's bin/{m}"
        );
        let stub = std::fs::read_to_string(modules_dir.join(format!("{m}.ini"))).unwrap();
        // ansible-doc reads the stub first: a DOCUMENTATION in it would hide the sidecar.
        assert!(!stub.contains("DOCUMENTATION"), "{m}.ini documents");
    }
    for m in MODULES {
        // ansible-lint's yaml[line-length] limit, which the docs keep too.
        let doc = std::fs::read_to_string(modules_dir.join(format!("{m}.yml"))).unwrap();
        for (i, line) in doc.lines().enumerate() {
            assert!(
                line.chars().count() <= 160,
                "{m}.yml:{}: longer than 160 characters",
                i + 1
            );
        }
    }
}

/// The lists of modules written out where they cannot be derived equal the one list
/// (`ansible/modules.txt`, `MODULES`).
#[test]
fn written_out_module_lists_equal_the_one_list() {
    let root = repo_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let list: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let runtime: serde_norway::Value =
        serde_norway::from_str(&read("ansible/collection/meta/runtime.yml")).unwrap();
    let group = |name: &str| -> Vec<String> {
        serde_norway::from_value(runtime["action_groups"][name].clone()).unwrap()
    };
    assert_eq!(group("all"), list, "runtime.yml: action group `all`");
    for m in group("vault") {
        assert!(
            list.contains(&m),
            "runtime.yml: group `vault` names {m}, not a module"
        );
    }
    for readme in ["README.md", "ansible/collection/README.md"] {
        assert_eq!(
            module_table(&read(readme)),
            list,
            "{readme}: the modules' table"
        );
    }
    let ignored: Vec<String> = read("ansible/collection/tests/sanity/ignore-2.19.txt")
        .lines()
        .filter(|l| l.contains("validate-modules:missing-gplv3-license"))
        .filter_map(|l| {
            l.strip_prefix("plugins/modules/")?
                .split(".yml")
                .next()
                .map(str::to_string)
        })
        .collect();
    let mut sorted = list.clone();
    sorted.sort();
    assert_eq!(
        ignored, sorted,
        "sanity ignore file: one license line per module"
    );
    // The Makefile and scripts derive theirs from the same file.
    let out = testkit::succeed(&mut Command::new(root.join("scripts/modules.sh")));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        list
    );
}

/// Asserts that the run's output shows each of `texts`.
fn assert_shows(run: &lab::ansible::PlaybookRun, texts: &[&str]) {
    for text in texts {
        assert!(
            run.stdout.contains(text),
            "{text:?} not in:\n{}",
            run.stdout
        );
    }
}

/// A two-node cluster: pve holds oauth2-gateway, pve2 every other service; pve2 is reached at
/// `pve2_port` on loopback (the lab's sshd, or a port where nothing answers). Returns the
/// inventory and the `-e @file` argument that moves the services.
fn cluster(e: &E2e, pve2_port: u16) -> (std::path::PathBuf, String) {
    let s = &e.lab.sshd;
    let node = |name: &str, port: u16| {
        format!(
            "        {name}:\n          proxmox_ssh_host: \"{}\"\n          proxmox_ssh_port: {port}\n          proxmox_ssh_user: \"{}\"\n          proxmox_pct_path: \"{}\"\n",
            s.host,
            s.user,
            s.pct_path.display()
        )
    };
    let inventory = e.dir.path().join("cluster.yml");
    std::fs::write(
        &inventory,
        format!(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n  children:\n    proxmox_nodes:\n      vars:\n        ansible_connection: local\n      hosts:\n{}{}",
            node("pve", s.port),
            node("pve2", pve2_port)
        ),
    )
    .unwrap();
    let catalog = catalog_yaml();
    let mut services = catalog["homelab_sso_services"]
        .as_sequence()
        .unwrap()
        .clone();
    for svc in services.iter_mut() {
        if svc["name"].as_str() != Some("oauth2-gateway") {
            svc["node"] = serde_norway::Value::from("pve2");
        }
    }
    let vars = e.dir.path().join("cluster-vars.json");
    std::fs::write(
        &vars,
        serde_json::json!({ "homelab_sso_services": services }).to_string(),
    )
    .unwrap();
    (inventory, format!("@{}", vars.display()))
}

#[test]
fn a_proxmox_cluster_is_harvested_once_per_node() {
    let e = E2e::up();
    let values = e.vault();
    // Two nodes, both reached over the lab's sshd; the services are split between them.
    let (inventory, vars_arg) = cluster(&e, e.lab.sshd.port);
    let run = e.playbook_with_inventory(&inventory, "drift-check.yml", &["-e", &vars_arg], &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains("ok: [pve]") && run.stdout.contains("ok: [pve2]"),
        "{}",
        run.stdout
    );
    assert_shows(
        &run,
        &[
            "oauth2-gateway | pocketid_client_secret | in sync",
            "n8n | n8n_webhook_token | in sync",
            "loki-stack | grafana_admin_password | in sync",
        ],
    );
    assert_no_secret(&run.all_output(), &values, "cluster drift-check output");
    // Each node's SSH login: one connection per node, not one per service.
    let logins = e.lab.sshd.log().matches("Accepted publickey").count();
    assert_eq!(logins, 2, "one SSH connection per Proxmox node");
}

/// One node of a cluster that does not answer: the drift check is not clean (its services are
/// NOT READ, not silently left out), and a rotation stops at its preflight, before the mint,
/// although the other node passed.
#[test]
fn a_node_that_does_not_answer_fails_the_drift_check_and_stops_the_rotation_before_the_mint() {
    let e = E2e::up();
    let values = e.vault();
    let (inventory, vars_arg) = cluster(&e, lab::proc::free_port());

    let run = e.playbook_with_inventory(&inventory, "drift-check.yml", &["-e", &vars_arg], &[]);
    assert!(!run.ok(), "{}", run.stdout);
    assert_shows(
        &run,
        &[
            "oauth2-gateway | pocketid_client_secret | in sync",
            "n8n | - | NOT READ (the harvest on pve2 failed, see above)",
            "its node did not answer",
        ],
    );
    assert_no_secret(&run.all_output(), &values, "cluster drift-check output");

    let version = e.vault_version();
    let secrets = e
        .lab
        .pocketid
        .client_secrets(lab::stack::OIDC_CLIENT_ID)
        .len();
    let run = e.playbook_with_inventory(
        &inventory,
        "rotate-homelab-sso.yml",
        &["-e", &vars_arg],
        &[],
    );
    assert!(!run.ok(), "{}", run.stdout);
    assert!(run.stdout.contains("fatal: [pve2]"), "{}", run.stdout);
    assert!(!run.stdout.contains("Step 2/6"), "{}", run.stdout);
    assert_eq!(e.vault_version(), version, "nothing written");
    assert_eq!(
        e.lab
            .pocketid
            .client_secrets(lab::stack::OIDC_CLIENT_ID)
            .len(),
        secrets,
        "nothing minted"
    );
    assert_no_secret(&run.all_output(), &values, "cluster rotation output");
}

#[test]
fn pocketid_setup_converges_when_vault_lost_the_client_secret() {
    let e = E2e::up();
    let before = e.vault();
    // Vault lost the client secret (e.g. the write after a mint failed).
    let mut without: serde_json::Map<String, serde_json::Value> = before
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
        .collect();
    without.remove("pocketid_client_secret");
    e.lab
        .bao
        .kv_put("homelab-sso", serde_json::Value::Object(without))
        .unwrap();
    let run = e.playbook("pocketid-setup.yml", &[], &[]);
    run.assert_ok();
    let after = e.vault();
    let secret = after
        .get("pocketid_client_secret")
        .expect("Vault holds a client secret again");
    assert!(e
        .lab
        .pocketid
        .client_secret_valid(lab::stack::OIDC_CLIENT_ID, secret));
    assert_no_secret(&run.all_output(), &after, "pocketid-setup output");
    // And a second run changes nothing.
    let v = e.vault_version();
    e.playbook("pocketid-setup.yml", &[], &[]).assert_ok();
    assert_eq!(e.vault_version(), v, "a converged setup writes nothing");
}

#[test]
fn readme_documents_every_secret_and_variable_the_workflows_read() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let (secrets, vars) = e2e::workflow_settings();
    let names: std::collections::BTreeSet<String> = secrets.into_iter().chain(vars).collect();
    assert!(names.contains("VAULT_ROLE_ID") && names.contains("PROXMOX_NODES"));
    for n in names {
        assert!(
            readme.contains(&format!("| `{n}`")) || readme.contains(&format!(", `{n}` |")),
            "README's table of Actions secrets and variables lacks {n}"
        );
    }
}

/// Every module's EXAMPLES, as a playbook, passes ansible-lint (all default rules, offline) with
/// the built collection installed, so that the FQCNs resolve and the examples are copyable.
#[test]
fn collection_examples_pass_ansible_lint_as_a_playbook() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = e2e::build_collection(dir.path());
    let colls = dir.path().join("collections");
    let out = Command::new(venv_bin("ansible-galaxy"))
        .args(["collection", "install", "--offline", "-p"])
        .arg(&colls)
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = dir.path().join("examples");
    std::fs::create_dir(&work).unwrap();
    // The `args` rule imports a module as Python to check its arguments; a binary module cannot be.
    std::fs::write(
        work.join(".ansible-lint"),
        "offline: true\nskip_list:\n  - args\n",
    )
    .unwrap();
    let docs = repo_root().join("ansible/collection/plugins/modules");
    for m in MODULES {
        let text = std::fs::read_to_string(docs.join(format!("{m}.yml"))).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let examples = doc["EXAMPLES"].as_str().expect("EXAMPLES is a string");
        let tasks: serde_norway::Value = serde_norway::from_str(examples).unwrap();
        let tasks = tasks.as_sequence().expect("EXAMPLES is a list of tasks");
        assert!(!tasks.is_empty(), "{m} has no example");
        for t in tasks {
            assert!(
                t.get(format!("homelab.sso.{m}")).is_some(),
                "{m}: every example calls homelab.sso.{m} by its FQCN: {t:?}"
            );
        }
        let indented: String = examples
            .lines()
            .map(|l| {
                if l.is_empty() {
                    "\n".to_string()
                } else {
                    format!("    {l}\n")
                }
            })
            .collect();
        std::fs::write(
            work.join(format!("{m}.yml")),
            format!(
                "---\n- name: Examples of homelab.sso.{m}\n  hosts: localhost\n  gather_facts: false\n  tasks:\n{}",
                indented.trim_end_matches('\n').to_string() + "\n"
            ),
        )
        .unwrap();
    }
    let out = Command::new(venv_bin("ansible-lint"))
        .args(["--nocolor", "--offline"])
        .current_dir(&work)
        .env("ANSIBLE_COLLECTIONS_PATH", &colls)
        .env("HOME", dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-lint on the examples:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Jinja in a playbook's YAML: each `{{ }}` and `{% %}` of every string, and the whole of
/// every bare condition (`when`, `that`, `failed_when`, `changed_when`, `until`).
fn jinja_of(value: &serde_norway::Value, bare: bool, out: &mut Vec<String>) {
    use serde_norway::Value;
    match value {
        Value::String(s) if bare => out.push(s.clone()),
        Value::String(s) => {
            for (open, close) in [("{{", "}}"), ("{%", "%}")] {
                let mut rest = s.as_str();
                while let Some(start) = rest.find(open) {
                    let inner = &rest[start + 2..];
                    let end = inner.find(close).unwrap_or(inner.len());
                    out.push(inner[..end].to_string());
                    rest = &inner[end..];
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| jinja_of(v, bare, out)),
        Value::Mapping(map) => {
            for (k, v) in map {
                let condition = matches!(
                    k.as_str(),
                    Some("when" | "that" | "failed_when" | "changed_when" | "until")
                );
                jinja_of(v, condition, out);
            }
        }
        _ => {}
    }
}

/// Jinja's tokens, enough to find plugin names: names (with dots), string literals (quoted),
/// and every other character alone.
fn jinja_tokens(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1 + usize::from(chars[i] == '\\');
            }
            i = (i + 1).min(chars.len());
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
        } else {
            i += 1;
            if c.is_whitespace() {
                continue;
            }
        }
        tokens.push(chars[start..i].iter().collect());
    }
    tokens
}

/// The filter, test and lookup plugins that Jinja expressions name (short names; lookups in full).
fn plugins_named(exprs: &[String]) -> [std::collections::BTreeSet<String>; 3] {
    let mut found: [std::collections::BTreeSet<String>; 3] = Default::default();
    let short = |t: &str| t.trim_start_matches("ansible.builtin.").to_string();
    // A whole string literal's text ('…' or "…"); None for anything else, an unclosed one too.
    let literal = |t: &String| {
        let quote = t.chars().next().filter(|q| "'\"".contains(*q))?;
        (t.len() >= 2 && t.ends_with(quote)).then(|| t[1..t.len() - 1].to_string())
    };
    for expr in exprs {
        let t = jinja_tokens(expr);
        for i in 0..t.len() {
            let next = |n: usize| t.get(i + n).cloned().unwrap_or_default();
            match t[i].as_str() {
                "|" => {
                    found[0].insert(short(&next(1)));
                }
                "is" => {
                    let name = if next(1) == "not" { next(2) } else { next(1) };
                    found[1].insert(short(&name));
                }
                // map('name') names a filter; select('name') and reject('name') a test.
                "select" | "reject" | "map" if next(1) == "(" => {
                    if let Some(name) = literal(&next(2)) {
                        let kind = if t[i] == "map" { 0 } else { 1 };
                        found[kind].insert(short(&name));
                    }
                }
                "selectattr" | "rejectattr" if next(1) == "(" && next(3) == "," => {
                    if let Some(name) = literal(&next(4)) {
                        found[1].insert(short(&name));
                    }
                }
                "lookup" | "query" | "q" if next(1) == "(" => {
                    if let Some(name) = literal(&next(2)) {
                        found[2].insert(format!("ansible.builtin.{}", short(&name)));
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// The names of one tuple of plugins/callback/lean_controller.py (`NAME = ('a', 'b', …)`).
fn preload_list(source: &str, name: &str) -> std::collections::BTreeSet<String> {
    let start = source
        .find(&format!("\n{name} = ("))
        .unwrap_or_else(|| panic!("{name} missing"));
    let body = &source[start..];
    let body = &body[..body.find(')').unwrap()];
    body.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The callback that loads plugins before the first task lists exactly the filters, tests and
/// lookups the playbooks use (a name missing there is loaded again by every task's worker).
#[test]
fn lean_controller_lists_every_plugin_the_playbooks_use() {
    let root = repo_root().join("ansible/playbooks");
    let mut exprs = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let value: serde_norway::Value = serde_norway::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                jinja_of(&value, false, &mut exprs);
            }
        }
    }
    let [mut filters, tests, lookups] = plugins_named(&exprs);
    // The playbooks' own filters (filter_plugins/, beside them) are not ansible.builtin's.
    let own = std::fs::read_to_string(root.join("filter_plugins/drift.py")).unwrap();
    filters.retain(|f| !own.contains(&format!("'{f}':")));
    let source = std::fs::read_to_string(
        repo_root().join("ansible/collection/plugins/callback/lean_controller.py"),
    )
    .unwrap();
    assert_eq!(filters, preload_list(&source, "FILTERS"), "filters");
    assert_eq!(tests, preload_list(&source, "TESTS"), "tests");
    assert_eq!(lookups, preload_list(&source, "LOOKUPS"), "lookups");
}
