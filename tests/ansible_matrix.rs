//! The compatibility matrix: the collection as a user installs and uses it, on every ansible-core
//! of its range (`meta/runtime.yml` `requires_ansible`).
//!
//! Each ansible-core has its own virtualenv from PyPI (`tests/ansible-matrix/requirements-2.NN.txt`,
//! made by `scripts/ansible-matrix.sh`, which `make setup` runs). The collection tarball is built
//! once with `ansible-galaxy collection build` and installed with `ansible-galaxy collection
//! install` into an empty path per version; `ansible-doc -l homelab.sso` lists the eight modules;
//! then a user's own playbook (`site.yml`: connection local and ssh to the lab's sshd as
//! `HOMELAB_SSO_MATRIX_SSH_USER` when set (another user), become, async + async_status, check and diff, module_defaults
//! groups, no_log at -vvv, delegate_to, a role, until, a task timeout), an ad-hoc `ansible -m`, and
//! `kept-result.yml` with a test-only callback that breaks the reading of a result after the binary
//! ran. A version marked `# outside the range` must get ansible-core's own warning.

use e2e::{build_collection, E2e};
use lab::tools::repo_root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// ansible-core's warning for a collection whose `requires_ansible` excludes it.
const UNSUPPORTED: &str = "Collection homelab.sso does not support Ansible version";

/// A written secret value: it must never appear in any output.
const MATRIX_SECRET: &str = "matrix-Secret-value-7f3a9c";

struct Version {
    minor: String,
    venv: PathBuf,
    in_range: bool,
}

fn versions() -> Vec<Version> {
    let root = repo_root();
    let venvs = std::env::var("ANSIBLE_MATRIX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/ansible-matrix"));
    let mut out: Vec<Version> = std::fs::read_dir(root.join("tests/ansible-matrix"))
        .expect("tests/ansible-matrix")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            let minor = name.strip_prefix("requirements-")?.strip_suffix(".txt")?;
            let text = std::fs::read_to_string(&path).ok()?;
            Some(Version {
                minor: minor.to_string(),
                venv: venvs.join(minor),
                in_range: !text.lines().any(|l| l.trim() == "# outside the range"),
            })
        })
        .collect();
    out.sort_by(|a, b| a.minor.cmp(&b.minor));
    out
}

