//! Shared set-up for the tests against LocalStack.

#![allow(dead_code)]

use keygate_provider_aws::{AwsKmsConfig, AwsKmsProvider, CredentialsConfig};
use keygate_test_backends::localstack::LocalStack;

pub const REGION: &str = "us-east-1";
pub const KEY_ID_VAR: &str = "KEYGATE_TEST_AWS_ACCESS_KEY_ID";
pub const SECRET_VAR: &str = "KEYGATE_TEST_AWS_SECRET_ACCESS_KEY";

/// Puts LocalStack's dummy credentials where the config references them. Call first thing in
/// the test binary's only test, before any runtime thread exists.
pub fn set_dummy_credentials() {
    // SAFETY: called at the start of the binary's single test, before this test starts any
    // thread, and nothing else in the process reads the environment concurrently.
    unsafe {
        std::env::set_var(KEY_ID_VAR, "test");
        std::env::set_var(SECRET_VAR, "test");
    }
}

pub fn config(endpoint: &str) -> AwsKmsConfig {
    let mut c = AwsKmsConfig::new(REGION);
    c.endpoint_url = Some(endpoint.to_string());
    c.credentials = CredentialsConfig::Env {
        access_key_id_env: KEY_ID_VAR.into(),
        secret_access_key_env: SECRET_VAR.into(),
        session_token_env: None,
    };
    c.connect_timeout_ms = 1_000;
    c.timeout_ms = 15_000;
    c
}

pub async fn provider(name: &str, config: AwsKmsConfig) -> AwsKmsProvider {
    AwsKmsProvider::new(name, config)
        .await
        .unwrap_or_else(|e| panic!("building the AWS KMS provider failed: {e}"))
}

/// Starts LocalStack, failing loudly (with how to install it) when it cannot.
pub async fn start_localstack() -> LocalStack {
    match tokio::task::spawn_blocking(LocalStack::start).await {
        Ok(Ok(ls)) => ls,
        Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
        Err(e) => panic!("LocalStack start-up task failed: {e}"),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}
