//! The Azure Key Vault provider end to end through the gRPC API, against the Key Vault
//! emulator over HTTPS (in this process), with the official SDK doing the HTTP and the bearer
//! challenge and `azure_identity`'s client-secret credential getting the token from the
//! emulator's token endpoint: the gRPC suite for RSA and EC keys in a vault and for oct-HSM,
//! RSA-HSM and EC-HSM keys in a Managed HSM; rotation; destruction (soft delete → purge,
//! cancel → recover); keys made outside keygate in the inventory; request ids both ways; an
//! outage and recovery; throttling with Retry-After.

mod common;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::models::{CreateKeyParameters, CurveName, KeyType};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use common::{Server, ServerOptions, create, events_for, request_id, status_request_id, suite};
use keygate::pb;
use keygate_emulators::azure::{self, AzureEmulator, Options};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

const VAULT: &str = "azure";
const HSM: &str = "mhsm";

const VAULT_ALGORITHMS: &[&str] = &[
    "rsa-2048-oaep",
    "rsa-3072-oaep",
    "rsa-4096-oaep",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-4096-pss",
    "rsa-2048-pkcs1",
    "rsa-3072-pkcs1",
    "rsa-4096-pkcs1",
    "ecdsa-p256",
    "ecdsa-p384",
];

const HSM_ALGORITHMS: &[&str] = &["aes-256-gcm", "rsa-2048-oaep", "rsa-3072-pss", "ecdsa-p384"];

struct Backends {
    vault: AzureEmulator,
    hsm: AzureEmulator,
}

async fn start_emulators(dir: &Path) -> Backends {
    let vault = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: false,
            audit_log: Some(dir.join("vault-audit.jsonl")),
        },
    )
    .await
    .expect("start the Key Vault emulator");
    let hsm = azure::spawn_with(
        "127.0.0.1:0",
        Options {
            managed_hsm: true,
            audit_log: None,
        },
    )
    .await
    .expect("start the Managed HSM emulator");
    for emu in [&vault, &hsm] {
        emu.register_client_secret("keygate-e2e", "e2e-client-secret");
    }
    Backends { vault, hsm }
}

fn provider_section(name: &str, emu: &AzureEmulator, dir: &Path) -> String {
    let ca = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca, emu.ca_pem()).expect("write CA");
    format!(
        r#"[providers.{name}]
kind = "azure-keyvault"
vault_url = "{url}"
managed_hsm = {hsm}
authority_host = "{url}"
ca_bundle = "{ca}"
verify_challenge_resource = false
credential = {{ source = "client-secret", tenant_id = "tenant-1", client_id = "keygate-e2e", secret = {{ file = "{secret}" }} }}

[providers.{name}.guard]
deadline = "30s"
retry = {{ max_attempts = 3, base_backoff = "10ms", max_backoff = "50ms", budget_ratio = 1.0 }}
breaker = {{ failures = 3, open_for = "500ms" }}
"#,
        url = emu.url(),
        hsm = emu.is_managed_hsm(),
        ca = ca.display(),
        secret = dir.join("client-secret").display(),
    )
}

/// A gateway with the vault as `azure` and the Managed HSM as `mhsm`, a short minimum
/// destruction window so a test sees the purge, and deadlines long enough for RSA-4096 key
/// generation in the emulator on a busy machine.
fn start_gateway(dir: &Path, b: &Backends) -> Server {
    std::fs::write(dir.join("client-secret"), "e2e-client-secret\n").expect("write secret");
    let config = dir.join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n\n\
             [limits]\nrequest_timeout = \"60s\"\nprovider_timeout = \"45s\"\n\n{}\n{}",
            provider_section(VAULT, &b.vault, dir),
            provider_section(HSM, &b.hsm, dir)
        ),
    )
    .expect("write config");
    Server::start_with(
        &dir.join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    )
}

fn on(provider: &str, name: &str, algorithm: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, algorithm, "root");
    req.provider = provider.into();
    req
}

/// The SDK straight to an emulator, as a user of the vault outside keygate would.
#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "outside-keygate",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

