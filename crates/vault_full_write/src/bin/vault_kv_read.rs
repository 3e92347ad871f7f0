fn main() {
    ansible_module::main::<vault_full_write::VaultKvRead>()
}
