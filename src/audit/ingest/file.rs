//! A JSON Lines file followed as it grows and rotates (OpenBao/Vault's file audit device, an
//! emulator's log, a log shipper's output).
//!
//! The cursor is the file's identity (device and inode, and a digest of its first line) with
//! the byte offset and line number after the last complete line read. A line still being
//! written (no newline yet) waits. When the path names another file (rotated: renamed, a new
//! one created), the rest of the old file is read first if it is still beside the new one
//! (`audit.log.1`, `audit.log-20261206`, …), then the new file from its start. A file that
//! shrank (truncated in place) is read again from its start; records already in the log are
//! recognised by their ids and skipped.

use super::feed::{Feed, RawRecord, ReadBatch};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A line longer than this is not a record (it is skipped and reported).
const MAX_LINE: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FilePosition {
    dev: u64,
    ino: u64,
    /// SHA-256 (hex, 16 digits) of the file's first line, once it has one.
    first_line: String,
    offset: u64,
    line: u64,
}

pub struct FileFeed {
    path: PathBuf,
}

impl FileFeed {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 1)
}

fn first_line_digest(file: &std::fs::File) -> std::io::Result<String> {
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(0))?;
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Ok(String::new());
    }
    Ok(hex::encode(
        &digest::digest(&digest::SHA256, &line).as_ref()[..8],
    ))
}

/// The rotated file that is `(dev, ino)`, beside `path` and named after it.
fn find_rotated(path: &Path, dev: u64, ino: u64) -> Option<(PathBuf, std::fs::File)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name()?.to_string_lossy().to_string();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == base || !name.starts_with(&base) || name.ends_with(".gz") {
            continue;
        }
        let candidate = entry.path();
        if let Ok(file) = std::fs::File::open(&candidate)
            && let Ok(meta) = file.metadata()
            && identity(&meta) == (dev, ino)
        {
            return Some((candidate, file));
        }
    }
    None
}

/// Reads complete lines from `pos` on, at most `max`; returns whether the end was reached.
fn read_lines(
    file: &std::fs::File,
    path: &Path,
    pos: &mut FilePosition,
    max: usize,
    out: &mut Vec<RawRecord>,
) -> std::io::Result<bool> {
    let mut reader = BufReader::with_capacity(256 * 1024, file.try_clone()?);
    reader.seek(SeekFrom::Start(pos.offset))?;
    let mut buf = Vec::new();
    while out.len() < max {
        buf.clear();
        let n = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)? as u64;
        if n == 0 {
            return Ok(true);
        }
        let at = pos.offset;
        let number = pos.line + 1;
        let position = format!("{} line {number} (byte {at})", path.display());
        if !buf.ends_with(b"\n") {
            if n < MAX_LINE {
                // A line still being written: wait for its end.
                return Ok(true);
            }
            // Too long to be a record: skip to the end of the line.
            let mut skipped = n;
            loop {
                buf.clear();
                let more = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)? as u64;
                skipped += more;
                if more == 0 {
                    // No end yet: wait, and skip it whole once it has one.
                    return Ok(true);
                }
                if buf.ends_with(b"\n") {
                    break;
                }
            }
            pos.offset += skipped;
            pos.line += 1;
            out.push(RawRecord {
                value: Err(format!(
                    "a line of {skipped} bytes, longer than any record ({MAX_LINE} bytes at most)"
                )),
                position,
                after: serde_json::to_value(&*pos).unwrap_or(Value::Null),
            });
            continue;
        }
        pos.offset += n;
        pos.line += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        out.push(RawRecord {
            value: serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}")),
            position,
            after: serde_json::to_value(&*pos).unwrap_or(Value::Null),
        });
    }
    Ok(false)
}