/// A command of a version's virtualenv with nothing of the caller's Ansible or credentials.
fn tool(v: &Version, name: &str, work: &Path) -> Command {
    let bin = v.venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/ansible-matrix.sh (make setup does) to make ansible-core {}'s virtualenv",
        bin.display(),
        v.minor
    );
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("ANSIBLE_") || k.starts_with("VAULT_") || k.starts_with("POCKETID_") {
            cmd.env_remove(k);
        }
    }
    let dir = repo_root().join("tests/ansible-matrix");
    cmd.current_dir(&dir)
        .env("ANSIBLE_COLLECTIONS_PATH", work.join("collections"))
        .env("ANSIBLE_ROLES_PATH", dir.join("roles"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("tmp-local"))
        .env("ANSIBLE_REMOTE_TMP", work.join("tmp-remote"))
        .env("ANSIBLE_ASYNC_DIR", work.join("async"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0");
    cmd
}

/// `ansible-playbook NAME -vvv` of `tests/ansible-matrix/` with the inventory and the extra vars.
fn playbook(
    v: &Version,
    work: &Path,
    inventory: &Path,
    vars: &Path,
    kv_path: &str,
    name: &str,
) -> Command {
    let mut cmd = tool(v, "ansible-playbook", work);
    cmd.arg("-i")
        .arg(inventory)
        .arg("-e")
        .arg(format!("@{}", vars.display()))
        .arg("-e")
        .arg(format!("kv_path={kv_path}"))
        .args([name, "-vvv"]);
    cmd
}

fn run(mut cmd: Command, what: &str) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The user the managed host's tasks log in as: `HOMELAB_SSO_MATRIX_SSH_USER` (an unprivileged
/// user; `make setup` creates it when root and asked, and CI asks), else the lab's sshd user,
/// which is the current user: an sshd that is not root can log in no one else.
fn ssh_user(lab_user: &str) -> String {
    let Ok(user) = std::env::var("HOMELAB_SSO_MATRIX_SSH_USER") else {
        return lab_user.to_string();
    };
    assert!(
        lab_user == "root",
        "HOMELAB_SSO_MATRIX_SSH_USER={user}: the lab's sshd runs as {lab_user} and can log in \
         only as {lab_user}; run the matrix as root, or unset the variable"
    );
    let exists = Command::new("id")
        .args(["-u", &user])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        exists,
        "HOMELAB_SSO_MATRIX_SSH_USER={user}: no such user; `make setup` as root creates it \
         (with the variable set), or unset the variable to log in as {lab_user}"
    );
    user
}

/// The inventory (the controller, and the lab's sshd as a managed host, logged in as `user`) and
/// the extra vars file (0600: it holds the credentials, which never go on a command line).
fn write_inputs(e: &E2e, dir: &Path, user: &str) -> (PathBuf, PathBuf, Vec<String>) {
    let env: std::collections::BTreeMap<String, String> = e.lab.env().into_iter().collect();
    let s = &e.lab.sshd;
    // Another user cannot write the controller's temporary directory: its own home then.
    let remote_tmp = if user == s.user {
        String::new()
    } else {
        " ansible_remote_tmp=~/.ansible/tmp".to_string()
    };
    let inventory = dir.join("inventory.ini");
    std::fs::write(
        &inventory,
        format!(
            "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n\
             managed ansible_host={} ansible_port={} ansible_user={} ansible_ssh_private_key_file={} \
             ansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes' \
             ansible_ssh_transfer_method=piped ansible_python_interpreter=/usr/bin/python3{}\n",
            s.host,
            s.port,
            user,
            s.private_key.display(),
            s.known_hosts.display(),
            remote_tmp
        ),
    )
    .unwrap();
    let secrets = vec![
        env["LAB_VAULT_ROOT_TOKEN"].clone(),
        env["POCKETID_API_KEY"].clone(),
        MATRIX_SECRET.to_string(),
    ];
    let vars = dir.join("vars.json");
    std::fs::write(
        &vars,
        serde_json::json!({
            "vault_url": env["VAULT_ADDR"],
            "vault_token": secrets[0],
            "pocketid_url": env["POCKETID_URL"],
            "pocketid_api_key": secrets[1],
            "matrix_secret": MATRIX_SECRET,
        })
        .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&vars, std::fs::Permissions::from_mode(0o600)).unwrap();
    (inventory, vars, secrets)
}

fn assert_no_leak(text: &str, secrets: &[String], what: &str) {
    for (i, s) in secrets.iter().enumerate() {
        assert!(!text.contains(s.as_str()), "{what} shows credential #{i}");
    }
}

/// The callback lean_controller (enabled for site.yml) loaded every plugin it lists before the
/// first task, and froze the objects after the statistics; at -vvv it says both.
fn assert_lean_controller(out: &str, minor: &str) {
    let said: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("homelab.sso.lean_controller: "))
        .collect();
    assert!(
        said.len() == 2 && said[1].ends_with(" objects frozen, no garbage collection at exit"),
        "ansible-core {minor}: lean_controller did not say what it did twice:\n{out}"
    );
    let line = said[0];
    let counts: Vec<&str> = line.split_whitespace().take(3).collect();
    assert!(
        counts.len() == 3 && counts[1] == "of" && counts[0] == counts[2],
        "ansible-core {minor}: lean_controller did not load every plugin it lists: {line}"
    );
}

