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

/// The features cargo turns on for `vault_kv` when it builds `packages` (as `cargo tree` resolves
/// them: the same resolution as a build of those packages).
fn vault_kv_features(packages: &[String]) -> String {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(lab::tools::repo_root())
        .args([
            "tree",
            "--offline",
            "-e",
            "features,no-dev",
            "-i",
            "vault_kv",
            "--prefix",
            "none",
        ])
        .args(packages)
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The write pause of `HOMELAB_SSO_TEST_PAUSE_BEFORE_WRITE` is compiled only with vault_kv's
/// `test-hooks` feature. A release build selects the module crates alone (`make build`:
/// `scripts/modules.sh -p`), and there the feature is off, so a shipped `vault_full_write` never
/// reads the variable; the tests' own build (through testkit) has it on.
#[test]
fn release_builds_leave_the_test_hooks_out() {
    let root = lab::tools::repo_root();
    let out = Command::new(root.join("scripts/modules.sh"))
        .arg("-p")
        .output()
        .expect("scripts/modules.sh");
    let release: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(release.contains(&"vault_kv".to_string()), "{release:?}");
    let shipped = vault_kv_features(&release);
    assert!(
        !shipped.contains("test-hooks"),
        "a release build of the modules turns on vault_kv's test hooks:\n{shipped}"
    );
    let tests = vault_kv_features(&["-p".into(), "testkit".into()]);
    assert!(
        tests.contains("vault_kv feature \"test-hooks\""),
        "the test builds no longer turn on vault_kv's test hooks:\n{tests}"
    );
}
