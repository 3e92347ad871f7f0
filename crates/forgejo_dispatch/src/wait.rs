//! Waiting for dispatched runs: every run polled in its own thread until it ends, times out, is
//! not picked up by a runner, or Forgejo stops answering.

use crate::client::{self, Forgejo, ForgejoError};
use ansible_module::Context;
use httpx::HttpError;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A run's status: Forgejo's names, plus `dispatched` (no run id to follow, Forgejo before 11).
/// It serialises to the name Forgejo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunStatus {
    Dispatched,
    Waiting,
    Blocked,
    Running,
    Success,
    Failure,
    Cancelled,
    Skipped,
    /// Forgejo's own `unknown`, or the module's when it could not follow the run.
    Unknown,
    /// Any other status, kept as Forgejo sent it.
    Other(String),
}

impl RunStatus {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "dispatched" => RunStatus::Dispatched,
            "waiting" => RunStatus::Waiting,
            "blocked" => RunStatus::Blocked,
            "running" => RunStatus::Running,
            "success" => RunStatus::Success,
            "failure" => RunStatus::Failure,
            "cancelled" => RunStatus::Cancelled,
            "skipped" => RunStatus::Skipped,
            "unknown" => RunStatus::Unknown,
            other => RunStatus::Other(other.to_string()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            RunStatus::Dispatched => "dispatched",
            RunStatus::Waiting => "waiting",
            RunStatus::Blocked => "blocked",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
            RunStatus::Unknown => "unknown",
            RunStatus::Other(s) => s,
        }
    }

    fn is_done(&self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Failure | RunStatus::Cancelled | RunStatus::Skipped
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RunStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One dispatched run and what happened to it.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub file: String,
    pub inputs: BTreeMap<String, String>,
    pub id: Option<i64>,
    pub run_number: Option<i64>,
    pub jobs: Vec<String>,
    pub html_url: String,
    pub status: RunStatus,
    pub dispatched_at: Instant,
    pub duration: Option<f64>,
    /// Why it counts as failed (None: success or not waited for).
    pub problem: Option<String>,
    /// Set when the module stopped waiting because Forgejo stopped answering: the last error.
    pub lost_contact: Option<String>,
}

impl Tracked {
    pub(crate) fn to_json(&self) -> Value {
        let mut m = json!({
            "workflow": self.file,
            "run_id": self.id,
            "run_number": self.run_number,
            "html_url": self.html_url,
            "status": self.status,
            "duration": self.duration,
            "jobs": self.jobs,
            "inputs": self.inputs,
        });
        if let Some(p) = &self.problem {
            m["error"] = json!(p);
        }
        m
    }
}

/// How runs are waited for: the options, and the Forgejo major that decides how status is read.
pub(crate) struct Waiter<'a> {
    pub api: &'a Forgejo,
    pub major: u64,
    pub interval: Duration,
    pub timeout: Duration,
    pub pickup: Duration,
    pub skipped_is_success: bool,
}

