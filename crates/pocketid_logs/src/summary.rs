//! From raw lines to the result: parse each line, classify, count per kind, client and redirect
//! URI, and say when the log cannot show 4xx failures (`LOG_LEVEL=warn|error`, an empty log).

use crate::classify::{classify, needed, Entry, Event, Kind};
use crate::parse::{clean, parse_line, Format, Level};
use crate::time::{format_rfc3339, Nanos};
use pocketid::ServerVersion;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One line as a source delivered it: its timestamp, its stream (Loki's labels, Docker's
/// stdout) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub ts: Nanos,
    pub stream: u64,
    pub line: String,
}

/// What the lines say.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: usize,
    /// Lines that are neither tint text, slog JSON nor Go's default logger.
    pub unparsed: usize,
    /// Bytes of log text read.
    pub bytes: usize,
    pub events: Vec<Event>,
    pub counts: BTreeMap<Kind, usize>,
    pub by_client: BTreeMap<String, BTreeMap<Kind, usize>>,
    pub by_redirect_uri: BTreeMap<String, BTreeMap<Kind, usize>>,
    pub version: Option<String>,
    /// Lines per level (debug, info, warn, error).
    pub levels: BTreeMap<Level, usize>,
    pub request_lines: usize,
    pub warnings: Vec<String>,
}

/// The default of the `max_bytes` option: the most bytes of log text one run reads.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Takes lines one at a time, in time order, and keeps only what the summary needs: counters,
/// and the parsed lines classification can use (failures and the lines they are joined with).
/// Reading stops at `max_bytes` of log text.
#[derive(Debug)]
pub struct Summarizer {
    max_bytes: usize,
    /// Time of the last line taken, when reading stopped at `max_bytes`.
    stopped_at: Option<Nanos>,
    last_ts: Nanos,
    /// ≤2.12 text mode: a `Request with errors` line waiting for its ` app=…` continuation.
    heads: Vec<RawLine>,
    entries: Vec<Entry>,
    s: Summary,
}

impl Summarizer {
    pub fn new(max_bytes: usize) -> Summarizer {
        Summarizer {
            max_bytes,
            stopped_at: None,
            last_ts: 0,
            heads: Vec::new(),
            entries: Vec::new(),
            s: Summary::default(),
        }
    }

