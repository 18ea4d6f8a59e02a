//! Version retirement: versions below a key's floor no longer decrypt or verify, in keygate
//! and, where the provider has the notion, on the provider itself.

use crate::catalog::KeyRecord;
use crate::gateway::GatewayError;

/// Refuses a use of `version` of `key` that retirement has ended.
pub fn check_version(key: &KeyRecord, version: u32) -> Result<(), GatewayError> {
    if version < key.retired_below {
        return Err(GatewayError::VersionRetired {
            key: key.name.clone(),
            version,
            floor: key.retired_below,
        });
    }
    Ok(())
}
