//! The Kubernetes KMS v2 plugin (`[kms_plugin]` in `serve`) through a client generated from
//! the vendored upstream proto, over its UNIX socket: Status, the round trip, rotation (the
//! key id changes, old ciphertexts still decrypt), the apiserver's limits, the socket's mode,
//! policy deciding for the plugin's principal, and every call in the audit log with the
//! apiserver's uid as its request id.

mod common;

use common::team::{self, create_in, policy_folder};
use common::{Server, events_for};
use hyper_util::rt::TokioIo;
use keygate::pb;
use keygate::pb::kms_v2::{
    DecryptRequest, EncryptRequest, StatusRequest,
    key_management_service_client::KeyManagementServiceClient,
};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const KEY: &str = "k8s/secrets";
const PRINCIPAL: &str = "svc-kube-apiserver";

/// The README's policy: the plugin's principal encrypts and decrypts with its one key.
const PLUGIN_POLICY: &str = r#"
@id("kms-plugin-uses-its-key")
permit (
  principal == Keygate::ServiceAccount::"svc-kube-apiserver",
  action in [Keygate::Action::"Encrypt", Keygate::Action::"Decrypt"],
  resource
)
when { resource.name == "k8s/secrets" };
"#;

type Kms = KeyManagementServiceClient<Channel>;

/// A gateway with the plugin on `DIR/kms.sock` and `policy` beside the default policies, the
/// plugin's key and another (both owned by olga, so only `policy` lets the plugin use them).
async fn start(dir: &Path, policy: &str) -> (Server, PathBuf) {
    let socket = dir.join("kms.sock");
    let folder = policy_folder(dir, &[("kms-plugin.cedar", policy)]);
    let server = team::start(
        dir,
        &format!(
            "[policy]\ndir = \"{}\"\n\n[kms_plugin]\nsocket = \"{}\"\nkey = \"{KEY}\"\nprincipal = \"{PRINCIPAL}\"\nenvironments = [\"prod\"]\n",
            folder.display(),
            socket.display()
        ),
    );
    assert!(
        server
            .output()
            .contains("kms plugin (Kubernetes KMS v2) on unix://"),
        "{}",
        server.output()
    );
    let mut alice = server.keys_as("alice").await;
    for name in [KEY, "prod/other"] {
        alice
            .create_key(create_in(name, "aes-256-gcm", "olga", "prod"))
            .await
            .unwrap();
    }
    (server, socket)
}

