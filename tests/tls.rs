//! TLS and mutual TLS through rustls: a client with a certificate from the configured CA gets
//! in; a client without one, or over plain HTTP/2, does not. Principals bound to a
//! certificate identity (a SAN URI or the subject CN) are accepted only with it, and some by
//! their certificate alone. Client certificates that `listen.tls.crl_file` revokes are
//! refused at the handshake, and a rewritten CRL file applies to new connections.

mod common;

use common::pki::{Pki, mtls_section, pki};
use common::{Bearer, ROOT_TOKEN, Server, create, start_with_config as start};
use futures::FutureExt as _;
use keygate::pb;
use keygate::pb::key_service_client::KeyServiceClient;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

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
    let server = start(dir.path(), &mtls_section(dir.path(), &pki), vec![]);
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
    let config = format!(
        r#"{}
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
        mtls_section(dir, pki)
    );
    start(
        dir,
        &config,
        vec![("KG_TEST_SVC_A_TOKEN".into(), SVC_A_TOKEN.into())],
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

/// A gateway with mTLS whose client certificates are checked against `crl.pem` in `dir`,
/// which it looks at every 200 ms.
fn crl_server(dir: &std::path::Path, pki: &Pki, crl: &str) -> Server {
    let crl_path = dir.join("crl.pem");
    std::fs::write(&crl_path, crl).unwrap();
    let config = format!(
        "{}crl_file = \"{}\"\nreload_interval = \"200ms\"\n",
        mtls_section(dir, pki),
        crl_path.display()
    );
    start(dir, &config, vec![])
}

/// Whether a new connection with `cert` gets an answer to a health check: the handshake
/// (TLS 1.3 refuses a client certificate after the client thinks it is done) and a call.
async fn admitted(server: &Server, pki: &Pki, cert: &(String, String)) -> bool {
    let attempt = async {
        let channel = client(server, &pki.ca_pem, Some(cert)).await.ok()?;
        check(channel).await.then_some(())
    };
    tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}

async fn check(channel: Channel) -> bool {
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .is_ok()
}

/// Polls `condition` until it holds, for at most a minute.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    common::within(Duration::from_secs(60), what, condition).await;
}

const REVOKED: u64 = 0x1001;
const GOOD: u64 = 0x1002;

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_client_certificate_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let revoked = pki.client_cert_with_serial("svc-revoked", REVOKED);
    let good = pki.client_cert_with_serial("svc-good", GOOD);
    let server = crl_server(dir.path(), &pki, &pki.crl(1, &[REVOKED]));

    assert!(
        admitted(&server, &pki, &good).await,
        "a certificate the CRL does not list was refused:\n{}",
        server.output()
    );
    assert!(
        !admitted(&server, &pki, &revoked).await,
        "a revoked certificate was served"
    );
    // Refused by the TLS layer, not by a handler.
    eventually("the refusal in the log", || async {
        server.output().contains("Revoked")
    })
    .await;
    // The certificate identity still reaches the handlers over the new TLS path: an
    // unbound token works with any certificate of the CA.
    let channel = client(&server, &pki.ca_pem, Some(&good)).await.unwrap();
    let mut keys = KeyServiceClient::with_interceptor(channel, Bearer::new(ROOT_TOKEN));
    keys.create_key(create("crl/key", "aes-256-gcm", "alice"))
        .await
        .expect("a call with a certificate the CRL does not list");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_crl_applies_to_new_connections_and_a_bad_one_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let soon_revoked = pki.client_cert_with_serial("svc-soon-revoked", REVOKED);
    let good = pki.client_cert_with_serial("svc-good", GOOD);
    let server = crl_server(dir.path(), &pki, &pki.crl(1, &[]));
    let crl_path = dir.path().join("crl.pem");

    let open = client(&server, &pki.ca_pem, Some(&soon_revoked))
        .await
        .expect("connect before the revocation");
    assert!(check(open.clone()).await, "{}", server.output());

    // Written beside and renamed over, as a CA's publishing job would.
    let replace = |text: String| {
        let staged = dir.path().join("crl.pem.new");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, &crl_path).unwrap();
    };
    replace(pki.crl(2, &[REVOKED]));
    eventually(
        "a new connection with the revoked certificate refused",
        || admitted(&server, &pki, &soon_revoked).map(|ok| !ok),
    )
    .await;
    assert!(admitted(&server, &pki, &good).await, "{}", server.output());
    // Connections already open are not cut (documented).
    assert!(check(open).await, "the open connection was cut");

    // A file that does not parse is reported and the CRL in force kept.
    replace("-----BEGIN X509 CRL-----\nnot base64 at all\n-----END X509 CRL-----\n".into());
    eventually("the failed reload in the log", || async {
        server.output().contains("do not load")
    })
    .await;
    let log = server.output();
    assert!(log.contains("listen.tls.crl_file"), "{log}");
    assert!(!admitted(&server, &pki, &soon_revoked).await);
    assert!(admitted(&server, &pki, &good).await, "{}", server.output());

    // A CRL naming the CA as its issuer but signed by another key (an impostor CA with the
    // same name) is refused as well: loaded, it would refuse every client of the CA.
    let impostor = self::pki();
    replace(impostor.crl(3, &[]));
    eventually("the forged CRL refused in the log", || async {
        server.output().contains("is not signed by its key")
    })
    .await;
    assert!(!admitted(&server, &pki, &soon_revoked).await);
    assert!(admitted(&server, &pki, &good).await, "{}", server.output());
}
