//! A Forgejo emulator for Actions `workflow_dispatch`, faithful to `contracts/forgejo-api.md`:
//! v15 by default, with older-version modes (`ForgejoOpts::version("13.0.0")`, `"11.0.0"`,
//! `"8.0.0"`, …) where the feature timeline of the contract applies (`return_run_info` from v11,
//! runs API from v12, `"true"` booleans from v14, `ref`/`workflow_id` filters from v15).
//!
//! Runs move `waiting → running → success|failure|cancelled|skipped` on wall-clock time, per
//! workflow [`Behaviour`]; a job whose `runs-on` is [`NO_RUNNER_LABEL`] (or a behaviour with
//! `no_runner`) stays `waiting`. A per-workflow [`Hook`] runs when a run starts executing; its error
//! makes the run fail (the lab uses it to re-render a service's `.env` from Vault). Every request is
//! logged as method + path + status (query tokens removed, never a header value).

use crate::catalog::{self, Service};
use crate::{LabError, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A `runs-on` label no runner serves: runs of such a workflow stay `waiting`.
pub const NO_RUNNER_LABEL: &str = "no-runner";
/// The token every default emulator accepts (`write:repository`, Actions write).
pub const DEFAULT_TOKEN: &str = "lab-forgejo-token-4f2a9c1e7b";
pub const DEFAULT_OWNER: &str = "homelab";
pub const DEFAULT_REPO: &str = "homelab-sso";
/// Where Forgejo looks for workflows, in order of precedence (only the first that exists counts).
pub const WORKFLOW_DIRS: [&str; 3] = [
    ".forgejo/workflows",
    ".gitea/workflows",
    ".github/workflows",
];

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl RunOutcome {
    fn status(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Failure => "failure",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Skipped => "skipped",
        }
    }
}

/// What the runs of one workflow do.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Time in `waiting` before a runner picks the run up.
    pub pickup: Duration,
    /// Time in `running`.
    pub duration: Duration,
    pub outcome: RunOutcome,
    /// No runner: the run stays `waiting`.
    pub no_runner: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            pickup: Duration::from_millis(100),
            duration: Duration::from_secs(1),
            outcome: RunOutcome::Success,
            no_runner: false,
        }
    }
}

impl Behaviour {
    pub fn lasting(duration: Duration) -> Self {
        Behaviour {
            duration,
            ..Default::default()
        }
    }
    pub fn outcome(mut self, outcome: RunOutcome) -> Self {
        self.outcome = outcome;
        self
    }
    pub fn no_runner() -> Self {
        Behaviour {
            no_runner: true,
            ..Default::default()
        }
    }
}

/// An access token the emulator accepts.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    /// `write:repository`, `read:repository`, `all`, …
    pub scopes: Vec<String>,
    /// Write permission on the repository's Actions unit.
    pub can_write: bool,
}

impl Token {
    pub fn new(value: &str, scopes: &[&str], can_write: bool) -> Self {
        Token {
            value: value.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            can_write,
        }
    }
}

/// A repository file map: path → content.
pub type Files = BTreeMap<String, String>;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct ForgejoOpts {
    /// Server version without the `+gitea-…` suffix, e.g. `15.0.3`.
    pub version: String,
    pub owner: String,
    pub repo: String,
    pub tokens: Vec<Token>,
    /// Branch → files at its head.
    pub branches: BTreeMap<String, Files>,
    /// Tag → the branch whose files it points at.
    pub tags: BTreeMap<String, String>,
    pub default_branch: String,
    pub archived: bool,
    /// Behaviour of workflows without their own.
    pub default_behaviour: Behaviour,
}

impl Default for ForgejoOpts {
    fn default() -> Self {
        let mut branches = BTreeMap::new();
        branches.insert("main".to_string(), repo_workflow_files());
        ForgejoOpts {
            version: "15.0.3".into(),
            owner: DEFAULT_OWNER.into(),
            repo: DEFAULT_REPO.into(),
            tokens: vec![Token::new(DEFAULT_TOKEN, &["write:repository"], true)],
            branches,
            tags: BTreeMap::new(),
            default_branch: "main".into(),
            archived: false,
            default_behaviour: Behaviour::default(),
        }
    }
}

impl ForgejoOpts {
    /// The default options in another version mode (`"13.0.0"`, `"11.0.0"`, `"8.0.0"`).
    pub fn version(version: &str) -> Self {
        ForgejoOpts {
            version: version.into(),
            ..Default::default()
        }
    }
    /// Adds or replaces a file on a branch (creating the branch).
    pub fn file(mut self, branch: &str, path: &str, content: &str) -> Self {
        self.branches
            .entry(branch.to_string())
            .or_default()
            .insert(path.to_string(), content.to_string());
        self
    }
    pub fn token(mut self, token: Token) -> Self {
        self.tokens.push(token);
        self
    }
}

/// The workflow files of this repository (`.forgejo/workflows/*.yml`), keyed by repo path.
pub fn repo_workflow_files() -> Files {
    let mut files = Files::new();
    let dir = crate::tools::repo_root().join(".forgejo/workflows");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yml") || name.ends_with(".yaml") {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    files.insert(format!(".forgejo/workflows/{name}"), text);
                }
            }
        }
    }
    files
}

