//! The gRPC-level conformance suite: what every provider must do when driven through the
//! gateway's API. Each provider's end-to-end test calls [`run`] with its algorithms.

use super::{Keys, create};
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use keygate::pb;
use tonic::Code;

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// What a provider legitimately cannot do; the suite checks the refusal instead of the feature.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// Algorithms whose keys the provider cannot rotate (AWS KMS rotates only symmetric
    /// encryption keys). For these, RotateKey must answer FAILED_PRECONDITION naming the
    /// provider, and the checks that need a second version are skipped.
    pub cannot_rotate: &'a [&'a str],
}

/// Runs every check for every algorithm on `provider` (empty = the gateway's default).
pub async fn run(keys: &mut Keys, provider: &str, prefix: &str, algorithms: &[&str]) {
    run_with(keys, provider, prefix, algorithms, Options::default()).await
}

/// [`run`], allowing for what the provider cannot do.
pub async fn run_with(
    keys: &mut Keys,
    provider: &str,
    prefix: &str,
    algorithms: &[&str],
    options: Options<'_>,
) {
    for algorithm in algorithms {
        let rotation = if options.cannot_rotate.contains(algorithm) {
            Rotation::Refused(provider)
        } else {
            Rotation::Works
        };
        let name = format!("{prefix}/{}", algorithm.replace('-', ""));
        let mut req = create(&name, algorithm, "root");
        req.provider = provider.into();
        let key = keys
            .create_key(req)
            .await
            .unwrap_or_else(|e| panic!("create {algorithm}: {e:?}"))
            .into_inner();
        assert_eq!(key.primary_version, 1, "{algorithm}");
        assert_eq!(key.state, "enabled");
        match key.purpose.as_str() {
            "encrypt" => encryption(keys, &name, algorithm, rotation).await,
            "sign" => signing(keys, &name, algorithm, rotation).await,
            "mac" => macs(keys, &name, rotation).await,
            other => panic!("unexpected purpose {other}"),
        }
        wrong_purpose(keys, &name, &key.purpose).await;
        disabled(keys, &name, &key.purpose).await;
    }
}

#[derive(Clone, Copy)]
enum Rotation<'a> {
    Works,
    /// The provider (named) cannot rotate this key.
    Refused(&'a str),
}

/// For a key its provider cannot rotate: RotateKey is refused with FAILED_PRECONDITION naming
/// the provider, and the key keeps its single version.
async fn rotation_refused(keys: &mut Keys, name: &str, provider: &str) {
    let err = keys
        .rotate_key(pb::RotateKeyRequest {
            key: name.into(),
            ..Default::default()
        })
        .await
        .expect_err("rotation of a key the provider cannot rotate succeeded");
    assert_eq!(err.code(), Code::FailedPrecondition, "{name}: {err:?}");
    assert!(
        err.message().contains(provider),
        "{name}: the refusal does not name provider '{provider}': {}",
        err.message()
    );
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: name.into(),
            usage: false,
        })
        .await
        .expect("get key")
        .into_inner();
    assert_eq!(
        key.primary_version, 1,
        "{name}: a refused rotation added a version"
    );
}

async fn encrypt(keys: &mut Keys, name: &str, pt: &[u8], aad: &[u8]) -> pb::EncryptResponse {
    keys.encrypt(pb::EncryptRequest {
        key: name.into(),
        plaintext: pt.to_vec(),
        associated_data: aad.to_vec(),
    })
    .await
    .unwrap_or_else(|e| panic!("encrypt with {name}: {e:?}"))
    .into_inner()
}

