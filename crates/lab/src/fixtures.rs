//! Fixture containers for the `pct` stand-in: `<root>/<vmid>/{name,status,rootfs/…}`.
//! A container is "running" when its `status` file says so; its files live under `rootfs/`.

use crate::catalog::{self, Service};
use crate::error::{IoContext, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The fixture tree.
#[derive(Debug, Clone)]
pub struct Containers {
    pub root: PathBuf,
}

impl Containers {
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
        Ok(Containers { root })
    }

    pub fn dir(&self, vmid: u32) -> PathBuf {
        self.root.join(vmid.to_string())
    }

    /// Adds (or resets) a container.
    pub fn add(&self, vmid: u32, name: &str, running: bool) -> Result<()> {
        let d = self.dir(vmid);
        std::fs::create_dir_all(d.join("rootfs")).ctx(|| format!("creating {}", d.display()))?;
        std::fs::write(d.join("name"), name).ctx(|| "writing container name".into())?;
        self.set_running(vmid, running)
    }

    pub fn set_running(&self, vmid: u32, running: bool) -> Result<()> {
        let status = if running { "running" } else { "stopped" };
        std::fs::write(self.dir(vmid).join("status"), status)
            .ctx(|| "writing container status".into())
    }

    /// Host path of a file inside a container.
    pub fn file(&self, vmid: u32, path_in_ct: &str) -> PathBuf {
        self.dir(vmid)
            .join("rootfs")
            .join(path_in_ct.trim_start_matches('/'))
    }

    /// Writes a file inside a container (mode 0600, as deployed `.env` files are).
    pub fn write_file(&self, vmid: u32, path_in_ct: &str, content: &[u8]) -> Result<()> {
        let p = self.file(vmid, path_in_ct);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        }
        write_atomic(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).ctx(|| "chmod".into())
    }

    pub fn read_file(&self, vmid: u32, path_in_ct: &str) -> Result<Vec<u8>> {
        let p = self.file(vmid, path_in_ct);
        std::fs::read(&p).ctx(|| format!("reading {}", p.display()))
    }

    /// Builds the runbook's homelab: every catalog service with its `.env` rendered from `values`
    /// (Vault key → value), plus the error-case containers.
    pub fn populate_runbook(&self, values: &BTreeMap<String, String>) -> Result<()> {
        for svc in catalog::services() {
            self.add(svc.vmid, svc.name, true)?;
            self.write_file(svc.vmid, &svc.env_path, render_env(&svc, values).as_bytes())?;
        }
        self.add(catalog::VMID_STOPPED, "stopped-svc", false)?;
        self.write_file(
            catalog::VMID_STOPPED,
            "/opt/homelab/stopped-svc/.env",
            b"A=1\n",
        )?;
        self.add(catalog::VMID_NO_FILE, "no-env-svc", true)?;
        self.add(catalog::VMID_PERMISSION_DENIED, "locked-svc", true)?;
        let locked = "/opt/homelab/locked-svc/.env";
        self.write_file(catalog::VMID_PERMISSION_DENIED, locked, b"SECRET=x\n")?;
        let p = self.file(catalog::VMID_PERMISSION_DENIED, locked);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000))
            .ctx(|| "chmod 000".into())?;
        Ok(())
    }

    /// Re-renders one service's `.env` from `values` (what a deploy run does).
    pub fn render_service(&self, svc: &Service, values: &BTreeMap<String, String>) -> Result<()> {
        self.write_file(svc.vmid, &svc.env_path, render_env(svc, values).as_bytes())
    }
}

/// A service's `.env` as its deploy renders it: a header comment, non-secret settings, then each
/// mapped Vault key under its env name (double-quoted, compose-escaped).
pub fn render_env(svc: &Service, values: &BTreeMap<String, String>) -> String {
    let mut out = format!(
        "# {} — rendered from Vault {}/{} by its deploy workflow\nSERVICE_NAME={}\nLISTEN_PORT=8080\nPUBLIC_URL=https://{}.example.org\n",
        svc.name,
        catalog::VAULT_MOUNT,
        catalog::VAULT_PATH,
        svc.name,
        svc.name
    );
    for (key, env) in &svc.keys {
        if let Some(v) = values.get(key) {
            out.push_str(&format!("{env}=\"{}\"\n", escape_double_quoted(v)));
        }
    }
    out
}

/// Escapes a value for a double-quoted compose `.env` value.
pub fn escape_double_quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The variables of a `.env` as the lab writes it ([`render_env`]): `KEY=value` lines, values
/// bare or double-quoted with [`escape_double_quoted`]'s escapes; comments and blank lines
/// skipped. Not compose's whole dialect (that parser belongs to `env_harvest`, which the lab does
/// not use): enough to read back what a deploy rendered.
pub fn read_env(content: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in content.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let value = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => unescape_double_quoted(quoted),
            None => v.to_string(),
        };
        out.insert(k.trim().to_string(), value);
    }
    out
}

