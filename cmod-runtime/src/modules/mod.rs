//! [`Modules`]: calling another compute module's functions through Foundry's execute API.
//!
//! The user-facing documentation is on the struct (this module is private).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::AuthError;
use crate::context::Context;
use crate::foundry::{FoundryClient, FoundryError};

/// The path of the execute API on the stack's origin.
pub(crate) const EXECUTE_PATH: &str =
    "/contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute";

/// How long a call waits for its answer to start unless told otherwise: Foundry's own limit
/// for callers of a compute module's function (5 minutes).
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The variable overriding the default call timeout (5 minutes), in seconds (1..=86400).
pub(crate) const CALL_TIMEOUT_VAR: &str = crate::env::vars::CMOD_MODULE_CALL_TIMEOUT_SECS;

/// A client for other compute modules' functions, through Foundry's execute API
/// (docs/protocol.md §10). Cheap to clone.
///
/// ```no_run
/// # async fn f(ctx: cmod_runtime::Context) -> Result<(), Box<dyn std::error::Error>> {
/// use cmod_runtime::Modules;
///
/// const PRICER: &str = "ri.foundry.main.deployed-app.5b1e3c2a-…";
///
/// // As the user who invoked this job (their token goes with the call):
/// let total: f64 = ctx.modules()?.call(PRICER, "master", "price", &serde_json::json!({"sku": "A-1"})).await?;
///
/// // As the module's application (CLIENT_ID/CLIENT_SECRET):
/// let total: f64 = Modules::from_env()?.call(PRICER, "master", "price", &serde_json::json!({"sku": "A-1"})).await?;
/// # Ok(()) }
/// ```
///
/// A call is one `POST {stack}/contour-backend-multiplexer/api/module-group-multiplexer/compute-modules/jobs/execute`
/// with `{"deployedAppRid","deployedAppBranch","queryType","query"}`, sent through the module's
/// [`FoundryClient`] (TLS with `DEFAULT_CA_PATH`, same-origin redirects only, the 401 refresh
/// of application tokens, retries of connect errors and HTTP 429/502/503/504). The answer is
/// the callee's raw result bytes: one JSON value, or for a streaming function the values it
/// produced, one after the other. A callee's error result (`{"error": …}`) becomes
/// [`ModuleCallError::Function`].
///
/// # Time limits
///
/// Foundry gives up on a caller after 5 minutes, so a call waits up to 5 minutes for the
/// answer to start ([`Modules::timeout`] or `CMOD_MODULE_CALL_TIMEOUT_SECS` change it). Once the answer flows, the Foundry client's idle
/// limit applies: a long streamed result is never cut while it moves.
///
/// # Retries
///
/// A 502/503/504 or a refused connection is retried (up to 4 times, capped backoff). A 502 or
/// 504 may come after the callee ran, so a retried call can run the callee twice: call
/// functions that are safe to repeat, or give [`Modules::with_client`] a client built with
/// [`RetryPolicy`](crate::foundry::RetryPolicy) `max_retries: 0`.
///
/// Get one with [`Context::modules`] (as the invoking user), [`Modules::from_env`] (as the
/// module's application) or [`Modules::with_client`] (any [`FoundryClient`]).
///
/// In local mode (`CMOD_LOCAL=1`) the local Foundry serves the execute API: a module can call
/// its own functions (its `FOUNDRY_COMPUTE_MODULE_RID`), and tests register other local
/// runtimes with `cmod_local::foundry::LocalFoundry::register_module`.
#[derive(Clone)]
pub struct Modules {
    client: FoundryClient,
    timeout: Duration,
}

impl fmt::Debug for Modules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Modules")
            .field("client", &self.client)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A call of another module's function failed. Every variant names the module (its RID) and
