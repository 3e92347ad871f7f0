//! Where the project's tools are: the repository root, the virtualenv, built binaries.

use std::path::{Path, PathBuf};

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    if let Ok(r) = std::env::var("HOMELAB_SSO_ROOT") {
        return PathBuf::from(r);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A program from the project's virtualenv (`.venv/bin/<name>`), else from `PATH`.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv"));
    let p = venv.join("bin").join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

/// A system program that may live in an sbin directory not on a non-root `PATH`.
pub fn system_bin(name: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}
