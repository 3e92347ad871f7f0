//! Harness for end-to-end tests: a whole lab, the module binaries as the installed collection
//! `homelab.sso`, and the repository's playbooks run by the real `ansible-playbook`.
//!
//! The module binaries are taken from the build directory (`make test` builds them first with
//! `cargo build --workspace --bins`).

use lab::ansible::{module_library, PlaybookRun};
use lab::stack::{Lab, LabOptions};
use lab::tools::{repo_root, venv_bin};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module binaries of the collection.
pub use lab::catalog::MODULE_BINARIES as MODULES;

/// Where cargo put the debug binaries.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"))
}

/// A built binary of the workspace; panics with what to run when it is missing.
pub fn built_bin(name: &str) -> PathBuf {
    let p = target_dir().join("debug").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does) before the end-to-end tests",
        p.display()
    );
    p
}

pub struct E2e {
    pub dir: tempfile::TempDir,
    pub lab: Lab,
    pub library: PathBuf,
    pub inventory: PathBuf,
}

impl E2e {
    pub fn up() -> E2e {
        Self::up_with(&LabOptions::default())
    }

    pub fn up_with(opts: &LabOptions) -> E2e {
        let dir = tempfile::tempdir().expect("tempdir");
        let lab = Lab::up(&dir.path().join("lab"), opts).expect("lab up");
        let (_, inventory) = lab.write_files().expect("lab files");
        let bins: Vec<(&str, PathBuf)> = MODULES.iter().map(|m| (*m, built_bin(m))).collect();
        let refs: Vec<(&str, &Path)> = bins.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let library = module_library(&dir.path().join("ansible"), &refs).expect("module library");
        E2e {
            dir,
            lab,
            library,
            inventory,
        }
    }

