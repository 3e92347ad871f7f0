//! `sso-bench`: the measurements behind `make bench` (see `scripts/bench.sh`).

fn main() {}
