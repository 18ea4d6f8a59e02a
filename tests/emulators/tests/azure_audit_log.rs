//! The Key Vault emulator's AuditEvent log and its token endpoint, through the SDK with a
//! real `azure_identity` client-secret credential: every request appends one JSON Lines
//! record with the documented field names, `correlationId` carrying the client request id
//! and `identity.claim` the application the token was issued to.

mod azure_common;

use std::sync::Arc;

use azure_common::{BoxError, TestResult, client_options, client_with_credential, failure};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::Secret;
use azure_core::http::ClientMethodOptions;
use azure_core::http::request::options::ClientRequestId;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, EncryptionAlgorithm, KeyClientEncryptOptions, KeyOperationParameters,
    KeyType,
};
use keygate_emulators::azure::{self, AzureEmulator, Options};
use serde_json::Value;

fn credential(
    emu: &AzureEmulator,
    client_id: &str,
    secret: &str,
) -> Result<Arc<ClientSecretCredential>, BoxError> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = emu.url();
    let mut client_options = client_options(emu)?;
    client_options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
    Ok(ClientSecretCredential::new(
        "tenant-1",
        client_id.to_string(),
        Secret::new(secret.to_string()),
        Some(ClientSecretCredentialOptions { client_options }),
    )?)
}

fn records(emu: &AzureEmulator) -> Result<Vec<Value>, BoxError> {
    let path = emu.audit_log().ok_or("no audit log")?;
    std::fs::read_to_string(path)?
        .lines()
        .map(|l| serde_json::from_str(l).map_err(Into::into))
        .collect()
}

#[tokio::test]
async fn every_request_is_an_audit_event_naming_the_client_and_its_request_id() -> TestResult {
    let dir = tempfile::tempdir()?;
    let emu = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            audit_log: Some(dir.path().join("audit.jsonl")),
            ..Default::default()
        },
    )
    .await?;
    emu.register_client_secret("app-1", "s3cret");
    let c = client_with_credential(&emu, credential(&emu, "app-1", "s3cret")?)?;
    let params = CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(2048),
        ..Default::default()
    };
    c.create_key("audited", params.try_into()?, None).await?;
    let mut options = KeyClientEncryptOptions {
        method_options: ClientMethodOptions::default(),
        key_version: None,
    };
    options
        .method_options
        .context
        .insert(ClientRequestId::new("kg-request-42".to_string()));
    let p = KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(b"hello".to_vec()),
        ..Default::default()
    };
    let reply = c.encrypt("audited", p.try_into()?, Some(options)).await?;
    let service_id = reply
        .headers()
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
            "x-ms-request-id",
        ))
        .map(str::to_string)
        .ok_or("no x-ms-request-id on the reply")?;
    assert_eq!(service_id.len(), 36, "{service_id}");
    assert_eq!(failure(c.get_key("missing", None).await).0, 404);

    let log = records(&emu)?;
    // The SDK's first request has no token: the bearer challenge, with no identity.
    let first = &log[0];
    assert_eq!(first["operationName"], "Authentication");
    assert_eq!(first["properties"]["httpStatusCode"], 401);
    assert_eq!(first["resultSignature"], "Unauthorized");
    assert!(first.get("identity").is_none());

    let create = log
        .iter()
        .find(|r| r["operationName"] == "KeyCreate")
        .ok_or("no KeyCreate record")?;
    assert_eq!(create["resultType"], "Success");
    assert_eq!(create["identity"]["claim"]["appid"], "app-1");
    assert_eq!(create["category"], "AuditEvent");
    assert!(
        create["resourceId"]
            .as_str()
            .is_some_and(|r| r.contains("/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/")),
        "{create}"
    );

    let encrypt = log
        .iter()
        .find(|r| r["operationName"] == "KeyEncrypt")
        .ok_or("no KeyEncrypt record")?;
    assert_eq!(encrypt["correlationId"], "kg-request-42");
    assert_eq!(encrypt["resultType"], "Success");
    assert_eq!(encrypt["resultSignature"], "OK");
    assert_eq!(encrypt["properties"]["httpStatusCode"], 200);
    assert_eq!(encrypt["callerIpAddress"], "127.0.0.1");
    let uri = encrypt["properties"]["requestUri"]
        .as_str()
        .unwrap_or_default();
    let version = encrypt["operationVersion"].as_str().unwrap_or_default();
    assert!(
        !version.is_empty() && uri.ends_with(&format!("api-version={version}")),
        "{encrypt}"
    );
    assert!(
        uri.starts_with(&emu.url())
            && uri.contains("/keys/audited/")
            && uri.contains("/encrypt?api-version="),
        "{uri}"
    );
    assert!(
        encrypt["properties"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&format!("{}keys/audited/", emu.url()))),
        "{encrypt}"
    );
    assert!(
        encrypt["durationMs"]
            .as_str()
            .is_some_and(|d| d.parse::<u64>().is_ok())
    );
    assert!(
        chrono_like(encrypt["time"].as_str().unwrap_or_default()),
        "{}",
        encrypt["time"]
    );
    assert!(
        encrypt["properties"]["clientInfo"]
            .as_str()
            .is_some_and(|ua| ua.contains("azsdk-rust-security_keyvault_keys")),
        "{encrypt}"
    );

    let missing = log
        .iter()
        .find(|r| r["operationName"] == "KeyGet")
        .ok_or("no KeyGet record")?;
    assert_eq!(missing["resultType"], "Failure");
    assert_eq!(missing["resultSignature"], "NotFound");
    assert_eq!(missing["properties"]["httpStatusCode"], 404);
    // Every request is there: challenge, create, encrypt, get.
    assert_eq!(log.len(), 4, "{log:#?}");
    Ok(())
}

/// `2026-01-02T03:04:05.123456Z`.
fn chrono_like(t: &str) -> bool {
    t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn a_wrong_client_secret_gets_no_token() -> TestResult {
    let emu = azure::spawn("127.0.0.1:0").await?;
    emu.register_client_secret("app-1", "s3cret");
    let c = client_with_credential(&emu, credential(&emu, "app-1", "wrong")?)?;
    let err = c
        .get_key("any", None)
        .await
        .err()
        .ok_or("a wrong secret got a token")?;
    assert!(format!("{err:?}").contains("AADSTS7000215"), "{err:?}");
    Ok(())
}
