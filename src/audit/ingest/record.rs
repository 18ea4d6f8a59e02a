//! A provider's audit record in keygate's schema, before it meets the gateway's events.

use crate::audit::hmac::Hasher;
use serde_json::{Map, Value};

/// One provider record, normalised: the OCSF API Activity fields keygate keeps for every
/// source. Sensitive values are already HMAC'd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderRecord {
    /// The record's own id at its source, unique there (never ingested twice).
    pub record_id: String,
    pub time_ms: i64,
    /// keygate's name for the operation (`Encrypt`, `CreateKey`, …), or the source's own name
    /// when keygate has none.
    pub operation: String,
    /// The source's own name (`transit/encrypt`, `GenerateDataKey`, `KeyEncrypt`, …).
    pub native_operation: String,
    pub actor: String,
    pub actor_kind: String,
    pub client_address: String,
    /// The key as keygate's provider names it (no version), empty when the record is not
    /// about one key.
    pub key_uri: String,
    /// The provider's own version of the key, when the record names one.
    pub native_version: String,
    /// ok | denied | error
    pub outcome: &'static str,
    /// The source's error code (`AccessDeniedException`, `PERMISSION_DENIED`, …).
    pub error_code: String,
    pub reason: String,
    /// The request id the provider gave (what keygate's events record as provider request id).
    pub provider_request_id: String,
    /// keygate's own request id, when the record carries it (an audited header, a user agent,
    /// a client request id).
    pub keygate_request_id: Option<String>,
    /// Source-specific facts (HMAC'd where sensitive).
    pub details: Map<String, Value>,
}

/// What a normaliser makes of one raw record.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalised {
    Record(Box<ProviderRecord>),
    /// Not a key operation (a login, a health check, the request half of a pair): skipped
    /// and counted.
    Ignored(&'static str),
    /// Not a record of this source's format: skipped, counted and reported with its position.
    Malformed(String),
}

/// One source's record format.
pub trait Normaliser: Send + Sync {
    /// The event source its records carry: `vault`, `aws-kms`, `gcp-kms`, `azure-keyvault`.
    fn source(&self) -> &'static str;

    fn normalise(&self, record: &Value, hasher: &Hasher) -> Normalised;
}

/// RFC 3339 text (any offset, any fraction) as Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `record[path]` as text (`/a/b` pointer), empty when absent.
pub fn text<'a>(record: &'a Value, pointer: &str) -> &'a str {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The keygate request id in a user agent (`… keygate-request-id/ID …`).
pub fn request_id_in_user_agent(user_agent: &str) -> Option<String> {
    const TOKEN: &str = "keygate-request-id/";
    let start = user_agent.find(TOKEN)? + TOKEN.len();
    let rest = &user_agent[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_user_agents_parse() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_time("2026-12-06T05:14:23.825912989Z").map(|t| t % 1000),
            Some(825)
        );
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Some(1000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(
            request_id_in_user_agent("keygate/0.1.0 keygate-request-id/0190-ab,gzip(gfe)")
                .as_deref(),
            Some("0190-ab")
        );
        assert_eq!(request_id_in_user_agent("aws-sdk-rust/1.0"), None);
    }
}
