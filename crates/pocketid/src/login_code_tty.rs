//! The terminal of the person who runs ansible-playbook. Ansible starts each module in a new session
//! without a controlling terminal (its worker processes call `setsid`), so `/dev/tty` fails in module
//! mode even when ansible-playbook runs at a terminal. The process that started that session (the
//! nearest ancestor outside the module's own session, ansible-playbook itself) still has its
//! controlling terminal: that terminal, and only that one, is where `delivery: display` writes.

use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// `(ppid, session, tty_nr)` of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(4)?.parse().ok()?,
    ))
}

fn real_uid(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The device path of a `tty_nr` (the kernel's encoding of major and minor): `/dev/pts/N` or
/// `/dev/ttyN`.
fn tty_path(tty_nr: u32) -> Option<(String, u32, u32)> {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => Some((
            format!("/dev/pts/{}", (major - 136) * 256 + minor),
            major,
            minor,
        )),
        4 if minor < 64 => Some((format!("/dev/tty{minor}"), major, minor)),
        _ => None,
    }
}

/// Opens the controlling terminal of the nearest ancestor outside this process's session, when it
/// belongs to the same user. `Err` says why there is none.
pub fn open_session_parent_tty() -> Result<File, String> {
    let me = std::process::id();
    let (_, my_session, _) = proc_stat(me).ok_or("cannot read /proc/self/stat")?;
    let my_uid = real_uid(me).ok_or("cannot read /proc/self/status")?;
    let mut pid = me;
    for _ in 0..64 {
        let (ppid, _, _) = proc_stat(pid).ok_or("a parent process vanished")?;
        if ppid <= 1 {
            return Err("no process outside this session started it".into());
        }
        let (_, session, tty_nr) = proc_stat(ppid).ok_or("a parent process vanished")?;
        if session == my_session {
            pid = ppid;
            continue;
        }
        if tty_nr == 0 {
            return Err(format!(
                "the process that started it (pid {ppid}) has no terminal either"
            ));
        }
        if real_uid(ppid) != Some(my_uid) {
            return Err(format!(
                "the terminal of the process that started it (pid {ppid}) belongs to another user"
            ));
        }
        let (path, major, minor) =
            tty_path(tty_nr).ok_or_else(|| format!("unknown terminal device {tty_nr:#x}"))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        let rdev = f.metadata().map_err(|e| format!("{path}: {e}"))?.rdev();
        if !f.is_terminal() || libc::major(rdev) != major || libc::minor(rdev) != minor {
            return Err(format!("{path} is not the terminal of pid {ppid}"));
        }
        return Ok(f);
    }
    Err("too many parent processes in this session".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_numbers() {
        assert_eq!(tty_path(136 << 8 | 3).unwrap().0, "/dev/pts/3");
        assert_eq!(tty_path((137 << 8) | 1).unwrap().0, "/dev/pts/257");
        assert_eq!(tty_path((4 << 8) | 2).unwrap().0, "/dev/tty2");
        assert!(tty_path(0).is_none());
        assert!(proc_stat(std::process::id()).is_some());
    }
}
