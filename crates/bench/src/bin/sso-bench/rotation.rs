//! (f) The full rotation: its wall, and where the time goes phase by phase, against its floor
//! (Ansible's start-up + the slowest deploy run + the modules' own time).
//!
//! Every round runs `rotate-homelab-sso.yml` as `make demo` does, with two instruments that only
//! the bench installs: the callback `bench/callbacks/phase_times.py` (when each play and task
//! starts and ends, enabled beside the callbacks of the project's `ansible.cfg`) and
//! `bench-timed-module` in each module's place (how long each module's own process ran). Both add
//! well under a millisecond per task.

use crate::measure::{min_med, Load};
use crate::{bin, Opts, MODULES};
use lab::ansible::module_library;
use lab::stack::{Lab, LabOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The phases in the order a rotation runs them (the playbook's step names).
const PHASES: [&str; 10] = [
    "start-up",
    "preflight",
    "clean",
    "mint",
    "write",
    "redeploy",
    "verify",
    "retire",
    "other tasks",
    "wrap-up",
];

/// One phase of one round: tasks run (and skipped), wall, the modules' own time.
#[derive(Default, Clone, Copy)]
struct Phase {
    tasks: usize,
    skipped: usize,
    wall: f64,
    own: f64,
}

/// One round: the whole process's wall, the slowest deploy run, its deploy runs, its phases,
/// and the modules' own time without `redeploy_trigger` (whose own time is the wait).
struct Round {
    wall: f64,
    slowest: f64,
    deploys: usize,
    phases: BTreeMap<&'static str, Phase>,
    own_but_wait: f64,
    startup: f64,
}

impl Round {
    fn floor(&self) -> f64 {
        self.startup + self.slowest + self.own_but_wait
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The phase of a task, from its step name (`Step 4/6 (redeploy…)`) or its play.
fn phase_of(task: &str, play: &str) -> &'static str {
    if let Some(rest) = task.strip_prefix("Step ") {
        let word = rest
            .split_once('(')
            .map(|(_, w)| w.split([')', ',', ' ']).next().unwrap_or(""))
            .unwrap_or("");
        if let Some(p) = PHASES.iter().find(|p| **p == word) {
            return p;
        }
    }
    // The drift check's tasks (tasks/drift-*.yml) run inside the rotation's own plays.
    let play = play.to_lowercase();
    if task.starts_with("Drift check") || play.contains("drift check") {
        "verify"
    } else if play.contains("preflight") || task.starts_with("Preflight") {
        "preflight"
    } else {
        "other tasks"
    }
}

/// The bench's copy of the collection: `bench-timed-module` under each module's name, the real
/// binaries in `real/`.
fn timed_library(o: &Opts, work: &Path) -> Result<PathBuf, String> {
    let timer = bin(o, "bench-timed-module")?;
    let real = work.join("real");
    std::fs::create_dir_all(&real).map_err(|e| e.to_string())?;
    for m in MODULES {
        std::fs::copy(bin(o, m)?, real.join(m)).map_err(|e| format!("copying {m}: {e}"))?;
    }
    let refs: Vec<(&str, &Path)> = MODULES.iter().map(|m| (*m, timer.as_path())).collect();
    module_library(work, &refs).map_err(|e| e.to_string())?;
    Ok(real)
}

/// Reads the callback's file and the modules' times into the round's phases.
fn phases(
    times: &Value,
    modules: &str,
    spawned: f64,
    exited: f64,
) -> (BTreeMap<&'static str, Phase>, f64, f64) {
    let mut out: BTreeMap<&'static str, Phase> = BTreeMap::new();
    let plays: Vec<&str> = times["plays"]
        .as_array()
        .map(|p| p.iter().map(|p| p["name"].as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    let first = times["plays"][0]["start"].as_f64().unwrap_or(spawned);
    let tasks = times["tasks"].as_array().cloned().unwrap_or_default();
    let last = tasks
        .last()
        .and_then(|t| t["end"].as_f64())
        .unwrap_or(exited);
    let runs: Vec<(&str, f64, f64)> = modules
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    let mut own_but_wait = 0.0;
    for t in &tasks {
        let (start, end) = (
            t["start"].as_f64().unwrap_or(0.0),
            t["end"].as_f64().unwrap_or(0.0),
        );
        let play = t["play"]
            .as_u64()
            .and_then(|i| plays.get(i as usize))
            .copied()
            .unwrap_or("");
        let p = out
            .entry(phase_of(t["name"].as_str().unwrap_or(""), play))
            .or_default();
        p.tasks += 1;
        p.skipped += usize::from(t["status"] == "skipped");
        p.wall += end - start;
        for (name, s, e) in runs.iter().filter(|(_, s, _)| *s >= start && *s < end) {
            p.own += e - s;
            if *name != "redeploy_trigger" {
                own_but_wait += e - s;
            }
        }
    }
    let startup = first - spawned;
    out.entry("start-up").or_default().wall = startup;
    out.entry("wrap-up").or_default().wall = exited - last;
    (out, own_but_wait, startup)
}

/// `extra` after the callbacks that the project's `ansible.cfg` enables: the variable replaces
/// its `callbacks_enabled`, and the rotation is measured as `make demo` runs it.
fn with_project_callbacks(root: &Path, extra: &str) -> String {
    let cfg = std::fs::read_to_string(root.join("ansible/ansible.cfg")).unwrap_or_default();
    let own = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "callbacks_enabled").then(|| value.trim().to_string())
    });
    match own {
        Some(own) if !own.is_empty() => format!("{own},{extra}"),
        _ => extra.to_string(),
    }
}

/// One instrumented rotation.
fn round(lab: &Lab, inventory: &Path, work: &Path, real: &Path) -> Result<Round, String> {
    let playbook = lab::tools::venv_bin("ansible-playbook");
    let root = lab::tools::repo_root();
    let (times, modules) = (work.join("phase-times.json"), work.join("module-times.txt"));
    let _ = std::fs::remove_file(&times);
    let _ = std::fs::remove_file(&modules);
    let runs_before = lab.forgejo.runs().len();
    let mut cmd = Command::new(&playbook);
    cmd.arg("-i")
        .arg(inventory)
        .arg(root.join("ansible/playbooks/rotate-homelab-sso.yml"))
        .stdin(Stdio::null());
    // The playbooks authenticate with the lab's AppRole, never with the root token.
    lab::ansible::repo_playbook_env(&mut cmd, work, lab.env());
    cmd.env("ANSIBLE_CALLBACK_PLUGINS", root.join("bench/callbacks"))
        .env(
            "ANSIBLE_CALLBACKS_ENABLED",
            with_project_callbacks(&root, "phase_times"),
        )
        .env("BENCH_PHASE_TIMES", &times)
        .env("BENCH_REAL_MODULES", real)
        .env("BENCH_MODULE_TIMES", &modules);
    let spawned = epoch();
    let out = cmd
        .output()
        .map_err(|e| format!("running ansible-playbook: {e}"))?;
    let exited = epoch();
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(format!(
            "the rotation failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let runs = lab.forgejo.runs();
    let deploys_now = &runs[runs_before..];
    let slowest = deploys_now
        .iter()
        .filter_map(|r| r.lasted)
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max);
    let times: Value = std::fs::read(&times)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the phase_times callback wrote nothing")?;
    let modules = std::fs::read_to_string(&modules).unwrap_or_default();
    let (phases, own_but_wait, startup) = phases(&times, &modules, spawned, exited);
    Ok(Round {
        wall: exited - spawned,
        slowest,
        deploys: deploys_now.len(),
        phases,
        own_but_wait,
        startup,
    })
}

pub fn bench_f(o: &Opts, dir: &Path) -> Result<(), String> {
    if !lab::tools::venv_bin("ansible-playbook").exists() {
        return Err("(f) needs the project's .venv with ansible-playbook (make setup)".into());
    }
    let lab = Lab::up(&dir.join("lab"), &LabOptions::default()).map_err(|e| e.to_string())?;
    let (_, inventory) = lab.write_files().map_err(|e| e.to_string())?;
    let work = dir.join("ansible");
    let real = timed_library(o, &work)?;
    let load = Load::start();
    let rounds = (0..o.rounds)
        .map(|_| round(&lab, &inventory, &work, &real))
        .collect::<Result<Vec<_>, _>>()?;
    report_f(o, &rounds);
    println!("{}", load.line());
    Ok(())
}

fn med(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    min_med(&rounds.iter().map(f).collect::<Vec<_>>()).1
}

fn report_f(o: &Opts, rounds: &[Round]) {
    let walls: Vec<f64> = rounds.iter().map(|r| r.wall).collect();
    let (wall_min, wall_med) = min_med(&walls);
    println!("## (f) Full rotation\n");
    println!(
        "`ansible-playbook rotate-homelab-sso.yml` (the playbook's defaults, `poll_interval` 5 s) \
         against the whole lab of `make demo`: OpenBao, sshd with the `pct` stand-in, the \
         PocketID and Forgejo emulators, deploy runs of 1 s once picked up that re-render each \
         service's `.env` from Vault. Each of the {} rounds rotates every key again: preflight, \
         clean-up of orphan secrets, mint, one Vault write, nine redeploys waited on, drift check, \
         retirement of the old secret. Wall = the whole ansible-playbook process. The floor = \
         Ansible's start-up (process start to the first play) + the slowest deploy run + the \
         modules' own time (each module process, `redeploy_trigger`'s wait counted once as the \
         slowest run); ratios are the median of the rounds' ratios.\n",
        o.rounds
    );
    println!("| rotation wall (s, min / median) | deploy runs | slowest deploy run (s, median) | floor (s, median) | wall ÷ floor (median) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let ratio = med(rounds, |r| r.wall / r.floor());
    println!(
        "| {wall_min:.2} / {wall_med:.2} | {} | {:.2} | {:.2} | **{ratio:.2}×** |\n",
        rounds.last().map(|r| r.deploys).unwrap_or(0),
        med(rounds, |r| r.slowest),
        med(rounds, Round::floor),
    );
    println!("Phase by phase (medians over the rounds; a task's wall runs from its start to the next task's start, so Ansible's work between tasks is in it; Ansible's = wall − the modules' own):\n");
    println!("| phase | tasks (skipped) | wall s | modules' own s | Ansible's s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for name in PHASES {
        let get = |r: &Round| r.phases.get(name).copied().unwrap_or_default();
        let last = rounds.last().map(get).unwrap_or_default();
        let (wall, own) = (med(rounds, |r| get(r).wall), med(rounds, |r| get(r).own));
        let tasks = if last.tasks == 0 {
            String::new()
        } else {
            format!("{} ({})", last.tasks, last.skipped)
        };
        println!(
            "| {name} | {tasks} | {wall:.2} | {own:.2} | {:.2} |",
            wall - own
        );
    }
    let tasks: usize = rounds
        .last()
        .map(|r| r.phases.values().map(|p| p.tasks).sum())
        .unwrap_or(0);
    println!(
        "| **whole rotation** | {tasks} | {wall_med:.2} | {:.2} | {:.2} |\n",
        med(rounds, |r| r.phases.values().map(|p| p.own).sum()),
        med(rounds, |r| r.wall
            - r.phases.values().map(|p| p.own).sum::<f64>()),
    );
}
