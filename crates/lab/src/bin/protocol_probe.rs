//! A minimal module on `ansible_module`, used by the protocol tests: it exercises typed options,
//! check mode, diff mode, secrets in messages, and a forced panic.

use ansible_module::{Context, Failure, Kind, Module, Opt, Outcome, Secret};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    name: String,
    count: i64,
    flag: bool,
    secret: Option<Secret>,
    mode: String,
    want_changed: bool,
    panic: bool,
    fail: bool,
    dump_to: Option<String>,
    tags: Vec<String>,
}

struct Probe;

impl Module for Probe {
    const NAME: &'static str = "protocol_probe";
    const ABOUT: &'static str = "Protocol probe module for tests";
    type Params = Params;

    fn options() -> Vec<Opt> {
        vec![
            Opt::str("name").required().help("A name to greet"),
            Opt::int("count").default(1),
            Opt::bool("flag").default(false),
            Opt::str("secret")
                .no_log()
                .env("PROBE_SECRET")
                .alias("password"),
            Opt::str("mode").choices(&["fast", "slow"]).default("fast"),
            Opt::bool("want_changed").default(true),
            Opt::bool("panic").default(false),
            Opt::bool("fail").default(false),
            Opt::path("dump_to"),
            Opt::list("tags", Kind::Str).default(serde_json::json!([])),
        ]
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        // The probe's one state change, marked as the HTTP clients mark a write; a panic after
        // it must report `changed: true`.
        if let (Some(path), false, true) = (&p.dump_to, ctx.check_mode, p.want_changed) {
            ansible_module::mark_state_may_have_changed();
            std::fs::write(path, format!("{} {}", p.name, p.count))?;
        }
        if p.panic {
            let s = p
                .secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default();
            panic!("forced panic carrying {s}");
        }
        let secret_text = p.secret.as_ref().map(|s| s.expose()).unwrap_or("none");
        if p.fail {
            ctx.warn(format!("about to fail; secret is {secret_text}"));
            return Err(Failure::new(format!("auth failed for token {secret_text}")));
        }
        ctx.warn(format!("echo of the secret: {secret_text}"));
        Ok(Outcome::new(p.want_changed)
            .msg(format!("hello {} (secret {secret_text})", p.name))
            .set("count", p.count)
            .set("flag", p.flag)
            .set("flag_type", if p.flag { "bool:true" } else { "bool:false" })
            .set("mode", p.mode)
            .set("tags", p.tags)
            .set("check_mode", ctx.check_mode)
            .set("echo", secret_text)
            .diff(
                serde_json::json!({"name": "<unset>", "secret": "<unset>"}),
                serde_json::json!({"name": "set", "secret": secret_text}),
            ))
    }
}

fn main() {
    ansible_module::main::<Probe>()
}
