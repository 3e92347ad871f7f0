//! Running the real `ansible-playbook` (from the project's virtualenv) against freshly built
//! module binaries, for end-to-end tests.

use crate::error::{IoContext, Result};
use crate::tools::{repo_root, venv_bin};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The output of one `ansible-playbook` run.
#[derive(Debug)]
pub struct PlaybookRun {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PlaybookRun {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    /// stdout and stderr together, for leak checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// Panics with both streams when the run failed.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "ansible-playbook failed ({}):\n{}",
            self.status,
            self.all_output()
        );
        self
    }
    /// The JSON a task printed with `debug: var=…` under the default callback is awkward to
    /// parse; playbooks in tests write results with `copy: content="{{ r | to_json }}"` instead.
    pub fn assert_failed(&self) -> &Self {
        assert!(
            !self.ok(),
            "ansible-playbook unexpectedly succeeded:\n{}",
            self.all_output()
        );
        self
    }
}

/// A directory laid out as an Ansible `library/` (each module binary copied next to its sidecar
/// doc from `ansible/collection/plugins/modules/`), plus the same modules as the installed
/// collection `homelab.sso` in `collections/` beside it, so playbooks may call them by short name
/// or by FQCN.
pub fn module_library(dir: &Path, modules: &[(&str, &Path)]) -> Result<PathBuf> {
    let lib = dir.join("library");
    let src = repo_root().join("ansible/collection");
    let coll = dir.join("collections/ansible_collections/homelab/sso");
    let coll_modules = coll.join("plugins/modules");
    for d in [&lib, &coll_modules, &coll.join("meta")] {
        std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    for f in ["galaxy.yml", "meta/runtime.yml", "README.md"] {
        std::fs::copy(src.join(f), coll.join(f)).ctx(|| format!("copying collection file {f}"))?;
    }
    let docs = src.join("plugins/modules");
    for (name, bin) in modules {
        for target in [&lib, &coll_modules] {
            std::fs::copy(bin, target.join(name)).ctx(|| format!("copying {}", bin.display()))?;
            let doc = docs.join(format!("{name}.yml"));
            if doc.exists() {
                std::fs::copy(&doc, target.join(format!("{name}.yml")))
                    .ctx(|| "copying sidecar doc".into())?;
            }
        }
    }
    // The collection's action plugins (run the binary in place under connection local), the
    // code they share and its callback (the repository's ansible.cfg enables it), as `make build`
    // ships them.
    for sub in ["plugins/action", "plugins/plugin_utils", "plugins/callback"] {
        let (from, to) = (src.join(sub), coll.join(sub));
        std::fs::create_dir_all(&to).ctx(|| format!("creating {}", to.display()))?;
        for entry in std::fs::read_dir(&from).ctx(|| format!("reading {}", from.display()))? {
            let path = entry.ctx(|| format!("reading {}", from.display()))?.path();
            if path.extension().is_some_and(|e| e == "py") {
                let dest = to.join(path.file_name().unwrap_or_default());
                std::fs::copy(&path, &dest).ctx(|| format!("copying {}", path.display()))?;
            }
        }
    }
    Ok(lib)
}

/// Writes `playbook` (YAML text) into `dir` and runs it with `connection: local` against
/// `localhost`, the given module library, extra CLI args (`--check`, `-vvvv`, `-e k=v`) and
/// environment.
pub fn run_playbook(
    dir: &Path,
    library: &Path,
    playbook: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<PlaybookRun> {
    let pb = dir.join("playbook.yml");
    std::fs::write(&pb, playbook).ctx(|| "writing playbook".into())?;
    let inventory = dir.join("inventory.ini");
    std::fs::write(
        &inventory,
        format!(
            "localhost ansible_connection=local ansible_python_interpreter={}\n",
            venv_bin("python").display()
        ),
    )
    .ctx(|| "writing inventory".into())?;
    let mut cmd = Command::new(venv_bin("ansible-playbook"));
    cmd.arg("-i")
        .arg(&inventory)
        .arg(&pb)
        .args(args)
        .current_dir(dir)
        .env("ANSIBLE_LIBRARY", library)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_HOST_KEY_CHECKING", "0")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp-local"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("tmp-remote"))
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            library.parent().unwrap_or(dir).join("collections"),
        )
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .ctx(|| "running ansible-playbook (is the virtualenv set up? run `make setup`)".into())?;
    Ok(PlaybookRun {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Prepares `cmd` to run the repository's playbooks against a lab as a workflow would: the
/// repository's `ansible.cfg`, the collection and temp dirs under `work` (see
/// [`module_library`]), no colour, the project's Python, and the lab's variables without its
/// root token (the playbooks authenticate with the AppRole; a developer's VAULT_TOKEN never
/// leaks in).
pub fn repo_playbook_env<'a>(
    cmd: &'a mut Command,
    work: &Path,
    lab_env: Vec<(String, String)>,
) -> &'a mut Command {
    let root = repo_root();
    cmd.current_dir(root.join("ansible"))
        .env("ANSIBLE_CONFIG", root.join("ansible/ansible.cfg"))
        .env("ANSIBLE_COLLECTIONS_PATH", work.join("collections"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("tmp-local"))
        .env("ANSIBLE_REMOTE_TEMP", work.join("tmp-remote"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_PYTHON_INTERPRETER", venv_bin("python"))
        .env_remove("VAULT_TOKEN");
    for (k, v) in lab_env {
        if k != "LAB_VAULT_ROOT_TOKEN" {
            cmd.env(k, v);
        }
    }
    cmd
}
