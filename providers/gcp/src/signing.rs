//! Signatures and MACs: asymmetricSign on digests, verification here with the version's
//! public key (Cloud KMS has no verify call for asymmetric keys), public keys, macSign and
//! macVerify. Every reply's checksums and `verified_*` flags are checked.

use crate::algorithms::MAX_INPUT;
use crate::integrity::{check_crc, check_name, check_verified, crc};
use crate::provider::GcpKmsProvider;
use crate::{algorithms, names};
use aws_lc_rs::digest::{self, Digest as LcDigest};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use google_cloud_kms_v1::model::Digest;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, KeyPurpose, ProviderError, PublicKeyInfo, Replied, Result, SignInput, VersionRef,
};
use std::sync::Arc;

impl GcpKmsProvider {
    /// The SPKI DER of a version's public key. With `cached`, a key fetched before is used
    /// (a version's public key never changes) and the request id is `None` when no request
    /// was made; without, Cloud KMS is asked, so a disabled or destroyed version is refused
    /// as it would be for any use of the key.
    pub(crate) async fn public_key_der(
        &self,
        op: &'static str,
        v: &VersionRef,
        cached: bool,
    ) -> Result<(Arc<Vec<u8>>, Option<String>)> {
        let name = self.key_name(&v.uri)?;
        let version = names::version_name(&self.name, name, &v.provider_version)?;
        if cached && let Some(known) = self.cached_public_key(&version) {
            return Ok((known, None));
        }
        let request_id = self.request_id();
        let request = self.client.get_public_key().set_name(&version);
        let sent = self.call(op, v.uri.as_str(), &request_id, request).await?;
        let out = &sent.out;
        check_name(&sent.at, &version, &out.name)?;
        check_crc(&sent.at, "pem_crc32c", out.pem.as_bytes(), out.pem_crc32c)?;
        if algorithms::from_gcp(&out.algorithm) != Some(v.algorithm) {
            return Err(ProviderError::precondition(
                &self.name,
                format!(
                    "{op} on {}: Cloud KMS says version {} is {:?}, keygate has it as {}",
                    v.uri, v.provider_version, out.algorithm, v.algorithm
                ),
            ));
        }
        let der = pem::parse(&out.pem)
            .ok()
            .filter(|p| p.tag() == "PUBLIC KEY")
            .map(|p| p.into_contents())
            .ok_or_else(|| sent.at.bad_reply("the public key is not a PEM PUBLIC KEY"))?;
        let der = Arc::new(der);
        self.cache_public_key(&version, der.clone());
        Ok((der, Some(request_id)))
    }
}

fn verification(algorithm: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match algorithm {
        Algorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
        Algorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
        Algorithm::Rsa2048Pss | Algorithm::Rsa3072Pss => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return None,
    })
}

fn hash(algorithm: Algorithm) -> &'static digest::Algorithm {
    match algorithm {
        Algorithm::EcdsaP384 => &digest::SHA384,
        _ => &digest::SHA256,
    }
}

pub(crate) async fn sign(
    p: &GcpKmsProvider,
    v: &VersionRef,
    input: SignInput<'_>,
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "sign";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Sign)?;
    if verification(v.algorithm).is_none() {
        return Err(ProviderError::unsupported(
            &p.name,
            format!("{OP} with {}", v.algorithm),
        ));
    }
    let digest_bytes = kit::prehash(&p.name, Op::Sign, v, input)?;
    let digest = if v.algorithm == Algorithm::EcdsaP384 {
        Digest::new().set_sha384(digest_bytes.clone())
    } else {
        Digest::new().set_sha256(digest_bytes.clone())
    };
    let name = p.key_name(&v.uri)?;
    let version = names::version_name(&p.name, name, &v.provider_version)?;
    let request_id = p.request_id();
    let request = p
        .client
        .asymmetric_sign()
        .set_name(&version)
        .set_digest(digest)
        .set_digest_crc32c(crc(&digest_bytes));
    let sent = p.call(OP, v.uri.as_str(), &request_id, request).await?;
    let out = &sent.out;
    check_verified(&sent.at, "digest_crc32c", out.verified_digest_crc32c)?;
    check_name(&sent.at, &version, &out.name)?;
    check_crc(
        &sent.at,
        "signature_crc32c",
        &out.signature,
        out.signature_crc32c,
    )?;
    Ok(sent.reply(out.signature.to_vec()))
}

