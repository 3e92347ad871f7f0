//! The LogQL subset the emulator answers (contract loki-api §6): a stream selector with
//! `= != =~ !~` (regexes fully anchored), then line filters `|= != |~ !~` (regexes not
//! anchored), the `| logfmt` and `| json` parsers and label filters (`| status >= 400`,
//! `| level="ERROR"`). Strings are double-quoted with Go escapes or backtick raw strings.

use regex::Regex;
use std::collections::BTreeMap;

/// Loki's text for a selector every matcher of which also matches `""`.
pub const EMPTY_COMPATIBLE: &str = "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

impl Op {
    fn matches(&self, v: &str) -> bool {
        match self {
            Op::Eq(s) => v == s,
            Op::Ne(s) => v != s,
            Op::Re(r) => r.is_match(v),
            Op::NotRe(r) => !r.is_match(v),
        }
    }
}

#[derive(Debug, Clone)]
enum Num {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
enum Stage {
    /// A line filter: the entry is kept when the op matches the whole line.
    Line(Op),
    Logfmt,
    Json,
    Label(String, Op),
    Number(String, Num, f64),
}

/// A parsed log query.
#[derive(Debug, Clone)]
pub struct Query {
    matchers: Vec<(String, Op)>,
    stages: Vec<Stage>,
}

/// Labels of a stream (indexed labels, structured metadata, extracted fields).
pub type Labels = BTreeMap<String, String>;

impl Query {
    /// Whether a stream's label set is selected (an absent label counts as `""`).
    pub fn selects(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|(k, op)| op.matches(labels.get(k).map_or("", String::as_str)))
    }

    /// Runs the pipeline over one entry: `None` when a filter drops it, else the labels the
    /// result shows it under (the parsers add fields).
    pub fn pipeline(&self, mut labels: Labels, line: &str) -> Option<Labels> {
        for st in &self.stages {
            match st {
                Stage::Line(op) => {
                    if !op.matches(line) {
                        return None;
                    }
                }
                Stage::Logfmt => extract(&mut labels, logfmt(line), "LogfmtParserErr"),
                Stage::Json => extract(&mut labels, json_fields(line), "JSONParserErr"),
                Stage::Label(k, op) => {
                    if !op.matches(labels.get(k).map_or("", String::as_str)) {
                        return None;
                    }
                }
                Stage::Number(k, cmp, want) => {
                    let Some(v) = labels.get(k).and_then(|v| v.parse::<f64>().ok()) else {
                        // A value that is not a number: kept, marked, as Loki does.
                        labels.insert("__error__".into(), "LabelFilterErr".into());
                        continue;
                    };
                    let keep = match cmp {
                        Num::Eq => v == *want,
                        Num::Ne => v != *want,
                        Num::Gt => v > *want,
                        Num::Ge => v >= *want,
                        Num::Lt => v < *want,
                        Num::Le => v <= *want,
                    };
                    if !keep {
                        return None;
                    }
                }
            }
        }
        Some(labels)
    }
}

/// Adds parsed fields; a name already taken gets `_extracted`; a failed parse marks the entry.
fn extract(labels: &mut Labels, fields: Option<Vec<(String, String)>>, err: &str) {
    let Some(fields) = fields else {
        labels.insert("__error__".into(), err.into());
        return;
    };
    for (k, v) in fields {
        let k = sanitize(&k);
        if labels.contains_key(&k) {
            labels.insert(format!("{k}_extracted"), v);
        } else {
            labels.insert(k, v);
        }
    }
}

fn sanitize(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// logfmt `k=v` pairs; bare words and empty values are dropped, as Loki's parser does.
pub fn logfmt(line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = line.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| *c <= ' ') {
            it.next();
        }
        if it.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c <= ' ' || c == '=' {
                break;
            }
            if c == '"' {
                return None;
            }
            key.push(c);
            it.next();
        }
        if it.peek() != Some(&'=') {
            continue;
        }
        it.next();
        let mut val = String::new();
        if it.peek() == Some(&'"') {
            let mut raw = String::from('"');
            it.next();
            loop {
                match it.next() {
                    None => return None,
                    Some('\\') => {
                        raw.push('\\');
                        raw.push(it.next()?);
                    }
                    Some('"') => {
                        raw.push('"');
                        break;
                    }
                    Some(c) => raw.push(c),
                }
            }
            val = unquote_go(&raw[1..raw.len() - 1]).ok()?;
        } else {
            while let Some(&c) = it.peek() {
                if c <= ' ' {
                    break;
                }
                val.push(c);
                it.next();
            }
        }
        if !key.is_empty() && !val.is_empty() {
            out.push((key, val));
        }
    }
}

/// A JSON object's fields, nested keys joined with `_`; arrays are skipped.
fn json_fields(line: &str) -> Option<Vec<(String, String)>> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}_{k}")
                    };
                    walk(&key, x, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            serde_json::Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
            serde_json::Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.is_object().then(|| {
        let mut out = Vec::new();
        walk("", &v, &mut out);
        out
    })
}

