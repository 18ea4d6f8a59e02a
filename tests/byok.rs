//! BYOK end to end through gRPC: an AES-256 key generated in SoftHSM2, wrapped there and
//! imported into OpenBao (Transit) and LocalStack (AWS KMS); every copy registered and usable
//! through keygate, the HSM's key unreadable, no key bytes in the audit log; an EC P-256 key
//! whose copies share the HSM's public key; a target that is down leaves the others imported
//! and the family incomplete (a `byok-family-incomplete` posture finding), and a retry
//! completes it (the finding closes).
//!
//! Needs SoftHSM2, OpenBao and LocalStack (`tests/run.sh byok` installs them).

mod common;

use base64::Engine as _;
use common::byok::{byok_import, copy, public_key};
use common::hsm::TestHsm as Hsm;
use common::posture::open_finding;
use common::{ROOT_TOKEN, Server, ServerOptions, events_for, request_id};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use keygate::pb;
use keygate::pb::posture_service_client::PostureServiceClient;
use keygate_test_backends::localstack::LocalStack;
use keygate_test_backends::openbao::OpenBao;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-byok";
const SO_PIN: &str = "1234";
const USER_PIN: &str = "5678";
// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const PIN_VAR: &str = "E2E_BYOK_HSM_PIN";
const VAULT_TOKEN_VAR: &str = "E2E_BYOK_VAULT_TOKEN";
const AWS_KEY_ID_VAR: &str = "E2E_BYOK_AWS_ACCESS_KEY_ID";
const AWS_SECRET_VAR: &str = "E2E_BYOK_AWS_SECRET_ACCESS_KEY";
/// keygate's ciphertext header (src/gateway/envelope.rs); the provider's blob follows it.
const HEADER_LEN: usize = 23;

fn hsm() -> Hsm {
    Hsm::new(TOKEN, SO_PIN, USER_PIN)
}

impl Hsm {
    fn secret_key(&self, session: &Session, key_id: &str) -> ObjectHandle {
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(key_id.as_bytes().to_vec()),
            ])
            .expect("find");
        assert_eq!(handles.len(), 1, "one secret key labelled {key_id}");
        handles[0]
    }
}

async fn start_localstack() -> LocalStack {
    match tokio::task::spawn_blocking(LocalStack::start).await {
        Ok(Ok(ls)) => ls,
        Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
        Err(e) => panic!("LocalStack start-up task failed: {e}"),
    }
}

fn start_gateway(dir: &Path, hsm: &Hsm, bao: &OpenBao, aws_endpoint: &str) -> Server {
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[providers.hsm]
kind = "pkcs11"
module = "{module}"
token = {{ label = "{TOKEN}" }}
user_pin = {{ env = "{PIN_VAR}" }}
oaep_unpad_in_provider = true

[providers.vault]
kind = "vault"
address = "{vault}"
mount = "transit"
auth = {{ method = "token", token = {{ env = "{VAULT_TOKEN_VAR}" }} }}

[providers.aws]
kind = "aws-kms"
region = "us-east-1"
endpoint_url = "{aws_endpoint}"
credentials = {{ source = "env", access_key_id_env = "{AWS_KEY_ID_VAR}", secret_access_key_env = "{AWS_SECRET_VAR}" }}
"#,
            module = hsm.hsm.module_path().display(),
            vault = bao.addr(),
        ),
    )
    .expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            env: vec![
                (
                    "SOFTHSM2_CONF".into(),
                    hsm.hsm.conf_path().display().to_string(),
                ),
                (PIN_VAR.into(), USER_PIN.into()),
                (VAULT_TOKEN_VAR.into(), bao.token().into()),
                (AWS_KEY_ID_VAR.into(), "test".into()),
                (AWS_SECRET_VAR.into(), "test".into()),
            ],
            ..Default::default()
        },
    )
}

fn import_request(name: &str, targets: &[&str]) -> pb::ByokImportRequest {
    byok_import(name, "aes-256-gcm", targets)
}

async fn round_trip(keys: &mut common::Keys, key: &str) -> Vec<u8> {
    let sealed = keys
        .encrypt(pb::EncryptRequest {
            key: key.into(),
            plaintext: b"bring your own key".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("encrypt under {key}: {e}"))
        .into_inner()
        .ciphertext;
    let opened = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.clone(),
            associated_data: Vec::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("decrypt under {key}: {e}"))
        .into_inner();
    assert_eq!(opened.plaintext, b"bring your own key", "{key}");
    sealed
}

