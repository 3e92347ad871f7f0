//! From raw lines to the result: parse each line, classify, count per kind, client and redirect
//! URI, and say when the log cannot show 4xx failures (`LOG_LEVEL=warn|error`, an empty log).

use crate::classify::{classify, Entry, Event, Kind};
use crate::parse::{parse_line, Level};
use crate::time::{format_rfc3339, Nanos};
use pocketid::ServerVersion;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One line as a source delivered it: its timestamp and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub ts: Nanos,
    pub line: String,
}

/// What the lines say.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: usize,
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

/// Parses, classifies and counts `lines` (sorted by time).
pub fn summarize(lines: &[RawLine]) -> Summary {
    let entries: Vec<Entry> = lines
        .iter()
        .map(|l| Entry {
            ts: l.ts,
            record: parse_line(&l.line),
        })
        .collect();
    let mut s = Summary {
        lines: lines.len(),
        ..Summary::default()
    };
    for e in &entries {
        if let Some(l) = e.record.level {
            *s.levels.entry(l).or_default() += 1;
        }
        if e.record.is_request() {
            s.request_lines += 1;
        }
        if let Some(v) = e
            .record
            .get("version")
            .filter(|v| !v.is_empty() && v.len() <= 40)
        {
            s.version = Some(crate::redact::text(v, 40));
        }
    }
    s.events = classify(&entries);
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
    s
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
