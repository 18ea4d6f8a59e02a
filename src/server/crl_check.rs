//! A CRL's signature checked when the file is loaded, against the client CA in
//! `client_ca_file` that issued it. rustls checks CRL signatures only during handshakes, so a
//! CRL signed by the wrong key would load and then refuse every client of that CA: a bad
//! file must be refused at start-up, and kept out by a reload, instead. A CRL whose issuer is
//! not in `client_ca_file` (an intermediate CA's) is left to the handshake's check.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

/// The verification algorithms a signature algorithm OID may stand for (the curve or key
/// size comes from the CA's key, so each is tried).
fn algorithms(oid: &str) -> Option<&'static [&'static dyn VerificationAlgorithm]> {
    Some(match oid {
        "1.2.840.10045.4.3.2" => &[
            &signature::ECDSA_P256_SHA256_ASN1,
            &signature::ECDSA_P384_SHA256_ASN1,
        ],
        "1.2.840.10045.4.3.3" => &[
            &signature::ECDSA_P384_SHA384_ASN1,
            &signature::ECDSA_P256_SHA384_ASN1,
        ],
        "1.2.840.113549.1.1.11" => &[&signature::RSA_PKCS1_2048_8192_SHA256],
        "1.2.840.113549.1.1.12" => &[&signature::RSA_PKCS1_2048_8192_SHA384],
        "1.2.840.113549.1.1.13" => &[&signature::RSA_PKCS1_2048_8192_SHA512],
        "1.3.101.112" => &[&signature::ED25519],
        _ => return None,
    })
}

/// Whether each CRL issued by one of `cas` carries that CA's valid signature; the error
/// says which CRL (by position in the file) and why, never its contents.
pub fn check_signatures(
    crls: &[CertificateRevocationListDer<'_>],
    cas: &[CertificateDer<'_>],
) -> Result<(), String> {
    let cas: Vec<_> = cas
        .iter()
        .filter_map(|der| {
            x509_parser::parse_x509_certificate(der)
                .ok()
                .map(|(_, c)| c)
        })
        .collect();
    for (index, der) in crls.iter().enumerate() {
        let n = index + 1;
        let (_, crl) =
            x509_parser::parse_x509_crl(der).map_err(|e| format!("CRL {n} does not parse: {e}"))?;
        let issuer = crl.tbs_cert_list.issuer.as_raw();
        let issuers: Vec<_> = cas
            .iter()
            .filter(|ca| ca.subject().as_raw() == issuer)
            .collect();
        if issuers.is_empty() {
            tracing::warn!(
                crl = n,
                "a CRL's issuer is not in listen.tls.client_ca_file (an intermediate CA?): its signature is checked at each handshake only"
            );
            continue;
        }
        let oid = crl.signature_algorithm.algorithm.to_id_string();
        let candidates = algorithms(&oid).ok_or_else(|| {
            format!("CRL {n} is signed with algorithm {oid}, which keygate does not check")
        })?;
        let message = crl.tbs_cert_list.as_ref();
        let sig = crl.signature_value.data.as_ref();
        let valid = issuers.iter().any(|ca| {
            let key = ca.public_key().subject_public_key.data.as_ref();
            candidates.iter().any(|alg| {
                UnparsedPublicKey::new(*alg, key)
                    .verify(message, sig)
                    .is_ok()
            })
        });
        if !valid {
            return Err(format!(
                "CRL {n} names a CA of listen.tls.client_ca_file as its issuer but is not signed by its key"
            ));
        }
    }
    Ok(())
}