impl Waiter<'_> {
    /// Polls every run in its own thread until it ends, times out or is not picked up; shows
    /// progress. Returns as soon as the last run is settled: progress follows the runs' own
    /// status reports rather than a clock.
    pub(crate) fn wait_all(&self, tracked: &mut [Tracked], ctx: &Context) {
        let mut live: Vec<RunStatus> = tracked.iter().map(|t| t.status.clone()).collect();
        let (tx, rx) = mpsc::channel::<(usize, RunStatus)>();
        std::thread::scope(|scope| {
            for (i, t) in tracked.iter_mut().enumerate() {
                if t.id.is_none() {
                    continue;
                }
                let tx = tx.clone();
                scope.spawn(move || {
                    self.wait_one(t, |s| {
                        let _ = tx.send((i, s.clone()));
                    })
                });
            }
            // The loop below ends when every waiting thread has dropped its sender.
            drop(tx);
            for (i, status) in rx {
                live[i] = status;
                if ctx.interactive {
                    show_progress(&live, ctx);
                }
            }
            ctx.progress_done();
        });
    }

    fn wait_one(&self, t: &mut Tracked, report: impl Fn(&RunStatus)) {
        let Some(id) = t.id else { return };
        let mut picked_up = false;
        let window = lost_contact_window(self.interval);
        let mut outage: Option<Outage> = None;
        loop {
            let poll_started = Instant::now();
            let mut last_error: Option<String> = None;
            match self.poll(id, t) {
                Ok(status) => {
                    outage = None;
                    t.status = status;
                    report(&t.status);
                }
                Err(e @ (ForgejoError::Unauthorized { .. } | ForgejoError::Forbidden { .. })) => {
                    t.problem = Some(format!("could not be followed: {e}"));
                    t.status = RunStatus::Unknown;
                    return;
                }
                Err(e) if server_trouble(&e) => {
                    let now = Instant::now();
                    if Outage::record(&mut outage, poll_started, e.to_string(), now, window) {
                        if let Some(o) = &outage {
                            give_up_lost(self.api, t, o, now);
                        }
                        return;
                    }
                    last_error = Some(e.to_string());
                }
                Err(e) => {
                    outage = None;
                    last_error = Some(e.to_string());
                }
            }
            if t.status == RunStatus::Running {
                picked_up = true;
            }
            if self.settle(t, picked_up, last_error.as_deref(), outage.as_ref()) {
                return;
            }
            // Never sleep past the pickup or timeout deadline: each is judged on a fresh status.
            let elapsed = t.dispatched_at.elapsed();
            let mut next = poll_delay(self.interval, elapsed);
            if !picked_up && self.pickup > elapsed {
                next = next.min(self.pickup - elapsed);
            }
            if self.timeout > elapsed {
                next = next.min(self.timeout - elapsed);
            }
            std::thread::sleep(next);
        }
    }

    /// One status request: the run itself (v12+), or its tasks (v11).
    fn poll(&self, id: i64, t: &mut Tracked) -> Result<RunStatus, ForgejoError> {
        if self.major >= 12 {
            self.api.run(id).map(|r| {
                if !r.html_url.is_empty() {
                    t.html_url = r.html_url.clone();
                }
                RunStatus::parse(&r.status)
            })
        } else {
            self.api.tasks().map(|tasks| tasks_status(&tasks, t))
        }
    }

    /// Whether the run is settled after a poll (ended, not picked up, timed out), with its
    /// duration and problem set.
    fn settle(
        &self,
        t: &mut Tracked,
        picked_up: bool,
        last_error: Option<&str>,
        outage: Option<&Outage>,
    ) -> bool {
        if t.status.is_done() {
            t.duration = Some(round1(t.dispatched_at.elapsed()));
            t.problem = match &t.status {
                RunStatus::Success => None,
                RunStatus::Skipped if self.skipped_is_success => None,
                RunStatus::Skipped => Some(
                    "was skipped (every job's `if:` was false; set skipped_is_success to accept)"
                        .into(),
                ),
                RunStatus::Failure => Some("failed".into()),
                other => Some(format!("ended {other}")),
            };
            return true;
        }
        let elapsed = t.dispatched_at.elapsed();
        let status = t.status.clone();
        // Only a status just read counts: after a failed request it is stale.
        if last_error.is_none()
            && !picked_up
            && matches!(
                status,
                RunStatus::Waiting | RunStatus::Blocked | RunStatus::Unknown
            )
            && elapsed >= self.pickup
        {
            t.problem = Some(format!(
                "no runner picked it up within {}s (still {status}; check that a runner with the job's runs-on label is online)",
                self.pickup.as_secs()
            ));
            return true;
        }
        if elapsed < self.timeout {
            return false;
        }
        if let Some(o) = outage {
            give_up_lost(self.api, t, o, Instant::now());
            return true;
        }
        let secs = self.timeout.as_secs();
        t.problem = Some(match last_error {
            Some(e) => format!("timed out after {secs}s; the last status request failed: {e}"),
            None if picked_up => format!("timed out running after {secs}s (still {status})"),
            None => format!("timed out after {secs}s (still {status})"),
        });
        true
    }
}

