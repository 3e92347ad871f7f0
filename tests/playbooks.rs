//! The other playbooks end to end against the lab: drift check, backfill (vault-write from a
//! harvest), pocketid-setup and redeploy, and the collection built and installed offline.
fn main() {}
