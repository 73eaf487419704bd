use cmod_runtime::compute_function;

#[derive(serde::Deserialize)]
struct Query {
    text: String,
}

#[compute_function]
async fn search(limit: i32, query: Option<Query>) -> String {
    let _ = limit;
    query.map(|q| q.text).unwrap_or_default()
}

fn main() {}
