//! SetKeyOwner: hands a key to another owner, a configured person or service account (rule
//! 1). Critical by default, so it normally runs only once approvers agree.

use crate::approvals::PendingChange;
use crate::catalog::KeyRecord;
use crate::gateway::runner::{Changes, Exec, Operation, Settings, Target};
use crate::gateway::{GatewayError, validate};
use crate::policy::{Action, OperationFacts};
use std::sync::Arc;

pub struct SetKeyOwner {
    pub key: String,
    pub owner: String,
}

impl Operation for SetKeyOwner {
    type Output = Arc<KeyRecord>;
    type Mode = Changes;

    fn action(&self) -> Action {
        Action::SetKeyOwner
    }

    fn check(&mut self, _: &Settings<'_>) -> Result<(), GatewayError> {
        validate::owner(&self.owner)
    }

    fn target(&self) -> Target<'_> {
        Target::Key {
            field: "key",
            key: &self.key,
        }
    }

    fn policy_context(&self, facts: &mut OperationFacts) {
        facts.new_owner = Some(self.owner.clone());
    }

    fn pending_change(&self) -> Option<PendingChange> {
        Some(PendingChange::SetOwner {
            owner: self.owner.clone(),
        })
    }

    fn ready(&self, cx: &Exec<'_, Changes>) -> Result<(), GatewayError> {
        let key = cx.key()?;
        if key.owner == self.owner {
            return Err(GatewayError::invalid(
                "owner",
                format!("key '{}' is already owned by '{}'", key.name, self.owner),
            ));
        }
        Ok(())
    }

    async fn execute(self, cx: &mut Exec<'_, Changes>) -> Result<Arc<KeyRecord>, GatewayError> {
        let key = cx.key()?.clone();
        cx.detail("previous_owner", key.owner.clone());
        cx.detail("owner", self.owner.clone());
        cx.set_owner(&key.owner, &self.owner).await
    }
}
