//! `bench-timed-module`: for `make bench` (f) only. Installed under a module's name in the
//! bench's own copy of the collection, it runs the real module (`$BENCH_REAL_MODULES/<name>`)
//! with the same arguments and streams, and appends `<name> <start> <end>` (wall-clock seconds)
//! to `$BENCH_MODULE_TIMES`: how long each module's own process took inside a rotation.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn fail(msg: &str) -> ! {
    println!(
        "{}",
        serde_json::json!({"failed": true, "msg": format!("bench-timed-module: {msg}")})
    );
    std::process::exit(1)
}

fn main() {
    let mut args = std::env::args_os();
    let me = args.next().unwrap_or_default();
    let name = std::path::Path::new(&me)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let (Some(real), Some(times)) = (
        std::env::var_os("BENCH_REAL_MODULES"),
        std::env::var_os("BENCH_MODULE_TIMES"),
    ) else {
        fail("BENCH_REAL_MODULES and BENCH_MODULE_TIMES must be set")
    };
    let start = now();
    let status = std::process::Command::new(std::path::Path::new(&real).join(&name))
        .args(args)
        .status()
        .unwrap_or_else(|e| fail(&format!("running the real {name}: {e}")));
    let end = now();
    let line = format!("{name} {start:.6} {end:.6}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(times)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("bench-timed-module: could not record the time of {name}: {e}");
    }
    std::process::exit(status.code().unwrap_or(1))
}
