//! Foundry auth modes (docs/protocol.md §6): what identity a module uses when it calls Foundry.
//!
//! | Mode | Credentials in the container | In cmod |
//! |---|---|---|
//! | No platform permissions (the default) | none | [`Credentials::None`]: calls fail with [`AuthError`] naming the mode to enable |
//! | Application permissions | `CLIENT_ID`, `CLIENT_SECRET` | [`AppTokenProvider`]: OAuth2 client credentials, cached and refreshed tokens |
//! | Per-job user token | the job's `authHeader` | [`Context::foundry_as_user`](crate::Context::foundry_as_user) |
//! | Pipeline | `BUILD2_TOKEN` (file) | [`PipelineToken::watch`]: re-read when the file changes and after a 401 |
//!
//! Every credential plugs into [`FoundryClient`](crate::foundry::FoundryClient), which adds the
//! `Authorization` header, the right CA, timeouts and retries. Tokens are [`Secret`]s: they never
//! appear in logs, errors or `Debug` output.

mod oauth;
pub(crate) mod token_file;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use oauth::AppTokenProvider;
use token_file::{TokenFile, TokenFileError};

use crate::secret::Secret;

/// The variable naming the pipeline token file.
pub const PIPELINE_TOKEN_VAR: &str = crate::env::vars::BUILD2_TOKEN;
/// The variable holding the application's OAuth2 client id.
pub const CLIENT_ID_VAR: &str = crate::env::vars::CLIENT_ID;
/// The variable holding the application's OAuth2 client secret.
pub const CLIENT_SECRET_VAR: &str = crate::env::vars::CLIENT_SECRET;

/// Why a credential is unavailable or was refused. Messages name the mode, the variables and the
/// endpoint involved, and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The module has no platform permissions, so there is no credential to call Foundry with.
    #[error(
        "this call needs Foundry platform access, but the module has no platform permissions: \
         application permissions are not configured ({CLIENT_ID_VAR}/{CLIENT_SECRET_VAR} are not \
         set) and there is no pipeline token ({PIPELINE_TOKEN_VAR} is not set). Enable \
         application permissions in the compute module's configuration, or call as the invoking \
         user with `ctx.foundry_as_user()`"
    )]
    NoPlatformPermissions,
    /// Application permissions are needed but `CLIENT_ID`/`CLIENT_SECRET` are not set.
    #[error(
        "application permissions are not configured: {} not set. Enable \"Application's \
         permissions\" in the compute module's configuration (locally, `CMOD_LOCAL=1` sets them)",
        missing.join(" and ")
    )]
    AppNotConfigured {
        /// The missing variables.
        missing: Vec<&'static str>,
    },
    /// The job carries no user token.
    #[error(
        "no user token for job `{job_id}`: the platform sent no `authHeader` (it is only sent \
         when the module runs with the invoking user's permissions)"
    )]
    NoUserToken {
        /// The job.
        job_id: String,
    },
    /// The pipeline token is missing or unreadable.
    #[error(
        "pipeline token unavailable: {PIPELINE_TOKEN_VAR}: {message} (Foundry mounts it in \
         pipeline mode only)"
    )]
    PipelineToken {
        /// What is wrong.
        message: String,
    },
    /// The token endpoint refused the client credentials.
    #[error(
        "authentication failed: the Foundry token endpoint {url} refused the client credentials \
         of {CLIENT_ID_VAR} `{client_id}` (HTTP {status}{}); check {CLIENT_ID_VAR} and \
         {CLIENT_SECRET_VAR}",
        error_name.as_deref().map(|n| format!(", {n}")).unwrap_or_default()
    )]
    TokenRejected {
        /// The token endpoint.
        url: String,
        /// The client id used.
        client_id: String,
        /// The HTTP status.
        status: u16,
        /// Foundry's `errorName` (or OAuth2 `error`), when the body had one.
        error_name: Option<String>,
    },
    /// The token endpoint could not be reached or answered something unusable.
    #[error("could not get an application token from {url}: {message}")]
    TokenRequest {
        /// The token endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The Foundry host is unknown.
    #[error(
        "cannot locate Foundry's {service} service: set FOUNDRY_URL (the stack hostname) or \
         FOUNDRY_SERVICE_DISCOVERY_V2 (a file with a `{service}` key), or pass it with \
         `FoundryClient::builder().foundry_url(..)`"
    )]
    NoFoundryUrl {
        /// The discovery key of the service.
        service: String,
    },
    /// The Foundry client configuration is invalid (a CA file, the discovery file, a URL).
    #[error("{message}")]
    Config {
        /// What is wrong, naming the variable and file.
        message: String,
    },
}

