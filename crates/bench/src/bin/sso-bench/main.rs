//! `sso-bench`: the measurements behind `make bench` (`scripts/bench.sh` writes its stdout to
//! `bench/results.md`). Whatever is compared is measured side by side in the same run, on the
//! same lab servers, on this machine. Nothing here is a test: no thresholds fail.
//!
//! Usage: `sso-bench [--bin-dir target/release] [--bench-venv .venv-bench] [--only sizes,harvest,…]
//! [--rounds N]`

mod harvest;
mod measure;
mod rotation;
mod tasks;

use lab::catalog::REDEPLOY_TARGETS;
use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts};
use lab::openbao::OpenBao;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab::catalog::MODULE_BINARIES as MODULES;

pub(crate) struct Opts {
    bin_dir: PathBuf,
    bench_venv: PathBuf,
    only: Vec<String>,
    rounds: usize,
}

/// The measurements by name, in the order `make bench` runs them, with the letter of the proof
/// issue's item each answers (the results' headings; also accepted by `--only`).
const BENCHES: [(&str, &str); 7] = [
    ("sizes", "d"),
    ("harvest", "b"),
    ("requests", "e"),
    ("tasks", "a"),
    ("task-floor", "g"),
    ("redeploy-wait", "c"),
    ("rotation", "f"),
];

/// A measurement's name from its name or letter.
fn bench_name(part: &str) -> Option<&'static str> {
    BENCHES
        .iter()
        .find(|(name, letter)| *name == part || *letter == part)
        .map(|(name, _)| *name)
}

fn parse_args() -> Opts {
    let root = lab::tools::repo_root();
    let mut o = Opts {
        bin_dir: root.join("target/release"),
        bench_venv: root.join(".venv-bench"),
        only: BENCHES.iter().map(|(name, _)| name.to_string()).collect(),
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--bin-dir" => o.bin_dir = PathBuf::from(val()),
            "--bench-venv" => o.bench_venv = PathBuf::from(val()),
            "--only" => o.only = val().split(',').map(|s| s.trim().to_string()).collect(),
            "--rounds" => o.rounds = val().parse().unwrap_or_else(|_| usage("--rounds N")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    // Children run in other directories: make the paths absolute.
    for p in [&mut o.bin_dir, &mut o.bench_venv] {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    o
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("sso-bench: {err}");
    }
    eprintln!(
        "usage: sso-bench [--bin-dir DIR] [--bench-venv DIR] [--only NAME,…] [--rounds N]\n\
         measurements: sizes harvest requests tasks task-floor redeploy-wait rotation"
    );
    std::process::exit(2)
}

fn main() {
    let o = parse_args();
    let tmp = tempfile::Builder::new()
        .prefix("sso-bench-")
        .tempdir()
        .expect("temporary directory");
    println!("# Benchmarks\n");
    println!(
        "Written by `make bench` (`scripts/bench.sh` → `sso-bench`). Where two things are compared, \
         both are measured side by side in the same run on this machine ({} CPU(s), {} rounds \
         each, the compared commands in turn in every round; min and median shown, with the load \
         average next to each table: the machine may be shared, so read the ratios). Targets are those of the project's proof issue; nothing here fails \
         a build.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        o.rounds
    );
    for part in &o.only {
        let dir = tmp.path().join(part);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let result = match bench_name(part) {
            Some("tasks") => tasks::bench_a(&o, &dir),
            Some("harvest") => harvest::bench_b(&o, &dir),
            Some("task-floor") => tasks::bench_g(&o, &dir),
            Some("redeploy-wait") => bench_c(&o, &dir),
            Some("sizes") => bench_d(&o),
            Some("requests") => bench_e(&o, &dir),
            Some("rotation") => rotation::bench_f(&o, &dir),
            _ => Err(format!(
                "unknown measurement {part} (one of: {})",
                BENCHES.map(|(name, _)| name).join(", ")
            )),
        };
        if let Err(e) = result {
            println!("**({part}) not measured**: {e}\n");
        }
    }
}

pub(crate) fn bin(o: &Opts, name: &str) -> Result<PathBuf, String> {
    let p = o.bin_dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: build the release binaries first (make bench does)",
            p.display()
        ))
    }
}

