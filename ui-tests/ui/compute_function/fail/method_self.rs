use cmod_runtime::compute_function;

struct Service;

impl Service {
    #[compute_function]
    fn run(&self, x: i32) -> i32 {
        x
    }
}

fn main() {}
