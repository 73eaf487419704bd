//! Datasets of the [`DataStore`]: branches of plain files, and transactions.
//!
//! ```text
//! datasets/<rid>/branches/<branch>/<path…>        committed files of a branch (seed here)
//! datasets/<rid>/transactions/<txn rid>.json      transaction metadata (type, status, times)
//! datasets/<rid>/transactions/<txn rid>/<path…>   files uploaded into an OPEN transaction
//! datasets/<rid>/transactions/<txn rid>.deletes   paths an OPEN DELETE transaction removes (JSON)
//! datasets/<rid>/views/<branch>.json              which committed transaction added each file
//! datasets/<rid>/schemas/<branch>/<txn rid>.json  schemas (schema.rs)
//! ```
//!
//! The branch directory is the branch's current view. `views/<branch>.json` maps each path to
//! the transaction that added it; a file missing there (seeded by hand) belongs to
//! [`SEED_TRANSACTION_RID`], the start of every branch. Transaction ranges
//! (`startTransactionRid` / `endTransactionRid`) select the files of the current view added by the
//! committed transactions in that range: incremental reads. Older versions of a file replaced by
//! a later `UPDATE` (or removed by a `DELETE` / `SNAPSHOT`) are not kept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    DataStore, Page, StoreError, TransactionStatus, branch_dir_name, check_branch, check_path,
    check_rid, conflict, create_dir, create_parent, discard_upload_on_error, invalid, io,
    merge_into, move_file, mtime, not_found, now, read_json, read_json_entries, read_transaction,
    to_json, upload_target_in, walk, write_atomic, write_file,
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
    /// Adds files; committing fails (`FileAlreadyExists`) if one is already in the view.
    Append,
    /// Removes files from the view.
    Delete,
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
    /// The committed transaction that added the file (or [`SEED_TRANSACTION_RID`] for files
    /// seeded by hand).
    pub transaction_rid: String,
}

/// A range of committed transactions of a branch (`startTransactionRid`, `endTransactionRid`,
/// both inclusive); `None` ends are the branch's first (the seed) and newest transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionRange {
    /// The oldest transaction whose files are included.
    pub start: Option<String>,
    /// The newest transaction whose files are included.
    pub end: Option<String>,
}

/// `views/<branch>.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ViewOwners {
    /// Path → the committed transaction that added it.
    files: BTreeMap<String, String>,
}

fn owner_of(owners: &BTreeMap<String, String>, path: &str) -> String {
    owners
        .get(path)
        .cloned()
        .unwrap_or_else(|| SEED_TRANSACTION_RID.to_owned())
}

/// The transaction RID reported for files seeded by hand (no transaction committed yet).
pub const SEED_TRANSACTION_RID: &str =
    "ri.foundry.main.transaction.00000000-0000-0000-0000-000000000000";

