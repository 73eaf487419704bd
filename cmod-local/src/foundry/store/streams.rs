//! Streams of the [`DataStore`]: JSON-lines files, an offsets index, and subscribers.
//!
//! ```text
//! streams/<rid>/<branch>.jsonl                        one JSON record per line; offset = line number
//! streams/<rid>/subscribers/<branch>/<id>.json        a subscriber: start position, committed offsets
//! ```
//!
//! The `.jsonl` file may be appended to by anyone while a module follows the stream (`echo
//! '{"a": 1}' >> master.jsonl`): every read sees the lines completed so far. A last line without
//! its newline counts once it is complete JSON; a line still being written is not read. Files are
//! append-only: rewriting earlier lines in place is not supported (a file that shrinks is
//! re-indexed from the start).
//!
//! Reads by offset seek through a sparse index (the byte position of every
//! [`CHECKPOINT_EVERY`]th record, built incrementally from what was appended since the last
//! read), so following a long stream costs O(batch) per read, not O(stream).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{
    DataStore, StoreError, branch_dir_name, check_branch, check_rid, create_dir, invalid,
    invalid_data, io, not_found, read_json, to_json, write_atomic,
};

/// One index checkpoint per this many records.
const CHECKPOINT_EVERY: u64 = 1024;

/// Per-store stream state: the API switches and the offsets index.
#[derive(Debug)]
pub(super) struct StreamState {
    pub(super) high_scale: bool,
    pub(super) subscribers: bool,
    index: Mutex<HashMap<PathBuf, StreamIndex>>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self {
            high_scale: true,
            subscribers: true,
            index: Mutex::new(HashMap::new()),
        }
    }
}

/// What is known of a `.jsonl` file up to `scanned` bytes (complete lines only).
#[derive(Debug, Default, Clone)]
struct StreamIndex {
    /// Bytes indexed: the end of the last complete line.
    scanned: u64,
    /// Records in those bytes.
    count: u64,
    /// `checkpoints[k]`: byte position of record `k * CHECKPOINT_EVERY`.
    checkpoints: Vec<u64>,
}

/// Where a new subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriberStart {
    /// At offset 0.
    #[default]
    Earliest,
    /// At the end offset when the subscriber is created.
    Latest,
}

/// A stream subscriber: a named, committed read position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    /// Its id (chosen by the client).
    pub subscriber_id: String,
    /// The branch it reads.
    pub branch_name: String,
    /// Where it started.
    pub start_position: SubscriberStart,
    /// The committed position: partition → next offset to read.
    pub offsets: BTreeMap<String, u64>,
}

fn check_subscriber_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "InvalidSubscriberId",
            format!("subscriber id `{id}` must be 1-128 characters of A-Z a-z 0-9 - _ ."),
        ))
    }
}

/// The trailing bytes after the last newline, as a record if they are complete JSON.
fn tail_record(file: &Path, from: u64) -> Result<Option<serde_json::Value>, StoreError> {
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("opening {}", file.display()))(e)),
    };
    f.seek(SeekFrom::Start(from))
        .map_err(io(format!("seeking in {}", file.display())))?;
    let mut rest = Vec::new();
    f.read_to_end(&mut rest)
        .map_err(io(format!("reading {}", file.display())))?;
    if rest.contains(&b'\n') || rest.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&rest).ok())
}

impl DataStore {
    fn stream_file(&self, rid: &str, branch: &str) -> Result<PathBuf, StoreError> {
        check_rid(rid)?;
        check_branch(branch)?;
        let d = self.resource_dir("streams", rid, "StreamNotFound", "stream")?;
        Ok(d.join(format!("{}.jsonl", branch_dir_name(branch))))
    }

    /// Creates a stream (no-op if it exists).
    pub fn create_stream(&self, rid: &str) -> Result<(), StoreError> {
        check_rid(rid)?;
        create_dir(&self.root.join("streams").join(rid))
    }

    /// Whether the stream exists.
    pub fn stream_exists(&self, rid: &str) -> bool {
        self.stream_file(rid, "master").is_ok()
    }

    /// The `.jsonl` file holding a stream branch's records (it may not exist yet). Append JSON
    /// lines to it to feed a module following the stream.
    pub fn stream_location(&self, rid: &str, branch: &str) -> Result<PathBuf, StoreError> {
        self.stream_file(rid, branch)
    }

