//! How a return type becomes an outcome: `Result<T, E>` and the error's message, and whether
//! a `streaming` return type is a `Stream` or an iterator (autoref specialization).

use std::fmt;
use std::marker::PhantomData;

use futures_util::Stream;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

use super::codec::{encode_item, encode_item_into};
use super::stream::{iter_output, stream_output};
use crate::functions::outcome::{ErrorKind, JobError, JobFuture};

/// A `#[compute_function]` return type whose last path segment is `Result`: `Result<T, E>`
/// (also through aliases such as `anyhow::Result<T>` or `io::Result<T>`). `T` is the output;
/// `E`'s message becomes a `FunctionError` result.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Result<T, E>`",
    label = "`#[compute_function]` treats a return type named `Result` as `Result<T, E>`",
    note = "the output is `T`; the error `E` must implement `std::fmt::Display`"
)]
pub trait FunctionResult {
    /// The output type.
    type Ok;
    /// The error type.
    type Err;
    /// Converts into a plain `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

impl<T, E> FunctionResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
}

/// The error type of a `#[compute_function]` (`E` of `Result<T, E>`): its `Display` message
/// becomes the job's error result. The generated code checks this once, at the error type.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of a `#[compute_function]` must implement `std::fmt::Display`",
    label = "`{Self}` does not implement `Display`",
    note = "its message becomes the job's error result; derive it with `thiserror::Error` or implement `Display`"
)]
pub trait FunctionErrorType {}

impl<E: fmt::Display + ?Sized> FunctionErrorType for E {}

/// [`FunctionResult::into_result`], requiring a [`FunctionErrorType`]: the generated code calls
/// it once per function (and once per item encoder), so a missing `Display` is one error.
pub fn into_result<R>(result: R) -> Result<R::Ok, R::Err>
where
    R: FunctionResult,
    R::Err: FunctionErrorType,
{
    result.into_result()
}

/// Wraps a user error to pick, by autoref specialization, how it becomes a `FunctionError`:
/// errors implementing `std::error::Error` add their `source()` chain ([`ViaStdError`]), other
/// `Display` types use `{:#}` (which prints `anyhow`'s chain) ([`ViaDisplay`]). Call it as
/// `(&&ErrorTag(&e)).__cmod_function_error()`; [`ViaNothing`] only keeps a missing `Display`
/// (reported by [`into_result`]) from producing a second, confusing error.
#[derive(Debug)]
pub struct ErrorTag<'a, E: ?Sized>(pub &'a E);

/// See [`ErrorTag`].
pub trait ViaStdError {
    /// The `FunctionError` for this error.
    fn __cmod_function_error(&self) -> JobError;
}

impl<E: std::error::Error + ?Sized> ViaStdError for &ErrorTag<'_, E> {
    fn __cmod_function_error(&self) -> JobError {
        let mut message = self.0.to_string();
        let mut next = self.0.source();
        // Bounded: a source chain is never this deep unless something is wrong.
        for _ in 0..32 {
            let Some(source) = next else { break };
            let text = source.to_string();
            // Many errors already print their source; don't repeat it.
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            next = source.source();
        }
        JobError::new(ErrorKind::FunctionError, message)
    }
}

/// See [`ErrorTag`].
pub trait ViaDisplay {
    /// The `FunctionError` for this error.
    fn __cmod_function_error(&self) -> JobError;
}

impl<E: fmt::Display + ?Sized> ViaDisplay for &&ErrorTag<'_, E> {
    fn __cmod_function_error(&self) -> JobError {
        JobError::new(ErrorKind::FunctionError, format!("{:#}", self.0))
    }
}

/// See [`ErrorTag`].
pub trait ViaNothing {
    /// A `FunctionError` without a message (never used: such code does not compile).
    fn __cmod_function_error(&self) -> JobError;
}

impl<E: ?Sized> ViaNothing for ErrorTag<'_, E> {
    fn __cmod_function_error(&self) -> JobError {
        JobError::new(ErrorKind::FunctionError, "the function failed")
    }
}

/// Picks, by autoref specialization, how a concrete return type of a function declared
/// `streaming` is streamed: as a [`Stream`] ([`ViaStream`]) or an [`IntoIterator`]
/// ([`ViaIntoIterator`]).
pub struct StreamTag<R>(PhantomData<fn() -> R>);

impl<R> StreamTag<R> {
    /// The tag for `R`.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<R> Default for StreamTag<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> fmt::Debug for StreamTag<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamTag")
    }
}

/// See [`StreamTag`].
pub trait ViaStream {
    /// The streamed value.
    type Value;
    /// The schema of one item.
    fn __cmod_item_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// Streams the value.
    fn __cmod_stream(&self, value: Self::Value) -> JobFuture;
}

impl<S> ViaStream for StreamTag<S>
where
    S: Stream + Send + 'static,
    S::Item: Serialize + JsonSchema,
{
    type Value = S;
    fn __cmod_item_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<S::Item>()
    }
    fn __cmod_stream(&self, value: S) -> JobFuture {
        let output = stream_output(value, |item| encode_item(&item));
        Box::pin(async move { Ok(output) })
    }
}

/// See [`StreamTag`].
pub trait ViaIntoIterator {
    /// The iterated value.
    type Value;
    /// The schema of one item.
    fn __cmod_item_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// Streams the value's items.
    fn __cmod_stream(&self, value: Self::Value) -> JobFuture;
}

impl<I> ViaIntoIterator for &StreamTag<I>
where
    I: IntoIterator + Send + 'static,
    I::Item: Serialize + JsonSchema,
{
    type Value = I;
    fn __cmod_item_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<I::Item>()
    }
    fn __cmod_stream(&self, value: I) -> JobFuture {
        Box::pin(iter_output(
            move || Ok(value),
            |buf, item| encode_item_into(buf, &item),
        ))
    }
}
