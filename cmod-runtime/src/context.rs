//! [`Context`]: what a function knows about the job it is running.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::secret::Secret;

/// The per-job context. Add a parameter of type `Context` (anywhere in the list) to a
/// `#[compute_function]` to receive it; it is not an input of the function.
///
/// Cloning is cheap. `Debug` never shows tokens.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    job_id: String,
    function_name: String,
    user_id: Option<String>,
    auth_header: Option<Secret>,
    temporary_credentials_token: Option<Secret>,
    shutdown: watch::Receiver<bool>,
}

impl Context {
    /// Starts building a context. The job loop uses this; tests can too, to call a function that
    /// takes a `Context` directly.
    pub fn builder(job_id: impl Into<String>) -> ContextBuilder {
        ContextBuilder {
            job_id: job_id.into(),
            function_name: String::new(),
            user_id: None,
            auth_header: None,
            temporary_credentials_token: None,
            shutdown: None,
        }
    }

    /// A context for unit tests: the given job id, no user, no tokens, never cancelled.
    pub fn for_test(job_id: impl Into<String>) -> Self {
        Self::builder(job_id).build()
    }

    /// The id of the job (`jobId` in the envelope).
    pub fn job_id(&self) -> &str {
        &self.inner.job_id
    }

    /// The wire name of the function being run (`queryType`).
    pub fn function_name(&self) -> &str {
        &self.inner.function_name
    }

    /// The id of the user who invoked the function, when the platform sent one.
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.as_deref()
    }

    /// The invoking user's Foundry auth header (`authHeader`), when the platform sent one. Only
    /// available in some execution modes. Never logged.
    pub fn auth_header(&self) -> Option<&Secret> {
        self.inner.auth_header.as_ref()
    }

    /// The temporary credentials token for the Foundry data sidecar
    /// (`temporaryCredentialsAuthToken`), when the platform sent one. Never logged.
    pub fn temporary_credentials_token(&self) -> Option<&Secret> {
        self.inner.temporary_credentials_token.as_ref()
    }

    /// Whether the module is shutting down. Long-running functions should check this (or await
    /// [`Context::cancelled`]) and return early; after the grace period the job gets an error
    /// result anyway.
    pub fn is_cancelled(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Completes when the module starts shutting down. Never completes for a test context.
    pub async fn cancelled(&self) {
        let mut rx = self.inner.shutdown.clone();
        // `wait_for` errors only when the sender is gone, which means no shutdown can come.
        if rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("job_id", &self.inner.job_id)
            .field("function_name", &self.inner.function_name)
            .field("user_id", &self.inner.user_id)
            .field("auth_header", &self.inner.auth_header)
            .field(
                "temporary_credentials_token",
                &self.inner.temporary_credentials_token,
            )
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Builds a [`Context`]. See [`Context::builder`].
#[derive(Debug)]
pub struct ContextBuilder {
    job_id: String,
    function_name: String,
    user_id: Option<String>,
    auth_header: Option<Secret>,
    temporary_credentials_token: Option<Secret>,
    shutdown: Option<watch::Receiver<bool>>,
}

impl ContextBuilder {
    /// Sets the function name.
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = name.into();
        self
    }

    /// Sets the invoking user's id; an empty string means none.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = non_empty(user_id.into());
        self
    }

    /// Sets the user's auth header; an empty string means none.
    pub fn auth_header(mut self, header: impl Into<String>) -> Self {
        self.auth_header = non_empty(header.into()).map(Secret::new);
        self
    }

    /// Sets the temporary credentials token; an empty string means none.
    pub fn temporary_credentials_token(mut self, token: impl Into<String>) -> Self {
        self.temporary_credentials_token = non_empty(token.into()).map(Secret::new);
        self
    }

    /// Ties the context to a shutdown signal (`true` = shutting down).
    pub fn shutdown_signal(mut self, rx: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(rx);
        self
    }

    /// Builds the context.
    pub fn build(self) -> Context {
        let shutdown = self.shutdown.unwrap_or_else(|| {
            // A receiver whose sender is dropped: never cancelled.
            let (_tx, rx) = watch::channel(false);
            rx
        });
        Context {
            inner: Arc::new(Inner {
                job_id: self.job_id,
                function_name: self.function_name,
                user_id: self.user_id,
                auth_header: self.auth_header,
                temporary_credentials_token: self.temporary_credentials_token,
                shutdown,
            }),
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let ctx = Context::builder("job-1")
            .auth_header("Bearer very-secret")
            .temporary_credentials_token("tmp-secret")
            .build();
        let dbg = format!("{ctx:?}");
        assert!(dbg.contains("job-1"));
        assert!(!dbg.contains("very-secret"));
        assert!(!dbg.contains("tmp-secret"));
    }

    #[tokio::test]
    async fn cancelled_follows_the_shutdown_signal() {
        let (tx, rx) = watch::channel(false);
        let ctx = Context::builder("j").shutdown_signal(rx).build();
        assert!(!ctx.is_cancelled());
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), ctx.cancelled())
            .await
            .unwrap();
        assert!(ctx.is_cancelled());
    }
}
