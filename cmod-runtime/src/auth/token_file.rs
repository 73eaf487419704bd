//! A token file the platform may replace while the process runs (`BUILD2_TOKEN`,
//! `MODULE_AUTH_TOKEN`): one cached value, re-read when the file's stamp (size, modification
//! time, inode, ctime) changes and on demand after the server refused the token.
//!
//! - The stamp is compared at most once per `interval` (zero: on every call), so a hot path pays a
//!   lock and a clone of the cached value, not a `stat`.
//! - A file that cannot be read right now (missing while a secret volume is swapped, empty while
//!   rewritten in place) keeps the last good value; so does a new content the caller's `convert`
//!   refuses (a token a header cannot carry), reported once per version of the file.
//! - Messages name the variable and the file, never the token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::secret::Secret;

/// Why the token file gave no usable token. Both variants name the variable and the file, never
/// the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenFileError {
    /// Missing, unreadable or empty.
    #[error("{var}: {message}")]
    Unreadable {
        var: &'static str,
        /// What is wrong, naming the file.
        message: String,
    },
    /// Read, but the content cannot be used (`convert` refused it).
    #[error("{var}: the token in {} {reason}", path.display())]
    Invalid {
        var: &'static str,
        path: PathBuf,
        /// Why, never quoting the content.
        reason: &'static str,
    },
}

impl TokenFileError {
    /// Logs that the last good token stays in use: at `debug` for a file missing or empty for a
    /// moment (a secret being swapped), at `warn` for a content that cannot be used.
    pub(crate) fn log_kept(&self) {
        match self {
            TokenFileError::Unreadable { .. } => tracing::debug!("{self}; keeping the last token"),
            TokenFileError::Invalid { .. } => tracing::warn!("{self}; keeping the last token"),
        }
    }

    /// The message without the variable's name.
    pub(crate) fn message(&self) -> String {
        match self {
            TokenFileError::Unreadable { message, .. } => message.clone(),
            TokenFileError::Invalid { path, reason, .. } => {
                format!("the token in {} {reason}", path.display())
            }
        }
    }
}

/// Turns the trimmed file content into the cached value; the error says why it is unusable
/// without quoting it ("contains characters not allowed in an HTTP header").
pub(crate) type Convert<T> = fn(Secret) -> Result<T, &'static str>;

/// A watched token file holding a `T` (the token itself, or a header value made from it).
pub(crate) struct TokenFile<T> {
    var: &'static str,
    path: PathBuf,
    interval: Duration,
    convert: Convert<T>,
    cached: Mutex<Cached<T>>,
    /// Held while the file is stamped and read (rarely: a due check found it changed, or a
    /// reload), never on the hot path.
    reading: Mutex<()>,
    /// Bumped each time a read gives a different value: lets a caller tell, after a rejection,
    /// whether the value changed since it sent its request, without a lock on the hot path.
    version: AtomicU64,
}

struct Cached<T> {
    /// The version of the file `value` came from (`None`: it could not be stamped then).
    stamp: Option<FileStamp>,
    value: T,
    /// When the stamp was last compared; `None`: never.
    checked: Option<Instant>,
    /// The last version that gave no usable token, so it is read and reported once.
    refused: Option<FileStamp>,
}

