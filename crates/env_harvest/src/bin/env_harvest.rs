fn main() {
    ansible_module::main::<env_harvest::EnvHarvest>()
}
