//! What a checkpoint signs, and checking a signature with the public key alone.
//!
//! The signed statement is plain text, so any verifier can rebuild it:
//!
//! ```text
//! keygate audit checkpoint v1
//! sequence 1234
//! head 5f1c…(64 hex)
//! time 1767225600000
//! previous 0000…(64 hex: SHA-256 of the previous checkpoint's statement, zeros for the first)
//! key 0b5d3f3e-… 1
//! ```

use crate::audit::store::Checkpoint;
use aws_lc_rs::{digest, signature};

/// `previous_digest` of the first checkpoint.
pub const NO_PREVIOUS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The algorithms a checkpoint may be signed with.
pub const SIGNING_ALGORITHMS: &[&str] = &[
    "ecdsa-p256",
    "ecdsa-p384",
    "ed25519",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-4096-pss",
    "rsa-2048-pkcs1",
    "rsa-3072-pkcs1",
    "rsa-4096-pkcs1",
];

pub fn statement(cp: &Checkpoint) -> Vec<u8> {
    format!(
        "keygate audit checkpoint v1\nsequence {}\nhead {}\ntime {}\nprevious {}\nkey {} {}\n",
        cp.sequence, cp.head_hash, cp.time_ms, cp.previous_digest, cp.key_id, cp.key_version
    )
    .into_bytes()
}

/// What the next checkpoint names as its previous one.
pub fn digest_of(cp: &Checkpoint) -> String {
    hex::encode(digest::digest(&digest::SHA256, &statement(cp)).as_ref())
}

/// A short fingerprint of a public key (SHA-256 of its SPKI, first 16 hex digits).
pub fn fingerprint(spki: &[u8]) -> String {
    hex::encode(&digest::digest(&digest::SHA256, spki).as_ref()[..8])
}

/// Checks `cp`'s signature with its recorded public key, which must be one of `trusted`.
pub fn check(cp: &Checkpoint, trusted: &[Vec<u8>]) -> Result<(), String> {
    if !trusted.iter().any(|k| k == &cp.public_key) {
        return Err(if trusted.is_empty() {
            format!(
                "checkpoint {} cannot be checked: no trusted audit signing public key is known",
                cp.sequence
            )
        } else {
            format!(
                "checkpoint {} is signed by key {} (version {}, fingerprint {}), which is not a trusted audit signing key",
                cp.sequence,
                cp.key_name,
                cp.key_version,
                fingerprint(&cp.public_key)
            )
        });
    }
    let bits = keygate_provider::spki_public_key_bits(&cp.public_key).ok_or_else(|| {
        format!(
            "checkpoint {}'s public key is not a DER SubjectPublicKeyInfo",
            cp.sequence
        )
    })?;
    let algorithm: &'static dyn signature::VerificationAlgorithm = match cp.algorithm.as_str() {
        "ecdsa-p256" => &signature::ECDSA_P256_SHA256_ASN1,
        "ecdsa-p384" => &signature::ECDSA_P384_SHA384_ASN1,
        "ed25519" => &signature::ED25519,
        a if a.starts_with("rsa-") && a.ends_with("-pss") => &signature::RSA_PSS_2048_8192_SHA256,
        a if a.starts_with("rsa-") && a.ends_with("-pkcs1") => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        other => {
            return Err(format!(
                "checkpoint {} names signature algorithm '{other}', which keygate does not sign checkpoints with",
                cp.sequence
            ));
        }
    };
    signature::UnparsedPublicKey::new(algorithm, bits)
        .verify(&statement(cp), &cp.signature)
        .map_err(|_| {
            format!(
                "checkpoint {}'s signature does not verify: the checkpoint was altered or forged",
                cp.sequence
            )
        })
}

/// Checkpoint signatures this process has verified. A signature checked once need not be
/// checked again by the same process, so an incremental verification costs the checkpoints
/// since the last one, not all of them. Held in memory only, never stored: it is no trust that
/// someone with write access to the database could give.
#[derive(Default)]
pub struct Verified(std::sync::Mutex<std::collections::HashSet<[u8; 32]>>);

impl Verified {
    /// [`check`], remembering what passed.
    pub fn check(&self, cp: &Checkpoint, trusted: &[Vec<u8>]) -> Result<(), String> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in [statement(cp), cp.signature.clone(), cp.public_key.clone()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(&part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        let known = trusted.iter().any(|k| k == &cp.public_key)
            && self.0.lock().is_ok_and(|seen| seen.contains(&key));
        if known {
            return Ok(());
        }
        check(cp, trusted)?;
        if let Ok(mut seen) = self.0.lock() {
            seen.insert(key);
        }
        Ok(())
    }
}

/// Public keys from PEM text (`-----BEGIN PUBLIC KEY-----` blocks, any number).
pub fn public_keys_from_pem(text: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    let mut keys = Vec::new();
    let mut inside = false;
    let mut b64 = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN PUBLIC KEY-----" {
            inside = true;
            b64.clear();
        } else if line == "-----END PUBLIC KEY-----" {
            inside = false;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("a PUBLIC KEY block is not base64: {e}"))?;
            if keygate_provider::spki_public_key_bits(&der).is_none() {
                return Err("a PUBLIC KEY block is not a SubjectPublicKeyInfo".into());
            }
            keys.push(der);
        } else if inside {
            b64.push_str(line);
        }
    }
    if keys.is_empty() {
        return Err("no -----BEGIN PUBLIC KEY----- block found".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _};

    fn spki_p256(point: &[u8]) -> Vec<u8> {
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }
        let alg = hex::decode("301306072a8648ce3d020106082a8648ce3d030107").unwrap();
        let mut bits = vec![0x03, (point.len() + 1) as u8, 0x00];
        bits.extend_from_slice(point);
        let mut body = alg;
        body.extend_from_slice(&bits);
        let mut out = vec![0x30, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_is_refused() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .unwrap();
        let mut cp = Checkpoint {
            sequence: 10,
            head_hash: "ab".repeat(32),
            time_ms: 1,
            previous_digest: NO_PREVIOUS.into(),
            key_id: "id".into(),
            key_name: "keygate/audit-checkpoints".into(),
            key_version: 1,
            algorithm: "ecdsa-p256".into(),
            public_key: spki_p256(pair.public_key().as_ref()),
            signature: Vec::new(),
        };
        cp.signature = pair.sign(&rng, &statement(&cp)).unwrap().as_ref().to_vec();
        let trusted = vec![cp.public_key.clone()];
        assert_eq!(check(&cp, &trusted), Ok(()));
        let mut moved = cp.clone();
        moved.sequence = 11;
        assert!(
            check(&moved, &trusted)
                .unwrap_err()
                .contains("does not verify")
        );
        assert!(check(&cp, &[]).unwrap_err().contains("no trusted"));
        assert!(
            check(&cp, &[vec![1, 2, 3]])
                .unwrap_err()
                .contains("not a trusted")
        );
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cp.public_key)
        );
        assert_eq!(public_keys_from_pem(&pem).unwrap(), trusted);
        assert!(public_keys_from_pem("nothing").is_err());
    }
}
