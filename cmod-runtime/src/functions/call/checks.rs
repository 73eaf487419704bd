//! Compile-time checks the generated code calls once per input / map key / `async fn`, each
//! spanned at the user's tokens.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::codec::decode_input;
use crate::functions::outcome::{ErrorKind, JobError};
use crate::schema::build::{FunctionSpec, function_schema};
use crate::schema::{FunctionSchema, SchemaError};

// Compile-time checks. The generated code calls these once per input / map / `async fn`, each
// spanned at the user's tokens, so a misuse is one error that says what to do. The `Via…`
// fallbacks below exist only so that a failed check is not repeated by the code that needs
// the same bound (the derive, `decode_input`, the job future); code that selects a fallback
// never compiles.
// ---------------------------------------------------------------------------------------------

/// An input type of a `#[compute_function]` must be deserializable.
#[diagnostic::on_unimplemented(
    message = "the input type `{Self}` of a `#[compute_function]` must implement `serde::Deserialize`",
    label = "`{Self}` does not implement `Deserialize`",
    note = "inputs are decoded from the job's JSON: add `#[derive(serde::Deserialize, schemars::JsonSchema)]` to `{Self}`"
)]
pub trait InputDeserialize {}

impl<T: DeserializeOwned> InputDeserialize for T {}

/// An input type of a `#[compute_function]` must describe its schema.
#[diagnostic::on_unimplemented(
    message = "the input type `{Self}` of a `#[compute_function]` must implement `schemars::JsonSchema` from schemars 1.x",
    label = "`{Self}` does not implement schemars 1.x's `JsonSchema`",
    note = "the function's Foundry schema is built from it: add `#[derive(serde::Deserialize, schemars::JsonSchema)]` to `{Self}`",
    note = "if `{Self}` already derives `JsonSchema`, it is from another schemars version (0.8 is a different trait): use `schemars = \"1\"` in Cargo.toml, or derive `cmod_runtime::JsonSchema` (README, \"A new crate\")"
)]
pub trait InputSchema {}

impl<T: JsonSchema + ?Sized> InputSchema for T {}

/// Checks one input type (generated once per input, at its type).
pub fn assert_input<T: InputDeserialize + InputSchema>() {}

/// A key type Foundry allows in a `map` (docs/protocol.md §4.3): strings, integers up to 64 bits,
/// booleans, floats, decimals, dates, timestamps and binary.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the key type of a map in a `#[compute_function]`",
    label = "Foundry has no map key type for `{Self}`",
    note = "Foundry map keys are strings, integers (`i8`..`i64`, `u8`..`u32`), `bool`, floats, decimals, dates, timestamps or binary; use one of those (e.g. a `String` key) or a list of structs"
)]
pub trait FoundryMapKey {}

macro_rules! foundry_map_keys {
    ($($ty:ty),* $(,)?) => { $(impl FoundryMapKey for $ty {})* };
}

foundry_map_keys!(
    String,
    str,
    char,
    bool,
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    f32,
    f64,
    crate::types::Binary,
    crate::types::Decimal,
    crate::types::Date,
    crate::types::Timestamp,
    rust_decimal::Decimal,
    chrono::NaiveDate,
);

impl<Tz: chrono::TimeZone> FoundryMapKey for chrono::DateTime<Tz> {}
impl<T: FoundryMapKey + ?Sized> FoundryMapKey for &T {}
impl<T: FoundryMapKey + ?Sized> FoundryMapKey for Box<T> {}
impl<T: FoundryMapKey + ToOwned + ?Sized> FoundryMapKey for std::borrow::Cow<'_, T> {}

/// Checks a map key type written in a signature (`HashMap<K, V>`, `BTreeMap<K, V>`), at `K`.
pub fn assert_map_key<K: FoundryMapKey + ?Sized>() {}

/// Checks the key type found by [`MapKeyTag`].
pub fn assert_map_key_of<K: FoundryMapKey + ?Sized>(_key: KeyType<K>) {}

/// A key type, as found by [`MapKeyTag`].
pub struct KeyType<K: ?Sized>(PhantomData<fn() -> PhantomData<K>>);

impl<K: ?Sized> fmt::Debug for KeyType<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyType")
    }
}

/// Finds the key type of a map type the macro cannot see as one (a type alias such as
/// `type Scores = HashMap<Point, i32>`): `(&MapKeyTag::<T>::new()).__cmod_map_key()` is the
/// map's key type for `HashMap`/`BTreeMap` ([`ViaMap`]) and `String` (always allowed) for any
/// other type ([`ViaNotMap`]).
pub struct MapKeyTag<T: ?Sized>(PhantomData<fn() -> PhantomData<T>>);

impl<T: ?Sized> MapKeyTag<T> {
    /// The tag for `T`.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: ?Sized> Default for MapKeyTag<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized> fmt::Debug for MapKeyTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MapKeyTag")
    }
}

/// See [`MapKeyTag`].
pub trait ViaMap {
    /// The map's key type.
    type Key: ?Sized;
    /// The map's key type.
    fn __cmod_map_key(&self) -> KeyType<Self::Key>;
}

impl<K, V, S> ViaMap for MapKeyTag<std::collections::HashMap<K, V, S>> {
    type Key = K;
    fn __cmod_map_key(&self) -> KeyType<K> {
        KeyType(PhantomData)
    }
}

