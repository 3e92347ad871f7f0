//! A Grafana Loki emulator (v3.7) faithful to `contracts/loki-api.md` §8's minimal surface: the
//! log side of what `sso-doctor` reads.
//!
//! `GET /ready`; `GET|POST /loki/api/v1/query_range` (a form-encoded POST too) with the LogQL
//! subset of `logql.rs`, `limit` over all streams together, `direction`, `start` inclusive and
//! `end` exclusive in every timestamp format of `params.rs`; `/loki/api/v1/query` (a log
//! selector there is the 400 Loki gives); `/labels`, `/label/<name>/values`, `/status/buildinfo`;
//! `POST /loki/api/v1/push` (JSON only). Errors are `text/plain; charset=utf-8` with Loki's texts.
//! As Loki 3 does on ingest, a `service_name` label is added and `detected_level` kept as
//! structured metadata, so one pushed stream may come back as several (one per level).
//! With a tenant configured, requests need `X-Scope-OrgID`; another tenant sees nothing.
//!
//! Test hooks: [`Loki::push`] seeds entries in-process, [`Loki::set_ready`] turns the server
//! "not ready" (503 on `/ready` and on queries), and dropping the emulator stops it (Loki down).

use crate::emulator::time::{now_ns, rfc3339_nano};
use crate::emulator::{parse_query, Body, Emulator, Listener, Options, Request, Response};
use crate::error::Result;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

mod logql;
mod params;

pub use crate::emulator::LoggedRequest;
use logql::Labels;

/// The version `/loki/api/v1/status/buildinfo` reports.
pub const VERSION: &str = "3.7.6";
/// What a not-ready Loki answers (`readyHandler`), on `/ready` and on queries.
pub const NOT_READY: &str = "Application is stopping";

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct LokiOptions {
    /// `Some` is `auth_enabled: true` with this tenant: requests need `X-Scope-OrgID`, and the
    /// in-process [`Loki::push`] stores under it. `None` is the shipped Docker config (tenant
    /// `fake`, the header ignored).
    pub tenant: Option<String>,
    /// `max_entries_limit_per_query` (Loki's default 5000).
    pub max_entries: usize,
}

impl Default for LokiOptions {
    fn default() -> Self {
        LokiOptions {
            tenant: None,
            max_entries: 5000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    tenant: String,
    /// Indexed labels, `service_name` included.
    labels: Labels,
    /// Structured metadata (`detected_level` and what a push sent).
    meta: Labels,
    ts: i128,
    line: String,
    /// Arrival order, which breaks timestamp ties.
    seq: u64,
}

struct State {
    opts: LokiOptions,
    ready: bool,
    entries: Vec<Entry>,
    seq: u64,
}

/// The running emulator; stopped on drop.
pub struct Loki {
    state: Arc<Mutex<State>>,
    emulator: Emulator,
}

impl std::fmt::Debug for Loki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loki").field("url", &self.url()).finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Loki {
    /// Starts the emulator on a free 127.0.0.1 port.
    pub fn start(opts: LokiOptions) -> Result<Loki> {
        let listener = Listener::bind(Options {
            json_type: "application/json; charset=UTF-8",
            text_type: "text/plain; charset=utf-8",
            ..Options::new("Loki emulator")
        })?;
        let state = Arc::new(Mutex::new(State {
            opts,
            ready: true,
            entries: Vec::new(),
            seq: 0,
        }));
        let emulator = {
            let state = Arc::clone(&state);
            listener.serve(move |req| route(&mut lock(&state), req))?
        };
        Ok(Loki { state, emulator })
    }

    /// `http://127.0.0.1:<port>` (Loki's API is under `/loki/api/v1`).
    pub fn url(&self) -> &str {
        self.emulator.url()
    }

    /// Stores one entry (in-process push; `ts_ns` in nanoseconds since the epoch) under the
    /// configured tenant, adding `service_name` and `detected_level` as Loki 3 does.
    pub fn push(&self, labels: &[(&str, &str)], ts_ns: u128, line: &str) {
        self.shipper().push(labels, ts_ns, line);
    }

    /// A handle that pushes into this Loki in-process, as a log shipper would (the PocketID
    /// emulator keeps one). Pushes still land after the emulator is dropped; nobody reads them.
    pub fn shipper(&self) -> LokiShipper {
        LokiShipper {
            state: Arc::clone(&self.state),
        }
    }
}

/// See [`Loki::shipper`].
#[derive(Clone)]
pub struct LokiShipper {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for LokiShipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LokiShipper")
    }
}

