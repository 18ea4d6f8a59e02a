//! Which operations a key's state allows, and the rules of crypto-periods and destruction
//! windows.

pub mod scheduler;

use crate::catalog::{KeyRecord, KeyState};
use crate::gateway::GatewayError;
use crate::policy::Action;
use keygate_provider::KeyPurpose;
use std::time::Duration;

/// Limits from configuration.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    pub min_crypto_period: Duration,
    pub max_crypto_period: Duration,
    pub min_destruction_window: Duration,
    pub max_destruction_window: Duration,
    pub default_destruction_window: Duration,
    pub scan_interval: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            min_crypto_period: Duration::from_secs(86_400),
            max_crypto_period: Duration::from_secs(10 * 365 * 86_400),
            min_destruction_window: Duration::from_secs(7 * 86_400),
            max_destruction_window: Duration::from_secs(365 * 86_400),
            default_destruction_window: Duration::from_secs(30 * 86_400),
            scan_interval: Duration::from_secs(60),
        }
    }
}

/// The purpose an action needs, for actions that use key material.
pub fn required_purpose(action: Action) -> Option<KeyPurpose> {
    match action {
        Action::Encrypt | Action::Decrypt | Action::GenerateDataKey | Action::ReEncrypt => {
            Some(KeyPurpose::Encrypt)
        }
        Action::Sign | Action::Verify | Action::GetPublicKey => Some(KeyPurpose::Sign),
        Action::GenerateMac | Action::VerifyMac => Some(KeyPurpose::Mac),
        _ => None,
    }
}

/// Refuses `action` on `key` when its state or purpose does not allow it.
pub fn check(action: Action, key: &KeyRecord) -> Result<(), GatewayError> {
    let refuse = |why: String| Err(GatewayError::FailedPrecondition(why));
    let name = &key.name;
    match (action, key.state) {
        (Action::GetKey, _) => Ok(()),
        (_, KeyState::Destroyed) => refuse(format!(
            "key '{name}' was destroyed; nothing can be done with it"
        )),
        (Action::CancelKeyDestruction, KeyState::PendingDestruction) => Ok(()),
        (Action::CancelKeyDestruction, state) => refuse(format!(
            "key '{name}' is {state}, not pending destruction; there is nothing to cancel"
        )),
        (Action::ScheduleKeyDestruction, KeyState::PendingDestruction) => {
            refuse(format!("key '{name}' is already pending destruction"))
        }
        (_, KeyState::PendingDestruction) => refuse(format!(
            "key '{name}' is pending destruction; cancel the destruction (CancelKeyDestruction) to use it again"
        )),
        (Action::EnableKey | Action::DisableKey | Action::ScheduleKeyDestruction, _) => Ok(()),
        (_, KeyState::Disabled) => refuse(format!(
            "key '{name}' is disabled; enable it (EnableKey) to use it"
        )),
        (_, KeyState::Enabled) => {
            if let Some(purpose) = required_purpose(action)
                && purpose != key.purpose
            {
                return refuse(format!(
                    "key '{name}' is a {} key ({}); {} needs a {purpose} key",
                    key.purpose,
                    key.algorithm,
                    action.as_str()
                ));
            }
            Ok(())
        }
    }
}