/// the function.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleCallError {
    /// No credential or no Foundry URL to call with (before anything was sent).
    #[error("cannot call function `{function}` of module {module}: {source}")]
    Auth {
        /// The callee's RID.
        module: String,
        /// The callee's function.
        function: String,
        /// Why.
        #[source]
        source: Box<AuthError>,
    },
    /// The call was refused or failed on the way: Foundry answered an error status (see
    /// [`ModuleCallError::status`]; 404 for an unknown module, 403 for one the caller may not
    /// use), could not be reached, or took longer than the timeout.
    #[error("calling function `{function}` of module {module} failed{}: {source}", status_text(*.status))]
    Request {
        /// The callee's RID.
        module: String,
        /// The callee's function.
        function: String,
        /// The HTTP status, when Foundry answered with one.
        status: Option<u16>,
        /// The Foundry error.
        #[source]
        source: Box<FoundryError>,
    },
    /// The callee ran and returned an error result (`{"error": {"kind", "message"}}`).
    #[error("function `{function}` of module {module} returned an error: {kind}: {message}")]
    Function {
        /// The callee's RID.
        module: String,
        /// The callee's function.
        function: String,
        /// The error's kind (`FunctionError`, `UnknownFunction`, `InvalidInput`, … for cmod
        /// modules; `Error` when the callee sent no kind).
        kind: String,
        /// The error's message.
        message: String,
    },
    /// The input could not be serialized to JSON.
    #[error(
        "cannot call function `{function}` of module {module}: the input cannot be serialized: {message}"
    )]
    Input {
        /// The callee's RID.
        module: String,
        /// The callee's function.
        function: String,
        /// The serde error.
        message: String,
    },
    /// The result is not the type the caller asked for.
    #[error(
        "function `{function}` of module {module} returned a result that is not a `{expected}`: {message}"
    )]
    Decode {
        /// The callee's RID.
        module: String,
        /// The callee's function.
        function: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// What did not match (with the JSON path).
        message: String,
    },
}

fn status_text(status: Option<u16>) -> String {
    status
        .map(|s| format!(" with HTTP {s}"))
        .unwrap_or_default()
}

impl ModuleCallError {
    /// The callee's RID.
    pub fn module(&self) -> &str {
        match self {
            ModuleCallError::Auth { module, .. }
            | ModuleCallError::Request { module, .. }
            | ModuleCallError::Function { module, .. }
            | ModuleCallError::Input { module, .. }
            | ModuleCallError::Decode { module, .. } => module,
        }
    }

    /// The callee's function.
    pub fn function(&self) -> &str {
        match self {
            ModuleCallError::Auth { function, .. }
            | ModuleCallError::Request { function, .. }
            | ModuleCallError::Function { function, .. }
            | ModuleCallError::Input { function, .. }
            | ModuleCallError::Decode { function, .. } => function,
        }
    }

    /// The HTTP status Foundry answered with, for [`ModuleCallError::Request`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ModuleCallError::Request { status, .. } => *status,
            _ => None,
        }
    }
}

/// Who is calling, for [`ModuleCallError`]s raised before a call.
#[derive(Clone, Copy)]
struct Target<'a> {
    module: &'a str,
    function: &'a str,
}

impl Target<'_> {
    fn auth(self, source: AuthError) -> ModuleCallError {
        ModuleCallError::Auth {
            module: self.module.to_owned(),
            function: self.function.to_owned(),
            source: Box::new(source),
        }
    }

    fn request(self, source: FoundryError) -> ModuleCallError {
        match source {
            FoundryError::Auth(source) => self.auth(source),
            source => ModuleCallError::Request {
                module: self.module.to_owned(),
                function: self.function.to_owned(),
                status: source.status(),
                source: Box::new(source),
            },
        }
    }

    fn decode(self, expected: &'static str, message: String) -> ModuleCallError {
        ModuleCallError::Decode {
            module: self.module.to_owned(),
            function: self.function.to_owned(),
            expected,
            message,
        }
    }

    /// `value` as an error result, when it is one: an object whose only key is `error`.
    fn error_result(self, value: &serde_json::Value) -> Option<ModuleCallError> {
        let obj = value.as_object()?;
        let error = obj.get("error")?;
        // `{"error": …}`, or `{"error": "<code>", "error_description": "…"}` (third party: the
        // shape an emulator of the execute API answers failed jobs with).
        let description = ["error_description", "errorDescription"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(|d| d.as_str()));
        let expected_len = 1 + usize::from(description.is_some());
        if obj.len() != expected_len {
            return None;
        }
        let (kind, message) = match (error, description) {
            (serde_json::Value::String(code), Some(d)) => (code.as_str(), d.to_owned()),
            (error, _) => match error {
                serde_json::Value::Object(e) => (
                    e.get("kind").and_then(|k| k.as_str()).unwrap_or("Error"),
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| error.to_string()),
                ),
                serde_json::Value::String(s) => ("Error", s.clone()),
                other => ("Error", other.to_string()),
            },
        };
        Some(ModuleCallError::Function {
            module: self.module.to_owned(),
            function: self.function.to_owned(),
            kind: kind.to_owned(),
            message,
        })
    }
}

