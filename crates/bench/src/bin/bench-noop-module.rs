//! `bench-noop-module`: the smallest binary module, for `make bench` (g): it reads its args file
//! and answers `changed: false`. Against a real module it shows what the module's size and its
//! own work add to a task.

fn main() {
    let read = std::env::args()
        .nth(1)
        .map(|p| std::fs::read(p).is_ok())
        .unwrap_or(false);
    if read {
        println!(r#"{{"changed": false, "msg": "noop"}}"#);
    } else {
        println!(r#"{{"failed": true, "msg": "bench-noop-module: no readable args file given"}}"#);
        std::process::exit(1);
    }
}
