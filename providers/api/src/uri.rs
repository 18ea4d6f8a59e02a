use serde::{Deserialize, Serialize};
use std::fmt;

/// A provider's name for a key: `local://NAME`, `awskms:///arn:…`, `hashivault://MOUNT/keys/NAME`,
/// `pkcs11:token=…;object=…`, `gcpkms://projects/…`, `azurekms://HOST/keys/NAME`.
///
/// The gateway stores it opaquely; only the provider that minted it interprets it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyUri(String);

impl KeyUri {
    pub fn new(uri: impl Into<String>) -> Self {
        Self(uri.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `scheme://`, if the URI has that scheme.
    pub fn strip_scheme(&self, scheme: &str) -> Option<&str> {
        self.0
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
