//! Signatures and MACs: sign, verify, public keys, generate and verify MAC.

use crate::algorithms::{self, MAX_KMS_INPUT};
use crate::provider::AwsKmsProvider;
use aws_sdk_kms::primitives::Blob;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    KeyPurpose, ProviderError, PublicKeyInfo, Replied, Result, SignInput, VersionRef,
};

pub(crate) async fn sign(
    p: &AwsKmsProvider,
    v: &VersionRef,
    input: SignInput<'_>,
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "sign";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Sign)?;
    let alg = algorithms::signing(v.algorithm)
        .ok_or_else(|| ProviderError::unsupported(&p.name, format!("sign with {}", v.algorithm)))?;
    let (message, kind) = p.sign_input(v, input, Op::Sign)?;
    let request = p
        .client
        .sign()
        .key_id(p.key_id(&v.uri)?)
        .message(Blob::new(message))
        .message_type(kind)
        .signing_algorithm(alg);
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    Ok(sent
        .field("Signature", |o| o.signature)?
        .map(Blob::into_inner))
}

pub(crate) async fn verify(
    p: &AwsKmsProvider,
    v: &VersionRef,
    input: SignInput<'_>,
    signature: &[u8],
) -> Result<Replied<bool>> {
    const OP: &str = "verify";
    kit::require_purpose(&p.name, v, KeyPurpose::Sign, Op::Verify)?;
    let alg = algorithms::signing(v.algorithm).ok_or_else(|| {
        ProviderError::unsupported(&p.name, format!("verify with {}", v.algorithm))
    })?;
    let (message, kind) = p.sign_input(v, input, Op::Verify)?;
    let request = p
        .client
        .verify()
        .key_id(p.key_id(&v.uri)?)
        .message(Blob::new(message))
        .message_type(kind)
        .signature(Blob::new(signature))
        .signing_algorithm(alg);
    p.check(
        OP,
        v.uri.as_str(),
        "KMSInvalidSignatureException",
        request.send(),
        |o| o.signature_valid,
    )
    .await
}

pub(crate) async fn public_key(
    p: &AwsKmsProvider,
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
    let request = p.client.get_public_key().key_id(p.key_id(&v.uri)?);
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    Ok(sent
        .field("PublicKey", |o| o.public_key)?
        .map(|spki| PublicKeyInfo {
            spki_der: spki.into_inner(),
        }))
}

fn check_mac(p: &AwsKmsProvider, v: &VersionRef, op: Op, message: &[u8]) -> Result<()> {
    kit::require_purpose(&p.name, v, KeyPurpose::Mac, op)?;
    if message.len() > MAX_KMS_INPUT {
        let what = if op == Op::Mac {
            "generate MAC"
        } else {
            "verify MAC"
        };
        return Err(p.too_big(what, &v.uri, message.len(), MAX_KMS_INPUT));
    }
    Ok(())
}

pub(crate) async fn mac(
    p: &AwsKmsProvider,
    v: &VersionRef,
    message: &[u8],
) -> Result<Replied<Vec<u8>>> {
    const OP: &str = "generate MAC";
    check_mac(p, v, Op::Mac, message)?;
    let alg = algorithms::mac(v.algorithm)
        .ok_or_else(|| ProviderError::unsupported(&p.name, format!("MAC with {}", v.algorithm)))?;
    let request = p
        .client
        .generate_mac()
        .key_id(p.key_id(&v.uri)?)
        .message(Blob::new(message))
        .mac_algorithm(alg);
    let sent = p.call(OP, v.uri.as_str(), request.send()).await?;
    Ok(sent.field("Mac", |o| o.mac)?.map(Blob::into_inner))
}

pub(crate) async fn verify_mac(
    p: &AwsKmsProvider,
    v: &VersionRef,
    message: &[u8],
    tag: &[u8],
) -> Result<Replied<bool>> {
    const OP: &str = "verify MAC";
    check_mac(p, v, Op::VerifyMac, message)?;
    let alg = algorithms::mac(v.algorithm)
        .ok_or_else(|| ProviderError::unsupported(&p.name, format!("MAC with {}", v.algorithm)))?;
    let request = p
        .client
        .verify_mac()
        .key_id(p.key_id(&v.uri)?)
        .message(Blob::new(message))
        .mac(Blob::new(tag))
        .mac_algorithm(alg);
    p.check(
        OP,
        v.uri.as_str(),
        "KMSInvalidMacException",
        request.send(),
        |o| o.mac_valid,
    )
    .await
}
