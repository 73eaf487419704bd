use cmod_runtime::compute_function;

#[derive(schemars::JsonSchema)]
struct Query {
    text: String,
}

#[compute_function]
fn search(query: Query) -> String {
    query.text
}

fn main() {}