impl Modules {
    /// Calls as the module's application (`CLIENT_ID`/`CLIENT_SECRET`, else the pipeline
    /// token), sharing the environment's [`FoundryClient`] and its token cache.
    pub fn from_env() -> Result<Modules, AuthError> {
        Ok(Self::with_client(FoundryClient::from_env()?))
    }

    /// Calls with `client`'s credentials and URLs (e.g. [`FoundryClient::with_scopes`]).
    /// The timeout is 5 minutes, or `CMOD_MODULE_CALL_TIMEOUT_SECS` when that is
    /// a valid number of seconds (an invalid value is logged and ignored).
    pub fn with_client(client: FoundryClient) -> Modules {
        let timeout = match crate::transport::watchdog::limit_var(
            crate::env::lookup(),
            CALL_TIMEOUT_VAR,
            DEFAULT_CALL_TIMEOUT,
        ) {
            Ok(t) => t,
            Err(message) => {
                tracing::warn!("{message}; using {}s", DEFAULT_CALL_TIMEOUT.as_secs());
                DEFAULT_CALL_TIMEOUT
            }
        };
        Modules { client, timeout }
    }

    /// How long a call waits for the callee's answer to start (default
    /// 5 minutes). A streamed answer that keeps flowing is never cut.
    pub fn timeout(mut self, timeout: Duration) -> Modules {
        self.timeout = timeout;
        self
    }

    /// The client calls go through.
    pub fn client(&self) -> &FoundryClient {
        &self.client
    }

