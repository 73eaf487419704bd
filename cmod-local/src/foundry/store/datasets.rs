//! Datasets of the [`DataStore`]: branches of plain files, and transactions.
//!
//! ```text
//! datasets/<rid>/branches/<branch>/<path…>        committed files of a branch (seed here)
//! datasets/<rid>/transactions/<txn rid>.json      transaction metadata (type, status, times)
//! datasets/<rid>/transactions/<txn rid>/<path…>   files uploaded into an OPEN transaction
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    DataStore, Page, StoreError, TransactionStatus, branch_dir_name, check_branch, check_path,
    check_rid, conflict, create_dir, create_parent, discard_upload_on_error, io, merge_into,
    move_file, mtime, not_found, now, read_json_entries, read_transaction, to_json,
    upload_target_in, walk, write_atomic, write_file,
};
use crate::foundry::oauth::random_uuid;

/// The kind of a dataset transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    /// Replaces the branch's files.
    Snapshot,
    /// Adds or replaces files.
    Update,
    /// Adds files.
    Append,
}

/// A dataset transaction, as stored in `transactions/<rid>.json` and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// `ri.foundry.main.transaction.<uuid>`.
    pub rid: String,
    /// The kind.
    pub transaction_type: TransactionType,
    /// The status.
    pub status: TransactionStatus,
    /// RFC 3339 creation time.
    pub created_time: String,
    /// RFC 3339 commit/abort time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_time: Option<String>,
    /// The branch it writes to (a local addition to Foundry's shape).
    pub branch_name: String,
}

/// A committed file of a dataset branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Logical path inside the dataset (`/`-separated, no leading slash).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// RFC 3339 modification time.
    pub updated_time: String,
    /// The last committed transaction of the branch (or a fixed seed RID for hand-seeded files).
    pub transaction_rid: String,
}

/// The transaction RID reported for files seeded by hand (no transaction committed yet).
pub const SEED_TRANSACTION_RID: &str =
    "ri.foundry.main.transaction.00000000-0000-0000-0000-000000000000";

impl DataStore {
    fn dataset_dir(&self, rid: &str) -> Result<PathBuf, StoreError> {
        check_rid(rid)?;
        self.resource_dir("datasets", rid, "DatasetNotFound", "dataset")
    }

    fn branch_dir(&self, rid: &str, branch: &str) -> Result<PathBuf, StoreError> {
        check_branch(branch)?;
        Ok(self
            .dataset_dir(rid)?
            .join("branches")
            .join(branch_dir_name(branch)))
    }

    /// Creates a dataset with an empty `master` branch (no-op if it exists).
    pub fn create_dataset(&self, rid: &str) -> Result<(), StoreError> {
        check_rid(rid)?;
        let d = self.root.join("datasets").join(rid);
        for sub in ["branches/master", "transactions"] {
            create_dir(&d.join(sub))?;
        }
        Ok(())
    }

    /// Whether the dataset exists.
    pub fn dataset_exists(&self, rid: &str) -> bool {
        self.dataset_dir(rid).is_ok()
    }

    /// Writes a committed file directly (seeding), creating the dataset and branch if needed.
    pub fn put_file(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), StoreError> {
        check_path(path)?;
        self.create_dataset(rid)?;
        write_file(&self.branch_dir(rid, branch)?.join(path), contents)
    }

    /// The on-disk location of a committed file (which may not exist).
    pub fn file_location(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
    ) -> Result<PathBuf, StoreError> {
        check_path(path)?;
        Ok(self.branch_dir(rid, branch)?.join(path))
    }

