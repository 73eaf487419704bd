//! The `Module-Auth-Token` header of the runtime client (docs/protocol.md §3.1): the content of
//! the `MODULE_AUTH_TOKEN` file, which may be replaced while the module runs.
//!
//! The hot path (every poll and post) clones a cached, sensitive [`HeaderValue`]; the file's
//! stamp is compared at most once per [`CHECK_INTERVAL`] (`auth::token_file`). After a 401 or
//! 403 the file is re-read at once, and the caller retries its request once if the token changed
//! since it was sent ([`ModuleToken::renewed_since`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;

use crate::auth::token_file::TokenFile;
#[cfg(test)]
use crate::auth::token_file::TokenFileError;
use crate::config::RuntimeConfig;
use crate::env::vars;
use crate::secret::Secret;

/// How often, at most, the token file's stamp is compared.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a token cannot be a header value (never quoting it).
const NOT_A_HEADER: &str = "contains characters not allowed in an HTTP header";

/// The token as a sensitive header value.
fn header_value(token: Secret) -> Result<HeaderValue, &'static str> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| NOT_A_HEADER)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Where the client's `Module-Auth-Token` comes from. Cheap to clone: clones share the cache.
#[derive(Clone)]
pub(crate) enum ModuleToken {
    /// No token (the V2 URIs need none).
    None,
    /// A token given without its file (a `RuntimeConfig` built by hand): never changes.
    Fixed(HeaderValue),
    /// The `MODULE_AUTH_TOKEN` file, watched.
    File(Arc<Watched>),
}

/// The watched file and which version's rejection was already reported.
pub(crate) struct Watched {
    file: TokenFile<HeaderValue>,
    /// `version + 1` of the token whose rejection was last logged at `warn` (0: none).
    reported: AtomicU64,
}

impl ModuleToken {
    /// The token of `config`: its file watched when known, else its fixed value. Fails, naming
    /// `MODULE_AUTH_TOKEN`, when the token cannot be a header value.
    pub(crate) fn from_config(config: &RuntimeConfig) -> Result<Self, crate::Error> {
        let Some(token) = &config.module_auth_token else {
            return Ok(ModuleToken::None);
        };
        let value = header_value(token.clone()).map_err(|reason| {
            let file = config
                .module_auth_token_file
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default();
            crate::Error::Runtime(format!(
                "the {} file{file} {reason}",
                vars::MODULE_AUTH_TOKEN
            ))
        })?;
        Ok(match &config.module_auth_token_file {
            Some(path) => Self::watch(TokenFile::seeded(
                vars::MODULE_AUTH_TOKEN,
                path,
                CHECK_INTERVAL,
                header_value,
                value,
            )),
            None => ModuleToken::Fixed(value),
        })
    }

    fn watch(file: TokenFile<HeaderValue>) -> Self {
        ModuleToken::File(Arc::new(Watched {
            file,
            reported: AtomicU64::new(0),
        }))
    }

    /// Watches `path` with its own check interval (tests).
    #[cfg(test)]
    pub(crate) fn open(path: &std::path::Path, interval: Duration) -> Result<Self, TokenFileError> {
        TokenFile::open(vars::MODULE_AUTH_TOKEN, path, interval, header_value).map(Self::watch)
    }

    /// The header value to send now.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        match self {
            ModuleToken::None => None,
            ModuleToken::Fixed(value) => Some(value.clone()),
            ModuleToken::File(w) => Some(w.file.current()),
        }
    }

    /// Which token [`ModuleToken::header`] gives: read before sending a request, handed to
    /// [`ModuleToken::renewed_since`] if the runtime refuses it.
    pub(crate) fn version(&self) -> u64 {
        match self {
            ModuleToken::File(w) => w.file.version(),
            _ => 0,
        }
    }

    /// Called when the runtime answered `status` to a request sent with token `version`: on 401
    /// or 403 the file is re-read now, and `true` means the token changed since, so the request
    /// should be sent once more. When it did not, the rejection is logged once per token (at
    /// `warn`, naming the variable and the file), and the caller reports the error as before.
    pub(crate) fn renewed_since(&self, version: u64, status: u16) -> bool {
        let ModuleToken::File(w) = self else {
            return false;
        };
        if status != 401 && status != 403 {
            return false;
        }
        if let Err(e) = w.file.reload() {
            e.log_kept();
        }
        let now = w.file.version();
        if now != version {
            tracing::info!(
                file = %w.file.path().display(),
                "the runtime refused the previous {} token: retrying with the new one",
                w.file.var()
            );
            return true;
        }
        if w.reported.swap(now + 1, Ordering::AcqRel) != now + 1 {
            tracing::warn!(
                file = %w.file.path().display(),
                "the runtime refused the module auth token (HTTP {status}), and the {} file \
                 holds no newer one",
                w.file.var()
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_rereads_the_file_and_says_whether_to_retry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "old").unwrap();
        let token = ModuleToken::open(&file, Duration::from_secs(3600)).unwrap();
        assert_eq!(token.header().unwrap(), "old");
        assert!(token.header().unwrap().is_sensitive());
        let sent = token.version();

        std::fs::write(&file, "new-token").unwrap();
        // Not due yet: still the cached token.
        assert_eq!(token.header().unwrap(), "old");
        // Other statuses do not touch the file.
        assert!(!token.renewed_since(sent, 500));
        assert_eq!(token.header().unwrap(), "old");
        // A 401 re-reads it at once: retry, with the new token.
        assert!(token.renewed_since(sent, 401));
        assert_eq!(token.header().unwrap(), "new-token");
        // A concurrent request refused with the old token retries too; one with the new
        // token does not (the file has nothing newer).
        assert!(token.renewed_since(sent, 403));
        assert!(!token.renewed_since(token.version(), 401));

        // A token a header cannot carry is not taken.
        std::fs::write(&file, "bad\u{1}token").unwrap();
        assert!(!token.renewed_since(token.version(), 401));
        assert_eq!(token.header().unwrap(), "new-token");
    }

    #[test]
    fn fixed_and_absent_tokens_never_retry() {
        let fixed = ModuleToken::Fixed(HeaderValue::from_static("t"));
        assert_eq!(fixed.header().unwrap(), "t");
        assert!(!fixed.renewed_since(fixed.version(), 401));
        assert!(ModuleToken::None.header().is_none());
        assert!(!ModuleToken::None.renewed_since(0, 401));
    }
}
