//! OCI image layout: the JSON documents (index, manifest, config), content digests, and
//! reading/writing a layout as a directory or as a single tar archive.
//!
//! The types are hand-written serde structs covering what compute-module images use; unknown
//! fields in documents written by other tools (Docker, buildah, …) are ignored when reading.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Media types of the documents and blobs in an image.
pub mod media_type {
    /// OCI image index (`index.json`, multi-platform lists).
    pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image configuration.
    pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Gzip-compressed tar layer.
    pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Uncompressed tar layer.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Docker manifest list (accepted when checking).
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest (accepted when checking).
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker image configuration (accepted when checking).
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip-compressed tar layer (accepted when checking).
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// Annotation carrying the tag of a manifest in `index.json` (read by skopeo, podman, crane).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation carrying the full image name in `index.json` (read by `docker load` ≥ 25).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// Errors while reading, parsing or writing an image layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A JSON document of the layout does not parse.
    #[error("{what} is not valid JSON for its type: {source}")]
    Json {
        /// Which document (`index.json`, `manifest sha256:…`, …).
        what: String,
        /// The parse error (names the offending field).
        #[source]
        source: serde_json::Error,
    },
    /// A file required by the OCI image layout specification is missing.
    #[error("{path} is not an OCI image layout: missing `{file}`")]
    Missing {
        /// The layout directory or archive.
        path: PathBuf,
        /// The missing file (`oci-layout`, `index.json`, a blob path).
        file: String,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest `{digest}`: {reason}")]
    InvalidDigest {
        /// The digest as written.
        digest: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Compressing a layer failed.
    #[error("cannot gzip the layer: {0}")]
    Compress(#[source] io::Error),
    /// An image reference (`name:tag`) is malformed.
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is rejected.
        reason: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A `sha256:<hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes a running SHA-256 hash into a digest.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self {
            hex: to_hex(&hasher.finalize()),
        }
    }

    /// Parses `sha256:<64 lowercase hex>`. Other algorithms are rejected: every tool that
    /// writes layouts uses sha256, and validating the hex keeps blob paths inside `blobs/`.
    pub fn parse(digest: &str) -> Result<Self, LayoutError> {
        let invalid = |reason| LayoutError::InvalidDigest {
            digest: digest.to_owned(),
            reason,
        };
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid("only `sha256:` digests are supported"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                "expected 64 lowercase hex characters after `sha256:`",
            ));
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The blob's path inside a layout: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// The `oci-layout` marker file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciLayoutFile {
    /// Always `1.0.0`.
    pub image_layout_version: String,
}

/// A reference to a blob: media type, digest and size (and optional annotations/platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>` of the blob's bytes.
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// Free-form annotations (the tag lives here in `index.json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform of a manifest listed in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// Describes `data` as a blob of `media_type`.
    pub fn for_blob(media_type: &str, data: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: Digest::of(data).to_string(),
            size: data.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's naming (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8` for arm64), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `index.json`, or an image index blob (multi-platform list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` (optional in older documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes) it lists.
    pub manifests: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest: one config and an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image configuration blob.
    pub config: Descriptor,
    /// The filesystem layers, base first.
    pub layers: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The image configuration: platform, runtime defaults, and the layers' uncompressed digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfiguration {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How to run the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// How each layer was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
}

/// The runtime part of an image configuration (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `uid`, `uid:gid`, `name` or `name:group`; Foundry requires a numeric non-zero uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports as keys `port/proto` with empty-object values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Environment, `KEY=value` strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The command run at start; Foundry appends the configured arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or the command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal sent to stop the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The `rootfs` section of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// sha256 of each layer's *uncompressed* tar, in layer order.
    pub diff_ids: Vec<String>,
}

/// One history entry of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the layer was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command or tool that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step produced no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// A compressed layer ready to be written, with its uncompressed digest.
#[derive(Clone)]
pub struct Layer {
    /// Descriptor of the compressed blob.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar (the config's `diff_id`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// The blob bytes (gzip'd tar).
    pub data: Vec<u8>,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layer")
            .field("descriptor", &self.descriptor)
            .field("diff_id", &self.diff_id)
            .field("uncompressed_size", &self.uncompressed_size)
            .finish_non_exhaustive()
    }
}

impl Layer {
    /// Gzips a tar archive into a layer (deterministic: no name, mtime 0 in the gzip header).
    pub fn from_tar(tar: &[u8]) -> Result<Self, LayoutError> {
        let mut encoder = flate2::GzBuilder::new().write(Vec::new(), Compression::best());
        let data = encoder
            .write_all(tar)
            .and_then(|()| encoder.finish())
            .map_err(LayoutError::Compress)?;
        Ok(Self {
            descriptor: Descriptor::for_blob(media_type::LAYER_TAR_GZIP, &data),
            diff_id: Digest::of(tar),
            uncompressed_size: tar.len() as u64,
            data,
        })
    }
}

/// An image reference `name:tag` (the name may include a registry host and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository name, e.g. `mystack-container-registry.palantirfoundry.com/quickstart`.
    pub name: String,
    /// Tag, e.g. `0.1.0`.
    pub tag: String,
}

impl ImageRef {
    /// Parses `name:tag`. The tag must follow the OCI rules (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`)
    /// and must not be `latest` (Foundry rejects it); the name must be lowercase.
    pub fn parse(reference: &str) -> Result<Self, LayoutError> {
        let invalid = |reason| LayoutError::InvalidReference {
            reference: reference.to_owned(),
            reason,
        };
        let (name, tag) = match reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => {
                return Err(invalid(
                    "expected `name:tag` (Foundry needs an explicit tag)",
                ));
            }
        };
        if name.is_empty() {
            return Err(invalid("the name before `:` is empty"));
        }
        let path = name.split_once('/').map_or(name, |(first, rest)| {
            // A first component with `.` or `:` (or `localhost`) is a registry host.
            if first.contains(['.', ':']) || first == "localhost" {
                rest
            } else {
                name
            }
        });
        if !path.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
        }) || path.is_empty()
        {
            return Err(invalid(
                "the repository name may only contain lowercase letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(invalid(
                "the tag must be 1-128 characters of letters, digits, `.`, `_`, `-`, not starting with `.` or `-`",
            ));
        }
        if tag == "latest" {
            return Err(invalid(
                "Foundry does not accept the `latest` tag; use a version or a commit id",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// A single-platform image in memory: configuration, layers and an optional reference.
///
/// The configuration is written exactly as given (its `rootfs.diff_ids` are not recomputed), so
/// callers can also craft deliberately broken images for testing a checker.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image configuration.
    pub config: ImageConfiguration,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// Name and tag recorded in `index.json` (and `manifest.json` for `docker load`).
    pub reference: Option<ImageRef>,
    /// Extra annotations on the manifest's entry in `index.json` (can override the tag
    /// annotation, e.g. to craft an invalid image).
    pub index_annotations: BTreeMap<String, String>,
}

/// The files of a serialised layout, and the digests that identify it.
#[derive(Debug, Clone)]
pub struct LayoutFiles {
    /// Relative path → contents, in a deterministic order.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Digest of the manifest (the image's identity in a registry).
    pub manifest_digest: Digest,
    /// Digest of the configuration (Docker's image id).
    pub config_digest: Digest,
}

impl Image {
    /// Serialises the image into the files of an OCI image layout: `oci-layout`, `index.json`,
    /// `blobs/sha256/*`, plus a Docker `manifest.json` so `docker load` of older engines and
    /// `crane push <tarball>` accept the archive too.
    pub fn to_layout_files(&self) -> Result<LayoutFiles, LayoutError> {
        let mut files = BTreeMap::new();
        let config = json("image config", &self.config)?;
        let config_desc = Descriptor::for_blob(media_type::IMAGE_CONFIG, &config);
        let config_digest = Digest::of(&config);
        files.insert(config_digest.blob_path(), config);
        let mut layer_paths = Vec::new();
        for layer in &self.layers {
            let digest = Digest::parse(&layer.descriptor.digest)?;
            layer_paths.push(digest.blob_path());
            files.insert(digest.blob_path(), layer.data.clone());
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::IMAGE_MANIFEST.to_owned()),
            config: config_desc,
            layers: self.layers.iter().map(|l| l.descriptor.clone()).collect(),
            annotations: BTreeMap::new(),
        };
        let manifest = json("image manifest", &manifest)?;
        let mut manifest_desc = Descriptor::for_blob(media_type::IMAGE_MANIFEST, &manifest);
        let manifest_digest = Digest::of(&manifest);
        files.insert(manifest_digest.blob_path(), manifest);
        if let Some(reference) = &self.reference {
            manifest_desc
                .annotations
                .insert(ANNOTATION_REF_NAME.to_owned(), reference.tag.clone());
            manifest_desc
                .annotations
                .insert(ANNOTATION_IMAGE_NAME.to_owned(), reference.to_string());
        }
        manifest_desc.annotations.extend(
            self.index_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        manifest_desc.platform = Some(Platform {
            architecture: self.config.architecture.clone(),
            os: self.config.os.clone(),
            variant: self.config.variant.clone(),
        });
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::IMAGE_INDEX.to_owned()),
            manifests: vec![manifest_desc],
            annotations: BTreeMap::new(),
        };
        files.insert("index.json".to_owned(), json("index.json", &index)?);
        files.insert(
            "oci-layout".to_owned(),
            json(
                "oci-layout",
                &OciLayoutFile {
                    image_layout_version: "1.0.0".to_owned(),
                },
            )?,
        );
        let docker = serde_json::json!([{
            "Config": config_digest.blob_path(),
            "RepoTags": self.reference.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "Layers": layer_paths,
        }]);
        files.insert("manifest.json".to_owned(), json("manifest.json", &docker)?);
        Ok(LayoutFiles {
            files,
            manifest_digest,
            config_digest,
        })
    }
}

