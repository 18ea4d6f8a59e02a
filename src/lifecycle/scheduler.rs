//! The background work that follows from each key's dates: rotation when the crypto-period
//! ends, destruction when the pending window ends.

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
    }
}
