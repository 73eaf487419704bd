//! What a job produces: the [`Output`] of a function call, or a [`JobError`].
//!
//! Every job gets exactly one result. A failure is posted to the normal result URL (Foundry has
//! no separate error channel) as one JSON object of a single documented shape:
//!
//! ```json
//! {"error": {"kind": "InvalidInput", "message": "input `x`: invalid type: string \"a\", expected i64"}}
//! ```
//!
//! `kind` is one of the [`ErrorKind`] names; `message` is meant for humans and never contains
//! tokens or secrets.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use futures_util::stream::BoxStream;
use serde::Serialize;

/// The boxed future a registered function returns.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<Output, JobError>> + Send + 'static>>;

/// The raw JSON `query` of a job, exactly as the runtime sent it.
pub type JobInput = Box<serde_json::value::RawValue>;

/// The successful result of a function call, already encoded for the wire.
pub enum Output {
    /// One JSON value, posted as the whole result body.
    Json(Vec<u8>),
    /// A streaming result: each item is one complete JSON value, sent as one HTTP chunk with no
    /// separators (docs/protocol.md §3.8). An `Err` item ends the stream; what was sent stays sent.
    Stream(BoxStream<'static, Result<bytes::Bytes, JobError>>),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Json(bytes) => f.debug_tuple("Json").field(&bytes.len()).finish(),
            Output::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Why a job failed. Serialized as the `kind` of the error result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job named a function this module does not have.
    UnknownFunction,
    /// The job's `query` could not be decoded into the function's inputs.
    InvalidInput,
    /// The function returned `Err(e)`.
    FunctionError,
    /// The function panicked.
    Panic,
    /// The function's result could not be serialized.
    SerializationError,
    /// The module shut down before the function finished.
    Shutdown,
    /// The real result could not be delivered after every retry; this replaces it.
    ResultDeliveryFailed,
}

impl ErrorKind {
    /// The wire name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UnknownFunction => "UnknownFunction",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::FunctionError => "FunctionError",
            ErrorKind::Panic => "Panic",
            ErrorKind::SerializationError => "SerializationError",
            ErrorKind::Shutdown => "Shutdown",
            ErrorKind::ResultDeliveryFailed => "ResultDeliveryFailed",
        }
    }

    /// The kind with this wire name, if any.
    #[cfg(feature = "local")]
    pub(crate) fn from_wire(name: &str) -> Option<Self> {
        [
            ErrorKind::UnknownFunction,
            ErrorKind::InvalidInput,
            ErrorKind::FunctionError,
            ErrorKind::Panic,
            ErrorKind::SerializationError,
            ErrorKind::Shutdown,
            ErrorKind::ResultDeliveryFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed job: the error result posted instead of a value.
///
/// It deliberately does not implement [`std::error::Error`]: it is data for the wire, built from
/// the user's error (any `E: Display`) by the generated code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    kind: ErrorKind,
    message: String,
}

impl JobError {
    /// A job error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The exact bytes posted as the job's result.
    pub fn to_result_body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            kind: &'static str,
            message: &'a str,
        }
        let body = Body {
            error: Inner {
                kind: self.kind.as_str(),
                message: &self.message,
            },
        };
        // Serializing two strings into a Vec cannot fail; fall back to a fixed body regardless.
        serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"error":{"kind":"SerializationError","message":"error result"}}"#.to_vec()
        })
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let e = JobError::new(ErrorKind::InvalidInput, "input `x`: bad \"quote\"");
        let v: serde_json::Value = serde_json::from_slice(&e.to_result_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"kind": "InvalidInput", "message": "input `x`: bad \"quote\""}})
        );
    }
}
