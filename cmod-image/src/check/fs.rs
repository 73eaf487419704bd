//! The merged filesystem of an image's layers (metadata only) and the checks on it: `/bin/sh`,
//! `tee` and `echo` in `PATH`, a CA bundle, and the entrypoint with its loader or interpreter.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::{ImageCheck, Violation};
use crate::elf;
use crate::layout::{Digest, ImageConfiguration};
use crate::requirements::IMAGE_PATH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
}

/// A filesystem node after applying layers.
#[derive(Debug, Clone)]
pub(super) enum FsNode {
    Dir,
    File { mode: u32, layer: usize },
    Symlink { target: String },
    Hardlink { target: String },
    Other,
}

#[derive(Debug, Clone)]
pub(super) struct TarEntry {
    path: String,
    node: FsNode,
}

/// Hashes everything read through it (the layer's diff id).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn decompressor(data: &[u8], compression: Compression) -> Box<dyn Read + '_> {
    match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::None => Box::new(data),
    }
}

/// Lists a layer's entries and computes its uncompressed digest.
pub(super) fn read_layer(
    data: &[u8],
    compression: Compression,
) -> io::Result<(Vec<TarEntry>, Digest)> {
    let mut archive = tar::Archive::new(HashingReader {
        inner: decompressor(data, compression),
        hasher: Sha256::new(),
    });
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = crate::layout::normalize(&entry.path()?.to_string_lossy());
        let header = entry.header();
        let node = match header.entry_type() {
            tar::EntryType::Directory => FsNode::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                FsNode::File {
                    mode: header.mode()?,
                    layer: 0,
                }
            }
            tar::EntryType::Symlink => FsNode::Symlink {
                target: entry
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
            tar::EntryType::Link => FsNode::Hardlink {
                target: crate::layout::normalize(
                    &entry
                        .link_name()?
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            },
            _ => FsNode::Other,
        };
        entries.push(TarEntry { path, node });
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())?;
    Ok((entries, Digest::from_hasher(rest.hasher)))
}

/// Reads the first `limit` bytes of the file at `path` in a layer.
fn read_layer_file(
    data: &[u8],
    compression: Compression,
    path: &str,
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(decompressor(data, compression));
    for entry in archive.entries()? {
        let entry = entry?;
        if crate::layout::normalize(&entry.path()?.to_string_lossy()) == path {
            let mut buf = Vec::new();
            entry.take(limit).read_to_end(&mut buf)?;
            return Ok(Some(buf));
        }
    }
    Ok(None)
}

/// The merged filesystem of all layers (metadata only).
#[derive(Debug, Default)]
pub(super) struct Fs {
    nodes: BTreeMap<String, FsNode>,
}

impl Fs {
    /// The number of paths in the merged filesystem.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Applies one layer, honouring OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`).
    pub(super) fn apply(&mut self, layer: usize, entries: Vec<TarEntry>) {
        let mut additions = Vec::new();
        for entry in entries {
            let (dir, name) = match entry.path.rsplit_once('/') {
                Some((d, n)) => (d.to_owned(), n.to_owned()),
                None => (String::new(), entry.path.clone()),
            };
            if name == ".wh..wh..opq" {
                self.remove_children(&dir);
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                let target = if dir.is_empty() {
                    hidden.to_owned()
                } else {
                    format!("{dir}/{hidden}")
                };
                self.remove_tree(&target);
            } else if !entry.path.is_empty() {
                additions.push(entry);
            }
        }
        for TarEntry { path, node } in additions {
            let node = match node {
                FsNode::File { mode, .. } => FsNode::File { mode, layer },
                other => other,
            };
            if !matches!(node, FsNode::Dir) {
                self.remove_children(&path);
            }
            self.nodes.insert(path, node);
        }
    }

    /// Resolves `path` (absolute or relative to `/`), following symlinks and hard links.
    /// Returns the final path and node (`Dir` for `/`).
    fn resolve(&self, path: &str) -> Option<(String, FsNode)> {
        let mut pending: VecDeque<String> = path.split('/').map(str::to_owned).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            let mut candidate = current.clone();
            candidate.push(part);
            let key = candidate.join("/");
            match self.nodes.get(&key)? {
                FsNode::Symlink { target } | FsNode::Hardlink { target } => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let absolute = target.starts_with('/')
                        || matches!(self.nodes.get(&key), Some(FsNode::Hardlink { .. }));
                    if absolute {
                        current.clear();
                    }
                    for p in target.split('/').rev() {
                        pending.push_front(p.to_owned());
                    }
                }
                FsNode::Dir => current = candidate,
                node @ (FsNode::File { .. } | FsNode::Other) => {
                    if pending.iter().any(|p| !p.is_empty() && p != ".") {
                        return None; // a file used as a directory
                    }
                    return Some((key, node.clone()));
                }
            }
        }
        Some((current.join("/"), FsNode::Dir))
    }

    fn executable(&self, path: &str) -> Option<(String, u32, usize)> {
        match self.resolve(path)? {
            (key, FsNode::File { mode, layer }) if mode & 0o111 != 0 => Some((key, mode, layer)),
            _ => None,
        }
    }
}

fn env_path(config: &ImageConfiguration) -> String {
    config
        .config
        .as_ref()
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
        .unwrap_or(IMAGE_PATH)
        .to_owned()
}

fn find_in_path(fs: &Fs, path_var: &str, name: &str) -> Option<(String, u32, usize)> {
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .find_map(|dir| fs.executable(&format!("{dir}/{name}")))
}

