use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a key is for. A key is used only for its purpose; anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPurpose {
    Encrypt,
    Sign,
    Mac,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Encrypt => "encrypt",
            KeyPurpose::Sign => "sign",
            KeyPurpose::Mac => "mac",
        }
    }
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyPurpose {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "encrypt" => Ok(KeyPurpose::Encrypt),
            "sign" => Ok(KeyPurpose::Sign),
            "mac" => Ok(KeyPurpose::Mac),
            other => Err(UnknownAlgorithm(format!(
                "unknown key purpose '{other}': expected one of encrypt, sign, mac"
            ))),
        }
    }
}

/// One lower-case vocabulary of algorithms across every provider. Each provider maps these to
/// its own names (AWS `ECC_NIST_P256`, Vault `ecdsa-p256`, GCP `EC_SIGN_P256_SHA256`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "rsa-2048-oaep")]
    Rsa2048Oaep,
    #[serde(rename = "rsa-3072-oaep")]
    Rsa3072Oaep,
    #[serde(rename = "rsa-4096-oaep")]
    Rsa4096Oaep,
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "rsa-2048-pss")]
    Rsa2048Pss,
    #[serde(rename = "rsa-3072-pss")]
    Rsa3072Pss,
    #[serde(rename = "rsa-4096-pss")]
    Rsa4096Pss,
    #[serde(rename = "rsa-2048-pkcs1")]
    Rsa2048Pkcs1,
    #[serde(rename = "rsa-3072-pkcs1")]
    Rsa3072Pkcs1,
    #[serde(rename = "rsa-4096-pkcs1")]
    Rsa4096Pkcs1,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

/// An algorithm or purpose name that is not in keygate's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownAlgorithm(pub String);

impl Algorithm {
    pub const ALL: [Algorithm; 15] = [
        Algorithm::Aes256Gcm,
        Algorithm::ChaCha20Poly1305,
        Algorithm::Rsa2048Oaep,
        Algorithm::Rsa3072Oaep,
        Algorithm::Rsa4096Oaep,
        Algorithm::EcdsaP256,
        Algorithm::EcdsaP384,
        Algorithm::Ed25519,
        Algorithm::Rsa2048Pss,
        Algorithm::Rsa3072Pss,
        Algorithm::Rsa4096Pss,
        Algorithm::Rsa2048Pkcs1,
        Algorithm::Rsa3072Pkcs1,
        Algorithm::Rsa4096Pkcs1,
        Algorithm::HmacSha256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::ChaCha20Poly1305 => "chacha20-poly1305",
            Algorithm::Rsa2048Oaep => "rsa-2048-oaep",
            Algorithm::Rsa3072Oaep => "rsa-3072-oaep",
            Algorithm::Rsa4096Oaep => "rsa-4096-oaep",
            Algorithm::EcdsaP256 => "ecdsa-p256",
            Algorithm::EcdsaP384 => "ecdsa-p384",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa2048Pss => "rsa-2048-pss",
            Algorithm::Rsa3072Pss => "rsa-3072-pss",
            Algorithm::Rsa4096Pss => "rsa-4096-pss",
            Algorithm::Rsa2048Pkcs1 => "rsa-2048-pkcs1",
            Algorithm::Rsa3072Pkcs1 => "rsa-3072-pkcs1",
            Algorithm::Rsa4096Pkcs1 => "rsa-4096-pkcs1",
            Algorithm::HmacSha256 => "hmac-sha256",
        }
    }

    pub fn purpose(self) -> KeyPurpose {
        use Algorithm::*;
        match self {
            Aes256Gcm | ChaCha20Poly1305 | Rsa2048Oaep | Rsa3072Oaep | Rsa4096Oaep => {
                KeyPurpose::Encrypt
            }
            EcdsaP256 | EcdsaP384 | Ed25519 | Rsa2048Pss | Rsa3072Pss | Rsa4096Pss
            | Rsa2048Pkcs1 | Rsa3072Pkcs1 | Rsa4096Pkcs1 => KeyPurpose::Sign,
            HmacSha256 => KeyPurpose::Mac,
        }
    }

    /// Symmetric algorithms have no public key.
    pub fn is_symmetric(self) -> bool {
        matches!(
            self,
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 | Algorithm::HmacSha256
        )
    }

    /// RSA modulus size in bits, for RSA algorithms.
    pub fn rsa_bits(self) -> Option<u32> {
        use Algorithm::*;
        match self {
            Rsa2048Oaep | Rsa2048Pss | Rsa2048Pkcs1 => Some(2048),
            Rsa3072Oaep | Rsa3072Pss | Rsa3072Pkcs1 => Some(3072),
            Rsa4096Oaep | Rsa4096Pss | Rsa4096Pkcs1 => Some(4096),
            _ => None,
        }
    }

    /// The digest a signature algorithm signs: SHA-256 everywhere except P-384 (SHA-384) and
    /// Ed25519 (which signs the message itself).
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Algorithm::EcdsaP384 => Some(48),
            Algorithm::Ed25519 => None,
            a if a.purpose() == KeyPurpose::Sign => Some(32),
            _ => None,
        }
    }

    /// The largest plaintext one Encrypt call takes with this algorithm (RSA-OAEP-SHA256 is
    /// bounded by the modulus; symmetric keys by keygate's own limit, applied by the gateway).
    pub fn max_plaintext(self) -> Option<usize> {
        self.rsa_bits()
            .filter(|_| self.purpose() == KeyPurpose::Encrypt)
            .map(|bits| bits as usize / 8 - 2 * 32 - 2)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                UnknownAlgorithm(format!(
                    "unknown algorithm '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
        }
    }

    #[test]
    fn unknown_name_lists_the_vocabulary() {
        let err = "aes128".parse::<Algorithm>().unwrap_err();
        assert!(err.0.contains("aes128") && err.0.contains("aes-256-gcm"));
    }

    #[test]
    fn oaep_limit_follows_modulus() {
        assert_eq!(Algorithm::Rsa2048Oaep.max_plaintext(), Some(190));
        assert_eq!(Algorithm::Aes256Gcm.max_plaintext(), None);
    }
}
