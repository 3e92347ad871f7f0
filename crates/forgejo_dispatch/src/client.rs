//! The Forgejo API calls `redeploy_trigger` needs, on httpx: version, workflow file contents,
//! dispatch (sent exactly once), run status (v12+) and the tasks list (v11 best effort).

use ansible_module::{Opt, Secret};
use base64::Engine;
use httpx::{ApiFailure, Body, Client, HttpConfig, HttpError, Response, Retry};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where Forgejo looks for workflow files, in order; only the first directory that exists counts.
pub const WORKFLOW_DIRS: [&str; 3] = [
    ".forgejo/workflows",
    ".gitea/workflows",
    ".github/workflows",
];

#[derive(Debug, thiserror::Error)]
pub enum ForgejoError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "Forgejo at {url} refused the token (HTTP 401{detail}): check `token` / FORGEJO_TOKEN"
    )]
    Unauthorized { url: String, detail: String },
    #[error("Forgejo at {url} denied {what} (HTTP 403: {detail}): the token needs the write:repository scope and its user write access to the repository's Actions")]
    Forbidden {
        url: String,
        what: String,
        detail: String,
    },
    #[error("{what}: Forgejo answered HTTP {status}{detail}")]
    Api {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: Forgejo answered with JSON that does not have the expected shape ({detail})")]
    Shape { what: String, detail: String },
    #[error("`repo` must be `owner/name`, got {0:?}")]
    BadRepo(String),
    #[error("{0}")]
    DotSegment(String),
}

/// The connection options of a Forgejo repository, flattened into a module's params.
#[derive(Debug, Deserialize)]
pub struct ForgejoConn {
    pub url: String,
    pub token: Secret,
    pub repo: String,
    pub validate_certs: bool,
    pub ca_cert: Option<PathBuf>,
    pub timeout: u64,
    /// Further attempts for safe requests (never for a dispatch).
    pub retries: u32,
}

/// The options behind [`ForgejoConn`].
pub fn conn_options() -> Vec<Opt> {
    vec![
        Opt::str("url")
            .env("FORGEJO_URL")
            .required()
            .help("Forgejo base URL, e.g. https://forgejo.example.org"),
        Opt::str("token")
            .env("FORGEJO_TOKEN")
            .required()
            .no_log()
            .help("Access token with write:repository"),
        Opt::str("repo")
            .required()
            .help("Repository holding the workflows, as owner/name"),
        Opt::bool("validate_certs")
            .default(true)
            .help("Verify the server's TLS certificate"),
        Opt::path("ca_cert")
            .env("FORGEJO_CACERT")
            .help("PEM CA file to trust for the server"),
        // `timeout` is the per-request HTTP timeout in every module; `request_timeout`, this
        // module's name for it in 1.0.0, still works.
        Opt::int("timeout")
            .alias("request_timeout")
            .default(30)
            .range(1, 3600)
            .help("Seconds for one HTTP request"),
        Opt::int("retries").default(3).help(
            "Further attempts (0-10, with backoff) for status reads after a connection error or HTTP 429/5xx; a dispatch is never repeated",
        ),
    ]
}

/// A dispatch's answer: the run (v11+ with `return_run_info`) or nothing (204).
#[derive(Debug, Clone, Deserialize)]
pub struct DispatchedRun {
    pub id: i64,
    #[serde(default)]
    pub run_number: i64,
    #[serde(default)]
    pub jobs: Vec<String>,
}

/// The fields of an `ActionRun` used for waiting.
#[derive(Debug, Clone, Deserialize)]
pub struct RunState {
    pub id: i64,
    pub status: String,
    #[serde(default)]
    pub html_url: String,
    #[serde(default)]
    pub index_in_repo: i64,
    /// Nanoseconds; absent while zero.
    #[serde(default)]
    pub duration: Option<i64>,
}

/// A task of `GET …/actions/tasks`.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    #[serde(default)]
    pub run_number: i64,
    #[serde(default)]
    pub workflow_id: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Deserialize)]
struct TaskList {
    #[serde(default)]
    workflow_runs: Vec<Task>,
}

