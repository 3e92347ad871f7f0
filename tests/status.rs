//! `playbooks/sso-status.yml` against the lab: each key's age against the catalog's max_age, names
//! and times only, failing when a key is overdue; PocketID's client secrets (a lingering one) and
//! API keys (one expiring within the warning window); the JSON report without a value; and the
//! catalog's max_ages held to the lab's.

use e2e::{assert_no_secret, E2e};
use lab::tools::repo_root;
use std::time::Duration;

fn catalog_yaml() -> serde_norway::Value {
    let path = repo_root().join("ansible/playbooks/group_vars/all/catalog.yml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_catalogs_max_ages_are_the_labs() {
    let y = catalog_yaml();
    let by_kind: Vec<(String, u64)> = y["homelab_sso_max_age_days"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_u64().unwrap()))
        .collect();
    let lab: Vec<(String, u64)> = lab::catalog::MAX_AGE_DAYS
        .iter()
        .map(|(k, d)| (k.to_string(), *d))
        .collect();
    assert_eq!(by_kind, lab);
    assert_eq!(
        y["homelab_sso_key_max_age_days"]
            .as_mapping()
            .map(|m| m.len()),
        Some(0)
    );
    for (key, kind) in y["homelab_sso_keys"].as_mapping().unwrap() {
        let key = key.as_str().unwrap();
        assert_eq!(kind.as_str(), Some(lab::catalog::key_kind(key)), "{key}");
    }
}

/// `days` ago, in the form Vault writes times.
fn days_ago(days: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        - Duration::from_secs(days * 86400);
    httpx::time::format_rfc3339_ns(secs.as_nanos() as i128, false)
}

/// The rotation sso-status names for an overdue cookie secret, with quick deploy runs.
fn rotate_n8n_cookie_secret(e: &E2e) {
    quick_deploys(e);
    e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "rotate_keys=n8n_cookie_secret"],
        &[],
    )
    .assert_ok();
}