fn unescape_double_quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some(&e @ ('\\' | '"'))) => {
                out.push(e);
                chars.next();
            }
            ('$', Some('$')) => {
                out.push('$');
                chars.next();
            }
            (c, _) => out.push(c),
        }
    }
    out
}

fn write_atomic(p: &Path, content: &[u8]) -> Result<()> {
    let tmp = p.with_extension("tmp-write");
    std::fs::write(&tmp, content).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, p).ctx(|| format!("replacing {}", p.display()))
}

/// The user of PocketID's distroless image (distroless `nonroot`).
pub const DISTROLESS_OWNER: &str = "65532:65532";

impl Containers {
    /// A Docker container `name` running PocketID inside CT `vmid` (which must exist): the `pct`
    /// stand-in's `docker exec … /app/pocket-id one-time-access-token` asks the emulator at
    /// `pocketid_url` for the code.
    /// Its `/app/data` is a volume owned by `65532:65532`, as in PocketID's distroless image (see
    /// [`Containers::set_pocketid_data_owner`]).
    pub fn add_pocketid_docker(&self, vmid: u32, name: &str, pocketid_url: &str) -> Result<()> {
        let d = self.dir(vmid).join("docker").join(name);
        std::fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
        std::fs::write(d.join("pocketid_url"), pocketid_url)
            .ctx(|| "writing the docker container fixture".into())?;
        self.set_pocketid_data_owner(vmid, name, Some(DISTROLESS_OWNER))
    }

    /// The owner (`uid:gid`) of Docker container `name`'s `/app/data` volume in CT `vmid`, as
    /// `stat` in the CT reports it (`1000:1000` in PocketID's standard image, `65532:65532` in the
    /// distroless one); `None`: `/app/data` is not a mount. The CLI fails as another non-root user.
    pub fn set_pocketid_data_owner(
        &self,
        vmid: u32,
        name: &str,
        owner: Option<&str>,
    ) -> Result<()> {
        let d = self.dir(vmid).join("docker").join(name);
        let source = format!("/var/lib/docker/volumes/{name}_data/_data");
        let Some(owner) = owner else {
            self.flag(&d.join("data_source"), false)?;
            return self.flag(&d.join("data_owner"), false);
        };
        let host = self.file(vmid, &source);
        std::fs::create_dir_all(&host).ctx(|| format!("creating {}", host.display()))?;
        std::fs::write(d.join("data_source"), &source)
            .ctx(|| "writing the docker container fixture".into())?;
        std::fs::write(d.join("data_owner"), owner)
            .ctx(|| "writing the docker container fixture".into())
    }

    /// Gives Docker container `name` in CT `vmid` the label `com.docker.compose.service=<service>`
    /// (what `docker ps --filter label=…` finds).
    pub fn set_compose_service(&self, vmid: u32, name: &str, service: &str) -> Result<()> {
        let p = self
            .dir(vmid)
            .join("docker")
            .join(name)
            .join("compose_service");
        std::fs::write(&p, service).ctx(|| format!("writing {}", p.display()))
    }

    /// Docker's daemon in CT `vmid` stops (`false`) or runs again: every `docker` command then
    /// fails with "Cannot connect to the Docker daemon…".
    pub fn set_docker_running(&self, vmid: u32, running: bool) -> Result<()> {
        self.flag(&self.dir(vmid).join("docker").join("daemon-down"), !running)
    }

    /// Whether CT `vmid` has a `docker` binary (without one, `pct exec … docker` fails as
    /// lxc-attach does, exit 127).
    pub fn set_docker_installed(&self, vmid: u32, installed: bool) -> Result<()> {
        self.flag(&self.dir(vmid).join("no-docker"), !installed)
    }

    fn flag(&self, p: &Path, on: bool) -> Result<()> {
        if on {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(p, "").ctx(|| format!("writing {}", p.display()))
        } else {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).ctx(|| format!("removing {}", p.display()))
                }
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_env_reads_back_what_render_env_wrote() {
        let svc = catalog::services()
            .into_iter()
            .find(|s| s.name == "oauth2-gateway")
            .unwrap();
        let mut values = BTreeMap::new();
        values.insert(
            "pocketid_client_id".to_string(),
            "oauth2-gateway".to_string(),
        );
        values.insert(
            "pocketid_client_secret".to_string(),
            "a\"b\\c$d\ne=f#g".to_string(),
        );
        let env = read_env(&render_env(&svc, &values));
        assert_eq!(env["OAUTH2_PROXY_CLIENT_ID"], "oauth2-gateway");
        assert_eq!(
            env["OAUTH2_PROXY_CLIENT_SECRET"],
            values["pocketid_client_secret"]
        );
        assert_eq!(env["SERVICE_NAME"], "oauth2-gateway");
    }
}