pub(super) fn check_filesystem(
    fs: &Fs,
    config: &ImageConfiguration,
    layers: &[Option<(Vec<u8>, Compression)>],
    image: &mut ImageCheck,
) {
    let path_var = env_path(config);
    if fs.executable("/bin/sh").is_none() {
        image.violations.push(Violation::MissingShell);
    }
    if find_in_path(fs, &path_var, "tee").is_none() {
        image.violations.push(Violation::MissingTee {
            path: path_var.clone(),
        });
    }
    if find_in_path(fs, &path_var, "echo").is_none() {
        image.warnings.push(format!(
            "no `echo` in PATH ({path_var}): Foundry's default readiness probe executes `echo`; configure another probe or add it"
        ));
    }
    let ca_env = config
        .config
        .as_ref()
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("SSL_CERT_FILE=")));
    let ca_candidates = [
        ca_env.unwrap_or("/etc/ssl/certs/ca-certificates.crt"),
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    if !ca_candidates
        .iter()
        .any(|c| matches!(fs.resolve(c), Some((_, FsNode::File { .. }))))
    {
        image.warnings.push(
            "no CA certificate bundle (/etc/ssl/certs/ca-certificates.crt): TLS to public hosts will fail unless the module embeds its roots".to_owned(),
        );
    }

    let Some(argv0) = image.entrypoint.first().cloned() else {
        image.violations.push(Violation::NoEntrypoint);
        return;
    };
    let found = if argv0.contains('/') {
        let working_dir = config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_else(|| "/".to_owned());
        let full = if argv0.starts_with('/') {
            argv0.clone()
        } else {
            format!("{working_dir}/{argv0}")
        };
        match fs.resolve(&full) {
            None => None,
            Some((key, FsNode::File { mode, layer })) if mode & 0o111 != 0 => {
                Some((key, mode, layer))
            }
            Some((key, _)) => {
                image.violations.push(Violation::EntrypointNotExecutable {
                    path: format!("/{key}"),
                });
                return;
            }
        }
    } else {
        find_in_path(fs, &path_var, &argv0)
    };
    let Some((key, _mode, layer)) = found else {
        image
            .violations
            .push(Violation::MissingEntrypoint { entrypoint: argv0 });
        return;
    };
    let head = layers
        .get(layer)
        .and_then(Option::as_ref)
        .and_then(|(data, compression)| {
            // The whole file: the header for the architecture and loader, the rest for the
            // local-runtime markers.
            read_layer_file(data, *compression, &key, u64::MAX)
                .ok()
                .flatten()
        });
    let Some(head) = head else {
        image.warnings.push(format!(
            "could not read /{key} from its layer to check its architecture and loader"
        ));
        return;
    };
    let path = format!("/{key}");
    if let Some(marker) = crate::local_runtime::find_marker(&head) {
        image.warnings.push(format!(
            "the entrypoint {path} contains cmod-runtime's embedded local runtime (found `{marker}`): \
             production images leave it out (build without the crate's `local` feature; see docs/container.md)"
        ));
    }
    if let Some(script) = head.strip_prefix(b"#!") {
        let line = script.split(|&b| b == b'\n').next().unwrap_or_default();
        let interpreter = String::from_utf8_lossy(line)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if fs.executable(&interpreter).is_none() {
            image
                .violations
                .push(Violation::MissingInterpreter { path, interpreter });
        }
        return;
    }
    match elf::parse(&head) {
        Ok(info) if !info.is_amd64() => image.violations.push(Violation::EntrypointWrongArch {
            path,
            machine: info.machine_name(),
        }),
        Ok(info) => {
            if let Some(interpreter) = info.interpreter
                && !matches!(fs.resolve(&interpreter), Some((_, FsNode::File { .. })))
            {
                image
                    .violations
                    .push(Violation::MissingInterpreter { path, interpreter });
            }
        }
        Err(e) => image.warnings.push(format!(
            "the entrypoint {path} is neither a script nor a readable ELF binary ({e})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32) -> FsNode {
        FsNode::File { mode, layer: 0 }
    }

    #[test]
    fn resolves_merged_usr_symlinks_and_whiteouts() {
        let mut fs = Fs::default();
        fs.apply(
            0,
            vec![
                TarEntry {
                    path: "usr".into(),
                    node: FsNode::Dir,
                },
                TarEntry {
                    path: "usr/bin".into(),
                    node: FsNode::Dir,
                },
                TarEntry {
                    path: "usr/bin/dash".into(),
                    node: file(0o755),
                },
                TarEntry {
                    path: "usr/bin/sh".into(),
                    node: FsNode::Symlink {
                        target: "dash".into(),
                    },
                },
                TarEntry {
                    path: "bin".into(),
                    node: FsNode::Symlink {
                        target: "usr/bin".into(),
                    },
                },
                TarEntry {
                    path: "usr/bin/tee".into(),
                    node: file(0o755),
                },
            ],
        );
        assert_eq!(
            fs.executable("/bin/sh").map(|e| e.0).as_deref(),
            Some("usr/bin/dash")
        );
        fs.apply(
            1,
            vec![TarEntry {
                path: "usr/bin/.wh.tee".into(),
                node: file(0),
            }],
        );
        assert!(fs.executable("/bin/tee").is_none());
        fs.apply(
            2,
            vec![TarEntry {
                path: "usr/bin/.wh..wh..opq".into(),
                node: file(0),
            }],
        );
        assert!(fs.executable("/bin/sh").is_none());
        assert!(fs.resolve("/usr/bin").is_some());
    }

    #[test]
    fn symlink_loops_do_not_hang() {
        let mut fs = Fs::default();
        fs.apply(
            0,
            vec![
                TarEntry {
                    path: "a".into(),
                    node: FsNode::Symlink { target: "b".into() },
                },
                TarEntry {
                    path: "b".into(),
                    node: FsNode::Symlink {
                        target: "/a".into(),
                    },
                },
            ],
        );
        assert!(fs.resolve("/a/x").is_none());
    }
}