/// What a hook learns about the run that starts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: i64,
    pub run_number: i64,
    /// The workflow file name (`deploy-n8n.yml`).
    pub workflow_id: String,
    /// Full ref the run stores (`refs/heads/main`).
    pub git_ref: String,
    /// Inputs as the server resolved them (defaults filled in, booleans per version).
    pub inputs: BTreeMap<String, String>,
    /// YAML job ids.
    pub jobs: Vec<String>,
}

/// Runs when a run starts executing; an error makes the run fail.
pub type Hook = Box<dyn Fn(&RunInfo) -> std::result::Result<(), String> + Send + Sync>;

/// One logged request: never a header value, and query tokens removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A run as a test sees it.
#[derive(Debug, Clone)]
pub struct RunSnapshot {
    pub info: RunInfo,
    pub status: String,
    /// The hook's error, if it failed the run.
    pub hook_error: Option<String>,
    /// From the dispatch that created the run to its end (None while it has not ended): the
    /// run's real length, for the benchmarks.
    pub lasted: Option<Duration>,
}

struct Job {
    id: String,
    name: String,
    no_runner: bool,
}

type HookSlot = Arc<Mutex<Option<std::result::Result<(), String>>>>;

struct Run {
    info: RunInfo,
    title: String,
    commit_sha: String,
    prettyref: String,
    job_list: Vec<Job>,
    behaviour: Behaviour,
    created: SystemTime,
    created_at: Instant,
    started: Option<(SystemTime, Instant)>,
    stopped: Option<SystemTime>,
    status: &'static str,
    hook_slot: Option<HookSlot>,
    hook_error: Option<String>,
}

struct State {
    opts: ForgejoOpts,
    base_url: String,
    runs: Vec<Run>,
    next_id: i64,
    next_number: i64,
    behaviours: BTreeMap<String, Behaviour>,
    hooks: BTreeMap<String, Arc<Hook>>,
    log: Vec<LoggedRequest>,
    inject: Option<Injected>,
    extras: Extras,
}

/// Releases and Actions settings (`forgejo_releases.rs`, `forgejo_settings.rs`).
type Extras = (
    crate::forgejo_releases::Releases,
    crate::forgejo_settings::Settings,
);

/// Failures injected with [`Forgejo::fail_next`] / [`Forgejo::fail_next_dispatches`].
#[derive(Debug, Clone)]
struct Injected {
    left: u32,
    status: u16,
    retry_after: Option<u64>,
    /// Only workflow dispatch POSTs, or every API request.
    dispatch_only: bool,
}

/// A running emulator; stopped on drop.
pub struct Forgejo {
    url: String,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Forgejo {
    /// Starts the emulator on a free 127.0.0.1 port.
    pub fn start(opts: ForgejoOpts) -> Result<Self> {
        if parse_major(&opts.version).is_none() {
            return Err(LabError::msg(format!(
                "bad Forgejo version {:?}",
                opts.version
            )));
        }
        let server = crate::http::loopback_server()
            .map_err(|e| LabError::msg(format!("starting the Forgejo emulator: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| LabError::msg("Forgejo emulator has no IP address"))?;
        let url = format!("http://127.0.0.1:{port}");
        let server = Arc::new(server);
        let state = Arc::new(Mutex::new(State {
            opts,
            base_url: url.clone(),
            runs: Vec::new(),
            next_id: 1001,
            next_number: 1,
            behaviours: BTreeMap::new(),
            hooks: BTreeMap::new(),
            log: Vec::new(),
            inject: None,
            extras: Extras::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (server, state, stop, requests) = (
                server.clone(),
                state.clone(),
                stop.clone(),
                requests.clone(),
            );
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(req)) => {
                            requests.fetch_add(1, Ordering::SeqCst);
                            serve(&state, req);
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            }));
        }
        {
            let (state, stop) = (state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    tick(&state);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }));
        }
        Ok(Forgejo {
            url,
            state,
            requests,
            stop,
            server,
            threads,
        })
    }

    /// `http://127.0.0.1:<port>` (the `url` option of the module; also ROOT_URL).
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn token(&self) -> String {
        lock(&self.state)
            .opts
            .tokens
            .first()
            .map(|t| t.value.clone())
            .unwrap_or_default()
    }
    /// `owner/name`.
    pub fn repo(&self) -> String {
        let s = lock(&self.state);
        format!("{}/{}", s.opts.owner, s.opts.repo)
    }
    /// Behaviour of future runs of `workflow` (file name).
    pub fn set_behaviour(&self, workflow: &str, b: Behaviour) {
        lock(&self.state).behaviours.insert(workflow.to_string(), b);
    }
    /// A hook run when a run of `workflow` starts executing.
    pub fn set_hook(&self, workflow: &str, hook: Hook) {
        lock(&self.state)
            .hooks
            .insert(workflow.to_string(), Arc::new(hook));
    }
    /// Adds or replaces a file on a branch.
    pub fn set_file(&self, branch: &str, path: &str, content: &str) {
        lock(&self.state)
            .opts
            .branches
            .entry(branch.to_string())
            .or_default()
            .insert(path.to_string(), content.to_string());
    }
    /// The next `n` API requests (`/api/…`) answer `status` with a Forgejo-shaped error body
    /// (`{"message", "url"}`; a 500 with the message blanked, as Forgejo shows it to non-admins)
    /// and, when given, `Retry-After: <secs>`: a rate-limiting proxy (429) or a broken or
    /// restarting server (5xx). They are logged like other requests and change nothing.
    /// `n = 0` clears a previous switch.
    pub fn fail_next(&self, n: u32, status: u16, retry_after: Option<u64>) {
        self.inject(n, status, retry_after, false);
    }
    /// Like [`Forgejo::fail_next`], for workflow dispatch POSTs only (other requests are served).
    pub fn fail_next_dispatches(&self, n: u32, status: u16, retry_after: Option<u64>) {
        self.inject(n, status, retry_after, true);
    }
    fn inject(&self, n: u32, status: u16, retry_after: Option<u64>, dispatch_only: bool) {
        lock(&self.state).inject = (n > 0).then_some(Injected {
            left: n,
            status,
            retry_after,
            dispatch_only,
        });
    }
    /// The releases and the Actions secrets and variables, to inspect or change.
    pub fn with_extras<R>(&self, f: impl FnOnce(&mut Extras) -> R) -> R {
        f(&mut lock(&self.state).extras)
    }
    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.state).log.clone()
    }
    /// Logged requests whose path (query removed) equals `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }
    /// Dispatch POSTs received for a workflow file (whatever their answer).
    pub fn dispatch_requests(&self, workflow: &str) -> usize {
        let s = lock(&self.state);
        let path = format!(
            "/api/v1/repos/{}/{}/actions/workflows/{}/dispatches",
            s.opts.owner, s.opts.repo, workflow
        );
        s.log
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .count()
    }
    pub fn runs(&self) -> Vec<RunSnapshot> {
        lock(&self.state)
            .runs
            .iter()
            .map(|r| RunSnapshot {
                info: r.info.clone(),
                status: r.status.to_string(),
                hook_error: r.hook_error.clone(),
                lasted: r.stopped.and_then(|t| t.duration_since(r.created).ok()),
            })
            .collect()
    }
}