    /// Runs `ansible/playbooks/<name>` against the lab with the lab's environment.
    pub fn playbook(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> PlaybookRun {
        self.playbook_with_inventory(&self.inventory, name, args, env)
    }

    /// Like [`E2e::playbook`] with another inventory (e.g. a cluster of several Proxmox nodes).
    pub fn playbook_with_inventory(
        &self,
        inventory: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> PlaybookRun {
        let root = repo_root();
        let work = self.dir.path().join("ansible");
        let mut cmd = Command::new(venv_bin("ansible-playbook"));
        cmd.arg("-i")
            .arg(inventory)
            .arg(root.join("ansible/playbooks").join(name))
            .args(args);
        lab::ansible::repo_playbook_env(&mut cmd, &work, self.lab.env());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .expect("running ansible-playbook (run `make setup`)");
        PlaybookRun {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn vault(&self) -> BTreeMap<String, String> {
        self.lab.vault_values().expect("reading Vault")
    }

    pub fn vault_version(&self) -> u64 {
        self.lab
            .bao
            .current_version("homelab-sso")
            .expect("Vault metadata")
    }

    /// What a service's deployed `.env` holds for each of its catalog keys.
    pub fn deployed(&self, service: &str) -> BTreeMap<String, String> {
        let svc = lab::catalog::services()
            .into_iter()
            .find(|s| s.name == service)
            .expect("service in the catalog");
        let text = String::from_utf8(
            self.lab
                .containers
                .read_file(svc.vmid, &svc.env_path)
                .expect(".env"),
        )
        .expect("utf-8 .env");
        let mut out = BTreeMap::new();
        for (key, env) in &svc.keys {
            let prefix = format!("{env}=\"");
            if let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) {
                let v = line[prefix.len()..line.len() - 1]
                    .replace("$$", "$")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
                out.insert(key.clone(), v);
            }
        }
        out
    }

    /// Every deployed value equals Vault's.
    pub fn assert_deployed_matches_vault(&self) {
        let vault = self.vault();
        for svc in lab::catalog::services() {
            let deployed = self.deployed(svc.name);
            for (key, _) in &svc.keys {
                assert!(
                    deployed.contains_key(key),
                    "{}'s .env lacks {key}",
                    svc.name
                );
            }
            for (key, value) in deployed {
                assert!(
                    vault.get(&key) == Some(&value),
                    "{} holds a {key} that differs from Vault",
                    svc.name
                );
            }
        }
    }
}

/// A file for a playbook's alert summary (`HOMELAB_SSO_SUMMARY_FILE`), as the workflows pass it.
pub struct SummaryFile {
    path: PathBuf,
    value: String,
}

impl SummaryFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment variable that makes a playbook write its summary here.
    pub fn env(&self) -> (&'static str, &str) {
        ("HOMELAB_SSO_SUMMARY_FILE", self.value.as_str())
    }

    /// The summary written; panics naming the file, with `context` (e.g. the run's output).
    pub fn read(&self, context: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("no summary at {}: {e}\n{context}", self.path.display()));
        serde_json::from_str(&text).expect("the summary is JSON")
    }
}

impl E2e {
    /// A summary file named `name` in the test's directory.
    pub fn summary_file(&self, name: &str) -> SummaryFile {
        let path = self.dir.path().join(name);
        let value = path.display().to_string();
        SummaryFile { path, value }
    }
}

/// Asserts that none of `secrets` appears in `text` (names the key, never the value).
pub fn assert_no_secret(text: &str, secrets: &BTreeMap<String, String>, what: &str) {
    for (k, v) in secrets {
        // The client id is an identifier, printed on purpose.
        if k != "pocketid_client_id" && v.len() >= 8 {
            assert!(
                !text.contains(v.as_str()),
                "{what} contains the value of {k}"
            );
        }
    }
}

/// Builds the collection tarball from the debug binaries (what `make build` does with release
/// binaries) into `dir/dist`, and returns its path.
pub fn build_collection(dir: &Path) -> PathBuf {
    let src = dir.join("collection-src");
    let root = repo_root().join("ansible/collection");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(&root)
        .arg(&src)
        .status()
        .expect("cp");
    assert!(cp.success());
    // Binaries `make build` left in the source tree are replaced by the debug ones.
    let _ = std::fs::remove_dir_all(src.join("bin"));
    std::fs::create_dir(src.join("bin")).expect("bin/");
    for m in MODULES {
        let doc = src.join(format!("plugins/modules/{m}.yml"));
        assert!(doc.exists(), "{m} has no sidecar doc");
        let action = src.join(format!("plugins/action/{m}.py"));
        assert!(
            action.exists(),
            "{m} has no action plugin (plugins/action/{m}.py, as the other modules)"
        );
        // The layout `ansible-doc -l` needs (the collection's README): the binary in bin/, a
        // symlink to it in plugins/modules, a listing stub `<module>.ini` beside the sidecar.
        let link = src.join(format!("plugins/modules/{m}"));
        assert_eq!(
            std::fs::read_link(&link).ok(),
            Some(PathBuf::from(format!("../../bin/{m}"))),
            "plugins/modules/{m} is not the symlink to ../../bin/{m}"
        );
        assert!(
            src.join(format!("plugins/modules/{m}.ini")).is_file(),
            "{m} has no listing stub plugins/modules/{m}.ini"
        );
        // Without debug info: a debug build's ~80 MB per binary made every collection build gzip
        // half a gigabyte. The code is the same.
        let dest = src.join(format!("bin/{m}"));
        let stripped = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&dest)
            .arg(built_bin(m))
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(built_bin(m), &dest).expect("copy module");
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                .expect("module mode");
        }
    }
    let dist = dir.join("dist");
    let out = Command::new(venv_bin("ansible-galaxy"))
        .args(["collection", "build"])
        .arg(&src)
        .arg("--output-path")
        .arg(&dist)
        .output()
        .expect("ansible-galaxy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let galaxy: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(root.join("galaxy.yml")).unwrap()).unwrap();
    let version = galaxy["version"].as_str().expect("galaxy.yml version");
    dist.join(format!("homelab-sso-{version}.tar.gz"))
}

