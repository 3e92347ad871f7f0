//! `pocketid_api_key`: an Ansible module (and CLI) that verifies a new PocketID API key and
//! revokes the owner's old keys.
fn main() {
    ansible_module::main::<pocketid::PocketIdApiKey>()
}
