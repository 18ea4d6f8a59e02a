//! The PKCS#11 provider end to end through gRPC, against SoftHSM2: the conformance suite,
//! sensitive key material, persistence across a restart, destruction by the scheduler,
//! inventory of foreign objects, and start-up errors that name the setting.
//!
//! Needs SoftHSM2 (`tests/backends/install.sh softhsm`, which prints the
//! `KEYGATE_PKCS11_MODULE` to export).
//!
//! The test process opens the same token directories with cryptoki to look at what keygate
//! left on them. SoftHSM2 reads `SOFTHSM2_CONF` once per process and scans its tokens at
//! `C_Initialize`, so one fixture per test binary holds a token for every test, all made
//! before the module is initialised here.

mod common;

use common::{Server, ServerOptions, create, suite};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keygate::pb;
use keygate_test_backends::softhsm::SoftHsm;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SO_PIN: &str = "1234";
const USER_PIN: &str = "5678";
const WRONG_PIN: &str = "97531";
// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const PIN_VAR: &str = "E2E_HSM_PIN";

/// One token per test, so each gateway sees only its own keys (and foreign objects made for it).
const TOKENS: &[&str] = &[
    "e2e-suite",
    "e2e-sensitive",
    "e2e-restart",
    "e2e-destroy",
    "e2e-inventory",
    "e2e-badpin",
];

/// The algorithms SoftHSM2 2.6 can hold for keygate (no Ed25519 on its EDDSA support level,
/// no RSA PKCS#1 v1.5 signing in keygate's PKCS#11 mechanism table).
const HSM_ALGORITHMS: &[&str] = &[
    "aes-256-gcm",
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-4096-pss",
    "rsa-2048-oaep",
    "rsa-3072-oaep",
    "rsa-4096-oaep",
    "hmac-sha256",
];

struct Fixture {
    hsm: SoftHsm,
    ctx: Pkcs11,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let hsm = SoftHsm::new(TOKENS[0], SO_PIN, USER_PIN).unwrap_or_else(|e| {
            panic!("SoftHSM2 is required for these tests and could not be set up: {e}")
        });
        for label in &TOKENS[1..] {
            hsm.add_token(label, SO_PIN, USER_PIN)
                .unwrap_or_else(|e| panic!("could not add SoftHSM2 token {label}: {e}"));
        }
        hsm.remove_at_exit();
        // SAFETY: set once, inside this OnceLock, before this process initialises the module;
        // nothing else in this test binary reads or writes the environment meanwhile.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf_path()) };
        // keygate reads `KEYGATE_*` variables as configuration overrides and refuses unknown
        // ones; the module path is already in the fixture, so the gateways must not inherit it.
        // SAFETY: as above.
        unsafe { std::env::remove_var("KEYGATE_PKCS11_MODULE") };
        // One context for the whole binary: dropping the last handle of a context finalises
        // the module, which would close the sessions of tests running alongside.
        let ctx = Pkcs11::new(hsm.module_path()).expect("load the SoftHSM2 module");
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        Fixture { hsm, ctx }
    })
}

