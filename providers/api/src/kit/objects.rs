//! Object storage reached with a provider's own credentials: where a cloud delivers its audit
//! log files (CloudTrail to S3, a GCP log sink to Cloud Storage, Azure Monitor to Blob
//! storage), and where keygate can keep a copy of its audit checkpoints outside its database.

use crate::ProviderError;

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// The URL scheme of its objects in messages (`s3`, `gs`, `https`).
    fn scheme(&self) -> &'static str;

    /// Objects of `bucket` whose keys start with `prefix` and sort after `start_after`, in key
    /// order, at most `max`.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Result<Vec<ObjectInfo>, ProviderError>;

    /// An object's whole content.
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ProviderError>;

    /// Writes an object (replacing one of the same key).
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), ProviderError>;
}
