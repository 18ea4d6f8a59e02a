//! A signing key's published public keys: every version that still verifies, marked primary,
//! staged or previous, and the same as an RFC 7517 JWK Set for verifiers (JWT libraries) to
//! fetch. A staged version is listed from the moment it exists, so verifiers know it before
//! its first signature.

use crate::catalog::{KeyRecord, VersionRecord};
use crate::gateway::GatewayError;
use crate::gateway::runner::{Exec, Operation, Reads, Target};
use crate::policy::Action;
use base64::Engine as _;
use keygate_provider::{Algorithm, KeyPurpose};
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

pub struct GetPublicKeySet {
    pub key: String,
}

/// One published version.
pub struct PublishedKey {
    pub version: u32,
    /// primary | staged | previous
    pub status: &'static str,
    pub pem: String,
    pub kid: String,
}

pub struct PublicKeySet {
    pub key_id: String,
    pub primary_version: u32,
    /// Newest first.
    pub keys: Vec<PublishedKey>,
    pub jwks: String,
}

impl Operation for GetPublicKeySet {
    type Output = PublicKeySet;
    type Mode = Reads;

    fn action(&self) -> Action {
        Action::GetPublicKey
    }

    fn target(&self) -> Target<'_> {
        super::key_target(&self.key)
    }

    async fn execute(self, cx: &mut Exec<'_, Reads>) -> Result<PublicKeySet, GatewayError> {
        let key = cx.key()?.clone();
        if key.purpose != KeyPurpose::Sign {
            return Err(GatewayError::invalid(
                "key",
                format!(
                    "key '{}' does not sign: only signing keys publish a public key set",
                    key.name
                ),
            ));
        }
        let primary = key.primary().version;
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        // Retired versions no longer verify, so they are no longer published.
        for version in key
            .versions
            .iter()
            .rev()
            .filter(|v| v.version >= key.retired_below)
        {
            let info = cx.public_key(&key, version).await?;
            let kid = kid(&key, version);
            jwks.push(jwk(key.algorithm, &info.spki_der, &kid)?);
            keys.push(PublishedKey {
                version: version.version,
                status: match version.version {
                    v if v == primary => "primary",
                    v if v > primary => "staged",
                    _ => "previous",
                },
                pem: super::signing::pem(&info.spki_der),
                kid,
            });
        }
        cx.detail("versions_published", keys.len());
        Ok(PublicKeySet {
            key_id: key.id.clone(),
            primary_version: primary,
            keys,
            jwks: json!({ "keys": jwks }).to_string(),
        })
    }
}

/// The JWK `kid` of a version: the key id and the version, stable across renames.
fn kid(key: &KeyRecord, version: &VersionRecord) -> String {
    format!("{}:v{}", key.id, version.version)
}

/// The JWK (RFC 7517/7518/8037) for a SubjectPublicKeyInfo of `algorithm`.
fn jwk(algorithm: Algorithm, spki_der: &[u8], kid: &str) -> Result<Value, GatewayError> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let bad = |what: &str| {
        GatewayError::Internal(format!(
            "the provider's public key for {kid} is not a valid {what} SubjectPublicKeyInfo"
        ))
    };
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| bad("DER"))?;
    let (alg, mut value) = match algorithm {
        Algorithm::EcdsaP256 | Algorithm::EcdsaP384 => {
            let (crv, alg, size) = if algorithm == Algorithm::EcdsaP256 {
                ("P-256", "ES256", 32)
            } else {
                ("P-384", "ES384", 48)
            };
            let Ok(PublicKey::EC(point)) = spki.parsed() else {
                return Err(bad("EC"));
            };
            // Uncompressed: 0x04 || X || Y.
            let data = point.data();
            if data.len() != 1 + 2 * size || data[0] != 4 {
                return Err(bad(crv));
            }
            let (x, y) = data[1..].split_at(size);
            (
                alg,
                json!({ "kty": "EC", "crv": crv, "x": b64(x), "y": b64(y) }),
            )
        }
        Algorithm::Ed25519 => {
            let x = spki.subject_public_key.data.as_ref();
            if x.len() != 32 {
                return Err(bad("Ed25519"));
            }
            (
                "EdDSA",
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(x) }),
            )
        }
        Algorithm::Rsa2048Pss
        | Algorithm::Rsa3072Pss
        | Algorithm::Rsa4096Pss
        | Algorithm::Rsa2048Pkcs1
        | Algorithm::Rsa3072Pkcs1
        | Algorithm::Rsa4096Pkcs1 => {
            let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(bad("RSA"));
            };
            let trim = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            let pss = matches!(
                algorithm,
                Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss | Algorithm::Rsa4096Pss
            );
            (
                if pss { "PS256" } else { "RS256" },
                json!({
                    "kty": "RSA",
                    "n": b64(&trim(rsa.modulus)),
                    "e": b64(&trim(rsa.exponent)),
                }),
            )
        }
        other => {
            return Err(GatewayError::invalid(
                "key",
                format!("{} keys have no JWK form", other.as_str()),
            ));
        }
    };
    if let Value::Object(map) = &mut value {
        map.insert("kid".into(), kid.into());
        map.insert("alg".into(), alg.into());
        map.insert("use".into(), "sig".into());
    }
    Ok(value)
}
