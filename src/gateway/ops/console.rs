//! ConsoleSignIn: a token given to the web console's sign-in form, authenticated and
//! authorized like any call (policy decides who may use the console) and audited, failed
//! sign-ins included.

use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;

pub struct ConsoleSignIn;

/// Who signed in.
pub struct SignedIn {
    pub principal: String,
}

impl Operation for ConsoleSignIn {
    type Output = SignedIn;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::ConsoleSignIn
    }

    fn target(&self) -> Target<'_> {
        Target::Posture
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<SignedIn, GatewayError> {
        Ok(SignedIn {
            principal: cx.actor_name(),
        })
    }
}