impl Drop for Forgejo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The deploy workflow file of each redeploy target, from the catalog.
pub fn deploy_workflows() -> Vec<(Service, String)> {
    catalog::services()
        .into_iter()
        .filter_map(|s| s.workflow.clone().map(|w| (s, w)))
        .collect()
}

pub fn parse_major(version: &str) -> Option<u64> {
    version
        .split(['.', '+', '-'])
        .next()?
        .trim_start_matches('v')
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Run progress

fn tick(state: &Arc<Mutex<State>>) {
    let mut s = lock(state);
    let now = Instant::now();
    let hooks = s.hooks.clone();
    for run in s.runs.iter_mut() {
        match run.status {
            "waiting" => {
                let stuck = run.behaviour.no_runner || run.job_list.iter().any(|j| j.no_runner);
                if !stuck && now >= run.created_at + run.behaviour.pickup {
                    run.status = "running";
                    run.started = Some((SystemTime::now(), now));
                    if let Some(hook) = hooks.get(&run.info.workflow_id) {
                        let slot = Arc::new(Mutex::new(None));
                        let (hook, slot2, info) = (hook.clone(), slot.clone(), run.info.clone());
                        std::thread::spawn(move || {
                            let r = hook(&info);
                            *slot2.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        });
                        run.hook_slot = Some(slot);
                    }
                }
            }
            "running" => {
                let started = run.started.map(|(_, i)| i).unwrap_or(now);
                if now < started + run.behaviour.duration {
                    continue;
                }
                let hook_result = match &run.hook_slot {
                    None => Some(Ok(())),
                    Some(slot) => slot.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                };
                match hook_result {
                    None => continue,
                    Some(Ok(())) => run.status = run.behaviour.outcome.status(),
                    Some(Err(e)) => {
                        run.status = "failure";
                        run.hook_error = Some(e);
                    }
                }
                run.stopped = Some(SystemTime::now());
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Reply {
    status: u16,
    body: Option<Value>,
    /// A binary body (a release asset download) instead of JSON.
    raw: Option<Vec<u8>>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            raw: None,
        }
    }
    fn empty(status: u16) -> Self {
        Reply {
            status,
            body: None,
            raw: None,
        }
    }
}

fn serve(state: &Arc<Mutex<State>>, mut req: tiny_http::Request) {
    let method = req.method().as_str().to_uppercase();
    let raw_url = req.url().to_string();
    let auth = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let mut body = Vec::new();
    let limit = crate::forgejo_releases::body_limit(&raw_url);
    let _ = req.as_reader().take(limit).read_to_end(&mut body);
    let (path, query) = match raw_url.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (raw_url.clone(), Vec::new()),
    };
    let mut retry_after = None;
    let reply = {
        let mut s = lock(state);
        let reply = match injected(&mut s, &method, &path) {
            Some((reply, after)) => {
                retry_after = after;
                reply
            }
            None => route(&mut s, &method, &path, &query, auth.as_deref(), &body),
        };
        let logged_query: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "token" && k != "access_token")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let logged_path = if logged_query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{}", logged_query.join("&"))
        };
        s.log.push(LoggedRequest {
            method: method.clone(),
            path: logged_path,
            status: reply.status,
        });
        reply
    };
    let retry_after = retry_after.map(|secs| secs.to_string());
    let mut headers = Vec::new();
    let body = match (reply.body, reply.raw) {
        (_, Some(bytes)) => {
            headers.push(("Content-Type", "application/octet-stream"));
            bytes
        }
        (Some(v), None) => {
            headers.push(("Content-Type", "application/json;charset=utf-8"));
            serde_json::to_vec(&v).unwrap_or_default()
        }
        (None, None) => Vec::new(),
    };
    if let Some(secs) = &retry_after {
        headers.push(("Retry-After", secs));
    }
    crate::http::respond(req, reply.status, &headers, &body);
}

