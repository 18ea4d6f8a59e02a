//! Adopting an unmanaged key where AdoptKey is critical (`[approvals] critical =
//! ["AdoptKey@prod"]`), through gRPC and the CLI: the call opens an approval request and
//! nothing enters the catalog; the key is adopted, under the id the request reserved, once two
//! approvers other than the requester approve; a denied request, a name taken meanwhile and a
//! provider key adopted meanwhile leave nothing behind.
//!
//! Needs OpenBao (`tests/run.sh approvals_adoption` installs it): its Transit keys made behind
//! keygate's back are the unmanaged keys.

mod common;

use common::posture::{findings, inventory, open_finding, scan};
use common::team::{self, create_in, opened};
use common::{Server, days, events_for, request_id};
use keygate::pb;
use keygate_test_backends::openbao::OpenBao;
use tonic::Code;

// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const VAULT_TOKEN_VAR: &str = "E2E_ADOPTION_VAULT_TOKEN";

fn start(dir: &std::path::Path, bao: &OpenBao) -> Server {
    let extra = format!(
        "[approvals]\ncritical = [\"AdoptKey@prod\"]\n\n\
         [posture]\nscan_interval = \"0s\"\n\n\
         [providers.vault]\nkind = \"vault\"\naddress = \"{}\"\nmount = \"transit\"\n\
         auth = {{ method = \"token\", token = {{ env = \"{VAULT_TOKEN_VAR}\" }} }}\n",
        bao.addr()
    );
    team::start_with_env(
        dir,
        &extra,
        vec![(VAULT_TOKEN_VAR.into(), bao.token().into())],
    )
}

fn adopt(uri: &str, name: &str) -> pb::AdoptKeyRequest {
    pb::AdoptKeyRequest {
        provider_uri: uri.into(),
        name: name.into(),
        owner: "svc-pay".into(),
        crypto_period: days(365),
        environment: "prod".into(),
        provider: "vault".into(),
        algorithm: "aes-256-gcm".into(),
        ..Default::default()
    }
}

fn approve(id: &str) -> pb::ApproveRequest {
    pb::ApproveRequest {
        id: id.into(),
        ..Default::default()
    }
}

/// Whether `name` is in the catalog (as the auditor reads it).
async fn in_catalog(server: &Server, name: &str) -> bool {
    match server
        .keys_as("dave")
        .await
        .get_key(pb::GetKeyRequest {
            key: name.into(),
            usage: false,
        })
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("get {name}: {status:?}"),
    }
}

