//! What can go wrong with sources: [`SourceError`] (files, configuration, a missing source or
//! secret) and [`SourceRequestError`] (a request that got no response).

use std::path::PathBuf;

use super::{SOURCE_CONFIGURATIONS_VAR, SOURCE_CREDENTIALS_VAR};

/// A problem with the sources files or with a source. Messages name the variable, the file, the
/// source and the secret involved, never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A sources file could not be read.
    #[error("{var}: cannot read sources file {}: {message}", path.display())]
    Read {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A sources file is not valid.
    #[error("{var}: sources file {} is not valid: {message}", path.display())]
    Parse {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and where (values are never quoted).
        message: String,
    },
    /// The source is not attached to the module.
    #[error(
        "source `{api_name}` is not attached to this module ({}); attach it in the compute \
         module's Sources configuration",
        attached_text(attached, *files_present)
    )]
    NotAttached {
        /// The API name asked for.
        api_name: String,
        /// The attached sources.
        attached: Vec<String>,
        /// Whether any sources file was configured.
        files_present: bool,
    },
    /// The source has no secret of that name.
    #[error(
        "source `{api_name}` has no secret `{secret}` (it has: {}); REST source secrets are \
         named `additionalSecret<NAME>`",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    MissingSecret {
        /// The source.
        api_name: String,
        /// The secret asked for.
        secret: String,
        /// The secret names the source has.
        available: Vec<String>,
    },
    /// The source has no HTTP connection configuration.
    #[error(
        "source `{api_name}` has no HTTP connection (`httpConnectionConfig` in \
         {SOURCE_CONFIGURATIONS_VAR}): it is not a REST source, or {SOURCE_CONFIGURATIONS_VAR} is \
         not set"
    )]
    NoHttpConnection {
        /// The source.
        api_name: String,
    },
    /// The HTTP client of a source could not be built (certificates, headers, URL).
    #[error("source `{api_name}`: {message}")]
    Client {
        /// The source.
        api_name: String,
        /// What is wrong.
        message: String,
    },
    /// Sources or secrets the module declared as required are missing.
    #[error(
        "the module requires sources that are not attached:\n  - {}",
        problems.join("\n  - ")
    )]
    RequiredMissing {
        /// One line per missing source or secret, naming where it was declared.
        problems: Vec<String>,
    },
}

pub(super) fn attached_text(attached: &[String], files_present: bool) -> String {
    if !files_present {
        format!("neither {SOURCE_CREDENTIALS_VAR} nor {SOURCE_CONFIGURATIONS_VAR} is set")
    } else if attached.is_empty() {
        "no source is attached".to_owned()
    } else {
        format!("attached: {}", attached.join(", "))
    }
}

/// A [`SourceRequest`](super::SourceRequest) that got no response: connection or TLS failure, a timeout (no progress
/// for the client's limits, or the request's own [`SourceRequest::timeout`](super::SourceRequest::timeout)), too many
/// redirects. Shows the URL without its query string or user info.
#[derive(Debug, thiserror::Error)]
#[error("source `{api_name}`: {method} {url} failed: {message}")]
pub struct SourceRequestError {
    pub(super) api_name: String,
    pub(super) method: String,
    pub(super) url: String,
    pub(super) message: String,
    pub(super) timeout: bool,
    #[source]
    pub(super) source: Option<reqwest::Error>,
}

impl SourceRequestError {
    /// Whether connecting failed.
    pub fn is_connect(&self) -> bool {
        self.source.as_ref().is_some_and(reqwest::Error::is_connect)
    }

    /// Whether a time limit ran out.
    pub fn is_timeout(&self) -> bool {
        self.timeout || self.source.as_ref().is_some_and(reqwest::Error::is_timeout)
    }

    /// The URL, without query string or user info.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying reqwest error (its URL scrubbed), when there is one.
    pub fn reqwest(&self) -> Option<&reqwest::Error> {
        self.source.as_ref()
    }
}
