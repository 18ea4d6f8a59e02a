//! Witnesses: copies of every checkpoint kept outside the database, so that a database
//! replaced by an older copy, or one whose checkpoints were deleted or rewritten with the
//! chain, no longer matches what was witnessed.
//!
//! - [`DirWitness`]: an append-only JSON Lines file `checkpoints.jsonl` in a directory (put it
//!   on another disk or host, or make it append-only: `chattr +a`);
//! - [`ObjectWitness`]: one object per checkpoint in a bucket reached with a provider's
//!   credentials (`PREFIX/checkpoints/SEQUENCE.json`; e.g. an S3 bucket with Object Lock).

use crate::audit::store::Checkpoint;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keygate_provider::kit::ObjectStore;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// A checkpoint as witnesses keep it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessEntry {
    pub sequence: u64,
    pub head_hash: String,
    pub time_ms: i64,
    pub previous_digest: String,
    pub key_id: String,
    pub key_name: String,
    pub key_version: u32,
    pub algorithm: String,
    /// DER SubjectPublicKeyInfo, base64.
    pub public_key: String,
    /// base64.
    pub signature: String,
}

impl From<&Checkpoint> for WitnessEntry {
    fn from(c: &Checkpoint) -> Self {
        Self {
            sequence: c.sequence,
            head_hash: c.head_hash.clone(),
            time_ms: c.time_ms,
            previous_digest: c.previous_digest.clone(),
            key_id: c.key_id.clone(),
            key_name: c.key_name.clone(),
            key_version: c.key_version,
            algorithm: c.algorithm.clone(),
            public_key: B64.encode(&c.public_key),
            signature: B64.encode(&c.signature),
        }
    }
}

impl WitnessEntry {
    fn into_checkpoint(self) -> Result<Checkpoint, String> {
        let b64 = |field: &str, text: &str| {
            B64.decode(text.as_bytes())
                .map_err(|e| format!("{field} is not base64: {e}"))
        };
        Ok(Checkpoint {
            public_key: b64("public_key", &self.public_key)?,
            signature: b64("signature", &self.signature)?,
            sequence: self.sequence,
            head_hash: self.head_hash,
            time_ms: self.time_ms,
            previous_digest: self.previous_digest,
            key_id: self.key_id,
            key_name: self.key_name,
            key_version: self.key_version,
            algorithm: self.algorithm,
        })
    }
}

/// What a witness holds.
#[derive(Debug, Default)]
pub struct Witnessed {
    pub checkpoints: Vec<Checkpoint>,
    /// Entries that could not be read, with where they are.
    pub malformed: Vec<String>,
}

#[async_trait::async_trait]
pub trait Witness: Send + Sync {
    /// Where it is, for messages.
    fn describe(&self) -> String;

    /// Adds `checkpoints` (in sequence order); those it already holds are skipped.
    async fn append(&self, checkpoints: &[Checkpoint]) -> Result<(), String>;

    /// Everything it holds, in sequence order.
    async fn read(&self) -> Result<Witnessed, String>;
}

pub const WITNESS_FILE: &str = "checkpoints.jsonl";

/// An append-only JSON Lines file in a directory.
pub struct DirWitness {
    dir: PathBuf,
    /// The last sequence in the file, once read.
    last: Mutex<Option<u64>>,
    /// What was read so far and up to which byte: the file only grows, so a later read parses
    /// only what was appended (a year of checkpoints is a large file).
    seen: Mutex<Option<(u64, usize, Witnessed)>>,
}

impl DirWitness {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: Mutex::new(None),
            seen: Mutex::new(None),
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(WITNESS_FILE)
    }
}

/// Reads a witness file (blocking).
pub fn read_file(path: &Path) -> Result<Witnessed, String> {
    let mut out = Witnessed::default();
    read_from(path, 0, 0, &mut out)?;
    out.checkpoints.sort_by_key(|c| c.sequence);
    Ok(out)
}

/// Reads the complete lines after byte `offset` (line `line`) into `out`; returns the offset
/// and line after the last complete line.
fn read_from(
    path: &Path,
    offset: u64,
    line: usize,
    out: &mut Witnessed,
) -> Result<(u64, usize), String> {
    use std::io::{Read as _, Seek as _};
    let fail = |e: std::io::Error| format!("cannot read the witness {}: {e}", path.display());
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((offset, line)),
        Err(e) => return Err(fail(e)),
    };
    file.seek(std::io::SeekFrom::Start(offset)).map_err(fail)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(fail)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut n = line;
    for l in text.lines() {
        n += 1;
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<WitnessEntry>(l)
            .map_err(|e| e.to_string())
            .and_then(WitnessEntry::into_checkpoint)
        {
            Ok(cp) => out.checkpoints.push(cp),
            Err(e) => out
                .malformed
                .push(format!("{} line {n}: {e}", path.display())),
        }
    }
    Ok((offset + complete as u64, n))
}

#[async_trait::async_trait]
impl Witness for DirWitness {
    fn describe(&self) -> String {
        self.file().display().to_string()
    }

