//! A test PKI for the TLS tests: a CA, server and client certificates, CRLs, and the
//! `[listen.tls]` section that uses them.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    IsCa, KeyIdMethod, KeyPair, RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};

pub struct Pki {
    pub ca_pem: String,
    pub server: (String, String),
    pub client: (String, String),
    pub ca: Option<CertifiedIssuer<'static, KeyPair>>,
}

/// A CA, a server certificate for `localhost` and a client certificate, all freshly made.
pub fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A subject of its own: rcgen's default is the leaves' too, and OpenSSL-based clients
    // (Python's grpcio) take a leaf named like its issuer for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keygate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: issue(vec!["localhost".into()]),
        client: issue(vec!["svc-client".into()]),
        ca: Some(ca),
    }
}

impl Pki {
    /// A client certificate with subject CN `cn` and, if given, a SAN URI.
    pub fn client_cert(&self, cn: &str, uri: Option<&str>) -> (String, String) {
        let ca = self.ca.as_ref().expect("the CA");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        let cert = params.signed_by(&key, ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate with subject CN `cn` and serial number `serial`.
    pub fn client_cert_with_serial(&self, cn: &str, serial: u64) -> (String, String) {
        let ca = self.ca.as_ref().expect("the CA");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The CA's CRL number `number`, revoking the certificates with these serial numbers.
    pub fn crl(&self, number: u64, revoked: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(*serial),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(self.ca.as_ref().expect("the CA"))
            .unwrap()
            .pem()
            .unwrap()
    }
}

/// The `[listen.tls]` section for `pki`'s server certificate and client CA, its files written
/// into `dir`.
pub fn mtls_section(dir: &std::path::Path, pki: &Pki) -> String {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    format!(
        "[listen.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        write("server.pem", &pki.server.0),
        write("server.key", &pki.server.1),
        write("ca.pem", &pki.ca_pem),
    )
}