    /// Whether `max_bytes` was reached (the source stops reading).
    pub fn full(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// Takes one line; false once `max_bytes` is reached (the line is not taken).
    pub fn push(&mut self, l: RawLine) -> bool {
        if self.full() {
            return false;
        }
        if self.s.bytes + l.line.len() > self.max_bytes {
            self.stopped_at = Some(self.last_ts);
            return false;
        }
        self.s.bytes += l.line.len();
        self.last_ts = l.ts;
        let head = self.heads.iter().position(|h| h.stream == l.stream);
        let head = head.map(|i| self.heads.swap_remove(i));
        if let Some(mut h) = head {
            if is_continuation(&l.line) {
                // One record written as two physical lines (contract §1.2, ≤2.12).
                h.line.push(' ');
                h.line.push_str(&l.line);
                self.take(h);
                return true;
            }
            self.take(h);
        }
        if is_split_head(&l.line) {
            self.heads.push(l);
        } else {
            self.take(l);
        }
        true
    }

    fn take(&mut self, l: RawLine) {
        let record = parse_line(&l.line);
        let s = &mut self.s;
        s.lines += 1;
        if record.format == Format::Other && record.level.is_none() {
            s.unparsed += 1;
        }
        if let Some(lv) = record.level {
            *s.levels.entry(lv).or_default() += 1;
        }
        if record.is_request() {
            s.request_lines += 1;
        }
        if let Some(v) = record
            .get("version")
            .filter(|v| !v.is_empty() && v.len() <= 40)
        {
            s.version = Some(crate::redact::text(v, 40));
        }
        if needed(&record) {
            self.entries.push(Entry { ts: l.ts, record });
        }
    }

    /// Classifies and counts what was taken.
    pub fn finish(mut self) -> Summary {
        for h in std::mem::take(&mut self.heads) {
            self.take(h);
        }
        // Stable: lines of one time stay as read; a held line may come late.
        self.entries.sort_by_key(|e| e.ts);
        let mut s = self.s;
        s.events = classify(&self.entries);
        for e in &s.events {
            *s.counts.entry(e.kind).or_default() += 1;
            if let Some(c) = &e.client_id {
                *s.by_client
                    .entry(c.clone())
                    .or_default()
                    .entry(e.kind)
                    .or_default() += 1;
            }
            if let Some(u) = &e.redirect_uri {
                *s.by_redirect_uri
                    .entry(u.clone())
                    .or_default()
                    .entry(e.kind)
                    .or_default() += 1;
            }
        }
        s.warnings = level_warnings(&s);
        if s.unparsed > 0 {
            s.warnings.push(format!(
                "{} line(s) are not PocketID log lines (neither tint text, slog JSON nor Go's logger): counted as unparsed and skipped",
                s.unparsed
            ));
        }
        if let Some(t) = self.stopped_at {
            s.warnings.push(format!(
                "stopped after {} bytes of log text (max_bytes {}): only the window up to {} was read; narrow it with since/until or raise max_bytes",
                s.bytes,
                self.max_bytes,
                format_rfc3339(t)
            ));
        }
        s
    }
}

/// A ≤2.12 text-mode `Request with errors` line whose attributes are on the next line.
fn is_split_head(line: &str) -> bool {
    line.contains("Request with errors") && !line.contains(" app=") && {
        let c = clean(line);
        c.contains(" Request with errors:") && !c.contains(" app=")
    }
}

/// The second physical line of a split record: no timestamp, it begins with ` app=`.
fn is_continuation(line: &str) -> bool {
    clean(line).starts_with("app=")
}

/// Parses, classifies and counts `lines` (sorted by time), without a byte bound.
pub fn summarize(lines: &[RawLine]) -> Summary {
    let mut s = Summarizer::new(usize::MAX);
    for l in lines {
        s.push(l.clone());
    }
    s.finish()
}

/// Warnings when the log cannot show what was asked (contract §6.8).
fn level_warnings(s: &Summary) -> Vec<String> {
    let mut w = Vec::new();
    let at = |l: Level| s.levels.get(&l).copied().unwrap_or(0);
    if s.lines == 0 {
        w.push("PocketID's log has no line in this window: check the source (Loki selector, container name) and the window; an empty log is no proof that nothing failed (LOG_LEVEL=error logs no request at all)".into());
    } else if at(Level::Info) == 0 && at(Level::Debug) == 0 {
        w.push(format!(
            "{} line(s) were read but none at INFO: PocketID evidently runs with LOG_LEVEL=warn or error, which hides every 401/403/404 request line (4xx are logged at INFO, only 429 at WARN). Set LOG_LEVEL=info (and restart PocketID) to see failed sign-ins and token requests",
            s.lines
        ));
    }
    if s.request_lines > 0
        && s.events.iter().all(|e| e.error_code.is_none())
        && s.version
            .as_deref()
            .and_then(ServerVersion::parse)
            .is_some_and(|v| v < ServerVersion(2, 13, 0))
    {
        w.push("PocketID before 2.13 logs no error codes: failures are classified from the `Request with errors` text".into());
    }
    w
}

impl Summary {
    /// The result fields: counts, by_client, by_redirect_uri, first, last, events (the newest
    /// `max_events`, newest last), pocketid_version.
    pub fn fields(&self, max_events: usize) -> Map<String, Value> {
        let kinds =
            |m: &BTreeMap<Kind, usize>| -> Value { serde_json::to_value(m).unwrap_or(Value::Null) };
        let nested = |m: &BTreeMap<String, BTreeMap<Kind, usize>>| -> Value {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), kinds(v))).collect())
        };
        let skip = self.events.len().saturating_sub(max_events);
        let mut out = Map::new();
        out.insert("lines".into(), json!(self.lines));
        out.insert("unparsed".into(), json!(self.unparsed));
        out.insert("bytes".into(), json!(self.bytes));
        out.insert("counts".into(), kinds(&self.counts));
        out.insert("by_client".into(), nested(&self.by_client));
        out.insert("by_redirect_uri".into(), nested(&self.by_redirect_uri));
        out.insert(
            "first".into(),
            json!(self.events.first().map(|e| format_rfc3339(e.ts))),
        );
        out.insert(
            "last".into(),
            json!(self.events.last().map(|e| format_rfc3339(e.ts))),
        );
        out.insert(
            "events".into(),
            serde_json::to_value(&self.events[skip..]).unwrap_or(Value::Null),
        );
        out.insert("pocketid_version".into(), json!(self.version));
        out
    }
}
