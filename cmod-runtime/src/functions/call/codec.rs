//! Decoding a job's `query` into the inputs, encoding results and stream items.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::functions::outcome::{ErrorKind, JobError, Output};

/// Decodes the job's `query` into the generated input struct.
///
/// A `null` query is read as `{}` (so functions without required inputs accept it). Errors are
/// `InvalidInput` and name the input and the path inside it:
/// ``input `p` at `p.moment`: invalid timestamp `x`: …``, ``missing required input `x` ``.
pub fn decode_input<T: DeserializeOwned>(input: &RawValue) -> Result<T, JobError> {
    let text = match input.get().trim() {
        "null" => "{}",
        other => other,
    };
    // serde would also accept a struct as a positional array; the contract is an object.
    let not_an_object = match text.as_bytes().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        _ => Some("a number"),
    };
    if let Some(kind) = not_an_object {
        return Err(JobError::new(
            ErrorKind::InvalidInput,
            format!("the query must be a JSON object with one entry per input, not {kind}"),
        ));
    }
    // Fast path without path tracking; on error, decode again with it for the message.
    serde_json::from_str(text).map_err(|first| {
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                input_error(&path, &e.into_inner())
            }
            Ok(_) => input_error(".", &first),
        }
    })
}

fn input_error(path: &str, err: &serde_json::Error) -> JobError {
    let msg = without_position(err);
    let message = if path == "." {
        if let Some(rest) = msg.strip_prefix("missing field ") {
            format!("missing required input {rest}")
        } else if let Some(rest) = msg.strip_prefix("unknown field ") {
            format!("unknown input {rest}")
        } else {
            format!("the query must be a JSON object with one entry per input: {msg}")
        }
    } else {
        let input = path.split(['.', '[']).next().unwrap_or(path);
        // serde_path_to_error puts an unknown key into the path.
        let top_level_unknown = (input == path)
            .then(|| msg.strip_prefix("unknown field "))
            .flatten();
        if let Some(rest) = top_level_unknown {
            match rest.strip_suffix(", there are no fields") {
                Some(name) => format!("unknown input {name}: this function takes no inputs"),
                None => format!("unknown input {rest}"),
            }
        } else if input == path {
            format!("input `{input}`: {msg}")
        } else {
            format!("input `{input}` at `{path}`: {msg}")
        }
    };
    JobError::new(ErrorKind::InvalidInput, message)
}

/// serde_json's message without its ` at line 1 column 17` suffix (noise for a one-line query).
fn without_position(err: &serde_json::Error) -> String {
    let msg = err.to_string();
    if err.line() == 0 {
        return msg;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match msg.strip_suffix(&suffix) {
        Some(m) => m.to_owned(),
        None => msg,
    }
}

/// Encodes a (non-streamed) result.
pub fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Output, JobError> {
    encode_item(value).map(Output::Json)
}

/// Encodes one value (a result, or one streamed item) as JSON bytes. Errors are
/// `SerializationError` and name the path inside the value.
pub fn encode_item<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JobError> {
    serde_json::to_vec(value).map_err(|first| serialize_error(value, first))
}

/// Appends one value's JSON to `buf` (streamed items share a buffer per batch); on an error
/// `buf` is left as it was.
pub fn encode_item_into<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), JobError> {
    let start = buf.len();
    serde_json::to_writer(&mut *buf, value).map_err(|first| {
        buf.truncate(start);
        serialize_error(value, first)
    })
}

/// The `SerializationError` of `value`, naming the path inside it where serialization failed.
fn serialize_error<T: Serialize + ?Sized>(value: &T, first: serde_json::Error) -> JobError {
    {
        let mut buf = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut buf);
        let (path, err) = match serde_path_to_error::serialize(value, &mut ser) {
            Err(e) => (e.path().to_string(), e.into_inner()),
            Ok(()) => (".".to_owned(), first),
        };
        let message = if path == "." {
            format!("the result could not be serialized to JSON: {err}")
        } else {
            format!("the result could not be serialized to JSON at `{path}`: {err}")
        };
        JobError::new(ErrorKind::SerializationError, message)
    }
}