/// Go's unquoting of a double-quoted literal's inside; `Err` names the failure as Loki's
/// lexer does.
pub fn unquote_go(s: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or("literal not terminated")?;
        let hex = |it: &mut std::str::Chars, n: usize| -> Result<u32, &'static str> {
            let h: String = it.take(n).collect();
            if h.len() != n {
                return Err("invalid char escape");
            }
            u32::from_str_radix(&h, 16).map_err(|_| "invalid char escape")
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' | '"' => out.push(e),
            'x' => out.push(char::from_u32(hex(&mut it, 2)?).ok_or("invalid char escape")?),
            'u' => out.push(char::from_u32(hex(&mut it, 4)?).ok_or("invalid char escape")?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?).ok_or("invalid char escape")?),
            '0'..='7' => {
                let rest: String = it.by_ref().take(2).collect();
                let n = u32::from_str_radix(&format!("{e}{rest}"), 8)
                    .map_err(|_| "invalid char escape")?;
                out.push(char::from_u32(n).ok_or("invalid char escape")?);
            }
            _ => return Err("invalid char escape"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

fn at(col: usize, msg: impl std::fmt::Display) -> String {
    format!("parse error at line 1, col {col}: {msg}")
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn col(&self) -> usize {
        self.pos + 1
    }
    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self
            .chars
            .get(self.pos..self.pos + n)
            .is_some_and(|w| w.iter().copied().eq(s.chars()))
        {
            self.pos += n;
            true
        } else {
            false
        }
    }
    /// What yacc would call the token here, for "unexpected …".
    fn token_name(&self) -> String {
        match self.peek() {
            None => "$end".into(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => "IDENTIFIER".into(),
            Some('"') | Some('`') => "STRING".into(),
            Some(c) if c.is_ascii_digit() => "NUMBER".into(),
            Some(c) => c.to_string(),
        }
    }
    fn unexpected(&self, expecting: &str) -> String {
        let tail = if expecting.is_empty() {
            String::new()
        } else {
            format!(", expecting {expecting}")
        };
        at(
            self.col(),
            format!("syntax error: unexpected {}{tail}", self.token_name()),
        )
    }
    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            if self.pos == start && self.peek().is_some_and(|c| c.is_ascii_digit()) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }
    fn string(&mut self) -> Result<String, String> {
        let col = self.col();
        let quote = match self.peek() {
            Some(q @ ('"' | '`')) => q,
            _ => return Err(self.unexpected("STRING")),
        };
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(at(col, "literal not terminated")),
                Some('\\') if quote == '"' => self.pos += 2,
                Some(c) if c == quote => break,
                Some(_) => self.pos += 1,
            }
        }
        let raw: String = self.chars[start..self.pos.min(self.chars.len())]
            .iter()
            .collect();
        self.pos += 1;
        if quote == '`' {
            Ok(raw)
        } else {
            unquote_go(&raw).map_err(|e| at(col, e))
        }
    }
    fn regex(&self, re: &str, anchored: bool, col: usize) -> Result<Regex, String> {
        let src = if anchored {
            format!("^(?:{re})$")
        } else {
            re.to_string()
        };
        Regex::new(&src).map_err(|e| {
            let first = e.to_string();
            let last = first.lines().last().unwrap_or("").trim().to_string();
            at(col, format!("error parsing regexp: {last}: `{re}`"))
        })
    }
    fn op(&mut self, value: String, col: usize, kind: &str, anchored: bool) -> Result<Op, String> {
        Ok(match kind {
            "=" | "==" => Op::Eq(value),
            "!=" => Op::Ne(value),
            "=~" => Op::Re(self.regex(&value, anchored, col)?),
            _ => Op::NotRe(self.regex(&value, anchored, col)?),
        })
    }
    fn selector(&mut self) -> Result<Vec<(String, Op)>, String> {
        self.skip_ws();
        if !self.eat("{") {
            return Err(self.unexpected(""));
        }
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            let Some(name) = self.ident() else {
                return Err(self.unexpected("IDENTIFIER"));
            };
            self.skip_ws();
            let kind = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|k| self.eat(k))
                .ok_or_else(|| self.unexpected("=, !=, =~ or !~"))?;
            self.skip_ws();
            let col = self.col();
            let value = self.string()?;
            out.push((name, self.op(value, col, kind, true)?));
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(out);
            }
            return Err(self.unexpected(", or }"));
        }
    }
    fn stage(&mut self) -> Result<Stage, String> {
        for kind in ["|=", "|~", "!=", "!~"] {
            if self.eat(kind) {
                self.skip_ws();
                let col = self.col();
                let v = self.string()?;
                // Contains-filters are literal regexes: one matcher for all four.
                return Ok(Stage::Line(match kind {
                    "|=" => Op::Re(self.regex(&regex::escape(&v), false, col)?),
                    "!=" => Op::NotRe(self.regex(&regex::escape(&v), false, col)?),
                    "|~" => Op::Re(self.regex(&v, false, col)?),
                    _ => Op::NotRe(self.regex(&v, false, col)?),
                }));
            }
        }
        if !self.eat("|") {
            return Err(self.unexpected(""));
        }
        self.skip_ws();
        let col = self.col();
        let Some(name) = self.ident() else {
            return Err(self.unexpected("IDENTIFIER"));
        };
        match name.as_str() {
            "logfmt" => return Ok(Stage::Logfmt),
            "json" => return Ok(Stage::Json),
            _ => {}
        }
        self.skip_ws();
        let kind = ["=~", "!~", "!=", "==", ">=", "<=", "=", ">", "<"]
            .into_iter()
            .find(|k| self.eat(k))
            .ok_or_else(|| {
                at(
                    col,
                    format!("syntax error: unexpected IDENTIFIER {name}, the emulator knows logfmt, json and label filters"),
                )
            })?;
        self.skip_ws();
        if matches!(self.peek(), Some('"' | '`')) && !matches!(kind, ">=" | "<=" | ">" | "<") {
            let vcol = self.col();
            let v = self.string()?;
            return Ok(Stage::Label(name, self.op(v, vcol, kind, true)?));
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '-')
        {
            self.pos += 1;
        }
        let num: String = self.chars[start..self.pos].iter().collect();
        let n = num.parse::<f64>().map_err(|_| self.unexpected("NUMBER"))?;
        let cmp = match kind {
            "=" | "==" => Num::Eq,
            "!=" => Num::Ne,
            ">" => Num::Gt,
            ">=" => Num::Ge,
            "<" => Num::Lt,
            "<=" => Num::Le,
            _ => return Err(self.unexpected("STRING")),
        };
        Ok(Stage::Number(name, cmp, n))
    }
}

