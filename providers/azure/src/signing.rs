//! Signatures: sign and verify (Key Vault signs digests, so messages are hashed here with the
//! algorithm's hash), and public keys (the JWK as SubjectPublicKeyInfo).
//!
//! Key Vault's ECDSA signatures are JWS `r‖s`; keygate's are DER, converted both ways.

use crate::algorithms;
use crate::keys;
use crate::provider::AzureKeyVaultProvider;
use azure_security_keyvault_keys::models::{
    KeyClientGetKeyOptions, KeyClientSignOptions, SignParameters, VerifyParameters,
};
use keygate_provider::der::{ecdsa_der_to_raw, ecdsa_raw_to_der};
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, KeyPurpose, ProviderError, PublicKeyInfo, Replied, Result, SignInput, VersionRef,
};

/// The half-length of a raw ECDSA signature, for EC algorithms.
fn ec_field(algorithm: Algorithm) -> Option<usize> {
    match algorithm {
        Algorithm::EcdsaP256 => Some(32),
        Algorithm::EcdsaP384 => Some(48),
        _ => None,
    }
}

pub(crate) async fn sign(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
    input: SignInput<'_>,
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "sign";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Sign)?;
    let alg = algorithms::signing(v.algorithm)
        .ok_or_else(|| ProviderError::unsupported(&p.name, format!("sign with {}", v.algorithm)))?;
    let digest = kit::prehash(&p.name, Op::Sign, v, input)?;
    let name = p.key_name(&v.uri)?;
    let request = SignParameters {
        algorithm: Some(alg),
        value: Some(digest),
    };
    let options = KeyClientSignOptions {
        key_version: Some(v.provider_version.clone()),
        ..Default::default()
    };
    let reply = p
        .call(
            OP,
            v.uri.as_str(),
            p.client
                .sign(name, p.body(OP, name, request)?, Some(options)),
        )
        .await?;
    let raw = reply.value.result.ok_or_else(|| {
        p.at(OP, v.uri.as_str())
            .missing("signature", reply.request_id.as_deref())
    })?;
    let signature = match ec_field(v.algorithm) {
        Some(_) => ecdsa_raw_to_der(&raw).ok_or_else(|| {
            ProviderError::internal(
                &p.name,
                format!(
                    "{}: Key Vault's ECDSA signature is malformed",
                    p.at(OP, v.uri.as_str()).what()
                ),
            )
        })?,
        None => raw,
    };
    Ok(Replied::with_request_id(signature, reply.request_id))
}

pub(crate) async fn verify(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
    input: SignInput<'_>,
    signature: &[u8],
) -> Result<Replied<bool>> {
    const OP: &str = "verify";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Verify)?;
    let alg = algorithms::signing(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("verify with {}", v.algorithm))
    })?;
    let digest = kit::prehash(&p.name, Op::Verify, v, input)?;
    let signature = match ec_field(v.algorithm) {
        // Not a DER ECDSA signature: it cannot verify.
        Some(field) => match ecdsa_der_to_raw(signature, field) {
            Some(raw) => raw,
            None => return Ok(Replied::local(false)),
        },
        None => signature.to_vec(),
    };
    let name = p.key_name(&v.uri)?;
    let request = VerifyParameters {
        algorithm: Some(alg),
        digest: Some(digest),
        signature: Some(signature),
    };
    let reply = p
        .call(
            OP,
            v.uri.as_str(),
            p.client
                .verify(name, &v.provider_version, p.body(OP, name, request)?, None),
        )
        .await?;
    Ok(reply.map(|r| r.value.unwrap_or(false)))
}

pub(crate) async fn public_key(
    p: &AzureKeyVaultProvider,
    v: &VersionRef,
) -> Result<Replied<PublicKeyInfo>> {
    const OP: &str = "get public key";
    if v.algorithm.is_symmetric() {
        return Err(ProviderError::precondition(
            &p.name,
            format!(
                "{}: {} keys have no public key",
                p.at(OP, v.uri.as_str()).what(),
                v.algorithm
            ),
        ));
    }
    let name = p.key_name(&v.uri)?;
    let options = KeyClientGetKeyOptions {
        key_version: Some(v.provider_version.clone()),
        ..Default::default()
    };
    let reply = p
        .call(OP, v.uri.as_str(), p.client.get_key(name, Some(options)))
        .await?;
    let spki = reply
        .value
        .key
        .as_ref()
        .and_then(keys::spki)
        .ok_or_else(|| {
            p.at(OP, v.uri.as_str())
                .missing("public key (JWK)", reply.request_id.as_deref())
        })?;
    Ok(Replied::with_request_id(
        PublicKeyInfo { spki_der: spki },
        reply.request_id,
    ))
}