impl DataStore {
    pub(super) fn dataset_dir(&self, rid: &str) -> Result<PathBuf, StoreError> {
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
        let owners = self.view_owners(rid, branch)?;
        Ok(FileEntry {
            path: path.to_owned(),
            size: meta.len(),
            updated_time: mtime(&meta),
            transaction_rid: owner_of(&owners, path),
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
        self.list_files_in(
            rid,
            branch,
            &TransactionRange::default(),
            prefix,
            page_size,
            page_token,
        )
    }

    /// [`DataStore::list_files`] restricted to the files added by the committed transactions in
    /// `range`.
    pub fn list_files_in(
        &self,
        rid: &str,
        branch: &str,
        range: &TransactionRange,
        prefix: Option<&str>,
        page_size: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<FileEntry>, StoreError> {
        let size = self.page_size(page_size);
        let mut items = Vec::new();
        let mut more = false;
        for f in self.view_files(rid, branch, range)? {
            if prefix.is_some_and(|p| !f.path.starts_with(p)) {
                continue;
            }
            if page_token.is_some_and(|t| f.path.as_str() <= t) {
                continue;
            }
            if items.len() == size {
                more = true;
                break;
            }
            items.push(f);
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

    /// Every file of the branch's view added by a committed transaction in `range`, sorted by
    /// path.
    pub fn view_files(
        &self,
        rid: &str,
        branch: &str,
        range: &TransactionRange,
    ) -> Result<Vec<FileEntry>, StoreError> {
        let dir = self.branch_dir(rid, branch)?;
        if !dir.is_dir() {
            return Err(not_found(
                "BranchNotFound",
                format!("dataset {rid} has no branch `{branch}`"),
            ));
        }
        let allowed = self.range_transactions(rid, branch, range)?;
        let owners = self.view_owners(rid, branch)?;
        let mut out = Vec::new();
        for (path, meta) in walk(&dir)? {
            let owner = owner_of(&owners, &path);
            if allowed.as_ref().is_some_and(|a| !a.contains(&owner)) {
                continue;
            }
            out.push(FileEntry {
                size: meta.len(),
                updated_time: mtime(&meta),
                transaction_rid: owner,
                path,
            });
        }
        Ok(out)
    }

    /// The transactions `range` selects, `None` for all of them (no range given).
    fn range_transactions(
        &self,
        rid: &str,
        branch: &str,
        range: &TransactionRange,
    ) -> Result<Option<BTreeSet<String>>, StoreError> {
        if range.start.is_none() && range.end.is_none() {
            return Ok(None);
        }
        let chain = self.committed_chain(rid, branch)?;
        let position = |param: &str, t: &str| -> Result<usize, StoreError> {
            if let Some(i) = chain.iter().position(|c| c == t) {
                return Ok(i);
            }
            // Explain why: unknown, open/aborted, or of another branch.
            let txn = self.transaction(rid, t)?;
            Err(invalid(
                if txn.status == TransactionStatus::Committed {
                    "InvalidParameterCombination"
                } else {
                    "TransactionNotCommitted"
                },
                format!(
                    "{param} {t} is a {:?} transaction of branch `{}`: it must be a committed \
                     transaction of branch `{branch}`",
                    txn.status, txn.branch_name
                ),
            ))
        };
        let start = match &range.start {
            Some(t) => position("startTransactionRid", t)?,
            None => 0,
        };
        let end = match &range.end {
            Some(t) => position("endTransactionRid", t)?,
            None => chain.len() - 1,
        };
        if start > end {
            return Err(invalid(
                "InvalidParameterCombination",
                "startTransactionRid was committed after endTransactionRid",
            ));
        }
        Ok(Some(chain[start..=end].iter().cloned().collect()))
    }

    fn view_path(&self, rid: &str, branch: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .dataset_dir(rid)?
            .join("views")
            .join(format!("{}.json", branch_dir_name(branch))))
    }

    /// Which committed transaction added each file of the branch's view (files seeded by hand
    /// are missing).
    fn view_owners(&self, rid: &str, branch: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let p = self.view_path(rid, branch)?;
        if !p.is_file() {
            return Ok(BTreeMap::new());
        }
        let v: ViewOwners = read_json(&p)?;
        Ok(v.files)
    }

    fn save_view_owners(
        &self,
        rid: &str,
        branch: &str,
        files: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let p = self.view_path(rid, branch)?;
        create_parent(&p)?;
        write_atomic(&p, &to_json(&ViewOwners { files })?)
    }

    /// The newest committed transaction of the branch, or [`SEED_TRANSACTION_RID`].
    pub(super) fn head_transaction(&self, rid: &str, branch: &str) -> Result<String, StoreError> {
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
        let t = self.open_transaction(rid, txn)?;
        if !super::schema::accepts_uploads(t.transaction_type) {
            return Err(invalid(
                "InvalidTransactionType",
                format!(
                    "transaction {txn} of {rid} is a DELETE transaction: upload `{path}` into a \
                     SNAPSHOT, APPEND or UPDATE transaction"
                ),
            ));
        }
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

    /// Commits an open transaction: its files become the branch's view (`SNAPSHOT`), are added
    /// to it (`APPEND`, which fails with `FileAlreadyExists` and stays open if one of them is
    /// already in the view; `UPDATE`, which replaces them), or its deleted paths leave the view
    /// (`DELETE`).
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
        let staged_paths: Vec<String> = walk(&staged)?.into_iter().map(|(p, _)| p).collect();
        let mut owners = self.view_owners(rid, &t.branch_name)?;
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
                owners.clear();
            }
            TransactionType::Append => {
                if let Some(existing) = staged_paths.iter().find(|p| branch.join(p).exists()) {
                    return Err(conflict(
                        "FileAlreadyExists",
                        format!(
                            "APPEND transaction {txn} of {rid} writes `{existing}`, which is \
                             already in the view of branch `{}`: an APPEND transaction may only \
                             add new files (use UPDATE to replace files, or abort it)",
                            t.branch_name
                        ),
                    ));
                }
                merge_into(&staged, &branch)?;
            }
            TransactionType::Update => merge_into(&staged, &branch)?,
            TransactionType::Delete => {
                for path in self.staged_deletes(rid, txn)? {
                    let file = branch.join(&path);
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(format!("deleting {}", file.display()))(e)),
                    }
                    owners.remove(&path);
                }
                let _ = std::fs::remove_file(self.deletes_path(rid, txn)?);
                let _ = std::fs::remove_dir_all(&staged);
            }
        }
        for p in staged_paths {
            owners.insert(p, txn.to_owned());
        }
        self.save_view_owners(rid, &t.branch_name, owners)?;
        t.status = TransactionStatus::Committed;
        t.closed_time = Some(now());
        self.save_transaction(rid, &t)?;
        Ok(t)
    }