    /// Whether the high-scale stream API is served ([`super::DataOptions`]).
    pub fn high_scale_streams(&self) -> bool {
        self.streams.high_scale
    }

    /// Whether the stream subscriber API is served ([`super::DataOptions`]).
    pub fn stream_subscribers(&self) -> bool {
        self.streams.subscribers
    }

    /// Brings the index of `file` up to date with what was appended; returns a copy.
    fn refresh_index(&self, file: &Path) -> Result<StreamIndex, StoreError> {
        let mut all = self
            .streams
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let idx = all.entry(file.to_owned()).or_default();
        let len = match std::fs::metadata(file) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(format!("reading {}", file.display()))(e)),
        };
        if len < idx.scanned {
            *idx = StreamIndex::default();
        }
        if len > idx.scanned {
            let mut f =
                std::fs::File::open(file).map_err(io(format!("opening {}", file.display())))?;
            f.seek(SeekFrom::Start(idx.scanned))
                .map_err(io(format!("seeking in {}", file.display())))?;
            let mut r = std::io::BufReader::new(f.take(len - idx.scanned));
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r
                    .read_until(b'\n', &mut line)
                    .map_err(io(format!("reading {}", file.display())))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    if idx.count.is_multiple_of(CHECKPOINT_EVERY) {
                        idx.checkpoints.push(idx.scanned);
                    }
                    idx.count += 1;
                }
                idx.scanned += n as u64;
            }
        }
        Ok(idx.clone())
    }

    /// Appends records (each one line of JSON); returns the offset of the first one.
    pub async fn append_records(
        &self,
        rid: &str,
        branch: &str,
        records: &[serde_json::Value],
    ) -> Result<u64, StoreError> {
        use std::io::Write;
        let file = self.stream_file(rid, branch)?;
        let mut text = Vec::new();
        for r in records {
            if !r.is_object() {
                return Err(invalid(
                    "RecordDoesNotMatchStreamSchema",
                    "a stream record must be a JSON object",
                ));
            }
            serde_json::to_writer(&mut text, r)
                .map_err(|e| invalid_data("serializing a record".to_owned(), e))?;
            text.push(b'\n');
        }
        let _guard = self.lock.lock().await;
        let idx = self.refresh_index(&file)?;
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let mut first = idx.count;
        if len > idx.scanned {
            // A last line without its newline (written by hand): end it first.
            if tail_record(&file, idx.scanned)?.is_some() {
                first += 1;
            }
            text.insert(0, b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(io(format!("opening {}", file.display())))?;
        f.write_all(&text)
            .map_err(io(format!("appending to {}", file.display())))?;
        Ok(first)
    }

    /// The offset the next record will get (= number of records).
    pub fn end_offset(&self, rid: &str, branch: &str) -> Result<u64, StoreError> {
        let file = self.stream_file(rid, branch)?;
        let idx = self.refresh_index(&file)?;
        let tail = tail_record(&file, idx.scanned)?;
        Ok(idx.count + u64::from(tail.is_some()))
    }

    /// Up to `limit` records from `start` on, with their offsets. Blank lines are skipped and
    /// do not count as records.
    pub fn read_records(
        &self,
        rid: &str,
        branch: &str,
        start: u64,
        limit: usize,
    ) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        let file = self.stream_file(rid, branch)?;
        let idx = self.refresh_index(&file)?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let (mut offset, pos) = if start >= idx.count {
            (idx.count, idx.scanned)
        } else {
            let k = usize::try_from(start / CHECKPOINT_EVERY).unwrap_or(usize::MAX);
            match idx.checkpoints.get(k) {
                Some(&p) => (k as u64 * CHECKPOINT_EVERY, p),
                None => (0, 0),
            }
        };
        if offset < idx.count {
            let mut f =
                std::fs::File::open(&file).map_err(io(format!("opening {}", file.display())))?;
            f.seek(SeekFrom::Start(pos))
                .map_err(io(format!("seeking in {}", file.display())))?;
            let mut r = std::io::BufReader::new(f.take(idx.scanned - pos));
            let mut line = Vec::new();
            while out.len() < limit && offset < idx.count {
                line.clear();
                let n = r
                    .read_until(b'\n', &mut line)
                    .map_err(io(format!("reading {}", file.display())))?;
                if n == 0 {
                    break;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if offset >= start {
                    let value = serde_json::from_slice(&line).map_err(|e| {
                        invalid_data(
                            format!("{}: record {offset} is not JSON", file.display()),
                            e,
                        )
                    })?;
                    out.push((offset, value));
                }
                offset += 1;
            }
        }
        if out.len() < limit
            && start <= idx.count
            && let Some(v) = tail_record(&file, idx.scanned)?
        {
            out.push((idx.count, v));
        }
        Ok(out)
    }

    /// Every record of a stream branch (for tests and inspection).
    pub fn records(&self, rid: &str, branch: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(self
            .read_records(rid, branch, 0, usize::MAX)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    // ---- subscribers ---------------------------------------------------------------------

    fn subscriber_file(&self, rid: &str, branch: &str, id: &str) -> Result<PathBuf, StoreError> {
        self.stream_file(rid, branch)?;
        check_subscriber_id(id)?;
        Ok(self
            .root
            .join("streams")
            .join(rid)
            .join("subscribers")
            .join(branch_dir_name(branch))
            .join(format!("{id}.json")))
    }

    /// Creates a subscriber, or returns the existing one of that id (whatever `start`);
    /// `true` when it was created.
    pub async fn create_subscriber(
        &self,
        rid: &str,
        branch: &str,
        id: &str,
        start: SubscriberStart,
    ) -> Result<(Subscriber, bool), StoreError> {
        let file = self.subscriber_file(rid, branch, id)?;
        let _guard = self.lock.lock().await;
        if file.is_file() {
            return Ok((read_json(&file)?, false));
        }
        let at = match start {
            SubscriberStart::Earliest => 0,
            SubscriberStart::Latest => self.end_offset(rid, branch)?,
        };
        let s = Subscriber {
            subscriber_id: id.to_owned(),
            branch_name: branch.to_owned(),
            start_position: start,
            offsets: BTreeMap::from([("0".to_owned(), at)]),
        };
        if let Some(dir) = file.parent() {
            create_dir(dir)?;
        }
        write_atomic(&file, &to_json(&s)?)?;
        Ok((s, true))
    }

    /// A subscriber (`SubscriberNotFound` when there is none of that id).
    pub fn subscriber(&self, rid: &str, branch: &str, id: &str) -> Result<Subscriber, StoreError> {
        let file = self.subscriber_file(rid, branch, id)?;
        if !file.is_file() {
            return Err(not_found(
                "SubscriberNotFound",
                format!("stream {rid} branch {branch} has no subscriber `{id}`"),
            ));
        }
        read_json(&file)
    }

    /// Deletes a subscriber.
    pub async fn delete_subscriber(
        &self,
        rid: &str,
        branch: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let file = self.subscriber_file(rid, branch, id)?;
        let _guard = self.lock.lock().await;
        self.subscriber(rid, branch, id)?;
        std::fs::remove_file(&file).map_err(io(format!("removing {}", file.display())))
    }

    /// Commits a subscriber's position (partition → next offset to read). Only partition `0`
    /// exists; an offset past the end offset is refused (`OffsetOutOfRange`).
    pub async fn commit_subscriber_offsets(
        &self,
        rid: &str,
        branch: &str,
        id: &str,
        offsets: &BTreeMap<String, u64>,
    ) -> Result<Subscriber, StoreError> {
        let file = self.subscriber_file(rid, branch, id)?;
        let _guard = self.lock.lock().await;
        let mut s = self.subscriber(rid, branch, id)?;
        let end = self.end_offset(rid, branch)?;
        for (p, &o) in offsets {
            if p != "0" {
                return Err(invalid(
                    "InvalidPartitionId",
                    format!("partition `{p}`: local streams have one partition, `0`"),
                ));
            }
            if o > end {
                return Err(invalid(
                    "OffsetOutOfRange",
                    format!("offset {o} is past the end offset {end} of partition 0"),
                ));
            }
            s.offsets.insert(p.clone(), o);
        }
        write_atomic(&file, &to_json(&s)?)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, DataStore) {
        let d = tempfile::tempdir().unwrap();
        let s = DataStore::open(d.path(), 100).unwrap();
        s.create_stream("ri.st.1").unwrap();
        (d, s)
    }

    #[tokio::test]
    async fn reads_by_offset_across_checkpoints_and_hand_appended_lines() {
        use std::io::Write;
        let (_d, s) = store();
        let recs: Vec<_> = (0..3000).map(|i| json!({ "n": i })).collect();
        s.append_records("ri.st.1", "master", &recs).await.unwrap();
        let got = s.read_records("ri.st.1", "master", 2047, 3).unwrap();
        assert_eq!(
            got,
            [
                (2047, json!({"n": 2047})),
                (2048, json!({"n": 2048})),
                (2049, json!({"n": 2049}))
            ]
        );
        // A user appends by hand: a complete line, then one without its newline, then half a
        // line that is still being written.
        let file = s.stream_location("ri.st.1", "master").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"\n{\"n\": 3000}\n{\"n\": 3001}").unwrap();
        assert_eq!(s.end_offset("ri.st.1", "master").unwrap(), 3002);
        let got = s.read_records("ri.st.1", "master", 2999, 10).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], (3001, json!({"n": 3001})));
        // The API appends after it, ending the hand-written line first.
        let first = s
            .append_records("ri.st.1", "master", &[json!({"n": 3002})])
            .await
            .unwrap();
        assert_eq!(first, 3002);
        f.write_all(b"{\"n\": 30").unwrap();
        assert_eq!(s.end_offset("ri.st.1", "master").unwrap(), 3003);
        f.write_all(b"03}\n").unwrap();
        assert_eq!(s.end_offset("ri.st.1", "master").unwrap(), 3004);
        let all = s.records("ri.st.1", "master").unwrap();
        assert_eq!(all.len(), 3004);
        assert!(all.iter().enumerate().all(|(i, v)| v["n"] == json!(i)));
    }

    #[tokio::test]
    async fn subscribers_keep_committed_positions() {
        let (_d, s) = store();
        s.append_records("ri.st.1", "master", &[json!({"a": 1}), json!({"a": 2})])
            .await
            .unwrap();
        let (sub, created) = s
            .create_subscriber("ri.st.1", "master", "m1", SubscriberStart::Latest)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(sub.offsets["0"], 2);
        let (again, created) = s
            .create_subscriber("ri.st.1", "master", "m1", SubscriberStart::Earliest)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, sub);
        let off = BTreeMap::from([("0".to_owned(), 1)]);
        s.commit_subscriber_offsets("ri.st.1", "master", "m1", &off)
            .await
            .unwrap();
        assert_eq!(
            s.subscriber("ri.st.1", "master", "m1").unwrap().offsets["0"],
            1
        );
        let past = BTreeMap::from([("0".to_owned(), 9)]);
        assert!(
            s.commit_subscriber_offsets("ri.st.1", "master", "m1", &past)
                .await
                .is_err()
        );
        assert!(s.subscriber("ri.st.1", "master", "../x").is_err());
        s.delete_subscriber("ri.st.1", "master", "m1")
            .await
            .unwrap();
        assert!(s.subscriber("ri.st.1", "master", "m1").is_err());
    }

    #[tokio::test]
    async fn streams_append_and_read_by_offset() {
        let (_d, s) = crate::foundry::store::test_store(10);
        s.create_stream("ri.st.1").unwrap();
        let first = s
            .append_records(
                "ri.st.1",
                "master",
                &[serde_json::json!({"a": 1}), serde_json::json!({"a": 2})],
            )
            .await
            .unwrap();
        assert_eq!(first, 0);
        let next = s
            .append_records("ri.st.1", "master", &[serde_json::json!({"a": 3})])
            .await
            .unwrap();
        assert_eq!(next, 2);
        assert_eq!(s.end_offset("ri.st.1", "master").unwrap(), 3);
        let got = s.read_records("ri.st.1", "master", 1, 1).unwrap();
        assert_eq!(got, [(1, serde_json::json!({"a": 2}))]);
        assert!(
            s.append_records("ri.st.1", "master", &[serde_json::json!(1)])
                .await
                .is_err()
        );
        assert!(s.read_records("ri.nope", "master", 0, 1).is_err());
    }
}
