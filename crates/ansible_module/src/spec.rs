//! Option definitions and AnsibleModule's validation: aliases, unsupported parameters, env
//! fallbacks, defaults, required arguments, type coercion and choices, with Ansible's texts.

use crate::pyfmt;
use crate::secret::register_secret_json_named;
use serde_json::{Map, Number, Value};

/// An option's type, as in AnsibleModule's `argument_spec` (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Path,
    Raw,
    Dict,
    List,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "str",
            Kind::Path => "path",
            Kind::Raw => "raw",
            Kind::Dict => "dict",
            Kind::List => "list",
        }
    }
}

/// One option of a module: the single definition both the args file and the CLI are read from.
#[derive(Debug, Clone)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    pub elements: Option<Kind>,
    pub required: bool,
    pub default: Option<Value>,
    pub aliases: Vec<&'static str>,
    pub env: Vec<&'static str>,
    pub no_log: bool,
    pub choices: Vec<&'static str>,
    /// Inclusive bounds of a number option, checked at parse time (before any request).
    pub range: Option<Range>,
    pub help: &'static str,
}

/// Inclusive bounds of an int or float option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    Int(i64, i64),
    Float(f64, f64),
}

impl Range {
    fn bound_text(self) -> (String, String) {
        match self {
            Range::Int(a, b) => (a.to_string(), b.to_string()),
            Range::Float(a, b) => (pyfmt::float(a), pyfmt::float(b)),
        }
    }

    fn contains(self, v: &Value) -> bool {
        let Value::Number(n) = v else {
            return true;
        };
        match self {
            Range::Int(a, b) => {
                let x = n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from));
                match x {
                    Some(x) => (i128::from(a)..=i128::from(b)).contains(&x),
                    None => n
                        .as_f64()
                        .is_some_and(|f| (a as f64..=b as f64).contains(&f)),
                }
            }
            Range::Float(a, b) => n.as_f64().is_some_and(|f| (a..=b).contains(&f)),
        }
    }
}