async fn decrypt(
    keys: &mut Keys,
    ct: &[u8],
    aad: &[u8],
) -> Result<pb::DecryptResponse, tonic::Status> {
    keys.decrypt(pb::DecryptRequest {
        ciphertext: ct.to_vec(),
        associated_data: aad.to_vec(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn encryption(keys: &mut Keys, name: &str, algorithm: &str, rotation: Rotation<'_>) {
    let symmetric = algorithm.starts_with("aes") || algorithm.starts_with("chacha");
    let aad: &[u8] = if symmetric { b"order-42" } else { b"" };
    let v1 = encrypt(keys, name, b"attack at dawn", aad).await;
    assert_eq!(v1.key_version, 1);
    let back = decrypt(keys, &v1.ciphertext, aad)
        .await
        .expect("decrypt v1");
    assert_eq!(back.plaintext, b"attack at dawn");
    assert_eq!(back.key_name, name);
    if symmetric {
        let wrong = decrypt(keys, &v1.ciphertext, b"order-43")
            .await
            .unwrap_err();
        assert_eq!(
            wrong.code(),
            Code::InvalidArgument,
            "{algorithm}: {wrong:?}"
        );
        let dk = keys
            .generate_data_key(pb::GenerateDataKeyRequest {
                key: name.into(),
                length_bytes: 32,
                without_plaintext: false,
                associated_data: Vec::new(),
            })
            .await
            .expect("data key")
            .into_inner();
        assert_eq!(dk.plaintext.len(), 32);
        let opened = decrypt(keys, &dk.ciphertext, b"")
            .await
            .expect("decrypt data key");
        assert_eq!(opened.plaintext, dk.plaintext);
        let sealed_only = keys
            .generate_data_key(pb::GenerateDataKeyRequest {
                key: name.into(),
                length_bytes: 0,
                without_plaintext: true,
                associated_data: Vec::new(),
            })
            .await
            .expect("data key without plaintext")
            .into_inner();
        assert!(sealed_only.plaintext.is_empty());
        assert_eq!(
            decrypt(keys, &sealed_only.ciphertext, b"")
                .await
                .expect("open")
                .plaintext
                .len(),
            32
        );
    }
    let mut tampered = v1.ciphertext.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        decrypt(keys, &tampered, aad).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    if let Rotation::Refused(provider) = rotation {
        return rotation_refused(keys, name, provider).await;
    }
    let rotated = keys
        .rotate_key(pb::RotateKeyRequest {
            key: name.into(),
            ..Default::default()
        })
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(rotated.primary_version, 2);
    assert_eq!(rotated.versions.len(), 2);
    let v2 = encrypt(keys, name, b"attack at dusk", aad).await;
    assert_eq!(
        v2.key_version, 2,
        "{algorithm}: new ciphertexts use the new version"
    );
    assert_eq!(
        decrypt(keys, &v1.ciphertext, aad)
            .await
            .expect("old ct")
            .plaintext,
        b"attack at dawn"
    );
    assert_eq!(
        decrypt(keys, &v2.ciphertext, aad)
            .await
            .expect("new ct")
            .plaintext,
        b"attack at dusk"
    );
    let moved = keys
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext: v1.ciphertext.clone(),
            source_associated_data: aad.to_vec(),
            destination_key: String::new(),
            destination_associated_data: aad.to_vec(),
        })
        .await
        .expect("re-encrypt")
        .into_inner();
    assert_eq!((moved.source_key_version, moved.key_version), (1, 2));
    assert_eq!(
        decrypt(keys, &moved.ciphertext, aad)
            .await
            .expect("moved")
            .plaintext,
        b"attack at dawn"
    );
}

fn verification_alg(algorithm: &str) -> &'static dyn VerificationAlgorithm {
    match algorithm {
        "ecdsa-p256" => &signature::ECDSA_P256_SHA256_ASN1,
        "ecdsa-p384" => &signature::ECDSA_P384_SHA384_ASN1,
        "ed25519" => &signature::ED25519,
        a if a.ends_with("-pss") => &signature::RSA_PSS_2048_8192_SHA256,
        a if a.ends_with("-pkcs1") => &signature::RSA_PKCS1_2048_8192_SHA256,
        other => panic!("no verifier for {other}"),
    }
}

async fn signing(keys: &mut Keys, name: &str, algorithm: &str, rotation: Rotation<'_>) {
    let msg = b"release v1.2.3".to_vec();
    let sig = keys
        .sign(pb::SignRequest {
            key: name.into(),
            input: Some(pb::sign_request::Input::Message(msg.clone())),
        })
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(sig.key_version, 1);
    let verify = |keys: &mut Keys, m: Vec<u8>, s: Vec<u8>, v: u32| {
        let mut keys = keys.clone();
        let name = name.to_string();
        async move {
            keys.verify(pb::VerifyRequest {
                key: name,
                input: Some(pb::verify_request::Input::Message(m)),
                signature: s,
                key_version: v,
            })
            .await
            .expect("verify")
            .into_inner()
            .valid
        }
    };
    assert!(verify(keys, msg.clone(), sig.signature.clone(), 0).await);
    assert!(!verify(keys, b"release v6.6.6".to_vec(), sig.signature.clone(), 0).await);
    let public = keys
        .get_public_key(pb::GetPublicKeyRequest {
            key: name.into(),
            key_version: 0,
        })
        .await
        .expect("public key")
        .into_inner();
    assert!(public.pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let raw = keygate_provider::spki_public_key_bits(&public.der).expect("SPKI");
    UnparsedPublicKey::new(verification_alg(algorithm), raw)
        .verify(&msg, &sig.signature)
        .unwrap_or_else(|_| panic!("{algorithm}: signature does not verify independently"));

    if let Rotation::Refused(provider) = rotation {
        return rotation_refused(keys, name, provider).await;
    }
    let rotated = keys
        .rotate_key(pb::RotateKeyRequest {
            key: name.into(),
            ..Default::default()
        })
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(rotated.primary_version, 2);
    let sig2 = keys
        .sign(pb::SignRequest {
            key: name.into(),
            input: Some(pb::sign_request::Input::Message(msg.clone())),
        })
        .await
        .expect("sign v2")
        .into_inner();
    assert_eq!(sig2.key_version, 2);
    assert!(
        verify(keys, msg.clone(), sig.signature.clone(), 1).await,
        "v1 signature verifies with v1"
    );
    assert!(
        verify(keys, msg.clone(), sig2.signature.clone(), 0).await,
        "v2 signature verifies with primary"
    );
}

async fn macs(keys: &mut Keys, name: &str, rotation: Rotation<'_>) {
    let tag = keys
        .generate_mac(pb::GenerateMacRequest {
            key: name.into(),
            message: b"amount=10".to_vec(),
        })
        .await
        .expect("mac")
        .into_inner();
    assert_eq!(tag.mac.len(), 32);
    let check = |keys: &mut Keys, m: &[u8], v: u32| {
        let mut keys = keys.clone();
        let req = pb::VerifyMacRequest {
            key: name.into(),
            message: m.to_vec(),
            mac: tag.mac.clone(),
            key_version: v,
        };
        async move {
            keys.verify_mac(req)
                .await
                .expect("verify mac")
                .into_inner()
                .valid
        }
    };
    assert!(check(keys, b"amount=10", 0).await);
    assert!(!check(keys, b"amount=1000", 0).await);
    if let Rotation::Refused(provider) = rotation {
        return rotation_refused(keys, name, provider).await;
    }
    keys.rotate_key(pb::RotateKeyRequest {
        key: name.into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    assert!(
        check(keys, b"amount=10", 1).await,
        "v1 tag verifies with version 1"
    );
    assert!(
        !check(keys, b"amount=10", 0).await,
        "v1 tag does not verify with the new primary"
    );
}

async fn wrong_purpose(keys: &mut Keys, name: &str, purpose: &str) {
    let r = if purpose == "sign" {
        code(
            keys.encrypt(pb::EncryptRequest {
                key: name.into(),
                plaintext: b"x".to_vec(),
                associated_data: vec![],
            })
            .await,
        )
    } else {
        code(
            keys.sign(pb::SignRequest {
                key: name.into(),
                input: Some(pb::sign_request::Input::Message(b"x".to_vec())),
            })
            .await,
        )
    };
    assert_eq!(r, Code::FailedPrecondition, "wrong purpose on {name}");
}

async fn disabled(keys: &mut Keys, name: &str, purpose: &str) {
    keys.disable_key(pb::DisableKeyRequest { key: name.into() })
        .await
        .expect("disable");
    let attempt = |keys: &mut Keys| {
        let mut keys = keys.clone();
        let name = name.to_string();
        let purpose = purpose.to_string();
        async move {
            match purpose.as_str() {
                "encrypt" => keys
                    .encrypt(pb::EncryptRequest {
                        key: name,
                        plaintext: b"x".to_vec(),
                        associated_data: vec![],
                    })
                    .await
                    .map(|_| ()),
                "sign" => keys
                    .sign(pb::SignRequest {
                        key: name,
                        input: Some(pb::sign_request::Input::Message(b"x".to_vec())),
                    })
                    .await
                    .map(|_| ()),
                _ => keys
                    .generate_mac(pb::GenerateMacRequest {
                        key: name,
                        message: b"x".to_vec(),
                    })
                    .await
                    .map(|_| ()),
            }
        }
    };
    let err = attempt(keys).await.expect_err("a disabled key was usable");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("disabled"), "{}", err.message());
    keys.enable_key(pb::EnableKeyRequest { key: name.into() })
        .await
        .expect("enable");
    attempt(keys).await.expect("re-enabled key is usable");
}
