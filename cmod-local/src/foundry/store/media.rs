//! Media sets of the [`DataStore`]: items addressed by branch and path, and media-set
//! transactions.
//!
//! ```text
//! mediasets/<rid>/mediaset.json                   optional: {"transactionPolicy": "NO_TRANSACTIONS"}
//! mediasets/<rid>/branches/<branch>/<path…>       committed media items
//! mediasets/<rid>/transactions/<id>.json, <id>/   media-set transactions, as for datasets
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    DataStore, StoreError, TransactionStatus, branch_dir_name, check_branch, check_path, check_rid,
    conflict, create_dir, discard_upload_on_error, invalid, io, merge_into, move_file, not_found,
    read_json, read_json_entries, read_transaction, to_json, upload_target_in, write_atomic,
    write_file,
};
use crate::foundry::oauth::random_uuid;

/// A media-set transaction (`mediasets/<rid>/transactions/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTransaction {
    /// The transaction id (a UUID).
    pub id: String,
    /// The branch it writes to.
    pub branch_name: String,
    /// The status.
    pub status: TransactionStatus,
}

impl DataStore {
    fn media_dir(&self, rid: &str) -> Result<PathBuf, StoreError> {
        check_rid(rid)?;
        self.resource_dir("mediasets", rid, "MediaSetNotFound", "media set")
    }

    /// Creates a media set (no-op if it exists); `transactional` chooses its transaction policy.
    pub fn create_media_set(&self, rid: &str, transactional: bool) -> Result<(), StoreError> {
        check_rid(rid)?;
        let d = self.root.join("mediasets").join(rid);
        create_dir(&d.join("branches").join("master"))?;
        let policy = if transactional {
            "TRANSACTIONAL"
        } else {
            "NO_TRANSACTIONS"
        };
        write_atomic(
            &d.join("mediaset.json"),
            &to_json(&serde_json::json!({ "transactionPolicy": policy }))?,
        )
    }

    /// Whether the media set exists.
    pub fn media_set_exists(&self, rid: &str) -> bool {
        self.media_dir(rid).is_ok()
    }

    /// Whether uploads to the media set need a transaction (`mediaset.json`; default yes).
    pub fn media_set_transactional(&self, rid: &str) -> Result<bool, StoreError> {
        let meta = self.media_dir(rid)?.join("mediaset.json");
        if !meta.is_file() {
            return Ok(true);
        }
        let v: serde_json::Value = read_json(&meta)?;
        Ok(v.get("transactionPolicy").and_then(|p| p.as_str()) != Some("NO_TRANSACTIONS"))
    }

