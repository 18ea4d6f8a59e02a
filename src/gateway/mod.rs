//! The gateway: every call is an [`ops`] value that the [`runner`] executes through one
//! pipeline:
//!
//! 1. authenticate — bearer token (or keygate itself) → [`Actor`];
//! 2. check — input checks that need no key (sizes, names, formats);
//! 3. resolve — key name, id or ciphertext → catalog record (under the key's lock for admin
//!    operations);
//! 4. authorize — Cedar decides Allow, Deny or NeedsApproval (a critical change then opens an
//!    approval request instead of executing; `approved.rs` runs it once approvers agree);
//! 5. lifecycle — the key's state and purpose allow the action;
//! 6. execute — provider calls and catalog changes (admin operations first write an intent
//!    event);
//! 7. audit — the outcome event, durable before the reply leaves; if it cannot be written the
//!    call fails closed.
//!
//! The gateway takes and returns domain types; `server` converts protobuf at the edge.

mod approved;
pub mod audit_services;
pub mod envelope;
mod error;
pub mod ops;
mod policy_watch;
pub mod runner;
mod scheduled;
pub mod validate;

pub use error::GatewayError;
pub use runner::{Actor, Call, Credentials, Gateway, SystemTask};
pub use scheduled::ScheduledWork;

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_plaintext_bytes: usize,
    pub max_associated_data_bytes: usize,
    /// The longest an admitted call's work may take, all provider calls included.
    pub call_timeout: std::time::Duration,
    /// Calls running at once, those whose clients left included; more are refused.
    pub max_calls_in_flight: usize,
    /// Tail streams one principal may keep open at once.
    pub max_tail_streams_per_principal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_plaintext_bytes: 64 * 1024,
            max_associated_data_bytes: 8 * 1024,
            call_timeout: std::time::Duration::from_secs(10),
            max_calls_in_flight: 10_000,
            max_tail_streams_per_principal: 4,
        }
    }
}

/// A fresh request id: a UUIDv7, so ids sort by time and the audit log's request-id index
/// grows at its end instead of dirtying a random page on every append.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v7_in_time_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_request_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        // Sorted as text too: the audit index on request_id only ever grows at its end.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
    }
}
