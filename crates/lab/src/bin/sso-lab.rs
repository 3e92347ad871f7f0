//! `sso-lab up|down|status`: the stand-in homelab for the demo and manual testing.
fn main() {
    eprintln!("sso-lab: not yet assembled");
    std::process::exit(2);
}
