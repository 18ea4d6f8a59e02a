//! TLS and mutual TLS through rustls: a client with a certificate from the configured CA gets
//! in; a client without one, or over plain HTTP/2, does not.

mod common;

use common::{Bearer, ROOT_TOKEN, Server, ServerOptions, create};
use keygate::pb;
use keygate::pb::key_service_client::KeyServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
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
