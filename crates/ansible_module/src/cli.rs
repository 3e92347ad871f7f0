//! CLI mode: the module's options as clap flags, human output or `--json`.

use crate::spec::{Kind, Opt};
use crate::{execute, set_output_mode, stderr_is_terminal, Context, Module};
use clap::{Arg, ArgAction, Command};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputMode {
    ModuleJson,
    Human,
}

fn flag_name(opt_name: &str) -> String {
    opt_name.replace('_', "-")
}

/// Builds the clap command for a module from its option list.
pub fn command(name: &'static str, about: &'static str, spec: &[Opt]) -> Command {
    let mut cmd = Command::new(name)
        .about(about)
        .after_help(format!(
            "Module mode: `{name} <args-file>` reads Ansible's JSON arguments file and prints one JSON result.\n\
             Values of list options may be repeated or comma-separated; dict options take KEY=VALUE (repeatable) or a JSON object.\n\
             Secret options are best passed through their environment variables, which do not show in `ps`."
        ))
        .arg(Arg::new("__check").long("check").action(ArgAction::SetTrue).help("Predict the changes, change nothing"))
        .arg(Arg::new("__diff").long("diff").action(ArgAction::SetTrue).help("Show what changes (names, never values)"))
        .arg(Arg::new("__json").long("json").action(ArgAction::SetTrue).help("Print the module's JSON result"))
        // For tests that hold the sidecar docs to the declaration; not an operator's flag.
        .arg(
            Arg::new("__options_json")
                .long("options-json")
                .action(ArgAction::SetTrue)
                .hide(true),
        )
        .arg(
            Arg::new("__verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::Count)
                .help("More detail"),
        );
    for opt in spec {
        let mut help = opt.help.to_string();
        if !opt.choices.is_empty() {
            help.push_str(&format!(" [choices: {}]", opt.choices.join(", ")));
        }
        match opt.range {
            Some(crate::spec::Range::Int(a, b)) => help.push_str(&format!(" [range: {a}..{b}]")),
            Some(crate::spec::Range::Float(a, b)) => help.push_str(&format!(" [range: {a}..{b}]")),
            None => {}
        }
        if let Some(d) = &opt.default {
            help.push_str(&format!(
                " [default: {}]",
                d.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| d.to_string())
            ));
        }
        if !opt.env.is_empty() {
            help.push_str(&format!(" [env: {}]", opt.env.join(", ")));
        }
        if opt.required {
            help.push_str(" [required]");
        }
        let mut arg = Arg::new(opt.name)
            .long(flag_name(opt.name))
            .help(help)
            .value_name(opt.kind.name().to_uppercase());
        if opt.name.contains('_') {
            arg = arg.alias(opt.name);
        }
        for a in &opt.aliases {
            arg = arg.alias(flag_name(a));
        }
        arg = match opt.kind {
            Kind::Bool => arg
                .num_args(0..=1)
                .default_missing_value("true")
                .require_equals(true)
                .action(ArgAction::Set),
            Kind::List | Kind::Dict => arg.action(ArgAction::Append),
            _ => arg.action(ArgAction::Set),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Turns CLI values into the same JSON shape an args file has; coercion then applies as usual.
fn params_from_matches(spec: &[Opt], m: &clap::ArgMatches) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for opt in spec {
        let Some(values) = m.get_many::<String>(opt.name) else {
            continue;
        };
        let values: Vec<&String> = values.collect();
        let value = match opt.kind {
            Kind::List => {
                if values.len() == 1 && values[0].trim_start().starts_with('[') {
                    serde_json::from_str(values[0])
                        .map_err(|e| format!("--{}: not a JSON list: {e}", flag_name(opt.name)))?
                } else {
                    let items: Vec<Value> = values
                        .iter()
                        .flat_map(|v| v.split(','))
                        .map(|s| match opt.elements {
                            Some(Kind::Dict) | Some(Kind::Raw)
                                if s.trim_start().starts_with('{') =>
                            {
                                serde_json::from_str(s)
                                    .unwrap_or_else(|_| Value::String(s.to_string()))
                            }
                            _ => Value::String(s.to_string()),
                        })
                        .collect();
                    Value::Array(items)
                }
            }
            Kind::Dict => {
                if values.len() == 1 && values[0].trim_start().starts_with('{') {
                    Value::String(values[0].clone())
                } else {
                    let mut map = Map::new();
                    for v in values {
                        let (k, val) = v.split_once('=').ok_or_else(|| {
                            format!(
                                "--{}: expected KEY=VALUE or a JSON object",
                                flag_name(opt.name)
                            )
                        })?;
                        map.insert(k.to_string(), Value::String(val.to_string()));
                    }
                    Value::Object(map)
                }
            }
            Kind::Raw => {
                let v = values[0];
                serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
            }
            _ => Value::String(values[0].clone()),
        };
        out.insert(opt.name.to_string(), value);
    }
    Ok(out)
}

pub(crate) fn run<M: Module>(args: Vec<String>) -> i32 {
    let spec = M::options();
    let cmd = command(M::NAME, M::ABOUT, &spec);
    let matches = match cmd.try_get_matches_from(std::iter::once(M::NAME.to_string()).chain(args)) {
        Ok(m) => m,
        Err(e) => {
            // --help/--version print and exit 0; usage errors exit 2 like any clap tool.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if matches.get_flag("__options_json") {
        let list: Vec<Value> = spec.iter().map(Opt::spec_json).collect();
        println!("{}", Value::Array(list));
        return 0;
    }
    let json = matches.get_flag("__json");
    set_output_mode(if json {
        OutputMode::ModuleJson
    } else {
        OutputMode::Human
    });
    let raw = match params_from_matches(&spec, &matches) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let ctx = Context {
        module_name: M::NAME.to_string(),
        check_mode: matches.get_flag("__check"),
        diff_mode: matches.get_flag("__diff") || !json,
        no_log: false,
        verbosity: u64::from(matches.get_count("__verbose")),
        interactive: !json && stderr_is_terminal(),
        cli: true,
        ..Default::default()
    };
    execute::<M>(raw, Some(ctx))
}

/// Human output: status line, message, then the other fields. Fields that carry secrets are
/// listed by name only (`--json` prints them).
pub(crate) fn render_human(
    json: &Map<String, Value>,
    failed: bool,
    secret_keys: &[String],
) -> String {
    let mut out = String::new();
    let changed = json
        .get("changed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let status = if failed {
        "FAILED"
    } else if json
        .get("skipped")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        "skipped"
    } else if changed {
        "changed"
    } else {
        "ok"
    };
    out.push_str(status);
    if let Some(m) = json.get("msg").and_then(Value::as_str) {
        out.push_str(": ");
        out.push_str(m);
    }
    out.push('\n');
    for w in json
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or_default()));
    }
    if let Some(d) = json.get("diff") {
        out.push_str(&format!(
            "diff: {}\n",
            serde_json::to_string_pretty(d).unwrap_or_default()
        ));
    }
    for (k, v) in json {
        if matches!(
            k.as_str(),
            "changed" | "failed" | "msg" | "warnings" | "diff" | "skipped"
        ) {
            continue;
        }
        if secret_keys.contains(k) {
            out.push_str(&format!("{k}: <secret: printed only with --json>\n"));
            continue;
        }
        let shown = match v {
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        out.push_str(&format!("{k}: {shown}\n"));
    }
    out
}
