//! Every operation of the [`crate::KeyProvider`] trait, by name.

use std::fmt;
use std::str::FromStr;

/// One trait operation. The guard, metrics and fault injection name operations with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    CreateKey,
    Describe,
    List,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    Sign,
    Verify,
    PublicKey,
    Mac,
    VerifyMac,
    Rotate,
    SetEnabled,
    RetireVersions,
    ScheduleDestroy,
    CancelDestroy,
    Destroy,
    ImportParameters,
    ImportKey,
    PrepareImport,
    CreateWrappableKey,
    WrapForImport,
    SettingConflicts,
    OwnRotation,
    EncryptBatch,
    DecryptBatch,
}

impl Op {
    pub const ALL: [Op; 26] = [
        Op::CreateKey,
        Op::Describe,
        Op::List,
        Op::Encrypt,
        Op::Decrypt,
        Op::GenerateDataKey,
        Op::Sign,
        Op::Verify,
        Op::PublicKey,
        Op::Mac,
        Op::VerifyMac,
        Op::Rotate,
        Op::SetEnabled,
        Op::RetireVersions,
        Op::ScheduleDestroy,
        Op::CancelDestroy,
        Op::Destroy,
        Op::ImportParameters,
        Op::ImportKey,
        Op::PrepareImport,
        Op::CreateWrappableKey,
        Op::WrapForImport,
        Op::SettingConflicts,
        Op::OwnRotation,
        Op::EncryptBatch,
        Op::DecryptBatch,
    ];

    /// The stable snake_case name: the trait method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::CreateKey => "create_key",
            Op::Describe => "describe",
            Op::List => "list",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::GenerateDataKey => "generate_data_key",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::PublicKey => "public_key",
            Op::Mac => "mac",
            Op::VerifyMac => "verify_mac",
            Op::Rotate => "rotate",
            Op::SetEnabled => "set_enabled",
            Op::RetireVersions => "retire_versions",
            Op::ScheduleDestroy => "schedule_destroy",
            Op::CancelDestroy => "cancel_destroy",
            Op::Destroy => "destroy",
            Op::ImportParameters => "import_parameters",
            Op::ImportKey => "import_key",
            Op::PrepareImport => "prepare_import",
            Op::CreateWrappableKey => "create_wrappable_key",
            Op::WrapForImport => "wrap_for_import",
            Op::SettingConflicts => "setting_conflicts",
            Op::OwnRotation => "own_rotation",
            Op::EncryptBatch => "encrypt_batch",
            Op::DecryptBatch => "decrypt_batch",
        }
    }

    /// Whether running the operation twice leaves the backend as running it once, so a
    /// failed attempt may be retried. Creating, rotating, importing and every step of
    /// destruction are not: a retry after a lost reply would make a second key or version, or
    /// act twice on a deadline the backend keeps.
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Op::CreateKey
                | Op::Rotate
                | Op::ScheduleDestroy
                | Op::CancelDestroy
                | Op::Destroy
                | Op::ImportKey
                | Op::PrepareImport
                | Op::CreateWrappableKey
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no operation of the trait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation '{0}': expected one of {names}", names = Op::ALL.map(Op::as_str).join(", "))]
pub struct UnknownOp(pub String);

impl FromStr for Op {
    type Err = UnknownOp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(op.as_str().parse::<Op>(), Ok(op));
        }
        let err = "rotate_key".parse::<Op>().unwrap_err().to_string();
        assert!(
            err.contains("rotate_key") && err.contains("create_key"),
            "{err}"
        );
    }

    #[test]
    fn changes_that_make_or_destroy_things_are_not_idempotent() {
        let not: Vec<Op> = Op::ALL.into_iter().filter(|o| !o.is_idempotent()).collect();
        assert_eq!(
            not,
            [
                Op::CreateKey,
                Op::Rotate,
                Op::ScheduleDestroy,
                Op::CancelDestroy,
                Op::Destroy,
                Op::ImportKey,
                Op::PrepareImport,
                Op::CreateWrappableKey
            ]
        );
    }
}
