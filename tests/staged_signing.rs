//! Pattern 2 of key rotation, for signing keys, end to end through gRPC on the local
//! provider: a staged version is published (GetPublicKeySet, JWKS) before it signs, signs
//! only once promoted (by hand or by the scheduler after the propagation delay), and old
//! signatures keep verifying, through keygate and independently from the published JWK.

mod common;

use common::{Keys, Server, ServerOptions, create, reason, sign};
use keygate::pb;
use serde_json::Value;
use std::time::{Duration, Instant};
use tonic::Code;

fn server_with(dir: &tempfile::TempDir, lifecycle: &str) -> Server {
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, format!("[lifecycle]\n{lifecycle}\n")).unwrap();
    Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    )
}

async fn rotate(
    keys: &mut Keys,
    key: &str,
    stage: bool,
    promote: bool,
) -> Result<pb::Key, tonic::Status> {
    keys.rotate_key(pb::RotateKeyRequest {
        key: key.into(),
        stage,
        promote,
    })
    .await
    .map(|r| r.into_inner())
}

async fn key_set(keys: &mut Keys, key: &str) -> (pb::PublicKeySet, Value) {
    let set = keys
        .get_public_key_set(pb::GetPublicKeySetRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner();
    let jwks: Value = serde_json::from_str(&set.jwks).unwrap();
    (set, jwks)
}

/// Verifies an ECDSA P-256 signature with the public key a JWK describes, outside keygate.
fn verifies_with_jwk(jwk: &Value, message: &[u8], signature: &[u8]) -> bool {
    use base64::Engine as _;
    let b64 = |field: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[field].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    let mut point = vec![4u8];
    point.extend(b64("x"));
    point.extend(b64("y"));
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(message, signature)
    .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staged_version_is_published_first_and_signs_only_once_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "signing_propagation_delay = \"1h\"");
    staged_rotation(&server, "").await;
}

/// The same on Vault/OpenBao Transit: each version is a Transit key version, signing is
/// pinned to the primary, and the JWKs are Transit's public keys.
#[tokio::test(flavor = "multi_thread")]
async fn a_staged_version_on_vault_is_published_first_and_signs_only_once_promoted() {
    let stack = common::vault::start();
    staged_rotation(&stack.server, "vault").await;
}

/// Pattern 2 on `provider` (empty: the default): publish, promote, old signatures verify.
async fn staged_rotation(server: &Server, provider: &str) {
    let mut keys = server.root().await;
    let on = |name: &str, algorithm: &str| {
        let mut req = create(name, algorithm, "root");
        req.provider = provider.into();
        req
    };
    let key = keys
        .create_key(on("jwt/issuer", "ecdsa-p256"))
        .await
        .unwrap()
        .into_inner();
    let first = sign(&mut keys, "jwt/issuer", b"token one").await;
    assert_eq!(first.key_version, 1);

    // Staged: listed at once, with its own kid, but v1 still signs.
    let staged = rotate(&mut keys, "jwt/issuer", true, false).await.unwrap();
    assert_eq!(staged.primary_version, 1);
    assert_eq!(staged.versions.len(), 2);
    assert!(staged.versions[1].staged && !staged.versions[0].staged);
    let (set, jwks) = key_set(&mut keys, "jwt/issuer").await;
    let listed: Vec<(u32, &str)> = set
        .keys
        .iter()
        .map(|k| (k.version, k.status.as_str()))
        .collect();
    assert_eq!(listed, vec![(2, "staged"), (1, "primary")]);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["kid"], format!("{}:v2", key.id));
    assert_eq!(jwks["keys"][1]["kid"], format!("{}:v1", key.id));
    assert_eq!(jwks["keys"][1]["alg"], "ES256");
    // The JWK is the provider's public key: v1's verifies the first signature.
    assert!(verifies_with_jwk(
        &jwks["keys"][1],
        b"token one",
        &first.signature
    ));
    assert!(!verifies_with_jwk(
        &jwks["keys"][0],
        b"token one",
        &first.signature
    ));
    let during = sign(&mut keys, "jwt/issuer", b"token two").await;
    assert_eq!(during.key_version, 1, "a staged version must not sign");

    // While a version is staged, another rotation is refused and says what to do.
    let again = rotate(&mut keys, "jwt/issuer", false, false)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::InvalidArgument);
    assert!(again.message().contains("promote"), "{}", again.message());
    // Staging is for signing keys.
    keys.create_key(on("app/data", "aes-256-gcm"))
        .await
        .unwrap();
    let not_signing = rotate(&mut keys, "app/data", true, false)
        .await
        .unwrap_err();
    assert_eq!(not_signing.code(), Code::InvalidArgument);
    assert!(
        keys.get_public_key_set(pb::GetPublicKeySetRequest {
            key: "app/data".into()
        })
        .await
        .is_err()
    );

    // Promoted: v2 signs, v1 stays published and verifying.
    let promoted = rotate(&mut keys, "jwt/issuer", false, true).await.unwrap();
    assert_eq!(promoted.primary_version, 2);
    assert!(promoted.versions.iter().all(|v| !v.staged));
    let after = sign(&mut keys, "jwt/issuer", b"token three").await;
    assert_eq!(after.key_version, 2);
    let (set, jwks) = key_set(&mut keys, "jwt/issuer").await;
    let listed: Vec<(u32, &str)> = set
        .keys
        .iter()
        .map(|k| (k.version, k.status.as_str()))
        .collect();
    assert_eq!(listed, vec![(2, "primary"), (1, "previous")]);
    assert!(verifies_with_jwk(
        &jwks["keys"][0],
        b"token three",
        &after.signature
    ));
    assert!(verifies_with_jwk(
        &jwks["keys"][1],
        b"token two",
        &during.signature
    ));
    let old = keys
        .verify(pb::VerifyRequest {
            key: "jwt/issuer".into(),
            input: Some(pb::verify_request::Input::Message(b"token one".to_vec())),
            signature: first.signature.clone(),
            key_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(old.valid);
    // Nothing left to promote.
    let nothing = rotate(&mut keys, "jwt/issuer", false, true)
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);
    assert_eq!(reason(&nothing), "INVALID_ARGUMENT");

    // The CLI prints the JWKS document.
    let cli = server
        .cli()
        .args(["key", "jwks", "jwt/issuer"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let printed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed, jwks);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_promotes_a_staged_version_after_the_propagation_delay() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        &dir,
        "signing_propagation_delay = \"1s\"\nscan_interval = \"200ms\"",
    );
    let mut keys = server.root().await;
    keys.create_key(create("jwt/auto", "ecdsa-p256", "root"))
        .await
        .unwrap();
    let staged_at = Instant::now();
    let staged = rotate(&mut keys, "jwt/auto", true, false).await.unwrap();
    assert_eq!(staged.primary_version, 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let key = keys
            .get_key(pb::GetKeyRequest {
                key: "jwt/auto".into(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner();
        if key.primary_version == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {key:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Never before the delay.
    assert!(staged_at.elapsed() >= Duration::from_secs(1));
    assert_eq!(sign(&mut keys, "jwt/auto", b"later").await.key_version, 2);
    // The promotion is on record as the scheduler's.
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let found = audit
        .query(pb::AuditQueryRequest {
            key: "jwt/auto".into(),
            action: "RotateKey".into(),
            page_size: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let promotion = found
        .iter()
        .find(|e| e.outcome == "ok" && e.details.contains("promoted_from"))
        .expect("a promotion event");
    assert_eq!(promotion.actor_kind, "system");
}
