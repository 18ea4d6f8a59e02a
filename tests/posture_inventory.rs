//! Key posture end to end, through gRPC and the CLI: keys in the local provider, OpenBao,
//! LocalStack and SoftHSM2, some created straight in the backends; a scan lists every one,
//! the unmanaged ones become findings; adopting one closes its finding and its next call is
//! policy-checked and audited; acknowledging a finding is audited as a change (intent and
//! outcome); keys that appear and vanish between scans show. (Keys changed in their backends
//! behind keygate's back: `posture_drift.rs`.)
//!
//! Needs SoftHSM2, OpenBao and LocalStack (`tests/run.sh posture_inventory` installs them).

mod common;

use common::backends::Backends;
use common::posture::{
    Setup, cli_json, create, findings, inventory, keys_like, open_finding, posture_as, scan,
    scan_events, token,
};
use common::{Server, days, events_for, request_id};
use keygate::pb;
use serde_json::Value;
use std::path::Path;

/// Every backend as a provider (the local one comes with dev mode).
fn start_gateway(dir: &Path, b: &Backends) -> Server {
    let (providers, env) = common::backends::providers(Some(&b.hsm), Some(&b.bao), Some(&b.aws));
    common::posture::start(
        dir,
        &Setup {
            providers,
            env,
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_find_unmanaged_keys_in_every_backend_and_adoption_brings_them_under_keygate() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backends::start("e2e-posture").await;
    let server = start_gateway(dir.path(), &b);
    let mut root = server.root().await;
    // Managed keys, one per provider.
    let mut managed = Vec::new();
    for provider in ["local", "vault", "aws", "hsm"] {
        let key = root
            .create_key(create(&format!("pos/{provider}"), provider, "svc-app"))
            .await
            .unwrap_or_else(|e| panic!("create on {provider}: {e}"))
            .into_inner();
        managed.push(key);
    }
    // Keys created straight in the backends, behind keygate's back.
    common::backends::bao(
        &b.bao,
        "POST",
        "/v1/transit/keys/stray-vault",
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    let kms = common::backends::kms_client(&b.aws.endpoint());
    let stray_aws = kms
        .create_key()
        .send()
        .await
        .expect("create a key straight in LocalStack")
        .key_metadata
        .expect("key metadata")
        .key_id;
    b.hsm.stray_key("stray-hsm");

    let mut sol = posture_as(&server, "sol").await;
    let first = scan(&mut sol).await;
    assert_eq!(first.listings.len(), 4, "{first:?}");
    // A figure for people (`--no-capture`), never asserted: how long each listing took.
    for l in &first.listings {
        eprintln!(
            "scan: {} listed {} keys in {} ms",
            l.provider, l.keys, l.elapsed_ms
        );
    }
    let keys = inventory(&mut sol).await;
    for key in &managed {
        let listed = keys
            .iter()
            .find(|k| k.provider_uri == key.provider_uri)
            .unwrap_or_else(|| panic!("{} not in the inventory: {keys:?}", key.name));
        assert!(listed.managed && listed.key_id == key.id, "{listed:?}");
    }
    let unmanaged_uri = |needle: &str| {
        keys.iter()
            .find(|k| !k.managed && k.provider_uri.contains(needle))
            .unwrap_or_else(|| panic!("no unmanaged key like {needle}: {keys:?}"))
            .provider_uri
            .clone()
    };
    let vault_uri = unmanaged_uri("stray-vault");
    let aws_uri = unmanaged_uri(&stray_aws);
    let hsm_uri = unmanaged_uri("stray-hsm");
    // Only the strays are unmanaged (keygate's own audit signing key is in the catalog).
    assert_eq!(first.unmanaged, 3, "{keys:?}");
    for uri in [&vault_uri, &aws_uri, &hsm_uri] {
        let f = open_finding(&mut sol, "unmanaged-key", uri)
            .await
            .unwrap_or_else(|| panic!("no unmanaged-key finding for {uri}"));
        assert_eq!(f.severity, "high");
        assert!(f.evidence.contains(uri.as_str()), "{}", f.evidence);
    }
    // keygate's own audit signing key, owned by keygate (`keygate-audit`, no principal), is
    // not reported as owned by nobody: a default deployment starts with no such finding.
    let orphans = findings(&mut sol, "open", "owner-unknown").await;
    assert!(
        !orphans
            .iter()
            .any(|f| f.key_name == "keygate/audit-checkpoints"),
        "{orphans:?}"
    );
    // The same through the CLI.
    let cli_inventory = cli_json(&server, "sol", &["inventory", "--unmanaged"]);
    assert_eq!(
        cli_inventory["keys"].as_array().unwrap().len(),
        3,
        "{cli_inventory}"
    );
    let cli_findings = cli_json(
        &server,
        "sol",
        &["findings", "list", "--rule", "unmanaged-key"],
    );
    assert_eq!(cli_findings.as_array().unwrap().len(), 3, "{cli_findings}");

    // Who may read, scan and acknowledge: auditors read, neither scan nor acknowledge; key
    // users do none of it.
    let mut dana = posture_as(&server, "dana").await;
    assert_eq!(findings(&mut dana, "open", "unmanaged-key").await.len(), 3);
    let refused = dana.run_scan(pb::RunScanRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let hsm_finding = open_finding(&mut sol, "unmanaged-key", &hsm_uri)
        .await
        .unwrap();
    let refused = dana
        .acknowledge_finding(pb::AcknowledgeFindingRequest {
            id: hsm_finding.id,
            reason: "not mine to say".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let mut svc = posture_as(&server, "svc-app").await;
    let refused = svc
        .list_findings(pb::ListFindingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Acknowledging is audited as a change, with the reason: an intent event naming the
    // finding before the store is touched, and the outcome; the finding stays open.
    let acked = sol
        .acknowledge_finding(pb::AcknowledgeFindingRequest {
            id: hsm_finding.id,
            reason: "vendor appliance key, tracked in CHG-42".into(),
        })
        .await
        .unwrap();
    let ack_id = request_id(&acked);
    let acked = acked.into_inner();
    assert_eq!(acked.acknowledged_by, "sol");
    assert!(acked.closed_at.is_empty());
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = events_for(&mut audit, &ack_id).await;
    let mut acks: Vec<_> = events
        .iter()
        .filter(|e| e.action == "AcknowledgeFinding")
        .collect();
    acks.sort_by_key(|e| e.sequence);
    let outcomes: Vec<&str> = acks.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["intent", "ok"], "{events:?}");
    for event in &acks {
        assert_eq!(event.actor, "sol");
        assert!(event.details.contains("CHG-42"), "{}", event.details);
        let details: Value = serde_json::from_str(&event.details).unwrap();
        assert_eq!(details["finding_id"], hsm_finding.id, "{details}");
    }
    // A reason is required; a closed or unknown finding cannot be acknowledged.
    let no_reason = sol
        .acknowledge_finding(pb::AcknowledgeFindingRequest {
            id: hsm_finding.id,
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    let unknown = sol
        .acknowledge_finding(pb::AcknowledgeFindingRequest {
            id: 999_999,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // Oversized or forged inputs are refused as such, not looked up.
    let long_reason = sol
        .acknowledge_finding(pb::AcknowledgeFindingRequest {
            id: hsm_finding.id,
            reason: "x".repeat(4096),
        })
        .await
        .unwrap_err();
    assert_eq!(long_reason.code(), tonic::Code::InvalidArgument);
    let long_provider = sol
        .get_inventory(pb::GetInventoryRequest {
            provider: "p".repeat(4096),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(long_provider.code(), tonic::Code::InvalidArgument);
    for page_token in ["x", "eA.0.0", &"A".repeat(8192)] {
        let forged = sol
            .list_findings(pb::ListFindingsRequest {
                page_token: page_token.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(forged.code(), tonic::Code::InvalidArgument, "{page_token}");
    }
    let long_uri = server
        .keys(&token("kim"))
        .await
        .adopt_key(pb::AdoptKeyRequest {
            provider_uri: format!("awskms:///{}", "a".repeat(64 * 1024)),
            name: "adopted/long".into(),
            owner: "svc-app".into(),
            crypto_period: days(365),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        long_uri.code(),
        tonic::Code::InvalidArgument,
        "{long_uri:?}"
    );

    // Adoption through gRPC takes the provider and algorithm from the caller: without them
    // the answer is the same whether or not a scan listed the URI, so it tells a caller
    // nothing about the inventory.
    for uri in [vault_uri.as_str(), "hashivault://transit/keys/never-listed"] {
        let missing = server
            .keys(&token("sol"))
            .await
            .adopt_key(pb::AdoptKeyRequest {
                provider_uri: uri.into(),
                name: "adopted/probe".into(),
                owner: "svc-app".into(),
                crypto_period: days(365),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::InvalidArgument, "{missing:?}");
    }
    // A key admin brings the OpenBao key under keygate; the security officer may not.
    let adopt = |uri: &str, name: &str| pb::AdoptKeyRequest {
        provider_uri: uri.into(),
        name: name.into(),
        owner: "svc-app".into(),
        crypto_period: days(365),
        provider: "vault".into(),
        algorithm: "aes-256-gcm".into(),
        ..Default::default()
    };
    let refused = server
        .keys(&token("sol"))
        .await
        .adopt_key(adopt(&vault_uri, "adopted/vault"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let mut kim = server.keys(&token("kim")).await;
    let adopted = kim
        .adopt_key(adopt(&vault_uri, "adopted/vault"))
        .await
        .unwrap();
    let adopt_id = request_id(&adopted);
    let adopted = adopted.into_inner();
    assert_eq!(
        (
            adopted.provider.as_str(),
            adopted.algorithm.as_str(),
            adopted.owner.as_str()
        ),
        ("vault", "aes-256-gcm", "svc-app")
    );
    let events = events_for(&mut audit, &adopt_id).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "AdoptKey" && e.outcome == "ok" && e.actor == "kim"),
        "{events:?}"
    );
    assert!(
        open_finding(&mut sol, "unmanaged-key", &vault_uri)
            .await
            .is_none()
    );
    let closed = findings(&mut sol, "closed", "unmanaged-key").await;
    let closed = closed.iter().find(|f| f.provider_uri == vault_uri).unwrap();
    assert!(
        closed.closed_because.contains("adopted/vault"),
        "{closed:?}"
    );
    // Adopting it again is refused: it is managed.
    let again = kim
        .adopt_key(adopt(&vault_uri, "adopted/vault-2"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    // The next call on the adopted key is policy-checked and audited: its owner encrypts
    // through keygate and OpenBao's own key does the work; a key admin may not use it.
    let mut app = server.keys(&token("svc-app")).await;
    let sealed = app
        .encrypt(pb::EncryptRequest {
            key: "adopted/vault".into(),
            plaintext: b"adopted".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap();
    let events = events_for(&mut audit, &request_id(&sealed)).await;
    let used = events
        .iter()
        .find(|e| e.action == "Encrypt")
        .expect("Encrypt audited");
    assert_eq!(
        (used.key_id.as_str(), used.outcome.as_str()),
        (adopted.id.as_str(), "ok")
    );
    let opened = app
        .decrypt(pb::DecryptRequest {
            ciphertext: sealed.into_inner().ciphertext,
            associated_data: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"adopted");
    let denied = kim
        .encrypt(pb::EncryptRequest {
            key: "adopted/vault".into(),
            plaintext: b"x".to_vec(),
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // Adoption through the CLI: the LocalStack key.
    let out = server
        .cli()
        .env("KEYGATE_TOKEN", token("kim"))
        .args([
            "--json",
            "key",
            "adopt",
            &aws_uri,
            "--name",
            "adopted/aws",
            "--owner",
            "svc-app",
            "--crypto-period",
            "365d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli_key["provider"], "aws", "{cli_key}");
    // The same KMS key named by its bare key id (KMS answers with the ARN) is the managed
    // key, not a second one to adopt.
    let key_id = aws_uri.rsplit('/').next().unwrap();
    let by_id = kim
        .adopt_key(pb::AdoptKeyRequest {
            provider: "aws".into(),
            algorithm: cli_key["algorithm"].as_str().unwrap().into(),
            ..adopt(&format!("awskms:///{key_id}"), "adopted/aws-2")
        })
        .await
        .unwrap_err();
    assert_eq!(by_id.code(), tonic::Code::AlreadyExists, "{by_id:?}");
    assert!(
        open_finding(&mut sol, "unmanaged-key", &aws_uri)
            .await
            .is_none()
    );

    // Between scans: a key appears in OpenBao, the HSM's stray key vanishes. The vanished
    // key's finding closes by itself; the new one opens.
    common::backends::bao(
        &b.bao,
        "POST",
        "/v1/transit/keys/newcomer",
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    b.hsm.remove("stray-hsm");
    let second = scan(&mut sol).await;
    assert_eq!((second.appeared, second.vanished), (1, 1), "{second:?}");
    let changed = cli_json(&server, "sol", &["inventory", "--changed"]);
    let changes: Vec<(String, String)> = changed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["change"].as_str().unwrap().to_string(),
                k["provider_uri"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("vanished".into(), hsm_uri.clone())),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|(c, u)| c == "appeared" && u.contains("newcomer")),
        "{changes:?}"
    );
    assert!(
        open_finding(&mut sol, "unmanaged-key", &hsm_uri)
            .await
            .is_none()
    );
    let newcomer = keys_like(&mut sol, "newcomer").await;
    assert!(
        open_finding(&mut sol, "unmanaged-key", &newcomer)
            .await
            .is_some()
    );
    // The adopted keys stay managed: no finding reopens for them.
    for uri in [&vault_uri, &aws_uri] {
        assert!(open_finding(&mut sol, "unmanaged-key", uri).await.is_none());
    }

    let closed: Vec<String> = findings(&mut sol, "closed", "")
        .await
        .into_iter()
        .map(|f| f.rule)
        .collect();
    assert!(
        closed.iter().any(|r| r == "unmanaged-key"),
        "unmanaged-key never closed: {closed:?}"
    );
    // Scans are audited as the caller's ScanPosture calls; the auditor's attempt as denied.
    let scans = scan_events(&server).await;
    let (done, refused): (Vec<_>, Vec<_>) = scans.iter().partition(|e| e.outcome == "ok");
    assert!(done.iter().all(|e| e.actor == "sol"), "{scans:?}");
    assert!(
        refused.len() == 1 && refused[0].actor == "dana" && refused[0].outcome == "denied",
        "{refused:?}"
    );
    assert!(scans.len() >= 3, "{}", scans.len());
}