/// The credential a [`FoundryClient`](crate::foundry::FoundryClient) sends. `Debug` never shows
/// a token.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// No platform permissions: every call fails with [`AuthError::NoPlatformPermissions`].
    #[default]
    None,
    /// Application permissions: tokens from an OAuth2 client-credentials provider, for the
    /// client's scopes.
    Application(AppTokenProvider),
    /// The invoking user's `authHeader` (a complete `Authorization` header value).
    User(Secret),
    /// A fixed pipeline job token (read once from `BUILD2_TOKEN`).
    Pipeline(Secret),
    /// The pipeline job token file (`BUILD2_TOKEN`), re-read when it changes and after a 401,
    /// so a token rotated during a run is picked up ([`PipelineToken::watch`]).
    PipelineFile(PipelineToken),
    /// Any other bearer token.
    Bearer(Secret),
}

impl Credentials {
    /// The user credential of a job's `authHeader`. A value without a scheme is taken as a bearer
    /// token.
    pub fn user(auth_header: &Secret) -> Self {
        let value = auth_header.expose().trim();
        if value.contains(' ') {
            Credentials::User(Secret::new(value))
        } else {
            Credentials::User(Secret::new(format!("Bearer {value}")))
        }
    }

    /// The mode name, for messages (`none`, `application`, `user`, `pipeline`, `bearer`).
    pub fn mode(&self) -> &'static str {
        match self {
            Credentials::None => "none",
            Credentials::Application(_) => "application",
            Credentials::User(_) => "user",
            Credentials::Pipeline(_) | Credentials::PipelineFile(_) => "pipeline",
            Credentials::Bearer(_) => "bearer",
        }
    }

    /// The `Authorization` header value for a request with `scopes` (only application
    /// credentials use them).
    pub(crate) async fn authorization(&self, scopes: &[String]) -> Result<Secret, AuthError> {
        match self {
            Credentials::None => Err(AuthError::NoPlatformPermissions),
            Credentials::Application(p) => {
                let token = p.token(scopes).await?;
                Ok(Secret::new(format!("Bearer {}", token.expose())))
            }
            Credentials::User(h) => Ok(h.clone()),
            Credentials::Pipeline(t) | Credentials::Bearer(t) => {
                Ok(Secret::new(format!("Bearer {}", t.expose())))
            }
            Credentials::PipelineFile(t) => {
                let token = t.current()?;
                Ok(Secret::new(format!("Bearer {}", token.expose())))
            }
        }
    }

    /// Called when Foundry answered 401 to `refused` (the `Authorization` value sent): drops
    /// what made that credential stale and says whether the request should be retried once.
    /// Application tokens are invalidated (a new one is fetched); the pipeline token file is
    /// re-read. Fixed credentials cannot get better: no retry.
    pub(crate) fn refresh_after_unauthorized(&self, scopes: &[String], refused: &Secret) -> bool {
        match self {
            Credentials::Application(provider) => {
                let token = refused.expose().strip_prefix("Bearer ").unwrap_or_default();
                provider.invalidate(scopes, &Secret::new(token));
                true
            }
            Credentials::PipelineFile(t) => {
                if let Err(e) = t.reload() {
                    tracing::warn!(error = %e, "re-reading the build token after a 401 failed");
                }
                true
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Application(p) => f.debug_tuple("Application").field(p).finish(),
            other => write!(f, "{}(<redacted>)", other.mode()),
        }
    }
}

