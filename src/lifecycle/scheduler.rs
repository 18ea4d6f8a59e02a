//! The background work that follows from each key's dates: rotation when the crypto-period
//! ends, destruction when the pending window ends; and closing approved changes whose
//! execution a stopped replica left unfinished.

use crate::gateway::Gateway;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until `stop` is cancelled; an operation under way then finishes first (it is never cut
/// off between its provider call and its catalog change).
pub async fn run(gateway: Arc<Gateway>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let done = gateway.run_due_work(crate::time::now_ms(), &stop).await;
        if done.rotated + done.destroyed + done.failed + done.left_to_provider > 0 {
            tracing::info!(
                rotated = done.rotated,
                left_to_provider = done.left_to_provider,
                destroyed = done.destroyed,
                failed = done.failed,
                "scheduled key work"
            );
        }
        close_stale_approvals(&gateway).await;
    }
}

/// The least time after its approval an approved change must still be unfinished to count as
/// abandoned: several times the call timeout its execution runs under, with room for replicas'
/// clocks to differ (the approval time is the approving replica's clock).
const STALE_APPROVAL_FLOOR: Duration = Duration::from_secs(600);

/// How long after its approval an unfinished change is taken as abandoned by a replica that
/// stopped while carrying it out: its execution ends within the call timeout, so a live one
/// never lasts four of them.
pub fn stale_approval_after(call_timeout: Duration) -> Duration {
    (call_timeout * 4).max(STALE_APPROVAL_FLOOR)
}

/// Closes approved requests left unfinished (the leader alone: one replica does it). On
/// SQLite start-up closes them already; this finds none there but costs one UPDATE.
async fn close_stale_approvals(gateway: &Gateway) {
    let now = crate::time::now_ms();
    let after = stale_approval_after(gateway.call_timeout());
    let before = now.saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
    match gateway.approval_store().close_stale(before, now).await {
        Ok(closed) if !closed.is_empty() => tracing::warn!(
            requests = ?closed,
            "approved changes were still not carried out long after their approval (the replica carrying them out stopped); their requests are closed as failed (see their execution calls' audit events)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot close abandoned approved changes"),
    }
}
