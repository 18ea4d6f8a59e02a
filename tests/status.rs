//! `keygate status` and AdminService.GetGatewayStatus: providers with their circuit
//! breakers, the policies in force, the audit log's state, and an exit code a probe can use.

mod common;

use common::{ROOT_TOKEN, Server, ServerOptions, create};
use keygate::pb;
use serde_json::Value;

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

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_providers_policies_and_audit_and_exits_2_when_a_breaker_opens() {
    let dir = tempfile::tempdir().unwrap();
    // `failing` refuses every encrypt, so its breaker opens after two calls.
    let server = server_with(
        &dir,
        "default_provider = \"main\"\n\
         [providers.main]\n\
         kind = \"local\"\n\
         [providers.failing]\n\
         kind = \"local\"\n\
         [providers.failing.guard]\n\
         retry = { max_attempts = 1 }\n\
         breaker = { failures = 2, open_for = \"1h\" }\n\
         [providers.failing.guard.faults]\n\
         ops = [\"encrypt\"]\n\
         fail = \"unavailable\"\n",
    );
    let mut admin = server.admin(ROOT_TOKEN).await;
    let healthy = admin
        .get_gateway_status(pb::GetGatewayStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut providers: Vec<(String, bool, String)> = healthy
        .providers
        .iter()
        .map(|p| (p.name.clone(), p.default, p.breaker.clone()))
        .collect();
    providers.sort();
    assert_eq!(
        providers,
        vec![
            ("failing".into(), false, "closed".into()),
            // Dev mode always has its own local provider.
            ("local".into(), false, "closed".into()),
            ("main".into(), true, "closed".into()),
        ]
    );
    assert!(healthy.audit_writable);
    assert!(!healthy.policy.unwrap_or_default().policies.is_empty());
    let cli = server.cli().arg("status").output().unwrap();
    assert_eq!(cli.status.code(), Some(0), "{cli:?}");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        text.contains("main (default): breaker closed")
            && text.contains("audit            writable"),
        "{text}"
    );

    // Two failed calls open `failing`'s breaker: status says so and exits 2.
    let mut keys = server.root().await;
    let mut request = create("app/failing", "aes-256-gcm", "root");
    request.provider = "failing".into();
    keys.create_key(request).await.unwrap();
    for _ in 0..2 {
        let err = keys
            .encrypt(pb::EncryptRequest {
                key: "app/failing".into(),
                plaintext: b"x".to_vec(),
                associated_data: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    let cli = server.cli().args(["--json", "status"]).output().unwrap();
    assert_eq!(cli.status.code(), Some(2), "{cli:?}");
    let status: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let failing = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "failing")
        .unwrap();
    assert_eq!(failing["breaker"], "open");
    assert_eq!(status["audit_writable"], true);
}
