//! (b) Harvesting `.env` files from 9, 50 and 200 containers: `env_harvest` against the ways a
//! user would do it by hand or with Ansible, on the lab's sshd and `pct` stand-in.

use crate::measure::{alternate, cpu_cell, min_med, tail, timed, wall_cell, Load, Sample};
use crate::Opts;
use lab::fixtures::Containers;
use lab::sshd::Sshd;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SIZES: [u32; 3] = [9, 50, 200];
/// Above this many containers the one-process-per-container ways (ssh per container, the
/// Ansible loop) are not measured by default: at 200 a round of them takes minutes.
/// `BENCH_HARVEST_SLOW_MAX=200` measures them there too.
const SLOW_MAX_DEFAULT: u32 = 50;

struct Fixture {
    sshd: Sshd,
    targets: Vec<Value>,
    dir: PathBuf,
}

fn fixture(dir: &Path, n: u32) -> Result<Fixture, String> {
    let cts = Containers::create(dir.join("cts")).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    for i in 0..n {
        let vmid = 200 + i;
        let name = format!("svc{i:03}");
        cts.add(vmid, &name, true).map_err(|e| e.to_string())?;
        let path = format!("/opt/homelab/{name}/.env");
        let body = format!(
            "# {name}\nSERVICE_NAME={name}\nDB_PASSWORD=\"bench-db-{i}-x9\"\nSESSION_SECRET=bench-session-{i}\nAPI_TOKEN='bench-api-{i}'\nLISTEN_PORT=8080\n"
        );
        cts.write_file(vmid, &path, body.as_bytes())
            .map_err(|e| e.to_string())?;
        targets.push(json!({
            "name": name, "vmid": vmid, "path": path,
            "keys": {"db_password": "DB_PASSWORD", "session_secret": "SESSION_SECRET", "api_token": "API_TOKEN"},
        }));
    }
    let sshd = Sshd::start(&dir.join("sshd"), &cts).map_err(|e| e.to_string())?;
    Ok(Fixture {
        sshd,
        targets,
        dir: dir.to_path_buf(),
    })
}

impl Fixture {
    /// ssh with the lab's key and confirmed host key, no user configuration.
    fn ssh(&self, ssh: &Path) -> Command {
        let s = &self.sshd;
        let mut c = Command::new(ssh);
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", s.known_hosts.display()))
        .arg("-i")
        .arg(&s.private_key)
        .arg("-p")
        .arg(s.port.to_string());
        c
    }

    fn dest(&self) -> String {
        format!("{}@{}", self.sshd.user, self.sshd.host)
    }

    fn cat(&self, t: &Value) -> String {
        format!(
            "{} exec {} -- cat -- {}",
            self.sshd.pct_path.display(),
            t["vmid"],
            t["path"].as_str().unwrap_or_default()
        )
    }

