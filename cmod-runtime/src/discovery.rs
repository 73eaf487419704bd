//! Service discovery: the `FOUNDRY_SERVICE_DISCOVERY_V2` YAML file (docs/protocol.md §7.3).
//!
//! Foundry mounts a YAML file mapping a service key to a list of base URLs:
//!
//! ```yaml
//! api_gateway: ["https://stack.example.com/api"]
//! stream_proxy: ["https://stack.example.com/stream-proxy/api"]
//! foundry_mio: ["https://stack.example.com/mio/api"]
//! ```
//!
//! [`ServiceDiscovery`] reads it; the typed accessors ([`ServiceDiscovery::api_gateway`], …)
//! take the first URL of the first key variant present (`api_gateway` / `api-gateway`, …).
//! Keys whose value is neither a URL nor a list of URLs are ignored, so new platform keys never
//! break startup.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variable naming the discovery file.
pub const DISCOVERY_VAR: &str = crate::env::vars::FOUNDRY_SERVICE_DISCOVERY_V2;

/// A Foundry service with a well-known discovery key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// The API gateway (`https://<stack>/api`): public `/v1`, `/v2` APIs.
    ApiGateway,
    /// The stream proxy (`https://<stack>/stream-proxy/api`).
    StreamProxy,
    /// Media IO (`https://<stack>/mio/api`), key `foundry_mio`.
    Media,
    /// Multipass (`https://<stack>/multipass/api`): OAuth2.
    Multipass,
    /// The on-prem agent proxy used by sources.
    OnPremProxy,
}

impl Service {
    /// The keys this service may appear under, in order of preference.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Service::ApiGateway => &["api_gateway", "api-gateway"],
            Service::StreamProxy => &["stream_proxy", "stream-proxy"],
            Service::Media => &["foundry_mio", "foundry-mio", "mio"],
            Service::Multipass => &["multipass"],
            Service::OnPremProxy => &["on_prem_proxy", "on-prem-proxy"],
        }
    }

    /// The path of this service under a stack's base URL (`https://<stack>` + path), used when
    /// only `FOUNDRY_URL` is known.
    pub fn default_path(self) -> Option<&'static str> {
        match self {
            Service::ApiGateway => Some("/api"),
            Service::StreamProxy => Some("/stream-proxy/api"),
            Service::Media => Some("/mio/api"),
            Service::Multipass => Some("/multipass/api"),
            Service::OnPremProxy => None,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keys()[0])
    }
}

/// The discovery file could not be used. Every variant names the variable and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The file could not be read.
    #[error("{var}: cannot read service discovery file {}: {source}", path.display())]
    Read {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a YAML map of service keys to URL lists.
    #[error(
        "{var}: service discovery file {} is not valid: {message} (expected a YAML map of \
         service key to a list of URLs, e.g. `api_gateway: [\"https://host/api\"]`)",
        path.display()
    )]
    Parse {
        /// The variable naming the file.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The parsed `FOUNDRY_SERVICE_DISCOVERY_V2` file: service key → URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceDiscovery {
    path: PathBuf,
    services: BTreeMap<String, Vec<String>>,
}

impl fmt::Debug for ServiceDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDiscovery")
            .field("path", &self.path)
            .field("services", &self.services)
            .finish()
    }
}

impl ServiceDiscovery {
    /// Reads the file named by `FOUNDRY_SERVICE_DISCOVERY_V2`; `Ok(None)` when the variable is
    /// not set.
    pub fn from_env() -> Result<Option<Self>, DiscoveryError> {
        Self::from_lookup(crate::env::lookup())
    }

