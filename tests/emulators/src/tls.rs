//! A throw-away certificate authority and server certificate, made at start-up,
//! so the Azure emulator can serve HTTPS that a test trusts explicitly.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA and the server certificate it issued for loopback names.
pub struct TestPki {
    ca_pem: String,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// Failure to build the test PKI.
#[derive(Debug)]
pub struct PkiError(String);

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot build the test PKI: {}", self.0)
    }
}

impl std::error::Error for PkiError {}

impl From<PkiError> for std::io::Error {
    fn from(e: PkiError) -> Self {
        std::io::Error::other(e)
    }
}

fn err(e: impl std::fmt::Display) -> PkiError {
    PkiError(e.to_string())
}

impl TestPki {
    /// Makes a new CA and a server certificate for `localhost`, `127.0.0.1`
    /// and `::1`, each with a fresh P-256 key.
    pub fn generate() -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "keygate emulator test CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::from_params(&ca_params, &ca_key);

        let server_key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "keygate emulator");
        params.distinguished_name = dn;
        let server_cert = params.signed_by(&server_key, &issuer).map_err(err)?;

        let chain = vec![
            CertificateDer::from(server_cert.der().to_vec()),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(err)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
        })
    }

    /// The CA certificate, PEM-encoded, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }
}
