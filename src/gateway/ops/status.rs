//! GetGatewayStatus (`keygate status`): what an operator checks first — the providers and
//! their circuit breakers, the policy set in force, whether the audit log takes writes and
//! its newest signed checkpoint. Nothing secret: names, states and hashes.

use super::policy::{PolicyStatus, status};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;

pub struct GetGatewayStatus;

pub struct ProviderHealth {
    pub name: String,
    pub default: bool,
    /// closed | half-open | open
    pub breaker: &'static str,
}

pub struct GatewayStatus {
    pub version: &'static str,
    pub providers: Vec<ProviderHealth>,
    pub policy: PolicyStatus,
    pub audit_writable: bool,
    /// The newest signed checkpoint: (sequence, head hash, when).
    pub checkpoint: Option<(u64, String, i64)>,
}

impl Operation for GetGatewayStatus {
    type Output = GatewayStatus;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetGatewayStatus
    }

    fn target(&self) -> Target<'_> {
        Target::Policies
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<GatewayStatus, GatewayError> {
        let checkpoint = cx
            .audit_log()
            .checkpoints()
            .await?
            .into_iter()
            .max_by_key(|c| c.sequence)
            .map(|c| (c.sequence, c.head_hash, c.time_ms));
        Ok(GatewayStatus {
            version: env!("CARGO_PKG_VERSION"),
            providers: cx
                .provider_health()
                .into_iter()
                .map(|(name, default, breaker)| ProviderHealth {
                    name,
                    default,
                    breaker,
                })
                .collect(),
            policy: status(cx),
            audit_writable: cx.audit_writable(),
            checkpoint,
        })
    }
}