    /// The item RID of a path: deterministic (hex of branch and path), so it survives restarts
    /// without an index.
    pub fn media_item_rid(branch: &str, path: &str) -> String {
        let mut s = String::from("ri.mio.main.media-item.");
        for b in branch.bytes().chain([0u8]).chain(path.bytes()) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn decode_item_rid(item: &str) -> Option<(String, String)> {
        let hex = item.strip_prefix("ri.mio.main.media-item.")?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (branch, path) = text.split_once('\0')?;
        Some((branch.to_owned(), path.to_owned()))
    }

    /// Where the committed item at `path` on `branch` is (or would be) stored.
    fn media_item_file(&self, rid: &str, branch: &str, path: &str) -> Result<PathBuf, StoreError> {
        check_branch(branch)?;
        check_path(path)?;
        Ok(self
            .media_dir(rid)?
            .join("branches")
            .join(branch_dir_name(branch))
            .join(path))
    }

    /// The committed file of a media item.
    pub fn media_item_location(&self, rid: &str, item: &str) -> Result<PathBuf, StoreError> {
        let missing = || not_found("MediaItemNotFound", format!("{rid} has no item {item}"));
        let (branch, path) = Self::decode_item_rid(item).ok_or_else(missing)?;
        let file = self.media_item_file(rid, &branch, &path)?;
        if !file.is_file() {
            return Err(missing());
        }
        Ok(file)
    }

    /// The item RID of a committed item path, if it exists.
    pub fn media_item_by_path(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
    ) -> Result<String, StoreError> {
        let file = self.media_item_file(rid, branch, path)?;
        if !file.is_file() {
            return Err(not_found(
                "MediaItemNotFound",
                format!("{rid} has no item at `{path}` on branch `{branch}`"),
            ));
        }
        Ok(Self::media_item_rid(branch, path))
    }

    /// Writes a committed media item directly (seeding).
    pub fn put_media_item(
        &self,
        rid: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<String, StoreError> {
        write_file(&self.media_item_file(rid, branch, path)?, contents)?;
        Ok(Self::media_item_rid(branch, path))
    }

    /// Opens a media-set transaction.
    pub async fn create_media_transaction(
        &self,
        rid: &str,
        branch: &str,
    ) -> Result<MediaTransaction, StoreError> {
        check_branch(branch)?;
        let _guard = self.lock.lock().await;
        let dir = self.media_dir(rid)?.join("transactions");
        let t = MediaTransaction {
            id: random_uuid(),
            branch_name: branch.to_owned(),
            status: TransactionStatus::Open,
        };
        std::fs::create_dir_all(dir.join(&t.id))
            .map_err(io(format!("creating {}", dir.display())))?;
        write_atomic(&dir.join(format!("{}.json", t.id)), &to_json(&t)?)?;
        Ok(t)
    }

    /// One media-set transaction.
    pub fn media_transaction(&self, rid: &str, id: &str) -> Result<MediaTransaction, StoreError> {
        check_rid(id)?;
        read_transaction(&self.media_dir(rid)?.join("transactions"), id, || {
            format!("media set {rid}")
        })
    }

    /// A media-set transaction that must still be open.
    fn open_media_transaction(&self, rid: &str, id: &str) -> Result<MediaTransaction, StoreError> {
        let t = self.media_transaction(rid, id)?;
        if t.status != TransactionStatus::Open {
            return Err(conflict(
                "TransactionNotOpen",
                format!("media-set transaction {id} is not open"),
            ));
        }
        Ok(t)
    }

    /// A temporary file for a media upload; pass it to [`DataStore::finish_media_upload`].
    pub fn media_upload_target(&self, rid: &str) -> Result<PathBuf, StoreError> {
        upload_target_in(&self.media_dir(rid)?.join("transactions"))
    }

    /// Moves a fully received media upload into its transaction (or straight onto the branch
    /// when `transaction` is `None`). Returns the item RID.
    pub async fn finish_media_upload(
        &self,
        rid: &str,
        branch: &str,
        transaction: Option<&str>,
        path: &str,
        tmp: &Path,
    ) -> Result<String, StoreError> {
        let _guard = self.lock.lock().await;
        let result = (|| {
            check_branch(branch)?;
            check_path(path)?;
            let d = self.media_dir(rid)?;
            let dst = match transaction {
                Some(id) => {
                    let t = self.open_media_transaction(rid, id)?;
                    if t.branch_name != branch {
                        return Err(invalid(
                            "TransactionBranchMismatch",
                            format!("transaction {id} writes to branch `{}`", t.branch_name),
                        ));
                    }
                    d.join("transactions").join(id).join(path)
                }
                None => d.join("branches").join(branch_dir_name(branch)).join(path),
            };
            move_file(tmp, &dst)?;
            Ok(Self::media_item_rid(branch, path))
        })();
        discard_upload_on_error(tmp, result)
    }

    /// Commits (`commit = true`) or aborts a media-set transaction.
    pub async fn close_media_transaction(
        &self,
        rid: &str,
        id: &str,
        commit: bool,
    ) -> Result<MediaTransaction, StoreError> {
        let _guard = self.lock.lock().await;
        let mut t = self.open_media_transaction(rid, id)?;
        let d = self.media_dir(rid)?;
        let staged = d.join("transactions").join(id);
        if commit {
            let branch = d.join("branches").join(branch_dir_name(&t.branch_name));
            create_dir(&branch)?;
            merge_into(&staged, &branch)?;
            t.status = TransactionStatus::Committed;
        } else {
            let _ = std::fs::remove_dir_all(&staged);
            t.status = TransactionStatus::Aborted;
        }
        write_atomic(
            &d.join("transactions").join(format!("{id}.json")),
            &to_json(&t)?,
        )?;
        Ok(t)
    }

    /// Every media-set transaction (for tests and inspection).
    pub fn media_transactions(&self, rid: &str) -> Result<Vec<MediaTransaction>, StoreError> {
        let dir = self.media_dir(rid)?.join("transactions");
        match std::fs::read_dir(&dir) {
            Ok(entries) => read_json_entries(&dir, entries),
            Err(_) => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::foundry::store::test_store as store;

    #[tokio::test]
    async fn media_items_round_trip_through_transactions() {
        let (_d, s) = store(10);
        s.create_media_set("ri.ms.1", true).unwrap();
        let t = s
            .create_media_transaction("ri.ms.1", "master")
            .await
            .unwrap();
        let tmp = s.media_upload_target("ri.ms.1").unwrap();
        std::fs::write(&tmp, b"png").unwrap();
        let item = s
            .finish_media_upload("ri.ms.1", "master", Some(&t.id), "img/a.png", &tmp)
            .await
            .unwrap();
        assert!(s.media_item_location("ri.ms.1", &item).is_err());
        s.close_media_transaction("ri.ms.1", &t.id, true)
            .await
            .unwrap();
        let file = s.media_item_location("ri.ms.1", &item).unwrap();
        assert_eq!(std::fs::read(file).unwrap(), b"png");
        assert_eq!(
            s.media_item_by_path("ri.ms.1", "master", "img/a.png")
                .unwrap(),
            item
        );
    }
}
