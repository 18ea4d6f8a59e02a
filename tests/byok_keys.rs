//! BYOK of HMAC and RSA keys end to end through gRPC: an HMAC-SHA256 key (a generic secret,
//! imported as raw bytes) and RSA-2048/3072 PSS signing keys (PKCS#8 under
//! CKM_AES_KEY_WRAP_PAD) generated in SoftHSM2 and imported into OpenBao (Transit) and
//! LocalStack (AWS KMS). Each copy holds the same key: a MAC made through a copy verifies
//! through the HSM key and the other way round, and a copy's RSA signature verifies under
//! the HSM's public key, which every copy shares. A target that cannot take an algorithm,
//! and an algorithm BYOK does not offer, are refused before anything is made.
//!
//! Needs SoftHSM2, OpenBao and LocalStack (`tests/run.sh byok` installs them).

mod common;

use common::backends::Backends;
use common::byok::{byok_import, copy, mac, public_key, signature_of};
use common::{Server, ServerOptions};
use keygate::pb;
use std::path::Path;

fn start_gateway(dir: &Path, b: &Backends) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(&config, b.providers_config()).expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: b.env(),
            ..Default::default()
        },
    )
}

async fn import(keys: &mut common::Keys, server: &Server, name: &str, algorithm: &str) {
    let family = keys
        .byok_import(byok_import(name, algorithm, &["vault", "aws"]))
        .await
        .unwrap_or_else(|e| panic!("ByokImport {algorithm}: {e}\n{}", server.output()))
        .into_inner();
    assert_eq!(family.state, "complete", "{algorithm}: {family:?}");
    let vault = copy(&family, "vault");
    assert_eq!(vault.import_method, "rsa-aes-key-wrap-sha1", "{algorithm}");
    assert!(
        !vault.ephemeral_left_hsm,
        "{algorithm}: Transit takes SHA-1"
    );
    let aws = copy(&family, "aws");
    if algorithm == "hmac-sha256" {
        // A secret key fits one RSA block: RSAES_OAEP_SHA_1 keeps the wrap wholly in the HSM.
        assert_eq!(aws.import_method, "rsa-oaep-sha1");
        assert!(!aws.ephemeral_left_hsm);
    } else {
        assert_eq!(aws.import_method, "rsa-aes-key-wrap-sha256", "{algorithm}");
        assert!(
            aws.ephemeral_left_hsm,
            "{algorithm}: SoftHSM2's OAEP has no SHA-256, and the record says so"
        );
    }
}

async fn mac_verifies(keys: &mut common::Keys, key: &str, message: &[u8], mac: &[u8]) -> bool {
    keys.verify_mac(pb::VerifyMacRequest {
        key: key.into(),
        message: message.to_vec(),
        mac: mac.to_vec(),
        key_version: 0,
    })
    .await
    .unwrap_or_else(|e| panic!("VerifyMac with {key}: {e}"))
    .into_inner()
    .valid
}

async fn signature_verifies(
    keys: &mut common::Keys,
    key: &str,
    message: &[u8],
    signature: Vec<u8>,
) -> bool {
    keys.verify(pb::VerifyRequest {
        key: key.into(),
        input: Some(pb::verify_request::Input::Message(message.to_vec())),
        signature,
        key_version: 0,
    })
    .await
    .unwrap_or_else(|e| panic!("Verify with {key}: {e}"))
    .into_inner()
    .valid
}

#[tokio::test(flavor = "multi_thread")]
async fn byok_hmac_and_rsa_keys_from_softhsm_into_openbao_and_localstack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Backends::start("e2e-byok-keys").await;
    let server = start_gateway(dir.path(), &b);
    let mut keys = server.root().await;

    what_no_target_takes_is_refused_up_front(&mut keys).await;
    hmac_copies_hold_the_hsm_key(&mut keys, &server).await;
    for (name, algorithm) in [
        ("byok/rsa2048", "rsa-2048-pss"),
        ("byok/rsa3072", "rsa-3072-pss"),
    ] {
        rsa_copies_share_the_hsm_public_key(&mut keys, &server, name, algorithm).await;
    }
}