impl Opt {
    pub fn new(name: &'static str, kind: Kind) -> Self {
        Opt {
            name,
            kind,
            elements: None,
            required: false,
            default: None,
            aliases: Vec::new(),
            env: Vec::new(),
            no_log: false,
            choices: Vec::new(),
            range: None,
            help: "",
        }
    }
    pub fn str(name: &'static str) -> Self {
        Self::new(name, Kind::Str)
    }
    pub fn bool(name: &'static str) -> Self {
        Self::new(name, Kind::Bool)
    }
    pub fn int(name: &'static str) -> Self {
        Self::new(name, Kind::Int)
    }
    pub fn float(name: &'static str) -> Self {
        Self::new(name, Kind::Float)
    }
    pub fn path(name: &'static str) -> Self {
        Self::new(name, Kind::Path)
    }
    pub fn raw(name: &'static str) -> Self {
        Self::new(name, Kind::Raw)
    }
    pub fn dict(name: &'static str) -> Self {
        Self::new(name, Kind::Dict)
    }
    pub fn list(name: &'static str, elements: Kind) -> Self {
        let mut o = Self::new(name, Kind::List);
        o.elements = Some(elements);
        o
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
    pub fn alias(mut self, a: &'static str) -> Self {
        self.aliases.push(a);
        self
    }
    pub fn env(mut self, var: &'static str) -> Self {
        self.env.push(var);
        self
    }
    pub fn no_log(mut self) -> Self {
        self.no_log = true;
        self
    }
    pub fn choices(mut self, c: &[&'static str]) -> Self {
        self.choices = c.to_vec();
        self
    }
    /// Inclusive bounds for an int option (also applied to each element of a list of ints). An
    /// out-of-range value fails validation with `value of NAME must be between MIN and MAX, got:
    /// V`, the shape of AnsibleModule's `choices` error.
    pub fn range(mut self, min: i64, max: i64) -> Self {
        self.range = Some(Range::Int(min, max));
        self
    }
    /// Inclusive bounds for a float option.
    pub fn range_f(mut self, min: f64, max: f64) -> Self {
        self.range = Some(Range::Float(min, max));
        self
    }
    pub fn help(mut self, h: &'static str) -> Self {
        self.help = h;
        self
    }

    /// The declaration as JSON, in the vocabulary of a module's DOCUMENTATION (`type`,
    /// `elements`, `required`, `default`, `choices`, `aliases`) plus `env` and `no_log`, so a test
    /// can hold the sidecar docs to the code. Empty and false fields are left out, as in the docs.
    pub fn spec_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.into());
        m.insert("type".into(), self.kind.name().into());
        if let Some(el) = self.elements {
            m.insert("elements".into(), el.name().into());
        }
        if self.required {
            m.insert("required".into(), true.into());
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        let strs = |v: &[&'static str]| Value::from(v.to_vec());
        for (key, list) in [
            ("choices", &self.choices),
            ("aliases", &self.aliases),
            ("env", &self.env),
        ] {
            if !list.is_empty() {
                m.insert(key.into(), strs(list));
            }
        }
        if self.no_log {
            m.insert("no_log".into(), true.into());
        }
        Value::Object(m)
    }
}

/// Why the arguments were refused. The `Display` text is AnsibleModule's own.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgsError {
    #[error("Unsupported parameters for ({module}) module: {unsupported}. Supported parameters include: {supported}.")]
    Unsupported {
        module: String,
        unsupported: String,
        supported: String,
    },
    #[error("missing required arguments: {0}")]
    Missing(String),
    #[error("argument '{name}' is of type {type_name} and we were unable to convert to {wanted}: {reason}")]
    Conversion {
        name: String,
        type_name: &'static str,
        wanted: &'static str,
        reason: String,
    },
    #[error("Elements value for option '{name}' is of type {type_name} and we were unable to convert to {wanted}: {reason}")]
    ElementConversion {
        name: String,
        type_name: &'static str,
        wanted: &'static str,
        reason: String,
    },
    #[error("value of {name} must be one of: {choices}, got: {got}")]
    Choice {
        name: String,
        choices: String,
        got: String,
    },
    #[error("value of {name} must be between {min} and {max}, got: {got}")]
    Range {
        name: String,
        min: String,
        max: String,
        got: String,
    },
    #[error("value of {name} must be one or more of: {choices}. Got no match for: {got}")]
    Choices {
        name: String,
        choices: String,
        got: String,
    },
}

/// Validates user parameters (the args file without `_ansible_*` keys) against `spec`, the way
/// `ArgumentSpecValidator.validate` does, and returns them coerced, keyed by canonical names, with
/// defaults filled in. The first error wins, as in AnsibleModule. `lookup_env` reads fallbacks.
pub fn validate(
    module: &str,
    spec: &[Opt],
    params: &Map<String, Value>,
    ignore_unknown: bool,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map<String, Value>, ArgsError> {
    let mut out = Map::new();
    // Secret values are registered before anything can fail, so no error text can carry them.
    for opt in spec.iter().filter(|o| o.no_log) {
        for name in std::iter::once(&opt.name).chain(opt.aliases.iter()) {
            if let Some(v) = params.get(*name) {
                register_no_log(opt.name, v);
            }
        }
    }

    // Aliases → canonical names; unknown names collected.
    let mut unsupported = Vec::new();
    for (key, value) in params {
        match spec
            .iter()
            .find(|o| o.name == key || o.aliases.iter().any(|a| a == key))
        {
            Some(opt) => {
                if opt.name == key || !out.contains_key(opt.name) {
                    out.insert(opt.name.to_string(), value.clone());
                }
            }
            None => unsupported.push(key.clone()),
        }
    }
    if !unsupported.is_empty() && !ignore_unknown {
        unsupported.sort();
        let mut names: Vec<&str> = spec.iter().map(|o| o.name).collect();
        names.sort();
        let mut supported = names.join(", ");
        let mut aliases: Vec<&str> = spec
            .iter()
            .flat_map(|o| o.aliases.iter().copied())
            .collect();
        if !aliases.is_empty() {
            aliases.sort();
            supported.push_str(&format!(" ({})", aliases.join(", ")));
        }
        return Err(ArgsError::Unsupported {
            module: module.to_string(),
            unsupported: unsupported.join(", "),
            supported,
        });
    }

    // Environment fallbacks for absent options (AnsibleModule's env_fallback).
    for opt in spec {
        if out.get(opt.name).is_none_or(Value::is_null) {
            if let Some(v) = opt.env.iter().find_map(|var| lookup_env(var)) {
                if opt.no_log {
                    crate::secret::register_secret_named(opt.name, &v);
                }
                out.insert(opt.name.to_string(), Value::String(v));
            }
        }
    }

    let mut missing: Vec<&str> = spec
        .iter()
        .filter(|o| o.required && out.get(o.name).is_none_or(Value::is_null))
        .map(|o| o.name)
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(ArgsError::Missing(missing.join(", ")));
    }

    for opt in spec {
        let value = match out.get(opt.name) {
            Some(Value::Null) | None => match &opt.default {
                Some(d) => d.clone(),
                None => {
                    out.insert(opt.name.to_string(), Value::Null);
                    continue;
                }
            },
            Some(v) => v.clone(),
        };
        let coerced = coerce(opt.kind, &value).map_err(|reason| ArgsError::Conversion {
            name: opt.name.to_string(),
            type_name: pyfmt::type_name(&value),
            wanted: opt.kind.name(),
            reason,
        })?;
        let coerced = match (opt.kind, opt.elements, coerced) {
            (Kind::List, Some(el), Value::Array(items)) => {
                let mut conv = Vec::with_capacity(items.len());
                for item in items {
                    conv.push(coerce(el, &item).map_err(|reason| {
                        ArgsError::ElementConversion {
                            name: opt.name.to_string(),
                            type_name: pyfmt::type_name(&item),
                            wanted: el.name(),
                            reason,
                        }
                    })?);
                }
                Value::Array(conv)
            }
            (_, _, v) => v,
        };
        if opt.no_log {
            register_no_log(opt.name, &coerced);
        }
        check_range(opt, &coerced)?;
        check_choices(opt, &coerced)?;
        out.insert(opt.name.to_string(), coerced);
    }
    Ok(out)
}

/// Registers a `no_log` value and, for each string in it, the escaped form Python's `repr` shows
/// in error texts (`\\`, `\n`, `\x7f`, quotes), so a value with such characters is masked there too.
fn register_no_log(name: &str, v: &Value) {
    register_secret_json_named(name, v);
    match v {
        Value::String(s) => {
            let r = pyfmt::repr(v);
            let inner = &r[1..r.len() - 1];
            if inner != s {
                crate::secret::register_secret_named(name, inner);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| register_no_log(name, i)),
        Value::Object(map) => map.iter().for_each(|(k, i)| register_no_log(k, i)),
        _ => {}
    }
}

/// An int/float option (or each element of a list) outside its [`Opt::range`] is refused, so a
/// value such as `1e20` seconds never reaches a `Duration` (which would panic).
fn check_range(opt: &Opt, value: &Value) -> Result<(), ArgsError> {
    let Some(range) = opt.range else {
        return Ok(());
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        v => vec![v],
    };
    for v in items {
        if !range.contains(v) {
            let (min, max) = range.bound_text();
            return Err(ArgsError::Range {
                name: opt.name.to_string(),
                min,
                max,
                got: pyfmt::str(v),
            });
        }
    }
    Ok(())
}

fn check_choices(opt: &Opt, value: &Value) -> Result<(), ArgsError> {
    if opt.choices.is_empty() || value.is_null() {
        return Ok(());
    }
    let choices = opt.choices.join(", ");
    if let Value::Array(items) = value {
        let bad: Vec<String> = items
            .iter()
            .map(pyfmt::str)
            .filter(|s| !opt.choices.contains(&s.as_str()))
            .collect();
        if !bad.is_empty() {
            return Err(ArgsError::Choices {
                name: opt.name.to_string(),
                choices,
                got: bad.join(", "),
            });
        }
        return Ok(());
    }
    let got = pyfmt::str(value);
    if opt.choices.contains(&got.as_str()) {
        Ok(())
    } else {
        Err(ArgsError::Choice {
            name: opt.name.to_string(),
            choices,
            got,
        })
    }
}

const BOOL_TRUE: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
const BOOL_FALSE: [&str; 6] = ["n", "no", "off", "0", "false", "f"];

/// Converts one value the way `module_utils/common/validation.py` does for `kind`. The error is
/// the `TypeError` text AnsibleModule puts after "unable to convert to <type>: ".
pub fn coerce(kind: Kind, v: &Value) -> Result<Value, String> {
    match kind {
        Kind::Raw => Ok(v.clone()),
        Kind::Bool => to_bool(v).map(Value::Bool),
        Kind::Int => to_int(v),
        Kind::Float => to_float(v),
        Kind::Str => Ok(Value::String(to_str(v))),
        Kind::Path => Ok(Value::String(expand_path(&to_str(v)))),
        Kind::List => to_list(v),
        Kind::Dict => to_dict(v),
    }
}

fn to_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => pyfmt::str(other),
    }
}

