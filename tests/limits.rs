//! Resource bounds a hostile or careless client meets before it can hold the server's
//! memory: connections at once, calls per connection, and Tail streams per principal.

mod common;

use common::{Bearer, ROOT_TOKEN, Server, ServerOptions, reason};
use keygate::pb;
use keygate::pb::audit_service_client::AuditServiceClient;
use keygate::pb::key_service_client::KeyServiceClient;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;

fn server_with(dir: &tempfile::TempDir, config: &str) -> Server {
    let path = dir.path().join("keygate.toml");
    std::fs::write(&path, config).unwrap();
    Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            config: Some(path),
            ..Default::default()
        },
    )
}

fn lazy_channel(server: &Server) -> Channel {
    Channel::from_shared(server.endpoint.clone())
        .unwrap()
        .connect_lazy()
}

fn list() -> pb::ListKeysRequest {
    pb::ListKeysRequest::default()
}

fn tail() -> pb::AuditTailRequest {
    pb::AuditTailRequest::default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_over_the_cap_waits_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "[server]\nmax_connections = 2\n");
    let mut first = server.root().await;
    let mut second = server.root().await;
    first.list_keys(list()).await.expect("first connection");
    second.list_keys(list()).await.expect("second connection");

    // A third connection is not served while two are open...
    let mut third =
        KeyServiceClient::with_interceptor(lazy_channel(&server), Bearer::new(ROOT_TOKEN));
    let waiting = tokio::spawn(async move { third.list_keys(list()).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    // ...and is, once one closes.
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the third connection was never served")
        .unwrap();
    served.expect("the third connection's call");
    second.list_keys(list()).await.expect("still served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_closed_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        &dir,
        "[server]\nmax_connections = 1\nsilent_connection_timeout = \"1s\"\n",
    );
    let address = server.endpoint.trim_start_matches("http://").to_string();
    // A client that connects and never speaks takes the only slot...
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    // ...until the server closes it: reading what the server sends (its HTTP/2 settings) ends
    // (EOF or reset) instead of waiting forever.
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut silent, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection was never closed");
    // Its slot is free again for a client that speaks.
    let mut keys =
        KeyServiceClient::with_interceptor(lazy_channel(&server), Bearer::new(ROOT_TOKEN));
    tokio::time::timeout(Duration::from_secs(60), keys.list_keys(list()))
        .await
        .expect("the next connection was never served")
        .expect("its call");
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_streams_are_bounded_per_principal() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(&dir, "[limits]\nmax_tail_streams_per_principal = 2\n");
    let mut audit = server.audit(ROOT_TOKEN).await;
    let one = audit.tail(tail()).await.expect("first tail").into_inner();
    let _two = audit.tail(tail()).await.expect("second tail").into_inner();
    let refused = audit.tail(tail()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "TAIL_LIMIT");
    assert!(
        refused.message().contains("max_tail_streams_per_principal"),
        "{}",
        refused.message()
    );
    // A stream the client closes gives its slot back.
    drop(one);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match audit.tail(tail()).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(reason(&e), "TAIL_LIMIT", "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "the closed tail's slot never came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_on_one_connection_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(
        &dir,
        "[server]\nmax_concurrent_streams = 2\n[limits]\nmax_tail_streams_per_principal = 8\n",
    );
    // Two open Tail streams fill one connection's streams...
    let channel = server.channel().await;
    let mut audit = AuditServiceClient::with_interceptor(channel.clone(), Bearer::new(ROOT_TOKEN));
    let _a = audit.tail(tail()).await.expect("first stream").into_inner();
    let _b = audit
        .tail(tail())
        .await
        .expect("second stream")
        .into_inner();
    // ...so a third call on it waits, while another connection is served at once.
    let mut same = KeyServiceClient::with_interceptor(channel, Bearer::new(ROOT_TOKEN));
    let waiting = tokio::spawn(async move { same.list_keys(list()).await });
    let mut other = server.root().await;
    other.list_keys(list()).await.expect("another connection");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "a third stream ran on a full connection"
    );
    drop(_a);
    let served = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiting call never ran")
        .unwrap();
    served.expect("the waiting call");
}
