//! The background inventory scan, started beside the rotation scheduler wherever background
//! jobs run (`keygate serve`).

use crate::gateway::ops::ScanPosture;
use crate::gateway::{Call, Gateway, SystemTask};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Scans every `interval` until `stop` is cancelled; a scan under way finishes first. The
/// first scan runs one interval after start, so a restart loop does not hammer the backends.
pub async fn run(gateway: Arc<Gateway>, interval: Duration, stop: CancellationToken) {
    if interval.is_zero() {
        return;
    }
    let start = tokio::time::Instant::now() + interval;
    let mut tick = tokio::time::interval_at(start, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match gateway
            .run(Call::system(SystemTask::PostureScan), ScanPosture)
            .await
        {
            Ok(scan) => tracing::info!(
                scan = scan.scan_id,
                keys = scan.keys,
                unmanaged = scan.unmanaged,
                opened = scan.opened,
                closed = scan.closed,
                "inventory scan"
            ),
            Err(e) => tracing::warn!(error = %e, "inventory scan failed"),
        }
    }
}
