//! The sources files and their types: [`Sources`] (every attached source, read and re-read
//! from `SOURCE_CREDENTIALS` and `SOURCE_CONFIGURATIONS_PATH`), [`Source`] and its connection
//! settings, and the parsing that never quotes a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

use super::error::{SourceError, attached_text};
use super::{RequiredSource, SOURCE_CONFIGURATIONS_VAR, SOURCE_CREDENTIALS_VAR};

/// The `httpConnectionConfig` of a REST source.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConnectionConfig {
    /// The base URL.
    pub url: String,
    /// Headers to send on every request (often credentials).
    pub auth_headers: BTreeMap<String, Secret>,
    /// Query parameters to send on every request (sometimes credentials).
    pub query_parameters: BTreeMap<String, Secret>,
}

impl fmt::Debug for HttpConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without query string or user info: either may hold a credential.
        let url = crate::transport::shown_url(&self.url);
        f.debug_struct("HttpConnectionConfig")
            .field("url", &url)
            .field(
                "auth_headers",
                &self.auth_headers.keys().collect::<Vec<_>>(),
            )
            .field(
                "query_parameters",
                &self.query_parameters.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// AWS credentials resolved by Foundry for a source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AwsCredentials {
    /// Temporary session credentials.
    Session {
        /// `accessKeyId`.
        access_key_id: String,
        /// `secretAccessKey`.
        secret_access_key: Secret,
        /// `sessionToken`.
        session_token: Secret,
        /// `expiration` (`YYYY-MM-DDTHH:MM:SSZ`).
        expiration: Option<String>,
    },
    /// Long-lived access keys.
    Basic {
        /// `accessKeyId`.
        access_key_id: String,
        /// `secretAccessKey`.
        secret_access_key: Secret,
    },
}

/// Short-lived cloud credentials Foundry resolved for a source (`resolvedCredentials`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ResolvedCredentials {
    /// AWS credentials (`cloudCredentials.awsCredentials`).
    Aws(AwsCredentials),
    /// A GCP OAuth access token (`gcpOauthCredentials`).
    GcpOauth {
        /// `accessToken`.
        access_token: Secret,
        /// `expiration`.
        expiration: Option<String>,
    },
    /// An OAuth2 access token (`oauth2Credentials`).
    OAuth2 {
        /// `accessToken`.
        access_token: Secret,
        /// `expiration`.
        expiration: Option<String>,
    },
    /// A kind this version does not know; only its key is kept.
    Unknown {
        /// The top-level key.
        kind: String,
    },
}

impl ResolvedCredentials {
    /// The `expiration` Foundry gave, when it gave one.
    pub fn expiration(&self) -> Option<&str> {
        match self {
            ResolvedCredentials::Aws(AwsCredentials::Session { expiration, .. })
            | ResolvedCredentials::GcpOauth { expiration, .. }
            | ResolvedCredentials::OAuth2 { expiration, .. } => expiration.as_deref(),
            _ => None,
        }
    }

    /// [`ResolvedCredentials::expiration`], parsed (RFC 3339, `YYYY-MM-DDTHH:MM:SSZ`).
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.expiration()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e.trim()).ok())
            .map(|e| e.with_timezone(&chrono::Utc))
    }
}

/// A client certificate for mutual TLS (`clientCertificate`).
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// `pemCertificate`: the certificate chain, PEM.
    pub pem_certificate: String,
    /// `pemPrivateKey`: the private key, PEM.
    pub pem_private_key: Secret,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field(
                "pem_certificate",
                &format_args!("{} bytes", self.pem_certificate.len()),
            )
            .field("pem_private_key", &self.pem_private_key)
            .finish()
    }
}

