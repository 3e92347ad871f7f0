//! A workflow file's `on.workflow_dispatch.inputs`, and client-side validation of the inputs a
//! dispatch will send (Forgejo itself drops unknown inputs and checks neither choices nor numbers).

use serde_json::Value;
use std::collections::BTreeMap;

/// The type of a `workflow_dispatch` input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    String,
    Boolean,
    Number,
    Choice(Vec<String>),
    Environment,
}

#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub kind: InputKind,
    pub required: bool,
    /// Forgejo reads `default` as a string.
    pub default: Option<String>,
    pub description: Option<String>,
}

/// What the module needs from a workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: Option<String>,
    /// Whether `on:` lists `workflow_dispatch` (Forgejo dispatches a workflow without it too).
    pub dispatchable: bool,
    pub inputs: Vec<InputSpec>,
    pub jobs: Vec<String>,
}

fn scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a workflow file. The error names the problem, never the file's text.
pub fn parse(text: &str) -> Result<Workflow, String> {
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        format!("is not valid YAML{at}")
    })?;
    let map = doc.as_mapping().ok_or("is not a YAML mapping")?;
    let name = map.get("name").and_then(scalar);
    let (dispatchable, dispatch) = match map.get("on") {
        Some(serde_norway::Value::String(s)) => (s == "workflow_dispatch", None),
        Some(serde_norway::Value::Sequence(seq)) => (
            seq.iter().any(|v| v.as_str() == Some("workflow_dispatch")),
            None,
        ),
        Some(serde_norway::Value::Mapping(m)) => match m.get("workflow_dispatch") {
            Some(wd) => (true, Some(wd)),
            None => (false, None),
        },
        _ => (false, None),
    };
    let mut inputs = Vec::new();
    if let Some(serde_norway::Value::Mapping(wd)) = dispatch {
        match wd.get("inputs") {
            Some(serde_norway::Value::Mapping(ins)) => {
                for (k, spec) in ins {
                    let name = scalar(k).ok_or("has an input whose name is not a string")?;
                    let field = |f: &str| spec.as_mapping().and_then(|m| m.get(f));
                    let kind = match field("type").and_then(scalar).as_deref() {
                        None | Some("string") => InputKind::String,
                        Some("boolean") => InputKind::Boolean,
                        Some("number") => InputKind::Number,
                        Some("environment") => InputKind::Environment,
                        Some("choice") => {
                            let options = match field("options") {
                                Some(serde_norway::Value::Sequence(o)) => {
                                    o.iter().filter_map(scalar).collect()
                                }
                                _ => {
                                    return Err(format!(
                                        "declares choice input '{name}' without a list of options"
                                    ))
                                }
                            };
                            InputKind::Choice(options)
                        }
                        Some(other) => {
                            return Err(format!(
                                "declares input '{name}' of unknown type '{other}'"
                            ))
                        }
                    };
                    inputs.push(InputSpec {
                        name,
                        kind,
                        required: field("required").and_then(|v| v.as_bool()).unwrap_or(false),
                        default: field("default").and_then(scalar),
                        description: field("description")
                            .and_then(scalar)
                            .filter(|d| !d.is_empty()),
                    });
                }
            }
            None | Some(serde_norway::Value::Null) => {}
            Some(_) => return Err("has `on.workflow_dispatch.inputs` that is not a mapping".into()),
        }
    }
    let jobs = match map.get("jobs") {
        Some(serde_norway::Value::Mapping(js)) => js.keys().filter_map(scalar).collect(),
        _ => Vec::new(),
    };
    Ok(Workflow {
        name,
        dispatchable,
        inputs,
        jobs,
    })
}

/// A validated input value.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    Text(String),
    Bool(bool),
}