impl LokiShipper {
    /// As [`Loki::push`].
    pub fn push(&self, labels: &[(&str, &str)], ts_ns: u128, line: &str) {
        let mut st = lock(&self.state);
        let tenant = st.opts.tenant.clone().unwrap_or_else(|| "fake".into());
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        st.store(
            tenant,
            labels,
            Labels::new(),
            ts_ns as i128,
            line.to_string(),
        );
    }
}

impl Loki {
    /// `false`: `/ready` and every query answer 503 (a Loki starting up or stopping).
    pub fn set_ready(&self, ready: bool) {
        lock(&self.state).ready = ready;
    }

    /// Every request answered so far, oldest first (method, path with query, status).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.emulator.requests()
    }

    /// Entries stored so far.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where Loki 3 takes `service_name` from, first present wins (`pkg/validation/limits.go`).
const SERVICE_NAME_FROM: [&str; 12] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

impl State {
    fn store(
        &mut self,
        tenant: String,
        mut labels: Labels,
        mut meta: Labels,
        ts: i128,
        line: String,
    ) {
        if !labels.contains_key("service_name") {
            let service = SERVICE_NAME_FROM
                .iter()
                .find_map(|k| labels.get(*k).cloned())
                .unwrap_or_else(|| "unknown_service".into());
            labels.insert("service_name".into(), service);
        }
        meta.entry("detected_level".into())
            .or_insert_with(|| detected_level(&labels, &line).into());
        self.seq += 1;
        self.entries.push(Entry {
            tenant,
            labels,
            meta,
            ts,
            line,
            seq: self.seq,
        });
    }
}