fn json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, LayoutError> {
    serde_json::to_vec(value).map_err(|source| LayoutError::Json {
        what: what.to_owned(),
        source,
    })
}

impl LayoutFiles {
    /// Writes the layout into directory `dir` (created if needed; existing blobs are kept so
    /// several images can share one layout, but `index.json` is replaced).
    pub fn write_dir(&self, dir: &Path) -> Result<(), LayoutError> {
        for (rel, data) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::write(&path, data).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Writes the layout as one tar archive at `file` (deterministic: sorted entries, mtime 0,
    /// root-owned). This is the format of `skopeo copy oci-archive:FILE …` and `docker load -i`.
    pub fn write_archive(&self, file: &Path) -> Result<(), LayoutError> {
        let out = fs::File::create(file).map_err(io_err(file))?;
        let mut builder = tar::Builder::new(io::BufWriter::new(out));
        let mut dirs = std::collections::BTreeSet::new();
        for rel in self.files.keys() {
            let mut parent = Path::new(rel).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(p.to_path_buf());
                parent = p.parent();
            }
        }
        let mut append = |rel: &Path, data: Option<&[u8]>| -> io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match data {
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, rel, io::empty())
                }
                Some(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, rel, data)
                }
            }
        };
        for dir in &dirs {
            append(dir, None).map_err(io_err(file))?;
        }
        for (rel, data) in &self.files {
            append(Path::new(rel), Some(data)).map_err(io_err(file))?;
        }
        let mut writer = builder.into_inner().map_err(io_err(file))?;
        writer.flush().map_err(io_err(file))?;
        Ok(())
    }
}

