//! `sso-lab`: the stand-in homelab for the demo and for trying the modules by hand.
//!
//! `sso-lab up [--dir DIR] [--pocketid-version V] [--forgejo-version V]` starts everything in the
//! background, writes `DIR/lab.env` (addresses, tokens, key and known_hosts paths) and
//! `DIR/inventory.yml`, and prints the env file's path. `sso-lab down [--dir DIR]` stops
//! everything `up` started. `sso-lab status [--dir DIR]` says whether it runs.

use lab::stack::{Lab, LabOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    cmd: String,
    dir: PathBuf,
    opts: LabOptions,
}

fn usage() -> ! {
    eprintln!(
        "usage: sso-lab up|down|status [--dir DIR] [--pocketid-version 2.14.0|2.13.0] [--forgejo-version 15.0.3]\n\
         default DIR: .lab in the current directory"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_else(|| usage());
    let mut dir = PathBuf::from(".lab");
    let mut opts = LabOptions::default();
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--dir" => dir = PathBuf::from(val()),
            "--pocketid-version" => opts.pocketid_version = val(),
            "--forgejo-version" => opts.forgejo_version = val(),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    Args { cmd, dir, opts }
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("sso-lab.pid")
}

fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

fn main() {
    let args = parse();
    match args.cmd.as_str() {
        "up" => up(&args),
        "serve" => serve(&args),
        "down" => down(&args.dir),
        "status" => match running_pid(&args.dir) {
            Some(pid) => println!(
                "sso-lab is running (pid {pid}); env file {}",
                args.dir.join("lab.env").display()
            ),
            None => {
                println!("sso-lab is not running in {}", args.dir.display());
                std::process::exit(1)
            }
        },
        _ => usage(),
    }
}

// The serve process is meant to outlive `up` (it is reparented when `up` exits), so it is only
// waited on when it dies during start-up.
#[allow(clippy::zombie_processes)]
fn up(args: &Args) {
    if let Some(pid) = running_pid(&args.dir) {
        eprintln!(
            "sso-lab already runs in {} (pid {pid}); `sso-lab down` first",
            args.dir.display()
        );
        std::process::exit(1);
    }
    std::fs::create_dir_all(&args.dir)
        .unwrap_or_else(|e| fail(&format!("creating {}: {e}", args.dir.display())));
    let env_file = args.dir.join("lab.env");
    let _ = std::fs::remove_file(&env_file);
    let log_path = args.dir.join("sso-lab.log");
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| fail(&format!("creating the log: {e}")));
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("finding sso-lab: {e}")));
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg("--dir")
        .arg(&args.dir)
        .arg("--pocketid-version")
        .arg(&args.opts.pocketid_version)
        .arg("--forgejo-version")
        .arg(&args.opts.forgejo_version)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap_or_else(|e| fail(&e.to_string())))
        .stderr(log);
    // Its own session: the lab outlives this command and the terminal that started it.
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("starting the lab: {e}")));
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if env_file.exists() && running_pid(&args.dir).is_some() {
            println!("{}", env_file.display());
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            fail(&format!(
                "the lab stopped during start-up ({status}):\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fail(&format!(
        "the lab did not come up within 90 s; see {}",
        log_path.display()
    ));
}

fn serve(args: &Args) {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let lab =
        Lab::up(&args.dir, &args.opts).unwrap_or_else(|e| fail(&format!("starting the lab: {e}")));
    lab.write_files().unwrap_or_else(|e| fail(&e.to_string()));
    std::fs::write(pid_file(&args.dir), std::process::id().to_string())
        .unwrap_or_else(|e| fail(&format!("writing the pid file: {e}")));
    eprintln!(
        "sso-lab up: Vault {} · PocketID {} · Loki {} · Forgejo {} · webhook {} · sshd {}:{}",
        lab.bao.addr,
        lab.pocketid.url(),
        lab.loki.url(),
        lab.forgejo.url(),
        lab.webhook.url(),
        lab.sshd.host,
        lab.sshd.port
    );
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lab);
    let _ = std::fs::remove_file(pid_file(&args.dir));
    let _ = std::fs::remove_file(args.dir.join("lab.env"));
    eprintln!("sso-lab down");
}

fn down(dir: &Path) {
    let Some(pid) = running_pid(dir) else {
        println!("sso-lab is not running in {}", dir.display());
        return;
    };
    // SAFETY: signalling the lab's own serve process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if unsafe { libc::kill(pid, 0) } != 0 {
            println!("sso-lab stopped");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Last resort: the whole session (serve and every server it started).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file(dir));
    println!("sso-lab killed after 20 s");
}

fn fail(msg: &str) -> ! {
    eprintln!("sso-lab: {msg}");
    std::process::exit(1)
}