#[test]
fn every_ansible_core_in_range() {
    let e = E2e::up();
    let tarball = build_collection(e.dir.path());
    let user = ssh_user(&e.lab.sshd.user);
    let (inventory, vars, secrets) = write_inputs(&e, e.dir.path(), &user);
    let env: std::collections::BTreeMap<String, String> = e.lab.env().into_iter().collect();
    let versions = versions();
    assert!(versions.iter().filter(|v| v.in_range).count() >= 4);
    for v in &versions {
        let work = e.dir.path().join(format!("ansible-{}", v.minor));
        let mut install = tool(v, "ansible-galaxy", &work);
        install
            .args(["collection", "install", "-p"])
            .arg(work.join("collections"))
            .arg(&tarball);
        let (ok, out) = run(install, "ansible-galaxy collection install");
        assert!(ok, "ansible-core {}: install failed:\n{out}", v.minor);
        if v.in_range {
            let what = format!("ansible-core {}", v.minor);
            e2e::assert_lists_every_module(tool(v, "ansible-doc", &work), &what);
            let mut doc = tool(v, "ansible-doc", &work);
            doc.args(["-t", "module", "homelab.sso.vault_full_write"]);
            let (ok, out) = run(doc, "ansible-doc -t module");
            assert!(
                ok && out.contains("OPTIONS") && out.contains("EXAMPLES"),
                "{what}: ansible-doc -t module homelab.sso.vault_full_write:\n{out}"
            );
        }

        // Ad-hoc, on the controller: fingerprints only, the token from the environment.
        let kv_path = format!("matrix/{}", v.minor);
        let mut adhoc = tool(v, "ansible", &work);
        adhoc
            .arg("-i")
            .arg(&inventory)
            .args(["localhost", "-m", "homelab.sso.vault_kv_read", "-a"])
            .arg(format!(
                "path={kv_path} missing_ok=true return_values=false salt=adhoc"
            ))
            .env("VAULT_ADDR", &env["VAULT_ADDR"])
            .env("VAULT_TOKEN", &secrets[0]);
        let (ok, out) = run(adhoc, "ansible -m");
        assert_no_leak(&out, &secrets, "ansible -m");
        if !v.in_range {
            assert!(
                out.contains(UNSUPPORTED),
                "ansible-core {} is outside the range but did not warn:\n{out}",
                v.minor
            );
            continue;
        }
        assert!(
            ok && out.contains("SUCCESS"),
            "ansible-core {}: ansible -m failed:\n{out}",
            v.minor
        );
        assert!(
            !out.contains(UNSUPPORTED),
            "ansible-core {} warns:\n{out}",
            v.minor
        );

        let mut site = playbook(v, &work, &inventory, &vars, &kv_path, "site.yml");
        site.env("ANSIBLE_CALLBACKS_ENABLED", "homelab.sso.lean_controller");
        let (ok, out) = run(site, "ansible-playbook site.yml");
        assert!(ok, "ansible-core {}: site.yml failed:\n{out}", v.minor);
        assert_lean_controller(&out, &v.minor);
        assert_no_leak(&out, &secrets, "site.yml at -vvv");
        assert!(
            e.lab
                .sshd
                .log()
                .contains(&format!("Accepted publickey for {user} ")),
            "ansible-core {}: the managed host was not reached as {user}",
            v.minor
        );
        // On 2.19 and 2.20 the renamed `data` warns only when read, and site.yml never reads it
        // (2.18 has no deprecation tags, and 2.21 records the module's entry while parsing: a
        // plain warning there, as the collection's README says).
        assert!(
            !["2.19", "2.20"].contains(&v.minor.as_str())
                || !out.contains("`data` is renamed `secret`"),
            "ansible-core {} warns about vault_kv_read's `data`, which is not read:\n{out}",
            v.minor
        );
        assert!(
            !out.contains(UNSUPPORTED),
            "ansible-core {} warns:\n{out}",
            v.minor
        );

        let callbacks = repo_root().join("tests/ansible-matrix/callbacks");
        let mut kept = playbook(v, &work, &inventory, &vars, &kv_path, "kept-result.yml");
        kept.env("ANSIBLE_CALLBACK_PLUGINS", &callbacks)
            .env("ANSIBLE_CALLBACKS_ENABLED", "break_result");
        let (ok, out) = run(kept, "ansible-playbook kept-result.yml");
        assert!(
            ok,
            "ansible-core {}: kept-result.yml failed:\n{out}",
            v.minor
        );
        assert_no_leak(&out, &secrets, "kept-result.yml at -vvv");
        assert!(
            out.contains("ignored=1"),
            "ansible-core {}: the broken result reading did not fail the task:\n{out}",
            v.minor
        );
    }
}
