//! One request for a critical action, from creation to its close.

use crate::policy::Action;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The change a request holds, with every parameter it runs with: what approvers approve is
/// exactly what runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PendingChange {
    ScheduleDestruction {
        window_seconds: u64,
        /// The key's BYOK copies too (a family destroyed as a whole). Left out of the
        /// serialised form when false, so requests made before it keep their digests.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        family: bool,
    },
    Disable,
    SetOwner {
        owner: String,
    },
    /// A forced retirement of the versions below `below`.
    RetireVersions {
        below: u32,
    },
    /// The adoption of a provider key keygate does not manage yet. The key is not in the
    /// catalog until the change runs, so the request's key id is the one the request
    /// reserves for it (the adopted key gets exactly that id), and its key name the name
    /// asked for.
    Adopt {
        provider: String,
        provider_uri: String,
        name: String,
        owner: String,
        purpose: String,
        algorithm: String,
        environment: String,
        crypto_period_seconds: u64,
        labels: BTreeMap<String, String>,
    },
}

impl PendingChange {
    pub fn action(&self) -> Action {
        match self {
            PendingChange::ScheduleDestruction { .. } => Action::ScheduleKeyDestruction,
            PendingChange::Disable => Action::DisableKey,
            PendingChange::SetOwner { .. } => Action::SetKeyOwner,
            PendingChange::RetireVersions { .. } => Action::RetireKeyVersions,
            PendingChange::Adopt { .. } => Action::AdoptKey,
        }
    }

    /// Whether the request's key id is one the request itself reserved (the key does not
    /// exist yet): asking for the same change again then reserves another id, so an open
    /// request for it is found by its change and requester rather than its digest.
    pub fn reserves_key_id(&self) -> bool {
        matches!(self, PendingChange::Adopt { .. })
    }

    /// The change in words, for people deciding on it.
    pub fn describe(&self) -> String {
        match self {
            PendingChange::ScheduleDestruction {
                window_seconds,
                family,
            } => format!(
                "schedule destruction{} after a pending window of {}",
                if *family {
                    " of the key and every BYOK copy of it"
                } else {
                    ""
                },
                crate::time::format_duration(std::time::Duration::from_secs(*window_seconds))
            ),
            PendingChange::Disable => "disable the key".into(),
            PendingChange::SetOwner { owner } => format!("hand the key to owner '{owner}'"),
            PendingChange::RetireVersions { below } => format!(
                "retire the versions below {below} although they were used within the quiet period"
            ),
            PendingChange::Adopt {
                provider,
                provider_uri,
                name,
                owner,
                environment,
                crypto_period_seconds,
                ..
            } => format!(
                "adopt {provider_uri} of provider '{provider}' as '{name}' ({environment}, owner '{owner}', crypto-period {})",
                crate::time::format_duration(std::time::Duration::from_secs(
                    *crypto_period_seconds
                ))
            ),
        }
    }

    /// The digest binding this change to its key, action and requester (hex SHA-256 of their
    /// canonical JSON): an approval is of this digest, and only a change with it runs.
    pub fn digest(&self, key_id: &str, requester: &str) -> String {
        #[derive(Serialize)]
        struct Bound<'a> {
            format: u32,
            action: &'a str,
            key_id: &'a str,
            requester: &'a str,
            change: &'a PendingChange,
        }
        let bound = Bound {
            format: 1,
            action: self.action().as_str(),
            key_id,
            requester,
            change: self,
        };
        // Serialising a struct of strings and integers cannot fail.
        let text = serde_json::to_vec(&bound).unwrap_or_default();
        hex::encode(digest::digest(&digest::SHA256, &text).as_ref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for approvals (until its expiry).
    Pending,
    /// The quorum approved; the change is being carried out.
    Approved,
    /// Approved and carried out.
    Executed,
    /// Approved; carrying it out failed (the outcome says why).
    Failed,
    Denied,
    Cancelled,
}

impl RequestState {
    pub const ALL: [RequestState; 6] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Executed,
        RequestState::Failed,
        RequestState::Denied,
        RequestState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Executed => "executed",
            RequestState::Failed => "failed",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub principal: String,
    pub at_ms: i64,
    /// The digest approved (the request's).
    pub digest: String,
    /// The approving call's request id (its audit event).
    pub call_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: String,
    pub key_id: String,
    pub key_name: String,
    pub environment: String,
    pub change: PendingChange,
    pub digest: String,
    pub requester: String,
    /// The request id of the call that opened it.
    pub request_call_id: String,
    /// Approvals needed when it was opened.
    pub quorum: u32,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub state: RequestState,
    pub approvals: Vec<Approval>,
    /// Who denied or cancelled it, or whose approval completed the quorum.
    pub closed_by: Option<String>,
    pub closed_at_ms: Option<i64>,
    /// Why it was denied or cancelled (the decider's words), or how its execution ended.
    pub outcome: Option<String>,
    /// The request id of the call that carried it out (its intent and outcome events).
    pub execution_call_id: Option<String>,
}

impl ApprovalRequest {
    pub fn action(&self) -> Action {
        self.change.action()
    }

