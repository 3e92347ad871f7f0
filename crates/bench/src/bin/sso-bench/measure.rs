//! Timing whole processes and pairing them: every compared command runs once per round, in turn
//! (A B C … A B C …), so a machine that slows down during the run slows every command alike.

use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// One run of one command: wall seconds, and the CPU seconds (user + system) of the processes it
/// waited for, from the kernel's accounting of reaped children.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub wall: f64,
    pub cpu: f64,
}

impl std::ops::Sub for Sample {
    type Output = Sample;
    fn sub(self, o: Sample) -> Sample {
        Sample {
            wall: self.wall - o.wall,
            cpu: self.cpu - o.cpu,
        }
    }
}

impl Sample {
    pub fn scaled(self, by: f64) -> Sample {
        Sample {
            wall: self.wall * by,
            cpu: self.cpu * by,
        }
    }
}

/// User + system seconds of this process's reaped children (fields 16 and 17 of
/// /proc/self/stat, in clock ticks of 1/100 s on Linux).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // `after` starts at field 3, so cutime (16) and cstime (17) are at 13 and 14.
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

/// Runs `cmd` to its end (stdin empty, both streams captured) and times it.
pub fn timed(cmd: &mut Command) -> Result<(Sample, Output), String> {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let wall = t.elapsed().as_secs_f64();
    Ok((
        Sample {
            wall,
            cpu: children_cpu() - cpu0,
        },
        out,
    ))
}

/// The last lines of a failed command's output, for the error message.
pub fn tail(out: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(12)..].join(" / ")
}

/// `rounds` rounds of `n` commands run in turn; `run(i, round)` runs command `i` once.
/// Returns the samples per command, in round order.
pub fn alternate(
    rounds: usize,
    n: usize,
    mut run: impl FnMut(usize, usize) -> Result<Sample, String>,
) -> Result<Vec<Vec<Sample>>, String> {
    let mut out = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for (i, samples) in out.iter_mut().enumerate() {
            samples.push(run(i, round)?);
        }
    }
    Ok(out)
}

/// Minimum and median.
pub fn min_med(v: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    let med = if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    };
    (s[0], med)
}

/// "min / median" of the walls, in the given unit (1000 for ms).
pub fn wall_cell(v: &[Sample], unit: f64, digits: usize) -> String {
    let (a, b) = min_med(&v.iter().map(|s| s.wall * unit).collect::<Vec<_>>());
    format!("{a:.digits$} / {b:.digits$}")
}

/// "min / median" of the CPU seconds, in the given unit.
pub fn cpu_cell(v: &[Sample], unit: f64, digits: usize) -> String {
    let (a, b) = min_med(&v.iter().map(|s| s.cpu * unit).collect::<Vec<_>>());
    format!("{a:.digits$} / {b:.digits$}")
}

/// The median of the per-round ratios a / b (wall), taken pair by pair.
pub fn ratio(a: &[Sample], b: &[Sample]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.wall / y.wall).collect();
    min_med(&r).1
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// "load average (1, 5, 15 min) a b c at the start, d e f at the end", printed under a table.
pub struct Load(String);

impl Load {
    pub fn start() -> Load {
        Load(loadavg())
    }
    pub fn line(&self) -> String {
        format!(
            "Load average (1, 5, 15 min): {} at the start, {} at the end ({} CPU(s)).\n",
            self.0,
            loadavg(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        )
    }
}