    async fn append(&self, checkpoints: &[Checkpoint]) -> Result<(), String> {
        let mut last = self.last.lock().await;
        let path = self.file();
        if last.is_none() {
            let p = path.clone();
            let held = tokio::task::spawn_blocking(move || read_file(&p))
                .await
                .map_err(|e| e.to_string())??;
            *last = Some(held.checkpoints.last().map_or(0, |c| c.sequence));
        }
        let after = last.unwrap_or(0);
        let mut text = String::new();
        let mut newest = after;
        for cp in checkpoints.iter().filter(|c| c.sequence > after) {
            text.push_str(
                &serde_json::to_string(&WitnessEntry::from(cp)).map_err(|e| e.to_string())?,
            );
            text.push('\n');
            newest = cp.sequence;
        }
        if text.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!("cannot create the witness directory {}: {e}", dir.display())
            })?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open the witness {}: {e}", path.display()))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write the witness {}: {e}", path.display()))
        })
        .await
        .map_err(|e| e.to_string())??;
        *last = Some(newest);
        Ok(())
    }

    async fn read(&self) -> Result<Witnessed, String> {
        let path = self.file();
        let mut seen = self.seen.lock().await;
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let (offset, line, mut held) = match seen.take() {
            // Grown (or not): parse what was appended.
            Some((offset, line, held)) if len >= offset => (offset, line, held),
            // Shrunk: someone cut it; read it all again, and say so.
            Some((offset, _, _)) => {
                let mut held = Witnessed::default();
                held.malformed.push(format!(
                    "{} shrank from {offset} to {len} bytes since it was last read",
                    path.display()
                ));
                (0, 0, held)
            }
            None => (0, 0, Witnessed::default()),
        };
        let p = path.clone();
        let (offset, line, fresh) = tokio::task::spawn_blocking(move || {
            let mut fresh = Witnessed::default();
            read_from(&p, offset, line, &mut fresh).map(|(o, l)| (o, l, fresh))
        })
        .await
        .map_err(|e| e.to_string())??;
        held.checkpoints.extend(fresh.checkpoints);
        held.malformed.extend(fresh.malformed);
        held.checkpoints.sort_by_key(|c| c.sequence);
        let out = Witnessed {
            checkpoints: held.checkpoints.clone(),
            malformed: held.malformed.clone(),
        };
        *seen = Some((offset, line, held));
        Ok(out)
    }
}

/// One object per checkpoint in a bucket.
pub struct ObjectWitness {
    pub store: Arc<dyn ObjectStore>,
    pub provider: String,
    pub bucket: String,
    /// Ends with `/` or is empty.
    pub prefix: String,
    /// Objects already read (a witness's objects are written once).
    pub seen: Mutex<std::collections::BTreeMap<String, Result<Checkpoint, String>>>,
}

impl ObjectWitness {
    pub fn new(store: Arc<dyn ObjectStore>, provider: &str, bucket: &str, prefix: &str) -> Self {
        Self {
            store,
            provider: provider.into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            seen: Mutex::default(),
        }
    }

    fn key(&self, sequence: u64) -> String {
        format!("{}checkpoints/{sequence:020}.json", self.prefix)
    }
}

#[async_trait::async_trait]
impl Witness for ObjectWitness {
    fn describe(&self) -> String {
        format!(
            "bucket {} under {} (provider {})",
            self.bucket,
            if self.prefix.is_empty() {
                "/"
            } else {
                &self.prefix
            },
            self.provider
        )
    }

    async fn append(&self, checkpoints: &[Checkpoint]) -> Result<(), String> {
        for cp in checkpoints {
            let body = serde_json::to_vec(&WitnessEntry::from(cp)).map_err(|e| e.to_string())?;
            self.store
                .put(&self.bucket, &self.key(cp.sequence), body)
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?;
        }
        Ok(())
    }

    async fn read(&self) -> Result<Witnessed, String> {
        let prefix = format!("{}checkpoints/", self.prefix);
        let mut seen = self.seen.lock().await;
        let mut keys = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .store
                .list(&self.bucket, &prefix, &after, 1000)
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            keys.extend(page.into_iter().map(|o| o.key));
        }
        for key in &keys {
            if seen.contains_key(key) {
                continue;
            }
            let body = self
                .store
                .get(&self.bucket, key)
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?;
            let parsed = serde_json::from_slice::<WitnessEntry>(&body)
                .map_err(|e| e.to_string())
                .and_then(WitnessEntry::into_checkpoint)
                .map_err(|e| format!("s3://{}/{key}: {e}", self.bucket));
            seen.insert(key.clone(), parsed);
        }
        let mut out = Witnessed::default();
        for key in &keys {
            match seen.get(key) {
                Some(Ok(cp)) => out.checkpoints.push(cp.clone()),
                Some(Err(e)) => out.malformed.push(e.clone()),
                None => {}
            }
        }
        out.checkpoints.sort_by_key(|c| c.sequence);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(sequence: u64) -> Checkpoint {
        Checkpoint {
            sequence,
            head_hash: "aa".repeat(32),
            time_ms: 5,
            previous_digest: "00".repeat(32),
            key_id: "k".into(),
            key_name: "n".into(),
            key_version: 1,
            algorithm: "ecdsa-p256".into(),
            public_key: vec![1, 2],
            signature: vec![3],
        }
    }

    #[tokio::test]
    async fn the_file_witness_appends_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let w = DirWitness::new(dir.path());
        w.append(&[cp(3), cp(7)]).await.unwrap();
        // A retry of what it holds adds nothing.
        w.append(&[cp(7)]).await.unwrap();
        let again = DirWitness::new(dir.path());
        again.append(&[cp(7), cp(9)]).await.unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(w.file())
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let read = w.read().await.unwrap();
        assert_eq!(
            read.checkpoints
                .iter()
                .map(|c| c.sequence)
                .collect::<Vec<_>>(),
            [3, 7, 9]
        );
        assert_eq!(read.checkpoints[0], cp(3));
        assert_eq!(read.malformed.len(), 1);
        assert!(read.malformed[0].contains("line 4"), "{:?}", read.malformed);
    }
}