impl InputValue {
    /// The string Forgejo `major` understands: booleans are `"on"`/`"false"` up to v13 (which
    /// turns anything but `"on"` into false) and `"true"`/`"false"` from v14.
    pub fn encode(&self, major: u64) -> String {
        match self {
            InputValue::Text(s) => s.clone(),
            InputValue::Bool(true) if major <= 13 => "on".into(),
            InputValue::Bool(b) => b.to_string(),
        }
    }
    /// The value as the workflow sees it (`inputs.x`).
    pub fn display(&self) -> String {
        match self {
            InputValue::Text(s) => s.clone(),
            InputValue::Bool(b) => b.to_string(),
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "n" => Some(false),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
    }
}

/// Checks `given` against the workflow's inputs and returns the values to send. Every problem is
/// reported (unknown, missing required, not a scalar, bad boolean, bad number, not a choice).
/// Boolean inputs left out but declared with a default are sent explicitly, so that their default
/// survives servers that read booleans the old way.
pub fn validate(
    wf: &Workflow,
    given: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, InputValue>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    let declared: Vec<&str> = wf.inputs.iter().map(|i| i.name.as_str()).collect();
    for key in given.keys() {
        if !declared.contains(&key.as_str()) {
            let known = if declared.is_empty() {
                "it declares no inputs".to_string()
            } else {
                format!("it declares: {}", declared.join(", "))
            };
            errors.push(format!(
                "unknown input '{key}' ({known}; Forgejo would silently drop it)"
            ));
        }
    }
    for spec in &wf.inputs {
        let label = match &spec.description {
            Some(d) => format!("'{}' ({d})", spec.name),
            None => format!("'{}'", spec.name),
        };
        let raw = match given.get(&spec.name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => {
                errors.push(format!(
                    "input {label} is {}; workflow inputs are single values (strings, numbers or booleans)",
                    type_name(other)
                ));
                continue;
            }
        };
        let Some(raw) = raw else {
            if spec.kind == InputKind::Boolean {
                if let Some(d) = spec.default.as_deref().and_then(parse_bool) {
                    out.insert(spec.name.clone(), InputValue::Bool(d));
                    continue;
                }
            }
            let has_default = spec.default.as_deref().is_some_and(|d| !d.is_empty());
            if spec.required && !has_default {
                errors.push(format!("missing required input {label}"));
            }
            continue;
        };
        match &spec.kind {
            InputKind::Boolean => match parse_bool(&raw) {
                Some(b) => {
                    out.insert(spec.name.clone(), InputValue::Bool(b));
                }
                None => errors.push(format!(
                    "input {label} is a boolean: give true or false, not {raw:?}"
                )),
            },
            InputKind::Number => {
                if raw.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                    out.insert(spec.name.clone(), InputValue::Text(raw.trim().to_string()));
                } else {
                    errors.push(format!("input {label} is a number, got {raw:?}"));
                }
            }
            InputKind::Choice(options) => {
                if options.contains(&raw) {
                    out.insert(spec.name.clone(), InputValue::Text(raw));
                } else {
                    errors.push(format!(
                        "input {label} must be one of: {}; got {raw:?}",
                        options.join(", ")
                    ));
                }
            }
            InputKind::String | InputKind::Environment => {
                out.insert(spec.name.clone(), InputValue::Text(raw));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WF: &str = r#"
name: deploy-x
on:
  workflow_dispatch:
    inputs:
      reason: {description: Why, type: string, required: true}
      dry_run: {type: boolean, default: true}
      mode: {type: choice, options: [a, b], default: a}
      count: {type: number}
jobs:
  deploy: {runs-on: self-hosted, steps: [{run: "true"}]}
"#;

    fn given(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parses_inputs_and_jobs() {
        let wf = parse(WF).unwrap();
        assert!(wf.dispatchable);
        assert_eq!(wf.jobs, vec!["deploy"]);
        assert_eq!(wf.inputs.len(), 4);
        assert_eq!(
            wf.inputs[2].kind,
            InputKind::Choice(vec!["a".into(), "b".into()])
        );
        assert!(!parse("on: push\njobs: {}\n").unwrap().dispatchable);
        assert!(
            parse("on: [push, workflow_dispatch]\n")
                .unwrap()
                .dispatchable
        );
        assert!(parse("on: [\n").unwrap_err().contains("not valid YAML"));
    }

    #[test]
    fn validates_every_problem() {
        let wf = parse(WF).unwrap();
        let errs = validate(
            &wf,
            &given(json!({"nope": "1", "dry_run": "maybe", "mode": "c", "count": "x"})),
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("unknown input 'nope'"), "{all}");
        assert!(
            all.contains("missing required input 'reason' (Why)"),
            "{all}"
        );
        assert!(all.contains("boolean"), "{all}");
        assert!(all.contains("must be one of: a, b"), "{all}");
        assert!(all.contains("is a number"), "{all}");
        let errs = validate(&wf, &given(json!({"reason": ["a"]}))).unwrap_err();
        assert!(errs[0].contains("is a list"), "{errs:?}");
    }

    #[test]
    fn booleans_by_version_and_defaults() {
        let wf = parse(WF).unwrap();
        let ok = validate(&wf, &given(json!({"reason": "rotation", "count": 3}))).unwrap();
        assert_eq!(ok["dry_run"], InputValue::Bool(true));
        assert_eq!(ok["dry_run"].encode(13), "on");
        assert_eq!(ok["dry_run"].encode(14), "true");
        assert_eq!(InputValue::Bool(false).encode(13), "false");
        assert_eq!(ok["count"], InputValue::Text("3".into()));
        assert!(
            !ok.contains_key("mode"),
            "defaults of other types are left to the server"
        );
    }
}
