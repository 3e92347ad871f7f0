fn main() {
    ansible_module::main::<forgejo_dispatch::RedeployTrigger>()
}
