//! (a) and (g): the time of one task through `ansible-playbook`. Each playbook holds 20 separate
//! tasks; per task = (playbook − the same play without tasks) / 20, taken round by round.

use crate::measure::{alternate, cpu_cell, min_med, tail, timed, wall_cell, Load, Sample};
use crate::Opts;
use lab::ansible::module_library;
use lab::openbao::OpenBao;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const TASKS: usize = 20;
const KEYS: usize = 15;

/// The bench virtualenv's ansible-playbook with one collections path and per-run settings.
struct Runner {
    venv: PathBuf,
    dir: PathBuf,
}

impl Runner {
    fn new(o: &Opts, dir: &Path) -> Result<Runner, String> {
        if !o.bench_venv.join("bin/ansible-playbook").exists() {
            return Err(format!(
                "needs {} with the `ansible` and `hvac` packages (scripts/bench.sh creates it)",
                o.bench_venv.display()
            ));
        }
        let inv = dir.join("inventory.ini");
        let line = format!(
            "localhost ansible_connection=local ansible_python_interpreter={}\n",
            o.bench_venv.join("bin/python").display()
        );
        std::fs::write(&inv, line).map_err(|e| e.to_string())?;
        Ok(Runner {
            venv: o.bench_venv.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// One run of `playbook` with the collections of `colls`; `env` adds or overrides settings.
    fn run(
        &self,
        playbook: &Path,
        colls: &Path,
        round: usize,
        env: &[(&str, &str)],
    ) -> Result<Sample, String> {
        // A fresh remote temporary directory per run: keep_remote_files leaves 2 MB per task.
        let remote = self.dir.join("tmp-remote");
        let _ = std::fs::remove_dir_all(&remote);
        let vars = self.dir.join(format!("secret-{round}.json"));
        let secret = json!({"secret": round_values(&round.to_string())});
        std::fs::write(&vars, secret.to_string()).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(self.venv.join("bin/ansible-playbook"));
        cmd.arg("-i")
            .arg(self.dir.join("inventory.ini"))
            .arg(playbook)
            .args(["-e", &format!("round={round}")])
            .arg("-e")
            .arg(format!("@{}", vars.display()))
            .current_dir(&self.dir)
            .env("ANSIBLE_COLLECTIONS_PATH", colls)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
            .env("ANSIBLE_LOCAL_TEMP", self.dir.join("tmp-local"))
            .env("ANSIBLE_REMOTE_TEMP", &remote)
            .env("ANSIBLE_PIPELINING", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (s, out) = timed(&mut cmd)?;
        if !out.status.success() {
            return Err(format!(
                "ansible-playbook {} failed ({}): {}",
                playbook.display(),
                out.status,
                tail(&out)
            ));
        }
        Ok(s)
    }
}

/// The 15 values a write task gets in round `round`: plain strings, new in every round.
fn round_values(round: &str) -> Map<String, Value> {
    (1..=KEYS)
        .map(|k| {
            (
                format!("key_{k:02}"),
                json!(format!("value-{k:02}-{round}-x9")),
            )
        })
        .collect()
}

/// The same 15 values, each a template of the round (as a play's `vars` would hold them).
fn templated_values() -> Value {
    Value::Object(round_values("{{ round }}"))
}

/// A play on localhost with `n` copies of `task` (`{i}` replaced by the task's number). The
/// write tasks' `secret` comes from the round's extra vars (see [`Runner::run`]): a dict of plain
/// strings, as a rotation's generated values reach its write.
fn play(bao: &OpenBao, task: &str, n: usize) -> String {
    let mut s = format!(
        "- hosts: localhost\n  gather_facts: false\n  vars:\n    url: \"{}\"\n    token: \"{}\"\n  tasks:\n    - name: warm up the connection plugin\n      ansible.builtin.meta: noop\n",
        bao.addr, bao.root_token
    );
    for i in 0..n {
        s.push_str(&format!("    - {}\n", task.replace("{i}", &i.to_string())));
    }
    s
}

/// Writes the playbooks; returns their paths in the order of `tasks`.
fn playbooks(bao: &OpenBao, dir: &Path, tasks: &[(&str, &str)]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for (name, task) in tasks {
        let p = dir.join(format!("{name}.yml"));
        let n = if task.is_empty() { 0 } else { TASKS };
        std::fs::write(&p, play(bao, task, n)).map_err(|e| e.to_string())?;
        out.push(p);
    }
    Ok(out)
}

const VAULT: &str = "url: '{{ url }}', token: '{{ token }}'";
const HV: &str =
    "url: '{{ url }}', token: '{{ token }}', auth_method: token, engine_mount_point: secret";

/// Per-task samples of each playbook after the first (the empty play), round by round.
fn per_task(samples: &[Vec<Sample>]) -> Vec<Vec<Sample>> {
    let empty = &samples[0];
    samples[1..]
        .iter()
        .map(|v| {
            v.iter()
                .zip(empty)
                .map(|(s, e)| (*s - *e).scaled(1.0 / TASKS as f64))
                .collect()
        })
        .collect()
}

/// The median, over the rounds, of a / b (walls).
fn med_ratio(a: &[Sample], b: &[Sample]) -> f64 {
    crate::measure::ratio(a, b)
}

/// The median, over the rounds, of a − b (wall, ms).
fn med_diff_ms(a: &[Sample], b: &[Sample]) -> f64 {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.wall - y.wall) * 1000.0)
        .collect();
    min_med(&d).1
}

/// The collection as shipped (action plugins included), and a copy without its action plugins
/// (every task the usual way: temporary directory, copy, chmod, run, remove).
fn collections(dir: &Path, modules: &[(&str, &Path)]) -> Result<(PathBuf, PathBuf), String> {
    let mut paths = Vec::new();
    for (name, keep_actions) in [("shipped", true), ("usual", false)] {
        let root = dir.join(name);
        module_library(&root, modules).map_err(|e| e.to_string())?;
        let action = root.join("collections/ansible_collections/homelab/sso/plugins/action");
        if keep_actions {
            let noop = "from __future__ import annotations\n\nfrom ansible_collections.homelab.sso.plugins.plugin_utils.in_place import InPlaceBinaryAction\n\n\nclass ActionModule(InPlaceBinaryAction):\n    pass\n";
            std::fs::write(action.join("bench_noop.py"), noop).map_err(|e| e.to_string())?;
        } else {
            std::fs::remove_dir_all(&action).map_err(|e| e.to_string())?;
        }
        paths.push(root.join("collections"));
    }
    Ok((paths[0].clone(), paths[1].clone()))
}

fn start_bao(dir: &Path) -> Result<OpenBao, String> {
    let bao = OpenBao::start(&dir.join("bao")).map_err(|e| e.to_string())?;
    let read: Map<String, Value> = (1..=KEYS)
        .map(|k| {
            (
                format!("key_{k:02}"),
                json!(format!("value-{k:02}-read-x9")),
            )
        })
        .collect();
    bao.kv_put("bench-a/read", Value::Object(read))
        .map_err(|e| e.to_string())?;
    Ok(bao)
}

/// (a) vault_full_write / vault_kv_read against community.hashi_vault, with the debug floor.
pub fn bench_a(o: &Opts, dir: &Path) -> Result<(), String> {
    let runner = Runner::new(o, dir)?;
    let bao = start_bao(dir)?;
    let write = crate::bin(o, "vault_full_write")?;
    let read = crate::bin(o, "vault_kv_read")?;
    let (shipped, _) = collections(
        dir,
        &[("vault_full_write", &write), ("vault_kv_read", &read)],
    )?;
    let ours_w = format!("homelab.sso.vault_full_write: {{{VAULT}, path: 'bench-a/ours-{{i}}', data: '{{{{ secret }}}}'}}");
    let theirs_w = format!("community.hashi_vault.vault_kv2_write: {{{HV}, path: 'bench-a/theirs-{{i}}', data: '{{{{ secret }}}}'}}");
    let theirs_rbw = format!("community.hashi_vault.vault_kv2_write: {{{HV}, path: 'bench-a/rbw-{{i}}', data: '{{{{ secret }}}}', read_before_write: true}}");
    let ours_r = format!(
        "homelab.sso.vault_kv_read: {{{VAULT}, path: 'bench-a/read', return_values: true}}"
    );
    let theirs_r = format!("community.hashi_vault.vault_kv2_get: {{{HV}, path: 'bench-a/read'}}");
    let rows: [(&str, &str); 7] = [
        ("empty", ""),
        ("debug", "ansible.builtin.debug: {msg: 'task {i}'}"),
        ("ours_write", &ours_w),
        ("kv2_write", &theirs_w),
        ("kv2_write_rbw", &theirs_rbw),
        ("ours_read", &ours_r),
        ("kv2_get", &theirs_r),
    ];
    let pbs = playbooks(&bao, dir, &rows)?;
    // One warm-up run of each (first-run caches), not counted.
    for p in &pbs {
        runner.run(p, &shipped, 0, &[])?;
    }
    let load = Load::start();
    let samples = alternate(o.rounds, pbs.len(), |i, round| {
        runner.run(&pbs[i], &shipped, round + 1, &[])
    })?;
    let t = per_task(&samples);
    let (debug, ow, tw, trbw, or, tr) = (&t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
    println!("## (a) Per-task time through ansible-playbook\n");
    println!(
        "The same `ansible-playbook` (from `.venv-bench`: the `ansible` package with \
         community.hashi_vault, and `hvac`), the same OpenBao dev server, connection local, \
         pipelining off (the project's `ansible.cfg`). Each playbook is {TASKS} separate tasks; \
         each write task writes a {KEYS}-key secret that differs from the stored one (a new \
         version every time), each read task reads a {KEYS}-key secret with its values. The \
         seven playbooks run in turn, {} rounds (A B C … A B C …). Per task = (playbook − the \
         same play without tasks) / {TASKS}, round by round; min / median over the rounds; \
         ratios are the median of the rounds' ratios. CPU = user + system of ansible-playbook \
         and everything it waited for. `homelab.sso` as shipped (its action plugins run the \
         binaries in place, see (g)).\n",
        o.rounds
    );
    println!("| task | per task, wall ms (min / median) | per task, CPU ms (min / median) | ÷ `debug` (median) |");
    println!("| --- | ---: | ---: | ---: |");
    let named = [
        ("`ansible.builtin.debug` (the floor)", debug),
        ("`homelab.sso.vault_full_write`", ow),
        ("`community.hashi_vault.vault_kv2_write`", tw),
        ("`vault_kv2_write`, `read_before_write: true`", trbw),
        ("`homelab.sso.vault_kv_read`", or),
        ("`community.hashi_vault.vault_kv2_get`", tr),
    ];
    for (name, s) in named {
        println!(
            "| {name} | {} | {} | {:.2}× |",
            wall_cell(s, 1000.0, 0),
            cpu_cell(s, 1000.0, 0),
            med_ratio(s, debug)
        );
    }
    println!(
        "\nEmpty play (start-up and set-up, subtracted above): {} s wall (min / median).\n",
        wall_cell(&samples[0], 1.0, 2)
    );
    println!("| comparison (per task, wall) | ours / theirs (median of the rounds) |");
    println!("| --- | ---: |");
    println!(
        "| `vault_full_write` / `vault_kv2_write` | **{:.2}×** |",
        med_ratio(ow, tw)
    );
    println!(
        "| `vault_full_write` / `vault_kv2_write` with `read_before_write` | **{:.2}×** |",
        med_ratio(ow, trbw)
    );
    println!(
        "| `vault_kv_read` / `vault_kv2_get` | **{:.2}×** |\n",
        med_ratio(or, tr)
    );
    println!("{}", load.line());
    Ok(())
}

/// (g) Where a binary module task's time goes over the `debug` floor.
pub fn bench_g(o: &Opts, dir: &Path) -> Result<(), String> {
    let runner = Runner::new(o, dir)?;
    let bao = start_bao(dir)?;
    let read = crate::bin(o, "vault_kv_read")?;
    let write = crate::bin(o, "vault_full_write")?;
    let noop = crate::bin(o, "bench-noop-module")?;
    let (shipped, usual) = collections(
        dir,
        &[
            ("vault_kv_read", &read),
            ("vault_full_write", &write),
            ("bench_noop", &noop),
        ],
    )?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0)
    };
    let kv = format!(
        "homelab.sso.vault_kv_read: {{{VAULT}, path: 'bench-a/read', return_values: true}}"
    );
    let noop_task = "homelab.sso.bench_noop: {}";
    let pbs = playbooks(
        &bao,
        dir,
        &[
            ("empty", ""),
            ("debug", "ansible.builtin.debug: {msg: 'task {i}'}"),
            ("kv", &kv),
            ("noop", noop_task),
        ],
    )?;
    let shm = tempfile::Builder::new()
        .prefix("sso-bench-")
        .tempdir_in("/dev/shm")
        .map_err(|e| format!("/dev/shm: {e}"))?;
    let shm_path = shm.path().to_string_lossy().to_string();
    // (label, playbook, collections, extra settings)
    type Variant<'a> = (&'a str, usize, &'a Path, Vec<(&'a str, &'a str)>);
    let variants: Vec<Variant> = vec![
        ("empty play", 0, &shipped, vec![]),
        ("`debug` (the floor)", 1, &shipped, vec![]),
        (
            "`vault_kv_read`, in place (as shipped)",
            2,
            &shipped,
            vec![],
        ),
        (
            "`vault_kv_read`, the usual way (no action plugin)",
            2,
            &usual,
            vec![],
        ),
        (
            "… usual way, `ANSIBLE_PIPELINING=1`",
            2,
            &usual,
            vec![("ANSIBLE_PIPELINING", "1")],
        ),
        (
            "… usual way, `ANSIBLE_KEEP_REMOTE_FILES=1` (no removal)",
            2,
            &usual,
            vec![("ANSIBLE_KEEP_REMOTE_FILES", "1")],
        ),
        (
            "… usual way, remote temp on tmpfs (`/dev/shm`)",
            2,
            &usual,
            vec![("ANSIBLE_REMOTE_TEMP", &shm_path)],
        ),
        ("no-op module, the usual way", 3, &usual, vec![]),
        ("no-op module, in place", 3, &shipped, vec![]),
    ];
    for (_, pb, colls, env) in &variants {
        runner.run(&pbs[*pb], colls, 0, env)?;
    }
    let load = Load::start();
    let samples = alternate(o.rounds, variants.len(), |i, round| {
        let (_, pb, colls, env) = &variants[i];
        runner.run(&pbs[*pb], colls, round + 1, env)
    })?;
    let labels: Vec<&str> = variants.iter().map(|v| v.0).collect();
    report_g(o, (size(&read), size(&noop)), &labels, &samples);
    println!("{}", load.line());
    write_floor(o, &runner, &bao, &shipped, (&write, &noop))
}

/// (g)'s table and the differences it is read for: `labels` and `samples` are the variants in
/// the order of `bench_g` (empty play, `debug`, in place, usual, pipelining, keep, tmpfs, no-op
/// usual, no-op in place); `sizes` the two binaries' sizes in MB.
fn report_g(o: &Opts, sizes: (f64, f64), labels: &[&str], samples: &[Vec<Sample>]) {
    let t = per_task(samples);
    println!("## (g) The per-task floor: where a binary module task's time goes\n");
    println!(
        "The machinery of (a), {TASKS} tasks per playbook, {} rounds, the nine variants in turn. \
         `vault_kv_read` ({:.2} MB) reads a {KEYS}-key secret; the no-op module ({:.2} MB, \
         `bench-noop-module`) reads its args file and answers. The usual way is what Ansible does \
         for any binary module: make a temporary directory, copy the binary and the args file \
         into it, chmod, run it through /bin/sh, remove the directory (four shell processes and a \
         copy per task). In place is the collection's action plugins: with connection local the \
         installed binary is run where it is, with a 0600 args file in Ansible's local temporary \
         directory, one process and no copy; everything else (other connections, become, async, \
         keep_remote_files) goes the usual way.\n",
        o.rounds, sizes.0, sizes.1
    );
    println!("| variant | per task, wall ms (min / median) | per task, CPU ms (min / median) | over `debug`, ms (median) | ÷ `debug` (median) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| empty play (whole, s) | {} | {} | | |",
        wall_cell(&samples[0], 1.0, 2),
        cpu_cell(&samples[0], 1.0, 2)
    );
    let debug = &t[0];
    for (i, label) in labels.iter().enumerate().skip(1) {
        let s = &t[i - 1];
        println!(
            "| {label} | {} | {} | {:.0} | {:.2}× |",
            wall_cell(s, 1000.0, 0),
            cpu_cell(s, 1000.0, 0),
            med_diff_ms(s, debug),
            med_ratio(s, debug)
        );
    }
    let (inplace, usual_kv, noop_usual, noop_inplace) = (&t[1], &t[2], &t[6], &t[7]);
    println!("\nDifferences, per task (median of the rounds' differences, wall):\n");
    println!(
        "- the usual way's machinery (temporary directory, copy, chmod, /bin/sh, removal) over \
         running in place: {:.0} ms for `vault_kv_read`, {:.0} ms for the no-op module;",
        med_diff_ms(usual_kv, inplace),
        med_diff_ms(noop_usual, noop_inplace)
    );
    println!(
        "- the removal of the temporary directory alone (usual − keep_remote_files): {:.0} ms; \
         a tmpfs remote temp: {:.0} ms; pipelining (never applies to a binary module): {:.0} ms;",
        med_diff_ms(usual_kv, &t[4]),
        med_diff_ms(&t[5], usual_kv),
        med_diff_ms(&t[3], usual_kv)
    );
    println!(
        "- `vault_kv_read`'s own work (in place − no-op in place: an HTTP request to the local \
         OpenBao, parsing, its larger binary's start): {:.0} ms;",
        med_diff_ms(inplace, noop_inplace)
    );
    println!(
        "- what remains of a task in place over `debug` (the no-op module in place − `debug`: a \
         process, the args file, parsing the result): {:.0} ms.\n",
        med_diff_ms(noop_inplace, debug)
    );
}

/// The write's args outside Ansible: `n` args files, each a changed 15-key write of `path`.
fn direct_args(bao: &OpenBao, dir: &Path, round: usize, n: usize) -> Result<Vec<PathBuf>, String> {
    (0..n)
        .map(|i| {
            let data: Map<String, Value> = (1..=KEYS)
                .map(|k| (format!("key_{k:02}"), json!(format!("value-{k:02}-{round}-{i}-x9"))))
                .collect();
            let args = json!({"url": bao.addr, "token": bao.root_token, "path": "bench-g/direct", "data": data});
            let p = dir.join(format!("direct-{round}-{i}.json"));
            std::fs::write(&p, args.to_string()).map_err(|e| e.to_string())?;
            Ok(p)
        })
        .collect()
}

/// One sample of `bin` run outside Ansible: the mean over `args` (one process each).
fn direct_sample(bin: &Path, args: &[PathBuf]) -> Result<(Sample, usize), String> {
    let mut total = Sample {
        wall: 0.0,
        cpu: 0.0,
    };
    let mut answer = 0;
    for a in args {
        let (s, out) = timed(Command::new(bin).arg(a))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("\"failed\": true") || text.contains("\"failed\":true") {
            return Err(format!(
                "{} failed outside Ansible: {}",
                bin.display(),
                tail(&out)
            ));
        }
        answer = out.stdout.len();
        total = Sample {
            wall: total.wall + s.wall,
            cpu: total.cpu + s.cpu,
        };
    }
    Ok((total.scaled(1.0 / args.len() as f64), answer))
}

/// (g), the write: `vault_full_write` as in (a), beside no-op tasks that get what it gets (the
/// same templated 15-key `data`, `no_log`, an answer of its size) and the two binaries outside
/// Ansible, so that each millisecond over `debug` has a cause.
fn write_floor(
    o: &Opts,
    runner: &Runner,
    bao: &OpenBao,
    shipped: &Path,
    (write, noop): (&Path, &Path),
) -> Result<(), String> {
    let dir = &runner.dir;
    // The write's answer size, from one changed write outside Ansible.
    let (_, answer) = direct_sample(write, &direct_args(bao, dir, 0, 1)?)?;
    let literal = Value::Object(round_values("literal"));
    let nested = templated_values();
    let w = format!("homelab.sso.vault_full_write: {{{VAULT}, path: 'bench-g/w-{{i}}', data: '{{{{ secret }}}}'}}");
    let rows: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("debug", "ansible.builtin.debug: {msg: 'task {i}'}".into()),
        ("w", w.clone()),
        ("w_nolog", format!("{{{w}, no_log: true}}")),
        ("n_nested", format!("{{homelab.sso.bench_noop: {{data: {nested}, answer_bytes: {answer}}}, no_log: true}}")),
        ("n_tmpl", format!("{{homelab.sso.bench_noop: {{data: '{{{{ secret }}}}', answer_bytes: {answer}}}, no_log: true}}")),
        ("n_lit", format!("{{homelab.sso.bench_noop: {{data: {literal}, answer_bytes: {answer}}}, no_log: true}}")),
        ("n_answer", format!("{{homelab.sso.bench_noop: {{answer_bytes: {answer}}}, no_log: true}}")),
        ("n", "homelab.sso.bench_noop: {}".into()),
    ];
    let named: Vec<(&str, &str)> = rows.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let pbs = playbooks(bao, dir, &named)?;
    for p in &pbs {
        runner.run(p, shipped, 0, &[])?;
    }
    let load = Load::start();
    let mut direct: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let samples = alternate(o.rounds, pbs.len(), |i, round| {
        if i == 0 {
            let args = direct_args(bao, dir, round + 1, TASKS)?;
            direct[0].push(direct_sample(write, &args)?.0);
            direct[1].push(direct_sample(noop, &args)?.0);
        }
        runner.run(&pbs[i], shipped, round + 1, &[])
    })?;
    report_write_floor(&per_task(&samples), &direct, answer);
    println!("{}", load.line());
    Ok(())
}