#[derive(Debug, Deserialize)]
struct ContentsFile {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

/// A client for one repository.
#[derive(Clone)]
pub struct Forgejo {
    http: Client,
    auth: String,
    owner: String,
    repo: String,
}

fn seg(s: &str) -> String {
    httpx::encode(s)
}

impl Forgejo {
    pub fn new(s: &ForgejoConn) -> Result<Self, ForgejoError> {
        let (owner, repo) = match s.repo.split_once('/') {
            Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => (o, r),
            _ => return Err(ForgejoError::BadRepo(s.repo.clone())),
        };
        // Owner and name are path segments of every API URL.
        httpx::check_segments("repo", &s.repo).map_err(ForgejoError::DotSegment)?;
        let mut cfg = HttpConfig::new("Forgejo", s.url.clone());
        cfg.validate_certs = s.validate_certs;
        cfg.ca_cert = s.ca_cert.clone();
        cfg.timeout = Duration::from_secs(s.timeout.max(1));
        cfg.retries = s.retries;
        let auth = format!("token {}", s.token.expose());
        ansible_module::register_secret(&auth);
        Ok(Forgejo {
            http: Client::new(cfg)?,
            auth,
            owner: owner.to_string(),
            repo: repo.to_string(),
        })
    }

    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// Requests sent so far (attempts included).
    pub fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    fn repo_path(&self) -> String {
        format!("/api/v1/repos/{}/{}", seg(&self.owner), seg(&self.repo))
    }

    /// The web URL of a run: `{base}/{owner}/{repo}/actions/runs/{run_number}`.
    pub fn run_url(&self, run_number: i64) -> String {
        format!(
            "{}/{}/{}/actions/runs/{run_number}",
            self.base_url(),
            seg(&self.owner),
            seg(&self.repo)
        )
    }

    /// The web URL of a workflow's runs (when no run number is known, v8–v10).
    pub fn workflow_url(&self, file: &str) -> String {
        format!(
            "{}/{}/{}/actions?workflow={}",
            self.base_url(),
            seg(&self.owner),
            seg(&self.repo),
            seg(file)
        )
    }

    fn get(&self, path: &str) -> Result<Response, ForgejoError> {
        Ok(self.http.send(
            "GET",
            path,
            &[
                ("Authorization", &self.auth),
                ("Accept", "application/json"),
            ],
            Body::None,
            Retry::Safe,
        )?)
    }