/// A logged-in session on `token` opened with cryptoki directly, bypassing keygate.
fn raw_session(token: &str) -> Session {
    let ctx = &fixture().ctx;
    let slot = keygate_test_backends::softhsm::slot_with_label(ctx, token)
        .unwrap_or_else(|| panic!("token {token}"));
    let session = ctx.open_rw_session(slot).expect("open session");
    match session.login(UserType::User, Some(&AuthPin::from(USER_PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    session
}

/// Token objects labelled with a keygate key id (every object of every version has it).
fn objects_of(token: &str, key_id: &str) -> usize {
    raw_session(token)
        .find_objects(&[
            Attribute::Token(true),
            Attribute::Label(key_id.as_bytes().to_vec()),
        ])
        .expect("find objects")
        .len()
}

/// A keygate config with the `hsm` provider on `token`, and fast destruction for the tests.
fn write_config(dir: &Path, token: &str, module: &Path) -> PathBuf {
    let path = dir.join(format!("keygate-{token}.toml"));
    let text = format!(
        r#"[lifecycle]
# A one-second minimum window and a fast scan, so a test sees destruction happen.
min_destruction_window = "1s"
scan_interval = "200ms"

# SoftHSM2 makes RSA-4096 keys in software: a prime search that can outlast the default 8 s
# on a busy machine. The tests are about what keygate does, not how fast the token is.
[limits]
request_timeout = "90s"
provider_timeout = "80s"

[providers.hsm]
kind = "pkcs11"
module = "{module}"
token = {{ label = "{token}" }}
user_pin = {{ env = "{PIN_VAR}" }}
session_pool_size = 4
# SoftHSM2 2.6 has CKM_RSA_PKCS_OAEP with SHA-1 only; keygate's rsa-*-oaep is OAEP-SHA-256,
# so the token does raw RSA and the provider removes the padding.
oaep_unpad_in_provider = true
"#,
        module = module.display(),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn options(config: PathBuf, pin: &str) -> ServerOptions {
    ServerOptions {
        config: Some(config),
        env: vec![
            (
                "SOFTHSM2_CONF".into(),
                fixture().hsm.conf_path().display().to_string(),
            ),
            (PIN_VAR.into(), pin.into()),
        ],
        ..Default::default()
    }
}

/// A gateway on `token`, with its data in `dir/data`.
fn start(dir: &Path, token: &str) -> Server {
    let config = write_config(dir, token, fixture().hsm.module_path());
    Server::start_with(&dir.join("data"), options(config, USER_PIN))
}

fn on_hsm(name: &str, algorithm: &str) -> pb::CreateKeyRequest {
    let mut req = create(name, algorithm, "root");
    req.provider = "hsm".into();
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn pkcs11_provider_passes_the_grpc_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "e2e-suite");
    let mut keys = server.root().await;
    suite::run(&mut keys, "hsm", "hsm", HSM_ALGORITHMS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_created_through_grpc_are_sensitive_on_the_token() {
    let token = "e2e-sensitive";
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), token);
    let mut keys = server.root().await;
    for algorithm in ["aes-256-gcm", "hmac-sha256", "ecdsa-p256", "rsa-2048-oaep"] {
        let key = keys
            .create_key(on_hsm(
                &format!("sensitive/{}", algorithm.replace('-', "")),
                algorithm,
            ))
            .await
            .unwrap_or_else(|e| panic!("create {algorithm}: {e:?}"))
            .into_inner();
        assert!(
            key.provider_uri.starts_with("pkcs11:") && key.provider_uri.contains(token),
            "{}",
            key.provider_uri
        );
        let session = raw_session(token);
        let symmetric = algorithm.starts_with("aes") || algorithm.starts_with("hmac");
        let class = if symmetric {
            ObjectClass::SECRET_KEY
        } else {
            ObjectClass::PRIVATE_KEY
        };
        let handles = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(key.id.as_bytes().to_vec()),
            ])
            .expect("find");
        assert_eq!(handles.len(), 1, "{algorithm}: one secret-side object");
        // The attributes that hold the secret, per key type.
        let secret_attributes: &[AttributeType] = if algorithm.starts_with("rsa") {
            &[
                AttributeType::PrivateExponent,
                AttributeType::Prime1,
                AttributeType::Prime2,
            ]
        } else {
            &[AttributeType::Value]
        };
        let info = session
            .get_attribute_info(handles[0], secret_attributes)
            .expect("C_GetAttributeValue");
        for (kind, info) in secret_attributes.iter().zip(&info) {
            assert!(
                matches!(info, AttributeInfo::Sensitive),
                "{algorithm}: {kind:?} must be CKR_ATTRIBUTE_SENSITIVE, got {info:?}"
            );
        }
        let attrs = session
            .get_attributes(
                handles[0],
                &[
                    AttributeType::Token,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                ],
            )
            .expect("attributes");
        for expected in [
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ] {
            assert!(
                attrs
                    .iter()
                    .any(|a| format!("{a:?}") == format!("{expected:?}")),
                "{algorithm}: expected {expected:?} in {attrs:?}"
            );
        }
    }
}

async fn encrypt(keys: &mut common::Keys, key: &str, aad: &[u8]) -> Vec<u8> {
    keys.encrypt(pb::EncryptRequest {
        key: key.into(),
        plaintext: b"kept on the token".to_vec(),
        associated_data: aad.to_vec(),
    })
    .await
    .unwrap_or_else(|e| panic!("encrypt with {key}: {e:?}"))
    .into_inner()
    .ciphertext
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_survive_a_gateway_restart() {
    let token = "e2e-restart";
    let dir = tempfile::tempdir().unwrap();
    let message = b"signed before the restart".to_vec();
    let (aes_ct, rsa_ct, signature) = {
        let mut server = start(dir.path(), token);
        let mut keys = server.root().await;
        for (name, algorithm) in [
            ("restart/aes", "aes-256-gcm"),
            ("restart/rsa", "rsa-2048-oaep"),
            ("restart/ec", "ecdsa-p256"),
        ] {
            keys.create_key(on_hsm(name, algorithm))
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        }
        let aes_ct = encrypt(&mut keys, "restart/aes", b"aad").await;
        let rsa_ct = encrypt(&mut keys, "restart/rsa", b"").await;
        let signature = keys
            .sign(pb::SignRequest {
                key: "restart/ec".into(),
                input: Some(pb::sign_request::Input::Message(message.clone())),
            })
            .await
            .expect("sign")
            .into_inner()
            .signature;
        // No shutdown path runs: the keys must already be on the token and in the catalog.
        server.kill9();
        (aes_ct, rsa_ct, signature)
    };

    let server = start(dir.path(), token);
    let mut keys = server.root().await;
    for (ct, aad) in [(aes_ct, b"aad".as_slice()), (rsa_ct, b"".as_slice())] {
        let plain = keys
            .decrypt(pb::DecryptRequest {
                ciphertext: ct,
                associated_data: aad.to_vec(),
            })
            .await
            .expect("decrypt after restart")
            .into_inner();
        assert_eq!(plain.plaintext, b"kept on the token");
    }
    let verified = keys
        .verify(pb::VerifyRequest {
            key: "restart/ec".into(),
            input: Some(pb::verify_request::Input::Message(message)),
            signature,
            key_version: 0,
        })
        .await
        .expect("verify after restart")
        .into_inner();
    assert!(verified.valid, "an old signature verifies after a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn destruction_removes_the_objects_from_the_token() {
    let token = "e2e-destroy";
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), token);
    let mut keys = server.root().await;
    let key = keys
        .create_key(on_hsm("doomed/ec", "ecdsa-p256"))
        .await
        .expect("create")
        .into_inner();
    keys.rotate_key(pb::RotateKeyRequest {
        key: "doomed/ec".into(),
        ..Default::default()
    })
    .await
    .expect("rotate");
    let keeper = keys
        .create_key(on_hsm("doomed/keeper", "aes-256-gcm"))
        .await
        .expect("create keeper")
        .into_inner();
    // Two versions, each a public and a private object.
    assert_eq!(objects_of(token, &key.id), 4);

    keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
        family: false,
        key: "doomed/ec".into(),
        pending_window: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    })
    .await
    .expect("schedule destruction");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let k = keys
            .get_key(pb::GetKeyRequest {
                key: "doomed/ec".into(),
                usage: false,
            })
            .await
            .expect("get key")
            .into_inner();
        if k.state == "destroyed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "key never destroyed: {}",
            k.state
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        objects_of(token, &key.id),
        0,
        "the key's objects are gone from the token"
    );
    assert_eq!(
        objects_of(token, &keeper.id),
        1,
        "other keys on the token are untouched"
    );

    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let records = audit
        .query(pb::AuditQueryRequest {
            key: key.id.clone(),
            action: "DestroyKey".into(),
            ..Default::default()
        })
        .await
        .expect("audit query")
        .into_inner()
        .events;
    // The intent before the token was touched, then the destruction record.
    assert_eq!(
        records.len(),
        2,
        "intent and destruction record: {records:?}"
    );
    assert_eq!(records[0].outcome, "intent", "{records:?}");
    assert_eq!(records[0].request_id, records[1].request_id);
    let record = &records[1];
    assert_eq!(record.outcome, "ok", "{record:?}");
    assert_eq!(record.actor, "keygate:scheduler");
    let details: serde_json::Value =
        serde_json::from_str(&record.details).expect("details are JSON");
    assert_eq!(
        details["versions_destroyed"], 2,
        "the record names the versions destroyed: {}",
        record.details
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_tells_managed_keys_from_foreign_objects() {
    let token = "e2e-inventory";
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), token);
    let mut keys = server.root().await;
    let mut managed = Vec::new();
    for (name, algorithm) in [("inv/aes", "aes-256-gcm"), ("inv/ec", "ecdsa-p256")] {
        managed.push(
            keys.create_key(on_hsm(name, algorithm))
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
                .into_inner(),
        );
    }
    // An object somebody else put on the token.
    raw_session(token)
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(b"someone-elses-key".to_vec()),
                Attribute::Id(vec![0x42]),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .expect("generate a foreign key");

    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let inventory = admin
        .list_inventory(pb::ListInventoryRequest {
            provider: "hsm".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list inventory")
        .into_inner();
    assert!(inventory.next_page_token.is_empty());
    for key in &managed {
        let found = inventory
            .keys
            .iter()
            .find(|k| k.provider_uri == key.provider_uri)
            .unwrap_or_else(|| panic!("{} missing from {:?}", key.name, inventory.keys));
        assert!(found.managed, "{found:?}");
        assert_eq!(
            (found.key_id.as_str(), found.key_name.as_str()),
            (key.id.as_str(), key.name.as_str())
        );
        assert_eq!(found.algorithm, key.algorithm);
        assert_eq!(found.provider, "hsm");
    }
    let foreign: Vec<_> = inventory.keys.iter().filter(|k| !k.managed).collect();
    assert_eq!(foreign.len(), 1, "{:?}", inventory.keys);
    assert!(
        foreign[0].provider_uri.contains("object=someone-elses-key"),
        "{:?}",
        foreign[0]
    );
    assert!(foreign[0].key_id.is_empty() && foreign[0].key_name.is_empty());
}

/// Runs `keygate serve` expecting it to refuse to start; returns its stderr.
fn failed_start(dir: &Path, config: PathBuf, pin: &str) -> String {
    let data = dir.join("data");
    let stderr_path = dir.join("stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut cmd = Command::new(common::keygate_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--dev", "--dev-token"])
        .arg(common::ROOT_TOKEN)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(common::dev_only_copy(&config, true))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in options(config.clone(), pin).env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn keygate");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "keygate kept running with a bad provider config:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "a start-up error, not a panic:\n{stderr}"
    );
    stderr
}

#[test]
fn a_wrong_pin_is_a_start_up_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "e2e-badpin", fixture().hsm.module_path());
    let stderr = failed_start(dir.path(), config, WRONG_PIN);
    assert!(
        stderr.contains("providers.hsm") && stderr.contains("setting `user_pin`"),
        "stderr names the provider and setting:\n{stderr}"
    );
    assert!(
        !stderr.contains(WRONG_PIN),
        "the PIN itself is not printed:\n{stderr}"
    );
}

#[test]
fn a_missing_module_is_a_start_up_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-libsofthsm2.so");
    let config = write_config(dir.path(), "e2e-badpin", &missing);
    let stderr = failed_start(dir.path(), config, USER_PIN);
    assert!(
        stderr.contains("providers.hsm")
            && stderr.contains("setting `module`")
            && stderr.contains(&missing.display().to_string()),
        "stderr names the provider, setting and path:\n{stderr}"
    );
}