    /// Reads a committed file whole (for tests and inspection).
    pub fn read_file(&self, rid: &str, branch: &str, path: &str) -> Result<Vec<u8>, StoreError> {
        let file = self.file_location(rid, branch, path)?;
        std::fs::read(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_found(
                    "FileNotFound",
                    format!("{rid}: no file `{path}` on branch `{branch}`"),
                )
            } else {
                io(format!("reading {}", file.display()))(e)
            }
        })
    }

    /// The committed file at `path` (size and times), for the metadata endpoint.
    pub fn file(&self, rid: &str, branch: &str, path: &str) -> Result<FileEntry, StoreError> {
        let location = self.file_location(rid, branch, path)?;
        let meta = std::fs::metadata(&location)
            .ok()
            // Anything but a directory: regular files, and named pipes (tests use a FIFO to
            // hold a read open).
            .filter(|m| !m.is_dir())
            .ok_or_else(|| {
                not_found(
                    "FileNotFound",
                    format!("{rid}: no file `{path}` on branch `{branch}`"),
                )
            })?;
        Ok(FileEntry {
            path: path.to_owned(),
            size: meta.len(),
            updated_time: mtime(&meta),
            transaction_rid: self.head_transaction(rid, branch)?,
        })
    }

    /// Lists the committed files of a branch whose path starts with `prefix`, one page at a
    /// time: `page_token` is the last path of the previous page.
    pub fn list_files(
        &self,
        rid: &str,
        branch: &str,
        prefix: Option<&str>,
        page_size: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<FileEntry>, StoreError> {
        let dir = self.branch_dir(rid, branch)?;
        if !dir.is_dir() {
            return Err(not_found(
                "BranchNotFound",
                format!("dataset {rid} has no branch `{branch}`"),
            ));
        }
        let head = self.head_transaction(rid, branch)?;
        let size = self.page_size(page_size);
        let mut items = Vec::new();
        let mut more = false;
        for (path, meta) in walk(&dir)? {
            if prefix.is_some_and(|p| !path.starts_with(p)) {
                continue;
            }
            if page_token.is_some_and(|t| path.as_str() <= t) {
                continue;
            }
            if items.len() == size {
                more = true;
                break;
            }
            items.push(FileEntry {
                size: meta.len(),
                updated_time: mtime(&meta),
                transaction_rid: head.clone(),
                path,
            });
        }
        let next_page_token = if more {
            items.last().map(|f: &FileEntry| f.path.clone())
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// The newest committed transaction of the branch, or [`SEED_TRANSACTION_RID`].
    fn head_transaction(&self, rid: &str, branch: &str) -> Result<String, StoreError> {
        Ok(self
            .transactions(rid)?
            .into_iter()
            .find(|t| t.branch_name == branch && t.status == TransactionStatus::Committed)
            .map(|t| t.rid)
            .unwrap_or_else(|| SEED_TRANSACTION_RID.to_owned()))
    }

    /// The branch as Foundry's `GET /v2/datasets/{rid}/branches/{branch}` describes it: its most
    /// recent `OPEN` or `COMMITTED` transaction (never an aborted one), `None` when it has none.
    /// `BranchNotFound` when the branch has neither files nor transactions.
    pub fn branch_head(&self, rid: &str, branch: &str) -> Result<Option<String>, StoreError> {
        let dir = self.branch_dir(rid, branch)?;
        let transactions = self.transactions(rid)?;
        let head = transactions
            .iter()
            .find(|t| t.branch_name == branch && t.status != TransactionStatus::Aborted)
            .map(|t| t.rid.clone());
        if head.is_none() && !dir.is_dir() && !transactions.iter().any(|t| t.branch_name == branch)
        {
            return Err(not_found(
                "BranchNotFound",
                format!("{rid} has no branch `{branch}`"),
            ));
        }
        Ok(head)
    }

    /// Every transaction of the dataset, newest first.
    pub fn transactions(&self, rid: &str) -> Result<Vec<Transaction>, StoreError> {
        let dir = self.dataset_dir(rid)?.join("transactions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
        };
        let mut out: Vec<Transaction> = read_json_entries(&dir, entries)?;
        out.sort_by(|a, b| b.created_time.cmp(&a.created_time).then(b.rid.cmp(&a.rid)));
        Ok(out)
    }

    /// One transaction.
    pub fn transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        check_rid(txn)?;
        read_transaction(&self.dataset_dir(rid)?.join("transactions"), txn, || {
            format!("dataset {rid}")
        })
    }

    fn save_transaction(&self, rid: &str, t: &Transaction) -> Result<(), StoreError> {
        let dir = self.dataset_dir(rid)?.join("transactions");
        create_dir(&dir)?;
        write_atomic(&dir.join(format!("{}.json", t.rid)), &to_json(t)?)
    }

    /// Opens a transaction on a branch (one open transaction per branch).
    pub async fn create_transaction(
        &self,
        rid: &str,
        branch: &str,
        transaction_type: TransactionType,
    ) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let branch_dir = self.branch_dir(rid, branch)?;
        if let Some(open) = self
            .transactions(rid)?
            .into_iter()
            .find(|t| t.branch_name == branch && t.status == TransactionStatus::Open)
        {
            return Err(conflict(
                "OpenTransactionAlreadyExists",
                format!(
                    "branch `{branch}` of {rid} already has open transaction {}",
                    open.rid
                ),
            ));
        }
        create_dir(&branch_dir)?;
        let t = Transaction {
            rid: format!("ri.foundry.main.transaction.{}", random_uuid()),
            transaction_type,
            status: TransactionStatus::Open,
            created_time: now(),
            closed_time: None,
            branch_name: branch.to_owned(),
        };
        let staged = self.dataset_dir(rid)?.join("transactions").join(&t.rid);
        create_dir(&staged)?;
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    fn open_transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        let t = self.transaction(rid, txn)?;
        if t.status != TransactionStatus::Open {
            return Err(conflict(
                "TransactionNotOpen",
                format!("transaction {txn} of {rid} is {:?}, not open", t.status),
            ));
        }
        Ok(t)
    }

    /// A temporary file for an upload into an open transaction; pass it to
    /// [`DataStore::finish_upload`] once fully written.
    pub fn upload_target(&self, rid: &str, txn: &str, path: &str) -> Result<PathBuf, StoreError> {
        check_path(path)?;
        self.open_transaction(rid, txn)?;
        upload_target_in(&self.dataset_dir(rid)?.join("transactions"))
    }

    /// Moves a fully received upload into the transaction (if it is still open).
    pub async fn finish_upload(
        &self,
        rid: &str,
        txn: &str,
        path: &str,
        tmp: &Path,
    ) -> Result<FileEntry, StoreError> {
        let _guard = self.lock.lock().await;
        let result = (|| {
            self.open_transaction(rid, txn)?;
            let dst = self
                .dataset_dir(rid)?
                .join("transactions")
                .join(txn)
                .join(path);
            move_file(tmp, &dst)?;
            let meta = std::fs::metadata(&dst).map_err(io(format!("reading {}", dst.display())))?;
            Ok(FileEntry {
                path: path.to_owned(),
                size: meta.len(),
                updated_time: mtime(&meta),
                transaction_rid: txn.to_owned(),
            })
        })();
        discard_upload_on_error(tmp, result)
    }

    /// Commits an open transaction: its files become the branch's (SNAPSHOT) or are added to it.
    pub async fn commit_transaction(
        &self,
        rid: &str,
        txn: &str,
    ) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_transaction(rid, txn)?;
        let ds = self.dataset_dir(rid)?;
        let staged = ds.join("transactions").join(txn);
        create_dir(&staged)?;
        let branch = self.branch_dir(rid, &t.branch_name)?;
        match t.transaction_type {
            TransactionType::Snapshot => {
                let trash = ds
                    .join("transactions")
                    .join(format!(".old-{}", random_uuid()));
                if branch.exists() {
                    std::fs::rename(&branch, &trash)
                        .map_err(io(format!("replacing {}", branch.display())))?;
                }
                create_parent(&branch)?;
                std::fs::rename(&staged, &branch)
                    .map_err(io(format!("committing into {}", branch.display())))?;
                let _ = std::fs::remove_dir_all(&trash);
            }
            TransactionType::Update | TransactionType::Append => merge_into(&staged, &branch)?,
        }
        t.status = TransactionStatus::Committed;
        t.closed_time = Some(now());
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    /// Aborts an open transaction: its files are deleted.
    pub async fn abort_transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_transaction(rid, txn)?;
        let staged = self.dataset_dir(rid)?.join("transactions").join(txn);
        let _ = std::fs::remove_dir_all(&staged);
        t.status = TransactionStatus::Aborted;
        t.closed_time = Some(now());
        self.save_transaction(rid, &t)?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundry::store::test_store as store;

    #[test]
    fn listing_is_sorted_paginated_and_prefix_filtered() {
        let (_d, s) = store(2);
        for p in ["b.csv", "a/1.csv", "a/2.csv", "c.txt", "d.txt"] {
            s.put_file("ri.ds.1", "master", p, b"x").unwrap();
        }
        let mut all = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = s
                .list_files("ri.ds.1", "master", None, Some(100), token.as_deref())
                .unwrap();
            pages += 1;
            all.extend(page.items.into_iter().map(|f| f.path));
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(all, ["a/1.csv", "a/2.csv", "b.csv", "c.txt", "d.txt"]);
        assert_eq!(pages, 3);
        let a = s
            .list_files("ri.ds.1", "master", Some("a/"), None, None)
            .unwrap();
        assert_eq!(a.items.len(), 2);
    }

    #[test]
    fn paths_cannot_escape() {
        let (_d, s) = store(10);
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(
                matches!(
                    s.put_file("ri.ds.1", "master", bad, b"x"),
                    Err(StoreError::Invalid { .. })
                ),
                "{bad}"
            );
        }
        assert!(s.create_dataset("../x").is_err());
    }

    #[tokio::test]
    async fn a_branch_head_is_its_newest_open_or_committed_transaction() {
        let (_d, s) = store(10);
        s.create_dataset("ri.ds.1").unwrap();
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), None);
        assert!(matches!(
            s.branch_head("ri.ds.1", "nope"),
            Err(StoreError::NotFound { .. })
        ));
        let c = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        s.commit_transaction("ri.ds.1", &c.rid).await.unwrap();
        let a = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        s.abort_transaction("ri.ds.1", &a.rid).await.unwrap();
        // Aborted transactions never count.
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), Some(c.rid));
        let o = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        let other = s
            .create_transaction("ri.ds.1", "dev", TransactionType::Snapshot)
            .await
            .unwrap();
        assert_eq!(s.branch_head("ri.ds.1", "master").unwrap(), Some(o.rid));
        assert_eq!(s.branch_head("ri.ds.1", "dev").unwrap(), Some(other.rid));
    }

    #[tokio::test]
    async fn snapshot_commit_replaces_and_abort_discards() {
        let (_d, s) = store(10);
        s.put_file("ri.ds.1", "master", "old.csv", b"old").unwrap();
        let t = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await
            .unwrap();
        let second = s
            .create_transaction("ri.ds.1", "master", TransactionType::Snapshot)
            .await;
        assert!(
            matches!(second, Err(StoreError::Conflict { name, .. }) if name == "OpenTransactionAlreadyExists")
        );
        let tmp = s.upload_target("ri.ds.1", &t.rid, "new.csv").unwrap();
        std::fs::write(&tmp, b"new").unwrap();
        s.finish_upload("ri.ds.1", &t.rid, "new.csv", &tmp)
            .await
            .unwrap();
        let c = s.commit_transaction("ri.ds.1", &t.rid).await.unwrap();
        assert_eq!(c.status, TransactionStatus::Committed);
        let files = s.list_files("ri.ds.1", "master", None, None, None).unwrap();
        assert_eq!(files.items.len(), 1);
        assert_eq!(files.items[0].path, "new.csv");
        assert_eq!(files.items[0].transaction_rid, t.rid);
        assert!(s.commit_transaction("ri.ds.1", &t.rid).await.is_err());

        let t2 = s
            .create_transaction("ri.ds.1", "master", TransactionType::Update)
            .await
            .unwrap();
        let tmp = s.upload_target("ri.ds.1", &t2.rid, "junk.csv").unwrap();
        std::fs::write(&tmp, b"junk").unwrap();
        s.finish_upload("ri.ds.1", &t2.rid, "junk.csv", &tmp)
            .await
            .unwrap();
        s.abort_transaction("ri.ds.1", &t2.rid).await.unwrap();
        assert_eq!(s.read_file("ri.ds.1", "master", "new.csv").unwrap(), b"new");
        assert!(s.read_file("ri.ds.1", "master", "junk.csv").is_err());
        let statuses: Vec<_> = s
            .transactions("ri.ds.1")
            .unwrap()
            .into_iter()
            .map(|t| t.status)
            .collect();
        assert_eq!(
            statuses,
            [TransactionStatus::Aborted, TransactionStatus::Committed]
        );
    }
}