/// Loki 3's level detection (`pkg/distributor/field_detection.go`, by code reading): a level
/// label, else the `level`-like field of a JSON or logfmt line, else keywords in the line.
fn detected_level(labels: &Labels, line: &str) -> &'static str {
    const KEYS: [&str; 8] = [
        "level", "LEVEL", "Level", "severity", "SEVERITY", "lvl", "LVL", "Lvl",
    ];
    let from_value = |v: &str| match v.to_ascii_lowercase().as_str() {
        "trace" | "trc" => Some("trace"),
        "debug" | "dbg" => Some("debug"),
        "info" | "inf" => Some("info"),
        "warn" | "wrn" | "warning" => Some("warn"),
        "error" | "err" => Some("error"),
        "critical" => Some("critical"),
        "fatal" => Some("fatal"),
        _ => None,
    };
    if let Some(l) = KEYS.iter().find_map(|k| labels.get(*k)) {
        if let Some(l) = from_value(l) {
            return l;
        }
    }
    let field = if line.starts_with('{') {
        serde_json::from_str::<Map<String, Value>>(line)
            .ok()
            .and_then(|m| {
                KEYS.iter()
                    .find_map(|k| m.get(*k)?.as_str().map(String::from))
            })
    } else if line.contains('=') {
        logql::logfmt(line).and_then(|f| {
            KEYS.iter()
                .find_map(|k| f.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone()))
        })
    } else {
        None
    };
    if let Some(l) = field.as_deref().and_then(from_value) {
        return l;
    }
    let has = |words: &[&str]| words.iter().any(|w| line.contains(w));
    if has(&["info", "INFO"]) {
        "info"
    } else if has(&["err:", "ERR:", "error", "ERROR"]) {
        "error"
    } else if has(&["warn:", "WARN:", "warning", "WARNING"]) {
        "warn"
    } else if has(&["CRITICAL:", "critical:"]) {
        "critical"
    } else if has(&["debug:", "DEBUG:"]) {
        "debug"
    } else {
        "unknown"
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn bad(msg: impl Into<String>) -> Response {
    error(400, msg)
}

/// Loki's `WriteError`: plain text, `nosniff`.
fn error(status: u16, msg: impl Into<String>) -> Response {
    Response::text(status, msg).with_header("X-Content-Type-Options", "nosniff")
}

/// The parameters of a GET's query string, or of a form-encoded POST body then its URL's
/// (Go's `ParseForm` order).
fn form(req: &Request) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let form_type = req.header("content-type").is_some_and(|c| {
        c.split(';').next().is_some_and(|b| {
            b.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if req.method == "POST" && form_type {
        out = parse_query(&String::from_utf8_lossy(&req.body));
    }
    out.extend(req.query.iter().cloned());
    out
}

fn get<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn route(st: &mut State, req: &Request) -> Response {
    let m = req.method.as_str();
    let path = req.path.trim_end_matches('/');
    if path == "/ready" && matches!(m, "GET" | "HEAD") {
        return if st.ready {
            Response::text(200, "ready\n")
        } else {
            error(503, NOT_READY)
        };
    }
    let Some(api) = path.strip_prefix("/loki/api/v1/") else {
        return error(404, "404 page not found\n");
    };
    let tenant = match &st.opts.tenant {
        None => "fake".to_string(),
        Some(_) => match req.header("x-scope-orgid").map(str::trim) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => return error(401, "no org id"),
        },
    };
    if api == "push" {
        return if m == "POST" {
            push(st, req, tenant)
        } else {
            error(405, "405 method not allowed\n")
        };
    }
    if !matches!(m, "GET" | "POST") {
        return error(405, "405 method not allowed\n");
    }
    if !st.ready {
        return error(503, NOT_READY);
    }
    let f = form(req);
    let segs: Vec<&str> = api.split('/').collect();
    match segs.as_slice() {
        ["query_range"] => query_range(st, &f, &tenant),
        ["query"] => instant(&f),
        ["labels"] => labels(st, &f, &tenant, None),
        ["label", name, "values"] => labels(st, &f, &tenant, Some(name)),
        ["status", "buildinfo"] => Response::json(
            200,
            json!({"version": VERSION, "revision": "5003600d", "branch": "HEAD",
                   "buildUser": "root@buildkitsandbox", "buildDate": "2026-08-05T09:12:44Z",
                   "goVersion": "go1.24.6"}),
        ),
        _ => error(404, "404 page not found\n"),
    }
}

fn instant(f: &[(String, String)]) -> Response {
    let q = get(f, "query").unwrap_or("");
    if logql::is_log_query(q) {
        return bad("log queries are not supported as an instant query type, please change your query to a range query type");
    }
    bad(format!(
        "parse error : the Loki emulator answers log queries only, not {q:?}"
    ))
}

/// Entries of `tenant` selected by `q` in `[start, end)`, each with its result labels.
fn select<'a>(
    st: &'a State,
    q: &logql::Query,
    tenant: &str,
    (start, end): (i128, i128),
) -> Vec<(Labels, &'a Entry)> {
    st.entries
        .iter()
        .filter(|e| e.tenant == tenant && e.ts >= start && e.ts < end && q.selects(&e.labels))
        .filter_map(|e| {
            let mut labels = e.labels.clone();
            labels.extend(e.meta.iter().map(|(k, v)| (k.clone(), v.clone())));
            q.pipeline(labels, &e.line).map(|l| (l, e))
        })
        .collect()
}

fn query_range(st: &State, f: &[(String, String)], tenant: &str) -> Response {
    let (start, end) = match params::bounds(get(f, "start"), get(f, "end"), get(f, "since")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    if end < start {
        return bad("end timestamp must not be before or equal to start time");
    }
    let limit = match params::limit(get(f, "limit")) {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    let backward = match params::backward(get(f, "direction")) {
        Ok(d) => d,
        Err(e) => return bad(e),
    };
    let q = match get(f, "query") {
        Some(q) if !q.trim().is_empty() => q,
        _ => return bad("parse error : syntax error: unexpected $end"),
    };
    let q = match logql::parse(q) {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    if limit > st.opts.max_entries {
        return bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {})",
            st.opts.max_entries
        ));
    }
    let started = std::time::Instant::now();
    let mut hits = select(st, &q, tenant, (start, end));
    let processed = hits.len();
    hits.sort_by_key(|(_, e)| (e.ts, e.seq));
    if backward {
        hits.reverse();
    }
    hits.truncate(limit);
    // Streams in order of their first entry; each keeps the direction's order.
    let mut streams: Vec<(Labels, Vec<Value>)> = Vec::new();
    for (labels, e) in &hits {
        let item = json!([e.ts.to_string(), e.line]);
        match streams.iter_mut().find(|(l, _)| l == labels) {
            Some((_, v)) => v.push(item),
            None => streams.push((labels.clone(), vec![item])),
        }
    }
    let result: Vec<Value> = streams
        .into_iter()
        .map(|(l, values)| json!({"stream": l, "values": values}))
        .collect();
    let bytes: usize = hits.iter().map(|(_, e)| e.line.len()).sum();
    let stats = stats(
        processed,
        hits.len(),
        bytes,
        started.elapsed().as_secs_f64(),
    );
    // Loki's own key order, and its HTML-escaped strings (`<` as `\u003c`).
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"streams","result":{},"stats":{}}}}}"#,
        html_escaped(&Value::Array(result)),
        stats
    );
    Response {
        status: 200,
        body: Body::RawJson(body),
        headers: Vec::new(),
    }
}