    fn deletes_path(&self, rid: &str, txn: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .dataset_dir(rid)?
            .join("transactions")
            .join(format!("{txn}.deletes")))
    }

    fn staged_deletes(&self, rid: &str, txn: &str) -> Result<Vec<String>, StoreError> {
        let p = self.deletes_path(rid, txn)?;
        if !p.is_file() {
            return Ok(Vec::new());
        }
        read_json(&p)
    }

    /// Records that the open `DELETE` transaction `txn` removes `path` from its branch's view
    /// (`FileNotFound` if the view has no such file).
    pub async fn delete_file(&self, rid: &str, txn: &str, path: &str) -> Result<(), StoreError> {
        check_path(path)?;
        let _guard = self.lock.lock().await;
        let t = self.open_transaction(rid, txn)?;
        if t.transaction_type != TransactionType::Delete {
            return Err(invalid(
                "InvalidTransactionType",
                format!(
                    "transaction {txn} of {rid} is {:?}: files are deleted in a DELETE \
                     transaction",
                    t.transaction_type
                ),
            ));
        }
        if !self.branch_dir(rid, &t.branch_name)?.join(path).is_file() {
            return Err(not_found(
                "FileNotFound",
                format!("{rid}: no file `{path}` on branch `{}`", t.branch_name),
            ));
        }
        let mut paths = self.staged_deletes(rid, txn)?;
        if !paths.iter().any(|p| p == path) {
            paths.push(path.to_owned());
        }
        write_atomic(&self.deletes_path(rid, txn)?, &to_json(&paths)?)
    }

    /// Aborts an open transaction: its files are deleted.
    pub async fn abort_transaction(&self, rid: &str, txn: &str) -> Result<Transaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_transaction(rid, txn)?;
        let staged = self.dataset_dir(rid)?.join("transactions").join(txn);
        let _ = std::fs::remove_dir_all(&staged);
        let _ = std::fs::remove_file(self.deletes_path(rid, txn)?);
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

    async fn upload(s: &DataStore, txn: &str, path: &str, body: &[u8]) {
        let tmp = s.upload_target("ri.ds.1", txn, path).unwrap();
        std::fs::write(&tmp, body).unwrap();
        s.finish_upload("ri.ds.1", txn, path, &tmp).await.unwrap();
    }

    async fn committed(s: &DataStore, kind: TransactionType, files: &[(&str, &[u8])]) -> String {
        let t = s
            .create_transaction("ri.ds.1", "master", kind)
            .await
            .unwrap();
        for (p, b) in files {
            upload(s, &t.rid, p, b).await;
        }
        s.commit_transaction("ri.ds.1", &t.rid).await.unwrap();
        t.rid
    }

    fn paths(s: &DataStore, range: &TransactionRange) -> Vec<(String, String)> {
        s.view_files("ri.ds.1", "master", range)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.transaction_rid))
            .collect()
    }

    #[tokio::test]
    async fn append_refuses_to_overwrite_and_stays_open() {
        let (_d, s) = store(10);
        s.put_file("ri.ds.1", "master", "seed.csv", b"a").unwrap();
        let t = s
            .create_transaction("ri.ds.1", "master", TransactionType::Append)
            .await
            .unwrap();
        upload(&s, &t.rid, "seed.csv", b"b").await;
        let e = s.commit_transaction("ri.ds.1", &t.rid).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { name: "FileAlreadyExists", detail } if detail.contains("seed.csv")),
            "{e}"
        );
        assert_eq!(
            s.transaction("ri.ds.1", &t.rid).unwrap().status,
            TransactionStatus::Open
        );
        s.abort_transaction("ri.ds.1", &t.rid).await.unwrap();
        assert_eq!(s.read_file("ri.ds.1", "master", "seed.csv").unwrap(), b"a");
    }

    #[tokio::test]
    async fn ranges_select_the_files_each_transaction_added() {
        let (_d, s) = store(10);
        s.put_file("ri.ds.1", "master", "seed.csv", b"s").unwrap();
        let a = committed(&s, TransactionType::Append, &[("a.csv", b"a")]).await;
        let u = committed(
            &s,
            TransactionType::Update,
            &[("b.csv", b"b"), ("seed.csv", b"S")],
        )
        .await;
        let seed = SEED_TRANSACTION_RID.to_owned();
        assert_eq!(
            paths(&s, &TransactionRange::default()),
            [
                ("a.csv".to_owned(), a.clone()),
                ("b.csv".to_owned(), u.clone()),
                ("seed.csv".to_owned(), u.clone())
            ]
        );
        let since_a = TransactionRange {
            start: Some(a.clone()),
            end: None,
        };
        assert_eq!(paths(&s, &since_a).len(), 3);
        let only_u = TransactionRange {
            start: Some(u.clone()),
            end: Some(u.clone()),
        };
        assert_eq!(
            paths(&s, &only_u),
            [
                ("b.csv".to_owned(), u.clone()),
                ("seed.csv".to_owned(), u.clone())
            ]
        );
        let up_to_a = TransactionRange {
            start: None,
            end: Some(a.clone()),
        };
        assert_eq!(paths(&s, &up_to_a), [("a.csv".to_owned(), a.clone())]);
        let backwards = TransactionRange {
            start: Some(u.clone()),
            end: Some(a.clone()),
        };
        assert!(s.view_files("ri.ds.1", "master", &backwards).is_err());
        let _ = seed;

        // DELETE removes from the view; SNAPSHOT replaces it and forgets the owners.
        let d = s
            .create_transaction("ri.ds.1", "master", TransactionType::Delete)
            .await
            .unwrap();
        assert!(s.upload_target("ri.ds.1", &d.rid, "x.csv").is_err());
        assert!(s.delete_file("ri.ds.1", &d.rid, "nope.csv").await.is_err());
        s.delete_file("ri.ds.1", &d.rid, "a.csv").await.unwrap();
        assert_eq!(
            paths(&s, &TransactionRange::default()).len(),
            3,
            "not yet committed"
        );
        s.commit_transaction("ri.ds.1", &d.rid).await.unwrap();
        assert_eq!(
            paths(&s, &TransactionRange::default()),
            [
                ("b.csv".to_owned(), u.clone()),
                ("seed.csv".to_owned(), u.clone())
            ]
        );
        let snap = committed(&s, TransactionType::Snapshot, &[("new.csv", b"n")]).await;
        assert_eq!(
            paths(&s, &TransactionRange::default()),
            [("new.csv".to_owned(), snap)]
        );
    }
}
