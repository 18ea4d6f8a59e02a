//! The audit event and its hash chain.

use aws_lc_rs::digest;
use std::fmt;

/// ok: the call did what was asked; denied: authentication or policy refused it; error: it
/// failed (bad input, lifecycle, provider); intent: an admitted change is about to reach the
/// backend (its outcome event follows, under the same request id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    Error,
    Intent,
    /// A critical call opened an approval request instead of acting.
    PendingApproval,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Intent => "intent",
            Outcome::PendingApproval => "pending-approval",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, before the log gives it a place in the chain. Never holds plaintext, key
/// material or a token.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    pub time_ms: i64,
    pub source: String,
    pub actor: String,
    /// user | service-account | system | approver | ingester | anonymous
    pub actor_kind: String,
    pub action: String,
    pub key_id: String,
    pub key_name: String,
    pub key_version: u32,
    pub outcome: String,
    pub reason: String,
    /// The stable reason code of a failure (`KEY_DISABLED`, `PROVIDER_UNAVAILABLE`, …).
    pub error_reason: String,
    pub policy: String,
    pub request_id: String,
    pub provider_request_id: String,
    pub client_address: String,
    /// JSON object of extra facts.
    pub details: String,
    /// The client had gone (deadline passed, stream reset) before the call ended; the call
    /// ran to its end anyway.
    pub caller_gone: bool,
    /// The key as its provider names it (`hashivault://…`, `awskms:///arn:…`), so an event
    /// stands alone once the key is gone. Format 3.
    pub key_uri: String,
    /// Further backend request ids of the call, beside `provider_request_id` (they are also in
    /// `details`): indexed so that a provider's own record of any of them finds this event.
    /// Not a stored column and not hashed.
    pub more_provider_request_ids: Vec<String>,
}

/// A record with its place in the chain.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub sequence: u64,
    /// Which fields the hash covers ([`FORMAT`] for new events; 1 for events written before
    /// actor kinds, reason codes and caller presence were recorded, 2 before provider URIs).
    pub format: u8,
    pub record: AuditRecord,
    pub previous_hash: String,
    pub hash: String,
    /// For a provider's own record brought in by an ingester: which feed, the gateway event
    /// it belongs to, and whether it is a bypass finding. Derived (the same facts are in the
    /// hashed `details`); `None` for keygate's own events.
    pub link: Option<Link>,
}

/// How an ingested provider record relates to keygate's events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub feed: String,
    /// The gateway event of the call that made this request, when one did.
    pub gateway_sequence: Option<u64>,
    /// A request on a key keygate manages that no gateway call made: the key was used around
    /// keygate.
    pub bypass: bool,
}

/// The `previous_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash format new events are written in.
pub const FORMAT: u8 = 3;

/// SHA-256 over the sequence, the previous hash and every field the format covers, each
/// length-prefixed so no two different events encode alike.
pub fn chain_hash(format: u8, sequence: u64, previous_hash: &str, r: &AuditRecord) -> String {
    // The whole encoding goes to the digest in one call: forty small updates cost several
    // times the hashing itself, on the audit writer's single thread.
    let mut encoded = Vec::with_capacity(512 + r.reason.len() + r.details.len());
    let mut field = |bytes: &[u8]| {
        encoded.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        encoded.extend_from_slice(bytes);
    };
    match format {
        1 => field(b"keygate-audit-v1"),
        2 => {
            field(b"keygate-audit-v2");
            field(r.actor_kind.as_bytes());
            field(r.error_reason.as_bytes());
            field(&[u8::from(r.caller_gone)]);
        }
        _ => {
            field(b"keygate-audit-v3");
            field(r.actor_kind.as_bytes());
            field(r.error_reason.as_bytes());
            field(&[u8::from(r.caller_gone)]);
            field(r.key_uri.as_bytes());
        }
    }
    field(&sequence.to_be_bytes());
    field(previous_hash.as_bytes());
    field(&r.time_ms.to_be_bytes());
    for text in [&r.source, &r.actor, &r.action, &r.key_id, &r.key_name] {
        field(text.as_bytes());
    }
    field(&r.key_version.to_be_bytes());
    for text in [
        &r.outcome,
        &r.reason,
        &r.policy,
        &r.request_id,
        &r.provider_request_id,
        &r.client_address,
        &r.details,
    ] {
        field(text.as_bytes());
    }
    hex::encode(digest::digest(&digest::SHA256, &encoded).as_ref())
}