enum Source {
    Dir(PathBuf),
    Archive(HashMap<String, Vec<u8>>),
}

/// An OCI image layout opened for reading: a directory or a tar archive of one.
pub struct Layout {
    path: PathBuf,
    source: Source,
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::Dir(_) => "directory",
            Source::Archive(_) => "archive",
        };
        f.debug_struct("Layout")
            .field("path", &self.path)
            .field("kind", &kind)
            .finish()
    }
}

impl Layout {
    /// Opens a layout directory, or a tar archive of one (read fully into memory).
    pub fn open(path: &Path) -> Result<Self, LayoutError> {
        let meta = fs::metadata(path).map_err(io_err(path))?;
        let source = if meta.is_dir() {
            Source::Dir(path.to_path_buf())
        } else {
            let file = fs::File::open(path).map_err(io_err(path))?;
            let mut archive = tar::Archive::new(io::BufReader::new(file));
            let mut files = HashMap::new();
            for entry in archive.entries().map_err(io_err(path))? {
                let mut entry = entry.map_err(io_err(path))?;
                if entry.header().entry_type() != tar::EntryType::Regular {
                    continue;
                }
                let name = entry.path().map_err(io_err(path))?;
                let name = normalize(&name.to_string_lossy());
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(io_err(path))?;
                files.insert(name, data);
            }
            Source::Archive(files)
        };
        let layout = Self {
            path: path.to_path_buf(),
            source,
        };
        // Both files are mandatory; fail early with a clear message.
        layout.read_file("oci-layout")?;
        layout.read_file("index.json")?;
        Ok(layout)
    }

