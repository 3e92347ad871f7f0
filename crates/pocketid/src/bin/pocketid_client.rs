//! `pocketid_client`: an Ansible module (and CLI) that ensures one PocketID OIDC client.
fn main() {
    ansible_module::main::<pocketid::PocketIdClient>()
}