/// Both prod approvers approve `id`; the request as the second approval left it.
async fn approved_by_two(server: &Server, id: &str) -> pb::Approval {
    let one = server
        .approvals_as("erin")
        .await
        .approve(approve(id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.state, "pending", "{one:?}");
    server
        .approvals_as("frank")
        .await
        .approve(approve(id))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adoption_waits_for_two_approvers_and_only_then_enters_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let bao = tokio::task::spawn_blocking(OpenBao::start)
        .await
        .unwrap()
        .expect("OpenBao could not be started");
    let server = start(dir.path(), &bao);
    let (status, text) = bao
        .request(
            "POST",
            "/v1/transit/keys/stray-legacy",
            Some(r#"{"type":"aes256-gcm96"}"#),
        )
        .expect("OpenBao request");
    assert!((200..300).contains(&status), "{status} {text}");

    let mut sam = server.posture_as("sam").await;
    scan(&mut sam).await;
    let uri = inventory(&mut sam)
        .await
        .into_iter()
        .find(|k| !k.managed && k.provider_uri.contains("stray-legacy"))
        .expect("the stray key in the inventory")
        .provider_uri;
    assert!(
        open_finding(&mut sam, "unmanaged-key", &uri)
            .await
            .is_some()
    );

    // The key admin's adoption opens a request; asking again finds the same one.
    let mut alice = server.keys_as("alice").await;
    let id = opened(
        alice
            .adopt_key(adopt(&uri, "prod/legacy"))
            .await
            .unwrap_err(),
    );
    let again = opened(
        alice
            .adopt_key(adopt(&uri, "prod/legacy"))
            .await
            .unwrap_err(),
    );
    assert_eq!(again, id);
    let mut erin = server.approvals_as("erin").await;
    let pending = erin
        .get_approval(pb::GetApprovalRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            pending.action.as_str(),
            pending.state.as_str(),
            pending.key_name.as_str(),
            pending.environment.as_str(),
            pending.requester.as_str()
        ),
        ("AdoptKey", "pending", "prod/legacy", "prod", "alice")
    );
    assert!(pending.change.contains(&uri), "{}", pending.change);
    assert!(!pending.key_id.is_empty());
    // Listed by the name it asks for, although no key has it yet.
    let listed = erin
        .list_approvals(pb::ListApprovalsRequest {
            key: "prod/legacy".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .approvals;
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    // Nothing happened yet: no key, the finding still open after a scan.
    assert!(!in_catalog(&server, "prod/legacy").await);
    scan(&mut sam).await;
    assert!(
        open_finding(&mut sam, "unmanaged-key", &uri)
            .await
            .is_some()
    );

    // Other requests for the same provider key: under another name (henry, who approves
    // too but never its own request), under a name that gets taken meanwhile, and one the
    // CLI opens that is denied.
    let mut henry = server.keys_as("henry").await;
    let copy = opened(
        henry
            .adopt_key(adopt(&uri, "prod/legacy-copy"))
            .await
            .unwrap_err(),
    );
    let own = server
        .approvals_as("henry")
        .await
        .approve(approve(&copy))
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    let taken = opened(
        henry
            .adopt_key(adopt(&uri, "prod/taken"))
            .await
            .unwrap_err(),
    );
    let out = server.cli_as(
        "alice",
        &[
            "key",
            "adopt",
            &uri,
            "--name",
            "prod/denied",
            "--owner",
            "svc-pay",
            "--crypto-period",
            "365d",
            "--environment",
            "prod",
            "--provider",
            "vault",
            "--algorithm",
            "aes-256-gcm",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let denied_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("approval request: "))
        .unwrap_or_else(|| panic!("no request id in {stdout}"))
        .trim()
        .to_string();
    let denied = erin
        .deny(pb::DenyRequest {
            id: denied_id.clone(),
            reason: "not this one".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.state, "denied");
    assert!(!in_catalog(&server, "prod/denied").await);

    // The requester cannot approve its own adoption; the two approvers adopt it, for alice.
    let own = server
        .approvals_as("alice")
        .await
        .approve(approve(&id))
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied, "{own:?}");
    let done = approved_by_two(&server, &id).await;
    assert_eq!(done.state, "executed", "{done:?}");
    let key = server
        .keys_as("dave")
        .await
        .get_key(pb::GetKeyRequest {
            key: "prod/legacy".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.id, pending.key_id, "the reserved id");
    assert_eq!(
        (key.provider.as_str(), key.owner.as_str()),
        ("vault", "svc-pay")
    );
    assert_eq!(key.provider_uri, uri);
    let mut audit = server.audit_as("dave").await;
    let executed = events_for(&mut audit, &done.execution_request_id).await;
    assert_eq!(
        executed
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.outcome.as_str()))
            .collect::<Vec<_>>(),
        [("AdoptKey", "alice", "intent"), ("AdoptKey", "alice", "ok")]
    );
    assert!(executed.iter().all(|e| e.details.contains(&id)));

    // It is a key like any other: its owner encrypts, audited.
    let sealed = server
        .keys_as("svc-pay")
        .await
        .encrypt(pb::EncryptRequest {
            key: "prod/legacy".into(),
            plaintext: b"adopted after approval".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let used = events_for(&mut audit, &request_id(&sealed)).await;
    assert!(
        used.iter()
            .any(|e| e.action == "Encrypt" && e.outcome == "ok" && e.key_id == key.id),
        "{used:?}"
    );
    // Its finding closed, and stays closed on the next scan.
    scan(&mut sam).await;
    assert!(
        open_finding(&mut sam, "unmanaged-key", &uri)
            .await
            .is_none()
    );
    let closed = findings(&mut sam, "closed", "unmanaged-key").await;
    assert!(
        closed
            .iter()
            .any(|f| f.provider_uri == uri && f.closed_because.contains("prod/legacy")),
        "{closed:?}"
    );

    // The second adoption of the same provider key fails when approved, writing nothing.
    let copy = approved_by_two(&server, &copy).await;
    assert_eq!(copy.state, "failed", "{copy:?}");
    assert!(copy.outcome.contains("ALREADY_MANAGED"), "{}", copy.outcome);
    assert!(!in_catalog(&server, "prod/legacy-copy").await);

    // A name taken meanwhile: the adoption fails when approved.
    server
        .keys_as("alice")
        .await
        .create_key(create_in("prod/taken", "aes-256-gcm", "svc-pay", "prod"))
        .await
        .unwrap();
    let taken = approved_by_two(&server, &taken).await;
    assert_eq!(taken.state, "failed", "{taken:?}");
    assert!(taken.outcome.contains("KEY_EXISTS"), "{}", taken.outcome);
    let still = server
        .keys_as("dave")
        .await
        .get_key(pb::GetKeyRequest {
            key: "prod/taken".into(),
            usage: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.provider, "local", "the key created meanwhile stays");
}