/// The injected failure for this request, if one is armed and applies (one use consumed).
fn injected(s: &mut State, method: &str, path: &str) -> Option<(Reply, Option<u64>)> {
    let inj = s.inject.as_mut()?;
    let applies = if inj.dispatch_only {
        method == "POST" && path.starts_with("/api/v1/") && path.ends_with("/dispatches")
    } else {
        path.starts_with("/api/")
    };
    if !applies {
        return None;
    }
    let (status, after) = (inj.status, inj.retry_after);
    inj.left -= 1;
    if inj.left == 0 {
        s.inject = None;
    }
    let message = match status {
        500 => "",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "injected failure",
    };
    Some((api_error(s, status, message), after))
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn api_error(s: &State, status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"message": message, "url": format!("{}/api/swagger", s.base_url)}),
    )
}

fn not_found(s: &State, errors: &[String]) -> Reply {
    Reply::json(
        404,
        json!({
            "errors": errors,
            "message": "The target couldn't be found.",
            "url": format!("{}/api/swagger", s.base_url),
        }),
    )
}

/// A 500 as production Forgejo shows it to a non-admin: the message blanked.
fn hidden_500(s: &State) -> Reply {
    api_error(s, 500, "")
}

fn major(s: &State) -> u64 {
    parse_major(&s.opts.version).unwrap_or(15)
}

enum Auth {
    Anonymous,
    Bad,
    Token(Token),
}

fn authenticate(s: &State, header: Option<&str>, query: &[(String, String)]) -> Auth {
    let from_header = header.and_then(|h| {
        let (scheme, rest) = h.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
            Some(rest.trim().to_string())
        } else {
            None
        }
    });
    let presented = from_header.or_else(|| {
        query
            .iter()
            .find(|(k, _)| k == "token" || k == "access_token")
            .map(|(_, v)| v.clone())
    });
    match presented {
        None if header.is_some() => Auth::Bad,
        None => Auth::Anonymous,
        Some(t) => match s.opts.tokens.iter().find(|k| k.value == t) {
            Some(k) => Auth::Token(k.clone()),
            None => Auth::Bad,
        },
    }
}

fn has_scope(token: &Token, write: bool) -> bool {
    token
        .scopes
        .iter()
        .any(|sc| sc == "all" || sc == "write:repository" || (!write && sc == "read:repository"))
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    query: &[(String, String)],
    auth_header: Option<&str>,
    body: &[u8],
) -> Reply {
    if let (Some(uuid), "GET") = (path.strip_prefix("/attachments/"), method) {
        let authed = matches!(authenticate(s, auth_header, query), Auth::Token(_));
        return extra(s, true, |ex, c| {
            crate::forgejo_releases::download(&mut ex.0, c, uuid, authed)
        });
    }
    let Some(api) = path.strip_prefix("/api/v1") else {
        return not_found(s, &[]);
    };
    if api == "/version" && method == "GET" {
        return Reply::json(
            200,
            json!({"version": format!("{}+gitea-1.22.0", s.opts.version)}),
        );
    }
    let segs: Vec<&str> = api.trim_start_matches('/').split('/').collect();
    if segs.len() < 3 || segs[0] != "repos" {
        return not_found(s, &[]);
    }
    // Authentication comes before the repository lookup.
    let auth = authenticate(s, auth_header, query);
    let write = method != "GET";
    let token = match auth {
        Auth::Bad => {
            return api_error(s, 401, "user does not exist or the access token is invalid")
        }
        Auth::Anonymous if write => return api_error(s, 401, "token is required"),
        // The repository is private: anonymous readers do not see it.
        Auth::Anonymous => return not_found(s, &[]),
        Auth::Token(t) => t,
    };
    if !has_scope(&token, write) {
        let scope = if write {
            "write:repository"
        } else {
            "read:repository"
        };
        return api_error(
            s,
            403,
            &format!("token does not have at least one of required scope(s): [{scope}]"),
        );
    }
    if segs[1] != s.opts.owner || segs[2] != s.opts.repo {
        return not_found(s, &[]);
    }
    let rest = &segs[3..];
    let v = major(s);
    match (method, rest) {
        ("POST", ["actions", "workflows", file, "dispatches"]) if v >= 8 => {
            dispatch(s, &token, &pct_decode(file), body)
        }
        ("GET", ["actions", "runs"]) if v >= 12 => list_runs(s, query),
        ("GET", ["actions", "runs", id]) if v >= 12 => get_run(s, id),
        ("GET", ["actions", "tasks"]) if v >= 8 => list_tasks(s, query),
        (_, ["releases", r @ ..]) => extra(s, token.can_write, |ex, c| {
            crate::forgejo_releases::api(&mut ex.0, c, method, r, query, body)
        }),
        (_, ["actions", r @ ..]) if matches!(r.first(), Some(&"secrets" | &"variables")) => {
            extra(s, token.can_write, |ex, c| {
                crate::forgejo_settings::api(&mut ex.1, c, method, r, body)
            })
        }
        ("GET", ["contents", file_path @ ..]) => {
            let p: Vec<String> = file_path.iter().map(|x| pct_decode(x)).collect();
            contents(s, &p.join("/"), query)
        }
        _ => not_found(s, &[]),
    }
}