/// Parses a log query; `Err` is Loki's 400 text.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        chars: q.chars().collect(),
        pos: 0,
        _src: q,
    };
    let matchers = p.selector()?;
    let mut stages = Vec::new();
    loop {
        p.skip_ws();
        if p.peek().is_none() {
            break;
        }
        stages.push(p.stage()?);
    }
    if matchers.iter().all(|(_, op)| op.matches("")) {
        return Err(EMPTY_COMPATIBLE.into());
    }
    Ok(Query { matchers, stages })
}

/// Whether a query is a log query (a metric query starts with a function or aggregation).
pub fn is_log_query(q: &str) -> bool {
    q.trim_start().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_are_anchored_and_absent_labels_are_empty() {
        let q = parse(r#"{job="auth", container=~"pocket.*", x!="a"}"#).unwrap();
        assert!(q.selects(&labels(&[("job", "auth"), ("container", "pocketid")])));
        assert!(!q.selects(&labels(&[("job", "auth"), ("container", "my-pocketid")])));
        let q = parse(r#"{container=~"pocket"}"#).unwrap();
        assert!(!q.selects(&labels(&[("container", "pocketid")])));
    }

    #[test]
    fn parse_errors_as_loki_writes_them() {
        assert_eq!(
            parse(r#"job="x""#).unwrap_err(),
            "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
        );
        assert_eq!(parse(r#"{job=~".*"}"#).unwrap_err(), EMPTY_COMPATIBLE);
        assert!(parse(r#"{job="\d"}"#)
            .unwrap_err()
            .contains("invalid char escape"));
        assert!(parse(r#"{job="a"} |~ "(""#)
            .unwrap_err()
            .starts_with("parse error at line 1, col 14: error parsing regexp"));
        assert!(parse(r#"{job="a""#)
            .unwrap_err()
            .starts_with("parse error at line 1"));
    }

    #[test]
    fn line_filters_and_parsers() {
        let q = parse(
            r#"{job="a"} |= "HTTP request completed" != "healthz" |~ `status=\d+` | logfmt | status >= 400 | error_code=~"token_.*""#,
        )
        .unwrap();
        let line = r#"Aug 20 10:13:40 INF HTTP request completed app=pocket-id error_code=token_invalid_or_expired status=401 query="" user_agent="a b""#;
        let got = q.pipeline(labels(&[("job", "a")]), line).unwrap();
        assert_eq!(got["status"], "401");
        assert_eq!(got["user_agent"], "a b");
        assert!(!got.contains_key("query"), "empty values are dropped");
        assert!(q
            .pipeline(labels(&[]), &line.replace("401", "200"))
            .is_none());
        let q = parse(r#"{job="a"} | json | level="ERROR""#).unwrap();
        let got = q
            .pipeline(
                labels(&[("job", "a")]),
                r#"{"level":"ERROR","error":{"error":"invalid_client"}}"#,
            )
            .unwrap();
        assert_eq!(got["error_error"], "invalid_client");
        let got = q.pipeline(labels(&[("job", "a")]), "not json");
        assert!(got.is_none(), "no level label once the parse failed");
    }
}