    /// [`ServiceDiscovery::from_env`] through a variable lookup function.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, DiscoveryError> {
        match crate::config::var(lookup, DISCOVERY_VAR) {
            None => Ok(None),
            Some(path) => Self::from_file(Path::new(path.trim())).map(Some),
        }
    }

    /// Reads and parses a discovery file.
    pub fn from_file(path: &Path) -> Result<Self, DiscoveryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DiscoveryError::Read {
            var: DISCOVERY_VAR,
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses discovery YAML; `path` is only used in error messages.
    pub fn parse(path: &Path, yaml: &str) -> Result<Self, DiscoveryError> {
        let parse_err = |message: String| DiscoveryError::Parse {
            var: DISCOVERY_VAR,
            path: path.to_owned(),
            message,
        };
        let value: serde_norway::Value =
            serde_norway::from_str(yaml).map_err(|e| parse_err(e.to_string()))?;
        let map = match value {
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => serde_norway::Mapping::new(),
            other => {
                return Err(parse_err(format!(
                    "the top level is {}, not a map",
                    yaml_kind(&other)
                )));
            }
        };
        let mut services = BTreeMap::new();
        for (key, value) in map {
            let Some(key) = key.as_str() else { continue };
            let urls: Vec<String> = match value {
                serde_norway::Value::String(s) => vec![s],
                serde_norway::Value::Sequence(items) => items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => continue,
            };
            let urls: Vec<String> = urls
                .into_iter()
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            if !urls.is_empty() {
                services.insert(key.to_owned(), urls);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            services,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every URL listed under `key` (exactly that key).
    pub fn urls(&self, key: &str) -> &[String] {
        self.services.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first URL under `key` (exactly that key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.urls(key).first().map(String::as_str)
    }

    /// The first URL of `service`, trying each of its key variants.
    pub fn service(&self, service: Service) -> Option<&str> {
        service.keys().iter().find_map(|k| self.get(k))
    }

    /// Every URL of `service` under its first key variant present.
    pub fn service_urls(&self, service: Service) -> &[String] {
        service
            .keys()
            .iter()
            .map(|k| self.urls(k))
            .find(|u| !u.is_empty())
            .unwrap_or(&[])
    }

    /// The API gateway URL (`api_gateway` / `api-gateway`).
    pub fn api_gateway(&self) -> Option<&str> {
        self.service(Service::ApiGateway)
    }

    /// The stream proxy URL (`stream_proxy` / `stream-proxy`).
    pub fn stream_proxy(&self) -> Option<&str> {
        self.service(Service::StreamProxy)
    }

    /// The media IO URL (`foundry_mio`).
    pub fn media(&self) -> Option<&str> {
        self.service(Service::Media)
    }

    /// The multipass (OAuth2) URL (`multipass`).
    pub fn multipass(&self) -> Option<&str> {
        self.service(Service::Multipass)
    }

    /// The on-prem agent proxy URL (`on_prem_proxy`).
    pub fn on_prem_proxy(&self) -> Option<&str> {
        self.service(Service::OnPremProxy)
    }
}

fn yaml_kind(v: &serde_norway::Value) -> &'static str {
    match v {
        serde_norway::Value::Null => "null",
        serde_norway::Value::Bool(_) => "a boolean",
        serde_norway::Value::Number(_) => "a number",
        serde_norway::Value::String(_) => "a string",
        serde_norway::Value::Sequence(_) => "a list",
        serde_norway::Value::Mapping(_) => "a map",
        serde_norway::Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_strings_and_key_variants() {
        let d = ServiceDiscovery::parse(
            Path::new("d.yml"),
            "api-gateway: [\"https://h/api/\", \"https://h2/api\"]\n\
             stream_proxy: https://h/stream-proxy/api\n\
             foundry_mio:\n  - https://h/mio/api\n\
             weird: {a: 1}\n\
             empty: []\n",
        )
        .unwrap();
        assert_eq!(d.api_gateway(), Some("https://h/api"));
        assert_eq!(d.service_urls(Service::ApiGateway).len(), 2);
        assert_eq!(d.stream_proxy(), Some("https://h/stream-proxy/api"));
        assert_eq!(d.media(), Some("https://h/mio/api"));
        assert_eq!(d.multipass(), None);
        assert_eq!(d.get("weird"), None);
        assert_eq!(d.get("empty"), None);
    }

    #[test]
    fn malformed_yaml_names_the_variable_and_file() {
        let err = ServiceDiscovery::parse(Path::new("/x/d.yml"), "api_gateway: [unclosed")
            .unwrap_err()
            .to_string();
        assert!(err.contains(DISCOVERY_VAR), "{err}");
        assert!(err.contains("/x/d.yml"), "{err}");
        let err = ServiceDiscovery::parse(Path::new("/x/d.yml"), "- a\n- b\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a map"), "{err}");
    }

    #[test]
    fn unset_variable_is_none_and_missing_file_is_an_error() {
        assert!(ServiceDiscovery::from_lookup(&|_| None).unwrap().is_none());
        let err = ServiceDiscovery::from_lookup(&|_| Some("/nonexistent/sd.yml".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOUNDRY_SERVICE_DISCOVERY_V2"), "{err}");
        assert!(err.contains("/nonexistent/sd.yml"), "{err}");
    }
}