/// No string in an event's details long enough to be key material or a wrapped key, in
/// base64 or hex (ids, URIs and names are split by `-`, `.`, `:` and `/`).
fn holds_no_key_bytes(details: &serde_json::Value) -> Result<(), String> {
    match details {
        serde_json::Value::String(s) => {
            let longest = s
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '='))
                .map(str::len)
                .max()
                .unwrap_or(0);
            if longest >= 40 {
                return Err(s.clone());
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(holds_no_key_bytes),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "wrapping_key_id")
            .try_for_each(|(_, v)| holds_no_key_bytes(v)),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn byok_aes_and_ec_keys_from_softhsm_into_openbao_and_localstack() {
    let hsm = hsm();
    let ls = start_localstack().await;
    let mut bao = OpenBao::start().unwrap_or_else(|e| panic!("cannot start OpenBao: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_gateway(dir.path(), &hsm, &bao, &ls.endpoint());
    let mut keys = server.root().await;
    bad_requests_are_refused_before_anything_is_made(&mut keys).await;

    let response = keys
        .byok_import(import_request("byok/master", &["vault", "aws"]))
        .await
        .unwrap_or_else(|e| panic!("ByokImport: {e}\n{}", server.output()));
    let import_id = request_id(&response);
    let family = response.into_inner();
    assert_eq!(family.state, "complete", "{family:?}");
    let original = family.original.clone().expect("the original");
    assert_eq!(original.provider, "hsm");
    let vault = copy(&family, "vault");
    assert_eq!(
        (vault.status.as_str(), vault.import_method.as_str()),
        ("imported", "rsa-aes-key-wrap-sha1")
    );
    assert!(
        !vault.ephemeral_left_hsm,
        "Transit takes SHA-1 OAEP: all in the HSM"
    );
    assert!(vault.provider_uri.starts_with("hashivault://transit/keys/"));
    let aws = copy(&family, "aws");
    assert_eq!(
        (aws.status.as_str(), aws.import_method.as_str()),
        ("imported", "rsa-oaep-sha1")
    );
    assert!(!aws.ephemeral_left_hsm);
    assert!(
        aws.provider_uri.starts_with("awskms:///arn:aws:kms:"),
        "{}",
        aws.provider_uri
    );
    assert!(
        !aws.import_expires_at.is_empty(),
        "KMS import parameters expire"
    );
    for c in [vault, aws] {
        assert_eq!(c.key_name, format!("byok/master.{}", c.provider));
        assert_eq!(c.wrapping_key_id.len(), 32);
        assert!(
            !c.imported_at.is_empty() && c.imported_by == "root",
            "{c:?}"
        );
    }
    println!("ok: imported into vault and aws, wholly wrapped in the HSM");

    // Every copy works through keygate, and so does the original.
    round_trip(&mut keys, "byok/master").await;
    round_trip(&mut keys, "byok/master.aws").await;
    let sealed = round_trip(&mut keys, "byok/master.vault").await;

    // Transit's ciphertext (`vault:v1:` + base64 of nonce || ciphertext || tag, AES-256-GCM,
    // keygate's header as associated data) opened by the HSM's own key, inside the HSM: the
    // copy is the same key.
    let transit = std::str::from_utf8(&sealed[HEADER_LEN..]).expect("a Transit ciphertext");
    let body = base64::engine::general_purpose::STANDARD
        .decode(transit.strip_prefix("vault:v1:").expect("vault:v1: prefix"))
        .expect("base64");
    let session = hsm.session();
    let key = hsm.secret_key(&session, &original.id);
    let mut iv = body[..12].to_vec();
    let params = GcmParams::new(&mut iv, &sealed[..HEADER_LEN], 128.into()).expect("gcm params");
    let opened = session
        .decrypt(&Mechanism::AesGcm(params), key, &body[12..])
        .expect("the HSM key opens Transit's ciphertext");
    assert_eq!(opened, b"bring your own key");
    println!("ok: the HSM key opens the Transit copy's ciphertext");

    // The HSM key's value is unreadable, after wrapping as before.
    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .expect("C_GetAttributeValue");
    assert!(
        matches!(info[0], AttributeInfo::Sensitive),
        "CKA_VALUE must be CKR_ATTRIBUTE_SENSITIVE, got {:?}",
        info[0]
    );

    // One outcome event with each target's steps; no key bytes anywhere in it.
    let mut audit = server.audit(ROOT_TOKEN).await;
    let events = events_for(&mut audit, &import_id).await;
    let outcome = events
        .iter()
        .find(|e| e.details.contains("family_state"))
        .unwrap_or_else(|| panic!("no outcome event in {events:?}"));
    let details: serde_json::Value = serde_json::from_str(&outcome.details).expect("json");
    for target in ["vault", "aws"] {
        let steps: Vec<&str> = details["targets"][target]
            .as_array()
            .unwrap_or_else(|| panic!("no steps for {target} in {details}"))
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect();
        assert_eq!(
            steps,
            [
                "prepared",
                "parameters fetched",
                "wrapped",
                "imported",
                "registered"
            ],
            "{target}"
        );
    }
    for event in &events {
        let details: serde_json::Value =
            serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
        if let Err(s) = holds_no_key_bytes(&details) {
            panic!("event {} holds a long opaque string: {s}", event.sequence);
        }
    }

    // The family as `keygate byok show` prints it.
    let out = server
        .cli()
        .args(["byok", "show", "byok/master"])
        .output()
        .expect("run the CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[complete]"), "{text}");
    assert!(
        text.contains("vault") && text.contains("byok/master.aws"),
        "{text}"
    );

    ec_signing_key_copies_share_the_hsm_public_key(&mut keys).await;

    // With OpenBao down, AWS still gets its copy; the family is incomplete and says why.
    bao.stop();
    let out = server
        .cli()
        .args([
            "byok",
            "import",
            "byok/partial",
            "--from",
            "hsm",
            "--to",
            "vault,aws",
            "--owner",
            "root",
            "--crypto-period",
            "90d",
        ])
        .output()
        .expect("run the CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "an incomplete import exits non-zero: {text}"
    );
    assert!(text.contains("[incomplete]"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("vault") && l.contains("FAILED")),
        "{text}"
    );
    let family = keys
        .get_key_family(pb::GetKeyFamilyRequest {
            key: "byok/partial".into(),
        })
        .await
        .expect("GetKeyFamily")
        .into_inner();
    assert_eq!(family.state, "incomplete");
    assert_eq!(copy(&family, "aws").status, "imported");
    let failed = copy(&family, "vault");
    assert_eq!(failed.status, "failed");
    assert!(
        failed.error.starts_with("target 'vault'"),
        "{}",
        failed.error
    );
    round_trip(&mut keys, "byok/partial.aws").await;
    let out = server
        .cli()
        .args(["byok", "show", "byok/partial"])
        .output()
        .expect("run the CLI");
    assert!(!out.status.success(), "an incomplete family exits non-zero");
    // A posture scan reports the family (its original's finding), naming the failed copy.
    let mut posture = PostureServiceClient::with_interceptor(
        server.channel().await,
        common::Bearer::new(ROOT_TOKEN),
    );
    let partial = keys
        .get_key(pb::GetKeyRequest {
            key: "byok/partial".into(),
            ..Default::default()
        })
        .await
        .expect("GetKey")
        .into_inner();
    posture
        .run_scan(pb::RunScanRequest {})
        .await
        .expect("a scan with OpenBao down");
    let incomplete = open_finding(&mut posture, "byok-family-incomplete", &partial.id)
        .await
        .expect("a byok-family-incomplete finding");
    assert_eq!(incomplete.severity, "high");
    assert!(
        incomplete.evidence.contains("1 of 2 copies lacking")
            && incomplete
                .evidence
                .contains("the copy into 'vault' was not imported"),
        "{}",
        incomplete.evidence
    );
    // The complete family has none.
    let master = keys
        .get_key(pb::GetKeyRequest {
            key: "byok/master".into(),
            ..Default::default()
        })
        .await
        .expect("GetKey")
        .into_inner();
    assert!(
        open_finding(&mut posture, "byok-family-incomplete", &master.id)
            .await
            .is_none()
    );
    println!("ok: a target down leaves the others imported and the family incomplete");

    // Once OpenBao is back, a retry imports the missing copy; the AWS copy is left as it is.
    bao.restart()
        .unwrap_or_else(|e| panic!("OpenBao did not start again: {e}"));
    let aws_before = copy(&family, "aws").clone();
    // The provider's circuit breaker may still be open from the outage: retry until the
    // import goes through, within a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = server
            .cli()
            .args(["byok", "retry", "byok/partial"])
            .output()
            .expect("run the CLI");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retry never completed the family: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let family = keys
        .get_key_family(pb::GetKeyFamilyRequest {
            key: "byok/partial".into(),
        })
        .await
        .expect("GetKeyFamily")
        .into_inner();
    assert_eq!(family.state, "complete", "{family:?}");
    assert_eq!(copy(&family, "vault").status, "imported");
    assert!(copy(&family, "vault").error.is_empty());
    assert_eq!(copy(&family, "aws"), &aws_before);
    round_trip(&mut keys, "byok/partial.vault").await;
    // The next scan in which the HSM is listed closes the finding.
    let scanned = posture
        .run_scan(pb::RunScanRequest {})
        .await
        .expect("a scan")
        .into_inner();
    assert!(
        scanned
            .listings
            .iter()
            .any(|l| l.provider == "hsm" && l.error.is_empty()),
        "{scanned:?}"
    );
    assert!(
        open_finding(&mut posture, "byok-family-incomplete", &partial.id)
            .await
            .is_none()
    );
    println!("ok: a retry completes the family");
}

/// An EC P-256 key: its PKCS#8 wrapped in the HSM (for AWS, RSA_AES_KEY_WRAP_SHA_256: the
/// ephemeral AES key alone leaves the HSM for the SHA-256 OAEP step). Each copy's public key
/// is the HSM's SubjectPublicKeyInfo, and each copy's signature verifies under the HSM key.
async fn ec_signing_key_copies_share_the_hsm_public_key(keys: &mut common::Keys) {
    let family = keys
        .byok_import(byok_import("byok/signer", "ecdsa-p256", &["vault", "aws"]))
        .await
        .expect("ByokImport of an EC key")
        .into_inner();
    assert_eq!(family.state, "complete", "{family:?}");
    let vault = copy(&family, "vault");
    assert_eq!(vault.import_method, "rsa-aes-key-wrap-sha1");
    assert!(!vault.ephemeral_left_hsm);
    let aws = copy(&family, "aws");
    assert_eq!(aws.import_method, "rsa-aes-key-wrap-sha256");
    assert!(
        aws.ephemeral_left_hsm,
        "SoftHSM2's OAEP has no SHA-256: the record says so"
    );

    let hsm_spki = public_key(keys, "byok/signer").await;
    for copy in ["byok/signer.vault", "byok/signer.aws"] {
        assert_eq!(public_key(keys, copy).await, hsm_spki, "{copy}");
        let signature = keys
            .sign(pb::SignRequest {
                key: copy.into(),
                input: Some(pb::sign_request::Input::Message(b"byok".to_vec())),
            })
            .await
            .unwrap_or_else(|e| panic!("sign with {copy}: {e}"))
            .into_inner()
            .signature;
        let valid = keys
            .verify(pb::VerifyRequest {
                key: "byok/signer".into(),
                input: Some(pb::verify_request::Input::Message(b"byok".to_vec())),
                signature,
                key_version: 0,
            })
            .await
            .expect("verify with the HSM key")
            .into_inner()
            .valid;
        assert!(valid, "{copy}'s signature verifies under the HSM key");
    }
    println!("ok: an EC P-256 key's copies share the HSM's public key and signatures");
}

/// Refused before any backend is called: nothing is created.
async fn bad_requests_are_refused_before_anything_is_made(keys: &mut common::Keys) {
    let cases = [
        (
            byok_import("byok/bad", "rsa-2048-oaep", &["vault"]),
            "not supported yet",
        ),
        (import_request("byok/bad", &[]), "at least one provider"),
        (
            import_request("byok/bad", &["nowhere"]),
            "no provider named 'nowhere'",
        ),
        (
            import_request("byok/bad", &["vault", "vault"]),
            "named twice",
        ),
        (import_request("byok/bad", &["hsm"]), "the source"),
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
            key: "byok/bad".into(),
            usage: false,
        })
        .await
        .expect_err("no key was made");
    assert_eq!(status.code(), tonic::Code::NotFound);
    println!("ok: bad requests are refused before anything is made");
}
