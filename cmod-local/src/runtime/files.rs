//! The files a module reads: the module auth token and the CA certificate.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::LocalError;
use super::ids::random_bytes;

/// File name of the module auth token inside the runtime directory.
pub(crate) const TOKEN_FILE: &str = "module-auth-token";
/// File name of the CA certificate (PEM) inside the runtime directory.
pub(crate) const CA_FILE: &str = "ca.pem";

/// The runtime directory and the files in it. A directory the runtime created itself is
/// removed by [`RuntimeFiles::cleanup`] or on drop.
#[derive(Debug)]
pub(crate) struct RuntimeFiles {
    dir: PathBuf,
    token_path: PathBuf,
    ca_path: PathBuf,
    owned: bool,
    cleaned: AtomicBool,
}

impl RuntimeFiles {
    /// Writes `token` and `ca_pem` into `dir`, or into a new private temporary directory.
    pub(crate) fn create(
        dir: Option<&Path>,
        token: &str,
        ca_pem: &str,
    ) -> Result<Self, LocalError> {
        let (dir, owned) = match dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|source| LocalError::Dir {
                    path: dir.to_owned(),
                    source,
                })?;
                (dir.to_owned(), false)
            }
            None => (create_temp_dir()?, true),
        };
        let files = Self {
            token_path: dir.join(TOKEN_FILE),
            ca_path: dir.join(CA_FILE),
            dir,
            owned,
            cleaned: AtomicBool::new(false),
        };
        write_file(
            &files.token_path,
            token.as_bytes(),
            true,
            "module auth token",
        )?;
        write_file(&files.ca_path, ca_pem.as_bytes(), false, "CA certificate")?;
        Ok(files)
    }

    pub(crate) fn token_path(&self) -> &Path {
        &self.token_path
    }

    pub(crate) fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Writes a new module auth token. `replace`: into a new file renamed over the old one
    /// (readers see the old file or the new one, never a partial one, and the path gets a new
    /// inode, as when Kubernetes updates a mounted secret); else the file is truncated and
    /// rewritten in place (same inode).
    pub(crate) fn rewrite_token(&self, token: &str, replace: bool) -> Result<(), LocalError> {
        const WHAT: &str = "module auth token";
        if !replace {
            return write_file(&self.token_path, token.as_bytes(), true, WHAT);
        }
        let tmp = self.dir.join(format!("{TOKEN_FILE}.rotating"));
        write_file(&tmp, token.as_bytes(), true, WHAT)?;
        fs::rename(&tmp, &self.token_path).map_err(|source| LocalError::WriteFile {
            what: WHAT,
            path: self.token_path.clone(),
            source,
        })
    }

    /// Removes the directory if the runtime created it (once; later calls do nothing).
    pub(crate) fn cleanup(&self) {
        if self.owned
            && !self.cleaned.swap(true, Ordering::AcqRel)
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            tracing::debug!(dir = %self.dir.display(), "could not remove runtime directory: {e}");
        }
    }
}

impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn create_temp_dir() -> Result<PathBuf, LocalError> {
    let base = std::env::temp_dir();
    let mut last_err = None;
    for _ in 0..8 {
        let mut suffix = [0u8; 6];
        random_bytes(&mut suffix)?;
        let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let path = base.join(format!("cmod-local-{}-{name}", std::process::id()));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(source) => return Err(LocalError::Dir { path, source }),
        }
    }
    Err(LocalError::Dir {
        path: base,
        source: last_err.unwrap_or_else(|| std::io::Error::other("no free directory name")),
    })
}

fn write_file(
    path: &Path,
    contents: &[u8],
    private: bool,
    what: &'static str,
) -> Result<(), LocalError> {
    let err = |source| LocalError::WriteFile {
        what,
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.flush().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dir_is_created_and_removed() {
        let files = RuntimeFiles::create(None, "secret", "PEM").unwrap();
        assert_eq!(fs::read_to_string(files.token_path()).unwrap(), "secret");
        assert_eq!(fs::read_to_string(files.ca_path()).unwrap(), "PEM");
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists());
    }

    #[test]
    fn given_dir_is_kept() {
        let base = std::env::temp_dir().join(format!("cmod-local-test-{}", std::process::id()));
        let files = RuntimeFiles::create(Some(&base.join("nested")), "t", "c").unwrap();
        let token = files.token_path().to_owned();
        files.cleanup();
        drop(files);
        assert!(token.exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