pub(crate) async fn verify(
    p: &GcpKmsProvider,
    v: &VersionRef,
    input: SignInput<'_>,
    signature: &[u8],
) -> Result<Replied<bool>> {
    const OP: &str = "verify";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Verify)?;
    let alg = verification(v.algorithm)
        .ok_or_else(|| ProviderError::unsupported(&p.name, format!("{OP} with {}", v.algorithm)))?;
    let digest_bytes = kit::prehash(&p.name, Op::Verify, v, input)?;
    let digest = LcDigest::import_less_safe(&digest_bytes, hash(v.algorithm))
        .map_err(|_| ProviderError::invalid(&p.name, format!("{OP} on {}: bad digest", v.uri)))?;
    // Verification needs no permission in Cloud KMS beyond reading the public key once.
    let (spki, request_id) = p.public_key_der(OP, v, true).await?;
    let raw = keygate_provider::spki_public_key_bits(&spki).ok_or_else(|| {
        ProviderError::internal(&p.name, format!("{OP} on {}: malformed public key", v.uri))
    })?;
    let valid = UnparsedPublicKey::new(alg, raw)
        .verify_digest(&digest, signature)
        .is_ok();
    Ok(Replied::with_request_id(valid, request_id))
}

pub(crate) async fn public_key(
    p: &GcpKmsProvider,
    v: &VersionRef,
) -> Result<Replied<PublicKeyInfo>> {
    const OP: &str = "get public key";
    if v.algorithm.is_symmetric() {
        return Err(ProviderError::precondition(
            &p.name,
            format!("{OP} on {}: {} keys have no public key", v.uri, v.algorithm),
        ));
    }
    let (spki, request_id) = p.public_key_der(OP, v, false).await?;
    Ok(Replied::with_request_id(
        PublicKeyInfo {
            spki_der: spki.as_ref().clone(),
        },
        request_id,
    ))
}

fn check_mac_input(p: &GcpKmsProvider, v: &VersionRef, op: Op, message: &[u8]) -> Result<()> {
    kit::require_purpose(&p.name, v, KeyPurpose::Mac, op)?;
    if message.len() > MAX_INPUT {
        return Err(ProviderError::invalid(
            &p.name,
            format!(
                "{op} on {}: the message is {} bytes, over Cloud KMS's limit of {MAX_INPUT} bytes",
                v.uri,
                message.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn mac(
    p: &GcpKmsProvider,
    v: &VersionRef,
    message: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "generate MAC";
    check_mac_input(p, v, Op::Mac, message)?;
    let name = p.key_name(&v.uri)?;
    let version = names::version_name(&p.name, name, &v.provider_version)?;
    let request_id = p.request_id();
    let request = p
        .client
        .mac_sign()
        .set_name(&version)
        .set_data(message.to_vec())
        .set_data_crc32c(crc(message));
    let sent = p.call(OP, v.uri.as_str(), &request_id, request).await?;
    let out = &sent.out;
    check_verified(&sent.at, "data_crc32c", out.verified_data_crc32c)?;
    check_name(&sent.at, &version, &out.name)?;
    check_crc(&sent.at, "mac_crc32c", &out.mac, out.mac_crc32c)?;
    Ok(sent.reply(out.mac.to_vec()))
}

pub(crate) async fn verify_mac(
    p: &GcpKmsProvider,
    v: &VersionRef,
    message: &[u8],
    tag: &[u8],
) -> Result<Replied<bool>> {
    const OP: &str = "verify MAC";
    check_mac_input(p, v, Op::VerifyMac, message)?;
    let name = p.key_name(&v.uri)?;
    let version = names::version_name(&p.name, name, &v.provider_version)?;
    let request_id = p.request_id();
    let request = p
        .client
        .mac_verify()
        .set_name(&version)
        .set_data(message.to_vec())
        .set_data_crc32c(crc(message))
        .set_mac(tag.to_vec())
        .set_mac_crc32c(crc(tag));
    let sent = p.call(OP, v.uri.as_str(), &request_id, request).await?;
    let out = &sent.out;
    check_verified(&sent.at, "data_crc32c", out.verified_data_crc32c)?;
    check_verified(&sent.at, "mac_crc32c", out.verified_mac_crc32c)?;
    check_name(&sent.at, &version, &out.name)?;
    if out.verified_success_integrity != out.success {
        return Err(sent.at.integrity(
            "verified_success_integrity contradicts success (the answer was corrupted on the way)",
        ));
    }
    Ok(sent.reply(out.success))
}
