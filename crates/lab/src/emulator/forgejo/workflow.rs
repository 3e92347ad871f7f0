//! Workflow files as the Forgejo emulator reads them: the name, `on.workflow_dispatch.inputs` and
//! the jobs with their `runs-on` labels. Parsed here on its own, not with `redeploy_trigger`'s
//! parser, so that a bug shared by both cannot hide.

use super::{Files, NO_RUNNER_LABEL, WORKFLOW_DIRS};

pub(super) struct Job {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) no_runner: bool,
}

/// One input: (key, description, required, default, type).
pub(super) type InputDef = (String, Option<String>, bool, Option<String>, String);

pub(super) struct WorkflowDef {
    pub(super) name: Option<String>,
    pub(super) inputs: Vec<InputDef>,
    pub(super) jobs: Vec<Job>,
    /// The workflow-level `concurrency`: its group (empty when not given) and
    /// `cancel-in-progress` (None when not given). A string is the group alone. Expressions in
    /// the group are not evaluated: it is taken as written.
    pub(super) concurrency: Option<(String, Option<bool>)>,
}

fn concurrency(v: Option<&serde_norway::Value>) -> Option<(String, Option<bool>)> {
    match v? {
        serde_norway::Value::Mapping(m) => Some((
            m.get("group").and_then(yaml_scalar).unwrap_or_default(),
            m.get("cancel-in-progress").and_then(|c| match c {
                serde_norway::Value::Bool(b) => Some(*b),
                serde_norway::Value::String(s) => Some(s == "true"),
                _ => None,
            }),
        )),
        other => yaml_scalar(other).map(|g| (g, None)),
    }
}

/// The workflow directory that counts: the first of [`WORKFLOW_DIRS`] holding a file.
pub(super) fn workflow_dir(files: &Files) -> Option<&'static str> {
    WORKFLOW_DIRS
        .iter()
        .copied()
        .find(|d| files.keys().any(|p| p.starts_with(&format!("{d}/"))))
}

fn yaml_scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn parse_workflow(text: &str) -> Option<WorkflowDef> {
    let doc: serde_norway::Value = serde_norway::from_str(text).ok()?;
    let map = doc.as_mapping()?;
    let name = map.get("name").and_then(yaml_scalar);
    let mut inputs = Vec::new();
    if let Some(serde_norway::Value::Mapping(on)) = map.get("on") {
        if let Some(serde_norway::Value::Mapping(wd)) = on.get("workflow_dispatch") {
            if let Some(serde_norway::Value::Mapping(ins)) = wd.get("inputs") {
                for (k, spec) in ins {
                    let Some(key) = yaml_scalar(k) else { continue };
                    let get = |f: &str| spec.as_mapping().and_then(|m| m.get(f));
                    inputs.push((
                        key,
                        get("description")
                            .and_then(yaml_scalar)
                            .filter(|d| !d.is_empty()),
                        get("required").and_then(|v| v.as_bool()).unwrap_or(false),
                        get("default").and_then(yaml_scalar),
                        get("type")
                            .and_then(yaml_scalar)
                            .unwrap_or_else(|| "string".into()),
                    ));
                }
            }
        }
    }
    let mut jobs = Vec::new();
    if let Some(serde_norway::Value::Mapping(js)) = map.get("jobs") {
        for (k, job) in js {
            let Some(id) = yaml_scalar(k) else { continue };
            let jm = job.as_mapping();
            let labels: Vec<String> = match jm.and_then(|m| m.get("runs-on")) {
                Some(serde_norway::Value::Sequence(seq)) => {
                    seq.iter().filter_map(yaml_scalar).collect()
                }
                Some(v) => yaml_scalar(v).into_iter().collect(),
                None => vec![],
            };
            jobs.push(Job {
                name: jm
                    .and_then(|m| m.get("name"))
                    .and_then(yaml_scalar)
                    .unwrap_or_else(|| id.clone()),
                id,
                no_runner: labels.iter().any(|l| l == NO_RUNNER_LABEL),
            });
        }
    }
    Some(WorkflowDef {
        name,
        inputs,
        jobs,
        concurrency: concurrency(map.get("concurrency")),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_workflow;
    use proptest::prelude::*;

    #[test]
    fn concurrency_as_a_block_or_a_string() {
        let wf = |c: &str| parse_workflow(&format!("concurrency:{c}\njobs: {{}}\n")).unwrap();
        let c = wf("\n  group: G\n  cancel-in-progress: false").concurrency;
        assert_eq!(c, Some(("G".to_string(), Some(false))));
        assert_eq!(wf(" g").concurrency, Some(("g".to_string(), None)));
        assert_eq!(parse_workflow("jobs: {}\n").unwrap().concurrency, None);
    }

    proptest! {
        // A workflow file is text the repository holds: any text, YAML or not, never panics.
        #[test]
        fn any_text_never_panics(text in "(concurrency|group|cancel-in-progress|on|jobs|inputs|:|-| |\n|\\PC){0,200}") {
            let _ = parse_workflow(&text);
        }
    }
}
