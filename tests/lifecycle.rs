//! Key lifecycle end to end through gRPC on the local provider: version usage counted from
//! the audit log, retirement refused while a version is in use and enforced after, and
//! short-lived keys destroyed by the scheduler with their record.

mod common;

use common::{Keys, Server, ServerOptions, create, open, reason, rotate, seal};
use keygate::pb;
use keygate_test_backends::localstack::LocalStack;
use keygate_test_backends::openbao::OpenBao;
use std::time::{Duration, Instant};
use tonic::Code;

fn server_with(dir: &tempfile::TempDir, lifecycle: &str) -> Server {
    let config = dir.path().join("keygate.toml");
    std::fs::write(&config, format!("[lifecycle]\n{lifecycle}\n")).unwrap();
    Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(config),
            ..Default::default()
        },
    )
}

/// A gateway with `vault` (OpenBao) and `aws` (LocalStack) providers and these `[lifecycle]`
/// settings. Bound in this order, the gateway (declared last) is dropped first, before its
/// backends and its directory.
async fn on_vault_and_aws(lifecycle: &str) -> (tempfile::TempDir, OpenBao, LocalStack, Server) {
    let bao = common::backends::start_openbao().await;
    let aws = common::backends::start_localstack().await;
    let (providers, env) = common::backends::providers(None, Some(&bao), Some(&aws));
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_with_config(
        dir.path(),
        &format!("{providers}[lifecycle]\n{lifecycle}\n"),
        env,
    );
    (dir, bao, aws, server)
}