/// `boolean()` from `module_utils/parsing/convert_bool.py`.
pub fn to_bool(v: &Value) -> Result<bool, String> {
    let invalid = || {
        let valid = BOOL_TRUE
            .iter()
            .map(|s| format!("'{s}'"))
            .chain(std::iter::once("1".to_string()))
            .chain(BOOL_FALSE.iter().map(|s| format!("'{s}'")))
            .chain(std::iter::once("0".to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "The value '{}' is not a valid boolean. Valid booleans include: {valid}",
            pyfmt::str(v)
        )
    };
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => {
            let n = s.trim().to_lowercase();
            if BOOL_TRUE.contains(&n.as_str()) {
                Ok(true)
            } else if BOOL_FALSE.contains(&n.as_str()) {
                Ok(false)
            } else {
                Err(invalid())
            }
        }
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(invalid()),
        },
        other => Err(format!(
            "{} cannot be converted to a bool",
            pyfmt::type_class(other)
        )),
    }
}

/// `check_type_int`: `Decimal(v) == int(Decimal(v))`.
fn to_int(v: &Value) -> Result<Value, String> {
    let fail = || format!("\"{}\" cannot be converted to an int", pyfmt::repr(v));
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(fail)?;
            float_to_int(f).ok_or_else(fail)
        }
        // bool is an int subclass in Python: True stays True, which callers read as 1.
        Value::Bool(b) => Ok(Value::from(*b as i64)),
        Value::String(s) => parse_decimal_int(s.trim()).ok_or_else(fail),
        _ => Err(fail()),
    }
}