fn sdk(emu: &AzureEmulator) -> KeyClient {
    let ca = reqwest_cert(emu);
    let options = KeyClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(ca))),
            retry: RetryOptions::none(),
            ..Default::default()
        },
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    KeyClient::new(&emu.url(), Arc::new(FixedToken), Some(options)).expect("SDK client")
}

fn reqwest_cert(emu: &AzureEmulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTP client")
}

fn audit_records(emu: &AzureEmulator) -> Vec<serde_json::Value> {
    std::fs::read_to_string(emu.audit_log().expect("audit log"))
        .expect("read the emulator's AuditEvent log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn vault_name(uri: &str) -> String {
    uri.rsplit('/').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_keyvault_through_the_grpc_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = start_emulators(dir.path()).await;
    let server = start_gateway(dir.path(), &b);
    let mut keys = server.root().await;

    suite::run(&mut keys, VAULT, "kv", VAULT_ALGORITHMS).await;
    println!("ok: the gRPC suite passes for every RSA and EC key type in a vault");
    suite::run(&mut keys, HSM, "hsm", HSM_ALGORITHMS).await;
    println!("ok: the gRPC suite passes for oct-HSM, RSA-HSM and EC-HSM keys in a Managed HSM");

    rotation_keeps_old_ciphertexts_and_signatures(&mut keys).await;
    println!("ok: after rotations old ciphertexts decrypt and old signatures verify");

    retirement_as_key_vault_sees_it(&b.vault, &mut keys).await;
    println!("ok: retired versions are disabled in Key Vault, and stay so when the key is enabled");

    keys_made_outside_keygate_are_unmanaged(&server, &b.vault, &mut keys).await;
    println!("ok: a key made straight in the vault is in the inventory, unmanaged");

    request_ids_join_both_audit_logs(&server, &b.vault, &mut keys).await;
    println!(
        "ok: keygate's request id is Key Vault's correlationId; Key Vault's request id is audited"
    );

    bad_input_is_refused_clearly(&mut keys).await;
    println!("ok: bad input is refused with the right code and a clear message");
}

async fn rotation_keeps_old_ciphertexts_and_signatures(keys: &mut common::Keys) {
    for (provider, name, algorithm) in [
        (HSM, "rotation/aes", "aes-256-gcm"),
        (VAULT, "rotation/rsa", "rsa-2048-oaep"),
    ] {
        keys.create_key(on(provider, name, algorithm))
            .await
            .expect("create");
        let before = keys
            .encrypt(pb::EncryptRequest {
                key: name.into(),
                plaintext: b"card 4111 1111 1111 1111".to_vec(),
                associated_data: Vec::new(),
            })
            .await
            .expect("encrypt before rotation")
            .into_inner();
        for expected in [2, 3] {
            let rotated = keys
                .rotate_key(pb::RotateKeyRequest {
                    key: name.into(),
                    ..Default::default()
                })
                .await
                .expect("rotate")
                .into_inner();
            assert_eq!(rotated.primary_version, expected);
        }
        let after = keys
            .encrypt(pb::EncryptRequest {
                key: name.into(),
                plaintext: b"x".to_vec(),
                associated_data: Vec::new(),
            })
            .await
            .expect("encrypt after rotation")
            .into_inner();
        assert_eq!(
            after.key_version, 3,
            "{name}: new ciphertexts carry the new version"
        );
        let opened = keys
            .decrypt(pb::DecryptRequest {
                ciphertext: before.ciphertext,
                associated_data: Vec::new(),
            })
            .await
            .expect("an old ciphertext decrypts after two rotations")
            .into_inner();
        assert_eq!(opened.plaintext, b"card 4111 1111 1111 1111");
        assert_eq!(opened.key_version, 1);
    }
    keys.create_key(on(VAULT, "rotation/ec", "ecdsa-p384"))
        .await
        .expect("create");
    let sig = keys
        .sign(pb::SignRequest {
            key: "rotation/ec".into(),
            input: Some(pb::sign_request::Input::Message(b"v1 release".to_vec())),
        })
        .await
        .expect("sign")
        .into_inner();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "rotation/ec".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    let valid = keys
        .verify(pb::VerifyRequest {
            key: "rotation/ec".into(),
            input: Some(pb::verify_request::Input::Message(b"v1 release".to_vec())),
            signature: sig.signature,
            key_version: 1,
        })
        .await
        .expect("verify")
        .into_inner()
        .valid;
    assert!(
        valid,
        "a signature by version 1 verifies after the rotation"
    );
}

/// Each version's `enabled` as Key Vault has it, by the keygate version number it is tagged
/// with.
async fn version_states(emu: &AzureEmulator, name: &str) -> Vec<(u32, bool)> {
    use futures::TryStreamExt as _;
    let listed: Vec<_> = sdk(emu)
        .list_key_properties_versions(name, None)
        .expect("list versions")
        .try_collect()
        .await
        .expect("list versions");
    let mut states: Vec<(u32, bool)> = listed
        .iter()
        .map(|p| {
            let number = p
                .tags
                .as_ref()
                .and_then(|t| t.get("keygate-version"))
                .and_then(|n| n.parse().ok())
                .expect("a keygate-version tag");
            let enabled = p.attributes.as_ref().and_then(|a| a.enabled) != Some(false);
            (number, enabled)
        })
        .collect();
    states.sort();
    states
}

async fn retirement_as_key_vault_sees_it(emu: &AzureEmulator, keys: &mut common::Keys) {
    let key = keys
        .create_key(on(VAULT, "retired/rsa", "rsa-2048-oaep"))
        .await
        .expect("create")
        .into_inner();
    let name = vault_name(&key.provider_uri);
    let old = keys
        .encrypt(pb::EncryptRequest {
            key: "retired/rsa".into(),
            plaintext: b"old".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect("encrypt")
        .into_inner();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "retired/rsa".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    assert_eq!(version_states(emu, &name).await, vec![(1, true), (2, true)]);
    let retired = keys
        .retire_key_versions(pb::RetireKeyVersionsRequest {
            key: "retired/rsa".into(),
            below: 2,
            force: false,
        })
        .await
        .expect("retire v1 (never read)")
        .into_inner();
    assert_eq!(retired.retired_below, 2);
    // Key Vault itself no longer lets version 1 be used.
    assert_eq!(
        version_states(emu, &name).await,
        vec![(1, false), (2, true)]
    );
    let refused = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: old.ciphertext,
            associated_data: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    // Disable and enable the key: every version is flipped, then the floor is set again.
    keys.disable_key(pb::DisableKeyRequest {
        key: "retired/rsa".into(),
    })
    .await
    .expect("disable");
    keys.enable_key(pb::EnableKeyRequest {
        key: "retired/rsa".into(),
    })
    .await
    .expect("enable");
    assert_eq!(
        version_states(emu, &name).await,
        vec![(1, false), (2, true)]
    );
}

async fn keys_made_outside_keygate_are_unmanaged(
    server: &Server,
    emu: &AzureEmulator,
    keys: &mut common::Keys,
) {
    let params = CreateKeyParameters {
        kty: Some(KeyType::Ec),
        curve: Some(CurveName::P256),
        ..Default::default()
    };
    sdk(emu)
        .create_key(
            "made-outside-keygate",
            params.try_into().expect("body"),
            None,
        )
        .await
        .expect("SDK create");
    let ours = keys
        .create_key(on(VAULT, "inventory/ours", "rsa-2048-pss"))
        .await
        .expect("create")
        .into_inner();
    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let mut listed = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let page = admin
            .list_inventory(pb::ListInventoryRequest {
                provider: VAULT.into(),
                page_size: 7,
                page_token,
            })
            .await
            .expect("list inventory")
            .into_inner();
        listed.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let foreign_uri = format!("azurekms://{}/keys/made-outside-keygate", emu.addr());
    let foreign = listed
        .iter()
        .find(|k| k.provider_uri == foreign_uri)
        .unwrap_or_else(|| panic!("{foreign_uri} not in the inventory: {listed:#?}"));
    assert!(!foreign.managed, "{foreign:?}");
    assert!(foreign.key_id.is_empty() && foreign.key_name.is_empty());
    assert_eq!(
        (foreign.algorithm.as_str(), foreign.state.as_str()),
        ("ecdsa-p256", "enabled")
    );
    let mine = listed
        .iter()
        .find(|k| k.provider_uri == ours.provider_uri)
        .expect("keygate's key is listed");
    assert!(
        mine.managed && mine.key_name == "inventory/ours",
        "{mine:?}"
    );
    // Every key in the vault, over several pages: the suite's, the rotation and retirement
    // tests', and these two.
    let expected = VAULT_ALGORITHMS.len() + 2 + 1 + 2;
    assert_eq!(listed.len(), expected, "{listed:#?}");
    assert_eq!(
        pages,
        expected.div_ceil(7),
        "Key Vault's nextLink was followed page by page"
    );
}

async fn request_ids_join_both_audit_logs(
    server: &Server,
    emu: &AzureEmulator,
    keys: &mut common::Keys,
) {
    let reply = keys
        .encrypt(pb::EncryptRequest {
            key: "rotation/rsa".into(),
            plaintext: b"audit me".to_vec(),
            associated_data: Vec::new(),
        })
        .await
        .expect("encrypt");
    let id = request_id(&reply);
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &id).await;
    let event = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .unwrap_or_else(|| panic!("no Encrypt event for {id}: {events:?}"));
    assert_eq!(event.outcome, "ok");
    let provider_id = &event.provider_request_id;
    assert_eq!(provider_id.len(), 36, "x-ms-request-id: {provider_id:?}");
    assert_ne!(provider_id, &id);
    let records = audit_records(emu);
    let record = records
        .iter()
        .find(|r| r["correlationId"] == id.as_str())
        .unwrap_or_else(|| panic!("no AuditEvent with correlationId {id}"));
    assert_eq!(record["operationName"], "KeyEncrypt");
    assert_eq!(record["identity"]["claim"]["appid"], "keygate-e2e");
    assert_eq!(record["resultType"], "Success");
}

async fn bad_input_is_refused_clearly(keys: &mut common::Keys) {
    // AES keys exist only in a Managed HSM.
    let err = keys
        .create_key(on(VAULT, "bad/aes", "aes-256-gcm"))
        .await
        .expect_err("AES in a vault");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("'azure'"), "{}", err.message());
    // RSA-OAEP-256 under 2048 bits takes at most 190 bytes.
    let err = keys
        .encrypt(pb::EncryptRequest {
            key: "rotation/rsa".into(),
            plaintext: vec![1; 191],
            associated_data: Vec::new(),
        })
        .await
        .expect_err("191 bytes");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A digest of the wrong length.
    let err = keys
        .sign(pb::SignRequest {
            key: "rotation/ec".into(),
            input: Some(pb::sign_request::Input::Digest(vec![0; 32])),
        })
        .await
        .expect_err("a SHA-256 digest for P-384");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("48"), "{}", err.message());
    // A pending window longer than the vault keeps deleted keys (90 days).
    let err = keys
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "rotation/ec".into(),
            pending_window: common::days(120),
        })
        .await
        .expect_err("120-day window");
    assert!(
        matches!(err.code(), Code::InvalidArgument | Code::FailedPrecondition),
        "{err:?}"
    );
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: "rotation/ec".into(),
            usage: false,
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(key.state, "enabled", "a refused schedule changed nothing");
}

