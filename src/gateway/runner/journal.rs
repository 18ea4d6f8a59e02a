//! The facts a call's audit event records, gathered as the runner and the operation learn
//! them, and the two appends: the intent (admin operations, before the provider is called)
//! and the outcome (every call).

use super::call::{Actor, Call};
use crate::audit::{AuditLog, AuditRecord, Outcome};
use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;
use crate::policy::Action;
use crate::telemetry::Telemetry;
use tracing::field::display;
use tracing::{Instrument as _, Span};

pub struct Journal {
    record: AuditRecord,
    details: serde_json::Map<String, serde_json::Value>,
    span: Span,
    /// The provider instance the call reached, for the call metrics.
    provider: String,
    opened: std::time::Instant,
}

impl Journal {
    pub fn open(call: &Call, action: Action, span: Span) -> Self {
        // Recording into a span no subscriber listens to still costs; skip it then.
        let span = if span.is_disabled() {
            Span::none()
        } else {
            span
        };
        Journal {
            record: AuditRecord {
                source: "gateway".into(),
                actor: "anonymous".into(),
                actor_kind: "anonymous".into(),
                action: action.as_str().into(),
                request_id: call.request_id.clone(),
                client_address: call.client_address.clone(),
                ..Default::default()
            },
            details: serde_json::Map::new(),
            span,
            provider: String::new(),
            opened: std::time::Instant::now(),
        }
    }

    pub fn actor(&mut self, actor: &Actor) {
        self.record.actor = actor.name();
        self.record.actor_kind = actor.kind().into();
        self.span.record("principal", display(&self.record.actor));
    }

    pub fn key(&mut self, key: &KeyRecord) {
        self.record.key_id = key.id.clone();
        self.record.key_name = key.name.clone();
        self.record.key_uri = key.provider_uri.as_str().to_owned();
        self.span.record("key", display(&key.name));
        self.provider(&key.provider);
    }

    /// A key about to be created: the id it gets, so its intent event is found with it.
    pub fn new_key(&mut self, id: &str, name: &str) {
        self.record.key_id = id.to_string();
        self.key_name(name);
    }

    /// A key named but not (yet) in the catalog.
    pub fn key_name(&mut self, name: &str) {
        self.record.key_name = crate::gateway::validate::truncate(name, 200);
        self.span.record("key", display(&self.record.key_name));
    }

    pub fn provider(&mut self, name: &str) {
        self.span.record("provider", display(name));
        if self.provider != name {
            name.clone_into(&mut self.provider);
        }
    }

    pub fn version(&mut self, version: u32) {
        self.record.key_version = version;
    }

    pub fn policy(&mut self, summary: String) {
        self.record.policy = summary;
    }

    /// The request ids the backends answered with, in order: the first is the event's
    /// provider request id; a call that made several requests lists them all in its details.
    pub fn backend_request_ids(&mut self, ids: Vec<String>) {
        let Some(first) = ids.first() else { return };
        self.record.provider_request_id = first.clone();
        if ids.len() > 1 {
            self.details
                .insert("provider_request_ids".into(), ids.clone().into());
            // Indexed beside the event, so a provider's record of any of them finds the call.
            self.record.more_provider_request_ids = ids[1..].to_vec();
        }
    }

    pub fn detail(&mut self, name: &str, value: serde_json::Value) {
        self.details.insert(name.to_string(), value);
    }

    fn seal(
        mut record: AuditRecord,
        details: &serde_json::Map<String, serde_json::Value>,
        outcome: Outcome,
    ) -> AuditRecord {
        record.time_ms = crate::time::now_ms();
        record.outcome = outcome.as_str().into();
        if !details.is_empty() {
            // A map serialises as the object it is, without a copy into a Value.
            record.details = serde_json::to_string(details).unwrap_or_default();
        }
        record
    }

    /// The intent event: durable before the provider is asked to change anything, so an
    /// attempt is on record even if the gateway dies before the outcome.
    pub async fn intent(&self, audit: &AuditLog) -> Result<(), GatewayError> {
        let record = Self::seal(self.record.clone(), &self.details, Outcome::Intent);
        audit.append(record).await?;
        Ok(())
    }

    /// The outcome event, durable before the result is handed back. A result that cannot be
    /// audited is not returned. A denied call past its client address's flood threshold is
    /// counted into that address's aggregate instead (`audit::flood`). (The call's task runs
    /// inside the journal's span, so these log lines carry its request id.)
    pub async fn finish<T>(
        mut self,
        audit: &AuditLog,
        telemetry: &Telemetry,
        result: Result<T, GatewayError>,
        caller_gone: bool,
    ) -> Result<T, GatewayError> {
        // A concealed refusal is audited as what it is and answered as what it shows.
        let (real, result) = match result {
            Err(GatewayError::Concealed { shown, real }) => (Some(*real), Err(*shown)),
            other => (None, other),
        };
        let outcome = match (&real, &result) {
            (Some(e), _) | (None, Err(e)) => {
                self.record.reason = e.to_string();
                self.record.error_reason = e.reason().into();
                e.outcome()
            }
            (None, Ok(_)) => Outcome::Ok,
        };
        self.record.caller_gone = caller_gone;
        let action = self.record.action.clone();
        let record = Self::seal(self.record, &self.details, outcome);
        let committed = audit.append_call(record).instrument(tracing::info_span!(
            target: crate::telemetry::otlp::SPANS,
            "audit",
            keygate.outcome = %outcome.as_str(),
        ));
        let result = match committed.await {
            Ok(_) => {
                match &result {
                    Ok(_) => tracing::debug!(caller_gone, "call ok"),
                    Err(e) => {
                        tracing::debug!(reason = e.reason(), caller_gone, error = %e, "call failed")
                    }
                }
                result
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed; refusing the call");
                Err(GatewayError::Audit(e))
            }
        };
        // Counted as answered: a concealed refusal as what it shows, with no provider.
        let reason = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        let provider = if real.is_some() { "" } else { &self.provider };
        telemetry.call(&action, provider, reason, self.opened.elapsed());
        result
    }
}