impl AuditEvent {
    pub fn seal(sequence: u64, previous_hash: String, record: AuditRecord) -> Self {
        let hash = chain_hash(FORMAT, sequence, &previous_hash, &record);
        Self {
            sequence,
            format: FORMAT,
            record,
            previous_hash,
            hash,
            link: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as format 1 always computed it, field by field into the digest: events
    /// written before keep verifying.
    fn format_1_reference(sequence: u64, previous_hash: &str, r: &AuditRecord) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut field = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        field(b"keygate-audit-v1");
        field(&sequence.to_be_bytes());
        field(previous_hash.as_bytes());
        field(&r.time_ms.to_be_bytes());
        for text in [&r.source, &r.actor, &r.action, &r.key_id, &r.key_name] {
            field(text.as_bytes());
        }
        field(&r.key_version.to_be_bytes());
        for text in [
            &r.outcome,
            &r.reason,
            &r.policy,
            &r.request_id,
            &r.provider_request_id,
            &r.client_address,
            &r.details,
        ] {
            field(text.as_bytes());
        }
        hex::encode(ctx.finish().as_ref())
    }

    #[test]
    fn format_1_hashes_as_before() {
        let r = AuditRecord {
            time_ms: 1_700_000_000_000,
            source: "gateway".into(),
            actor: "alice".into(),
            action: "Encrypt".into(),
            key_id: "0b5d3f3e-7a4e-4c61-9d1e-2f7b0b8a9c10".into(),
            key_name: "payments/card-dek".into(),
            key_version: 3,
            outcome: "ok".into(),
            policy: "allow by key-users-use-keys".into(),
            request_id: "01a23773-109e-76cb-8fde-99ad34f1ce85".into(),
            client_address: "127.0.0.1:5555".into(),
            details: "{\"valid\":true}".into(),
            ..Default::default()
        };
        assert_eq!(
            chain_hash(1, 42, GENESIS_HASH, &r),
            format_1_reference(42, GENESIS_HASH, &r)
        );
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let r = AuditRecord {
            actor: "alice".into(),
            action: "Encrypt".into(),
            ..Default::default()
        };
        let h = chain_hash(FORMAT, 1, GENESIS_HASH, &r);
        let mut other = r.clone();
        other.actor = "mallory".into();
        assert_ne!(h, chain_hash(FORMAT, 1, GENESIS_HASH, &other));
        assert_ne!(h, chain_hash(FORMAT, 2, GENESIS_HASH, &r));
        // The new fields are covered, and format 1 hashes as it always did.
        let mut gone = r.clone();
        gone.caller_gone = true;
        assert_ne!(h, chain_hash(FORMAT, 1, GENESIS_HASH, &gone));
        assert_ne!(h, chain_hash(1, 1, GENESIS_HASH, &r));
        assert_eq!(
            chain_hash(1, 1, GENESIS_HASH, &r),
            chain_hash(1, 1, GENESIS_HASH, &gone)
        );
        // Format 3 covers the provider URI; format 2 hashes as it did.
        let mut uri = r.clone();
        uri.key_uri = "hashivault://transit/keys/k".into();
        assert_ne!(h, chain_hash(FORMAT, 1, GENESIS_HASH, &uri));
        assert_eq!(
            chain_hash(2, 1, GENESIS_HASH, &r),
            chain_hash(2, 1, GENESIS_HASH, &uri)
        );
        // Moving bytes between adjacent fields must not collide.
        let a = AuditRecord {
            actor: "ab".into(),
            action: "c".into(),
            ..Default::default()
        };
        let b = AuditRecord {
            actor: "a".into(),
            action: "bc".into(),
            ..Default::default()
        };
        assert_ne!(
            chain_hash(FORMAT, 1, GENESIS_HASH, &a),
            chain_hash(FORMAT, 1, GENESIS_HASH, &b)
        );
    }
}