/// Serves a request of `forgejo_releases.rs` / `forgejo_settings.rs`.
fn extra(
    s: &mut State,
    can_write: bool,
    f: impl FnOnce(&mut Extras, &crate::forgejo_releases::Ctx) -> crate::forgejo_releases::Answer,
) -> Reply {
    use crate::forgejo_releases::Answer;
    let (base_url, owner, repo) = (
        s.base_url.clone(),
        s.opts.owner.clone(),
        s.opts.repo.clone(),
    );
    let c = crate::forgejo_releases::Ctx {
        base_url: &base_url,
        owner: &owner,
        repo: &repo,
        can_write,
    };
    match f(&mut s.extras, &c) {
        Answer::Json(status, v) => Reply::json(status, v),
        Answer::Empty(status) => Reply::empty(status),
        Answer::Bytes(status, b) => Reply {
            status,
            body: None,
            raw: Some(b),
        },
    }
}

// ----- refs and files -----

struct Resolved {
    branch: String,
    full_ref: String,
    prettyref: String,
}

fn commit_sha(branch: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("commit:{branch}").as_bytes());
    d.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

fn branch_of_sha<'a>(s: &'a State, sha: &str) -> Option<&'a String> {
    s.opts
        .branches
        .keys()
        .find(|b| commit_sha(b) == sha.to_ascii_lowercase())
}

/// `modules/git/repo_ref.go: ExpandRef` then the lookup. `Err(true)`: a full ref that does not
/// exist (404); `Err(false)`: a short ref that cannot be expanded (500).
fn resolve_ref(s: &State, r: &str) -> std::result::Result<Resolved, bool> {
    let r = if r.starts_with("heads/") || r.starts_with("tags/") {
        format!("refs/{r}")
    } else {
        r.to_string()
    };
    let branch = |b: &str| Resolved {
        branch: b.to_string(),
        full_ref: format!("refs/heads/{b}"),
        prettyref: b.to_string(),
    };
    let tag = |t: &str, b: &str| Resolved {
        branch: b.to_string(),
        full_ref: format!("refs/tags/{t}"),
        prettyref: t.to_string(),
    };
    if let Some(b) = r.strip_prefix("refs/heads/") {
        return if s.opts.branches.contains_key(b) {
            Ok(branch(b))
        } else {
            Err(true)
        };
    }
    if let Some(t) = r.strip_prefix("refs/tags/") {
        return s.opts.tags.get(t).map(|b| tag(t, b)).ok_or(true);
    }
    if r.starts_with("refs/") {
        return Err(true);
    }
    if let Some(b) = s.opts.tags.get(&r) {
        return Ok(tag(&r, b));
    }
    if s.opts.branches.contains_key(&r) {
        return Ok(branch(&r));
    }
    if r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()) {
        if let Some(b) = branch_of_sha(s, &r) {
            return Ok(Resolved {
                branch: b.clone(),
                full_ref: r.clone(),
                prettyref: r.clone(),
            });
        }
    }
    Err(false)
}

fn workflow_dir(files: &Files) -> Option<&'static str> {
    WORKFLOW_DIRS
        .iter()
        .copied()
        .find(|d| files.keys().any(|p| p.starts_with(&format!("{d}/"))))
}

fn contents(s: &State, path: &str, query: &[(String, String)]) -> Reply {
    let r = query
        .iter()
        .find(|(k, _)| k == "ref")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| s.opts.default_branch.clone());
    let resolved = match resolve_ref(s, &r) {
        Ok(x) => x,
        Err(_) => return not_found(s, &[format!("object does not exist [id: {r}, rel_path: ]")]),
    };
    let files = &s.opts.branches[&resolved.branch];
    let sha = commit_sha(&resolved.branch);
    let path = path.trim_matches('/');
    let entry = |p: &str, dir: bool| -> Value {
        let name = p.rsplit('/').next().unwrap_or(p);
        let self_url = format!(
            "{}/api/v1/repos/{}/{}/contents/{p}?ref={}",
            s.base_url, s.opts.owner, s.opts.repo, resolved.prettyref
        );
        let html = format!(
            "{}/{}/{}/src/branch/{}/{p}",
            s.base_url, s.opts.owner, s.opts.repo, resolved.branch
        );
        let blob_sha = {
            use sha2::Digest;
            let d =
                sha2::Sha256::digest(files.get(p).map(|c| c.as_bytes()).unwrap_or(p.as_bytes()));
            d.iter()
                .take(20)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let git_url = format!(
            "{}/api/v1/repos/{}/{}/git/{}/{blob_sha}",
            s.base_url,
            s.opts.owner,
            s.opts.repo,
            if dir { "trees" } else { "blobs" }
        );
        let mut m = json!({
            "name": name,
            "path": p,
            "sha": blob_sha,
            "last_commit_sha": sha,
            "last_commit_when": "2026-01-01T00:00:00Z",
            "type": if dir { "dir" } else { "file" },
            "size": files.get(p).map(|c| c.len()).unwrap_or(0),
            "encoding": null,
            "content": null,
            "target": null,
            "url": self_url,
            "html_url": html,
            "git_url": git_url,
            "download_url": null,
            "submodule_git_url": null,
            "_links": {"self": self_url, "git": git_url, "html": html},
        });
        if !dir {
            m["download_url"] = json!(format!(
                "{}/{}/{}/raw/branch/{}/{p}",
                s.base_url, s.opts.owner, s.opts.repo, resolved.branch
            ));
        }
        m
    };
    if let Some(content) = files.get(path) {
        let mut m = entry(path, false);
        m["encoding"] = json!("base64");
        m["content"] = json!(base64::engine::general_purpose::STANDARD.encode(content.as_bytes()));
        return Reply::json(200, m);
    }
    // A directory: list its direct children.
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut children: BTreeMap<String, bool> = BTreeMap::new();
    for p in files.keys() {
        if let Some(rest) = p.strip_prefix(&prefix) {
            match rest.split_once('/') {
                Some((d, _)) => children.insert(format!("{prefix}{d}"), true),
                None => children.insert(format!("{prefix}{rest}"), false),
            };
        }
    }
    if children.is_empty() && !path.is_empty() {
        return not_found(
            s,
            &[format!(
                "object does not exist [id: {sha}, rel_path: {path}]"
            )],
        );
    }
    Reply::json(
        200,
        Value::Array(children.iter().map(|(p, d)| entry(p, *d)).collect()),
    )
}

