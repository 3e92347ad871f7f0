//! The `pocketid_logs` module: PocketID's log lines from Loki or `docker logs` (over SSH to the
//! Proxmox node), parsed in both of PocketID's formats, classified into documented failure kinds,
//! counted per client and redirect URI, and redacted before anything is returned; with
//! `audit: true`, the latest client authorizations from PocketID's audit log as evidence.
//! Contracts: `pocketid-logs-and-access.md`, `loki-api.md`. It never changes anything.

pub mod audit;
pub mod classify;
pub mod docker;
pub mod loki;
pub mod parse;
pub mod redact;
pub mod summary;
pub mod time;

use ansible_module::{Context, Failure, Module, Opt, Outcome, Secret};
use docker::{DockerRead, SshParams};
use loki::{Loki, LokiConfig, LokiError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use summary::{Summarizer, Summary};
use time::{format_rfc3339, Nanos, TimeSpec};

pub struct PocketIdLogs;

/// Where the lines come from (the `source` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Auto,
    Loki,
    Docker,
}

#[derive(Debug, Deserialize)]
pub struct Params {
    pub source: Source,
    pub since: String,
    pub until: Option<String>,
    pub loki_url: Option<String>,
    pub loki_selector: String,
    pub loki_tenant: Option<String>,
    pub loki_username: Option<String>,
    pub loki_password: Option<Secret>,
    pub loki_token: Option<Secret>,
    pub validate_certs: bool,
    pub ca_cert: Option<PathBuf>,
    pub timeout: u64,
    pub retries: u32,
    pub batch_size: usize,
    #[serde(flatten)]
    pub ssh: SshParams,
    pub vmid: i64,
    pub container: String,
    pub compose_service: Option<String>,
    pub max_events: usize,
    pub max_bytes: usize,
    pub pocketid_url: Option<String>,
    pub api_key: Option<Secret>,
    pub audit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("{which} {value:?} is neither a duration (90s, 15m, 1h, 7d, 2w) nor an RFC 3339 time (2026-08-20T10:00:00Z)")]
    BadTime { which: &'static str, value: String },
    #[error("the window is empty: since ({start}) is not before until ({end})")]
    EmptyWindow { start: String, end: String },
    #[error("source loki needs loki_url (env LOKI_ADDR)")]
    NoLokiUrl,
    #[error("source {0} needs ssh_host (the Proxmox node) for docker logs over SSH")]
    NoSshHost(&'static str),
    #[error("{loki}; the fallback to docker logs failed too: {docker}")]
    BothDown { loki: String, docker: String },
    #[error("{0}; set ssh_host (and vmid, container) to fall back to docker logs over SSH")]
    LokiDownNoFallback(String),
    #[error("audit: true needs pocketid_url (env POCKETID_URL) and api_key (env POCKETID_API_KEY), an admin's API key")]
    AuditNeedsApi,
}

impl Module for PocketIdLogs {
    const NAME: &'static str = "pocketid_logs";
    const ABOUT: &'static str =
        "Read PocketID's log from Loki or docker logs: failures classified, counted per client, redacted";
    type Params = Params;

    fn options() -> Vec<Opt> {
        let mut o = vec![
            Opt::str("source").choices(&["auto", "loki", "docker"]).default("auto").help(
                "auto: Loki, then docker logs over SSH when Loki is unreachable, answers 5xx or is not ready",
            ),
            Opt::str("since").default("1h").help("start of the window: a duration back from now (s m h d w: 90s, 15m, 1h, 7d) or an RFC 3339 time"),
            Opt::str("until").help("end of the window (same forms) [default: now]"),
            Opt::str("loki_url").env("LOKI_ADDR").help("Loki (or its gateway) base URL, e.g. https://loki.example.org (env LOKI_ADDR)"),
            Opt::str("loki_selector").default(r#"{job="auth", container="pocketid"}"#).help("LogQL stream selector of PocketID's lines"),
            Opt::str("loki_tenant").env("LOKI_ORG_ID").help("tenant, sent as X-Scope-OrgID (env LOKI_ORG_ID)"),
            Opt::str("loki_username").env("LOKI_USERNAME").help("basic authentication user, with loki_password (env LOKI_USERNAME)"),
            Opt::str("loki_password").env("LOKI_PASSWORD").no_log().help("basic authentication password (env LOKI_PASSWORD)"),
            Opt::str("loki_token").env("LOKI_BEARER_TOKEN").no_log().help("bearer token (env LOKI_BEARER_TOKEN)"),
            Opt::bool("validate_certs").default(true).help("verify Loki's and PocketID's TLS certificates"),
            Opt::path("ca_cert").help("PEM file of the CA that signed Loki's and PocketID's certificates"),
            Opt::int("timeout").default(30).range(1, 3600).help("seconds per HTTP request"),
            Opt::int("retries").default(3).range(0, 10).help("further attempts of a read after a connection error or HTTP 429/5xx/504 (with backoff; never after a 400)"),
            Opt::int("batch_size").default(1000).range(1, loki::MAX_BATCH as i64).help("lines per Loki request (Loki refuses more than 5000)"),
        ];
        o.extend(proxmox_ssh::prefixed_conn_options());
        o.extend([
            Opt::int("vmid")
                .default(123)
                .help("the LXC container (CT id) where PocketID's Docker container runs"),
            Opt::str("container")
                .default("pocketid")
                .help("the Docker container's name"),
            Opt::str("compose_service")
                .help("find the container by its Compose service (pocket-id) instead of container"),
            Opt::int("max_events")
                .default(50)
                .range(0, 10_000)
                .help("most events returned (the newest)"),
            Opt::int("max_bytes")
                .default(summary::DEFAULT_MAX_BYTES as i64)
                .range(1024, 1 << 32)
                .help("most bytes of log text read (memory bound); reading stops there with a warning. docker logs output is also capped at 1 MiB by the SSH transport"),
            // `url` as in the other PocketID modules, so group/homelab.sso.pocketid can carry it.
            Opt::str("pocketid_url")
                .alias("url")
                .env("POCKETID_URL")
                .help("PocketID base URL, for audit (alias url; env POCKETID_URL)"),
            Opt::str("api_key")
                .env("POCKETID_API_KEY")
                .no_log()
                .help("an admin's API key, for audit (env POCKETID_API_KEY)"),
            Opt::bool("audit").default(false).help(
                "also return the latest client authorization per client from PocketID's audit log",
            ),
        ]);
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        run(p, ctx)
    }
}

/// The window `[start, end)` in nanoseconds, from `since` and `until`.
fn window(p: &Params, now: Nanos) -> Result<(TimeSpec, Option<TimeSpec>, Nanos, Nanos), LogsError> {
    let since = TimeSpec::parse(&p.since).ok_or_else(|| LogsError::BadTime {
        which: "since",
        value: p.since.clone(),
    })?;
    let until = match p.until.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(TimeSpec::parse(u).ok_or_else(|| LogsError::BadTime {
            which: "until",
            value: u.to_string(),
        })?),
        None => None,
    };
    let start = since.resolve(now);
    let end = until.map_or(now, |u| u.resolve(now));
    if start >= end {
        return Err(LogsError::EmptyWindow {
            start: format_rfc3339(start),
            end: format_rfc3339(end),
        });
    }
    Ok((since, until, start, end))
}

/// Lines read, and from where.
struct Read {
    source: &'static str,
    fallback: Option<String>,
    summary: Summary,
    detail: (&'static str, String),
}

fn loki_config(p: &Params, url: &str) -> LokiConfig {
    LokiConfig {
        url: url.to_string(),
        selector: p.loki_selector.clone(),
        tenant: p.loki_tenant.clone(),
        username: p.loki_username.clone().filter(|u| !u.is_empty()),
        password: p.loki_password.clone(),
        token: p.loki_token.clone(),
        validate_certs: p.validate_certs,
        ca_cert: p.ca_cert.clone(),
        timeout: p.timeout,
        retries: p.retries,
        batch_size: p.batch_size,
    }
}

fn read_loki(
    p: &Params,
    url: &str,
    start: Nanos,
    end: Nanos,
    ctx: &mut Context,
) -> Result<Read, LokiError> {
    let loki = Loki::new(&loki_config(p, url))?;
    ctx.progress("asking Loki whether it is ready");
    loki.ready()?;
    ctx.progress("reading PocketID's lines from Loki");
    let mut sink = Summarizer::new(p.max_bytes);
    let r = loki.query_range(start, end, &mut sink)?;
    ctx.progress_done();
    for w in r.warnings {
        ctx.warn(w);
    }
    Ok(Read {
        source: "loki",
        fallback: None,
        summary: sink.finish(),
        detail: ("query", loki.query().to_string()),
    })
}

fn read_docker(
    p: &Params,
    since: TimeSpec,
    until: Option<TimeSpec>,
    ctx: &mut Context,
) -> Result<Read, Failure> {
    let req = DockerRead {
        ssh: &p.ssh,
        vmid: p.vmid,
        container: Some(p.container.as_str()).filter(|c| !c.is_empty()),
        compose_service: p.compose_service.as_deref().filter(|s| !s.is_empty()),
        since,
        until,
    };
    ctx.progress("reading docker logs over SSH");
    let r = docker::read(&req)?;
    ctx.progress_done();
    for w in r.warnings {
        ctx.warn(w);
    }
    let mut sink = Summarizer::new(p.max_bytes);
    for l in r.lines {
        if !sink.push(l) {
            break;
        }
    }
    Ok(Read {
        source: "docker",
        fallback: None,
        summary: sink.finish(),
        detail: ("container", r.container),
    })
}

fn has_ssh(p: &Params) -> bool {
    p.ssh.host().is_some()
}

/// Picks the source and reads: `auto` tries Loki and falls back to docker logs when Loki
/// cannot answer (never when it refuses: a 4xx is a configuration error to fix).
fn read_lines(
    p: &Params,
    (since, until, start, end): (TimeSpec, Option<TimeSpec>, Nanos, Nanos),
    ctx: &mut Context,
) -> Result<Read, Failure> {
    let url = p.loki_url.as_deref().filter(|u| !u.is_empty());
    match (p.source, url) {
        (Source::Loki, None) => Err(LogsError::NoLokiUrl.into()),
        (Source::Loki, Some(url)) => Ok(read_loki(p, url, start, end, ctx)?),
        (Source::Docker, _) | (Source::Auto, None) => {
            if !has_ssh(p) {
                let which = if p.source == Source::Docker {
                    "docker"
                } else {
                    "auto without loki_url"
                };
                return Err(LogsError::NoSshHost(which).into());
            }
            let mut r = read_docker(p, since, until, ctx)?;
            if p.source == Source::Auto {
                r.fallback = Some("no loki_url (LOKI_ADDR) given".into());
            }
            Ok(r)
        }
        (Source::Auto, Some(url)) => match read_loki(p, url, start, end, ctx) {
            Ok(r) => Ok(r),
            Err(e) if e.is_unavailable() => {
                let why = e.to_string();
                if !has_ssh(p) {
                    return Err(LogsError::LokiDownNoFallback(why).into());
                }
                let mut r = read_docker(p, since, until, ctx).map_err(|d| LogsError::BothDown {
                    loki: why.clone(),
                    docker: d.msg.clone(),
                })?;
                ctx.warn(format!(
                    "Loki could not answer, so the lines come from docker logs over SSH: {why}"
                ));
                r.fallback = Some(why);
                Ok(r)
            }
            Err(e) => Err(e.into()),
        },
    }
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    let now = time::now();
    let w = window(&p, now)?;
    let audit_conn = if p.audit {
        match (
            p.pocketid_url.as_deref().filter(|u| !u.is_empty()),
            &p.api_key,
        ) {
            (Some(url), Some(key)) => Some(audit_connection(&p, url, key)),
            _ => return Err(LogsError::AuditNeedsApi.into()),
        }
    } else {
        None
    };
    let read = read_lines(&p, w, ctx)?;
    let s = &read.summary;
    for warning in &s.warnings {
        ctx.warn(warning.clone());
    }
    let failures: usize = s.counts.values().sum();
    let counts_text = s
        .counts
        .iter()
        .map(|(k, n)| {
            format!(
                "{} {n}",
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Outcome::unchanged()
        .msg(format!(
            "read {} line(s) of PocketID's log from {} ({} to {}): {failures} failure(s){}",
            s.lines,
            read.source,
            format_rfc3339(w.2),
            format_rfc3339(w.3),
            if counts_text.is_empty() {
                String::new()
            } else {
                format!(" ({counts_text})")
            }
        ))
        .set("source", read.source)
        .set("fallback", json!(read.fallback))
        .computed(
            "window",
            json!({"start": format_rfc3339(w.2), "end": format_rfc3339(w.3)}),
        )
        .set(read.detail.0, read.detail.1);
    for (k, v) in s.fields(p.max_events) {
        out.insert(&k, v);
    }
    if let Some(conn) = audit_conn {
        match audit::latest_authorizations(&conn) {
            Ok(m) => out.insert("audit", Value::Object(m)),
            Err(e) => {
                ctx.warn(audit::failure_warning(&e));
                out.insert("audit", Value::Null);
            }
        }
    }
    Ok(out)
}

fn audit_connection(p: &Params, url: &str, key: &Secret) -> pocketid::Connection {
    pocketid::Connection {
        server: pocketid::Server {
            url: url.to_string(),
            validate_certs: p.validate_certs,
            ca_cert: p.ca_cert.clone(),
            timeout: p.timeout,
            retries: p.retries,
        },
        api_key: key.clone(),
    }
}
