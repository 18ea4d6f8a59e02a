//! Log files in a bucket, read in key order (CloudTrail's `AWSLogs/ACCOUNT/CloudTrail/REGION/
//! YYYY/MM/DD/…json.gz`, a GCP log sink's export, Azure's `insights-logs-auditevent`).
//!
//! The cursor is the key of the file being read and the index of the next record in it; a
//! file is read whole (gunzipped when it is gzip) and split into records: a `{"Records": […]}`
//! (or `"records"`) document, or JSON Lines.

use super::feed::{Feed, RawRecord, ReadBatch};
use keygate_provider::kit::ObjectStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read as _;
use std::sync::{Arc, Mutex};

/// A log file larger than this once unzipped is refused (and reported).
const MAX_FILE: u64 = 512 * 1024 * 1024;

/// A log file's records, split.
type Records = Arc<Vec<Result<Value, String>>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ObjectPosition {
    key: String,
    index: usize,
    done: bool,
}

pub struct ObjectFeed {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    /// The last file read, split, so a file read in several batches is fetched once.
    cache: Mutex<Option<(String, Records)>>,
}

impl ObjectFeed {
    pub fn new(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Self {
        Self {
            store,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            cache: Mutex::new(None),
        }
    }

    async fn records(&self, key: &str) -> Result<Records, String> {
        if let Ok(cache) = self.cache.lock()
            && let Some((k, records)) = cache.as_ref()
            && k == key
        {
            return Ok(records.clone());
        }
        let body = self
            .store
            .get(&self.bucket, key)
            .await
            .map_err(|e| e.to_string())?;
        let records = Arc::new(split_records(&body));
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((key.to_string(), records.clone()));
        }
        Ok(records)
    }
}

/// The records of one log file.
pub fn split_records(body: &[u8]) -> Vec<Result<Value, String>> {
    let text = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        match flate2::read::MultiGzDecoder::new(body)
            .take(MAX_FILE)
            .read_to_end(&mut out)
        {
            Ok(_) => out,
            Err(e) => return vec![Err(format!("not a readable gzip file: {e}"))],
        }
    } else {
        body.to_vec()
    };
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if trimmed.starts_with(b"{")
        && let Ok(doc) = serde_json::from_slice::<Value>(trimmed)
    {
        return match doc.get("Records").or_else(|| doc.get("records")) {
            Some(Value::Array(items)) => items.iter().cloned().map(Ok).collect(),
            Some(_) => vec![Err("`Records` is not an array".into())],
            None => vec![Ok(doc)],
        };
    }
    trimmed
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| format!("not JSON: {e}")))
        .collect()
}

#[async_trait::async_trait]
impl Feed for ObjectFeed {
    fn describe(&self) -> String {
        format!("{}://{}/{}", self.store.scheme(), self.bucket, self.prefix)
    }

    async fn read(&self, cursor: &Value, max: usize) -> Result<ReadBatch, String> {
        let pos: ObjectPosition = serde_json::from_value(cursor.clone()).unwrap_or_default();
        let (key, start) = if !pos.key.is_empty() && !pos.done {
            (pos.key.clone(), pos.index)
        } else {
            let next = self
                .store
                .list(&self.bucket, &self.prefix, &pos.key, 1)
                .await
                .map_err(|e| e.to_string())?;
            match next.into_iter().next() {
                Some(o) => (o.key, 0),
                None => {
                    return Ok(ReadBatch {
                        end: cursor.clone(),
                        ..Default::default()
                    });
                }
            }
        };
        let records = self.records(&key).await?;
        let mut batch = ReadBatch::default();
        let end = (start + max).min(records.len());
        for (i, value) in records.iter().enumerate().take(end).skip(start) {
            batch.records.push(RawRecord {
                value: value.clone(),
                position: format!(
                    "{}://{}/{key} record {}",
                    self.store.scheme(),
                    self.bucket,
                    i + 1
                ),
                after: serde_json::to_value(ObjectPosition {
                    key: key.clone(),
                    index: i + 1,
                    done: i + 1 >= records.len(),
                })
                .unwrap_or(Value::Null),
            });
        }
        batch.end = serde_json::to_value(ObjectPosition {
            key: key.clone(),
            index: end,
            done: end >= records.len(),
        })
        .unwrap_or(Value::Null);
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn log_files_split_into_records() {
        let doc = br#"{"Records":[{"a":1},{"a":2}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(doc).unwrap();
        let zipped = gz.finish().unwrap();
        let records = split_records(&zipped);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].as_ref().unwrap()["a"], 2);
        let lines = split_records(b"{\"a\":1}\nnope\n\n{\"a\":3}\n");
        assert_eq!(lines.len(), 3);
        assert!(lines[1].is_err());
        assert!(
            split_records(&[0x1f, 0x8b, 0, 1])
                .first()
                .is_some_and(|r| r.is_err())
        );
        assert!(split_records(b"").is_empty());
    }
}