// ----- workflows -----

/// (key, description, required, default, type)
type InputDef = (String, Option<String>, bool, Option<String>, String);

struct WorkflowDef {
    name: Option<String>,
    /// (key, description, required, default, type)
    inputs: Vec<InputDef>,
    jobs: Vec<Job>,
}

fn yaml_scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_workflow(text: &str) -> Option<WorkflowDef> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let map = doc.as_mapping()?;
    let name = map.get("name").and_then(yaml_scalar);
    let mut inputs = Vec::new();
    if let Some(serde_yaml::Value::Mapping(on)) = map.get("on") {
        if let Some(serde_yaml::Value::Mapping(wd)) = on.get("workflow_dispatch") {
            if let Some(serde_yaml::Value::Mapping(ins)) = wd.get("inputs") {
                for (k, spec) in ins {
                    let Some(key) = yaml_scalar(k) else { continue };
                    let get = |f: &str| spec.as_mapping().and_then(|m| m.get(f));
                    inputs.push((
                        key,
                        get("description")
                            .and_then(yaml_scalar)
                            .filter(|d| !d.is_empty()),
                        get("required").and_then(|v| v.as_bool()).unwrap_or(false),
                        get("default").and_then(yaml_scalar),
                        get("type")
                            .and_then(yaml_scalar)
                            .unwrap_or_else(|| "string".into()),
                    ));
                }
            }
        }
    }
    let mut jobs = Vec::new();
    if let Some(serde_yaml::Value::Mapping(js)) = map.get("jobs") {
        for (k, job) in js {
            let Some(id) = yaml_scalar(k) else { continue };
            let jm = job.as_mapping();
            let labels: Vec<String> = match jm.and_then(|m| m.get("runs-on")) {
                Some(serde_yaml::Value::Sequence(seq)) => {
                    seq.iter().filter_map(yaml_scalar).collect()
                }
                Some(v) => yaml_scalar(v).into_iter().collect(),
                None => vec![],
            };
            jobs.push(Job {
                name: jm
                    .and_then(|m| m.get("name"))
                    .and_then(yaml_scalar)
                    .unwrap_or_else(|| id.clone()),
                id,
                no_runner: labels.iter().any(|l| l == NO_RUNNER_LABEL),
            });
        }
    }
    Some(WorkflowDef { name, inputs, jobs })
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn dispatch(s: &mut State, token: &Token, file: &str, body: &[u8]) -> Reply {
    if !token.can_write {
        return api_error(s, 403, "user should have a permission to write to a repo");
    }
    if s.opts.archived {
        return api_error(s, 423, "repo is archived");
    }
    // go-chi binding of api.DispatchWorkflowOption.
    let unmarshal =
        |s: &State, what: String| api_error(s, 422, &format!("[]: json: cannot unmarshal {what}"));
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return api_error(s, 422, &format!("[]: invalid JSON: {e}")),
    };
    let Value::Object(doc) = doc else {
        return unmarshal(
            s,
            format!(
                "{} into Go value of type structs.DispatchWorkflowOption",
                go_type(&doc)
            ),
        );
    };
    let git_ref = match doc.get("ref") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) => r.clone(),
        Some(other) => {
            return unmarshal(
                s,
                format!(
                    "{} into Go struct field DispatchWorkflowOption.ref of type string",
                    go_type(other)
                ),
            )
        }
    };
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    match doc.get("inputs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(x) => {
                        given.insert(k.clone(), x.clone());
                    }
                    Value::Null => {}
                    other => {
                        return unmarshal(
                            s,
                            format!(
                            "{} into Go struct field DispatchWorkflowOption.inputs of type string",
                            go_type(other)
                        ),
                        )
                    }
                }
            }
        }
        Some(other) => {
            return unmarshal(
                s,
                format!(
                "{} into Go struct field DispatchWorkflowOption.inputs of type map[string]string",
                go_type(other)
            ),
            )
        }
    }
    let return_run_info = match doc.get("return_run_info") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return unmarshal(
                s,
                format!(
                    "{} into Go struct field DispatchWorkflowOption.return_run_info of type bool",
                    go_type(other)
                ),
            )
        }
    };
    if git_ref.is_empty() {
        return api_error(s, 400, "ref is empty");
    }
    let resolved = match resolve_ref(s, &git_ref) {
        Ok(r) => r,
        Err(true) => {
            return api_error(
                s,
                404,
                &format!("object does not exist [id: {git_ref}, rel_path: ]"),
            )
        }
        Err(false) => return hidden_500(s), // could not expand reference
    };
    let files = &s.opts.branches[&resolved.branch];
    let ext_ok = file.ends_with(".yml") || file.ends_with(".yaml");
    let text = workflow_dir(files)
        .filter(|_| ext_ok)
        .and_then(|d| files.get(&format!("{d}/{file}")));
    let Some(wf) = text.and_then(|t| parse_workflow(t)) else {
        return hidden_500(s); // errors.New("workflow not found")
    };
    let v = major(s);
    let mut inputs = BTreeMap::new();
    for (key, desc, required, default, kind) in &wf.inputs {
        let mut val = given.get(key).cloned().filter(|x| !x.is_empty());
        if val.is_none() {
            val = default.clone().filter(|x| !x.is_empty());
        }
        let Some(mut val) = val else {
            if *required {
                let label = desc.clone().unwrap_or_else(|| key.clone());
                return api_error(s, 400, &format!("input required for '{label}'"));
            }
            continue;
        };
        if kind == "boolean" {
            val = if v <= 13 {
                (val == "on").to_string()
            } else if val == "on" {
                "true".into()
            } else {
                val
            };
        }
        inputs.insert(key.clone(), val);
    }
    let limit = if v >= 15 { 100 } else { 10 };
    if inputs.len() > limit {
        return hidden_500(s); // too many inputs
    }
    let id = s.next_id;
    let number = s.next_number;
    s.next_id += 1;
    s.next_number += 1;
    let mut job_ids: Vec<String> = wf.jobs.iter().map(|j| j.id.clone()).collect();
    if !job_ids.is_empty() {
        let k = (id as usize) % job_ids.len();
        job_ids.rotate_left(k); // Go map order: not the file's
    }
    let behaviour = s
        .behaviours
        .get(file)
        .cloned()
        .unwrap_or_else(|| s.opts.default_behaviour.clone());
    let info = RunInfo {
        id,
        run_number: number,
        workflow_id: file.to_string(),
        git_ref: resolved.full_ref.clone(),
        inputs,
        jobs: job_ids.clone(),
    };
    s.runs.push(Run {
        title: wf.name.clone().unwrap_or_else(|| file.to_string()),
        commit_sha: commit_sha(&resolved.branch),
        prettyref: resolved.prettyref.clone(),
        job_list: wf.jobs,
        behaviour,
        created: SystemTime::now(),
        created_at: Instant::now(),
        started: None,
        stopped: None,
        status: "waiting",
        hook_slot: None,
        hook_error: None,
        info,
    });
    if v >= 11 && return_run_info {
        Reply::json(
            201,
            json!({"id": id, "run_number": number, "jobs": job_ids}),
        )
    } else {
        Reply::empty(204)
    }
}

