//! Client certificate identities (mTLS): what a verified client certificate names, and what a
//! principal's configuration binds it to.
//!
//! The TLS layer has already checked the chain against `listen.tls.client_ca_file`; this
//! module only reads the names out of the leaf certificate.

use crate::config::CertificateIdentityConfig;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity a principal's token is valid with, or by which it authenticates alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertificateBinding {
    /// The subject's common name (CN).
    CommonName(String),
    /// A subjectAltName URI, such as a SPIFFE id (`spiffe://example.org/payments`).
    Uri(String),
}

impl From<&CertificateIdentityConfig> for CertificateBinding {
    fn from(config: &CertificateIdentityConfig) -> Self {
        // Validation guarantees exactly one of the two.
        match (&config.uri, &config.common_name) {
            (Some(uri), _) => CertificateBinding::Uri(uri.clone()),
            (None, Some(cn)) => CertificateBinding::CommonName(cn.clone()),
            (None, None) => CertificateBinding::Uri(String::new()),
        }
    }
}

impl std::fmt::Display for CertificateBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateBinding::CommonName(cn) => write!(f, "CN={cn}"),
            CertificateBinding::Uri(uri) => write!(f, "URI:{uri}"),
        }
    }
}

/// The names in the certificate a client presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    common_names: Vec<String>,
    uris: Vec<String>,
}

/// Names longer than this are ignored: no configured identity is that long.
const MAX_NAME: usize = 2048;

impl PeerIdentity {
    /// Reads the leaf certificate (DER). `None` if it cannot be parsed, which the TLS layer
    /// that verified it makes unlikely; the caller then has no certificate identity.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .filter(|cn| cn.len() <= MAX_NAME)
            .map(str::to_string)
            .collect();
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name
                    && uri.len() <= MAX_NAME
                {
                    uris.push(uri.to_string());
                }
            }
        }
        Some(PeerIdentity { common_names, uris })
    }

    /// Whether the certificate carries `binding`'s identity (exact, case-sensitive match).
    pub fn matches(&self, binding: &CertificateBinding) -> bool {
        match binding {
            CertificateBinding::CommonName(cn) => self.common_names.iter().any(|c| c == cn),
            CertificateBinding::Uri(uri) => self.uris.iter().any(|u| u == uri),
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(uris: &[&str], common_names: &[&str]) -> Self {
        PeerIdentity {
            common_names: common_names.iter().map(|s| s.to_string()).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
        }
    }
}
