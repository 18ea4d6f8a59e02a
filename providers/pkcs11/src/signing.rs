//! Signatures and MACs on the token. The token signs digests only (CKM_ECDSA, CKM_RSA_PKCS_PSS
//! over a digest), so messages are hashed in keygate first.

use crate::crypto::public_parts;
use crate::der;
use crate::errors::is_rv;
use crate::mechanisms;
use crate::provider::Pkcs11Provider;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectClass;
use keygate_provider::kit::{self, Op};
use keygate_provider::{
    Algorithm, KeyPurpose, ProviderError, PublicKeyInfo, Replied, Result, SignInput, VersionRef,
};

pub(crate) async fn sign(
    p: &Pkcs11Provider,
    key: &VersionRef,
    input: SignInput<'_>,
) -> Result<Replied<Vec<u8>>> {
    p.require(key, KeyPurpose::Sign, Op::Sign)?;
    let digest = kit::prehash(&p.name, Op::Sign, key, input)?;
    let (key_id, id) = p.resolve(key)?;
    let algorithm = key.algorithm;
    let raw = p
        .run(
            || format!("sign with {} version {}", key.uri, key.version),
            move |s| {
                s.with_object(&key_id, id, ObjectClass::PRIVATE_KEY, |s, handle| {
                    Ok(s.sign(&mechanisms::sign_mechanism(algorithm), handle, &digest)?)
                })
            },
        )
        .await?;
    if mechanisms::curve_oid(algorithm).is_none() {
        return Ok(Replied::local(raw));
    }
    // The token gives raw r‖s; keygate's encoding for ECDSA is DER on every provider.
    der::ecdsa_raw_to_der(&raw)
        .map(Replied::local)
        .ok_or_else(|| {
            ProviderError::internal(&p.name, "the token returned a malformed ECDSA signature")
        })
}

pub(crate) async fn verify(
    p: &Pkcs11Provider,
    key: &VersionRef,
    input: SignInput<'_>,
    signature: &[u8],
) -> Result<Replied<bool>> {
    p.require(key, KeyPurpose::Sign, Op::Verify)?;
    let digest = kit::prehash(&p.name, Op::Verify, key, input)?;
    let (key_id, id) = p.resolve(key)?;
    let algorithm = key.algorithm;
    let signature = if mechanisms::curve_oid(algorithm).is_some() {
        let field = if algorithm == Algorithm::EcdsaP384 {
            48
        } else {
            32
        };
        match der::ecdsa_der_to_raw(signature, field) {
            Some(raw) => raw,
            None => return Ok(Replied::local(false)),
        }
    } else {
        signature.to_vec()
    };
    p.run(
        || format!("verify with {} version {}", key.uri, key.version),
        move |s| {
            s.with_object(&key_id, id, ObjectClass::PUBLIC_KEY, |s, handle| {
                match s.verify(
                    &mechanisms::sign_mechanism(algorithm),
                    handle,
                    &digest,
                    &signature,
                ) {
                    Ok(()) => Ok(true),
                    Err(e)
                        if is_rv(&e, RvError::SignatureInvalid)
                            || is_rv(&e, RvError::SignatureLenRange) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
            })
        },
    )
    .await
    .map(Replied::local)
}

pub(crate) async fn public_key(
    p: &Pkcs11Provider,
    key: &VersionRef,
) -> Result<Replied<PublicKeyInfo>> {
    if key.algorithm.is_symmetric() {
        return Err(ProviderError::precondition(
            &p.name,
            format!("{} is a symmetric key: it has no public key", key.uri),
        ));
    }
    let (spki_der, _) = public_parts(p, key).await?;
    Ok(Replied::local(PublicKeyInfo { spki_der }))
}

pub(crate) async fn mac(
    p: &Pkcs11Provider,
    key: &VersionRef,
    message: &[u8],
) -> Result<Replied<Vec<u8>>> {
    p.require(key, KeyPurpose::Mac, Op::Mac)?;
    let (key_id, id) = p.resolve(key)?;
    let message = message.to_vec();
    p.run(
        || format!("mac with {} version {}", key.uri, key.version),
        move |s| {
            s.with_object(&key_id, id, ObjectClass::SECRET_KEY, |s, handle| {
                Ok(s.sign(&Mechanism::Sha256Hmac, handle, &message)?)
            })
        },
    )
    .await
    .map(Replied::local)
}

pub(crate) async fn verify_mac(
    p: &Pkcs11Provider,
    key: &VersionRef,
    message: &[u8],
    tag: &[u8],
) -> Result<Replied<bool>> {
    // Recompute and compare in constant time here rather than trusting the module's
    // C_Verify to do so.
    let expected = mac(p, key, message).await?.value;
    let ok = aws_lc_rs::constant_time::verify_slices_are_equal(&expected, tag).is_ok();
    Ok(Replied::local(ok))
}