/// One progress line: how many runs are done, and how many are in each status.
fn show_progress(live: &[RunStatus], ctx: &Context) {
    let done = live.iter().filter(|s| s.is_done()).count();
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in live {
        *by.entry(s.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
    ctx.progress(&format!(
        "{done}/{} runs done: {}",
        live.len(),
        summary.join(", ")
    ));
}

/// Consecutive failed status requests (transport failure or 5xx) before the module stops
/// waiting on a run and reports it as `unknown`, provided [`lost_contact_window`] has passed too.
const LOST_CONTACT_POLLS: u32 = 3;
/// The shortest outage that counts as lost contact, whatever `poll_interval` is.
const LOST_CONTACT_MIN: Duration = Duration::from_secs(30);

/// How long status requests must keep failing (from the start of the first failed one) before
/// the module gives up on a run: max(3 × poll_interval, 30 s). A shorter outage is tolerated.
fn lost_contact_window(interval: Duration) -> Duration {
    interval
        .saturating_mul(LOST_CONTACT_POLLS)
        .max(LOST_CONTACT_MIN)
}

/// Whether a failed status request means the server is unreachable or broken (connection
/// refused, timeout, TLS, 5xx) rather than an answer about the run.
pub(crate) fn server_trouble(e: &ForgejoError) -> bool {
    match e {
        ForgejoError::Http(h) => match h {
            HttpError::Connect { .. }
            | HttpError::ConnectionLost { .. }
            | HttpError::Timeout { .. }
            | HttpError::Tls { .. }
            | HttpError::Other { .. } => true,
            HttpError::GaveUp { status, .. } => *status >= 500,
            HttpError::CaFile { .. }
            | HttpError::BadUrl { .. }
            | HttpError::BadHeader { .. }
            | HttpError::UrlCredentials { .. }
            | HttpError::Decode { .. } => false,
        },
        ForgejoError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A run of consecutive status requests that failed with [`server_trouble`].
#[derive(Debug, Clone)]
struct Outage {
    /// When the first failed request of the run of failures was started.
    since: Instant,
    polls: u32,
    last: String,
}

impl Outage {
    /// Records one more failed poll (started at `started`); true once the outage is long enough
    /// (both [`LOST_CONTACT_POLLS`] polls and `window`) to stop waiting.
    fn record(
        slot: &mut Option<Outage>,
        started: Instant,
        error: String,
        now: Instant,
        window: Duration,
    ) -> bool {
        let o = slot.get_or_insert(Outage {
            since: started,
            polls: 0,
            last: String::new(),
        });
        o.polls += 1;
        o.last = error;
        o.polls >= LOST_CONTACT_POLLS && now.saturating_duration_since(o.since) >= window
    }
}

/// Stops waiting on a run whose status Forgejo no longer gives.
fn give_up_lost(api: &Forgejo, t: &mut Tracked, o: &Outage, now: Instant) {
    let secs = now.saturating_duration_since(o.since).as_secs();
    t.status = RunStatus::Unknown;
    t.problem = Some(format!(
        "lost contact with Forgejo at {} while waiting ({} status request(s) in a row failed over {secs}s; the last: {}); the run was dispatched (id {}, {}) and may still be running: check it there",
        api.base_url(),
        o.polls,
        o.last,
        t.id.unwrap_or_default(),
        t.html_url
    ));
    t.lost_contact = Some(o.last.clone());
}

/// The shortest wait between two status requests of a run, and the one while the run is young.
const MIN_POLL_DELAY: Duration = Duration::from_millis(250);
/// Each wait is the run's age (since its dispatch) divided by this, so a run's end is seen at
/// most an eighth of its length late (a quarter was up to 0.4 s late for the lab's 2 s runs,
/// most of a rotation's time above its floor).
const AGE_DIVISOR: u32 = 8;

/// The wait before the next status request of a run that is `age` old: an eighth of its age,
/// at least 0.25 s and at most `interval` (`poll_interval`). Runs of a few seconds are seen
/// ending within 0.25 s of their end; a long run's requests thin out (each wait 1.125 times the
/// one before) until they are `interval` apart.
fn poll_delay(interval: Duration, age: Duration) -> Duration {
    (age / AGE_DIVISOR).max(MIN_POLL_DELAY).min(interval)
}

/// The most status requests one run costs when waited on for `secs` seconds (as documented for
/// `poll_interval`, P): the first one, one for the pickup deadline (which may cut a wait
/// short), and the waits to reach `secs`: 0.25 s ones up to an age of 2 s (⌈4 × secs⌉ when
/// shorter), then ⌈log1.125(min(secs, 8P) / 2)⌉ growing ones, then ⌈(secs − 8P) / P⌉ of P. With
/// P ≤ 0.25 every wait is P: ⌈secs / P⌉. HTTP retries of a failed request are not counted.
pub fn max_status_requests(poll_interval: f64, secs: f64) -> u64 {
    let (p, d) = (poll_interval, secs.max(0.0));
    let min = MIN_POLL_DELAY.as_secs_f64();
    let divisor = f64::from(AGE_DIVISOR);
    let ceil = |x: f64| x.ceil().max(0.0) as u64;
    let waits = if p <= min {
        ceil(d / p)
    } else if d <= divisor * min {
        ceil(d / min)
    } else {
        let growth = 1.0 + 1.0 / divisor;
        let grown = (d.min(divisor * p) / (divisor * min)).ln() / growth.ln();
        // A small margin for the float rounding of the logarithm.
        ceil(divisor * min / min) + ceil(grown - 1e-9) + ceil((d - divisor * p) / p)
    };
    2 + waits
}

fn round1(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// v11: a run's status from its tasks (best effort: tasks appear only once picked up).
fn tasks_status(tasks: &[client::Task], t: &Tracked) -> RunStatus {
    let mine: Vec<RunStatus> = tasks
        .iter()
        .filter(|x| Some(x.run_number) == t.run_number && x.workflow_id == t.file)
        .map(|x| RunStatus::parse(&x.status))
        .collect();
    if mine.is_empty() {
        return RunStatus::Waiting;
    }
    let pending = mine.iter().any(|x| !x.is_done());
    if pending || mine.len() < t.jobs.len().max(1) {
        return RunStatus::Running;
    }
    let any = |s: RunStatus| mine.contains(&s);
    if mine.iter().all(|x| *x == RunStatus::Skipped) {
        RunStatus::Skipped
    } else if any(RunStatus::Cancelled) {
        RunStatus::Cancelled
    } else if any(RunStatus::Failure) {
        RunStatus::Failure
    } else {
        RunStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request times of one run (0 = right after the dispatch) with each wait as
    /// [`poll_delay`] sets it, up to the first request at or after `end`.
    fn schedule(interval: f64, end: f64) -> Vec<f64> {
        let interval = Duration::from_secs_f64(interval);
        let end = Duration::from_secs_f64(end);
        let mut at = vec![Duration::ZERO];
        while *at.last().unwrap() < end {
            let last = *at.last().unwrap();
            at.push(last + poll_delay(interval, last));
        }
        at.iter().map(Duration::as_secs_f64).collect()
    }

    #[test]
    fn each_wait_is_an_eighth_of_the_runs_age_within_a_quarter_second_and_poll_interval() {
        let d = |ms| Duration::from_millis(ms);
        let five = Duration::from_secs(5);
        assert_eq!(poll_delay(five, d(0)), d(250));
        assert_eq!(poll_delay(five, d(1900)), d(250));
        assert_eq!(poll_delay(five, d(4000)), d(500));
        assert_eq!(poll_delay(five, d(24_000)), d(3000));
        assert_eq!(poll_delay(five, d(60_000)), five);
        assert_eq!(poll_delay(d(100), d(0)), d(100));
        assert_eq!(poll_delay(d(600), d(30_000)), d(600));
        // The lab's deploy runs: one ending at 1.87 s is seen at 2.0 s (a quarter of the age
        // saw it at 1.95 s, but one ending at 2.0 s only at 2.44 s; the waits that doubled up
        // to poll_interval saw both at 3.75 s).
        let at = schedule(5.0, 1.87);
        assert!((at.last().unwrap() - 2.0).abs() < 0.001, "{at:?}");
        assert_eq!(at.len(), 9, "{at:?}");
        let at = schedule(5.0, 2.05);
        assert!((at.last().unwrap() - 2.25).abs() < 0.001, "{at:?}");
    }

    /// A run's end is seen at most min(poll_interval, max(0.25 s, an eighth of the run's length))
    /// after it happens, for every poll_interval and run length (the schedule played out).
    #[test]
    fn a_runs_end_is_seen_within_an_eighth_of_its_length() {
        for interval in [0.1, 0.25, 0.3, 0.5, 1.0, 5.0, 7.0, 30.0, 60.0] {
            for tenths in 1..=3000 {
                let end = f64::from(tenths) / 10.0;
                let seen = *schedule(interval, end).last().unwrap();
                let late = interval.min((end / 8.0).max(0.25));
                assert!(
                    seen - end <= late + 1e-9,
                    "poll_interval {interval}, a run of {end}s seen at {seen}s"
                );
            }
        }
    }

    /// The documented bound holds for every poll_interval and run length.
    #[test]
    fn status_requests_per_run_stay_within_the_documented_bound() {
        for interval in [0.1, 0.2, 0.25, 0.3, 0.5, 1.0, 5.0, 7.0, 30.0, 60.0, 3600.0] {
            for tenths in 0..=6000 {
                let secs = f64::from(tenths) / 10.0;
                let requests = schedule(interval, secs).len() as u64;
                // One request is kept back for the pickup deadline.
                let bound = max_status_requests(interval, secs) - 1;
                assert!(
                    requests <= bound,
                    "poll_interval {interval}, {secs}s: {requests} > {bound}"
                );
            }
        }
        // The documented example: poll_interval 5, a 60 s run.
        assert_eq!(max_status_requests(5.0, 60.0), 40);
    }

    #[test]
    fn lost_contact_window_is_three_polls_but_at_least_30s() {
        assert_eq!(
            lost_contact_window(Duration::from_millis(500)),
            Duration::from_secs(30)
        );
        assert_eq!(
            lost_contact_window(Duration::from_secs(5)),
            Duration::from_secs(30)
        );
        assert_eq!(
            lost_contact_window(Duration::from_secs(20)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn an_outage_counts_only_after_three_polls_and_the_window() {
        let window = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut slot = None;
        // Many quick failures: not yet (window not over).
        for i in 0..10 {
            let now = t0 + Duration::from_secs(i);
            assert!(!Outage::record(&mut slot, now, "e".into(), now, window));
        }
        // Window over, and 3+ polls: lost.
        let now = t0 + Duration::from_secs(31);
        assert!(Outage::record(&mut slot, now, "last".into(), now, window));
        assert_eq!(slot.as_ref().map(|o| o.last.as_str()), Some("last"));
        // One or two failures spread over a long time are not enough.
        let mut slot = None;
        assert!(!Outage::record(&mut slot, t0, "e".into(), t0, window));
        let late = t0 + Duration::from_secs(100);
        assert!(!Outage::record(&mut slot, late, "e".into(), late, window));
        assert!(Outage::record(&mut slot, late, "e".into(), late, window));
    }

    #[test]
    fn server_trouble_is_transport_or_5xx_only() {
        let connect = ForgejoError::Http(HttpError::Connect {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            detail: "refused".into(),
        });
        let timeout = ForgejoError::Http(HttpError::Timeout {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            secs: 30,
        });
        let tls = ForgejoError::Http(HttpError::Tls {
            system: "Forgejo",
            url: "https://forgejo.example.org".into(),
            detail: "unknown issuer".into(),
        });
        let api = |status| ForgejoError::Api {
            what: "reading run 1".into(),
            status,
            detail: String::new(),
        };
        assert!(server_trouble(&connect));
        assert!(server_trouble(&timeout));
        assert!(server_trouble(&tls));
        assert!(server_trouble(&api(502)));
        assert!(server_trouble(&api(500)));
        assert!(!server_trouble(&api(404)));
        assert!(!server_trouble(&api(429)));
        assert!(!server_trouble(&ForgejoError::Shape {
            what: "reading run 1".into(),
            detail: "missing field".into(),
        }));
    }
}
