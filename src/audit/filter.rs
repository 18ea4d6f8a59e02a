//! What a query or a tail asks for, and the page tokens that continue a query.

use super::event::AuditEvent;
use super::store::After;

/// Query and tail filters; `None` (or `false`) matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// A key as the caller named it: keygate name or id, or a provider URI.
    pub key: Option<String>,
    /// The keygate id of `key`, when the catalog knows it (the query resolves it).
    pub key_id: Option<String>,
    pub actor: Option<String>,
    /// The operation (`Encrypt`, `CreateKey`, …; provider records are named alike).
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// A keygate request id or a backend's request id.
    pub request_id: Option<String>,
    /// gateway | vault | aws-kms | gcp-kms | azure-keyvault | pkcs11
    pub source: Option<String>,
    /// Only bypass findings: provider records of managed keys that no gateway call made.
    pub bypass: bool,
    /// Only events whose details contain this text (an HMAC from `keygate audit hash`).
    pub contains: Option<String>,
    /// Only events after this sequence (for readers following the log).
    pub after_sequence: Option<u64>,
    /// Newest first (a person looking at recent activity); oldest first otherwise. Queries
    /// only: a tail is always in the order events are written.
    pub newest_first: bool,
}

impl AuditFilter {
    /// Whether a live event matches (for Tail; time bounds do not apply there).
    pub fn matches(&self, e: &AuditEvent) -> bool {
        let r = &e.record;
        let key_matches = |k: &String| match &self.key_id {
            Some(id) => &r.key_id == id,
            None => &r.key_id == k || &r.key_name == k || &r.key_uri == k,
        };
        self.key.as_ref().is_none_or(key_matches)
            && self.actor.as_ref().is_none_or(|a| &r.actor == a)
            && self.action.as_ref().is_none_or(|a| &r.action == a)
            && self.outcome.as_ref().is_none_or(|o| &r.outcome == o)
            && self
                .request_id
                .as_ref()
                .is_none_or(|i| &r.request_id == i || &r.provider_request_id == i)
            && self.source.as_ref().is_none_or(|s| &r.source == s)
            && (!self.bypass || e.link.as_ref().is_some_and(|l| l.bypass))
            && self
                .contains
                .as_ref()
                .is_none_or(|c| r.details.contains(c.as_str()))
            && self.after_sequence.is_none_or(|s| e.sequence > s)
    }

    /// The filters as text, the scope of this query's page tokens, so a token is only used
    /// with the query that issued it.
    fn scope(&self) -> String {
        // Not `key_id`: it is resolved from `key` on each page, after the token is checked.
        format!(
            "audit|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}",
            self.start_ms,
            self.end_ms,
            self.key,
            self.actor,
            self.action,
            self.outcome,
            self.request_id,
            self.source,
            self.bypass,
            self.contains,
            self.after_sequence,
            self.newest_first
        )
    }

    /// The token that continues this query after `last`.
    pub fn page_token(&self, last: &AuditEvent) -> String {
        crate::page_token::issue(
            &self.scope(),
            &format!("{}.{}", last.record.time_ms, last.sequence),
        )
    }

    /// Where a page starts; `Err` says why the token is not one of this query's.
    pub fn parse_token(&self, token: &str) -> Result<Option<After>, &'static str> {
        let Some(position) = crate::page_token::open(&self.scope(), token)? else {
            return Ok(None);
        };
        let (time, seq) = position
            .split_once('.')
            .ok_or(crate::page_token::NOT_ISSUED)?;
        let (Ok(time_ms), Ok(sequence)) = (time.parse::<i64>(), seq.parse::<u64>()) else {
            return Err(crate::page_token::NOT_ISSUED);
        };
        Ok(Some(After { time_ms, sequence }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    #[test]
    fn tokens_continue_only_their_own_query() {
        let f = AuditFilter {
            key: Some("k".into()),
            ..Default::default()
        };
        let e = AuditEvent::seal(
            7,
            crate::audit::GENESIS_HASH.into(),
            AuditRecord {
                time_ms: 1234,
                ..Default::default()
            },
        );
        let token = f.page_token(&e);
        assert_eq!(
            f.parse_token(&token),
            Ok(Some(After {
                time_ms: 1234,
                sequence: 7
            }))
        );
        let other = AuditFilter {
            key: Some("j".into()),
            ..Default::default()
        };
        assert!(other.parse_token(&token).is_err());
        assert!(f.parse_token("1000").is_err());
        assert_eq!(f.parse_token(""), Ok(None));
    }
}
