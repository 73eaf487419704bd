//! `Result<T, E>` with any `E: Display`, also through aliases.

use cmod_runtime::compute_function;

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

mod anyhow_like {
    /// One type argument, like `anyhow::Result<T>`.
    pub type Result<T, E = String> = std::result::Result<T, E>;
}

#[compute_function]
fn plain(x: i32) -> Result<i32, MyError> {
    Ok(x)
}

#[compute_function]
fn io(path: String) -> std::io::Result<String> {
    Ok(path)
}

#[compute_function]
async fn aliased(x: i32) -> anyhow_like::Result<i32> {
    Ok(x)
}

#[compute_function]
fn unit_ok() -> Result<(), MyError> {
    Err(MyError)
}

#[compute_function]
fn boxed() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(String::new())
}

fn main() {
    let _ = (plain(1), io("p".into()), aliased(1), unit_ok(), boxed());
}