/// One attached source.
#[derive(Clone)]
#[non_exhaustive]
pub struct Source {
    /// The API name.
    pub api_name: String,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The REST connection, for REST sources.
    pub http: Option<HttpConnectionConfig>,
    /// `proxyToken`, for sources reached through an agent proxy.
    pub proxy_token: Option<Secret>,
    /// `sourceConfiguration`: the source's full configuration.
    pub source_configuration: Option<serde_json::Value>,
    /// `resolvedCredentials`.
    pub resolved_credentials: Option<ResolvedCredentials>,
    /// `clientCertificate`.
    pub client_certificate: Option<ClientCertificate>,
    /// `serverCertificates`: extra CA certificates (PEM) by name.
    pub server_certificates: BTreeMap<String, String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("api_name", &self.api_name)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("http", &self.http)
            .field("proxy_token", &self.proxy_token)
            .field("source_configuration", &self.source_configuration.is_some())
            .field("resolved_credentials", &self.resolved_credentials)
            .field("client_certificate", &self.client_certificate)
            .field(
                "server_certificates",
                &self.server_certificates.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Source {
    fn empty(api_name: &str) -> Self {
        Self {
            api_name: api_name.to_owned(),
            secrets: BTreeMap::new(),
            http: None,
            proxy_token: None,
            source_configuration: None,
            resolved_credentials: None,
            client_certificate: None,
            server_certificates: BTreeMap::new(),
        }
    }

    /// The secret named `name`, if any.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The secret named `name`, or an error naming the source and the secrets it has.
    pub fn require_secret(&self, name: &str) -> Result<&Secret, SourceError> {
        self.secrets
            .get(name)
            .ok_or_else(|| SourceError::MissingSecret {
                api_name: self.api_name.clone(),
                secret: name.to_owned(),
                available: self.secrets.keys().cloned().collect(),
            })
    }

    /// The REST connection, or an error saying the source has none.
    pub fn http_connection(&self) -> Result<&HttpConnectionConfig, SourceError> {
        self.http
            .as_ref()
            .ok_or_else(|| SourceError::NoHttpConnection {
                api_name: self.api_name.clone(),
            })
    }
}

/// Every attached source, from `SOURCE_CREDENTIALS` and `SOURCE_CONFIGURATIONS_PATH`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub(super) sources: BTreeMap<String, Source>,
    pub(super) files_present: bool,
}

/// The environment's sources, once read. A failed read is not kept: the next use tries again.
/// Replaced when time-limited cloud credentials expired and the files hold newer ones; a
/// replaced value stays allocated (`global` hands out `&'static`), a few KiB per credential
/// rotation.
static GLOBAL: RwLock<Option<&'static Sources>> = RwLock::new(None);
/// When the files were last read for [`Sources::global`] (re-reads for expired credentials are
/// at most once per [`REREAD_INTERVAL`]).
static LAST_READ: Mutex<Option<std::time::Instant>> = Mutex::new(None);
/// Credentials expiring within this margin count as expired.
const EXPIRY_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The least time between two re-reads of the files for expired credentials.
const REREAD_INTERVAL: Duration = Duration::from_secs(1);

impl Sources {
    /// Reads both files (either may be unset; a set variable whose file is missing or malformed
    /// is an error naming the variable and the file).
    pub fn from_env() -> Result<Sources, SourceError> {
        Self::from_lookup(crate::env::lookup())
    }