fn html_escaped(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The `stats` object's shape (numbers the emulator can know; the rest zero).
fn stats(processed: usize, returned: usize, bytes: usize, secs: f64) -> Value {
    let store = json!({"totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0,
        "queryReferencedStructuredMetadata": false,
        "chunk": {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 0,
                  "decompressedLines": 0, "compressedBytes": 0, "totalDuplicates": 0,
                  "postFilterLines": 0, "headChunkStructuredMetadataBytes": 0,
                  "decompressedStructuredMetadataBytes": 0}});
    let cache = json!({"entriesFound": 0, "entriesRequested": 0, "entriesStored": 0,
        "bytesReceived": 0, "bytesSent": 0, "requests": 0, "downloadTime": 0, "queryLengthServed": 0});
    json!({
        "summary": {"bytesProcessedPerSecond": 0, "linesProcessedPerSecond": 0,
            "totalBytesProcessed": bytes, "totalLinesProcessed": processed, "execTime": secs,
            "queueTime": 0, "subqueries": 0, "totalEntriesReturned": returned, "splits": 1,
            "shards": 1, "totalPostFilterLines": processed, "totalStructuredMetadataBytesProcessed": 0},
        "querier": {"store": store},
        "ingester": {"totalReached": 1, "totalChunksMatched": 0, "totalBatches": 1,
            "totalLinesSent": returned, "store": store},
        "cache": {"chunk": cache, "index": cache, "result": cache, "statsResult": cache,
            "volumeResult": cache, "seriesResult": cache, "labelResult": cache,
            "instantMetricResult": cache},
        "index": {"totalChunks": 0, "postFilterChunks": 0, "shardsDuration": 0, "usedBloomFilters": false}
    })
}

/// `/labels` (names) or `/label/<name>/values`, over the window and an optional `query`.
fn labels(st: &State, f: &[(String, String)], tenant: &str, name: Option<&str>) -> Response {
    let window = match params::bounds(get(f, "start"), get(f, "end"), get(f, "since")) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let query = match get(f, "query").filter(|q| !q.trim().is_empty()) {
        Some(q) => match logql::parse(q) {
            Ok(q) => Some(q),
            Err(e) => return bad(e),
        },
        None => None,
    };
    let mut out = BTreeSet::new();
    for e in st.entries.iter().filter(|e| {
        e.tenant == tenant
            && e.ts >= window.0
            && e.ts < window.1
            && !matches!(&query, Some(q) if !q.selects(&e.labels))
    }) {
        match name {
            None => out.extend(e.labels.keys().cloned()),
            Some(n) => out.extend(e.labels.get(n).cloned()),
        }
    }
    // An empty list drops `data` (`omitempty`).
    if out.is_empty() {
        return Response::json(200, json!({"status": "success"}));
    }
    Response::json(200, json!({"status": "success", "data": out}))
}

/// `POST /loki/api/v1/push` with a JSON body; valid streams are stored even when another one
/// of the request is refused (a partial 400, as Loki's distributor does).
fn push(st: &mut State, req: &Request, tenant: String) -> Response {
    let ctype = req.header("content-type").unwrap_or("").trim();
    if ctype.is_empty() {
        return bad("mime: no media type");
    }
    if !req.has_json_body() {
        return bad("snappy: corrupt input");
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return bad(format!("couldn't parse push request: {e}")),
    };
    let Some(streams) = body.get("streams").and_then(Value::as_array) else {
        return bad("couldn't parse push request: no streams");
    };
    let now = now_ns();
    let oldest = now - 7 * 86400 * 1_000_000_000;
    let newest = now + 600 * 1_000_000_000;
    let mut parsed = Vec::new();
    for s in streams {
        let labels: BTreeMap<String, String> = match s.get("stream").and_then(Value::as_object) {
            Some(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut entries = Vec::new();
        for v in s
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(ts) = v.get(0).and_then(Value::as_str) else {
                return bad(
                    "couldn't parse push request: a timestamp must be a string of nanoseconds",
                );
            };
            let (Ok(ts), Some(line)) = (ts.parse::<i128>(), v.get(1).and_then(Value::as_str))
            else {
                return bad(format!("couldn't parse push request: bad entry {v}"));
            };
            let meta: Labels = v
                .get(2)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, x)| Some((k.clone(), x.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            entries.push((ts, line.to_string(), meta));
        }
        parsed.push((labels, entries));
    }
    let mut refused = Vec::new();
    for (labels, entries) in parsed {
        if labels.is_empty() {
            refused.push("error at least one label pair is required per stream".to_string());
            continue;
        }
        let shown = format!(
            "{{{}}}",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (ts, line, meta) in entries {
            if ts < oldest {
                refused.push(format!(
                    "entry for stream '{shown}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    rfc3339_nano(ts, false),
                    rfc3339_nano(oldest, false)
                ));
            } else if ts > newest {
                refused.push(format!(
                    "entry for stream '{shown}' has timestamp too new: {}",
                    rfc3339_nano(ts, false)
                ));
            } else {
                st.store(tenant.clone(), labels.clone(), meta, ts, line);
            }
        }
    }
    if refused.is_empty() {
        Response::empty(204)
    } else {
        bad(refused.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_as_loki_3_detects_them() {
        let none = Labels::new();
        assert_eq!(
            detected_level(&none, r#"{"level":"ERROR","msg":"x"}"#),
            "error"
        );
        assert_eq!(detected_level(&none, "a=1 level=warn"), "warn");
        // tint's `INF` is no level field: the keywords decide.
        assert_eq!(
            detected_level(
                &none,
                "Aug 20 10:11:12 INF HTTP request completed app=pocket-id status=200"
            ),
            "unknown"
        );
        assert_eq!(
            detected_level(&none, "Aug 20 10:12:01 ERR Failed to create access request app=pocket-id error=invalid_client"),
            "error"
        );
    }
}