    /// Calls `function` of the module `module_rid` on `branch` (usually `"master"`) with
    /// `input` (an object whose keys are the function's input names: a struct or
    /// `serde_json::json!({…})`), and decodes its result as `Out`.
    ///
    /// For a streaming function use [`Modules::call_stream`].
    pub async fn call<Out: DeserializeOwned>(
        &self,
        module_rid: &str,
        branch: &str,
        function: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<Out, ModuleCallError> {
        let target = Target {
            module: module_rid,
            function,
        };
        let bytes = self.call_raw(module_rid, branch, function, input).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            let hint = if e.to_string().contains("trailing characters") {
                " (several JSON values: is it a streaming function? use `call_stream`)"
            } else {
                ""
            };
            target.decode(
                std::any::type_name::<Out>(),
                format!("the result is not one JSON value: {e}{hint}"),
            )
        })?;
        if let Some(err) = target.error_result(&value) {
            return Err(err);
        }
        serde_path_to_error::deserialize(value)
            .map_err(|e| target.decode(std::any::type_name::<Out>(), e.to_string()))
    }

    /// Calls a streaming function: its values, decoded as `Item` one by one **as they
    /// arrive** (the answer is read incrementally, under the client's idle limit). The result
    /// may come as the values one after the other, with or without whitespace between them
    /// (how modules post a streamed result), or as one JSON array. An error result the callee
    /// posted after some items is the stream's last item ([`ModuleCallError::Function`]).
    ///
    /// ```no_run
    /// # async fn f(modules: cmod_runtime::Modules) -> Result<(), cmod_runtime::ModuleCallError> {
    /// use cmod_runtime::StreamExt as _;
    ///
    /// let input = serde_json::json!({"skus": ["apple", "pear"]});
    /// let mut quotes = modules.call_stream::<serde_json::Value>("ri.…", "master", "price_list", &input).await?;
    /// while let Some(quote) = quotes.next().await {
    ///     println!("{}", quote?);
    /// }
    /// // or all at once: `.into_vec().await?`
    /// # Ok(()) }
    /// ```
    pub async fn call_stream<Item: DeserializeOwned>(
        &self,
        module_rid: &str,
        branch: &str,
        function: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<ResultStream<Item>, ModuleCallError> {
        let response = self.send(module_rid, branch, function, input).await?;
        Ok(ResultStream {
            body: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
            first: None,
            seen: 0,
            ended: false,
            module: module_rid.to_owned(),
            function: function.to_owned(),
            _item: std::marker::PhantomData,
        })
    }

    /// Calls `function` and returns the raw result bytes, without looking at them (an error
    /// result is returned as bytes too).
    pub async fn call_raw(
        &self,
        module_rid: &str,
        branch: &str,
        function: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<Bytes, ModuleCallError> {
        let target = Target {
            module: module_rid,
            function,
        };
        let response = self.send(module_rid, branch, function, input).await?;
        let url = crate::transport::shown(response.url());
        response
            .bytes()
            .await
            .map_err(|e| target.request(FoundryError::transport("POST", &url, &e)))
    }

    /// Sends the call; the response once its headers arrived.
    async fn send(
        &self,
        module_rid: &str,
        branch: &str,
        function: &str,
        input: &(impl Serialize + ?Sized),
    ) -> Result<reqwest::Response, ModuleCallError> {
        let target = Target {
            module: module_rid,
            function,
        };
        let query = serde_json::to_value(input).map_err(|e| ModuleCallError::Input {
            module: module_rid.to_owned(),
            function: function.to_owned(),
            message: e.to_string(),
        })?;
        let url = execute_url(&self.client).map_err(|e| target.auth(e))?;
        let body = serde_json::json!({
            "deployedAppRid": module_rid,
            "deployedAppBranch": branch,
            "queryType": function,
            "query": query,
        });
        tracing::debug!(
            module = module_rid,
            branch,
            function,
            "calling another module"
        );
        self.client
            .post(url)
            .json(&body)
            .header("accept", "application/octet-stream")
            .response_timeout(self.timeout)
            .send()
            .await
            .map_err(|e| target.request(e))
    }
}

/// The values of a streaming function's result, decoded as they arrive
/// ([`Modules::call_stream`]). A [`Stream`](futures_util::Stream) of `Result<Item,
/// ModuleCallError>`; it ends after the first error.
#[must_use = "a stream does nothing unless polled"]
pub struct ResultStream<Item> {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static>,
    >,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Result<Item, ModuleCallError>>,
    /// The first value while it is an array and the only one so far (the array form).
    first: Option<serde_json::Value>,
    seen: usize,
    ended: bool,
    module: String,
    function: String,
    _item: std::marker::PhantomData<fn() -> Item>,
}

// No field is structurally pinned (the body is boxed), whatever `Item` is.
impl<Item> Unpin for ResultStream<Item> {}

impl<Item> fmt::Debug for ResultStream<Item> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultStream")
            .field("module", &self.module)
            .field("function", &self.function)
            .field("items", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<Item: DeserializeOwned> ResultStream<Item> {
    /// Every remaining value, or the first error.
    pub async fn into_vec(mut self) -> Result<Vec<Item>, ModuleCallError> {
        use futures_util::StreamExt as _;
        let mut items = Vec::new();
        while let Some(item) = self.next().await {
            items.push(item?);
        }
        Ok(items)
    }

    fn target(&self) -> Target<'_> {
        Target {
            module: &self.module,
            function: &self.function,
        }
    }

    /// Queues one decoded value (or the error it is).
    fn push_value(&mut self, value: serde_json::Value) {
        if let Some(err) = self.target().error_result(&value) {
            self.ready.push_back(Err(err));
            self.ended = true;
            return;
        }
        let index = self.seen;
        self.seen += 1;
        let decoded = serde_path_to_error::deserialize(value).map_err(|e| {
            self.target()
                .decode(std::any::type_name::<Item>(), format!("item {index}: {e}"))
        });
        if decoded.is_err() {
            self.ended = true;
        }
        self.ready.push_back(decoded);
    }

    /// Decodes every complete value in the buffer; `at_end`: the body is over.
    fn drain(&mut self, at_end: bool) {
        let mut consumed = 0;
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buf[consumed..])
                .into_iter::<serde_json::Value>();
            match values.next() {
                None => break,
                Some(Ok(value)) => {
                    let end = consumed + values.byte_offset();
                    // A number that ends the data so far may go on in the next chunk.
                    if value.is_number() && end == self.buf.len() && !at_end {
                        break;
                    }
                    consumed = end;
                    // The array form: hold a first array until we know it is the only value.
                    if self.seen == 0 && self.first.is_none() && value.is_array() {
                        self.first = Some(value);
                        continue;
                    }
                    if let Some(first) = self.first.take() {
                        self.push_value(first);
                    }
                    self.push_value(value);
                    if self.ended {
                        break;
                    }
                }
                Some(Err(e)) if e.is_eof() && !at_end => break,
                Some(Err(e)) => {
                    let err = self.target().decode(
                        std::any::type_name::<Item>(),
                        format!("the streamed result is not a sequence of JSON values: {e}"),
                    );
                    self.ready.push_back(Err(err));
                    self.ended = true;
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if at_end && !self.ended {
            self.ended = true;
            if let Some(first) = self.first.take() {
                // The only value is an array: its elements are the items, unless the array
                // itself is an `Item` (a stream of one list).
                match serde_json::from_value::<Item>(first.clone()) {
                    Ok(item) => {
                        self.seen += 1;
                        self.ready.push_back(Ok(item));
                    }
                    Err(_) => {
                        if let serde_json::Value::Array(items) = first {
                            self.ended = false;
                            for item in items {
                                self.push_value(item);
                                if self.ended {
                                    break;
                                }
                            }
                            self.ended = true;
                        }
                    }
                }
            }
        }
    }
}

impl<Item: DeserializeOwned> futures_util::Stream for ResultStream<Item> {
    type Item = Result<Item, ModuleCallError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(item) = this.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.buf.extend_from_slice(&chunk);
                    this.drain(false);
                }
                Poll::Ready(Some(Err(e))) => {
                    let err =
                        this.target()
                            .request(FoundryError::transport("POST", EXECUTE_PATH, &e));
                    this.ready.push_back(Err(err));
                    this.ended = true;
                }
                Poll::Ready(None) => this.drain(true),
            }
        }
    }
}

