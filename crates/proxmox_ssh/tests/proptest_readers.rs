//! Property tests of the transport's readers of remote text: what pct, cat, sshd and the
//! container write (exit codes, stderr, stdout, libssh2 reasons, signal names) becomes a status
//! and a message without panicking, and no message quotes the remote error output beyond a plain
//! system error text of `cat`, nor grows with it. Short by default (256 cases); a long run:
//! `PROPTEST_CASES=20000 cargo test -p proxmox_ssh --test proptest_readers`

use proptest::prelude::*;
use proxmox_ssh::{
    classify, exec_error_text, shorten, target_text, valid_path, valid_vmid, ExecError, ExecResult,
    Place,
};

const AT: Place<'static> = Place {
    host: "pve.example.org",
    port: 22,
    user: "root",
};

/// A value the container planted in its error output; it must never reach a message.
const CANARY: &str = "Zq8canaryValue";

/// Error output shaped like pct's, cat's, sudo's and lxc-attach's, with the canary inside.
fn stderr() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("cat: /opt/x/.env: ".to_string()),
        Just("Configuration file '".to_string()),
        Just("container '".to_string()),
        Just("sudo: ".to_string()),
        Just("lxc-attach: 119: Failed to exec ".to_string()),
        Just(String::new()),
        "\\PC{0,12}",
    ];
    (prefix, "\\PC{0,20}", "\\PC{0,20}").prop_map(|(p, a, b)| format!("{p}{a}{CANARY}{b}"))
}

proptest! {
    #[test]
    fn remote_error_output_never_reaches_a_message(
        err in stderr(),
        stdout in proptest::collection::vec(any::<u8>(), 0..64),
        code in prop_oneof![Just(None), (-1i32..300).prop_map(Some)],
        truncated in any::<bool>(),
    ) {
        let r = ExecResult {
            stdout,
            stdout_truncated: truncated,
            stderr: err,
            exit_status: code,
            error: None,
        };
        let (_, msg) = classify(&r, AT, "CT 119's /opt/x/.env");
        prop_assert!(!msg.contains(CANARY), "{msg}");
        prop_assert!(msg.len() < 400, "{} bytes", msg.len());
    }

    #[test]
    fn transport_failures_are_bounded(
        reason in "\\PC{0,3000}",
        sig in "\\PC{0,200}",
        path in "\\PC{0,5000}",
        secs in any::<u64>(),
        refused in any::<bool>(),
    ) {
        let what = target_text(Some("119"), &path);
        for e in [
            ExecError::ConnectionLost { during: "reading", reason: reason.clone() },
            ExecError::Channel { during: "reading", reason: reason.clone(), refused },
            ExecError::Signal(sig.clone()),
            ExecError::TimedOut { secs },
            ExecError::NotSent,
        ] {
            let msg = exec_error_text(&e, AT, &what);
            prop_assert!(msg.chars().count() < 700, "{} characters", msg.chars().count());
        }
    }

    #[test]
    fn checks_and_shortening_never_panic(s in "\\PC{0,300}", max in 2usize..200) {
        let _ = valid_vmid(&s);
        let _ = valid_path(&s);
        let short = shorten(&s, max);
        prop_assert!(short.chars().count() <= max);
    }
}