fn float_to_int(f: f64) -> Option<Value> {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 {
        Some(Value::from(f as i64))
    } else {
        None
    }
}

/// Accepts what Python's `Decimal` accepts and is integral: `5`, `+5`, `5.0`, `5e2`, `5_000`.
fn parse_decimal_int(s: &str) -> Option<Value> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() || s.starts_with('_') || s.ends_with('_') {
        return None;
    }
    if let Ok(i) = cleaned.parse::<i64>() {
        return Some(Value::from(i));
    }
    let lower = cleaned.to_lowercase();
    if lower.contains("inf") || lower.contains("nan") || lower.starts_with("0x") {
        return None;
    }
    let f: f64 = cleaned.parse().ok()?;
    float_to_int(f)
}

/// `check_type_float`: `float(v)`.
fn to_float(v: &Value) -> Result<Value, String> {
    let fail = || format!("{} cannot be converted to a float", pyfmt::type_class(v));
    let f = match v {
        Value::Number(n) => n.as_f64().ok_or_else(fail)?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            match t.to_lowercase().as_str() {
                "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
                "-inf" | "-infinity" => f64::NEG_INFINITY,
                _ => t.parse::<f64>().map_err(|_| fail())?,
            }
        }
        _ => return Err(fail()),
    };
    Number::from_f64(f).map(Value::Number).ok_or_else(fail)
}

