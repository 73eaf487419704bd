//! An in-memory root filesystem, written out as one deterministic tar layer.
//!
//! Entries are kept sorted by path, so parents always precede their children in the tar and the
//! same inputs give byte-identical layers (and digests). Every entry is owned by root; the
//! process user only needs read/execute access, plus `/tmp` (mode 1777) for writes.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

/// One entry of the filesystem.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory with its permission bits (e.g. `0o755`, `0o1777`).
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points (absolute or relative).
        target: String,
    },
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir { mode } => write!(f, "Dir({mode:o})"),
            Self::File { mode, data } => write!(f, "File({mode:o}, {} bytes)", data.len()),
            Self::Symlink { target } => write!(f, "Symlink({target})"),
        }
    }
}

/// Why an entry cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootfsError {
    /// The path is empty, relative to nothing, or contains `..`.
    #[error("invalid path `{0}` in the image: use an absolute path without `..`")]
    InvalidPath(String),
    /// A file or symlink already sits where a directory is needed (or the reverse).
    #[error("`/{path}` conflicts with an existing {existing} in the image")]
    Conflict {
        /// The path.
        path: String,
        /// What is already there.
        existing: &'static str,
    },
}

/// A root filesystem under construction. Paths are given absolute (`/bin/sh`); missing parent
/// directories are created with mode 0755.
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    entries: BTreeMap<String, Node>,
}

/// Turns `/a/./b/` into `a/b`; rejects `..` and the root itself.
fn key(path: &str) -> Result<String, RootfsError> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(RootfsError::InvalidPath(path.to_owned())),
            p => parts.push(p),
        }
    }
    if parts.is_empty() || !path.starts_with('/') {
        return Err(RootfsError::InvalidPath(path.to_owned()));
    }
    Ok(parts.join("/"))
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Dir { .. } => "directory",
        Node::File { .. } => "file",
        Node::Symlink { .. } => "symlink",
    }
}

impl Rootfs {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure_parents(&mut self, key: &str) -> Result<(), RootfsError> {
        let mut end = 0;
        while let Some(pos) = key[end..].find('/') {
            let parent = &key[..end + pos];
            match self.entries.get(parent) {
                None => {
                    self.entries
                        .insert(parent.to_owned(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(other) => {
                    return Err(RootfsError::Conflict {
                        path: parent.to_owned(),
                        existing: kind(other),
                    });
                }
            }
            end += pos + 1;
        }
        Ok(())
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<(), RootfsError> {
        let key = key(path)?;
        self.ensure_parents(&key)?;
        match (self.entries.get(&key), &node) {
            // Re-adding a directory only updates its mode; files/links replace files/links.
            (Some(Node::Dir { .. }), Node::Dir { .. })
            | (
                None | Some(Node::File { .. } | Node::Symlink { .. }),
                Node::File { .. } | Node::Symlink { .. },
            ) => {}
            (Some(existing), _) => {
                return Err(RootfsError::Conflict {
                    path: key,
                    existing: kind(existing),
                });
            }
            (None, Node::Dir { .. }) => {}
        }
        self.entries.insert(key, node);
        Ok(())
    }

    /// Adds (or re-modes) a directory.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), RootfsError> {
        self.insert(path, Node::Dir { mode })
    }

    /// Adds a regular file, replacing a file or symlink at the same path.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), RootfsError> {
        self.insert(path, Node::File { mode, data })
    }

    /// Adds a symbolic link, replacing a file or symlink at the same path.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), RootfsError> {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// The entry at an absolute path, if any.
    pub fn get(&self, path: &str) -> Option<&Node> {
        key(path).ok().and_then(|k| self.entries.get(&k))
    }

    /// All entries as `(absolute path, node)`, sorted.
    pub fn entries(&self) -> impl Iterator<Item = (String, &Node)> {
        self.entries.iter().map(|(k, v)| (format!("/{k}"), v))
    }

    /// Writes the filesystem as an uncompressed tar: sorted, root-owned, all mtimes `mtime`.
    pub fn to_tar(&self, mtime: u64) -> io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            match node {
                Node::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), io::empty())?;
                }
                Node::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, data.as_slice())?;
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        builder.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_first_and_deterministic() {
        let mut fs = Rootfs::new();
        fs.add_file("/usr/bin/tee", b"x".to_vec(), 0o755).unwrap();
        fs.add_symlink("/bin/sh", "busybox").unwrap();
        fs.add_dir("/tmp", 0o1777).unwrap();
        let paths: Vec<_> = fs.entries().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "/bin",
                "/bin/sh",
                "/tmp",
                "/usr",
                "/usr/bin",
                "/usr/bin/tee"
            ]
        );
        assert_eq!(fs.to_tar(0).unwrap(), fs.clone().to_tar(0).unwrap());

        let tar = fs.to_tar(0).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert!(names.contains(&("tmp/".to_owned(), 0o1777)), "{names:?}");
    }

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        let mut fs = Rootfs::new();
        assert!(fs.add_file("relative", vec![], 0o644).is_err());
        assert!(fs.add_file("/a/../etc/passwd", vec![], 0o644).is_err());
        fs.add_file("/app/x", vec![], 0o755).unwrap();
        assert!(matches!(
            fs.add_file("/app/x/y", vec![], 0o644),
            Err(RootfsError::Conflict { .. })
        ));
        assert!(matches!(
            fs.add_dir("/app/x", 0o755),
            Err(RootfsError::Conflict { .. })
        ));
    }
}
