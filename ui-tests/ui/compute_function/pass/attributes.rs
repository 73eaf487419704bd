//! Every attribute argument, including a `crate` path through a re-export.

mod rt {
    pub use cmod_runtime::*;
}

#[cmod_runtime::compute_function(name = "text.upper", rename_all = "SCREAMING_SNAKE_CASE")]
fn upper(some_text: String) -> String {
    some_text.to_uppercase()
}

#[rt::compute_function(crate = "crate::rt", name = "via-reexport")]
fn reexported(x: i32) -> i32 {
    x
}

#[cmod_runtime::compute_function(streaming, crate = "::cmod_runtime")]
fn streamed() -> Vec<i32> {
    vec![1]
}

fn main() {
    let _ = (upper("a".into()), reexported(1), streamed());
    let _ = rt::Registry::builder()
        .function(rt::function!(upper))
        .function(rt::function!(reexported))
        .function(rt::function!(streamed));
}