/// `check_type_list`: a string is split on `,`; a number becomes `[str(n)]`.
fn to_list(v: &Value) -> Result<Value, String> {
    match v {
        Value::Array(_) => Ok(v.clone()),
        Value::String(s) => Ok(Value::Array(
            s.split(',').map(|p| Value::String(p.to_string())).collect(),
        )),
        Value::Number(_) => Ok(Value::Array(vec![Value::String(pyfmt::str(v))])),
        other => Err(format!(
            "{} cannot be converted to a list",
            pyfmt::type_class(other)
        )),
    }
}

/// `check_type_dict`: JSON when it starts with `{`, else `k1=v1, k2=v2` / `k1=v1 k2=v2`.
fn to_dict(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        Value::String(s) if s.starts_with('{') => match serde_json::from_str::<Value>(s) {
            Ok(d @ Value::Object(_)) => Ok(d),
            _ => Err("unable to evaluate string as dictionary".into()),
        },
        Value::String(s) if s.contains('=') => parse_kv(s),
        Value::String(_) => Err("dictionary requested, could not parse JSON or key=value".into()),
        other => Err(format!(
            "{} cannot be converted to a dict",
            pyfmt::type_class(other)
        )),
    }
}

fn parse_kv(s: &str) -> Result<Value, String> {
    let mut fields = Vec::new();
    let mut buf = String::new();
    let mut in_quote: Option<char> = None;
    let mut in_escape = false;
    for c in s.trim().chars() {
        if in_escape {
            buf.push(c);
            in_escape = false;
        } else if c == '\\' {
            in_escape = true;
        } else if in_quote.is_none() && (c == '\'' || c == '"') {
            in_quote = Some(c);
        } else if in_quote == Some(c) {
            in_quote = None;
        } else if in_quote.is_none() && (c == ',' || c == ' ') {
            if !buf.is_empty() {
                fields.push(std::mem::take(&mut buf));
            }
        } else {
            buf.push(c);
        }
    }
    if !buf.is_empty() {
        fields.push(buf);
    }
    let mut map = Map::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or("unable to evaluate string in the \"key=value\" format as dictionary")?;
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(map))
}

/// `os.path.expanduser(os.path.expandvars(v))`: `$VAR`/`${VAR}` set in the environment are
/// replaced (unset ones are left as written), then a leading `~` or `~/`.
pub fn expand_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let bytes: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' && i + 1 < bytes.len() {
            let (name, end) = if bytes[i + 1] == '{' {
                match bytes[i + 2..].iter().position(|c| *c == '}') {
                    Some(close) => (
                        bytes[i + 2..i + 2 + close].iter().collect::<String>(),
                        i + 3 + close,
                    ),
                    None => (String::new(), i),
                }
            } else {
                let len = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .count();
                (
                    bytes[i + 1..i + 1 + len].iter().collect::<String>(),
                    i + 1 + len,
                )
            };
            if !name.is_empty() {
                if let Ok(val) = std::env::var(&name) {
                    out.push_str(&val);
                    i = end;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    if out == "~" || out.starts_with("~/") {
        if let Ok(home) = std::env::var("HOME") {
            out = format!("{home}{}", &out[1..]);
        }
    }
    out
}
