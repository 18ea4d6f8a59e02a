//! The background work that follows from each key's dates: rotation when the crypto-period
//! ends, destruction when the pending window ends.

use crate::gateway::Gateway;
use std::sync::Arc;
use std::time::Duration;

/// Runs until the gateway shuts down.
pub async fn run(gateway: Arc<Gateway>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let done = gateway.run_due_work(crate::time::now_ms()).await;
        if done.rotated + done.destroyed + done.failed > 0 {
            tracing::info!(
                rotated = done.rotated,
                destroyed = done.destroyed,
                failed = done.failed,
                "scheduled key work"
            );
        }
    }
}