/// `ansible-doc -l homelab.sso` of an installed collection (`ansible_doc`: the command, with its
/// collection path set) lists every module with its sidecar's `short_description`, and warns
/// about none: the layout of plugins/modules (symlink, `.ini` stub, sidecar) is what makes it.
pub fn assert_lists_every_module(mut ansible_doc: Command, what: &str) {
    let out = ansible_doc
        .args(["-l", "homelab.sso", "--json"])
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-doc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what}: ansible-doc -l failed: {stderr}"
    );
    assert!(
        !stderr.contains("[WARNING]"),
        "{what}: ansible-doc -l warns: {stderr}"
    );
    let listed: BTreeMap<String, String> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: ansible-doc -l --json: {e}"));
    let docs = repo_root().join("ansible/collection/plugins/modules");
    let mut expected = BTreeMap::new();
    for m in MODULES {
        let text = std::fs::read_to_string(docs.join(format!("{m}.yml"))).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let short = doc["DOCUMENTATION"]["short_description"]
            .as_str()
            .unwrap_or_else(|| panic!("{m}.yml has no short_description"));
        expected.insert(format!("homelab.sso.{m}"), short.to_string());
    }
    assert_eq!(listed, expected, "{what}: ansible-doc -l homelab.sso");
}

impl E2e {
    /// Deploys `service`'s `.env` from `values` with `key` set to `value` instead: a drift (or a
    /// copy of another service's value) that Vault does not hold.
    pub fn render_with(
        &self,
        service: &str,
        values: &BTreeMap<String, String>,
        key: &str,
        value: &str,
    ) {
        let svc = lab::catalog::services()
            .into_iter()
            .find(|s| s.name == service)
            .unwrap_or_else(|| panic!("no service {service} in the catalog"));
        let mut changed = values.clone();
        changed.insert(key.into(), value.into());
        self.lab.containers.render_service(&svc, &changed).unwrap();
    }

    /// Everything the lab's servers logged: OpenBao's server log, sshd's log, and the request logs
    /// of the PocketID and Forgejo emulators (method and path).
    pub fn lab_logs(&self) -> String {
        let mut out = std::fs::read_to_string(&self.lab.bao.log).unwrap_or_default();
        out.push_str(&self.lab.sshd.log());
        for r in self.lab.pocketid.requests() {
            out.push_str(&format!("{} {}\n", r.method, r.path));
        }
        for r in self.lab.forgejo.request_log() {
            out.push_str(&format!("{} {} {}\n", r.method, r.path, r.status));
        }
        out
    }
}

/// What one `act` run printed (stdout, then stderr), and whether it succeeded.
pub struct ActRun {
    pub ok: bool,
    pub output: String,
}

/// What [`E2e::act_with`] adds to a run.
#[derive(Debug, Default)]
pub struct ActExtra<'a> {
    /// Repository variables, `NAME=value`.
    pub vars: &'a [&'a str],
    /// `--env NAME=value` (e.g. `GITHUB_API_URL`, overriding the GitHub context).
    pub env: &'a [&'a str],
    /// Secrets by name and value, passed through act's environment (never on its command line).
    pub secrets: &'a [(&'a str, &'a str)],
    /// A stock runner: the job's PATH is Debian's default (`/usr/sbin:/usr/bin:/sbin:/bin`: no
    /// project venv, no Rust toolchain) and the provisioning step installs the pinned ansible-core
    /// from the package index into this directory (reused by later jobs given the same one).
    pub stock_runner: Option<&'a Path>,
}