// ----- runs and tasks -----

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn user_json(s: &State) -> Value {
    json!({
        "id": 1,
        "login": "deploy-bot",
        "login_name": "",
        "full_name": "Deploy bot",
        "email": "deploy-bot@example.org",
        "avatar_url": format!("{}/avatars/deploy-bot", s.base_url),
        "html_url": format!("{}/deploy-bot", s.base_url),
        "language": "",
        "is_admin": false,
        "restricted": false,
        "active": true,
        "prohibit_login": false,
        "visibility": "public",
    })
}

fn repo_json(s: &State) -> Value {
    let full = format!("{}/{}", s.opts.owner, s.opts.repo);
    json!({
        "id": 7,
        "owner": {
            "id": 2, "login": s.opts.owner, "full_name": "", "email": "",
            "avatar_url": format!("{}/avatars/{}", s.base_url, s.opts.owner),
            "html_url": format!("{}/{}", s.base_url, s.opts.owner),
        },
        "name": s.opts.repo,
        "full_name": full,
        "description": "Homelab SSO rotation",
        "private": true,
        "fork": false,
        "archived": s.opts.archived,
        "html_url": format!("{}/{full}", s.base_url),
        "clone_url": format!("{}/{full}.git", s.base_url),
        "default_branch": s.opts.default_branch,
        "has_actions": true,
    })
}

fn run_json(s: &State, r: &Run) -> Value {
    let epoch = rfc3339(UNIX_EPOCH);
    let started = r
        .started
        .map(|(t, _)| rfc3339(t))
        .unwrap_or_else(|| epoch.clone());
    let stopped = r.stopped.map(rfc3339).unwrap_or_else(|| epoch.clone());
    let updated = r.stopped.or(r.started.map(|(t, _)| t)).unwrap_or(r.created);
    let payload = json!({
        "inputs": r.info.inputs,
        "ref": r.info.git_ref,
        "repository": {"full_name": format!("{}/{}", s.opts.owner, s.opts.repo)},
        "sender": {"login": "deploy-bot"},
        "workflow": r.info.workflow_id,
    });
    let mut m = json!({
        "id": r.info.id,
        "title": r.title,
        "repository": repo_json(s),
        "trigger_user": user_json(s),
        "ScheduleID": 0,
        "prettyref": r.prettyref,
        "is_ref_deleted": false,
        "commit_sha": r.commit_sha,
        "is_fork_pull_request": false,
        "need_approval": false,
        "approved_by": 0,
        "event": "workflow_dispatch",
        "event_payload": payload.to_string(),
        "trigger_event": "workflow_dispatch",
        "status": r.status,
        "started": started,
        "stopped": stopped,
        "created": rfc3339(r.created),
        "updated": rfc3339(updated),
        "html_url": format!("{}/{}/{}/actions/runs/{}", s.base_url, s.opts.owner, s.opts.repo, r.info.run_number),
        "index_in_repo": r.info.run_number,
        "workflow_id": r.info.workflow_id,
    });
    let dur = match (r.started, r.stopped) {
        (Some((st, _)), Some(sp)) => sp.duration_since(st).unwrap_or_default(),
        (Some((_, i)), None) => i.elapsed(),
        _ => Duration::ZERO,
    };
    if !dur.is_zero() {
        m["duration"] = json!(dur.as_nanos() as i64);
    }
    m
}

