//! Where an ingester reads records: a followed file, or log files in a bucket.

use serde_json::Value;

/// One record read from a feed.
#[derive(Debug)]
pub struct RawRecord {
    /// The record's JSON, or why it could not be read.
    pub value: Result<Value, String>,
    /// Where it is, for people: `audit.log line 57 (byte 12345)`, `s3://bucket/key record 3`.
    pub position: String,
    /// The feed's cursor just after it.
    pub after: Value,
}

#[derive(Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<RawRecord>,
    /// The cursor after everything read; it may move with no record (a new empty file, an
    /// object with no records).
    pub end: Value,
    /// What happened to the input (a rotation, a truncation, a file gone), for the log.
    pub notes: Vec<String>,
}

#[async_trait::async_trait]
pub trait Feed: Send + Sync {
    fn describe(&self) -> String;

    /// At most `max` records after `cursor` (`null`: from the beginning).
    async fn read(&self, cursor: &Value, max: usize) -> Result<ReadBatch, String>;
}