    /// The path the layout was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a file of the layout by its relative path.
    pub fn read_file(&self, rel: &str) -> Result<Vec<u8>, LayoutError> {
        let missing = || LayoutError::Missing {
            path: self.path.clone(),
            file: rel.to_owned(),
        };
        match &self.source {
            Source::Dir(dir) => {
                let path = dir.join(rel);
                match fs::read(&path) {
                    Ok(data) => Ok(data),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
                    Err(source) => Err(LayoutError::Io { path, source }),
                }
            }
            Source::Archive(files) => files.get(rel).cloned().ok_or_else(missing),
        }
    }

    /// Reads the blob a descriptor points at (the digest is validated, not verified: compare
    /// with [`Digest::of`] to verify).
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let digest = Digest::parse(&descriptor.digest)?;
        self.read_file(&digest.blob_path())
    }

    /// Parses the `oci-layout` marker.
    pub fn oci_layout(&self) -> Result<OciLayoutFile, LayoutError> {
        parse_json("oci-layout", &self.read_file("oci-layout")?)
    }

    /// Parses `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        parse_json("index.json", &self.read_file("index.json")?)
    }
}

/// Parses a JSON document, naming it in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    data: &[u8],
) -> Result<T, LayoutError> {
    serde_json::from_slice(data).map_err(|source| LayoutError::Json {
        what: what.to_owned(),
        source,
    })
}

/// Normalises a path inside an archive: no leading `./` or `/`, no trailing `/`.
pub fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parse_rejects_traversal_and_other_algorithms() {
        assert!(Digest::parse("sha512:abc").is_err());
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    #[test]
    fn image_ref_rules() {
        let r = ImageRef::parse("acme-container-registry.palantirfoundry.com/quickstart:0.1.0")
            .unwrap();
        assert_eq!(r.tag, "0.1.0");
        assert!(ImageRef::parse("quickstart").is_err());
        assert!(ImageRef::parse("quickstart:latest").is_err());
        assert!(ImageRef::parse("QuickStart:1").is_err());
        assert!(ImageRef::parse("localhost:5000/quickstart").is_err());
        assert_eq!(
            ImageRef::parse("localhost:5000/q:v1").unwrap().name,
            "localhost:5000/q"
        );
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("./blobs/sha256/"), "blobs/sha256");
        assert_eq!(normalize("/bin/sh"), "bin/sh");
    }
}