    fn env_harvest(&self, bin: &Path) -> Result<Sample, String> {
        let s = &self.sshd;
        let args = json!({
            "host": s.host, "port": s.port, "user": s.user,
            "private_key": s.private_key, "known_hosts": s.known_hosts,
            "pct_path": s.pct_path, "timeout": 120, "targets": self.targets,
        });
        let args_file = self.dir.join("args.json");
        std::fs::write(&args_file, args.to_string()).map_err(|e| e.to_string())?;
        let (sample, out) = timed(Command::new(bin).arg(&args_file))?;
        let r: Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| format!("env_harvest: no JSON result: {}", tail(&out)))?;
        let got = r["values"].as_object().map(|m| m.len()).unwrap_or(0);
        if r["failed"].as_bool() == Some(true) || got == 0 {
            return Err(format!("env_harvest failed: {}", r["msg"]));
        }
        Ok(sample)
    }

    /// One `ssh … pct exec … cat` process per container, each its own connection.
    fn ssh_each(&self, ssh: &Path) -> Result<Sample, String> {
        let mut total = Sample::default();
        for t in &self.targets {
            let (s, out) = timed(self.ssh(ssh).arg(self.dest()).arg(self.cat(t)))?;
            if !out.status.success() || out.stdout.is_empty() {
                return Err(format!("ssh … {} failed: {}", self.cat(t), tail(&out)));
            }
            total = Sample {
                wall: total.wall + s.wall,
                cpu: total.cpu + s.cpu,
            };
        }
        Ok(total)
    }

    /// One master connection (`ssh -M -N -f`, ControlPersist), one ssh per container over it,
    /// then `ssh -O exit`: all of it timed, so each round pays the master's set-up.
    fn ssh_master(&self, ssh: &Path) -> Result<Sample, String> {
        let ctl = self.dir.join("cm.sock");
        let ctl_opt = format!("ControlPath={}", ctl.display());
        let t = std::time::Instant::now();
        let mut cpu = 0.0;
        // The master goes to the background: no pipes, or reading them would wait for it.
        let started = timed(
            self.ssh(ssh)
                .args(["-M", "-N", "-f", "-o", "ControlPersist=60", "-o", &ctl_opt])
                .arg(self.dest())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        cpu += started.0.cpu;
        if !started.1.status.success() {
            return Err("ssh -M (the master connection) failed".into());
        }
        for tg in &self.targets {
            let (s, out) = timed(
                self.ssh(ssh)
                    .args(["-o", "ControlMaster=no", "-o", &ctl_opt])
                    .arg(self.dest())
                    .arg(self.cat(tg)),
            )?;
            cpu += s.cpu;
            if !out.status.success() || out.stdout.is_empty() {
                return Err(format!("ssh (over the master) {} failed", self.cat(tg)));
            }
        }
        let (s, _) = timed(
            self.ssh(ssh)
                .args(["-o", &ctl_opt, "-O", "exit"])
                .arg(self.dest()),
        )?;
        cpu += s.cpu;
        Ok(Sample {
            wall: t.elapsed().as_secs_f64(),
            cpu,
        })
    }

    /// An `ansible.builtin.command` loop over the containers, on the Proxmox node over ssh
    /// (Ansible's own ControlPersist connection, pipelining on).
    fn ansible_loop(&self, playbook: &Path) -> Result<Sample, String> {
        let mut cmd = Command::new(lab::tools::venv_bin("ansible-playbook"));
        cmd.arg("-i")
            .arg(self.dir.join("inventory.ini"))
            .arg(playbook)
            .current_dir(&self.dir)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", self.dir.join("cp"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.join("tmp-local"));
        let (s, out) = timed(&mut cmd)?;
        if !out.status.success() {
            return Err(format!("the Ansible loop failed: {}", tail(&out)));
        }
        Ok(s)
    }

    fn write_ansible_files(&self) -> Result<PathBuf, String> {
        let s = &self.sshd;
        let inv = format!(
            "pve ansible_host={} ansible_port={} ansible_user={} ansible_ssh_private_key_file={} ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}'\n",
            s.host,
            s.port,
            s.user,
            s.private_key.display(),
            s.known_hosts.display()
        );
        std::fs::write(self.dir.join("inventory.ini"), inv).map_err(|e| e.to_string())?;
        let items: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({"vmid": t["vmid"], "path": t["path"]}))
            .collect();
        let pb = format!(
            "- hosts: pve\n  gather_facts: false\n  tasks:\n    - name: read each .env\n      ansible.builtin.command:\n        argv: [\"{}\", exec, \"{{{{ item.vmid }}}}\", \"--\", cat, \"--\", \"{{{{ item.path }}}}\"]\n      loop: {}\n      changed_when: false\n      register: envs\n",
            s.pct_path.display(),
            Value::Array(items)
        );
        let p = self.dir.join("harvest.yml");
        std::fs::write(&p, pb).map_err(|e| e.to_string())?;
        Ok(p)
    }
}

