//! The on-disk spool: batches of line protocol kept while InfluxDB cannot take them. File I/O
//! only; the network is [`crate::store`]'s.
//!
//! Layout of `spool_dir`:
//! - `00000000000000000042.lp`: one batch each, in the order they were spooled (the number
//!   grows), µs precision. A file is written as `*.tmp`, fsync'd, renamed and the directory
//!   fsync'd, so a file with the final name is always complete; `*.tmp` files left by a crash
//!   were never acknowledged and are removed at start-up.
//! - `rejected/`: batches InfluxDB refused as malformed or conflicting (HTTP 400, 413, 422),
//!   kept for the operator instead of being retried forever. Not counted against the size
//!   limit.
//!
//! The methods here are blocking; the store calls them through `spawn_blocking`.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Name of the folder of refused batches.
pub const REJECTED_DIR: &str = "rejected";
const EXT: &str = "lp";

/// A spooled batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub len: u64,
}

/// The queue of spooled batches, oldest first, and what it weighs.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    queue: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
}

impl Spool {
    /// Opens (creating) `dir`, drops incomplete files and queues the complete ones in order.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir.join(REJECTED_DIR))?;
        let mut entries = Vec::new();
        for item in fs::read_dir(dir)? {
            let item = item?;
            let path = item.path();
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                fs::remove_file(&path)?;
                continue;
            }
            let Some(seq) = name
                .strip_suffix(&format!(".{EXT}"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = item.metadata()?.len();
            entries.push(Entry { seq, len });
        }
        entries.sort_by_key(|e| e.seq);
        let bytes = entries.iter().map(|e| e.len).sum();
        let next_seq = entries.last().map_or(0, |e| e.seq + 1);
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            queue: entries.into(),
            bytes,
            next_seq,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `len` more bytes stay within the limit.
    pub(crate) fn fits(&self, len: u64) -> bool {
        self.bytes.saturating_add(len) <= self.max_bytes
    }

    /// Takes the next sequence number (a failed write leaves a harmless gap).
    pub(crate) fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Queues a batch whose file [`write_file`] has made durable.
    pub(crate) fn push(&mut self, entry: Entry) {
        self.bytes += entry.len;
        self.queue.push_back(entry);
    }

    /// Up to `max_count` of the oldest batches whose sizes add up to at most `max_bytes` (at
    /// least one if any).
    pub(crate) fn front(&self, max_count: usize, max_bytes: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut total = 0u64;
        for e in self.queue.iter().take(max_count.max(1)) {
            if !out.is_empty() && total + e.len > max_bytes {
                break;
            }
            total += e.len;
            out.push(*e);
        }
        out
    }

    /// Forgets the oldest batch if it is `entry` (the caller deletes or moves the file).
    pub(crate) fn pop(&mut self, entry: Entry) {
        if self.queue.front() == Some(&entry) {
            self.queue.pop_front();
            self.bytes = self.bytes.saturating_sub(entry.len);
        }
    }
}

/// The file of batch `seq`.
pub(crate) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.{EXT}"))
}

/// Writes batch `seq` durably: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_file(dir: &Path, seq: u64, body: &[u8]) -> io::Result<()> {
    let final_path = path(dir, seq);
    let tmp = dir.join(format!("{seq:020}.tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &final_path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads batches, concatenated in order.
pub(crate) fn read_files(dir: &Path, entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    for e in entries {
        let mut data = fs::read(path(dir, e.seq))?;
        if !data.is_empty() && !data.ends_with(b"\n") {
            data.push(b'\n');
        }
        body.extend_from_slice(&data);
    }
    Ok(body)
}

/// Deletes a replayed batch.
pub(crate) fn remove_file(dir: &Path, seq: u64) -> io::Result<()> {
    match fs::remove_file(path(dir, seq)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Moves a refused batch to `rejected/`.
pub(crate) fn reject_file(dir: &Path, seq: u64) -> io::Result<PathBuf> {
    let to = dir
        .join(REJECTED_DIR)
        .join(format!("{seq:020}-{}.{EXT}", unique_suffix()));
    fs::rename(path(dir, seq), &to)?;
    sync_dir(dir)?;
    Ok(to)
}

/// Writes a refused batch that never was in the spool to `rejected/`, durably.
pub(crate) fn write_rejected(dir: &Path, body: &[u8]) -> io::Result<PathBuf> {
    let rejected = dir.join(REJECTED_DIR);
    let to = rejected.join(format!("direct-{}.{EXT}", unique_suffix()));
    let mut f = fs::File::create(&to)?;
    f.write_all(body)?;
    f.sync_all()?;
    sync_dir(&rejected)?;
    Ok(to)
}

fn unique_suffix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{now}")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // Making a rename durable needs an fsync of the directory (POSIX); elsewhere opening a
    // directory may fail, which is not an error worth failing the write for.
    match fs::File::open(dir) {
        Ok(d) => d
            .sync_all()
            .or_else(|e| if cfg!(unix) { Err(e) } else { Ok(()) }),
        Err(e) if cfg!(unix) => Err(e),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_queued_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100).unwrap();
        assert!(s.is_empty());
        for body in ["a 1\n", "b 2\n", "c 3\n"] {
            assert!(s.fits(body.len() as u64));
            let seq = s.next_seq();
            write_file(dir.path(), seq, body.as_bytes()).unwrap();
            s.push(Entry {
                seq,
                len: body.len() as u64,
            });
        }
        fs::write(dir.path().join("00000000000000000099.tmp"), "partial").unwrap();
        fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(s.bytes(), 12);
        assert!(!s.fits(89));

        let mut again = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(again.len(), 3);
        assert!(!dir.path().join("00000000000000000099.tmp").exists());
        let front = again.front(2, 1000);
        assert_eq!(front.len(), 2);
        assert_eq!(read_files(dir.path(), &front).unwrap(), b"a 1\nb 2\n");
        assert_eq!(again.front(10, 5).len(), 1, "size limit, but at least one");
        again.pop(front[0]);
        remove_file(dir.path(), front[0].seq).unwrap();
        again.pop(front[0]);
        assert_eq!(again.len(), 2, "popping a batch twice pops it once");
        let moved = reject_file(dir.path(), front[1].seq).unwrap();
        again.pop(front[1]);
        assert!(moved.exists());
        assert_eq!(again.next_seq(), 3);
        let last = again.front(10, 1000);
        assert_eq!(read_files(dir.path(), &last).unwrap(), b"c 3\n");
        assert!(write_rejected(dir.path(), b"x").unwrap().exists());
    }
}
