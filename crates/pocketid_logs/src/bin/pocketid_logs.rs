//! `pocketid_logs`: an Ansible module (and CLI) that reads PocketID's log lines from Loki or
//! `docker logs`, classifies the failures in them and returns them redacted.
fn main() {
    ansible_module::main::<pocketid_logs::PocketIdLogs>()
}