/// A client of the plugin over its socket.
async fn connect(socket: &Path) -> Kms {
    let socket = socket.to_path_buf();
    // The URI is not used: every connection goes to the socket.
    let channel = Endpoint::from_static("http://kms.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    KeyManagementServiceClient::new(channel)
}

fn encrypt(plaintext: &[u8], uid: &str) -> EncryptRequest {
    EncryptRequest {
        plaintext: plaintext.to_vec(),
        uid: uid.into(),
    }
}

fn decrypt(ciphertext: &[u8], key_id: &str, uid: &str) -> DecryptRequest {
    DecryptRequest {
        ciphertext: ciphertext.to_vec(),
        uid: uid.into(),
        key_id: key_id.into(),
        annotations: Default::default(),
    }
}

/// The outcome event of the call with request id `uid`.
async fn event(server: &Server, uid: &str) -> pb::AuditEvent {
    let mut audit = server.audit_as("dave").await;
    events_for(&mut audit, uid)
        .await
        .into_iter()
        .rfind(|e| e.outcome != "intent")
        .unwrap_or_else(|| panic!("no audit event for request {uid}"))
}

/// The Status probe's audit events (outcomes and intents alike), as the plugin's principal.
async fn probe_events(server: &Server) -> usize {
    let mut audit = server.audit_as("dave").await;
    common::query_all(
        &mut audit,
        pb::AuditQueryRequest {
            actor: PRINCIPAL.into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|e| e.details.contains("status-probe"))
    .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_round_trip_and_rotation_over_the_socket_all_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = start(dir.path(), PLUGIN_POLICY).await;
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600, "the socket's mode");
    let mut kms = connect(&socket).await;

    let status = kms.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.healthz, "ok");
    assert_eq!(status.version, "v2");
    assert!(status.key_id.ends_with("/v1"), "{}", status.key_id);

    // Round trip, audited as the plugin's principal with the apiserver's uid.
    let dek = b"a 32-byte data encryption key...";
    let uid = "0b7c1c54-3c3e-4d8c-9a57-1d6f0d0b5e01";
    let sealed = kms.encrypt(encrypt(dek, uid)).await.unwrap().into_inner();
    assert_eq!(sealed.key_id, status.key_id);
    assert!(!sealed.ciphertext.is_empty() && sealed.ciphertext.len() <= 1024);
    let e = event(&server, uid).await;
    assert_eq!(
        (
            e.action.as_str(),
            e.outcome.as_str(),
            e.actor.as_str(),
            e.actor_kind.as_str()
        ),
        ("Encrypt", "ok", PRINCIPAL, "service-account")
    );
    assert_eq!(e.key_name, KEY);
    assert_eq!(e.client_address, format!("unix:{}", socket.display()));
    assert!(e.policy.contains("kms-plugin-uses-its-key"), "{}", e.policy);
    assert!(e.details.contains(&sealed.key_id), "{}", e.details);

    let uid_open = "0b7c1c54-3c3e-4d8c-9a57-1d6f0d0b5e02";
    let opened = kms
        .decrypt(decrypt(&sealed.ciphertext, &sealed.key_id, uid_open))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, dek);
    let e = event(&server, uid_open).await;
    assert_eq!(
        (e.action.as_str(), e.outcome.as_str(), e.actor.as_str()),
        ("Decrypt", "ok", PRINCIPAL)
    );
    assert_eq!(e.key_version, 1);

    // Rotation through keygate's KeyService: the key id changes, old ciphertexts decrypt.
    common::rotate(&mut server.keys_as("alice").await, KEY).await;
    let rotated = kms.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(rotated.healthz, "ok");
    assert_ne!(rotated.key_id, status.key_id);
    assert!(rotated.key_id.ends_with("/v2"), "{}", rotated.key_id);
    let resealed = kms
        .encrypt(encrypt(dek, "uid-after-rotation"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resealed.key_id, rotated.key_id);
    // The old ciphertext (with the old key id) and the new one, each opened by its version.
    for (ciphertext, key_id, uid, version) in [
        (&sealed.ciphertext, &sealed.key_id, "uid-old-ciphertext", 1),
        (
            &resealed.ciphertext,
            &resealed.key_id,
            "uid-new-ciphertext",
            2,
        ),
    ] {
        let opened = kms
            .decrypt(decrypt(ciphertext, key_id, uid))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opened.plaintext, dek);
        assert_eq!(event(&server, uid).await.key_version, version);
    }

    // The Status probe is audited too, as the plugin's principal: once, as the second Status
    // came within the first probe's 20 seconds.
    assert_eq!(
        probe_events(&server).await,
        2,
        "one probe: an Encrypt and a Decrypt"
    );

    // A clean stop takes the socket away.
    let mut server = server;
    server.stop_gracefully();
    assert!(!socket.exists(), "the socket outlived the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apiserver_limits_and_the_plugin_key_are_enforced_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = start(dir.path(), PLUGIN_POLICY).await;
    let mut kms = connect(&socket).await;
    let sealed = kms
        .encrypt(encrypt(b"dek", "uid-seal"))
        .await
        .unwrap()
        .into_inner();

    // Over each limit: INVALID_ARGUMENT naming the field, its size and the limit.
    let mut annotated = decrypt(&sealed.ciphertext, &sealed.key_id, "uid-annotations");
    annotated
        .annotations
        .insert("big.example.com".into(), vec![0u8; 32 * 1024]);
    for (request, message) in [
        (
            decrypt(&sealed.ciphertext, &"k".repeat(1025), "uid-key-id"),
            "key_id is 1025 bytes; the limit is 1024",
        ),
        (
            decrypt(&[7u8; 1025], &sealed.key_id, "uid-ciphertext"),
            "ciphertext is 1025 bytes; the limit is 1024",
        ),
        (
            annotated,
            "annotations (keys and values) is 32783 bytes; the limit is 32768",
        ),
    ] {
        let status = kms.decrypt(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(message), "{}", status.message());
    }
    // Just within the limits: decrypts.
    let mut request = decrypt(&sealed.ciphertext, &"k".repeat(1024), "uid-within");
    request
        .annotations
        .insert("a.example.com".into(), vec![0u8; 32 * 1024 - 13]);
    assert_eq!(
        kms.decrypt(request).await.unwrap().into_inner().plaintext,
        b"dek"
    );

    // A plaintext over keygate's limit (limits.max_plaintext_bytes, 64 KiB by default).
    let status = kms
        .encrypt(encrypt(&vec![1u8; 64 * 1024 + 1], "uid-plaintext"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    for uid in [
        "uid-key-id",
        "uid-ciphertext",
        "uid-annotations",
        "uid-plaintext",
    ] {
        let e = event(&server, uid).await;
        assert_eq!(
            (e.outcome.as_str(), e.actor.as_str()),
            ("error", PRINCIPAL),
            "{uid}"
        );
        assert_eq!(e.error_reason, "TOO_LARGE", "{uid}");
    }

    // Another key's ciphertext: policy does not let the plugin's principal use that key.
    let mut olga = server.keys_as("olga").await;
    let foreign = common::seal(&mut olga, "prod/other", b"not the plugin's").await;
    let status = kms
        .decrypt(decrypt(&foreign, &sealed.key_id, "uid-foreign"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let e = event(&server, "uid-foreign").await;
    assert_eq!(
        (e.outcome.as_str(), e.actor.as_str()),
        ("denied", PRINCIPAL)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_opens_only_its_own_keys_ciphertexts_whatever_policy_allows() {
    // A careless policy: the plugin's principal may use every key.
    let everything = PLUGIN_POLICY.replace("when { resource.name == \"k8s/secrets\" };", ";");
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = start(dir.path(), &everything).await;
    let mut kms = connect(&socket).await;
    let mut olga = server.keys_as("olga").await;
    let foreign = common::seal(&mut olga, "prod/other", b"not the plugin's").await;
    let status = kms
        .decrypt(decrypt(&foreign, "x", "uid-other-key"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("not under 'k8s/secrets'"),
        "{}",
        status.message()
    );
    let e = event(&server, "uid-other-key").await;
    assert_eq!(
        (e.outcome.as_str(), e.actor.as_str(), e.key_name.as_str()),
        ("error", PRINCIPAL, "prod/other")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_calls_in_a_row_share_one_probe_and_the_key_id_follows_a_rotation_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, socket) = start(dir.path(), PLUGIN_POLICY).await;
    let mut kms = connect(&socket).await;
    let first = kms.status(StatusRequest {}).await.unwrap().into_inner();
    let second = kms.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (first.healthz.as_str(), second.healthz.as_str()),
        ("ok", "ok")
    );
    assert_eq!(first.key_id, second.key_id);
    assert!(first.key_id.ends_with("/v1"), "{}", first.key_id);
    assert_eq!(
        probe_events(&server).await,
        2,
        "one probe: an Encrypt and a Decrypt"
    );

    // The key id comes from the key's current version, not from the standing probe.
    common::rotate(&mut server.keys_as("alice").await, KEY).await;
    let rotated = kms.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(rotated.healthz, "ok");
    assert!(rotated.key_id.ends_with("/v2"), "{}", rotated.key_id);
    assert_eq!(
        rotated.key_id.trim_end_matches("/v2"),
        first.key_id.trim_end_matches("/v1")
    );
    assert_eq!(probe_events(&server).await, 2, "still the one probe");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugin_keys_versions_retire_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _socket) = start(dir.path(), PLUGIN_POLICY).await;
    let mut alice = server.keys_as("alice").await;
    for key in [KEY, "prod/other"] {
        common::rotate(&mut alice, key).await;
    }
    let retire = |key: &str, force: bool| pb::RetireKeyVersionsRequest {
        key: key.into(),
        below: 2,
        force,
    };
    // Unused for the whole quiet period, yet refused: the audit log cannot tell.
    let refused = alice
        .retire_key_versions(retire(KEY, false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(common::reason(&refused), "KMS_PLUGIN_KEY_NEEDS_MIGRATION");
    for words in [
        "Kubernetes KMS plugin",
        "storage migration",
        "kubectl replace",
        "with force",
    ] {
        assert!(
            refused.message().contains(words),
            "{words}: {}",
            refused.message()
        );
    }
    // Another key retires as before.
    let other = alice
        .retire_key_versions(retire("prod/other", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.retired_below, 2);

    // Forced: the default policies make it wait for two approvers, then it runs.
    let pending = alice
        .retire_key_versions(retire(KEY, true))
        .await
        .unwrap_err();
    let (reason, metadata) = team::error_info(&pending);
    assert_eq!(reason, "APPROVAL_PENDING", "{pending:?}");
    let approve = pb::ApproveRequest {
        id: metadata["approval_id"].clone(),
        ..Default::default()
    };
    for (approver, state) in [("erin", "pending"), ("frank", "executed")] {
        let request = server
            .approvals_as(approver)
            .await
            .approve(approve.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(request.state, state, "{request:?}");
    }
    let key = alice
        .get_key(pb::GetKeyRequest {
            key: KEY.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.retired_below, 2);
}
