//! What a posture scan reads from the audit log for the rules that come from it: the bypass
//! records and the successful gateway calls on keys within the audit window.
//!
//! Both reads are bounded ([`MAX_EVENTS`] each, oldest first): a window holding more is read
//! up to the bound and the evidence says so, rather than letting one scan walk an unbounded
//! log. A deployment that busy wants a shorter `[posture] audit_window`.

use crate::audit::store::After;
use crate::audit::{AuditEvent, AuditFilter};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Mode};
use crate::posture::usage::{BypassRecord, KeyUse};

/// Events one read takes at most.
const MAX_EVENTS: usize = 200_000;
const PAGE: u32 = 1000;

/// The audit window as the rules read it.
#[derive(Default)]
pub struct AuditWindow {
    pub bypasses: Vec<BypassRecord>,
    pub uses: Vec<KeyUse>,
    /// A read stopped at [`MAX_EVENTS`].
    pub truncated: bool,
}

/// The caller kinds whose calls are uses by a principal (not keygate's own work).
const CALLERS: &[&str] = &["user", "service-account"];

pub async fn read<M: Mode>(cx: &Exec<'_, M>, since_ms: i64) -> Result<AuditWindow, GatewayError> {
    let mut window = AuditWindow::default();
    let bypass = AuditFilter {
        start_ms: Some(since_ms),
        bypass: true,
        ..Default::default()
    };
    let mut bypasses = Vec::new();
    let cut = each(cx, &bypass, |e| {
        let r = &e.record;
        if !r.key_id.is_empty() {
            bypasses.push(BypassRecord {
                key_id: r.key_id.clone(),
                time_ms: r.time_ms,
                source: r.source.clone(),
                action: r.action.clone(),
                actor: r.actor.clone(),
                provider_request_id: r.provider_request_id.clone(),
                client_address: r.client_address.clone(),
            });
        }
    })
    .await?;
    window.bypasses = bypasses;
    window.truncated |= cut;
    let calls = AuditFilter {
        start_ms: Some(since_ms),
        source: Some("gateway".into()),
        outcome: Some("ok".into()),
        ..Default::default()
    };
    let mut uses = Vec::new();
    let cut = each(cx, &calls, |e| {
        let r = &e.record;
        if !r.key_id.is_empty() && CALLERS.contains(&r.actor_kind.as_str()) {
            uses.push(KeyUse {
                key_id: r.key_id.clone(),
                time_ms: r.time_ms,
                actor: r.actor.clone(),
                client_address: r.client_address.clone(),
            });
        }
    })
    .await?;
    window.uses = uses;
    window.truncated |= cut;
    Ok(window)
}

/// Calls `f` on each event matching `filter`, oldest first; true when the read stopped at
/// its bound.
async fn each<M: Mode>(
    cx: &Exec<'_, M>,
    filter: &AuditFilter,
    mut f: impl FnMut(&AuditEvent),
) -> Result<bool, GatewayError> {
    let mut after = None;
    let mut read = 0usize;
    loop {
        let events = cx.audit_log().query(filter, after, PAGE).await?;
        read += events.len();
        events.iter().for_each(&mut f);
        match events.last() {
            Some(last) if events.len() == PAGE as usize => {
                if read >= MAX_EVENTS {
                    return Ok(true);
                }
                after = Some(After {
                    time_ms: last.record.time_ms,
                    sequence: last.sequence,
                });
            }
            _ => return Ok(false),
        }
    }
}