    /// Pending and not past its expiry at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.state == RequestState::Pending && now_ms < self.expires_at_ms
    }

    /// The state, or `expired` for a pending request past its expiry.
    pub fn state_at(&self, now_ms: i64) -> &'static str {
        if self.state == RequestState::Pending && now_ms >= self.expires_at_ms {
            "expired"
        } else {
            self.state.as_str()
        }
    }

    pub fn approvers(&self) -> Vec<String> {
        self.approvals.iter().map(|a| a.principal.clone()).collect()
    }
}

/// What the approval that completed a quorum releases: the change, for its requester, with
/// who approved it. Only the approval store makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request_id: String,
    pub key_id: String,
    pub change: PendingChange,
    pub digest: String,
    pub requester: String,
    pub approvers: Vec<String>,
    /// The request id the change runs under.
    pub execution_call_id: String,
}

impl Grant {
    pub fn action(&self) -> Action {
        self.change.action()
    }

    /// Whether this grant covers `change` of `action` on `key_id`: the same action, key and
    /// digest.
    pub fn covers(&self, action: Action, key_id: &str, change: Option<&PendingChange>) -> bool {
        self.action() == action
            && self.key_id == key_id
            && change.is_some_and(|c| c.digest(key_id, &self.requester) == self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_binds_every_parameter() {
        let week = PendingChange::ScheduleDestruction {
            window_seconds: 7 * 86_400,
            family: false,
        };
        let day = PendingChange::ScheduleDestruction {
            window_seconds: 86_400,
            family: false,
        };
        let week_family = PendingChange::ScheduleDestruction {
            window_seconds: 7 * 86_400,
            family: true,
        };
        let d = week.digest("k1", "alice");
        assert_eq!(d, week.digest("k1", "alice"));
        assert_ne!(d, day.digest("k1", "alice"));
        assert_ne!(d, week_family.digest("k1", "alice"));
        assert_ne!(d, week.digest("k2", "alice"));
        assert_ne!(d, week.digest("k1", "bob"));
        let grant = Grant {
            request_id: "r".into(),
            key_id: "k1".into(),
            change: week.clone(),
            digest: d,
            requester: "alice".into(),
            approvers: vec!["bob".into(), "carol".into()],
            execution_call_id: "x".into(),
        };
        assert!(grant.covers(Action::ScheduleKeyDestruction, "k1", Some(&week)));
        assert!(!grant.covers(Action::ScheduleKeyDestruction, "k1", Some(&day)));
        assert!(!grant.covers(Action::ScheduleKeyDestruction, "k2", Some(&week)));
        assert!(!grant.covers(Action::DisableKey, "k1", Some(&PendingChange::Disable)));
        assert!(!grant.covers(Action::ScheduleKeyDestruction, "k1", None));
    }

    fn adoption(name: &str) -> PendingChange {
        PendingChange::Adopt {
            provider: "local".into(),
            provider_uri: "local://stray".into(),
            name: name.into(),
            owner: "svc-app".into(),
            purpose: "encrypt".into(),
            algorithm: "aes-256-gcm".into(),
            environment: "prod".into(),
            crypto_period_seconds: 86_400,
            labels: BTreeMap::from([("team".into(), "payments".into())]),
        }
    }

    #[test]
    fn an_adoption_binds_its_reserved_id_and_every_parameter() {
        let adopt = adoption("prod/stray");
        assert_eq!(adopt.action(), Action::AdoptKey);
        assert!(adopt.reserves_key_id());
        assert!(!PendingChange::Disable.reserves_key_id());
        let d = adopt.digest("reserved-1", "alice");
        assert_ne!(d, adopt.digest("reserved-2", "alice"));
        assert_ne!(d, adoption("prod/other").digest("reserved-1", "alice"));
        let mut relabelled = adoption("prod/stray");
        if let PendingChange::Adopt { labels, .. } = &mut relabelled {
            labels.insert("team".into(), "ledger".into());
        }
        assert_ne!(d, relabelled.digest("reserved-1", "alice"));
        assert!(adopt.describe().contains("local://stray"));
        assert!(adopt.describe().contains("prod/stray"));
    }
}