const STATUSES: [&str; 8] = [
    "unknown",
    "waiting",
    "running",
    "success",
    "failure",
    "cancelled",
    "skipped",
    "blocked",
];

fn paginate(query: &[(String, String)]) -> (usize, usize) {
    let q = |k: &str| {
        query
            .iter()
            .find(|(x, _)| x == k)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    let page = q("page").filter(|p| *p > 0).unwrap_or(1) as usize;
    let limit = match q("limit") {
        Some(l) if l > 0 => (l as usize).min(50),
        _ => 30,
    };
    (page, limit)
}

fn status_filter(s: &State, query: &[(String, String)]) -> std::result::Result<Vec<String>, Reply> {
    let mut out = Vec::new();
    for (_, v) in query.iter().filter(|(k, _)| k == "status") {
        if !STATUSES.contains(&v.as_str()) {
            return Err(api_error(s, 400, &format!("unknown status: {v}")));
        }
        out.push(v.clone());
    }
    Ok(out)
}

fn list_runs(s: &State, query: &[(String, String)]) -> Reply {
    let statuses = match status_filter(s, query) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = |k: &str| query.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    let v15 = major(s) >= 15;
    let mut runs: Vec<&Run> = s
        .runs
        .iter()
        .filter(|r| statuses.is_empty() || statuses.iter().any(|st| st == r.status))
        .filter(|_| q("event").is_none_or(|e| e == "workflow_dispatch"))
        .filter(|r| q("run_number").is_none_or(|n| n == r.info.run_number.to_string()))
        .filter(|r| q("head_sha").is_none_or(|h| h == r.commit_sha))
        .filter(|r| !v15 || q("ref").is_none_or(|x| x == r.info.git_ref))
        .filter(|r| !v15 || q("workflow_id").is_none_or(|w| w == r.info.workflow_id))
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.info.id));
    let total = runs.len();
    let (page, limit) = paginate(query);
    let items: Vec<Value> = runs
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|r| run_json(s, r))
        .collect();
    Reply::json(200, json!({"workflow_runs": items, "total_count": total}))
}

fn get_run(s: &State, id: &str) -> Reply {
    match id
        .parse::<i64>()
        .ok()
        .and_then(|id| s.runs.iter().find(|r| r.info.id == id))
    {
        Some(r) => Reply::json(200, run_json(s, r)),
        None => not_found(s, &[format!("run with id {id}: action run does not exist")]),
    }
}

fn list_tasks(s: &State, query: &[(String, String)]) -> Reply {
    let statuses = if major(s) >= 15 {
        match status_filter(s, query) {
            Ok(x) => x,
            Err(r) => return r,
        }
    } else {
        Vec::new()
    };
    // A task exists once a runner picked the job up.
    let mut tasks = Vec::new();
    for r in s.runs.iter().filter(|r| r.started.is_some()) {
        for (i, job) in r.job_list.iter().enumerate() {
            let id = r.info.id * 100 + i as i64;
            tasks.push((id, r, job));
        }
    }
    let tasks: Vec<_> = tasks
        .into_iter()
        .filter(|(_, r, _)| statuses.is_empty() || statuses.iter().any(|st| st == r.status))
        .collect();
    let total = tasks.len();
    let (page, limit) = paginate(query);
    let mut tasks = tasks;
    tasks.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
    let items: Vec<Value> = tasks
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(id, r, job)| {
            let started = r.started.map(|(t, _)| rfc3339(t)).unwrap_or_else(|| rfc3339(UNIX_EPOCH));
            json!({
                "id": id,
                "name": job.name,
                "head_branch": r.prettyref,
                "head_sha": r.commit_sha,
                "run_number": r.info.run_number,
                "event": "workflow_dispatch",
                "display_title": r.title,
                "status": r.status,
                "workflow_id": r.info.workflow_id,
                "url": format!("{}/{}/{}/actions/runs/{}", s.base_url, s.opts.owner, s.opts.repo, r.info.run_number),
                "created_at": rfc3339(r.created),
                "updated_at": rfc3339(r.stopped.unwrap_or(r.created)),
                "run_started_at": started,
            })
        })
        .collect();
    Reply::json(200, json!({"workflow_runs": items, "total_count": total}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
            "2026-05-28T20:26:40Z"
        );
    }

    #[test]
    fn majors() {
        assert_eq!(parse_major("15.0.3+gitea-1.22.0"), Some(15));
        assert_eq!(parse_major("8.0.0"), Some(8));
    }
}