    /// The environment's sources, read once per process (a failed read is retried on the next
    /// call). When time-limited cloud credentials (`resolvedCredentials` with an `expiration`)
    /// have expired, or expire within a minute, the files are read again (at most once a
    /// second) and newer credentials replace them.
    pub fn global() -> Result<&'static Sources, SourceError> {
        let current = *GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sources) = current
            && !sources.credentials_expire_by(chrono::Utc::now() + EXPIRY_MARGIN)
        {
            return Ok(sources);
        }
        let mut last = LAST_READ.lock().unwrap_or_else(PoisonError::into_inner);
        // Another caller may have replaced them meanwhile.
        let current = *GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sources) = current
            && (!sources.credentials_expire_by(chrono::Utc::now() + EXPIRY_MARGIN)
                || last.is_some_and(|t| t.elapsed() < REREAD_INTERVAL))
        {
            return Ok(sources);
        }
        *last = Some(std::time::Instant::now());
        let fresh = match (Self::from_env(), current) {
            (Ok(fresh), _) => fresh,
            (Err(e), None) => return Err(e),
            (Err(e), Some(old)) => {
                tracing::warn!(
                    error = %e,
                    "re-reading the sources files for expired credentials failed; keeping the \
                     previous ones"
                );
                return Ok(old);
            }
        };
        if let Some(old) = current
            && old.expirations() == fresh.expirations()
        {
            // Nothing newer mounted yet.
            return Ok(old);
        }
        let fresh: &'static Sources = Box::leak(Box::new(fresh));
        *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
        Ok(fresh)
    }

    /// Whether any source's time-limited credentials expire at or before `at`.
    fn credentials_expire_by(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.sources
            .values()
            .filter_map(|s| s.resolved_credentials.as_ref())
            .filter_map(ResolvedCredentials::expires_at)
            .any(|e| e <= at)
    }

    /// The expiration of each source's credentials.
    fn expirations(&self) -> Vec<Option<&str>> {
        self.sources
            .values()
            .map(|s| {
                s.resolved_credentials
                    .as_ref()
                    .and_then(ResolvedCredentials::expiration)
            })
            .collect()
    }

    /// [`Sources::from_env`] through a variable lookup function.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Sources, SourceError> {
        let mut sources: BTreeMap<String, Source> = BTreeMap::new();
        let mut files_present = false;
        if let Some(path) = crate::config::var(lookup, SOURCE_CREDENTIALS_VAR) {
            files_present = true;
            let path = PathBuf::from(path.trim());
            let creds: BTreeMap<String, BTreeMap<String, String>> =
                read_json(SOURCE_CREDENTIALS_VAR, &path)?;
            for (api_name, secrets) in creds {
                let s = sources
                    .entry(api_name.clone())
                    .or_insert_with(|| Source::empty(&api_name));
                s.secrets
                    .extend(secrets.into_iter().map(|(k, v)| (k, Secret::new(v))));
            }
        }
        if let Some(path) = crate::config::var(lookup, SOURCE_CONFIGURATIONS_VAR) {
            files_present = true;
            let path = PathBuf::from(path.trim());
            let configs: BTreeMap<String, RawConfig> = read_json(SOURCE_CONFIGURATIONS_VAR, &path)?;
            for (api_name, raw) in configs {
                let s = sources
                    .entry(api_name.clone())
                    .or_insert_with(|| Source::empty(&api_name));
                raw.apply(s).map_err(|message| SourceError::Parse {
                    var: SOURCE_CONFIGURATIONS_VAR,
                    path: path.clone(),
                    message: format!("source `{api_name}`: {message}"),
                })?;
            }
        }
        Ok(Sources {
            sources,
            files_present,
        })
    }

    /// The source with this API name.
    pub fn get(&self, api_name: &str) -> Option<&Source> {
        self.sources.get(api_name)
    }

    /// The source with this API name, or an error listing the attached ones.
    pub fn source(&self, api_name: &str) -> Result<&Source, SourceError> {
        self.sources
            .get(api_name)
            .ok_or_else(|| SourceError::NotAttached {
                api_name: api_name.to_owned(),
                attached: self.sources.keys().cloned().collect(),
                files_present: self.files_present,
            })
    }

    /// The API names of the attached sources.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// Whether no source is attached.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Checks `required` against the attached sources; the error lists every missing source
    /// and secret with where it was declared.
    pub fn check<'a>(
        &self,
        required: impl IntoIterator<Item = &'a RequiredSource>,
    ) -> Result<(), SourceError> {
        let mut problems = Vec::new();
        for r in required {
            match self.sources.get(r.api_name) {
                None => problems.push(format!(
                    "source `{}` (required at {}:{}): not attached ({})",
                    r.api_name,
                    r.file,
                    r.line,
                    attached_text(
                        &self.sources.keys().cloned().collect::<Vec<_>>(),
                        self.files_present
                    )
                )),
                Some(s) => {
                    for secret in r.secrets {
                        if !s.secrets.contains_key(*secret) {
                            problems.push(format!(
                                "source `{}` (required at {}:{}): secret `{secret}` is missing \
                                 (it has: {})",
                                r.api_name,
                                r.file,
                                r.line,
                                if s.secrets.is_empty() {
                                    "none".to_owned()
                                } else {
                                    s.secrets.keys().cloned().collect::<Vec<_>>().join(", ")
                                }
                            ));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SourceError::RequiredMissing { problems })
        }
    }
}

/// Reads and parses a JSON sources file. Errors give the JSON path, line and column, and never
/// quote a value from the file (it could be a secret).
fn read_json<T: serde::de::DeserializeOwned>(
    var: &'static str,
    path: &Path,
) -> Result<T, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::Read {
        var,
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.inner();
        let what = match inner.classify() {
            serde_json::error::Category::Io => "I/O error".to_owned(),
            serde_json::error::Category::Syntax => "invalid JSON".to_owned(),
            serde_json::error::Category::Eof => "unexpected end of file".to_owned(),
            serde_json::error::Category::Data => strip_quoted(&inner.to_string()),
        };
        let location = if at.is_empty() || at == "." || at == "?" {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        SourceError::Parse {
            var,
            path: path.to_owned(),
            message: format!(
                "{what}{location} (line {}, column {}); expected a JSON object keyed by source \
                 API name",
                inner.line(),
                inner.column()
            ),
        }
    })
}

/// A serde message with its quoted values and position suffix removed: serde quotes strings
/// with `"` and other values (integers, floats, booleans: a numeric PIN or key) with backticks.
/// Field names are kept (`missing field `url``, `unknown field …, expected one of `a`, `b``):
/// they come from the file's schema, not from its values.
fn strip_quoted(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<(char, bool)> = None;
    for c in message.chars() {
        match quote {
            None if c == '"' || c == '`' => {
                let names =
                    c == '`' && (out.ends_with("field ") || out.contains("expected one of "));
                out.push(c);
                if !names {
                    out.push('…');
                    out.push(c);
                }
                quote = Some((c, names));
            }
            None => out.push(c),
            Some((q, names)) if c == q => {
                if names {
                    out.push(c);
                }
                quote = None;
            }
            Some((_, true)) => out.push(c),
            Some((_, false)) => {}
        }
    }
    out
}

/// One source's entry in `SOURCE_CONFIGURATIONS_PATH`, as read (no `Debug`: it holds secrets).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, String>,
    #[serde(default)]
    http_connection_config: Option<RawHttp>,
    #[serde(default)]
    pub(super) proxy_token: Option<String>,
    #[serde(default)]
    source_configuration: Option<serde_json::Value>,
    #[serde(default)]
    resolved_credentials: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) client_certificate: Option<RawCert>,
    #[serde(default)]
    pub(super) server_certificates: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHttp {
    pub(super) url: String,
    #[serde(default)]
    pub(super) auth_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) query_parameters: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    pub(super) pem_certificate: String,
    pub(super) pem_private_key: String,
}

