//! How keygate names its objects on the token, so a restarted gateway finds them again.
//!
//! Every object of a key (the secret key, or both halves of a key pair, for every version)
//! has CKA_LABEL = the keygate key id. CKA_ID is per version:
//!
//! ```text
//! "kg" ‖ SHA-256(key id)[..8] ‖ algorithm code (1 byte) ‖ version (u32, big-endian)
//! ```
//!
//! The fingerprint tells keygate's objects from foreign ones that reuse a label; the algorithm
//! code keeps `rsa-2048-pss` and `rsa-2048-oaep` apart (the key type alone cannot, and the
//! usage flags change when a key is disabled). `provider_version` is the CKA_ID in hex.

use crate::mechanisms;
use keygate_provider::Algorithm;

const MARKER: &[u8; 2] = b"kg";
const LEN: usize = 2 + 8 + 1 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionId {
    pub algorithm: Algorithm,
    pub version: u32,
    fingerprint: [u8; 8],
}

fn fingerprint(key_id: &str) -> [u8; 8] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_id.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

impl VersionId {
    pub fn new(key_id: &str, algorithm: Algorithm, version: u32) -> Self {
        Self {
            algorithm,
            version,
            fingerprint: fingerprint(key_id),
        }
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(MARKER);
        out.extend_from_slice(&self.fingerprint);
        out.push(mechanisms::algorithm_code(self.algorithm));
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Decodes a CKA_ID; `None` for objects keygate did not create.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LEN || &bytes[..2] != MARKER {
            return None;
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..10]);
        let algorithm = mechanisms::algorithm_from_code(bytes[10])?;
        let mut v = [0u8; 4];
        v.copy_from_slice(&bytes[11..15]);
        Some(Self {
            algorithm,
            version: u32::from_be_bytes(v),
            fingerprint: fp,
        })
    }

    pub fn parse_hex(text: &str) -> Option<Self> {
        Self::parse(&hex::decode(text).ok()?)
    }

    /// Whether this id belongs to the key with this id (and label).
    pub fn belongs_to(&self, key_id: &str) -> bool {
        self.fingerprint == fingerprint(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_ownership() {
        let id = VersionId::new("payments/card-dek", Algorithm::Rsa2048Oaep, 7);
        let parsed = VersionId::parse_hex(&id.to_hex()).expect("parses");
        assert_eq!(parsed, id);
        assert!(parsed.belongs_to("payments/card-dek"));
        assert!(!parsed.belongs_to("other"));
        assert_eq!(VersionId::parse(b"\x01\x02"), None);
    }
}