/// What identifies one version of the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path` (following symlinks, so a Kubernetes `..data` swap counts), if it
    /// can be read.
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            ino: m.ino(),
            #[cfg(unix)]
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl<T: Clone + PartialEq> TokenFile<T> {
    /// Reads `path` (named by `var`) now; fails when it is unreadable, empty or refused by
    /// `convert`. Later reads happen when the stamp changed, compared at most once per
    /// `interval` (the first time one interval after this read).
    pub(crate) fn open(
        var: &'static str,
        path: &Path,
        interval: Duration,
        convert: Convert<T>,
    ) -> Result<Self, TokenFileError> {
        let stamp = FileStamp::of(path);
        let value = read(var, path, convert)?;
        let file = Self::with(var, path, interval, convert, stamp, value);
        // Just read: the next comparison is due one interval from now.
        file.cached().checked = Some(Instant::now());
        Ok(file)
    }

    /// Watches `path` starting from `value`, a token already read from it: the file is compared
    /// at the first [`TokenFile::current`] (and read again then, its stamp being unknown).
    pub(crate) fn seeded(
        var: &'static str,
        path: &Path,
        interval: Duration,
        convert: Convert<T>,
        value: T,
    ) -> Self {
        Self::with(var, path, interval, convert, None, value)
    }

    fn with(
        var: &'static str,
        path: &Path,
        interval: Duration,
        convert: Convert<T>,
        stamp: Option<FileStamp>,
        value: T,
    ) -> Self {
        Self {
            var,
            path: path.to_owned(),
            interval,
            convert,
            cached: Mutex::new(Cached {
                stamp,
                value,
                checked: None,
                refused: None,
            }),
            reading: Mutex::new(()),
            version: AtomicU64::new(0),
        }
    }

    /// The variable naming the file.
    pub(crate) fn var(&self) -> &'static str {
        self.var
    }

    /// How many times the value changed since the file was opened.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn cached(&self) -> MutexGuard<'_, Cached<T>> {
        // Every update assigns whole fields: a poisoned lock still holds a consistent state.
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current value: the cached one, unless the check is due and the file changed, in
    /// which case its new content (or, if it has none usable, still the cached value).
    pub(crate) fn current(&self) -> T {
        self.current_at(Instant::now())
    }

    /// [`TokenFile::current`] at `now` (tests pass their own clock).
    pub(crate) fn current_at(&self, now: Instant) -> T {
        let known = {
            let mut cached = self.cached();
            let due = cached
                .checked
                .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
            if !due {
                return cached.value.clone();
            }
            // Claimed before the stat, outside the lock: concurrent callers keep the cached value.
            cached.checked = Some(now);
            (cached.stamp, cached.refused)
        };
        let stamp = FileStamp::of(&self.path);
        if stamp.is_some() && (stamp == known.0 || stamp == known.1) {
            return self.cached().value.clone();
        }
        match self.refresh() {
            Ok((value, _)) => value,
            Err((e, first)) => {
                if first {
                    e.log_kept();
                }
                self.cached().value.clone()
            }
        }
    }

    /// Re-reads the file now, whatever its stamp says (after the server refused the token):
    /// the new value and whether it differs from the one it replaces.
    pub(crate) fn reload(&self) -> Result<(T, bool), TokenFileError> {
        let now = Instant::now();
        let result = self.refresh().map_err(|(e, _)| e);
        self.cached().checked = Some(now);
        result
    }

    /// Stamps and reads the file and caches its value. Reads are serialized, so a slow read of
    /// an older version never overwrites a newer one. On failure, the version is remembered as
    /// refused, and the flag says whether it is the first failure for that version (so it is
    /// reported once).
    fn refresh(&self) -> Result<(T, bool), (TokenFileError, bool)> {
        let _one_at_a_time = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = FileStamp::of(&self.path);
        let value = match read(self.var, &self.path, self.convert) {
            Ok(value) => value,
            Err(e) => {
                let mut cached = self.cached();
                let first = stamp.is_none() || cached.refused != stamp;
                cached.refused = stamp;
                return Err((e, first));
            }
        };
        let mut cached = self.cached();
        let changed = cached.value != value;
        cached.stamp = stamp;
        cached.refused = None;
        cached.value = value.clone();
        if changed {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        drop(cached);
        if changed {
            tracing::info!(
                file = %self.path.display(),
                "the {} file changed: using the new token",
                self.var
            );
        }
        Ok((value, changed))
    }
}

