//! Streamed outputs: `impl Iterator`/`impl Stream` (also inside `Result`, also of `Result`
//! items), and concrete types with `streaming`.

use cmod_runtime::compute_function;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};

#[compute_function]
fn count(n: i32) -> impl Iterator<Item = i32> {
    0..n
}

#[compute_function]
fn count_into(n: i32) -> impl IntoIterator<Item = i32> + Send {
    0..n
}

#[compute_function]
async fn ticks(n: i32) -> impl Stream<Item = i32> + Send + 'static {
    stream::iter(0..n)
}

#[compute_function]
fn fallible(n: i32) -> Result<impl Iterator<Item = Result<String, std::fmt::Error>>, String> {
    Ok((0..n).map(|i| Ok(i.to_string())))
}

#[compute_function(streaming)]
fn listed() -> Vec<bool> {
    vec![true]
}

#[compute_function(streaming)]
async fn boxed() -> BoxStream<'static, i64> {
    stream::iter([1]).boxed()
}

#[compute_function(streaming)]
fn boxed_iter() -> Result<Box<dyn Iterator<Item = u8> + Send>, String> {
    Ok(Box::new([1u8].into_iter()))
}

fn main() {
    let _ = (count(1), count_into(1), ticks(1), fallible(1), listed(), boxed(), boxed_iter());
}