/// The same HMAC key in all three places: every place's MAC is the same bytes, and each
/// verifies through every other place.
async fn hmac_copies_hold_the_hsm_key(keys: &mut common::Keys, server: &Server) {
    import(keys, server, "byok/mac", "hmac-sha256").await;
    let message = b"bring your own mac key";
    let from_hsm = mac(keys, "byok/mac", message).await;
    assert_eq!(from_hsm.len(), 32, "HMAC-SHA256");
    for copy in ["byok/mac.vault", "byok/mac.aws"] {
        let from_copy = mac(keys, copy, message).await;
        assert_eq!(from_copy, from_hsm, "{copy} computes the HSM key's HMAC");
        assert!(
            mac_verifies(keys, "byok/mac", message, &from_copy).await,
            "{copy}'s MAC verifies through the HSM key"
        );
        assert!(
            mac_verifies(keys, copy, message, &from_hsm).await,
            "the HSM's MAC verifies through {copy}"
        );
        assert!(
            !mac_verifies(keys, copy, b"another message", &from_hsm).await,
            "{copy} refuses a MAC of another message"
        );
    }
    println!("ok: an HMAC-SHA256 key's copies compute and verify the HSM key's MACs");
}

/// Each copy has the HSM's SubjectPublicKeyInfo, its signatures verify under the HSM key,
/// and the HSM's signatures verify under each copy.
async fn rsa_copies_share_the_hsm_public_key(
    keys: &mut common::Keys,
    server: &Server,
    name: &str,
    algorithm: &str,
) {
    import(keys, server, name, algorithm).await;
    let message = b"bring your own signing key";
    let hsm_spki = public_key(keys, name).await;
    let from_hsm = signature_of(keys, name, message).await;
    for target in ["vault", "aws"] {
        let copy = format!("{name}.{target}");
        assert_eq!(public_key(keys, &copy).await, hsm_spki, "{copy}");
        let signature = signature_of(keys, &copy, message).await;
        assert!(
            signature_verifies(keys, name, message, signature).await,
            "{copy}'s signature verifies under the HSM key"
        );
        assert!(
            signature_verifies(keys, &copy, message, from_hsm.clone()).await,
            "the HSM's signature verifies under {copy}"
        );
    }
    println!("ok: {algorithm}: the copies share the HSM's public key and signatures");
}

/// Refused with INVALID_ARGUMENT before any backend is called, naming the target and the
/// algorithm; nothing is created. The local provider (dev mode) imports nothing.
async fn what_no_target_takes_is_refused_up_front(keys: &mut common::Keys) {
    let cases = [
        (
            byok_import("byok/refused", "hmac-sha256", &["vault", "local"]),
            "target 'local' (local) does not import hmac-sha256 keys",
        ),
        (
            byok_import("byok/refused", "rsa-2048-pss", &["local"]),
            "target 'local' (local) does not import rsa-2048-pss keys",
        ),
        (
            byok_import("byok/refused", "rsa-4096-pss", &["vault", "aws"]),
            "rsa-4096-pss is not supported yet",
        ),
        (
            byok_import("byok/refused", "rsa-2048-pkcs1", &["aws"]),
            "rsa-2048-pkcs1 is not supported yet",
        ),
    ];
    for (request, says) in cases {
        let status = keys
            .byok_import(request)
            .await
            .expect_err("an import no target can take is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{says}: {status:?}");
    }
    for name in ["byok/refused", "byok/refused.vault", "byok/refused.aws"] {
        let status = keys
            .get_key(pb::GetKeyRequest {
                key: name.into(),
                usage: false,
            })
            .await
            .expect_err("nothing was made");
        assert_eq!(status.code(), tonic::Code::NotFound, "{name}");
    }
    println!("ok: what no target takes is refused before anything is made");
}
