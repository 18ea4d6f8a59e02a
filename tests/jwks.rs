//! The JWKS endpoint (`[jwks]`) end to end on the local provider: the listed signing keys'
//! JWK Sets over HTTP, each JWK verifying a signature made through the Sign RPC outside
//! keygate; a staged version listed under its own kid; one audited build per key per cache
//! period; and a 404 that says nothing about whether an unlisted key exists.

mod common;

use base64::Engine as _;
use common::{Server, ServerOptions, create, events_for, sign};
use keygate::pb;
use serde_json::Value;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[jwks]
listen = "127.0.0.1:0"
keys = ["jwt/issuer", "jwt/edwards", "jwt/rsa", "jwt/missing", "app/data"]
default = "jwt/issuer"
cache = "3s"
"#;

fn start(dir: &tempfile::TempDir) -> (Server, String) {
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let output = server.output();
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("jwks on http://"))
        .unwrap_or_else(|| panic!("no jwks address:\n{output}"));
    let (addr, _) = line.split_once(": ").unwrap();
    let base = format!("http://{addr}");
    (server, base)
}

struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Fetched {
    fn jwks(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_str(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Fetched {
    let response = http.get(url).send().await.unwrap();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn b64(jwk: &Value, field: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk[field].as_str().unwrap())
        .unwrap()
}

/// Whether the public key `jwk` describes (alone, outside keygate) verifies `signature`.
fn verifies(jwk: &Value, message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature;
    match jwk["kty"].as_str().unwrap() {
        "EC" => {
            assert_eq!(jwk["crv"], "P-256");
            let (x, y) = (b64(jwk, "x"), b64(jwk, "y"));
            assert_eq!((x.len(), y.len()), (32, 32));
            let point = [&[4u8][..], &x, &y].concat();
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                .verify(message, signature)
                .is_ok()
        }
        "OKP" => {
            assert_eq!(jwk["crv"], "Ed25519");
            let x = b64(jwk, "x");
            assert_eq!(x.len(), 32);
            signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok()
        }
        "RSA" => {
            let (n, e) = (b64(jwk, "n"), b64(jwk, "e"));
            assert_eq!(n.len(), 256, "a 2048-bit modulus, no leading zero");
            signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, message, signature)
                .is_ok()
        }
        other => panic!("unexpected kty {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_signing_keys_are_published_and_verify_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base) = start(&dir);
    let http = reqwest::Client::new();
    let mut keys = server.root().await;
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let mut ids = Vec::new();
    for (name, algorithm, kty, alg) in [
        ("jwt/issuer", "ecdsa-p256", "EC", "ES256"),
        ("jwt/edwards", "ed25519", "OKP", "EdDSA"),
        ("jwt/rsa", "rsa-2048-pss", "RSA", "PS256"),
    ] {
        let key = keys
            .create_key(create(name, algorithm, "root"))
            .await
            .unwrap()
            .into_inner();
        let signed = sign(&mut keys, name, b"header.payload").await;
        let url = format!("{base}/keys/{}/jwks.json", name.replace('/', "%2F"));
        let fetched = fetch(&http, &url).await;
        assert_eq!(fetched.header("content-type"), "application/jwk-set+json");
        assert!(
            fetched
                .header("cache-control")
                .starts_with("public, max-age="),
            "{:?}",
            fetched.headers
        );
        let jwks = fetched.jwks();
        let [jwk] = jwks["keys"].as_array().unwrap().as_slice() else {
            panic!("{jwks}");
        };
        assert_eq!(jwk["kty"], kty, "{jwk}");
        assert_eq!(jwk["alg"], alg, "{jwk}");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], format!("{}:v1", key.id));
        assert!(
            verifies(jwk, b"header.payload", &signed.signature),
            "{name}"
        );
        assert!(
            !verifies(jwk, b"header.payloaD", &signed.signature),
            "{name}"
        );
        // The same document as GetPublicKeySet's.
        let set = keys
            .get_public_key_set(pb::GetPublicKeySetRequest { key: name.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serde_json::from_str::<Value>(&set.jwks).unwrap(), jwks);

        // The build was a call through the gateway, audited as the system's with the
        // fetching client's address; fetches within the cache period share it.
        let request_id = fetched.header("x-request-id").to_string();
        let events = events_for(&mut audit, &request_id).await;
        let [event] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(
            (
                event.actor.as_str(),
                event.actor_kind.as_str(),
                event.action.as_str(),
                event.outcome.as_str()
            ),
            ("keygate:jwks", "system", "GetPublicKey", "ok")
        );
        assert_eq!(event.key_id, key.id);
        assert!(event.client_address.starts_with("127.0.0.1:"), "{event:?}");
        let again = fetch(&http, &url).await;
        assert_eq!(again.header("x-request-id"), request_id);
        assert_eq!(again.body, fetched.body);
        ids.push(key.id);
    }
    // A literal slash is taken too, and the default key is the well-known one.
    let literal = fetch(&http, &format!("{base}/keys/jwt/issuer/jwks.json")).await;
    let well_known = fetch(&http, &format!("{base}/.well-known/jwks.json")).await;
    assert_eq!(literal.jwks()["keys"][0]["kid"], format!("{}:v1", ids[0]));
    assert_eq!(well_known.jwks(), literal.jwks());

    // Staged: both versions are listed, each under its own kid, once the cache period ends.
    let signed_v1 = sign(&mut keys, "jwt/issuer", b"before").await;
    keys.rotate_key(pb::RotateKeyRequest {
        key: "jwt/issuer".into(),
        stage: true,
        promote: false,
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let jwks = loop {
        let jwks = fetch(&http, &format!("{base}/.well-known/jwks.json"))
            .await
            .jwks();
        if jwks["keys"].as_array().unwrap().len() == 2 {
            break jwks;
        }
        assert!(Instant::now() < deadline, "the staged version never came");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [format!("{}:v2", ids[0]), format!("{}:v1", ids[0])]);
    assert!(verifies(&jwks["keys"][1], b"before", &signed_v1.signature));
    assert!(!verifies(&jwks["keys"][0], b"before", &signed_v1.signature));
}

#[tokio::test(flavor = "multi_thread")]
async fn unlisted_missing_and_unsuitable_keys_all_answer_the_same_404() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base) = start(&dir);
    let http = reqwest::Client::new();
    let mut keys = server.root().await;
    // Exists and signs, but is not listed.
    keys.create_key(create("jwt/unlisted", "ecdsa-p256", "root"))
        .await
        .unwrap();
    // Listed, but does not sign.
    keys.create_key(create("app/data", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let unlisted = fetch(&http, &format!("{base}/keys/jwt%2Funlisted/jwks.json")).await;
    let never = fetch(&http, &format!("{base}/keys/jwt%2Fnever/jwks.json")).await;
    let missing = fetch(&http, &format!("{base}/keys/jwt%2Fmissing/jwks.json")).await;
    let not_signing = fetch(&http, &format!("{base}/keys/app%2Fdata/jwks.json")).await;
    let elsewhere = fetch(&http, &format!("{base}/metrics")).await;
    for answer in [&unlisted, &never, &missing, &not_signing, &elsewhere] {
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.body, unlisted.body);
        assert!(answer.headers.get("x-request-id").is_none());
    }
    let posted = http
        .post(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 405);
}
