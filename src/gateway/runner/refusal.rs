//! Calls refused before their request body is read: the transport authenticates a call from
//! its headers alone (`server::early_auth`), and one that does not authenticate is run here
//! through the runner like any other call, so it is audited on the same path (flood
//! aggregation, the caller-gone mark, the completion of abandoned calls) and answered with
//! the same error, while the body it sent is never decoded.

use super::operation::{Reads, Target};
use super::{Call, Exec, Gateway, Operation};
use crate::gateway::GatewayError;
use crate::policy::Action;
use std::sync::Arc;

impl Gateway {
    /// Whether `call`'s credentials name a principal: no side effects, nothing audited.
    pub fn authenticates(&self, call: &Call) -> bool {
        self.authenticate(call).is_ok()
    }

    /// Runs an unauthenticated `call` of `action` through the runner: audited, then answered
    /// with its authentication error.
    pub async fn refuse_unauthenticated(
        self: &Arc<Self>,
        call: Call,
        action: Action,
    ) -> GatewayError {
        match self.run(call, Unauthenticated(action)).await {
            Err(e) => e,
            // The credentials authenticated on the second look; `check` refused it anyway.
            Ok(never) => match never {},
        }
    }
}

/// An operation that only a call whose authentication fails ever runs: authentication, the
/// runner's first step, ends it before `check`.
struct Unauthenticated(Action);

enum Never {}

impl Operation for Unauthenticated {
    type Output = Never;
    type Mode = Reads;

    fn action(&self) -> Action {
        self.0
    }

    fn check(&mut self, _: &super::Settings<'_>) -> Result<(), GatewayError> {
        // Reached only if the token table accepted on the runner's look what it refused on
        // the transport's; the body is gone, so the call cannot go ahead.
        Err(GatewayError::Internal(
            "the call's credentials were refused before its body was read; retry it".into(),
        ))
    }

    fn target(&self) -> Target<'_> {
        Target::Catalog
    }

    async fn execute(self, _: &mut Exec<'_, Reads>) -> Result<Never, GatewayError> {
        Err(GatewayError::Internal(
            "an unauthenticated call reached execution".into(),
        ))
    }
}
