//! PocketID's own log records (contract pocketid-logs-and-access §1): what a handler logs while
//! it answers. Handlers push records onto the state; `answer` writes them, then the request line,
//! to the emulator's log outputs in the configured format.

use serde_json::Value;

/// slog's levels as PocketID uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One record besides the request line: a message and its attributes in order. An attribute
/// may be a nested object (fosite's errors in JSON mode); the text format shows only its
/// `error` field, as tint prints the error's `Error()` string.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub level: Level,
    pub msg: String,
    pub attrs: Vec<(String, Value)>,
}

impl LogRecord {
    pub fn new(level: Level, msg: impl Into<String>) -> LogRecord {
        LogRecord {
            level,
            msg: msg.into(),
            attrs: Vec::new(),
        }
    }
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> LogRecord {
        self.attrs.push((key.to_string(), value.into()));
        self
    }
}