fn read_blocking(path: &Path, cursor: &Value, max: usize) -> Result<ReadBatch, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut pos: FilePosition = serde_json::from_value(cursor.clone()).unwrap_or_default();
    let mut batch = ReadBatch::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            batch.end = cursor.clone();
            return Ok(batch);
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let (dev, ino) = identity(&meta);
    if pos.ino != 0 && (pos.dev, pos.ino) != (dev, ino) {
        match find_rotated(path, pos.dev, pos.ino) {
            Some((old_path, old)) => {
                let done = read_lines(&old, &old_path, &mut pos, max, &mut batch.records)
                    .map_err(io)?;
                if !done {
                    batch.end = serde_json::to_value(&pos).unwrap_or(Value::Null);
                    return Ok(batch);
                }
                batch.notes.push(format!(
                    "{} was rotated (the old file is now {}); read to its end, now following the new file",
                    path.display(),
                    old_path.display()
                ));
            }
            None => batch.notes.push(format!(
                "{} was rotated and the old file is gone: whatever was written to it after byte {} (line {}) was not ingested",
                path.display(),
                pos.offset,
                pos.line
            )),
        }
        pos = FilePosition::default();
    }
    let first_line = first_line_digest(&file).map_err(io)?;
    if pos.ino != 0 && !pos.first_line.is_empty() && pos.first_line != first_line {
        batch.notes.push(format!(
            "{} was replaced by another file with the same inode; reading it from its start",
            path.display()
        ));
        pos = FilePosition::default();
    } else if meta.len() < pos.offset {
        batch.notes.push(format!(
            "{} shrank below byte {} (truncated); reading it again from its start (records already ingested are skipped)",
            path.display(),
            pos.offset
        ));
        pos.offset = 0;
        pos.line = 0;
    }
    pos.dev = dev;
    pos.ino = ino;
    pos.first_line = first_line;
    let left = max.saturating_sub(batch.records.len());
    read_lines(&file, path, &mut pos, left, &mut batch.records).map_err(io)?;
    batch.end = serde_json::to_value(&pos).unwrap_or(Value::Null);
    Ok(batch)
}

#[async_trait::async_trait]
impl Feed for FileFeed {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn read(&self, cursor: &Value, max: usize) -> Result<ReadBatch, String> {
        let path = self.path.clone();
        let cursor = cursor.clone();
        tokio::task::spawn_blocking(move || read_blocking(&path, &cursor, max))
            .await
            .map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn values(batch: &ReadBatch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|r| match &r.value {
                Ok(v) => v["n"].to_string(),
                Err(_) => "bad".into(),
            })
            .collect()
    }

    #[test]
    fn follows_growth_partial_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "{\"n\":1}\n{\"n\":2}\nnot json\n{\"n\":");
        let b = read_blocking(&path, &Value::Null, 100).unwrap();
        assert_eq!(values(&b), ["1", "2", "bad"]);
        assert!(
            b.records[2].position.contains("line 3"),
            "{}",
            b.records[2].position
        );
        // The half-written line waits for its end.
        append(&path, "3}\n");
        let b = read_blocking(&path, &b.end, 100).unwrap();
        assert_eq!(values(&b), ["3"]);
        // At most `max` at a time, resuming exactly where it stopped.
        append(&path, "{\"n\":4}\n{\"n\":5}\n");
        let b1 = read_blocking(&path, &b.end, 1).unwrap();
        assert_eq!(values(&b1), ["4"]);
        // Rotation: the rest of the old file first, then the new one.
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        append(&path, "{\"n\":6}\n");
        let b2 = read_blocking(&path, &b1.end, 100).unwrap();
        assert_eq!(values(&b2), ["5", "6"]);
        assert!(b2.notes[0].contains("rotated"), "{:?}", b2.notes);
        let b3 = read_blocking(&path, &b2.end, 100).unwrap();
        assert!(b3.records.is_empty());
        // Truncated in place: read again from the start.
        std::fs::write(&path, "{\"n\":7}\n").unwrap();
        let b4 = read_blocking(&path, &b3.end, 100).unwrap();
        assert_eq!(values(&b4), ["7"]);
    }

    #[test]
    fn a_rotated_file_that_is_gone_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        append(&path, "{\"n\":1}\n");
        let b = read_blocking(&path, &Value::Null, 100).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Another file (a new inode, kept alive so the number is not reused).
        let _keep = std::fs::File::create(dir.path().join("other")).unwrap();
        append(&path, "{\"n\":2}\n");
        let b = read_blocking(&path, &b.end, 100).unwrap();
        assert_eq!(values(&b), ["2"]);
        assert!(
            b.notes
                .iter()
                .any(|n| n.contains("gone") || n.contains("replaced")),
            "{:?}",
            b.notes
        );
    }
}
