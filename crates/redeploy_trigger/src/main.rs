fn main() {
    ansible_module::main::<redeploy_trigger::RedeployTrigger>()
}
