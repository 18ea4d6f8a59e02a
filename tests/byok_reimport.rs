//! BYOK material that expires, and its re-import, end to end through gRPC: an AES-256 key
//! generated in SoftHSM2 and imported into LocalStack (AWS KMS) with a 30-day `ValidTo`; its
//! material deleted in KMS behind keygate's back (DeleteImportedKeyMaterial, what expiry
//! does: LocalStack 4.10 does not expire material itself), so the copy is unusable; then
//! `ReimportByok` wraps the same HSM key again and imports it into the same KMS key, and the
//! ciphertexts made before open again (the same material), with the family's record
//! updated. An HMAC key (no `ImportType` in KMS) goes the same way through the CLI. Requests
//! no target can honour are refused before anything is made.
//!
//! Needs SoftHSM2, OpenBao and LocalStack (`tests/run.sh byok` installs them).

mod common;

use common::backends::Backends;
use common::byok::byok_import;
use common::{ROOT_TOKEN, Server, ServerOptions, events_for, request_id};
use keygate::pb;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: i64 = 86_400;

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

fn lifetime(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

fn import_request(
    name: &str,
    algorithm: &str,
    targets: &[&str],
    material_expiry: Option<prost_types::Duration>,
) -> pb::ByokImportRequest {
    pb::ByokImportRequest {
        material_expiry,
        ..byok_import(name, algorithm, targets)
    }
}

fn aws_copy(family: &pb::KeyFamily) -> &pb::KeyCopy {
    family
        .copies
        .iter()
        .find(|c| c.provider == "aws")
        .unwrap_or_else(|| panic!("no aws copy in {family:?}"))
}

/// Seconds from now to an RFC 3339 time.
fn seconds_until(rfc3339: &str) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("'{rfc3339}' is not RFC 3339: {e}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    at.timestamp() - i64::try_from(now).expect("now")
}

/// The KMS key ARN of a copy's URI (`awskms:///arn:…`).
fn arn(copy: &pb::KeyCopy) -> String {
    copy.provider_uri
        .strip_prefix("awskms:///")
        .unwrap_or_else(|| panic!("not a KMS URI: {}", copy.provider_uri))
        .to_string()
}

async fn family(keys: &mut common::Keys, key: &str) -> pb::KeyFamily {
    keys.get_key_family(pb::GetKeyFamilyRequest { key: key.into() })
        .await
        .unwrap_or_else(|e| panic!("GetKeyFamily {key}: {e}"))
        .into_inner()
}

async fn encrypt(keys: &mut common::Keys, key: &str, plaintext: &[u8]) -> Vec<u8> {
    keys.encrypt(pb::EncryptRequest {
        key: key.into(),
        plaintext: plaintext.to_vec(),
        associated_data: Vec::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("encrypt under {key}: {e}"))
    .into_inner()
    .ciphertext
}

async fn decrypt(keys: &mut common::Keys, ciphertext: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    keys.decrypt(pb::DecryptRequest {
        ciphertext: ciphertext.to_vec(),
        associated_data: Vec::new(),
    })
    .await
    .map(|r| r.into_inner().plaintext.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_material_is_reimported_as_the_same_key() {
    let b = Backends::start("e2e-byok-reimport").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_gateway(dir.path(), &b);
    let mut keys = server.root().await;
    refused_before_anything_is_made(&mut keys).await;

    // Imported with a 30-day lifetime: KMS's ValidTo, recorded with the copy.
    let family_0 = keys
        .byok_import(import_request(
            "reimport/dek",
            "aes-256-gcm",
            &["aws"],
            lifetime(30 * DAY),
        ))
        .await
        .unwrap_or_else(|e| panic!("ByokImport: {e}\n{}", server.output()))
        .into_inner();
    assert_eq!(family_0.state, "complete", "{family_0:?}");
    let before = aws_copy(&family_0).clone();
    let left = seconds_until(&before.material_expires_at);
    assert!(
        (30 * DAY - 300..=30 * DAY).contains(&left),
        "material expires in 30 days, not {left}s: {before:?}"
    );
    assert_eq!(before.material_validity, lifetime(30 * DAY));

    // Ciphertexts made while the material is there.
    let sealed: Vec<Vec<u8>> = [b"first".as_slice(), b"second".as_slice()]
        .iter()
        .map(|p| p.to_vec())
        .collect();
    let mut ciphertexts = Vec::new();
    for plaintext in &sealed {
        ciphertexts.push(encrypt(&mut keys, "reimport/dek.aws", plaintext).await);
    }

    // The material goes (what KMS does at ValidTo): the copy is unusable.
    let kms = b.kms();
    kms.delete_imported_key_material()
        .key_id(arn(&before))
        .send()
        .await
        .expect("DeleteImportedKeyMaterial");
    let refused = keys
        .encrypt(pb::EncryptRequest {
            key: "reimport/dek.aws".into(),
            plaintext: b"third".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect_err("no material, no encryption");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        decrypt(&mut keys, &ciphertexts[0]).await.is_err(),
        "no material, no decryption"
    );
    println!("ok: without its material the copy encrypts and decrypts nothing");

    // Re-imported: the same HSM key wrapped again, into the same KMS key, for 7 days.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = keys
        .reimport_byok(pb::ReimportByokRequest {
            key: "reimport/dek".into(),
            targets: Vec::new(),
            material_expiry: lifetime(7 * DAY),
        })
        .await
        .unwrap_or_else(|e| panic!("ReimportByok: {e}\n{}", server.output()));
    let reimport_id = request_id(&response);
    let family_1 = response.into_inner();
    assert_eq!(family_1.state, "complete");
    let after = aws_copy(&family_1).clone();
    assert_eq!(
        (&after.key_id, &after.key_name, &after.provider_uri),
        (&before.key_id, &before.key_name, &before.provider_uri),
        "the same copy in the same KMS key"
    );
    assert!(after.imported_at > before.imported_at, "{after:?}");
    assert_eq!(after.imported_by, "root");
    let left = seconds_until(&after.material_expires_at);
    assert!(
        (7 * DAY - 300..=7 * DAY).contains(&left),
        "material now expires in 7 days, not {left}s"
    );
    assert_eq!(after.material_validity, lifetime(7 * DAY));
    assert_eq!(family(&mut keys, "reimport/dek").await, family_1);

    // The ciphertexts made before open again: the same material is back.
    for (plaintext, ciphertext) in sealed.iter().zip(&ciphertexts) {
        let opened = decrypt(&mut keys, ciphertext)
            .await
            .unwrap_or_else(|e| panic!("decrypt after re-import: {e}"));
        assert_eq!(&opened, plaintext);
    }
    let fresh = encrypt(&mut keys, "reimport/dek.aws", b"third").await;
    assert_eq!(decrypt(&mut keys, &fresh).await.expect("decrypt"), b"third");
    println!("ok: re-imported, the ciphertexts made before open again");

    // One outcome event with the target's steps.
    let mut audit = server.audit(ROOT_TOKEN).await;
    let events = events_for(&mut audit, &reimport_id).await;
    let outcome = events
        .iter()
        .find(|e| e.details.contains("family_state"))
        .unwrap_or_else(|| panic!("no outcome event in {events:?}"));
    assert_eq!(outcome.action, "ByokImport");
    let details: serde_json::Value = serde_json::from_str(&outcome.details).expect("json");
    let steps: Vec<&str> = details["targets"]["aws"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps for aws in {details}"))
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["parameters fetched", "wrapped", "re-imported", "recorded"]
    );
    assert_eq!(details["material_expiry"], "7d", "{details}");

    hmac_key_reimported_through_the_cli(&server, &mut keys, &kms).await;
}

/// An HMAC key (KMS takes `ImportType` for symmetric encryption keys only): its material
/// deleted and re-imported with `keygate byok reimport`, keeping the lifetime it had (none).
async fn hmac_key_reimported_through_the_cli(
    server: &Server,
    keys: &mut common::Keys,
    kms: &aws_sdk_kms::Client,
) {
    let made = keys
        .byok_import(import_request(
            "reimport/mac",
            "hmac-sha256",
            &["aws"],
            None,
        ))
        .await
        .expect("ByokImport of an HMAC key")
        .into_inner();
    let before = aws_copy(&made).clone();
    assert!(before.material_expires_at.is_empty(), "{before:?}");
    let tag = keys
        .generate_mac(pb::GenerateMacRequest {
            key: "reimport/mac.aws".into(),
            message: b"same key".to_vec(),
        })
        .await
        .expect("GenerateMac")
        .into_inner()
        .mac;
    kms.delete_imported_key_material()
        .key_id(arn(&before))
        .send()
        .await
        .expect("DeleteImportedKeyMaterial");
    assert!(
        keys.generate_mac(pb::GenerateMacRequest {
            key: "reimport/mac.aws".into(),
            message: b"same key".to_vec(),
        })
        .await
        .is_err()
    );
    let out = server
        .cli()
        .args(["byok", "reimport", "reimport/mac", "--to", "aws"])
        .output()
        .expect("run the CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[complete]"), "{text}");
    let again = keys
        .generate_mac(pb::GenerateMacRequest {
            key: "reimport/mac.aws".into(),
            message: b"same key".to_vec(),
        })
        .await
        .expect("GenerateMac after re-import")
        .into_inner()
        .mac;
    assert_eq!(again, tag, "the same HMAC key is back");
    let after = aws_copy(&family(keys, "reimport/mac").await).clone();
    assert!(after.material_expires_at.is_empty(), "{after:?}");
    assert_eq!(after.provider_uri, before.provider_uri);
    println!("ok: an HMAC key re-imported through the CLI computes the same MACs");
}

/// Lifetimes no target gives, and re-imports of what cannot be re-imported, are refused
/// with INVALID_ARGUMENT before any backend is called.
async fn refused_before_anything_is_made(keys: &mut common::Keys) {
    let cases = [
        (
            import_request("reimport/bad", "aes-256-gcm", &["aws"], lifetime(400 * DAY)),
            "at most 365d",
        ),
        (
            import_request(
                "reimport/bad",
                "aes-256-gcm",
                &["aws", "vault"],
                lifetime(DAY),
            ),
            "target 'vault' (vault) keeps imported material without an expiry",
        ),
        (
            import_request("reimport/bad", "aes-256-gcm", &["aws"], lifetime(30)),
            "at least one minute",
        ),
    ];
    for (request, says) in cases {
        let status = keys
            .byok_import(request)
            .await
            .expect_err("a bad ByokImport is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{says}: {status:?}");
    }
    let status = keys
        .get_key(pb::GetKeyRequest {
            key: "reimport/bad".into(),
            usage: false,
        })
        .await
        .expect_err("no key was made");
    assert_eq!(status.code(), tonic::Code::NotFound);

    // A family with a Transit copy only: Transit cannot take the same material again.
    keys.byok_import(import_request(
        "reimport/vault",
        "aes-256-gcm",
        &["vault"],
        None,
    ))
    .await
    .expect("ByokImport into Transit");
    for (targets, says) in [
        (vec![], "no imported copy in a target that re-imports"),
        (vec!["vault"], "cannot import the same material again"),
        (vec!["aws"], "has no copy in target 'aws'"),
    ] {
        let status = keys
            .reimport_byok(pb::ReimportByokRequest {
                key: "reimport/vault".into(),
                targets: targets.iter().map(|t| t.to_string()).collect(),
                material_expiry: None,
            })
            .await
            .expect_err("nothing to re-import");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{says}: {status:?}");
    }
    println!("ok: lifetimes and re-imports no target can honour are refused");
}