/// (b) env_harvest vs ssh per container, ssh over one master, and an Ansible command loop.
pub fn bench_b(o: &Opts, dir: &Path) -> Result<(), String> {
    let harvest = crate::bin(o, "env_harvest")?;
    let ssh = lab::tools::system_bin("ssh");
    if !ssh.is_absolute() {
        return Err("(b) needs the OpenSSH client (scripts/setup.sh installs it)".into());
    }
    let slow_max: u32 = std::env::var("BENCH_HARVEST_SLOW_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SLOW_MAX_DEFAULT);
    let load = Load::start();
    // Per size: the samples of env_harvest, ssh each, ssh master, Ansible loop (None: not measured).
    let mut rows: Vec<(u32, Vec<Option<Vec<Sample>>>)> = Vec::new();
    for n in SIZES {
        let fx = fixture(&dir.join(format!("n{n}")), n)?;
        let pb = fx.write_ansible_files()?;
        let slow = n <= slow_max;
        let ways: Vec<usize> = if slow { vec![0, 1, 2, 3] } else { vec![0, 2] };
        let run = |w: usize| match w {
            0 => fx.env_harvest(&harvest),
            1 => fx.ssh_each(&ssh),
            2 => fx.ssh_master(&ssh),
            _ => fx.ansible_loop(&pb),
        };
        for &w in &ways {
            run(w)?; // warm-up, not counted
        }
        let samples = alternate(o.rounds, ways.len(), |i, _| run(ways[i]))?;
        let mut per_way: Vec<Option<Vec<Sample>>> = vec![None; 4];
        for (i, &w) in ways.iter().enumerate() {
            per_way[w] = Some(samples[i].clone());
        }
        rows.push((n, per_way));
    }
    print_b(o, &rows, slow_max);
    println!("{}", load.line());
    Ok(())
}

const WAYS: [&str; 4] = [
    "`env_harvest` (one connection, up to 8 channels, parsing and fingerprints)",
    "one `ssh … pct exec <vmid> -- cat -- <path>` per container",
    "the same over one master connection (`ssh -M`, `ControlPath`, `ControlPersist`)",
    "Ansible: `ansible.builtin.command` loop on the node (ssh, pipelining on, Ansible's ControlPersist connection)",
];

fn print_b(o: &Opts, rows: &[(u32, Vec<Option<Vec<Sample>>>)], slow_max: u32) {
    println!("## (b) Harvesting 9, 50 and 200 containers\n");
    println!(
        "The lab's sshd and `pct` stand-in over fixture containers, one `.env` each (three keys \
         wanted). The ways run in turn, {} rounds per size; min / median wall seconds; the \
         speed-up is the median of the rounds' ratios (the other way / `env_harvest`). The ways \
         with one process per container are measured up to {slow_max} containers \
         (`BENCH_HARVEST_SLOW_MAX`).\n",
        o.rounds
    );
    println!("| containers | way | wall s (min / median) | CPU s (min / median) | ÷ `env_harvest` (median) |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for (n, ways) in rows {
        let Some(ours) = &ways[0] else { continue };
        for (w, s) in ways.iter().enumerate() {
            let Some(s) = s else { continue };
            println!(
                "| {n} | {} | {} | {} | {} |",
                WAYS[w],
                wall_cell(s, 1.0, 2),
                cpu_cell(s, 1.0, 2),
                if w == 0 {
                    String::new()
                } else {
                    format!("**{:.1}×**", crate::measure::ratio(s, ours))
                }
            );
        }
    }
    println!("\nCost per extra container (slope of the median wall between the smallest and the largest size measured):\n");
    println!("| way | sizes | ms per container |");
    println!("| --- | --- | ---: |");
    for (w, name) in WAYS.iter().enumerate() {
        let pts: Vec<(u32, f64)> = rows
            .iter()
            .filter_map(|(n, ways)| {
                ways[w]
                    .as_ref()
                    .map(|s| (*n, min_med(&s.iter().map(|x| x.wall).collect::<Vec<_>>()).1))
            })
            .collect();
        if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
            if b.0 > a.0 {
                println!(
                    "| {name} | {}–{} | {:.1} |",
                    a.0,
                    b.0,
                    (b.1 - a.1) * 1000.0 / f64::from(b.0 - a.0)
                );
            }
        }
    }
    println!();
}
