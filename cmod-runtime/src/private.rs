//! Items used by code that `#[compute_function]` and `#[pipeline]` generate. Not public API:
//! anything here may change in any release.

pub use ::futures_util;
pub use ::inventory;
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
pub use ::tokio;
pub use ::tracing;

pub use crate::context::Context;
pub use crate::functions::{ErrorKind, FunctionDef, JobError, JobFuture, JobInput, Output};

// `#[compute_function]`: decoding, calling, encoding (see `function_call.rs`).
pub use crate::functions::call::{
    ErrorTag, FunctionErrorType, FunctionResult, StreamTag, ViaDisplay, ViaIntoIterator,
    ViaNothing, ViaStdError, ViaStream, box_future, decode_input, encode_item, encode_item_into,
    encode_value, into_result, iter_output, run_blocking, stream_output,
};
// `#[compute_function]`: compile-time checks, each spanned at the user's tokens.
pub use crate::functions::call::{
    FoundryMapKey, InputDeserialize, InputSchema, InputTag, KeyType, MapKeyTag, SendTag,
    ViaInputDeserialize, ViaInputSchema, ViaMap, ViaNoInputDeserialize, ViaNoInputSchema,
    ViaNotMap, ViaNotSend, ViaSend, assert_input, assert_map_key, assert_map_key_of,
    async_compute_function_must_return_a_send_future,
};
// `#[compute_function(edits = [...])]`: ontology edits (see `ontology/`).
pub use crate::ontology::{EditsOutput, EditsSpec, encode_edits};
// `#[compute_function]`: schemas (see `schema/build.rs`).
pub use crate::schema::build::{FunctionSpec, InputSpec, function_schema, schema_of};
pub use crate::schema::{FunctionSchema, SchemaError};
// `#[pipeline]`: the definition, the handle traits and the result conversion (see `pipeline/`).
pub use crate::pipeline::{
    AfterSuccess, AliasDef, InputHandle, OutputHandle, PipelineContext, PipelineDef,
    PipelineFuture, TransactionType, pipeline_result,
};
