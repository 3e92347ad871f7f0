//! The module binaries are portable across x86_64/aarch64 Linux controllers: they link only glibc's
//! own libraries (OpenSSL and zlib are built in), and need no glibc newer than the documented one.

use e2e::{built_bin, MODULES};
use std::process::Command;

/// The shared libraries a binary may need: glibc's, and the vDSO.
const GLIBC_LIBRARIES: [&str; 9] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libgcc_s.so.1",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// The oldest glibc the binaries run on (README, "Requirements").
const GLIBC_REQUIRED: (u32, u32) = (2, 34);

#[test]
fn module_binaries_link_only_glibc() {
    for m in MODULES {
        let bin = built_bin(m);
        let out = Command::new("ldd").arg(&bin).output().expect("ldd");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let lib = line.split_whitespace().next().unwrap_or_default();
            let name = lib.rsplit('/').next().unwrap_or(lib);
            assert!(
                GLIBC_LIBRARIES.contains(&name),
                "{m} links {name}, which is not part of glibc:\n{text}"
            );
        }
    }
}

#[test]
fn module_binaries_need_no_newer_glibc_than_documented() {
    for m in MODULES {
        let out = Command::new("objdump")
            .arg("-T")
            .arg(built_bin(m))
            .output()
            .expect("objdump (binutils)");
        let text = String::from_utf8_lossy(&out.stdout);
        let newest = text
            .split("GLIBC_")
            .skip(1)
            .filter_map(|rest| {
                let v: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
            })
            .max()
            .expect("a dynamically linked binary names glibc versions");
        assert!(
            newest <= GLIBC_REQUIRED,
            "{m} needs GLIBC_{}.{}, newer than the documented {}.{}",
            newest.0,
            newest.1,
            GLIBC_REQUIRED.0,
            GLIBC_REQUIRED.1
        );
    }
}

/// The pin of ansible-core in a requirements file.
fn ansible_core_pin(file: &str) -> String {
    std::fs::read_to_string(lab::tools::repo_root().join(file))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ansible-core==").map(str::to_string))
        .unwrap_or_else(|| panic!("{file} pins no ansible-core"))
}

#[test]
fn a_stock_runner_is_provisioned_with_the_pinned_ansible_core() {
    let pin = ansible_core_pin("requirements-runner.txt");
    assert_eq!(
        pin,
        ansible_core_pin("requirements-dev.txt"),
        "runners and tests use the same ansible-core"
    );
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    let github_path = dir.path().join("github_path");
    let provision = || {
        let out = Command::new("bash")
            .arg(lab::tools::repo_root().join("scripts/ci-provision.sh"))
            .env("HOMELAB_SSO_TOOLS", &tools)
            .env("GITHUB_PATH", &github_path)
            .output()
            .expect("running ci-provision.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    // From nothing: a venv with exactly the pinned ansible-core (from the package index).
    let first = provision();
    assert!(first.contains("installing ansible-core"), "{first}");
    assert!(first.contains(&format!("[core {pin}]")), "{first}");
    let path = std::fs::read_to_string(&github_path).unwrap();
    assert_eq!(path.trim(), tools.join("bin").display().to_string());
    // The next job reuses it.
    let second = provision();
    assert!(second.contains("reusing"), "{second}");
}

/// The write pause of `HOMELAB_SSO_TEST_PAUSE_BEFORE_WRITE` is compiled only where debug
/// assertions are on (`#[cfg(debug_assertions)]` in vault_kv's write.rs): the dev profile the tests
/// build with. The release profile (`make build`) must keep them off, so a shipped
/// `vault_full_write` never reads the variable.
#[test]
fn release_builds_leave_the_test_hooks_out() {
    let root = lab::tools::repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("Cargo.toml has a [profile.release]");
    let release = release.split("\n[").next().unwrap_or_default();
    assert!(
        !release.contains("debug-assertions"),
        "the release profile sets debug-assertions, which would compile the test hooks in:\n{release}"
    );
    let write = std::fs::read_to_string(root.join("crates/vault_kv/src/write.rs")).unwrap();
    assert!(
        write.contains("#[cfg(debug_assertions)]\nfn test_pause()")
            && write.contains("#[cfg(not(debug_assertions))]\nfn test_pause() {}"),
        "the write pause is no longer limited to builds with debug assertions"
    );
}