/// The execute API on the API gateway's origin (`https://<stack>/api` → `https://<stack>`).
fn execute_url(client: &FoundryClient) -> Result<String, AuthError> {
    let api = client.api_url()?;
    let origin = reqwest::Url::parse(api)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| AuthError::Config {
            message: format!(
                "the API gateway URL `{}` is not a URL: {e}",
                crate::transport::shown_url(api)
            ),
        })?;
    Ok(format!("{origin}{EXECUTE_PATH}"))
}

impl Context {
    /// A [`Modules`] client that calls other modules as the user who invoked this job (the
    /// job's `authHeader`), so the callee sees the same user. Fails with
    /// [`AuthError::NoUserToken`] when the platform sent no user token; use
    /// [`Modules::from_env`] to call as the module's application instead.
    pub fn modules(&self) -> Result<Modules, AuthError> {
        Ok(Modules::with_client(self.foundry_as_user()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            module: "ri.m",
            function: "f",
        }
    }

    #[test]
    fn error_results_are_recognised_in_both_shapes() {
        let e = target()
            .error_result(&serde_json::json!({"error": {"kind": "FunctionError", "message": "no"}}))
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "function `f` of module ri.m returned an error: FunctionError: no"
        );
        let e = target()
            .error_result(&serde_json::json!({"error": "boom"}))
            .unwrap()
            .to_string();
        assert!(e.ends_with("Error: boom"), "{e}");
        assert!(
            target()
                .error_result(&serde_json::json!({"error": 1, "other": 2}))
                .is_none()
        );
        assert!(target().error_result(&serde_json::json!([1])).is_none());
        let e = target()
            .error_result(&serde_json::json!({"error": "job_failed", "error_description": "Compute module job failed."}))
            .unwrap()
            .to_string();
        assert!(e.ends_with("job_failed: Compute module job failed."), "{e}");
    }