/// act's `--env` arguments for the job's tools: the project's venv first on PATH and reused as
/// the provisioned tools (tests/portable.rs proves the install from scratch), or a stock runner.
fn job_tools(stock_runner: Option<&Path>) -> Vec<String> {
    let venv = venv_bin("python")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let (path, tools) = match stock_runner {
        Some(tools) => (
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            tools.to_path_buf(),
        ),
        None => (
            format!(
                "{}:{}",
                venv.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            venv.clone(),
        ),
    };
    let mut args = vec![
        "--env".to_string(),
        format!("PATH={path}"),
        "--env".to_string(),
        format!("HOMELAB_SSO_TOOLS={}", tools.display()),
    ];
    if stock_runner.is_none() {
        args.extend([
            "--env".to_string(),
            format!(
                "ANSIBLE_PYTHON_INTERPRETER={}",
                venv_bin("python").display()
            ),
        ]);
    }
    args
}

/// The lab's value of a repository Actions secret (the README's table) a workflow reads.
fn act_secret(env: &BTreeMap<String, String>, name: &str) -> String {
    let file = |var: &str| std::fs::read_to_string(&env[var]).expect("a lab credential file");
    match name {
        "VAULT_ROLE_ID" | "VAULT_SECRET_ID" | "POCKETID_API_KEY" => env[name].clone(),
        "DEPLOY_TOKEN" => env["FORGEJO_TOKEN"].clone(),
        "PROXMOX_SSH_KEY" => file("PROXMOX_SSH_KEY_FILE"),
        "PROXMOX_KNOWN_HOSTS" => file("PROXMOX_KNOWN_HOSTS_FILE"),
        other => panic!("the lab has no value for the Actions secret {other}"),
    }
}

impl E2e {
    /// Runs a workflow under act in host mode (`-P homelab-sso=-self-hosted`) against the lab:
    /// `workflow` is a file of `.forgejo/workflows/` or a path; the repository variables point at
    /// the lab, the collection at `tarball`, and only the named `secrets` are given.
    pub fn act(
        &self,
        tarball: &Path,
        workflow: impl AsRef<Path>,
        inputs: serde_json::Value,
        secrets: &[&str],
    ) -> ActRun {
        self.act_with(
            Some(tarball),
            workflow,
            inputs,
            secrets,
            &ActExtra::default(),
        )
    }

    /// [`E2e::act`] with more: no collection tarball (the workflow then installs a release),
    /// further repository variables, `--env` overrides of the GitHub context, and secrets the lab
    /// does not hold (e.g. the job's `GITHUB_TOKEN`).
    pub fn act_with(
        &self,
        tarball: Option<&Path>,
        workflow: impl AsRef<Path>,
        inputs: serde_json::Value,
        secrets: &[&str],
        extra: &ActExtra<'_>,
    ) -> ActRun {
        let root = repo_root();
        let workflow = root.join(".forgejo/workflows").join(workflow);
        let name = workflow.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = self.dir.path().join(format!("act-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let event = dir.join("event.json");
        std::fs::write(&event, serde_json::json!({ "inputs": inputs }).to_string()).unwrap();
        let env: BTreeMap<String, String> = self.lab.env().into_iter().collect();
        let mut cmd = Command::new(venv_bin("act"));
        cmd.current_dir(&root)
            .arg("workflow_dispatch")
            .arg("-W")
            .arg(&workflow)
            .args([
                "-P",
                "homelab-sso=-self-hosted",
                "--action-offline-mode",
                "-e",
            ])
            .arg(&event)
            .args(job_tools(extra.stock_runner))
            .args(["--var", &format!("VAULT_ADDR={}", env["VAULT_ADDR"])])
            .args(["--var", &format!("POCKETID_URL={}", env["POCKETID_URL"])])
            .args(["--var", &format!("LOKI_ADDR={}", env["LOKI_ADDR"])])
            .args([
                "--var",
                &format!("DEPLOY_FORGEJO_URL={}", env["FORGEJO_URL"]),
            ])
            .args([
                "--var",
                &format!("HOMELAB_SSO_INVENTORY={}", self.inventory.display()),
            ])
            .args(["--var", "VAULT_CACERT="]);
        if let Some(tarball) = tarball {
            cmd.args([
                "--var",
                &format!("HOMELAB_SSO_COLLECTION={}", tarball.display()),
            ]);
        }
        for v in extra.vars {
            cmd.args(["--var", v]);
        }
        for v in extra.env {
            cmd.args(["--env", v]);
        }
        // Secrets come from this process's environment (`-s NAME`), so none is on act's command
        // line; a developer's own credentials never reach the run.
        cmd.env_remove("VAULT_TOKEN")
            .env_remove("POCKETID_API_KEY")
            .env("HOME", &dir);
        for k in secrets {
            cmd.arg("-s").arg(k).env(k, act_secret(&env, k));
        }
        for (k, v) in extra.secrets {
            cmd.arg("-s").arg(k).env(k, v);
        }
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
}

/// The repository secrets and variables that the workflows and the deploy action read
/// (`secrets.NAME`, `vars.NAME`), by name.
pub fn workflow_settings() -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(".forgejo/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(repo_root().join(".forgejo/actions/deploy/action.yml"));
    let (mut secrets, mut vars) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (prefix, set) in [("secrets.", &mut secrets), ("vars.", &mut vars)] {
            for (i, _) in text.match_indices(prefix) {
                let name: String = text[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    set.insert(name);
                }
            }
        }
    }
    (secrets, vars)
}
