//! The token credential an instance uses, from [`CredentialConfig`]: `azure_identity`'s
//! managed identity, workload identity and client secret credentials, and a client
//! certificate credential that signs its own assertion (azure_identity's certificate
//! credential needs OpenSSL, which keygate does not link).
//!
//! Secrets are read once, when the provider is built, from their references; errors name the
//! setting, never the value.

use crate::config::CredentialConfig;
use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keygate_provider::{ProviderError, Result, SecretBytes};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The public cloud's Entra ID host, used unless `authority_host` says otherwise.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Builds the credential. `options` carries the transport (CA bundle) and cloud (authority
/// host) the credential's own requests use.
pub(crate) fn build(
    provider: &str,
    config: &CredentialConfig,
    authority_host: &str,
    options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let failed = |what: &str, e: azure_core::Error| {
        ProviderError::invalid(
            provider,
            format!(
                "credential ({what}): {}",
                keygate_provider::kit::error_chain(&e)
            ),
        )
    };
    Ok(match config {
        CredentialConfig::Chain { client_id } => {
            if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: options,
                    },
                    client_id: client_id.clone(),
                    ..Default::default()
                }))
                .map_err(|e| failed("workload identity", e))?
            } else {
                managed_identity(client_id, options).map_err(|e| failed("managed identity", e))?
            }
        }
        CredentialConfig::ManagedIdentity { client_id } => {
            managed_identity(client_id, options).map_err(|e| failed("managed identity", e))?
        }
        CredentialConfig::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: options,
            },
            client_id: client_id.clone(),
            tenant_id: tenant_id.clone(),
            token_file_path: token_file.clone(),
        }))
        .map_err(|e| failed("workload identity", e))?,
        CredentialConfig::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => {
            let secret = secret
                .resolve("credential.secret")
                .map_err(|e| ProviderError::invalid(provider, e.to_string()))?;
            let text = String::from_utf8(secret.expose().to_vec()).map_err(|_| {
                ProviderError::invalid(provider, "credential.secret is not UTF-8 text")
            })?;
            ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(text),
                Some(ClientSecretCredentialOptions {
                    client_options: options,
                }),
            )
            .map_err(|e| failed("client secret", e))?
        }
        CredentialConfig::ClientCertificate {
            tenant_id,
            client_id,
            certificate,
        } => {
            let pem = certificate
                .resolve("credential.certificate")
                .map_err(|e| ProviderError::invalid(provider, e.to_string()))?;
            let assertion = CertificateAssertion::from_pem(provider, &pem, client_id)?
                .for_endpoint(&format!(
                    "{}/{tenant_id}/oauth2/v2.0/token",
                    authority_host.trim_end_matches('/')
                ));
            ClientAssertionCredential::new(
                tenant_id.clone(),
                client_id.clone(),
                assertion,
                Some(ClientAssertionCredentialOptions {
                    client_options: options,
                }),
            )
            .map_err(|e| failed("client certificate", e))?
        }
    })
}

fn managed_identity(
    client_id: &Option<String>,
    options: ClientOptions,
) -> azure_core::Result<Arc<ManagedIdentityCredential>> {
    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
        client_options: options,
    }))
}

/// A client assertion (RFC 7523 JWT, RS256) signed with a service principal's certificate
/// key, as Entra ID's certificate credentials specify: `x5t#S256` names the certificate.
pub struct CertificateAssertion {
    key: RsaKeyPair,
    thumbprint_sha256: String,
    client_id: String,
    audience: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("x5t#S256", &self.thumbprint_sha256)
            .finish_non_exhaustive()
    }
}

/// The DER contents of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<SecretBytes> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop].split_whitespace().collect();
    STANDARD.decode(body).ok().map(SecretBytes::new)
}

impl CertificateAssertion {
    /// From a PEM with the certificate and its PKCS#8 RSA private key.
    pub fn from_pem(provider: &str, pem: &SecretBytes, client_id: &str) -> Result<Self> {
        let bad = |what: &str| {
            ProviderError::invalid(provider, format!("credential.certificate: {what}"))
        };
        let text = std::str::from_utf8(pem.expose()).map_err(|_| bad("not PEM text"))?;
        let cert = pem_block(text, "CERTIFICATE").ok_or_else(|| bad("no CERTIFICATE block"))?;
        let key =
            pem_block(text, "PRIVATE KEY").ok_or_else(|| bad("no PRIVATE KEY (PKCS#8) block"))?;
        let key = RsaKeyPair::from_pkcs8(key.expose())
            .map_err(|_| bad("the private key is not a PKCS#8 RSA key"))?;
        Ok(Self {
            key,
            thumbprint_sha256: URL_SAFE_NO_PAD
                .encode(digest::digest(&digest::SHA256, cert.expose()).as_ref()),
            client_id: client_id.to_string(),
            audience: String::new(),
        })
    }

    fn for_endpoint(mut self, token_endpoint: &str) -> Self {
        self.audience = token_endpoint.to_string();
        self
    }

    /// A fresh assertion, valid for ten minutes.
    pub fn sign(&self) -> std::result::Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| "the system RNG failed".to_string())?;
        let header =
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256});
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.sign().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e)
        })
    }
}
