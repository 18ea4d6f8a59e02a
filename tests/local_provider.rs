//! The local provider end to end through gRPC: every algorithm family, rotation, data keys,
//! re-encryption, and persistence across a restart.

mod common;

use common::{Server, create, suite};
use keygate::pb;

const LOCAL_ALGORITHMS: &[&str] = &[
    "aes-256-gcm",
    "rsa-2048-oaep",
    "rsa-3072-oaep",
    "ecdsa-p256",
    "ecdsa-p384",
    "ed25519",
    "rsa-2048-pss",
    "rsa-3072-pss",
    "rsa-2048-pkcs1",
    "hmac-sha256",
];

#[tokio::test(flavor = "multi_thread")]
async fn local_provider_passes_the_grpc_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    suite::run(&mut keys, "local", "grpc", LOCAL_ALGORITHMS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_4096_keys_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    suite::run(&mut keys, "", "big", &["rsa-4096-oaep", "rsa-4096-pss"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_audit_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ciphertext, events_before) = {
        let server = Server::start(&data);
        let mut keys = server.root().await;
        keys.create_key(create("app/db", "aes-256-gcm", "alice"))
            .await
            .unwrap();
        let ct = keys
            .encrypt(pb::EncryptRequest {
                key: "app/db".into(),
                plaintext: b"persist me".to_vec(),
                associated_data: vec![],
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext;
        let mut audit = server.audit(common::ROOT_TOKEN).await;
        let events = audit
            .query(pb::AuditQueryRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        (ct, events)
    };
    assert!(events_before.len() >= 2);

    let server = Server::start(&data);
    let mut keys = server.root().await;
    let key = keys
        .get_key(pb::GetKeyRequest {
            key: "app/db".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (key.owner.as_str(), key.algorithm.as_str()),
        ("alice", "aes-256-gcm")
    );
    let plain = keys
        .decrypt(pb::DecryptRequest {
            ciphertext,
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.plaintext, b"persist me");
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = audit
        .query(pb::AuditQueryRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    for before in &events_before {
        assert!(
            events
                .iter()
                .any(|e| e.sequence == before.sequence && e.hash == before.hash),
            "event {} lost across restart",
            before.sequence
        );
    }
    let verified = audit
        .verify(pb::AuditVerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(verified.ok, "{verified:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    for i in 0..5 {
        let owner = if i % 2 == 0 { "alice" } else { "bob" };
        keys.create_key(create(&format!("list/k{i}"), "hmac-sha256", owner))
            .await
            .unwrap();
    }
    let page = keys
        .list_keys(pb::ListKeysRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.keys.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = keys
        .list_keys(pb::ListKeysRequest {
            page_size: 10,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The five, and keygate's own audit signing key (made at start-up).
    assert_eq!(rest.keys.len(), 4);
    assert!(
        page.keys
            .iter()
            .chain(&rest.keys)
            .any(|k| k.name == "keygate/audit-checkpoints")
    );
    assert!(rest.next_page_token.is_empty());
    let alice = keys
        .list_keys(pb::ListKeysRequest {
            owner: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice.keys.len(), 3);
    assert!(alice.keys.iter().all(|k| k.owner == "alice"));
}

#[tokio::test(flavor = "multi_thread")]
async fn destruction_is_scheduled_cancelled_and_carried_out_by_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygate.toml");
    // A one-second minimum window and a fast scan, so the test sees the destruction happen.
    std::fs::write(
        &config,
        "[lifecycle]\nmin_destruction_window = \"1s\"\nscan_interval = \"200ms\"\n",
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        common::ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    );
    let mut keys = server.root().await;
    keys.create_key(create("doomed", "aes-256-gcm", "alice"))
        .await
        .unwrap();
    let ct = keys
        .encrypt(pb::EncryptRequest {
            key: "doomed".into(),
            plaintext: b"x".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    let window = |s: i64| {
        Some(prost_types::Duration {
            seconds: s,
            nanos: 0,
        })
    };
    let pending = keys
        .schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
            family: false,
            key: "doomed".into(),
            pending_window: window(3600),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.state, "pending-destruction");
    assert!(!pending.destruction_at.is_empty());
    let refused = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: ct.clone(),
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let cancelled = keys
        .cancel_key_destruction(pb::CancelKeyDestructionRequest {
            key: "doomed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cancelled.state, "disabled",
        "a cancelled destruction leaves the key disabled"
    );
    keys.schedule_key_destruction(pb::ScheduleKeyDestructionRequest {
        family: false,
        key: "doomed".into(),
        pending_window: window(1),
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let k = keys
            .get_key(pb::GetKeyRequest {
                key: "doomed".into(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner();
        if k.state == "destroyed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "key never destroyed: {}",
            k.state
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let records = audit
        .query(pb::AuditQueryRequest {
            key: "doomed".into(),
            action: "DestroyKey".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    // The intent, then the destruction record, under one request id.
    let outcomes: Vec<&str> = records.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["intent", "ok"], "{records:?}");
    assert_eq!(records[0].request_id, records[1].request_id);
    assert!(
        records
            .iter()
            .all(|e| e.actor == "keygate:scheduler" && e.actor_kind == "system")
    );
    assert!(
        records[1].details.contains("versions_destroyed"),
        "{}",
        records[1].details
    );
    // The material is gone from the provider's store too (what remains is keygate's own audit
    // signing key).
    let provider_dir = dir.path().join("data/providers/local/keys");
    let held: Vec<String> = std::fs::read_dir(provider_dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert_eq!(held.len(), 1);
    assert!(held[0].contains("keygate/audit-checkpoints"), "{}", held[0]);
    assert!(held.iter().all(|f| !f.contains("doomed")));
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_lists_what_the_provider_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    let key = keys
        .create_key(create("inv/one", "aes-256-gcm", "alice"))
        .await
        .unwrap()
        .into_inner();
    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let inventory = admin
        .list_inventory(pb::ListInventoryRequest {
            provider: "local".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let found = inventory
        .keys
        .iter()
        .find(|k| k.provider_uri == key.provider_uri)
        .expect("key in inventory");
    assert!(found.managed);
    assert_eq!(
        (found.key_name.as_str(), found.algorithm.as_str()),
        ("inv/one", "aes-256-gcm")
    );
    let missing = admin
        .list_inventory(pb::ListInventoryRequest {
            provider: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}