    fn error(&self, what: &str, resp: &Response) -> ForgejoError {
        let message = resp.json::<Value>().ok().and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(httpx::safe_text)
        });
        let detail = match &message {
            Some(m) if !m.is_empty() => format!(": {m}"),
            Some(_) => " with an empty message".into(),
            None if resp.body.is_empty() => String::new(),
            None => format!(": {}", resp.safe_text()),
        };
        match resp.status {
            401 => ForgejoError::Unauthorized {
                url: self.base_url().to_string(),
                detail,
            },
            403 => ForgejoError::Forbidden {
                url: self.base_url().to_string(),
                what: what.to_string(),
                detail: message.unwrap_or_default(),
            },
            status => ForgejoError::Api {
                what: what.to_string(),
                status,
                detail,
            },
        }
    }

    /// `GET /api/v1/version`: the version string and its major.
    pub fn version(&self) -> Result<(String, u64), ForgejoError> {
        let what = "reading the Forgejo version";
        let resp = self.get("/api/v1/version")?;
        if !resp.is_success() {
            return Err(self.error(what, &resp));
        }
        let v: Value = resp.json().map_err(|e| ForgejoError::Shape {
            what: what.into(),
            detail: e.to_string(),
        })?;
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let major = version
            .trim_start_matches('v')
            .split(['.', '+', '-'])
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| ForgejoError::Shape {
                what: what.into(),
                detail: format!(
                    "version {:?} has no major number",
                    httpx::safe_text(&version)
                ),
            })?;
        Ok((version, major))
    }

    /// `GET …/contents/<path>?ref=`: `Ok(None)` when the path (or the ref) does not exist.
    pub fn file(&self, path: &str, git_ref: &str) -> Result<Option<String>, ForgejoError> {
        let what = format!("reading {path} at {git_ref}");
        let p: Vec<String> = path.split('/').map(seg).collect();
        let url = format!(
            "{}/contents/{}?ref={}",
            self.repo_path(),
            p.join("/"),
            seg(git_ref)
        );
        let resp = self.get(&url)?;
        if resp.status == 404 {
            return Ok(None);
        }
        if !resp.is_success() {
            return Err(self.error(&what, &resp));
        }
        let v: Value = resp.json().map_err(|e| ForgejoError::Shape {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        if v.is_array() {
            return Ok(None); // a directory
        }
        let f: ContentsFile = serde_json::from_value(v).map_err(|e| ForgejoError::Shape {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        let (Some(content), Some("base64")) = (f.content, f.encoding.as_deref()) else {
            return Ok(None);
        };
        let cleaned: String = content.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .map_err(|e| ForgejoError::Shape {
                what: what.clone(),
                detail: format!("content is not base64: {e}"),
            })?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ForgejoError::Shape {
                what,
                detail: "the file is not UTF-8 text".into(),
            })
    }

    /// Whether a directory (or, with `""`, the repository root at `git_ref`) exists.
    pub fn dir_exists(&self, path: &str, git_ref: &str) -> Result<bool, ForgejoError> {
        let p: Vec<String> = path.split('/').filter(|x| !x.is_empty()).map(seg).collect();
        let url = if p.is_empty() {
            format!("{}/contents?ref={}", self.repo_path(), seg(git_ref))
        } else {
            format!(
                "{}/contents/{}?ref={}",
                self.repo_path(),
                p.join("/"),
                seg(git_ref)
            )
        };
        let resp = self.get(&url)?;
        match resp.status {
            404 => Ok(false),
            s if (200..300).contains(&s) => {
                Ok(resp.json::<Value>().map(|v| v.is_array()).unwrap_or(false))
            }
            _ => Err(self.error(&format!("listing {path} at {git_ref}"), &resp)),
        }
    }

    /// `POST …/dispatches`, sent exactly once (a dispatch is not idempotent).
    pub fn dispatch(
        &self,
        file: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
        return_run_info: bool,
    ) -> Result<Option<DispatchedRun>, ForgejoError> {
        let what = format!("dispatching {file} at {git_ref}");
        let path = format!(
            "{}/actions/workflows/{}/dispatches",
            self.repo_path(),
            seg(file)
        );
        let mut body = json!({"ref": git_ref, "inputs": inputs});
        if return_run_info {
            body["return_run_info"] = json!(true);
        }
        let resp = self.http.send(
            "POST",
            &path,
            &[
                ("Authorization", &self.auth),
                ("Accept", "application/json"),
            ],
            Body::Json(body),
            Retry::Never,
        )?;
        match resp.status {
            204 => Ok(None),
            200 | 201 => resp
                .json::<DispatchedRun>()
                .map(Some)
                .map_err(|e| ForgejoError::Shape {
                    what,
                    detail: e.to_string(),
                }),
            _ => Err(self.error(&what, &resp)),
        }
    }

    /// `GET …/actions/runs/{id}` (v12+).
    pub fn run(&self, id: i64) -> Result<RunState, ForgejoError> {
        let what = format!("reading run {id}");
        let path = format!("{}/actions/runs/{id}", self.repo_path());
        match self.http.json::<RunState>(
            "GET",
            &path,
            &[
                ("Authorization", &self.auth),
                ("Accept", "application/json"),
            ],
            Body::None,
            Retry::Safe,
        ) {
            Ok(r) => Ok(r),
            Err(ApiFailure::Transport(HttpError::Decode { detail, .. })) => {
                Err(ForgejoError::Shape { what, detail })
            }
            Err(ApiFailure::Transport(e)) => Err(e.into()),
            Err(ApiFailure::Status(resp)) => Err(self.error(&what, &resp)),
        }
    }

    /// The newest tasks (`GET …/actions/tasks`, first page of 50), for v11 waiting.
    pub fn tasks(&self) -> Result<Vec<Task>, ForgejoError> {
        let what = "listing Actions tasks";
        let resp = self.get(&format!("{}/actions/tasks?limit=50", self.repo_path()))?;
        if !resp.is_success() {
            return Err(self.error(what, &resp));
        }
        resp.json::<TaskList>()
            .map(|l| l.workflow_runs)
            .map_err(|e| ForgejoError::Shape {
                what: what.into(),
                detail: e.to_string(),
            })
    }
}