/// The pipeline job token, `BUILD2_TOKEN` (docs/protocol.md §6.3): the file Foundry mounts, which it may
/// rotate while the module runs.
///
/// [`PipelineToken::watch`] gives a handle that re-reads the file whenever it changes (its size,
/// modification time or inode; a Kubernetes secret swapped through a symlink counts) and on
/// [`reload`](PipelineToken::reload), which the Foundry client calls after a 401 before
/// retrying once. Cheap to clone; clones share the cached token. `Debug` shows the file, never
/// the token.
#[derive(Clone)]
pub struct PipelineToken {
    inner: Arc<TokenFile<Secret>>,
}

impl fmt::Debug for PipelineToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineToken")
            .field("file", &self.inner.path())
            .finish_non_exhaustive()
    }
}

/// The pipeline token is the file's (trimmed) content as it is.
fn as_token(token: Secret) -> Result<Secret, &'static str> {
    Ok(token)
}

fn pipeline_error(e: TokenFileError) -> AuthError {
    AuthError::PipelineToken {
        message: e.message(),
    }
}

impl PipelineToken {
    /// Reads the token file named by `BUILD2_TOKEN` and keeps watching it: the returned handle's
    /// [`current`](PipelineToken::current) re-reads the file when it changed. Fails like
    /// [`PipelineToken::from_lookup`].
    pub fn watch(lookup: &dyn Fn(&str) -> Option<String>) -> Result<PipelineToken, AuthError> {
        let path = crate::config::var(lookup, PIPELINE_TOKEN_VAR).ok_or_else(|| {
            AuthError::PipelineToken {
                message: "not set".to_owned(),
            }
        })?;
        Self::watch_file(Path::new(path.trim()))
    }

    /// [`PipelineToken::watch`] for an explicit file.
    pub fn watch_file(path: &Path) -> Result<PipelineToken, AuthError> {
        // Compared on every call: Foundry calls are far apart, and a commit must not go out
        // with a token replaced a moment ago.
        let file = TokenFile::open(PIPELINE_TOKEN_VAR, path, Duration::ZERO, as_token)
            .map_err(pipeline_error)?;
        Ok(PipelineToken {
            inner: Arc::new(file),
        })
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The current token: the cached one while the file is unchanged, else the file's new
    /// contents. A file that cannot be read right now (being replaced) keeps the cached token.
    pub fn current(&self) -> Result<Secret, AuthError> {
        Ok(self.inner.current())
    }

    /// Re-reads the file now, whatever its metadata says (after Foundry refused the token).
    pub fn reload(&self) -> Result<Secret, AuthError> {
        self.inner
            .reload()
            .map(|(token, _)| token)
            .map_err(pipeline_error)
    }

    /// Reads the token file named by `BUILD2_TOKEN` (trimmed). Fails, naming the variable and the
    /// file, when the variable is unset or the file is missing or empty.
    pub fn from_env() -> Result<Secret, AuthError> {
        Self::from_lookup(crate::env::lookup())
    }

    /// [`PipelineToken::from_env`] through a variable lookup function.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Secret, AuthError> {
        let path = crate::config::var(lookup, PIPELINE_TOKEN_VAR).ok_or_else(|| {
            AuthError::PipelineToken {
                message: "not set".to_owned(),
            }
        })?;
        read_pipeline_token(Path::new(path.trim()))
    }
}

fn read_pipeline_token(path: &Path) -> Result<Secret, AuthError> {
    crate::config::read_token_file(PIPELINE_TOKEN_VAR, path)
        .map_err(|p| AuthError::PipelineToken { message: p.message })
}

