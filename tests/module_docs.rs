//! Every module's documentation, as `ansible-doc` renders it from the sidecar and the doc
//! fragments, states the options the binary declares: name, type, elements, default, choices,
//! aliases, required and environment fallbacks. The declaration comes from the binary itself
//! (`--options-json`), so a new module needs only its sidecar and its name in the module list.

use e2e::{built_bin, MODULES};
use lab::tools::{repo_root, venv_bin};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The collection as ansible-doc finds it: metadata, sidecar docs, doc fragments, and an empty
/// file per module (ansible-doc needs the plugin to exist, not to run it).
fn doc_tree(root: &Path) {
    let src = repo_root().join("ansible/collection");
    let coll = root.join("ansible_collections/homelab/sso");
    let modules = coll.join("plugins/modules");
    let fragments = coll.join("plugins/doc_fragments");
    for d in [&modules, &fragments, &coll.join("meta")] {
        std::fs::create_dir_all(d).unwrap();
    }
    for f in ["galaxy.yml", "meta/runtime.yml"] {
        std::fs::copy(src.join(f), coll.join(f)).unwrap();
    }
    for entry in std::fs::read_dir(src.join("plugins/doc_fragments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, fragments.join(path.file_name().unwrap())).unwrap();
        }
    }
    for m in MODULES {
        let doc = format!("{m}.yml");
        std::fs::copy(src.join("plugins/modules").join(&doc), modules.join(&doc))
            .unwrap_or_else(|e| panic!("{m} has no sidecar doc: {e}"));
        std::fs::write(modules.join(m), "").unwrap();
    }
}

/// The binary's own option declarations, by name.
fn declared(module: &str) -> Map<String, Value> {
    let out = testkit::succeed(Command::new(built_bin(module)).arg("--options-json"));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("options as JSON");
    list.into_iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o))
        .collect()
}

fn description_text(doc: &Value) -> String {
    match &doc["description"] {
        Value::Array(lines) => lines
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// The variables a description names as fallbacks: every `E(NAME)` in a sentence that starts
/// with "Falls back to" (the one form the docs use for an `env` fallback).
fn documented_env(doc: &Value) -> BTreeSet<String> {
    let text = description_text(doc);
    let mut vars = BTreeSet::new();
    for (i, _) in text.match_indices("Falls back to ") {
        let rest = &text[i..];
        let sentence = rest.split(". ").next().unwrap_or(rest);
        for part in sentence.split("E(").skip(1) {
            if let Some((name, _)) = part.split_once(')') {
                vars.insert(name.to_string());
            }
        }
    }
    vars
}

fn str_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| s.to_string())
        })
        .collect()
}

/// Defaults compare as values; numbers by value, so that a documented `5` equals a declared `5.0`.
fn same_default(doc: &Value, code: &Value) -> bool {
    match (doc, code) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// The differences between one option's documentation and its declaration.
fn compare_option(name: &str, doc: &Value, code: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, d: String, c: String| {
        if d != c {
            out.push(format!(
                "option {name}: {what} documented {d}, declared {c}"
            ));
        }
    };
    let doc_type = doc["type"].as_str().unwrap_or("str");
    differ(
        "type",
        doc_type.into(),
        code["type"].to_string().replace('"', ""),
    );
    differ(
        "elements",
        doc["elements"].to_string(),
        code["elements"].to_string(),
    );
    differ(
        "required",
        doc["required"].as_bool().unwrap_or(false).to_string(),
        code["required"].as_bool().unwrap_or(false).to_string(),
    );
    if !same_default(&doc["default"], &code["default"]) {
        differ(
            "default",
            doc["default"].to_string(),
            code["default"].to_string(),
        );
    }
    differ(
        "choices",
        doc["choices"].to_string(),
        code["choices"].to_string(),
    );
    differ(
        "aliases",
        format!("{:?}", str_set(&doc["aliases"])),
        format!("{:?}", str_set(&code["aliases"])),
    );
    differ(
        "env fallback (\"Falls back to E(VAR)\")",
        format!("{:?}", documented_env(doc)),
        format!("{:?}", str_set(&code["env"])),
    );
    // Option docs carry no `no_log` (validate-modules refuses it); where one does, it must agree.
    if let Some(d) = doc.get("no_log") {
        differ(
            "no_log",
            d.to_string(),
            code["no_log"].as_bool().unwrap_or(false).to_string(),
        );
    }
    out
}

#[test]
fn every_module_documents_exactly_the_options_it_declares() {
    let dir = tempfile::tempdir().unwrap();
    doc_tree(dir.path());
    let out = testkit::succeed(
        Command::new(venv_bin("ansible-doc"))
            .args(["--json", "-t", "module"])
            .args(MODULES.iter().map(|m| format!("homelab.sso.{m}")))
            .env("ANSIBLE_COLLECTIONS_PATH", dir.path())
            .env("ANSIBLE_NOCOLOR", "1"),
    );
    let rendered: Map<String, Value> =
        serde_json::from_slice(&out.stdout).expect("ansible-doc --json output");
    let mut problems = Vec::new();
    for m in MODULES {
        let Some(doc) = rendered.get(&format!("homelab.sso.{m}")) else {
            problems.push(format!("{m}: ansible-doc rendered no documentation"));
            continue;
        };
        let documented = doc["doc"]["options"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let code = declared(m);
        for name in code.keys().filter(|n| !documented.contains_key(*n)) {
            problems.push(format!("{m}: option {name} is declared but not documented"));
        }
        for name in documented.keys().filter(|n| !code.contains_key(*n)) {
            problems.push(format!("{m}: option {name} is documented but not declared"));
        }
        for (name, c) in &code {
            if let Some(d) = documented.get(name) {
                problems.extend(
                    compare_option(name, d, c)
                        .into_iter()
                        .map(|p| format!("{m}: {p}")),
                );
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs and declarations differ:\n{}",
        problems.join("\n")
    );
}