/// Runs a module binary in module mode (args file), with a hard deadline; returns the result.
fn run_module(bin: &Path, dir: &Path, args: &Value, deadline: Duration) -> Result<Value, String> {
    let args_file = dir.join("args.json");
    std::fs::write(&args_file, args.to_string()).map_err(|e| format!("writing args: {e}"))?;
    let mut child = Command::new(bin)
        .arg(&args_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let end = Instant::now() + deadline;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not finish within {deadline:?}",
                bin.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    serde_json::from_slice(&out.stdout).map_err(|_| format!("{}: no JSON result", bin.display()))
}

fn failed(r: &Value) -> bool {
    r["failed"].as_bool() == Some(true)
}

/// (d) Size of each module binary.
fn bench_d(o: &Opts) -> Result<(), String> {
    println!("## (d) Binary sizes\n");
    println!(
        "Release profile (LTO, one codegen unit, `opt-level = \"z\"`, stripped). Target: ≤ 3 MB each. \
         The modules that speak SSH (`env_harvest`, `pocketid_login_code` and `pocketid_logs`, all \
         through the transport crate `proxmox_ssh`) carry OpenSSL and zlib built in (libssh2's crypto), so that the \
         binaries need nothing but glibc at run time (README, \"Requirements of the binaries\"); \
         that is most of their size, and why they miss the target.\n"
    );
    println!("| binary | size (MB) | size / 3 MB |");
    println!("| --- | ---: | ---: |");
    for m in MODULES {
        let p = bin(o, m)?;
        let len = std::fs::metadata(&p).map_err(|e| e.to_string())?.len() as f64;
        let mb = len / 1_000_000.0;
        println!("| `{m}` | {mb:.2} | {:.2}× |", mb / 3.0);
    }
    println!();
    Ok(())
}

/// (e) HTTP requests per operation, from OpenBao's audit log.
fn bench_e(o: &Opts, dir: &Path) -> Result<(), String> {
    let write = bin(o, "vault_full_write")?;
    let mut bao = OpenBao::start(&dir.join("bao")).map_err(|e| e.to_string())?;
    bao.kv_put("bench-e", json!({"a": "1", "b": "2"}))
        .map_err(|e| e.to_string())?;
    bao.enable_audit().map_err(|e| e.to_string())?;
    let base = json!({"url": bao.addr, "token": bao.root_token, "path": "bench-e"});
    let count = |b: &OpenBao| (b.audited_requests("secret/"), b.audited_requests(""));
    let mut rows = Vec::new();
    for (label, data, expect) in [
        (
            "unchanged full write",
            json!({"a": "1", "b": "2"}),
            "1 read",
        ),
        (
            "changed full write",
            json!({"a": "1", "b": "3"}),
            "1 read + 1 write + 1 metadata patch",
        ),
        ("unchanged again", json!({"a": "1", "b": "3"}), "1 read"),
    ] {
        let before = count(&bao);
        let mut args = base.clone();
        args["data"] = data;
        let r = run_module(&write, dir, &args, Duration::from_secs(120))?;
        if failed(&r) {
            return Err(format!("vault_full_write failed: {}", r["msg"]));
        }
        // The audit device writes the response entry after answering; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        let after = count(&bao);
        rows.push((
            label,
            after.0 - before.0,
            after.1 - before.1,
            expect,
            r["changed"].clone(),
        ));
    }
    println!("## (e) HTTP requests per operation\n");
    println!("Counted by OpenBao's file audit device (response entries), token auth. Target: an unchanged full write = 1 read, a change = 1 read + 1 write, and one `PATCH` of the secret's metadata recording when the changed keys changed (see `vault_kv_read`'s `key_ages`; the server merges it under the secret's lock, so no read of the metadata comes first).\n");
    println!("| operation | changed | KV requests (`secret/…`) | all requests | target |");
    println!("| --- | --- | ---: | ---: | --- |");
    for (label, kv, all, expect, changed) in rows {
        println!("| {label} | {changed} | {kv} | {all} | {expect} |");
    }
    println!();
    Ok(())
}

/// (c) redeploy_trigger: wall time against the runs' real lengths, and status requests per run.
fn bench_c(o: &Opts, dir: &Path) -> Result<(), String> {
    let trigger = bin(o, "redeploy_trigger")?;
    let fj = Forgejo::start(ForgejoOpts::default()).map_err(|e| e.to_string())?;
    let files: Vec<String> = REDEPLOY_TARGETS
        .iter()
        .map(|s| format!("deploy-{s}.yml"))
        .collect();
    let pickup = Behaviour::default().pickup;
    let mut longest = Duration::ZERO;
    for (i, f) in files.iter().enumerate() {
        let d = Duration::from_millis(1000 + 500 * i as u64);
        longest = longest.max(d);
        fj.set_behaviour(f, Behaviour::lasting(d));
    }
    println!("## (c) redeploy_trigger: waiting vs the runs' real lengths\n");
    println!(
        "Nine deploy workflows on the Forgejo emulator, runs lasting 1.0–{:.1} s once a runner \
         picks them up ({:.1} s after the dispatch). The module reads and validates the nine \
         workflow files, dispatches all, then waits for all concurrently. Slowest run = the \
         emulator's own record of the round's longest run, from its dispatch to its end; module \
         wall = the whole module process; overhead = wall − slowest run (process start, reading \
         the workflows, dispatching, and seeing the end of the last run). Status requests: the \
         most one run received, and the documented bound for that run's length.\n",
        longest.as_secs_f64(),
        pickup.as_secs_f64()
    );
    let load = measure::Load::start();
    println!("| poll_interval | slowest run (s, median) | module wall (s, min / median) | overhead (s, median) | wall / slowest (median) | status requests per run (max) | bound |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let runs_prefix = format!("/api/v1/repos/{}/actions/runs/", fj.repo());
    for poll in [0.5, 1.0, 5.0] {
        // Per round: (wall, slowest run); over the rounds: the most status requests of a run
        // and the bound for that run's length.
        let mut rounds: Vec<(f64, f64)> = Vec::new();
        let (mut most, mut bound) = (0usize, 0u64);
        for _ in 0..o.rounds {
            let (runs_before, log_before) = (fj.runs().len(), fj.request_log().len());
            let args = json!({
                "url": fj.url(), "token": fj.token(), "repo": fj.repo(), "ref": "main",
                "workflows": files, "poll_interval": poll, "wait_timeout": 120, "pickup_timeout": 60,
            });
            let t = Instant::now();
            let r = run_module(&trigger, dir, &args, Duration::from_secs(300))?;
            let wall = t.elapsed().as_secs_f64();
            if failed(&r) {
                return Err(format!("redeploy_trigger failed: {}", r["msg"]));
            }
            let runs = fj.runs();
            let log = fj.request_log();
            let mut slowest = 0.0f64;
            for run in &runs[runs_before..] {
                let lasted = run
                    .lasted
                    .ok_or("a run had not ended when the module returned")?
                    .as_secs_f64();
                slowest = slowest.max(lasted);
                let path = format!("{runs_prefix}{}", run.info.id);
                let n = log[log_before..]
                    .iter()
                    .filter(|l| l.method == "GET" && l.path == path)
                    .count();
                if n > most {
                    most = n;
                    bound = forgejo_dispatch::max_status_requests(poll, lasted);
                }
            }
            rounds.push((wall, slowest));
        }
        let col = |f: &dyn Fn(&(f64, f64)) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
        let (wall_min, wall_med) = measure::min_med(&col(&|r| r.0));
        println!(
            "| {poll} s | {:.2} | {wall_min:.2} / {wall_med:.2} | {:.2} | {:.2}× | {most} | {bound} |",
            measure::min_med(&col(&|r| r.1)).1,
            measure::min_med(&col(&|r| r.0 - r.1)).1,
            measure::min_med(&col(&|r| r.0 / r.1)).1,
        );
    }
    println!("\n{}", load.line());
    println!();
    Ok(())
}
