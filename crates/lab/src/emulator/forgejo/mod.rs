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

//!
//! One `route()` table here dispatches to the parts: `dispatch.rs` (workflow dispatch), `runs.rs`
//! (runs moving on wall-clock time, the runs and tasks APIs), `contents.rs` (refs and files) and
//! `workflow.rs` (workflow files, parsed on their own).

use crate::catalog::{self, Service};
use crate::emulator::{percent_decode, Emulator, Listener, Options, Request, Response};
use crate::error::{LabError, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod contents;
mod dispatch;
pub mod releases;
mod runs;
pub mod settings;
mod workflow;

pub use crate::emulator::LoggedRequest;
use runs::Run;

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

struct State {
    opts: ForgejoOpts,
    base_url: String,
    runs: Vec<Run>,
    next_id: i64,
    next_number: i64,
    behaviours: BTreeMap<String, Behaviour>,
    hooks: BTreeMap<String, Arc<Hook>>,
    inject: Option<Injected>,
    extras: Extras,
}

/// Releases with their assets, and the Actions secrets and variables (`releases.rs`, `settings.rs`).
pub type Extras = (releases::Releases, settings::Settings);

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
    state: Arc<Mutex<State>>,
    emulator: Emulator,
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
        let listener = Listener::bind(Options {
            workers: 4,
            // Release assets are uploaded whole (tarballs of the collection).
            max_body: 1 << 30,
            json_type: "application/json;charset=utf-8",
            ..Options::new("Forgejo emulator")
        })?;
        let state = Arc::new(Mutex::new(State {
            opts,
            base_url: listener.url().to_string(),
            runs: Vec::new(),
            next_id: 1001,
            next_number: 1,
            behaviours: BTreeMap::new(),
            hooks: BTreeMap::new(),
            inject: None,
            extras: Extras::default(),
        }));
        let mut emulator = {
            let state = state.clone();
            listener.serve(move |req| {
                let mut s = lock(&state);
                injected(&mut s, req).unwrap_or_else(|| route(&mut s, req))
            })?
        };
        {
            let state = state.clone();
            emulator.every(Duration::from_millis(20), move || runs::tick(&state))?;
        }
        Ok(Forgejo { state, emulator })
    }

    /// `http://127.0.0.1:<port>` (the `url` option of the module; also ROOT_URL).
    pub fn url(&self) -> &str {
        self.emulator.url()
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
        self.emulator.served()
    }
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.emulator.requests()
    }
    /// Logged requests whose path (query removed) equals `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> usize {
        self.emulator.count_requests(method, path)
    }
    /// Dispatch POSTs received for a workflow file (whatever their answer).
    pub fn dispatch_requests(&self, workflow: &str) -> usize {
        let path = {
            let s = lock(&self.state);
            format!(
                "/api/v1/repos/{}/{}/actions/workflows/{}/dispatches",
                s.opts.owner, s.opts.repo, workflow
            )
        };
        self.emulator
            .requests()
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
// HTTP

/// The injected failure for this request, if one is armed and applies (one use consumed).
fn injected(s: &mut State, req: &Request) -> Option<Response> {
    let (method, path) = (req.method.as_str(), req.path.as_str());
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
    let mut resp = api_error(s, status, message);
    if let Some(secs) = after {
        resp = resp.with_header("Retry-After", secs.to_string());
    }
    Some(resp)
}

fn api_error(s: &State, status: u16, message: &str) -> Response {
    Response::json(
        status,
        json!({"message": message, "url": format!("{}/api/swagger", s.base_url)}),
    )
}

fn not_found(s: &State, errors: &[String]) -> Response {
    Response::json(
        404,
        json!({
            "errors": errors,
            "message": "The target couldn't be found.",
            "url": format!("{}/api/swagger", s.base_url),
        }),
    )
}

/// A 500 as production Forgejo shows it to a non-admin: the message blanked.
fn hidden_500(s: &State) -> Response {
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

fn authenticate(s: &State, req: &Request) -> Auth {
    let presented = req.authorization(&["token", "bearer"]).or_else(|| {
        req.query
            .iter()
            .find(|(k, _)| k == "token" || k == "access_token")
            .map(|(_, v)| v.as_str())
    });
    match presented {
        None if req.header("authorization").is_some() => Auth::Bad,
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

/// The route table: `/api/v1/version`, then authentication, then the repository's routes.
fn route(s: &mut State, req: &Request) -> Response {
    let (method, path) = (req.method.as_str(), req.path.as_str());
    if let (Some(uuid), "GET") = (path.strip_prefix("/attachments/"), method) {
        // A release asset's browser_download_url; the repository is private.
        let authed = matches!(authenticate(s, req), Auth::Token(_));
        return extra(s, true, |ex, c| {
            releases::download(&mut ex.0, c, uuid, authed)
        });
    }
    if let Some((tag, name)) = release_download(s, path).filter(|_| method == "GET") {
        // The web route Forgejo 15 hands out as browser_download_url.
        let authed = matches!(authenticate(s, req), Auth::Token(_));
        let can_write = matches!(authenticate(s, req), Auth::Token(t) if t.can_write);
        return extra(s, can_write, |ex, c| {
            releases::download_by_name(&mut ex.0, c, &tag, &name, authed)
        });
    }
    let Some(api) = path.strip_prefix("/api/v1") else {
        return not_found(s, &[]);
    };
    if api == "/version" && method == "GET" {
        return Response::json(
            200,
            json!({"version": format!("{}+gitea-1.22.0", s.opts.version)}),
        );
    }
    let segs: Vec<&str> = api.trim_start_matches('/').split('/').collect();
    if segs.len() < 3 || segs[0] != "repos" {
        return not_found(s, &[]);
    }
    // Authentication comes before the repository lookup.
    let auth = authenticate(s, req);
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
            dispatch::dispatch(s, &token, &percent_decode(file), &req.body)
        }
        ("GET", ["actions", "runs"]) if v >= 12 => runs::list_runs(s, req),
        ("GET", ["actions", "runs", id]) if v >= 12 => runs::get_run(s, id),
        ("GET", ["actions", "tasks"]) if v >= 8 => runs::list_tasks(s, req),
        ("GET", ["contents", file_path @ ..]) => {
            let p: Vec<String> = file_path.iter().map(|x| percent_decode(x)).collect();
            contents::contents(s, &p.join("/"), req)
        }
        (_, ["releases", r @ ..]) => extra(s, token.can_write, |ex, c| {
            releases::api(&mut ex.0, c, method, r, &req.query, &req.body)
        }),
        (_, ["actions", r @ ..]) if matches!(r.first(), Some(&"secrets" | &"variables")) => {
            extra(s, token.can_write, |ex, c| {
                settings::api(&mut ex.1, c, method, r, &req.body)
            })
        }
        _ => not_found(s, &[]),
    }
}

/// `/{owner}/{repo}/releases/download/{tag}/{name}` of this repository: the tag and the name,
/// percent-decoded.
fn release_download(s: &State, path: &str) -> Option<(String, String)> {
    let prefix = format!("/{}/{}/releases/download/", s.opts.owner, s.opts.repo);
    let (tag, name) = path.strip_prefix(&prefix)?.split_once('/')?;
    (!tag.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (percent_decode(tag), percent_decode(name)))
}

/// Serves a request of `releases.rs` / `settings.rs`.
fn extra(
    s: &mut State,
    can_write: bool,
    f: impl FnOnce(&mut Extras, &releases::Ctx) -> releases::Answer,
) -> Response {
    use crate::emulator::Body;
    let (base_url, owner, repo) = (
        s.base_url.clone(),
        s.opts.owner.clone(),
        s.opts.repo.clone(),
    );
    let c = releases::Ctx {
        base_url: &base_url,
        owner: &owner,
        repo: &repo,
        can_write,
    };
    match f(&mut s.extras, &c) {
        releases::Answer::Json(status, v) => Response::json(status, v),
        releases::Answer::Empty(status) => Response::empty(status),
        releases::Answer::Bytes(status, b) => Response {
            status,
            body: Body::Bytes(b),
            headers: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        assert_eq!(parse_major("15.0.3+gitea-1.22.0"), Some(15));
        assert_eq!(parse_major("8.0.0"), Some(8));
    }
}
