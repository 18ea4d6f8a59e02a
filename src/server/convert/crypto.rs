//! Encryption, signing and MACs.

use crate::gateway::ops;
use crate::pb;
use keygate_provider::SecretBytes;

impl From<pb::EncryptRequest> for ops::Encrypt {
    fn from(r: pb::EncryptRequest) -> Self {
        ops::Encrypt {
            key: r.key,
            // Into a zeroizing buffer at once.
            plaintext: SecretBytes::new(r.plaintext),
            associated_data: r.associated_data,
        }
    }
}

impl From<ops::Sealed> for pb::EncryptResponse {
    fn from(s: ops::Sealed) -> Self {
        pb::EncryptResponse {
            ciphertext: s.ciphertext,
            key_id: s.key_id,
            key_version: s.key_version,
        }
    }
}

impl From<pb::DecryptRequest> for ops::Decrypt {
    fn from(r: pb::DecryptRequest) -> Self {
        ops::Decrypt {
            ciphertext: r.ciphertext,
            associated_data: r.associated_data,
        }
    }
}

impl From<ops::Opened> for pb::DecryptResponse {
    fn from(o: ops::Opened) -> Self {
        pb::DecryptResponse {
            plaintext: o.plaintext.into_unprotected(),
            key_id: o.key_id,
            key_name: o.key_name,
            key_version: o.key_version,
        }
    }
}

impl From<pb::GenerateDataKeyRequest> for ops::GenerateDataKey {
    fn from(r: pb::GenerateDataKeyRequest) -> Self {
        ops::GenerateDataKey {
            key: r.key,
            length_bytes: r.length_bytes,
            associated_data: r.associated_data,
            without_plaintext: r.without_plaintext,
        }
    }
}

impl From<ops::DataKeyOut> for pb::GenerateDataKeyResponse {
    fn from(d: ops::DataKeyOut) -> Self {
        pb::GenerateDataKeyResponse {
            plaintext: d
                .plaintext
                .map(SecretBytes::into_unprotected)
                .unwrap_or_default(),
            ciphertext: d.ciphertext,
            key_id: d.key_id,
            key_version: d.key_version,
        }
    }
}

impl From<pb::ReEncryptRequest> for ops::ReEncrypt {
    fn from(r: pb::ReEncryptRequest) -> Self {
        ops::ReEncrypt {
            ciphertext: r.ciphertext,
            source_associated_data: r.source_associated_data,
            destination_key: r.destination_key,
            destination_associated_data: r.destination_associated_data,
        }
    }
}

impl From<ops::ReSealed> for pb::ReEncryptResponse {
    fn from(r: ops::ReSealed) -> Self {
        pb::ReEncryptResponse {
            ciphertext: r.ciphertext,
            source_key_id: r.source_key_id,
            source_key_version: r.source_key_version,
            key_id: r.key_id,
            key_version: r.key_version,
        }
    }
}

impl From<pb::SignRequest> for ops::Sign {
    fn from(r: pb::SignRequest) -> Self {
        ops::Sign {
            key: r.key,
            payload: r.input.map(|i| match i {
                pb::sign_request::Input::Message(m) => ops::Payload::Message(m),
                pb::sign_request::Input::Digest(d) => ops::Payload::Digest(d),
            }),
        }
    }
}

impl From<ops::Signature> for pb::SignResponse {
    fn from(s: ops::Signature) -> Self {
        pb::SignResponse {
            signature: s.signature,
            key_id: s.key_id,
            key_version: s.key_version,
            algorithm: s.algorithm,
        }
    }
}

impl From<pb::VerifyRequest> for ops::Verify {
    fn from(r: pb::VerifyRequest) -> Self {
        ops::Verify {
            key: r.key,
            payload: r.input.map(|i| match i {
                pb::verify_request::Input::Message(m) => ops::Payload::Message(m),
                pb::verify_request::Input::Digest(d) => ops::Payload::Digest(d),
            }),
            signature: r.signature,
            key_version: r.key_version,
        }
    }
}

impl From<ops::Verification> for pb::VerifyResponse {
    fn from(v: ops::Verification) -> Self {
        pb::VerifyResponse {
            valid: v.valid,
            key_version: v.key_version,
        }
    }
}

impl From<pb::GetPublicKeyRequest> for ops::GetPublicKey {
    fn from(r: pb::GetPublicKeyRequest) -> Self {
        ops::GetPublicKey {
            key: r.key,
            key_version: r.key_version,
        }
    }
}

impl From<ops::PublicKey> for pb::GetPublicKeyResponse {
    fn from(p: ops::PublicKey) -> Self {
        pb::GetPublicKeyResponse {
            der: p.der,
            pem: p.pem,
            algorithm: p.algorithm,
            key_version: p.key_version,
        }
    }
}

impl From<pb::GetPublicKeySetRequest> for ops::GetPublicKeySet {
    fn from(r: pb::GetPublicKeySetRequest) -> Self {
        ops::GetPublicKeySet { key: r.key }
    }
}

impl From<ops::PublicKeySet> for pb::PublicKeySet {
    fn from(s: ops::PublicKeySet) -> Self {
        pb::PublicKeySet {
            key_id: s.key_id,
            primary_version: s.primary_version,
            keys: s
                .keys
                .into_iter()
                .map(|k| pb::PublishedKey {
                    version: k.version,
                    status: k.status.into(),
                    pem: k.pem,
                    kid: k.kid,
                })
                .collect(),
            jwks: s.jwks,
        }
    }
}

impl From<pb::GenerateMacRequest> for ops::GenerateMac {
    fn from(r: pb::GenerateMacRequest) -> Self {
        ops::GenerateMac {
            key: r.key,
            message: r.message,
        }
    }
}

impl From<ops::Mac> for pb::GenerateMacResponse {
    fn from(m: ops::Mac) -> Self {
        pb::GenerateMacResponse {
            mac: m.mac,
            key_id: m.key_id,
            key_version: m.key_version,
        }
    }
}

impl From<pb::VerifyMacRequest> for ops::VerifyMac {
    fn from(r: pb::VerifyMacRequest) -> Self {
        ops::VerifyMac {
            key: r.key,
            message: r.message,
            mac: r.mac,
            key_version: r.key_version,
        }
    }
}

impl From<ops::Verification> for pb::VerifyMacResponse {
    fn from(v: ops::Verification) -> Self {
        pb::VerifyMacResponse {
            valid: v.valid,
            key_version: v.key_version,
        }
    }
}
