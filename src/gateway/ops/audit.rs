//! The audit feed: Query, Tail, Verify. Reading the log is itself audited.

use crate::audit::{AuditEvent, AuditFilter, VerifyReport};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Settings, Target};
use crate::policy::Action;
use std::sync::Arc;
use tokio::sync::broadcast;

pub struct AuditQuery {
    pub filter: AuditFilter,
    /// 0: 100; at most 1000.
    pub page_size: u32,
    pub page_token: String,
}

pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_page_token: String,
}

impl AuditQuery {
    fn after(&self) -> Result<u64, GatewayError> {
        if self.page_token.is_empty() {
            return Ok(0);
        }
        self.page_token.parse::<u64>().map_err(|_| {
            GatewayError::invalid("page_token", "page_token is not one this gateway issued")
        })
    }
}

impl Operation for AuditQuery {
    type Output = AuditPage;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditQuery
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        self.after().map(|_| ())
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<AuditPage, GatewayError> {
        let after = self.after()?;
        let page_size = super::page_size(self.page_size);
        let events = cx.audit_log().query(&self.filter, after, page_size).await?;
        let next_page_token = if events.len() == page_size as usize {
            events
                .last()
                .map(|e| e.sequence.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        cx.detail("returned", events.len());
        Ok(AuditPage {
            events,
            next_page_token,
        })
    }
}

/// A live subscription: committed events, filtered.
pub struct Tail {
    pub filter: AuditFilter,
    pub events: broadcast::Receiver<Arc<AuditEvent>>,
}

pub struct AuditTail {
    pub filter: AuditFilter,
}

impl Operation for AuditTail {
    type Output = Tail;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditTail
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<Tail, GatewayError> {
        Ok(Tail {
            filter: self.filter,
            events: cx.audit_log().subscribe(),
        })
    }
}

pub struct AuditVerify;

impl Operation for AuditVerify {
    type Output = VerifyReport;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::AuditVerify
    }

    fn target(&self) -> Target<'_> {
        Target::AuditLog
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<VerifyReport, GatewayError> {
        let report = cx.audit_log().verify().await?;
        cx.detail("chain_ok", report.ok);
        cx.detail("events_checked", report.events_checked);
        Ok(report)
    }
}
