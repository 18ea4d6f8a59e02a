//! Standard gRPC services and conventions, so generic tools (grpcurl, grpcui, Postman) and any
//! language's clients work: health checking overall and per service, server reflection v1 and
//! v1alpha, RESOURCE_EXHAUSTED for a message over the limit, page tokens that are checked.

mod common;

use common::{ROOT_TOKEN, Server, create};
use keygate::pb;
use std::collections::BTreeSet;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "keygate.v1.KeyService",
        "keygate.v1.AuditService",
        "keygate.v1.AdminService",
        "keygate.v1.ApprovalService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "keygate.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses
        .message()
        .await
        .unwrap()
        .expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "keygate.v1.KeyService",
        "keygate.v1.AuditService",
        "keygate.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1alpha_lists_the_services() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "keygate.v1.KeyService".into(),
            )),
        },
    ];
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let response = responses.message().await.unwrap().expect("a list");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "keygate.v1.KeyService",
        "keygate.v1.AuditService",
        "keygate.v1.AdminService",
        "keygate.v1.ApprovalService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let response = responses.message().await.unwrap().expect("a descriptor");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_limit_is_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.root().await;
    let err = keys
        .encrypt(pb::EncryptRequest {
            key: "anything".into(),
            plaintext: vec![0; 20 * 1024 * 1024],
            associated_data: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("the limit is"), "{err:?}");
    // The same on a service other than the key service. (Without a token the call is refused
    // before its message is read at all: tests/auth_before_decode.rs.)
    let mut admin = server.admin(ROOT_TOKEN).await;
    let err = admin
        .explain_policy(pb::ExplainPolicyRequest {
            principal: "x".repeat(2 * 1024 * 1024),
            action: "Encrypt".into(),
            key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // A streaming request meets the limit in its handler: the same code.
    let big = pb::ReEncryptStreamRequest {
        key: "anything".into(),
        items: vec![pb::BatchReEncryptItem {
            ciphertext: vec![0; 2 * 1024 * 1024],
            ..Default::default()
        }],
        ..Default::default()
    };
    let outcome = match keys.re_encrypt_stream(tokio_stream::iter(vec![big])).await {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Err(status) => break status,
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("the oversized stream message was accepted"),
                }
            }
        }
    };
    assert_eq!(outcome.code(), Code::ResourceExhausted, "{outcome:?}");
    // The server is still there for calls of a sane size.
    keys.create_key(create("after-big", "aes-256-gcm", "alice"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn page_tokens_are_checked_and_page_through_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut keys = server.keys(ROOT_TOKEN).await;
    let mut created = BTreeSet::new();
    for i in 0..23 {
        let name = format!("paged/k{i:02}");
        keys.create_key(create(&name, "aes-256-gcm", "pager"))
            .await
            .unwrap();
        created.insert(name);
    }
    // The gateway's own keys (the audit signing key) have another owner.
    let list = |page_token: String| pb::ListKeysRequest {
        owner: "pager".into(),
        page_size: 5,
        page_token,
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    let mut a_real_token = String::new();
    loop {
        let page = keys
            .list_keys(list(token.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for k in page.keys {
            assert!(seen.insert(k.name.clone()), "{} listed twice", k.name);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        a_real_token = token.clone();
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 5);

    // A key name (what tokens used to be), garbage, and a real token with another position.
    let (_, rest) = a_real_token.split_once('.').expect("a token");
    for forged in [
        "paged/k10".to_string(),
        "not a token!".to_string(),
        format!("cGFnZWQvazEw.{rest}"),
    ] {
        let err = keys.list_keys(list(forged.clone())).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{forged}: {err:?}");
        assert!(
            err.message().contains("next_page_token"),
            "the message says what to send: {err:?}"
        );
    }
    // A real token with other filters.
    let err = keys
        .list_keys(pb::ListKeysRequest {
            owner: "alice".into(),
            ..list(a_real_token)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("other filters"), "{err:?}");

    // The other paged listings refuse one too.
    let mut approvals = server.approvals(ROOT_TOKEN).await;
    let err = approvals
        .list_approvals(pb::ListApprovalsRequest {
            page_token: "0192d6a4-0000-7000-8000-000000000000".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut admin = server.admin(ROOT_TOKEN).await;
    let err = admin
        .list_inventory(pb::ListInventoryRequest {
            page_token: "backend-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}
