//! keygate's self-describing ciphertext:
//!
//! ```text
//! "kg" | format version (1 byte) | key id (16 bytes, UUID) | key version (u32 BE) | provider blob
//! ```
//!
//! Decrypt needs nothing else. For symmetric keys the 23-byte header is bound into the
//! provider's associated data, so changing the key id or version in it breaks authentication.

use super::GatewayError;

const MAGIC: &[u8; 2] = b"kg";
const FORMAT_V1: u8 = 1;
pub const HEADER_LEN: usize = 2 + 1 + 16 + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub key_id: uuid::Uuid,
    pub key_version: u32,
    pub header: &'a [u8],
    pub blob: &'a [u8],
}

pub fn header(key_id: &str, key_version: u32) -> Result<[u8; HEADER_LEN], GatewayError> {
    let id = uuid::Uuid::parse_str(key_id)
        .map_err(|_| GatewayError::Internal(format!("key id '{key_id}' is not a UUID")))?;
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(MAGIC);
    h[2] = FORMAT_V1;
    h[3..19].copy_from_slice(id.as_bytes());
    h[19..23].copy_from_slice(&key_version.to_be_bytes());
    Ok(h)
}

pub fn seal(header: &[u8; HEADER_LEN], blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + blob.len());
    out.extend_from_slice(header);
    out.extend_from_slice(blob);
    out
}

pub fn open(ciphertext: &[u8]) -> Result<Envelope<'_>, GatewayError> {
    let invalid = |m: String| Err(GatewayError::CiphertextMalformed(m));
    if ciphertext.len() < 2 || &ciphertext[..2] != MAGIC {
        return invalid(
            "ciphertext is not a keygate ciphertext (it does not start with the keygate marker)"
                .into(),
        );
    }
    if ciphertext.len() <= HEADER_LEN {
        return invalid(format!(
            "ciphertext is truncated: {} bytes, shorter than a keygate header ({HEADER_LEN} bytes) plus a body",
            ciphertext.len()
        ));
    }
    if ciphertext[2] != FORMAT_V1 {
        return invalid(format!(
            "ciphertext format version {} is not supported by this gateway (it reads version {FORMAT_V1})",
            ciphertext[2]
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&ciphertext[3..19]);
    let mut version = [0u8; 4];
    version.copy_from_slice(&ciphertext[19..23]);
    Ok(Envelope {
        key_id: uuid::Uuid::from_bytes(id),
        key_version: u32::from_be_bytes(version),
        header: &ciphertext[..HEADER_LEN],
        blob: &ciphertext[HEADER_LEN..],
    })
}

/// The associated data a provider sees: the header (binding key and version) then the
/// caller's bytes.
pub fn bound_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + aad.len());
    out.extend_from_slice(header);
    out.extend_from_slice(aad);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let id = uuid::Uuid::new_v4().to_string();
        let h = header(&id, 7).unwrap();
        let ct = seal(&h, b"blob");
        let env = open(&ct).unwrap();
        assert_eq!(env.key_id.to_string(), id);
        assert_eq!(env.key_version, 7);
        assert_eq!(env.blob, b"blob");
        assert!(open(b"").is_err());
        assert!(open(b"xx").is_err());
        assert!(open(&ct[..HEADER_LEN]).is_err());
        let mut bad = ct.clone();
        bad[2] = 9;
        assert!(open(&bad).unwrap_err().to_string().contains("version 9"));
    }
}
