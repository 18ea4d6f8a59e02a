//! TLS and mutual TLS through rustls: a client with a certificate from the configured CA gets
//! in; a client without one, or over plain HTTP/2, does not. Principals bound to a
//! certificate identity (a SAN URI or the subject CN) are accepted only with it, and some by
//! their certificate alone.

mod common;

use common::{Bearer, ROOT_TOKEN, Server, ServerOptions, create};
use keygate::pb;
use keygate::pb::key_service_client::KeyServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    ca: Option<CertifiedIssuer<'static, KeyPair>>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
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
    fn client_cert(&self, cn: &str, uri: Option<&str>) -> (String, String) {
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
}

async fn client(
    server: &Server,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(server.endpoint.clone())
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_admits_only_certified_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let config = format!(
        "[listen.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        write("server.pem", &pki.server.0),
        write("server.key", &pki.server.1),
        write("ca.pem", &pki.ca_pem),
    );
    let config_path = dir.path().join("keygate.toml");
    std::fs::write(&config_path, config).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config_path),
            ..Default::default()
        },
    );
    assert!(
        server.endpoint.starts_with("https://localhost:"),
        "{}",
        server.endpoint
    );

    let channel = client(&server, &pki.ca_pem, Some(&pki.client))
        .await
        .expect("mTLS connect");
    let mut keys = KeyServiceClient::with_interceptor(channel, Bearer::new(ROOT_TOKEN));
    keys.create_key(create("tls/key", "aes-256-gcm", "alice"))
        .await
        .expect("call over mTLS");

    // Without a client certificate the handshake or the first call fails.
    let no_cert = client(&server, &pki.ca_pem, None).await;
    if let Ok(channel) = no_cert {
        let result = KeyServiceClient::with_interceptor(channel, Bearer::new(ROOT_TOKEN))
            .get_key(pb::GetKeyRequest {
                key: "tls/key".into(),
                usage: false,
            })
            .await;
        assert!(result.is_err(), "a client without a certificate was served");
    }
    // Plain HTTP/2 to the TLS port is refused too.
    let plain = server.endpoint.replace("https://", "http://");
    if let Ok(channel) = Channel::from_shared(plain).unwrap().connect().await {
        let result = KeyServiceClient::with_interceptor(channel, Bearer::new(ROOT_TOKEN))
            .get_key(pb::GetKeyRequest {
                key: "tls/key".into(),
                usage: false,
            })
            .await;
        assert!(result.is_err(), "plain HTTP/2 was served on the TLS port");
    }
}

const SVC_A_URI: &str = "spiffe://keygate.test/ns/payments/sa/svc-a";
const SVC_A_TOKEN: &str = "kg_test_svc_a_token_0123456789abcdef";

/// A gateway with mTLS and two principals: svc-a's token bound to its SPIFFE id, svc-b
/// authenticated by the CN of its certificate alone.
fn bound_server(dir: &std::path::Path, pki: &Pki) -> Server {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let config = format!(
        r#"[listen.tls]
cert_file = "{}"
key_file = "{}"
client_ca_file = "{}"

[[tokens]]
principal = "svc-a"
kind = "service-account"
roles = ["key-admin"]
environments = ["dev"]
token = {{ env = "KG_TEST_SVC_A_TOKEN" }}
certificate = {{ uri = "{SVC_A_URI}" }}

[[tokens]]
principal = "svc-b"
kind = "service-account"
roles = ["key-admin"]
environments = ["dev"]
certificate = {{ common_name = "svc-b" }}
certificate_alone = true
"#,
        write("server.pem", &pki.server.0),
        write("server.key", &pki.server.1),
        write("ca.pem", &pki.ca_pem),
    );
    let config_path = dir.join("keygate.toml");
    std::fs::write(&config_path, config).unwrap();
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config_path),
            env: vec![("KG_TEST_SVC_A_TOKEN".into(), SVC_A_TOKEN.into())],
            ..Default::default()
        },
    )
}

async fn keys_with(
    server: &Server,
    pki: &Pki,
    cert: &(String, String),
    token: &str,
) -> KeyServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    let channel = client(server, &pki.ca_pem, Some(cert))
        .await
        .expect("mTLS connect");
    KeyServiceClient::with_interceptor(channel, Bearer::new(token))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_token_is_refused_with_another_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let server = bound_server(dir.path(), &pki);
    let cert_a = pki.client_cert("svc-a", Some(SVC_A_URI));
    // Another workload of the same CA, even one whose CN says svc-a.
    let cert_other = pki.client_cert(
        "svc-a",
        Some("spiffe://keygate.test/ns/payments/sa/intruder"),
    );

    let mut own = keys_with(&server, &pki, &cert_a, SVC_A_TOKEN).await;
    own.create_key(create("bound/own", "aes-256-gcm", "svc-b"))
        .await
        .expect("svc-a's token with svc-a's certificate");

    let mut stolen = keys_with(&server, &pki, &cert_other, SVC_A_TOKEN).await;
    let err = stolen
        .create_key(create("bound/stolen", "aes-256-gcm", "svc-b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("client certificate"),
        "{}",
        err.message()
    );
    let err = stolen
        .get_key(pb::GetKeyRequest {
            key: "bound/own".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // An unbound token (dev root) is accepted with any certificate the CA signed.
    let mut root = keys_with(&server, &pki, &cert_other, ROOT_TOKEN).await;
    root.get_key(pb::GetKeyRequest {
        key: "bound/own".into(),
        ..Default::default()
    })
    .await
    .expect("an unbound token");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_authenticates_by_its_certificate_alone_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let server = bound_server(dir.path(), &pki);

    let cert_b = pki.client_cert("svc-b", None);
    let mut b = keys_with(&server, &pki, &cert_b, "").await;
    let created = b
        .create_key(create("alone/b", "aes-256-gcm", "svc-a"))
        .await
        .expect("svc-b by its certificate alone");
    let id = common::request_id(&created);
    let mut audit = keygate::pb::audit_service_client::AuditServiceClient::with_interceptor(
        client(&server, &pki.ca_pem, Some(&pki.client))
            .await
            .expect("mTLS connect"),
        Bearer::new(ROOT_TOKEN),
    );
    let events = common::events_for(&mut audit, &id).await;
    assert!(events.iter().any(|e| e.actor == "svc-b"), "{events:?}");

    // svc-a's certificate without its token: svc-a is not configured to go by it alone.
    let cert_a = pki.client_cert("svc-a", Some(SVC_A_URI));
    let mut a = keys_with(&server, &pki, &cert_a, "").await;
    let err = a
        .create_key(create("alone/a", "aes-256-gcm", "svc-b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // Nor does a certificate of the CA with no configured identity.
    let mut other = keys_with(&server, &pki, &pki.client, "").await;
    let err = other
        .get_key(pb::GetKeyRequest {
            key: "alone/b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}