/// `CLIENT_ID` and `CLIENT_SECRET`, when both are set.
pub(crate) fn app_credentials(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Secret), AuthError> {
    let id = crate::config::var(lookup, CLIENT_ID_VAR);
    let secret = crate::config::var(lookup, CLIENT_SECRET_VAR);
    match (id, secret) {
        (Some(id), Some(secret)) => Ok((id.trim().to_owned(), Secret::new(secret.trim()))),
        (id, secret) => {
            let mut missing = Vec::new();
            if id.is_none() {
                missing.push(CLIENT_ID_VAR);
            }
            if secret.is_none() {
                missing.push(CLIENT_SECRET_VAR);
            }
            Err(AuthError::AppNotConfigured { missing })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn app_not_configured_names_the_variables() {
        let err = app_credentials(&|_| None).unwrap_err().to_string();
        assert!(
            err.contains(
                "application permissions are not configured: CLIENT_ID and CLIENT_SECRET not set"
            ),
            "{err}"
        );
        let map = HashMap::from([("CLIENT_ID", "app".to_owned())]);
        let err = app_credentials(&|k| map.get(k).cloned())
            .unwrap_err()
            .to_string();
        assert!(err.contains("CLIENT_SECRET not set"), "{err}");
        assert!(!err.contains("CLIENT_ID and"), "{err}");
    }

    #[test]
    fn pipeline_token_is_trimmed_and_errors_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("BUILD2_TOKEN");
        std::fs::write(&file, "  build-token\n").unwrap();
        let path = file.display().to_string();
        let t =
            PipelineToken::from_lookup(&|k| (k == "BUILD2_TOKEN").then(|| path.clone())).unwrap();
        assert_eq!(t.expose(), "build-token");

        let err = PipelineToken::from_lookup(&|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("BUILD2_TOKEN: not set"), "{err}");
        std::fs::write(&file, " \n").unwrap();
        let err = PipelineToken::from_lookup(&|k| (k == "BUILD2_TOKEN").then(|| path.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BUILD2_TOKEN") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn a_watched_pipeline_token_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("BUILD2_TOKEN");
        std::fs::write(&file, "first\n").unwrap();
        let path = file.display().to_string();
        let t = PipelineToken::watch(&|k| (k == "BUILD2_TOKEN").then(|| path.clone())).unwrap();
        assert_eq!(t.current().unwrap().expose(), "first");
        // Replaced the way secrets are rotated: a new file renamed over the old one.
        let tmp = dir.path().join("next");
        std::fs::write(&tmp, "second-token").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_eq!(t.current().unwrap().expose(), "second-token");
        // Clones share the cache; reload reads whatever the metadata says.
        let c = t.clone();
        std::fs::write(&file, "third-token!").unwrap();
        assert_eq!(c.reload().unwrap().expose(), "third-token!");
        assert_eq!(t.current().unwrap().expose(), "third-token!");
        // A file missing for a moment keeps the last token; Debug shows the file only.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(t.current().unwrap().expose(), "third-token!");
        assert!(t.reload().is_err());
        let shown = format!("{t:?}{:?}", Credentials::PipelineFile(t.clone()));
        assert!(
            shown.contains("BUILD2_TOKEN") && !shown.contains("third"),
            "{shown}"
        );
    }

    #[test]
    fn user_credentials_add_a_scheme_when_missing_and_debug_redacts() {
        let c = Credentials::user(&Secret::new("raw-token"));
        let Credentials::User(h) = &c else { panic!() };
        assert_eq!(h.expose(), "Bearer raw-token");
        let c2 = Credentials::user(&Secret::new("Bearer abc"));
        let Credentials::User(h2) = &c2 else { panic!() };
        assert_eq!(h2.expose(), "Bearer abc");
        assert!(!format!("{c:?}{c2:?}").contains("raw-token"));
        assert!(!format!("{c2:?}").contains("abc"));
    }
}
