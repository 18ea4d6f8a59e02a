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
}

impl DirWitness {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: Mutex::new(None),
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(WITNESS_FILE)
    }
}

/// Reads a witness file (blocking).
pub fn read_file(path: &Path) -> Result<Witnessed, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Witnessed::default()),
        Err(e) => return Err(format!("cannot read the witness {}: {e}", path.display())),
    };
    let mut out = Witnessed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<WitnessEntry>(line)
            .map_err(|e| e.to_string())
            .and_then(WitnessEntry::into_checkpoint)
        {
            Ok(cp) => out.checkpoints.push(cp),
            Err(e) => out
                .malformed
                .push(format!("{} line {}: {e}", path.display(), i + 1)),
        }
    }
    out.checkpoints.sort_by_key(|c| c.sequence);
    Ok(out)
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
        tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// One object per checkpoint in a bucket.
pub struct ObjectWitness {
    pub store: Arc<dyn ObjectStore>,
    pub provider: String,
    pub bucket: String,
    /// Ends with `/` or is empty.
    pub prefix: String,
}

impl ObjectWitness {
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
        let mut out = Witnessed::default();
        let mut after = String::new();
        loop {
            let page = self
                .store
                .list(&self.bucket, &prefix, &after, 1000)
                .await
                .map_err(|e| format!("{}: {e}", self.describe()))?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            for object in page {
                let body = self
                    .store
                    .get(&self.bucket, &object.key)
                    .await
                    .map_err(|e| format!("{}: {e}", self.describe()))?;
                match serde_json::from_slice::<WitnessEntry>(&body)
                    .map_err(|e| e.to_string())
                    .and_then(WitnessEntry::into_checkpoint)
                {
                    Ok(cp) => out.checkpoints.push(cp),
                    Err(e) => out
                        .malformed
                        .push(format!("s3://{}/{}: {e}", self.bucket, object.key)),
                }
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
