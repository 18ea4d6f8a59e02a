//! One normaliser per provider audit format.
//!
//! | format | source | record | its request id | keygate's request id in it |
//! | --- | --- | --- | --- | --- |
//! | `vault` | `vault` | an OpenBao/Vault file audit device line (the `response` half) | `request.id` | `request.headers.x-keygate-request-id` (an audited header) |
//! | `cloudtrail` | `aws-kms` | a CloudTrail `Records[]` entry from `kms.amazonaws.com` | `requestID` | `userAgent` (`keygate-request-id/…`), when sent |
//! | `gcp` | `gcp-kms` | a Cloud Logging `LogEntry` with an `AuditLog` payload from `cloudkms.googleapis.com` | none | `protoPayload.requestMetadata.callerSuppliedUserAgent` |
//! | `azure` | `azure-keyvault` | an Azure Monitor `AuditEvent` of Key Vault | none in the record | `correlationId` (`x-ms-client-request-id`) |

mod azure;
mod cloudtrail;
mod gcp;
mod vault;

pub use azure::Azure;
pub use cloudtrail::CloudTrail;
pub use gcp::Gcp;
pub use vault::Vault;

use super::record::Normaliser;
use std::sync::Arc;

/// The formats `[[audit.ingest]] format = "…"` takes.
pub const FORMATS: &[&str] = &["vault", "cloudtrail", "gcp", "azure"];

pub fn normaliser(format: &str) -> Option<Arc<dyn Normaliser>> {
    Some(match format {
        "vault" => Arc::new(Vault),
        "cloudtrail" => Arc::new(CloudTrail),
        "gcp" => Arc::new(Gcp),
        "azure" => Arc::new(Azure),
        _ => return None,
    })
}

/// Whitespace runs as one space (multi-line error texts).
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