fn read<T>(var: &'static str, path: &Path, convert: Convert<T>) -> Result<T, TokenFileError> {
    let token =
        crate::config::read_token_file(var, path).map_err(|p| TokenFileError::Unreadable {
            var,
            message: p.message,
        })?;
    convert(token).map_err(|reason| TokenFileError::Invalid {
        var,
        path: path.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "MODULE_AUTH_TOKEN";

    fn same(s: Secret) -> Result<Secret, &'static str> {
        Ok(s)
    }

    fn printable(s: Secret) -> Result<Secret, &'static str> {
        if s.expose().bytes().all(|b| b.is_ascii_graphic()) {
            Ok(s)
        } else {
            Err("is not printable")
        }
    }

    fn replace(dir: &Path, file: &Path, content: &str) {
        let tmp = dir.join("next");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }

    #[test]
    fn the_stamp_is_compared_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let t = TokenFile::open(VAR, &file, Duration::from_secs(1), same).unwrap();
        let t0 = Instant::now();
        assert_eq!(t.current_at(t0).expose(), "first");

        replace(dir.path(), &file, "second");
        // Within the interval of the last check: the cached value, the file is not looked at.
        assert_eq!(t.current_at(t0).expose(), "first");
        assert_eq!(
            t.current_at(t0 + Duration::from_millis(500)).expose(),
            "first"
        );
        // Due: the changed stamp is seen.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.current_at(t1).expose(), "second");

        // Rewritten in place: seen at the next due check, not before.
        std::fs::write(&file, "third-token").unwrap();
        assert_eq!(
            t.current_at(t1 + Duration::from_millis(500)).expose(),
            "second"
        );
        assert_eq!(
            t.current_at(t1 + Duration::from_secs(1)).expose(),
            "third-token"
        );
    }

    #[test]
    fn a_zero_interval_checks_every_call_and_reload_ignores_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "one").unwrap();
        let every = TokenFile::open(VAR, &file, Duration::ZERO, same).unwrap();
        let hourly = TokenFile::open(VAR, &file, Duration::from_secs(3600), same).unwrap();
        let now = Instant::now();
        assert_eq!(hourly.current_at(now).expose(), "one");
        replace(dir.path(), &file, "two");
        assert_eq!(every.current_at(now).expose(), "two");
        assert_eq!(hourly.current_at(now).expose(), "one");
        let (value, changed) = hourly.reload().unwrap();
        assert!(changed);
        assert_eq!(value.expose(), "two");
        assert_eq!(hourly.current_at(now).expose(), "two");
        // Unchanged content: reload says so, and the version counts changes only.
        assert!(!hourly.reload().unwrap().1);
        assert_eq!((every.version(), hourly.version()), (1, 1));
    }

    #[test]
    fn a_seeded_file_is_compared_at_the_first_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "seed").unwrap();
        let t = TokenFile::seeded(
            VAR,
            &file,
            Duration::from_secs(1),
            same,
            Secret::new("seed"),
        );
        let now = Instant::now();
        assert_eq!(t.current_at(now).expose(), "seed");
        assert_eq!(t.version(), 0, "the same token read again is no change");
        replace(dir.path(), &file, "next");
        assert_eq!(t.current_at(now).expose(), "seed");
        assert_eq!(t.current_at(now + Duration::from_secs(1)).expose(), "next");
        assert_eq!(t.version(), 1);
    }

    #[test]
    fn a_missing_empty_or_refused_file_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "good").unwrap();
        let t = TokenFile::open(VAR, &file, Duration::ZERO, printable).unwrap();
        let now = Instant::now();

        std::fs::remove_file(&file).unwrap();
        assert_eq!(t.current_at(now).expose(), "good");
        let e = t.reload().unwrap_err();
        assert!(matches!(e, TokenFileError::Unreadable { .. }), "{e}");
        assert_eq!(t.current_at(now).expose(), "good");

        std::fs::write(&file, " \n").unwrap();
        assert_eq!(t.current_at(now).expose(), "good");
        let e = t.reload().unwrap_err().to_string();
        assert!(e.contains(VAR) && e.contains("empty"), "{e}");

        std::fs::write(&file, "bad token").unwrap();
        assert_eq!(t.current_at(now).expose(), "good");
        let e = t.reload().unwrap_err().to_string();
        let shown = file.display().to_string();
        assert!(
            e.contains(VAR) && e.contains(&shown) && e.contains("is not printable"),
            "{e}"
        );
        assert!(!e.contains("bad token"), "{e}");

        // A good token again is taken.
        std::fs::write(&file, "better").unwrap();
        assert_eq!(t.current_at(now).expose(), "better");
        assert_eq!(t.path(), file);
    }

    /// A mounted Kubernetes secret: `token` → `..data/token`, `..data` → a timestamped
    /// directory; an update writes a new directory and renames a new `..data` link over the old.
    #[cfg(unix)]
    #[test]
    fn a_secret_volume_swapped_through_its_data_link_is_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path();
        std::fs::create_dir(mount.join("..v1")).unwrap();
        std::fs::write(mount.join("..v1/token"), "v1-token").unwrap();
        symlink("..v1", mount.join("..data")).unwrap();
        symlink("..data/token", mount.join("token")).unwrap();
        let t = TokenFile::open(VAR, &mount.join("token"), Duration::ZERO, same).unwrap();
        let now = Instant::now();
        assert_eq!(t.current_at(now).expose(), "v1-token");

        std::fs::create_dir(mount.join("..v2")).unwrap();
        std::fs::write(mount.join("..v2/token"), "v2-token").unwrap();
        symlink("..v2", mount.join("..data_tmp")).unwrap();
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
        std::fs::remove_dir_all(mount.join("..v1")).unwrap();
        assert_eq!(t.current_at(now).expose(), "v2-token");
        assert_eq!(t.version(), 1);
    }

    #[test]
    fn opening_fails_naming_the_variable_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("missing");
        let Err(e) = TokenFile::open(VAR, &file, Duration::ZERO, same) else {
            panic!("a missing file opened")
        };
        let e = e.to_string();
        assert!(
            e.contains(VAR) && e.contains(&file.display().to_string()),
            "{e}"
        );
        std::fs::write(&file, "x y").unwrap();
        let Err(e) = TokenFile::open(VAR, &file, Duration::ZERO, printable) else {
            panic!("a refused token opened")
        };
        assert!(matches!(e, TokenFileError::Invalid { .. }));
        assert!(!e.message().contains("x y"), "{e}");
    }
}
