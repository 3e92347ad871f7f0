//! `pocketid_login_code`: an Ansible module (and CLI) that makes a single-use PocketID login code
//! for a user and delivers it by e-mail, on the terminal, or in a new 0600 file.
fn main() {
    ansible_module::main::<pocketid::PocketIdLoginCode>()
}
