//! `bench-noop-module`: the smallest binary module, for `make bench` (g): it reads its args file
//! and answers `changed: false`. Against a real module it shows what the module's size and its
//! own work add to a task. With `answer_bytes: N` in its args its answer is padded to about N
//! bytes, so that it returns as much as the module it stands beside.

fn main() {
    let args = std::env::args().nth(1).and_then(|p| std::fs::read(p).ok());
    let Some(args) = args else {
        println!(r#"{{"failed": true, "msg": "bench-noop-module: no readable args file given"}}"#);
        std::process::exit(1);
    };
    let want = serde_json::from_slice::<serde_json::Value>(&args)
        .ok()
        .and_then(|v| v["answer_bytes"].as_u64())
        .unwrap_or(0) as usize;
    let base = r#"{"changed": false, "msg": "noop"}"#;
    if want <= base.len() + 10 {
        println!("{base}");
    } else {
        let pad = "x".repeat(want - base.len() - 10);
        println!(r#"{{"changed": false, "msg": "noop", "pad": "{pad}"}}"#);
    }
}