#[test]
fn sso_status_reports_ages_and_fails_on_an_overdue_key() {
    let e = E2e::up();
    let values = e.vault();
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_ok();
    let out = run.all_output();
    let version = e.vault_version();
    assert!(
        out.contains(&format!("n8n_cookie_secret | {version} | ")),
        "{out}"
    );
    assert!(out.contains("| 0 | 180 | "), "{out}");
    assert!(out.contains("pocketid_client_id | "), "{out}");
    assert!(out.contains("| - | - | no max_age"), "{out}");
    assert_no_secret(&out, &values, "sso-status output");

    // A key made old: its recorded change back-dated past its max_age.
    make_old(&e, "n8n_cookie_secret", 200);
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_failed();
    let out = run.all_output();
    assert!(out.contains("| 200 | 180 | "), "{out}");
    assert!(out.contains("| OVERDUE"), "{out}");
    assert!(
        out.contains(
            "1 key(s) of secret/homelab-sso are older than their max_age: n8n_cookie_secret."
        ),
        "{out}"
    );
    assert!(out.contains("rotate_keys=n8n_cookie_secret"), "{out}");
    assert_no_secret(&out, &values, "sso-status output");

    // From a terminal, for machines: only the report on stdout, the playbook's verdict as status.
    let mut cmd = std::process::Command::new(lab::tools::repo_root().join("scripts/sso-status.sh"));
    cmd.arg("--json").arg("-i").arg(&e.inventory);
    lab::ansible::repo_playbook_env(&mut cmd, &e.dir.path().join("ansible"), e.lab.env());
    let path = format!(
        "{}:{}",
        lab::tools::venv_bin("python").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cli = cmd.env("PATH", path).output().unwrap();
    assert!(!cli.status.success());
    let stdout = String::from_utf8_lossy(&cli.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("only JSON on stdout");
    assert_eq!(report["verdict"], "failed", "{report}");
    assert_eq!(
        report["overdue"],
        serde_json::json!(["n8n_cookie_secret"]),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_no_secret(&stdout, &values, "sso-status --json");
    assert_no_secret(
        &String::from_utf8_lossy(&cli.stderr),
        &values,
        "sso-status --json stderr",
    );

    // The rotation it names makes the report clean again, the new version recorded.
    rotate_n8n_cookie_secret(&e);
    let rotated = e.vault_version();
    assert_eq!(rotated, version + 1);
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(
        out.contains(&format!("n8n_cookie_secret | {rotated} | ")),
        "{out}"
    );
    assert!(!out.contains("OVERDUE"), "{out}");
    assert_no_secret(&out, &e.vault(), "sso-status output");
}

/// The status run's JSON report (`-e sso_status_json=…`) and its full output, checked for values.
fn status_with_json(e: &E2e, ok: bool, extra: &[(&str, &str)]) -> (String, serde_json::Value) {
    status_with_json_env(e, ok, extra, &[])
}

/// [`status_with_json`] with extra environment variables for the playbook.
fn status_with_json_env(
    e: &E2e,
    ok: bool,
    extra: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (String, serde_json::Value) {
    let json_path = e.dir.path().join("sso-status.json");
    let _ = std::fs::remove_file(&json_path);
    let arg = format!("sso_status_json={}", json_path.display());
    let run = e.playbook("sso-status.yml", &["-e", &arg], env);
    if ok {
        run.assert_ok();
    } else {
        run.assert_failed();
    }
    let out = run.all_output();
    let text = std::fs::read_to_string(&json_path).expect("the JSON report");
    let mut values = e.vault();
    for (k, v) in extra {
        values.insert(k.to_string(), v.to_string());
    }
    values.insert("api_key".into(), e.lab.pocketid.admin_key().to_string());
    assert_no_secret(&out, &values, "sso-status output");
    assert_no_secret(&text, &values, "sso-status JSON report");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&json_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the report is private");
    (out, serde_json::from_str(&text).expect("JSON"))
}

#[test]
fn sso_status_reports_pocketid_credentials_a_lingering_secret_and_an_expiring_api_key() {
    let e = E2e::up();
    let client = lab::stack::OIDC_CLIENT_ID;
    let vault_prefix = e.vault()["pocketid_client_secret"][..4].to_string();
    let (out, report) = status_with_json(&e, true, &[]);
    assert!(
        out.contains(&format!("client secret | {vault_prefix} [")),
        "{out}"
    );
    assert!(out.contains("| never | - | in Vault | ok"), "{out}");
    assert!(out.contains("API key | automation ["), "{out}");
    assert!(out.contains("| in use | ok"), "{out}");
    // The lab's secret_id has no TTL: Vault's login credential never expires.
    assert!(
        out.contains("Vault credential | AppRole secret_id of role homelab-sso | 20"),
        "{out}"
    );
    assert_eq!(
        report["vault_credential"]["expires_at"],
        serde_json::Value::Null
    );
    assert_eq!(report["verdict"], "ok", "{report}");
    assert_eq!(report["drift"]["clean"], true, "{report}");
    assert_eq!(report["warning_days"], 14);
    assert_eq!(report["client_secrets"].as_array().unwrap().len(), 1);

    // A rotation that stopped between mint and retire left a second active secret.
    let (lingering_id, lingering) = e.lab.pocketid.add_client_secret(client).unwrap();
    let (out, report) = status_with_json(&e, false, &[("lingering", &lingering)]);
    assert!(
        out.contains(&format!("2 client secrets of {client} are active")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} [{lingering_id}], not in Vault",
            &lingering[..4]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{vault_prefix} [")) && out.contains(", in Vault"),
        "{out}"
    );
    assert_eq!(report["verdict"], "failed");
    assert_eq!(
        report["concerned"]["keys"],
        serde_json::json!(["pocketid_client_secret"])
    );

    // The next rotation (of any key) retires it, and the report is clean again.
    rotate_n8n_cookie_secret(&e);
    let ids: Vec<String> = e
        .lab
        .pocketid
        .client_secrets(client)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.contains(&lingering_id), "{ids:?}");
    let (_, report) = status_with_json(&e, true, &[("lingering", &lingering)]);
    assert_eq!(report["verdict"], "ok", "{report}");

    // The automation's API key expires in 3 days: a warning naming it fails the status.
    let pid = &e.lab.pocketid;
    assert!(pid.set_api_key_expiry(pid.admin_key_id(), 3 * 86400));
    let (out, report) = status_with_json(&e, false, &[]);
    let named = format!(
        "PocketID API key automation [{}] (in use) expires at ",
        pid.admin_key_id()
    );
    assert!(out.contains(&named), "{out}");
    assert!(out.contains("(warning window 14 days)"), "{out}");
    assert!(out.contains("| EXPIRES SOON"), "{out}");
    assert_eq!(report["verdict"], "failed");
    assert_eq!(report["concerned"]["keys"], serde_json::json!(["api_key"]));
    assert_eq!(
        report["concerned"]["services"],
        serde_json::json!(["pocketid"])
    );

    // The workflows log in with a secret_id that expires in 3 days: named, with the way out.
    let (status, issued) = e
        .lab
        .bao
        .request(
            "POST",
            "/v1/auth/approle/role/homelab-sso/secret-id",
            Some(serde_json::json!({"ttl": "72h"})),
        )
        .unwrap();
    assert_eq!(status, 200, "{issued}");
    let secret_id = issued["data"]["secret_id"].as_str().unwrap();
    let summary_file = e.summary_file("sso-status-summary.json");
    let (out, report) = status_with_json_env(
        &e,
        false,
        &[("secret_id", secret_id)],
        &[("VAULT_SECRET_ID", secret_id), summary_file.env()],
    );
    // The alert's summary is sso-status's own (the drift check it runs writes none).
    assert_eq!(
        summary_file.read(&out),
        serde_json::json!({"workflow": "sso-status", "verdict": "failed",
                           "services": ["pocketid"], "keys": ["api_key"]})
    );
    assert!(
        out.contains("Vault's AppRole secret_id of role homelab-sso (in use) expires at "),
        "{out}"
    );
    assert!(out.contains("bootstrap_overwrite_secrets"), "{out}");
    assert_eq!(
        report["vault_credential"]["state"], "EXPIRES SOON",
        "{report}"
    );
    assert_eq!(report["vault_credential"]["days_left"], 3.0, "{report}");
}

#[test]
fn sso_status_on_pocketid_before_2_14_says_what_cannot_be_known() {
    let e = E2e::up_with(&lab::stack::LabOptions {
        pocketid_version: "2.13.0".into(),
        ..Default::default()
    });
    let (out, report) = status_with_json(&e, true, &[]);
    assert!(
        out.contains("keeps one client secret per client and lists nothing about it"),
        "{out}"
    );
    assert!(out.contains("cannot be known"), "{out}");
    assert_eq!(report["client_secrets_known"], false, "{report}");
    assert_eq!(report["client_secrets"], serde_json::json!([]));
    assert_eq!(report["verdict"], "ok");
    assert!(out.contains("API key | automation ["), "{out}");
}

/// Back-dates key `key`'s recorded change (`rotated/<key>` in custom_metadata) by `days`.
fn make_old(e: &E2e, key: &str, days: u64) {
    let entry = format!("{}@{}", e.vault_version(), days_ago(days));
    let (status, body) = e
        .lab
        .bao
        .request(
            "POST",
            "/v1/secret/metadata/homelab-sso",
            Some(serde_json::json!({"custom_metadata": {format!("rotated/{key}"): entry}})),
        )
        .unwrap();
    assert!((200..300).contains(&status), "{body}");
}

fn quick_deploys(e: &E2e) {
    for (_, wf) in lab::forgejo::deploy_workflows() {
        e.lab.forgejo.set_behaviour(
            &wf,
            lab::forgejo::Behaviour::lasting(Duration::from_millis(300)),
        );
    }
}

#[test]
fn rotate_keys_due_rotates_exactly_the_overdue_key_in_one_full_write() {
    let e = E2e::up();
    quick_deploys(&e);
    let before = e.vault();
    let version = e.vault_version();
    let secrets = e.lab.pocketid.client_secrets(lab::stack::OIDC_CLIENT_ID);

    // Nothing is due: said so, and nothing is minted, written or redeployed.
    let summary = e.summary_file("rotate-due.json");
    let env = [("ROTATE_KEYS", "due"), summary.env()];
    let run = e.playbook("rotate-homelab-sso.yml", &[], &env);
    run.assert_ok();
    let out = run.all_output();
    assert!(out.contains("Nothing is due"), "{out}");
    assert!(!out.contains("Rotation complete"), "{out}");
    assert_eq!(e.vault_version(), version);
    assert!(e.lab.forgejo.runs().is_empty(), "nothing redeployed");
    assert_eq!(
        e.lab.pocketid.client_secrets(lab::stack::OIDC_CLIENT_ID),
        secrets,
        "nothing minted or retired"
    );
    let written = summary.read(&out);
    assert_eq!(written["verdict"], "nothing due");

    // One key made old: exactly it rotates, in one new version holding every key.
    make_old(&e, "glance_cookie_secret", 181);
    let run = e.playbook("rotate-homelab-sso.yml", &[], &env);
    run.assert_ok();
    let out = run.all_output();
    assert!(
        out.contains("Due (older than their max_age): glance_cookie_secret"),
        "{out}"
    );
    assert!(out.contains("keys rotated: glance_cookie_secret"), "{out}");
    assert_no_secret(&out, &before, "rotate_keys=due output");
    assert_eq!(e.vault_version(), version + 1, "one full write");
    let after = e.vault();
    assert_eq!(after.len(), before.len());
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed, ["glance_cookie_secret"]);
    let meta = e
        .lab
        .bao
        .request("GET", "/v1/secret/metadata/homelab-sso", None)
        .unwrap()
        .1;
    let recorded = meta["data"]["custom_metadata"]["rotated/glance_cookie_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        recorded.starts_with(&format!("{}@", version + 1)),
        "{recorded}"
    );
    assert_eq!(
        e.lab
            .pocketid
            .client_secrets(lab::stack::OIDC_CLIENT_ID)
            .len(),
        secrets.len(),
        "no mint for a cookie secret"
    );
    e.assert_deployed_matches_vault();
    let written = summary.read(&run.stdout);
    assert_eq!(written["verdict"], "rotated");
    assert_eq!(written["keys"], serde_json::json!(["glance_cookie_secret"]));

    // The report is clean afterwards.
    let run = e.playbook("sso-status.yml", &[], &[]);
    run.assert_ok();
    let out = run.all_output();
    assert!(!out.contains("OVERDUE"), "{out}");
    assert!(
        out.contains(&format!("glance_cookie_secret | {} | ", version + 1)),
        "{out}"
    );
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch(t: &str) -> i64 {
    (httpx::time::parse_rfc3339_ns(t).expect("RFC 3339") / 1_000_000_000) as i64
}

#[test]
fn a_minted_client_secret_expires_after_max_age_plus_grace_and_is_refused_before_2_14() {
    let e = E2e::up();
    quick_deploys(&e);
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &[
            "-e",
            "rotate_keys=pocketid_client_secret",
            "-e",
            "homelab_sso_client_secret_grace_days=14",
        ],
        &[],
    );
    run.assert_ok();
    let held = e.lab.pocketid.client_secrets(lab::stack::OIDC_CLIENT_ID);
    assert_eq!(held.len(), 1, "the old secret retired: {held:?}");
    let expires = held[0]["expiresAt"].as_str().expect("an expiry");
    let now = epoch(&days_ago(0));
    assert!(
        (epoch(expires) - now - (90 + 14) * 86_400).abs() < 600,
        "{expires}"
    );
    let out = run.all_output();
    assert!(
        out.contains("new PocketID client secret expires: 20"),
        "{out}"
    );
    assert!(
        e.lab.pocketid.client_secret_valid(
            lab::stack::OIDC_CLIENT_ID,
            &e.vault()["pocketid_client_secret"]
        ),
        "Vault holds the new secret"
    );

    // PocketID 2.13 cannot give a secret an expiry: refused at the preflight, nothing changed.
    drop(e);
    let e = E2e::up_with(&lab::stack::LabOptions {
        pocketid_version: "2.13.0".into(),
        ..Default::default()
    });
    let version = e.vault_version();
    let run = e.playbook(
        "rotate-homelab-sso.yml",
        &["-e", "homelab_sso_client_secret_grace_days=14"],
        &[],
    );
    run.assert_failed();
    let out = run.all_output();
    assert!(
        out.contains("secret_expires_days needs PocketID 2.14 or later"),
        "{out}"
    );
    assert!(
        out.contains("homelab_sso_client_secret_grace_days"),
        "{out}"
    );
    assert_eq!(e.vault_version(), version);
    assert!(e.lab.forgejo.runs().is_empty());
}