    fn stream<Item: DeserializeOwned>(chunks: &[&'static str]) -> ResultStream<Item> {
        let chunks: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        ResultStream {
            body: Box::pin(futures_util::stream::iter(chunks)),
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
            first: None,
            seen: 0,
            ended: false,
            module: "ri.m".to_owned(),
            function: "f".to_owned(),
            _item: std::marker::PhantomData,
        }
    }

    async fn items<Item: DeserializeOwned>(chunks: &[&'static str]) -> Vec<Result<Item, String>> {
        use futures_util::StreamExt as _;
        stream::<Item>(chunks)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn streamed_results_decode_across_chunks_and_shapes() {
        // Values one after the other, split anywhere, with or without whitespace.
        assert_eq!(
            items::<u32>(&["1 ", "2 3", "\n4", "0"]).await,
            [Ok(1), Ok(2), Ok(3), Ok(40)]
        );
        assert_eq!(
            items::<serde_json::Value>(&["{\"a\":", "1}{\"a\":2}"])
                .await
                .len(),
            2
        );
        // One array: its elements, unless the array is itself an item.
        assert_eq!(items::<u32>(&["[1,", "2]"]).await, [Ok(1), Ok(2)]);
        assert_eq!(items::<Vec<u32>>(&["[1,2]"]).await, [Ok(vec![1, 2])]);
        assert_eq!(
            items::<Vec<u32>>(&["[1]", "[2]"]).await,
            [Ok(vec![1]), Ok(vec![2])]
        );
        assert!(items::<u32>(&[]).await.is_empty());
        // An error item ends the stream, naming the module and function.
        let got = items::<u32>(&["1", r#"{"error":{"kind":"Panic","message":"boom"}}"#, "2"]).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(1));
        assert_eq!(
            got[1],
            Err("function `f` of module ri.m returned an error: Panic: boom".to_owned())
        );
        // A cut-off body and a wrong type are decode errors.
        let got = items::<u32>(&["1 {\"a\""]).await;
        assert!(
            matches!(&got[..], [Ok(1), Err(e)] if e.contains("not a sequence")),
            "{got:?}"
        );
        let got = items::<u32>(&["\"x\""]).await;
        assert!(
            matches!(&got[..], [Err(e)] if e.contains("item 0") && e.contains("u32")),
            "{got:?}"
        );
    }

    #[test]
    fn the_execute_url_is_on_the_gateway_origin() {
        let c = FoundryClient::builder()
            .foundry_url("https://stack.example.com:8443")
            .build_from_lookup(&|_| None)
            .unwrap();
        assert_eq!(
            execute_url(&c).unwrap(),
            format!("https://stack.example.com:8443{EXECUTE_PATH}")
        );
        let none = FoundryClient::builder()
            .credentials(crate::auth::Credentials::None)
            .build_from_lookup(&|_| None)
            .unwrap();
        let e = target().auth(execute_url(&none).unwrap_err()).to_string();
        assert!(e.contains("module ri.m") && e.contains("`f`"), "{e}");
        assert!(e.contains("FOUNDRY_URL"), "{e}");
    }
}
