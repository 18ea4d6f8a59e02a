//! The Cloud KMS emulator's audit log: every call driven through the official SDK appends
//! one Cloud Audit Logs `LogEntry` to a JSON Lines file, with the fields Google documents.

use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::{
    CryptoKey, CryptoKeyVersionTemplate, crypto_key, crypto_key_version,
};
use keygate_emulators::gcp::{self, GcpOptions};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LOCATION: &str = "projects/audit-test/locations/global";
const AGENT: &str = "keygate/0.1.0 keygate-request-id/0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000";

fn entries(path: &std::path::Path) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines() {
        out.push(serde_json::from_str(line)?);
    }
    Ok(out)
}

fn field<'v>(entry: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(entry, |v, k| &v[k])
}

#[tokio::test]
async fn every_call_appends_a_documented_log_entry() -> TestResult {
    let dir = tempfile_dir()?;
    let log = dir.join("cloudaudit.jsonl");
    let emu = gcp::spawn_with(
        "127.0.0.1:0",
        GcpOptions {
            audit_log: Some(log.clone()),
            principal_email: "svc-keygate@audit-test.iam.gserviceaccount.com".into(),
        },
    )
    .await?;
    assert_eq!(emu.audit_log_path(), Some(log.as_path()));
    let client = KeyManagementService::builder()
        .with_endpoint(emu.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await?;

    let ring = client
        .create_key_ring()
        .set_parent(LOCATION)
        .set_key_ring_id("audited")
        .with_user_agent(AGENT)
        .send()
        .await?;
    let key = client
        .create_crypto_key()
        .set_parent(&ring.name)
        .set_crypto_key_id("dek")
        .set_crypto_key(
            CryptoKey::new()
                .set_purpose(crypto_key::CryptoKeyPurpose::EncryptDecrypt)
                .set_version_template(CryptoKeyVersionTemplate::new().set_algorithm(
                    crypto_key_version::CryptoKeyVersionAlgorithm::GoogleSymmetricEncryption,
                )),
        )
        .with_user_agent(AGENT)
        .send()
        .await?;
    let secret = b"top secret plaintext 4111".to_vec();
    client
        .encrypt()
        .set_name(&key.name)
        .set_plaintext(secret.clone())
        .with_user_agent(AGENT)
        .send()
        .await?;
    let missing = client
        .get_crypto_key()
        .set_name(format!("{}/cryptoKeys/nope", ring.name))
        .with_user_agent(AGENT)
        .send()
        .await;
    assert!(missing.is_err());
    // Refused by the throttling hook: stands for Google's front end, not logged.
    emu.hooks().fail_next(1, 429);
    assert!(
        client
            .get_crypto_key()
            .set_name(&key.name)
            .send()
            .await
            .is_err()
    );

    let all = entries(&log)?;
    let methods: Vec<&str> = all
        .iter()
        .map(|e| field(e, "protoPayload.methodName").as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        methods,
        [
            "CreateKeyRing",
            "CreateCryptoKey",
            "Encrypt",
            "GetCryptoKey"
        ]
    );
    for e in &all {
        assert_eq!(
            field(e, "protoPayload.@type"),
            "type.googleapis.com/google.cloud.audit.AuditLog"
        );
        assert_eq!(
            field(e, "protoPayload.serviceName"),
            "cloudkms.googleapis.com"
        );
        assert_eq!(
            field(e, "protoPayload.authenticationInfo.principalEmail"),
            "svc-keygate@audit-test.iam.gserviceaccount.com"
        );
        assert_eq!(
            field(e, "protoPayload.requestMetadata.callerIp"),
            "127.0.0.1"
        );
        assert_eq!(
            field(e, "protoPayload.requestMetadata.callerSuppliedUserAgent"),
            AGENT
        );
        let ts = field(e, "timestamp").as_str().unwrap_or("");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "timestamp {ts}"
        );
        assert!(!field(e, "insertId").as_str().unwrap_or("").is_empty());
    }
    let ids: std::collections::HashSet<&str> =
        all.iter().filter_map(|e| e["insertId"].as_str()).collect();
    assert_eq!(ids.len(), all.len(), "insertIds are unique");

    // Admin writes go to the activity log, reads and crypto to data_access.
    let log_name = |i: usize| all[i]["logName"].as_str().unwrap_or("").to_string();
    assert_eq!(
        log_name(1),
        "projects/audit-test/logs/cloudaudit.googleapis.com%2Factivity"
    );
    assert_eq!(
        log_name(2),
        "projects/audit-test/logs/cloudaudit.googleapis.com%2Fdata_access"
    );
    let encrypt = &all[2];
    assert_eq!(
        field(encrypt, "protoPayload.resourceName"),
        key.name.as_str()
    );
    assert_eq!(
        field(encrypt, "protoPayload.status"),
        &serde_json::json!({})
    );
    assert_eq!(field(encrypt, "resource.type"), "cloudkms_cryptokey");
    assert_eq!(field(encrypt, "resource.labels.crypto_key_id"), "dek");
    assert_eq!(
        field(encrypt, "protoPayload.response.name"),
        format!("{}/cryptoKeyVersions/1", key.name).as_str()
    );
    let failed = &all[3];
    assert_eq!(field(failed, "protoPayload.status.code"), 5);
    assert_eq!(field(failed, "severity"), "ERROR");

    // Nothing secret is written: neither the plaintext nor its base64.
    let text = std::fs::read_to_string(&log)?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    assert!(!text.contains("top secret") && !text.contains(&b64));
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!(
        "keygate-gcp-audit-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
