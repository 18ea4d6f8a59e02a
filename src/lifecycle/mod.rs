//! Which operations a key's state allows, and the rules of crypto-periods and destruction
//! windows.

pub mod destruction;
pub mod retirement;
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
    /// The window version usage is counted over (GetKey with usage).
    pub usage_window: Duration,
    /// A version used within this is not retired unless forced.
    pub retirement_quiet_period: Duration,
    /// A key with a version read within this is not scheduled for destruction.
    pub destruction_quiet_period: Duration,
    /// How long a staged signing version is published before it becomes the primary.
    pub signing_propagation_delay: Duration,
    /// Shortest time to live a short-lived key may have.
    pub min_ttl: Duration,
    /// How long past a key's rotation date the scheduler leaves the rotation to a backend
    /// that rotates the key by itself; then keygate rotates it (and the key was overdue).
    pub provider_rotation_grace: Duration,
    /// The key (name or id) the Kubernetes KMS plugin serves (`[kms_plugin] key`): its
    /// versions retire only with force.
    pub kms_plugin_key: Option<String>,
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
            usage_window: Duration::from_secs(30 * 86_400),
            retirement_quiet_period: Duration::from_secs(30 * 86_400),
            destruction_quiet_period: Duration::from_secs(30 * 86_400),
            signing_propagation_delay: Duration::from_secs(86_400),
            min_ttl: Duration::from_secs(60),
            provider_rotation_grace: Duration::from_secs(86_400),
            kms_plugin_key: None,
        }
    }
}

/// The purpose an action needs, for actions that use key material.
pub fn required_purpose(action: Action) -> Option<KeyPurpose> {
    match action {
        Action::Encrypt | Action::Decrypt | Action::GenerateDataKey | Action::ReEncrypt => {
            Some(KeyPurpose::Encrypt)
        }
        Action::Sign | Action::Verify | Action::GetPublicKey | Action::SignAuditCheckpoint => {
            Some(KeyPurpose::Sign)
        }
        Action::GenerateMac | Action::VerifyMac => Some(KeyPurpose::Mac),
        _ => None,
    }
}

/// Refuses `action` on `key` when its state or purpose does not allow it.
pub fn check(action: Action, key: &KeyRecord) -> Result<(), GatewayError> {
    let name = || key.name.clone();
    match (action, key.state) {
        // Reading a key, or deciding on a request for it: the change itself is checked when
        // it runs.
        (
            Action::GetKey
            | Action::ListDestructionRecords
            | Action::ApproveRequest
            | Action::DenyRequest
            | Action::CancelRequest,
            _,
        ) => Ok(()),
        (_, KeyState::Destroyed) => Err(GatewayError::KeyDestroyed(name())),
        // A short-lived key is destroyed when its TTL ends, whatever its state.
        (Action::DestroyKey, _)
            if key
                .expires_at_ms
                .is_some_and(|t| t <= crate::time::now_ms()) =>
        {
            Ok(())
        }
        (Action::CancelKeyDestruction | Action::DestroyKey, KeyState::PendingDestruction) => Ok(()),
        (Action::CancelKeyDestruction | Action::DestroyKey, state) => {
            Err(GatewayError::NotPendingDestruction {
                key: name(),
                state: state.to_string(),
            })
        }
        (Action::ScheduleKeyDestruction, KeyState::PendingDestruction) => {
            Err(GatewayError::AlreadyPendingDestruction(name()))
        }
        (_, KeyState::PendingDestruction) => Err(GatewayError::KeyPendingDestruction(name())),
        (
            Action::EnableKey
            | Action::DisableKey
            | Action::ScheduleKeyDestruction
            | Action::SetKeyOwner
            | Action::RetireKeyVersions,
            _,
        ) => Ok(()),
        (_, KeyState::Disabled) => Err(GatewayError::KeyDisabled(name())),
        (_, KeyState::Enabled) => match required_purpose(action) {
            Some(needs) if needs != key.purpose => Err(GatewayError::WrongPurpose {
                key: name(),
                purpose: key.purpose.to_string(),
                algorithm: key.algorithm.to_string(),
                action,
                needs: needs.to_string(),
            }),
            _ => Ok(()),
        },
    }
}
