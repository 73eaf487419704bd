//! The smallest cmod compute module.
//!
//! Run it on the embedded local runtime and call `add` through it:
//!
//! ```text
//! cargo run -p quickstart -- --local --invoke add '{"x": 2, "y": 3}'
//! ```
//!
//! In Foundry the same binary serves jobs from the platform's runtime.

use cmod_runtime::{Context, compute_function};

/// Adds two integers.
#[compute_function]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Why a greeting failed.
#[derive(Debug, thiserror::Error)]
enum GreetError {
    /// The name was empty.
    #[error("the name must not be empty")]
    EmptyName,
}

/// Greets someone by name.
#[compute_function(name = "greet")]
async fn hello(ctx: Context, name: String) -> Result<String, GreetError> {
    if name.trim().is_empty() {
        return Err(GreetError::EmptyName);
    }
    tracing::info!(job = ctx.job_id(), "greeting {name}");
    Ok(format!("Hello, {name}!"))
}

#[tokio::main]
async fn main() -> Result<(), cmod_runtime::Error> {
    cmod_runtime::run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_a_plain_function() {
        assert_eq!(add(2, 3), 5);
    }

    #[tokio::test]
    async fn greet_rejects_empty_names() {
        let ctx = Context::for_test("job-1");
        assert_eq!(
            hello(ctx.clone(), "Ada".into()).await.unwrap(),
            "Hello, Ada!"
        );
        assert!(matches!(
            hello(ctx, " ".into()).await,
            Err(GreetError::EmptyName)
        ));
    }
}