async fn wait_for_state(keys: &mut common::Keys, name: &str, state: &str) -> pb::Key {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let k = keys
            .get_key(pb::GetKeyRequest {
                key: name.into(),
                usage: false,
            })
            .await
            .expect("get key")
            .into_inner();
        if k.state == state {
            return k;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {state}: {}",
            k.state
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn destruction_is_soft_delete_then_purge_and_cancel_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = start_emulators(dir.path()).await;
    let server = start_gateway(dir.path(), &b);
    let mut keys = server.root().await;
    for (provider, emu, name, algorithm) in [
        (VAULT, &b.vault, "doomed/rsa", "rsa-3072-pss"),
        (HSM, &b.hsm, "doomed/aes", "aes-256-gcm"),
    ] {
        let kv = sdk(emu);
        let key = keys
            .create_key(on(provider, name, algorithm))
            .await
            .expect("create")
            .into_inner();
        let vault_key = vault_name(&key.provider_uri);

        // Scheduled with a long window: soft-deleted in Key Vault, pending in keygate.
        let scheduled = keys
            .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
                family: false,
                key: name.into(),
                pending_window: common::days(7),
            })
            .await
            .expect("schedule")
            .into_inner();
        assert_eq!(scheduled.state, "pending-destruction");
        assert!(!scheduled.destruction_at.is_empty(), "{scheduled:?}");
        let shown = keys
            .get_key(pb::GetKeyRequest {
                key: name.into(),
                usage: false,
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(
            (shown.state.as_str(), shown.destruction_at.as_str()),
            ("pending-destruction", scheduled.destruction_at.as_str())
        );
        let deleted = kv
            .get_deleted_key(&vault_key, None)
            .await
            .expect("soft-deleted in Key Vault")
            .into_model()
            .expect("model");
        assert!(deleted.recovery_id.is_some());
        assert_eq!(
            kv.get_key(&vault_key, None)
                .await
                .err()
                .and_then(|e| e.http_status())
                .map(u16::from),
            Some(404),
            "a deleted key is not usable"
        );

        // Cancelled: recovered in Key Vault; disabled in keygate until enabled again.
        let cancelled = keys
            .cancel_key_destruction(pb::CancelKeyDestructionRequest { key: name.into() })
            .await
            .expect("cancel")
            .into_inner();
        assert_eq!(cancelled.state, "disabled");
        assert!(cancelled.destruction_at.is_empty());
        kv.get_key(&vault_key, None)
            .await
            .expect("recovered in Key Vault");
        keys.enable_key(pb::EnableKeyRequest { key: name.into() })
            .await
            .expect("enable");
        if algorithm == "aes-256-gcm" {
            keys.encrypt(pb::EncryptRequest {
                key: name.into(),
                plaintext: b"still here".to_vec(),
                associated_data: Vec::new(),
            })
            .await
            .expect("a recovered key encrypts");
        } else {
            keys.sign(pb::SignRequest {
                key: name.into(),
                input: Some(pb::sign_request::Input::Message(b"still here".to_vec())),
            })
            .await
            .expect("a recovered key signs");
        }

        // Scheduled with a one-second window: purged when it ends.
        keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: name.into(),
            pending_window: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
        })
        .await
        .expect("schedule again");
        let destroyed = wait_for_state(&mut keys, name, "destroyed").await;
        assert!(
            !destroyed.destruction_at.is_empty(),
            "GetKey shows when: {destroyed:?}"
        );
        assert_eq!(
            kv.get_deleted_key(&vault_key, None)
                .await
                .err()
                .and_then(|e| e.http_status())
                .map(u16::from),
            Some(404),
            "{name}: purged from Key Vault's deleted keys"
        );
        assert_eq!(
            kv.get_key(&vault_key, None)
                .await
                .err()
                .and_then(|e| e.http_status())
                .map(u16::from),
            Some(404)
        );
    }
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let records = audit
        .query(pb::AuditQueryRequest {
            action: "DestroyKey".into(),
            ..Default::default()
        })
        .await
        .expect("audit query")
        .into_inner()
        .events;
    assert_eq!(
        records.len(),
        4,
        "an intent and a destruction record per key: {records:?}"
    );
    assert!(
        records
            .iter()
            .filter(|r| r.outcome == "ok")
            .all(|r| !r.provider_request_id.is_empty()),
        "the purge's Key Vault request id is recorded: {records:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_and_throttling_are_reported_audited_and_survived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = start_emulators(dir.path()).await;
    let server = start_gateway(dir.path(), &b);
    let mut keys = server.root().await;
    keys.create_key(on(VAULT, "outage/rsa", "rsa-2048-oaep"))
        .await
        .expect("create");
    let encrypt = || pb::EncryptRequest {
        key: "outage/rsa".into(),
        plaintext: b"hello".to_vec(),
        associated_data: Vec::new(),
    };
    let sealed = keys.encrypt(encrypt()).await.expect("encrypt").into_inner();

    // Down: UNAVAILABLE naming the provider, audited as an error.
    b.vault.stop().await;
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    for attempt in 0..2 {
        let started = Instant::now();
        let err = keys
            .encrypt(encrypt())
            .await
            .expect_err("encrypt with the vault down");
        println!(
            "   outage answered in {:?}: {}",
            started.elapsed(),
            err.message()
        );
        assert_eq!(err.code(), Code::Unavailable, "attempt {attempt}: {err:?}");
        assert!(err.message().contains("azure"), "{}", err.message());
        let id = status_request_id(&err);
        let events = events_for(&mut audit, &id).await;
        let event = events
            .iter()
            .find(|e| e.action == "Encrypt")
            .unwrap_or_else(|| panic!("the failed call was not audited: {events:?}"));
        assert_eq!(event.outcome, "error", "{event:?}");
        assert_eq!(event.error_reason, "PROVIDER_UNAVAILABLE", "{event:?}");
    }
    // Back: the same gateway, not restarted, works again (after the breaker's probe).
    b.vault.start_again().await.expect("start again");
    let deadline = Instant::now() + Duration::from_secs(20);
    let opened = loop {
        match keys
            .decrypt(pb::DecryptRequest {
                ciphertext: sealed.ciphertext.clone(),
                associated_data: Vec::new(),
            })
            .await
        {
            Ok(r) => break r.into_inner(),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    };
    assert_eq!(opened.plaintext, b"hello");
    println!("ok: an outage is UNAVAILABLE and audited; the gateway recovers without a restart");

    // One 429 with Retry-After: 1 → retried after it, and the call succeeds.
    b.vault.hooks().set_retry_after(1);
    b.vault.hooks().fail_next(1, 429);
    let reply = keys.encrypt(encrypt()).await.expect("encrypt after a 429");
    let id = request_id(&reply);
    assert_eq!(b.vault.hooks().pending_failures(), 0);
    let attempts: Vec<serde_json::Value> = audit_records(&b.vault)
        .into_iter()
        .filter(|r| r["correlationId"] == id.as_str())
        .collect();
    assert_eq!(
        attempts.len(),
        2,
        "a throttled attempt and a retry: {attempts:#?}"
    );
    assert_eq!(attempts[0]["properties"]["httpStatusCode"], 429);
    assert_eq!(attempts[1]["properties"]["httpStatusCode"], 200);
    let at = |r: &serde_json::Value| chrono_seconds(r["time"].as_str().unwrap_or_default());
    assert!(
        at(&attempts[1]) - at(&attempts[0]) >= 1.0,
        "the retry came before Retry-After: {attempts:#?}"
    );
    // Throttled past the retries: RESOURCE_EXHAUSTED naming the provider, audited.
    b.vault.hooks().fail_next(50, 429);
    let err = keys.encrypt(encrypt()).await.expect_err("throttled");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("azure"), "{}", err.message());
    let events = events_for(&mut audit, &status_request_id(&err)).await;
    assert!(
        events
            .iter()
            .any(|e| e.error_reason == "PROVIDER_THROTTLED"),
        "{events:?}"
    );
    b.vault.hooks().fail_next(0, 429);
    keys.encrypt(encrypt())
        .await
        .expect("works once the throttling ends");
    println!("ok: 429 with Retry-After is honoured, then RESOURCE_EXHAUSTED");
}

/// Seconds since midnight of an RFC 3339 UTC time (`…THH:MM:SS.ffffffZ`); enough to compare
/// two records of one test.
fn chrono_seconds(t: &str) -> f64 {
    let Some((_, clock)) = t.split_once('T') else {
        return 0.0;
    };
    let clock = clock.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}
