fn main() {
    ansible_module::main::<vault_kv::VaultKvRead>()
}
