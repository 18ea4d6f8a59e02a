//! Reloading the policies when their folder changes: each change is a ReloadPolicies call
//! by the system, audited like one from the API; a bad set is refused (logged, audited, and
//! kept in the policy status) while the last good one stays in force.

use super::ops::ReloadPolicies;
use super::{Call, Gateway, GatewayError, SystemTask};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Gateway {
    /// Looks at the policy folder every `every` until `stop`; nothing to do for the
    /// built-in policies.
    pub async fn watch_policies(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let fingerprint = |gateway: Arc<Gateway>| async move {
            tokio::task::spawn_blocking(move || gateway.policies().fingerprint())
                .await
                .ok()
                .flatten()
        };
        let Some(mut seen) = fingerprint(self.clone()).await else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let Some(now) = fingerprint(self.clone()).await else {
                return;
            };
            if now == seen {
                continue;
            }
            match self
                .run(Call::system(SystemTask::PolicyReload), ReloadPolicies)
                .await
            {
                Ok(status) => {
                    seen = now;
                    tracing::info!(
                        policies = status.policies.len(),
                        "the policy folder changed; its policies are in force"
                    )
                }
                // A refused set is reported once; the folder must change again to retry.
                Err(e @ GatewayError::PolicyInvalid(_)) => {
                    seen = now;
                    tracing::error!(
                        error = %e,
                        "the policy folder changed, but its policies were refused; the previous ones stay in force"
                    )
                }
                // The reload did not run (shutting down, audit unavailable): try again next time.
                Err(e) => tracing::warn!(
                    error = %e,
                    "the policy folder changed, but the reload could not run; retrying"
                ),
            }
        }
    }
}