impl<K, V> ViaMap for MapKeyTag<std::collections::BTreeMap<K, V>> {
    type Key = K;
    fn __cmod_map_key(&self) -> KeyType<K> {
        KeyType(PhantomData)
    }
}

/// See [`MapKeyTag`].
pub trait ViaNotMap {
    /// `String`: not a map, nothing to check.
    fn __cmod_map_key(&self) -> KeyType<String>;
}

impl<T: ?Sized> ViaNotMap for &MapKeyTag<T> {
    fn __cmod_map_key(&self) -> KeyType<String> {
        KeyType(PhantomData)
    }
}

/// Picks how the generated code decodes and describes the hidden input struct `I`: with its
/// `Deserialize` / `JsonSchema` impls ([`ViaInputDeserialize`], [`ViaInputSchema`]) or, when an
/// input type lacks one (already reported by [`assert_input`] at that input), with a fallback
/// that adds no second error ([`ViaNoInputDeserialize`], [`ViaNoInputSchema`]).
pub struct InputTag<I>(PhantomData<fn() -> I>);

impl<I> InputTag<I> {
    /// The tag for `I`.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<I> Default for InputTag<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I> fmt::Debug for InputTag<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InputTag")
    }
}

/// See [`InputTag`].
pub trait ViaInputDeserialize {
    /// The input struct.
    type Input;
    /// [`decode_input`].
    fn __cmod_decode(&self, input: &RawValue) -> Result<Self::Input, JobError>;
}

impl<I: DeserializeOwned> ViaInputDeserialize for InputTag<I> {
    type Input = I;
    fn __cmod_decode(&self, input: &RawValue) -> Result<I, JobError> {
        decode_input(input)
    }
}

/// See [`InputTag`].
pub trait ViaNoInputDeserialize {
    /// The input struct.
    type Input;
    /// An error (never used: such code does not compile).
    fn __cmod_decode(&self, input: &RawValue) -> Result<Self::Input, JobError>;
}

impl<I> ViaNoInputDeserialize for &InputTag<I> {
    type Input = I;
    fn __cmod_decode(&self, _input: &RawValue) -> Result<I, JobError> {
        Err(JobError::new(
            ErrorKind::InvalidInput,
            "an input type does not implement `serde::Deserialize`",
        ))
    }
}

/// See [`InputTag`].
pub trait ViaInputSchema {
    /// [`function_schema`](crate::schema::build::function_schema).
    fn __cmod_function_schema(
        &self,
        spec: &FunctionSpec,
        output: fn(&mut SchemaGenerator) -> Schema,
    ) -> Result<FunctionSchema, SchemaError>;
}

impl<I: JsonSchema> ViaInputSchema for InputTag<I> {
    fn __cmod_function_schema(
        &self,
        spec: &FunctionSpec,
        output: fn(&mut SchemaGenerator) -> Schema,
    ) -> Result<FunctionSchema, SchemaError> {
        function_schema::<I>(spec, output)
    }
}

/// See [`InputTag`].
pub trait ViaNoInputSchema {
    /// An error (never used: such code does not compile).
    fn __cmod_function_schema(
        &self,
        spec: &FunctionSpec,
        output: fn(&mut SchemaGenerator) -> Schema,
    ) -> Result<FunctionSchema, SchemaError>;
}

impl<I> ViaNoInputSchema for &InputTag<I> {
    fn __cmod_function_schema(
        &self,
        _spec: &FunctionSpec,
        _output: fn(&mut SchemaGenerator) -> Schema,
    ) -> Result<FunctionSchema, SchemaError> {
        Err(SchemaError::serialize(
            "an input type does not implement `schemars::JsonSchema`",
        ))
    }
}

/// The future of an `async fn` annotated with `#[compute_function]` must be `Send`: jobs run
/// on tokio's multi-threaded runtime. Generated once per `async fn`, at its name, so a
/// non-`Send` future is one error there (with rustc's note on the value held across an
/// `.await`).
pub fn async_compute_function_must_return_a_send_future<F: Future + Send>(_future: &F) {}

/// Passes a `Send` future through ([`ViaSend`]); for any other future ([`ViaNotSend`]; already
/// reported by [`async_compute_function_must_return_a_send_future`]) yields a `Send` stand-in,
/// so the job future adds no second error. Call it as `SendTag(future).__cmod_send()`.
#[derive(Debug)]
pub struct SendTag<F>(pub F);

/// See [`SendTag`].
pub trait ViaSend {
    /// The future.
    type Future;
    /// The future itself.
    fn __cmod_send(self) -> Self::Future;
}

impl<F: Future + Send> ViaSend for SendTag<F> {
    type Future = F;
    fn __cmod_send(self) -> F {
        self.0
    }
}

/// See [`SendTag`].
pub trait ViaNotSend {
    /// A stand-in future.
    type Future;
    /// A stand-in (never used: such code does not compile).
    fn __cmod_send(self) -> Self::Future;
}

impl<F: Future> ViaNotSend for &SendTag<F> {
    type Future = std::future::Pending<F::Output>;
    fn __cmod_send(self) -> Self::Future {
        std::future::pending()
    }
}