/// The write floor's table and its differences (`t`: per-task samples in the order of
/// `write_floor`'s rows after the empty play; `direct`: the write and the no-op outside Ansible).
fn report_write_floor(t: &[Vec<Sample>], direct: &[Vec<Sample>; 2], answer: usize) {
    let (debug, w, w_nolog, n_nested, n_tmpl, n_lit, n_answer, n) =
        (&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]);
    println!("### (g) The write: where a `vault_full_write` task's time goes\n");
    println!(
        "The same machinery, a second set of playbooks in turn: `vault_full_write` as in (a) (a \
         changed {KEYS}-key write per task, `data: '{{{{ secret }}}}'` with `secret` a dict of \
         plain strings from the round's extra vars), beside no-op tasks in place that get what it \
         gets: the same `data`, the same data as literal strings, `no_log`, an answer of the \
         write's size ({answer} bytes); and one whose {KEYS} values are each a template (what \
         (a) measured before: `vars` whose values template the round). Outside Ansible: the \
         release binary run as Ansible runs it in place (a new process with an args file), \
         {TASKS} changed writes against the same OpenBao per round, and the no-op binary with the \
         same args files.\n"
    );
    println!("| variant | per task, wall ms (min / median) | per task, CPU ms (min / median) | over `debug`, ms (median) | ÷ `debug` (median) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let rows = [
        ("`debug` (the floor)", debug),
        ("`vault_full_write`, in place (as in (a))", w),
        ("… with `no_log: true`", w_nolog),
        ("no-op in place: 15 values that are each a template, `no_log`, answer size", n_nested),
        ("no-op in place: `data: '{{ secret }}'` as the write, `no_log`, the write's answer size", n_tmpl),
        ("no-op in place: the same 15 keys as literal strings, `no_log`, answer size", n_lit),
        ("no-op in place: no `data`, `no_log`, answer size", n_answer),
        ("no-op in place (as in the table above)", n),
    ];
    for (label, s) in rows {
        println!(
            "| {label} | {} | {} | {:.1} | {:.2}× |",
            wall_cell(s, 1000.0, 0),
            cpu_cell(s, 1000.0, 0),
            med_diff_ms(s, debug),
            med_ratio(s, debug)
        );
    }
    let outside = [
        (
            "`vault_full_write` outside Ansible (one changed write)",
            &direct[0],
        ),
        ("no-op binary outside Ansible", &direct[1]),
    ];
    for (label, s) in outside {
        println!(
            "| {label} | {} | {} | | |",
            wall_cell(s, 1000.0, 1),
            cpu_cell(s, 1000.0, 1)
        );
    }
    println!(
        "\nThe write's {:.1} ms over `debug`, by cause (median of the rounds' differences, wall):\n",
        med_diff_ms(w, debug)
    );
    let causes = [
        ("a binary module task in place at all (no-op − `debug`: a process, the args file, parsing the result)", med_diff_ms(n, debug)),
        ("`no_log` and an answer of the write's size (Ansible)", med_diff_ms(n_answer, n)),
        ("carrying the 15-key `data` in the task's args (Ansible)", med_diff_ms(n_lit, n_answer)),
        ("templating `'{{ secret }}'` into that dict (Ansible)", med_diff_ms(n_tmpl, n_lit)),
        ("the module's own work in the task (`vault_full_write` with `no_log` − that no-op: its requests to OpenBao, its larger binary's start)", med_diff_ms(w_nolog, n_tmpl)),
        ("`no_log` off (the result shown and kept uncensored, Ansible)", med_diff_ms(w, w_nolog)),
    ];
    for (cause, ms) in causes {
        println!("- {cause}: {ms:.1} ms;");
    }
    println!(
        "- for comparison, the module's own work outside Ansible (the write − the no-op, both as new processes): {:.1} ms;",
        med_diff_ms(&direct[0], &direct[1])
    );
    println!(
        "- not in the write: 15 values that are each a template cost {:.1} ms more than plain ones (Ansible templates each).\n",
        med_diff_ms(n_nested, n_tmpl)
    );
}