async fn show(keys: &mut Keys, key: &str) -> pb::Key {
    keys.get_key(pb::GetKeyRequest {
        key: key.into(),
        usage: true,
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn version_usage_counts_each_versions_uses_from_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    keys.create_key(create("app/usage", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let v1: Vec<Vec<u8>> = vec![
        seal(&mut keys, "app/usage", b"a").await,
        seal(&mut keys, "app/usage", b"b").await,
        seal(&mut keys, "app/usage", b"c").await,
    ];
    rotate(&mut keys, "app/usage").await;
    let v2 = seal(&mut keys, "app/usage", b"d").await;
    rotate(&mut keys, "app/usage").await;

    // v1: 2 single decrypts, 3 batch items, 1 re-encryption from it, 1 failed (not counted).
    open(&mut keys, &v1[0]).await.unwrap();
    open(&mut keys, &v1[1]).await.unwrap();
    keys.batch_decrypt(pb::BatchDecryptRequest {
        key: "app/usage".into(),
        items: v1
            .iter()
            .chain(std::iter::once(&v2))
            .map(|c| pb::BatchDecryptItem {
                ciphertext: c.clone(),
                associated_data: vec![],
            })
            .collect(),
    })
    .await
    .unwrap();
    keys.re_encrypt(pb::ReEncryptRequest {
        ciphertext: v1[2].clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = keys
        .decrypt(pb::DecryptRequest {
            ciphertext: v1[0].clone(),
            associated_data: b"wrong".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let key = show(&mut keys, "app/usage").await;
    assert_eq!(
        key.usage_window.as_ref().map(|d| d.seconds),
        Some(30 * 86_400)
    );
    let uses: Vec<u64> = key.versions.iter().map(|v| v.uses).collect();
    assert_eq!(uses, vec![6, 1, 0]);
    assert!(!key.versions[0].last_used_at.is_empty());
    assert!(key.versions[2].last_used_at.is_empty());

    // Without asking, nothing is counted.
    let plain = keys
        .get_key(pb::GetKeyRequest {
            key: "app/usage".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plain.usage_window.is_none());
    assert!(plain.versions.iter().all(|v| v.uses == 0));

    let out = server
        .cli()
        .args(["key", "show", "app/usage"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("version usage"), "{text}");
    let v1_row = text
        .lines()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(v1_row.contains(" 6 "), "{v1_row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retirement_is_refused_while_a_version_is_in_use_and_enforced_after_the_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "retirement_quiet_period = \"2s\"");
    let mut keys = server.root().await;
    keys.create_key(create("app/retire", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let old = seal(&mut keys, "app/retire", b"old").await;
    rotate(&mut keys, "app/retire").await;
    let new = seal(&mut keys, "app/retire", b"new").await;

    let retire = |below: u32, force: bool| pb::RetireKeyVersionsRequest {
        key: "app/retire".into(),
        below,
        force,
    };
    // Bad input first: nothing to retire, or the primary itself.
    let none = keys
        .retire_key_versions(retire(1, false))
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::InvalidArgument);
    let primary = keys
        .retire_key_versions(retire(3, false))
        .await
        .unwrap_err();
    assert_eq!(primary.code(), Code::InvalidArgument);
    assert!(
        primary.message().contains("rotate first"),
        "{}",
        primary.message()
    );

    // v1 was used just now: refused, and the message says why and what to do.
    let used_at = Instant::now();
    open(&mut keys, &old).await.unwrap();
    let refused = keys
        .retire_key_versions(retire(2, false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "VERSION_IN_USE");
    assert!(
        refused.message().contains("version 1") && refused.message().contains("used 1 times"),
        "{}",
        refused.message()
    );
    assert_eq!(open(&mut keys, &old).await.unwrap().plaintext, b"old");

    // After the quiet period without a use, it retires.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(used_at.elapsed() > Duration::from_secs(2));
    let key = keys
        .retire_key_versions(retire(2, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.retired_below, 2);
    assert!(key.versions[0].retired && !key.versions[1].retired);

    let gone = open(&mut keys, &old).await.unwrap_err();
    assert_eq!(gone.code(), Code::FailedPrecondition);
    assert_eq!(reason(&gone), "VERSION_RETIRED");
    assert_eq!(open(&mut keys, &new).await.unwrap().plaintext, b"new");
    // Batches and re-encryption refuse it per item.
    let batch = keys
        .batch_re_encrypt(pb::BatchReEncryptRequest {
            key: "app/retire".into(),
            destination_key: String::new(),
            items: vec![pb::BatchReEncryptItem {
                ciphertext: old.clone(),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        batch.results[0].status.clone().unwrap_or_default().reason,
        "VERSION_RETIRED"
    );
    // Retirement only moves forward.
    let again = keys
        .retire_key_versions(retire(2, false))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::InvalidArgument);

    // Forcing retires a version in use (the dev root is exempt from the approvals forcing
    // needs), and its event says so.
    keys.create_key(create("app/forced", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let busy = seal(&mut keys, "app/forced", b"busy").await;
    rotate(&mut keys, "app/forced").await;
    open(&mut keys, &busy).await.unwrap();
    let forced = keys
        .retire_key_versions(pb::RetireKeyVersionsRequest {
            key: "app/forced".into(),
            below: 2,
            force: true,
        })
        .await
        .unwrap();
    let id = common::request_id(&forced);
    let mut audit = server.audit(common::ROOT_TOKEN).await;
    let events = common::events_for(&mut audit, &id).await;
    let outcome = events.iter().find(|e| e.outcome == "ok").unwrap();
    assert_eq!(outcome.action, "RetireKeyVersions");
    let details: serde_json::Value = serde_json::from_str(&outcome.details).unwrap();
    assert_eq!(details["forced"], true);
    assert_eq!(details["used_in_quiet_period"]["1"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_key_is_destroyed_when_its_ttl_ends_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "min_ttl = \"1s\"\nscan_interval = \"200ms\"");
    let mut keys = server.root().await;
    let mut request = create("job/ephemeral", "aes-256-gcm", "root");
    request.ttl = Some(prost_types::Duration {
        seconds: 3,
        nanos: 0,
    });
    let key = keys.create_key(request).await.unwrap().into_inner();
    assert!(!key.expires_at.is_empty());
    keys.create_key(create("job/lasting", "aes-256-gcm", "root"))
        .await
        .unwrap();
    let mut too_short = create("job/short", "aes-256-gcm", "root");
    too_short.ttl = Some(prost_types::Duration {
        seconds: 0,
        nanos: 500_000_000,
    });
    assert_eq!(
        keys.create_key(too_short).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let expiring = keys
        .list_keys(pb::ListKeysRequest {
            expiring_within: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = expiring.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, vec!["job/ephemeral"]);
    let cli = server
        .cli()
        .args(["key", "list", "--expiring", "1h"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        text.contains("job/ephemeral") && !text.contains("job/lasting"),
        "{text}"
    );

    let ct = seal(&mut keys, "job/ephemeral", b"short-lived").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let k = keys
            .get_key(pb::GetKeyRequest {
                key: "job/ephemeral".into(),
                usage: false,
            })
            .await
            .unwrap()
            .into_inner();
        if k.state == "destroyed" {
            break;
        }
        assert!(Instant::now() < deadline, "not destroyed: {k:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        open(&mut keys, &ct).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let lasting = keys
        .get_key(pb::GetKeyRequest {
            key: "job/lasting".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lasting.state, "enabled");

    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let records = admin
        .list_destruction_records(pb::ListDestructionRecordsRequest {
            key: "job/ephemeral".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.state, "destroyed");
    assert_eq!(r.window_seconds, 0);
    assert_eq!(r.versions, vec![1]);
    assert!(r.method.contains("TTL"), "{}", r.method);
    assert!(!r.destroyed_at.is_empty());
}

/// Pattern 3 on Vault/OpenBao and AWS KMS (LocalStack): the TTL ends, the scheduler destroys
/// the key in its backend (Transit deletes it; KMS schedules its deletion, KMS's shortest
/// window being 7 days) and writes the record.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_key_on_vault_and_aws_kms_is_destroyed_in_the_backend() {
    let (_dir, bao, aws, server) =
        on_vault_and_aws("min_ttl = \"1s\"\nscan_interval = \"200ms\"").await;
    let mut keys = server.root().await;
    let mut made = Vec::new();
    for provider in ["vault", "aws"] {
        let mut request = create(&format!("job/{provider}"), "aes-256-gcm", "root");
        request.provider = provider.into();
        request.ttl = Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        });
        made.push(keys.create_key(request).await.unwrap().into_inner());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for key in &made {
        loop {
            let k = keys
                .get_key(pb::GetKeyRequest {
                    key: key.name.clone(),
                    usage: false,
                })
                .await
                .unwrap()
                .into_inner();
            if k.state == "destroyed" {
                break;
            }
            assert!(Instant::now() < deadline, "not destroyed: {k:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Each backend's own view.
    let transit_name = made[0].provider_uri.rsplit('/').next().unwrap();
    let (status, text) = bao
        .request("GET", &format!("/v1/transit/keys/{transit_name}"), None)
        .expect("OpenBao request");
    assert_eq!(status, 404, "Transit still has the key: {text}");
    let kms_id = made[1].provider_uri.rsplit('/').next().unwrap();
    let described = common::backends::kms_client(&aws.endpoint())
        .describe_key()
        .key_id(kms_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_state()),
        Some(&aws_sdk_kms::types::KeyState::PendingDeletion)
    );
    let mut admin = server.admin(common::ROOT_TOKEN).await;
    for key in &made {
        let records = admin
            .list_destruction_records(pb::ListDestructionRecordsRequest {
                key: key.name.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(records.len(), 1, "{}", key.name);
        assert_eq!(
            (records[0].state.as_str(), records[0].window_seconds),
            ("destroyed", 0)
        );
        assert!(records[0].method.contains("TTL"), "{}", records[0].method);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_destruction_checklist_refuses_a_key_read_lately_and_its_record_lists_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "destruction_quiet_period = \"2s\"");
    checklist_on(&server, "local").await;
}

/// The same on Vault/OpenBao and AWS KMS (LocalStack), side by side on one gateway.
#[tokio::test(flavor = "multi_thread")]
async fn the_destruction_checklist_holds_on_vault_and_aws_kms() {
    let (_dir, _bao, _aws, server) = on_vault_and_aws("destruction_quiet_period = \"2s\"").await;
    tokio::join!(checklist_on(&server, "vault"), checklist_on(&server, "aws"));
}

/// The checklist on a key of `provider`: a key read within the quiet period is refused with
/// nothing changed; once quiet it is scheduled and its record lists every check.
async fn checklist_on(server: &Server, provider: &str) {
    let mut keys = server.root().await;
    let name = format!("{provider}/busy");
    let name = name.as_str();
    let schedule = |key: &str| pb::ScheduleKeyDestructionRequest {
        family: false,
        key: key.into(),
        pending_window: Some(prost_types::Duration {
            seconds: 7 * 86_400,
            nanos: 0,
        }),
    };
    let mut req = create(name, "aes-256-gcm", "root");
    req.provider = provider.into();
    keys.create_key(req).await.unwrap();
    let ct = seal(&mut keys, name, b"still needed").await;
    open(&mut keys, &ct).await.unwrap();

    // Read just now: refused, naming the version, the quiet period and what to do.
    let read_at = Instant::now();
    let refused = keys
        .schedule_key_destruction(schedule(name))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "KEY_IN_USE");
    for part in ["version 1", "1 times", "2s", "re-encrypt"] {
        assert!(refused.message().contains(part), "{}", refused.message());
    }
    // Nothing changed: the key still decrypts and no destruction was recorded.
    assert_eq!(
        open(&mut keys, &ct).await.unwrap().plaintext,
        b"still needed"
    );
    let mut admin = server.admin(common::ROOT_TOKEN).await;
    let records = |key: &str| pb::ListDestructionRecordsRequest { key: key.into() };
    let none = admin
        .list_destruction_records(records(name))
        .await
        .unwrap()
        .into_inner();
    assert!(none.records.is_empty(), "{none:?}");

    // Once the key has been quiet for the period, it is scheduled, and its record carries
    // the checklist.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(read_at.elapsed() > Duration::from_secs(2));
    let key = keys
        .schedule_key_destruction(schedule(name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.state, "pending-destruction");
    let record = admin
        .list_destruction_records(records(name))
        .await
        .unwrap()
        .into_inner()
        .records
        .remove(0);
    let checks: Vec<(&str, &str)> = record
        .checklist
        .iter()
        .map(|c| (c.check.as_str(), c.result.as_str()))
        .collect();
    assert_eq!(checks.len(), 4, "{checks:?}");
    assert_eq!(checks[0].0, "no reads in the quiet period");
    assert!(checks[0].1.starts_with("passed"), "{checks:?}");
    assert_eq!(checks[1].0, "every copy identified");
    assert!(
        checks[1].1.contains(&format!("provider '{provider}'"))
            && checks[1].1.contains(&record.provider_uri),
        "{checks:?}"
    );
    assert!(checks[2].1.starts_with("not applicable"), "{checks:?}");
    assert!(checks[3].1.contains("requested by root"), "{checks:?}");

    // The CLI prints the record with its checklist.
    let cli = server
        .cli()
        .args(["key", "destruction-record", name])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        text.contains("checklist") && text.contains("- no reads in the quiet period: passed"),
        "{text}"
    );
}