impl RawConfig {
    fn apply(self, s: &mut Source) -> Result<(), String> {
        s.secrets
            .extend(self.secrets.into_iter().map(|(k, v)| (k, Secret::new(v))));
        if let Some(h) = self.http_connection_config {
            s.http = Some(HttpConnectionConfig {
                url: h.url,
                auth_headers: secrets_map(h.auth_headers),
                query_parameters: secrets_map(h.query_parameters),
            });
        }
        s.proxy_token = self.proxy_token.map(Secret::new);
        s.source_configuration = self.source_configuration;
        s.resolved_credentials = self
            .resolved_credentials
            .map(|v| parse_resolved(&v))
            .transpose()?;
        s.client_certificate = self.client_certificate.map(|c| ClientCertificate {
            pem_certificate: c.pem_certificate,
            pem_private_key: Secret::new(c.pem_private_key),
        });
        s.server_certificates = self.server_certificates;
        Ok(())
    }
}

fn secrets_map(m: BTreeMap<String, String>) -> BTreeMap<String, Secret> {
    m.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()
}

/// Parses `resolvedCredentials` (docs/protocol.md §7.2).
fn parse_resolved(v: &serde_json::Value) -> Result<ResolvedCredentials, String> {
    let obj = v
        .as_object()
        .ok_or("`resolvedCredentials` is not an object")?;
    let obj = obj
        .get("cloudCredentials")
        .and_then(|c| c.as_object())
        .unwrap_or(obj);
    let field = |o: &serde_json::Map<String, serde_json::Value>, ctx: &str, name: &str| {
        o.get(name)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("`{ctx}.{name}` is missing or not a string"))
    };
    let opt = |o: &serde_json::Map<String, serde_json::Value>, name: &str| {
        o.get(name).and_then(|x| x.as_str()).map(str::to_owned)
    };
    if let Some(aws) = obj.get("awsCredentials").and_then(|a| a.as_object()) {
        if let Some(s) = aws.get("sessionCredentials").and_then(|s| s.as_object()) {
            let ctx = "resolvedCredentials.awsCredentials.sessionCredentials";
            return Ok(ResolvedCredentials::Aws(AwsCredentials::Session {
                access_key_id: field(s, ctx, "accessKeyId")?,
                secret_access_key: Secret::new(field(s, ctx, "secretAccessKey")?),
                session_token: Secret::new(field(s, ctx, "sessionToken")?),
                expiration: opt(s, "expiration"),
            }));
        }
        if let Some(b) = aws.get("basicCredentials").and_then(|s| s.as_object()) {
            let ctx = "resolvedCredentials.awsCredentials.basicCredentials";
            return Ok(ResolvedCredentials::Aws(AwsCredentials::Basic {
                access_key_id: field(b, ctx, "accessKeyId")?,
                secret_access_key: Secret::new(field(b, ctx, "secretAccessKey")?),
            }));
        }
        return Err(
            "`resolvedCredentials.awsCredentials` has neither `sessionCredentials` nor \
             `basicCredentials`"
                .to_owned(),
        );
    }
    for (key, gcp) in [("gcpOauthCredentials", true), ("oauth2Credentials", false)] {
        if let Some(o) = obj.get(key).and_then(|x| x.as_object()) {
            let ctx = format!("resolvedCredentials.{key}");
            let access_token = Secret::new(field(o, &ctx, "accessToken")?);
            let expiration = opt(o, "expiration");
            return Ok(if gcp {
                ResolvedCredentials::GcpOauth {
                    access_token,
                    expiration,
                }
            } else {
                ResolvedCredentials::OAuth2 {
                    access_token,
                    expiration,
                }
            });
        }
    }
    Ok(ResolvedCredentials::Unknown {
        kind: obj.keys().next().cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_shows_in_debug_output_or_parse_errors() {
        let dir = tempfile::tempdir().unwrap();
        // An integer-valued credential: serde quotes it with backticks in its message.
        let creds = dir.path().join("creds.json");
        std::fs::write(&creds, r#"{"Api": {"additionalSecretPIN": 987654321}}"#).unwrap();
        let creds = creds.display().to_string();
        let err = Sources::from_lookup(&|k| (k == SOURCE_CREDENTIALS_VAR).then(|| creds.clone()))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("987654321"), "{text}");
        assert!(text.contains("additionalSecretPIN"), "{text}");

        let conf = dir.path().join("conf.json");
        std::fs::write(
            &conf,
            r#"{"Api": {"httpConnectionConfig": {"url": "https://user:planted-pw@api.example.com/v1?token=planted-url-secret", "queryParameters": {"k": "planted-query"}}}}"#,
        )
        .unwrap();
        let conf = conf.display().to_string();
        let sources =
            Sources::from_lookup(&|k| (k == SOURCE_CONFIGURATIONS_VAR).then(|| conf.clone()))
                .unwrap();
        let text = format!("{sources:?}");
        assert!(text.contains("api.example.com/v1"), "{text}");
        assert!(!text.contains("planted"), "{text}");
    }

    #[test]
    fn strip_quoted_removes_values() {
        assert_eq!(
            strip_quoted("invalid type: string \"hunter2\", expected a map at line 1 column 9"),
            "invalid type: string \"…\", expected a map"
        );
        assert_eq!(strip_quoted("missing field `url`"), "missing field `url`");
        assert_eq!(
            strip_quoted("invalid value: integer `1234`, expected a string"),
            "invalid value: integer `…`, expected a string"
        );
        assert_eq!(
            strip_quoted("unknown variant `hunter2`, expected one of `a`, `b`"),
            "unknown variant `…`, expected one of `a`, `b`"
        );
    }

    #[test]
    fn resolved_credentials_variants() {
        let aws = serde_json::json!({"cloudCredentials": {"awsCredentials": {"sessionCredentials": {
            "accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "ST", "expiration": "2030-01-01T00:00:00Z"}}}});
        match parse_resolved(&aws).unwrap() {
            ResolvedCredentials::Aws(AwsCredentials::Session {
                access_key_id,
                session_token,
                ..
            }) => {
                assert_eq!(access_key_id, "AK");
                assert_eq!(session_token.expose(), "ST");
            }
            other => panic!("{other:?}"),
        }
        let gcp = serde_json::json!({"gcpOauthCredentials": {"accessToken": "T"}});
        assert!(matches!(
            parse_resolved(&gcp).unwrap(),
            ResolvedCredentials::GcpOauth { .. }
        ));
        let bad = serde_json::json!({"cloudCredentials": {"awsCredentials": {"basicCredentials": {"accessKeyId": "A"}}}});
        let err = parse_resolved(&bad).unwrap_err();
        assert!(err.contains("secretAccessKey"), "{err}");
        let dbg = format!("{:?}", parse_resolved(&aws).unwrap());
        assert!(!dbg.contains("SK") && !dbg.contains("ST\""), "{dbg}");
    }
}
