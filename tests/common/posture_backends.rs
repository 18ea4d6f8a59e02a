//! The backends the posture tests reach around keygate (SoftHSM2, OpenBao, LocalStack) and
//! the provider settings naming them. Included by path by the posture tests that need them
//! only, so the other test binaries do not carry the AWS SDK.
#![allow(dead_code)]

use crate::common::hsm::TestHsm as Hsm;
use keygate_test_backends::localstack::LocalStack;
use keygate_test_backends::openbao::OpenBao;

const TOKEN: &str = "e2e-posture";
const SO_PIN: &str = "1234";
const USER_PIN: &str = "5678";
// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const PIN_VAR: &str = "E2E_POSTURE_HSM_PIN";
const VAULT_TOKEN_VAR: &str = "E2E_POSTURE_VAULT_TOKEN";
const AWS_KEY_ID_VAR: &str = "E2E_POSTURE_AWS_ACCESS_KEY_ID";
const AWS_SECRET_VAR: &str = "E2E_POSTURE_AWS_SECRET_ACCESS_KEY";

pub fn hsm() -> Hsm {
    Hsm::new(TOKEN, SO_PIN, USER_PIN)
}

pub async fn start_openbao() -> OpenBao {
    tokio::task::spawn_blocking(OpenBao::start)
        .await
        .expect("OpenBao start-up task")
        .expect("OpenBao could not be started")
}

pub async fn start_localstack() -> LocalStack {
    match tokio::task::spawn_blocking(LocalStack::start).await {
        Ok(Ok(ls)) => ls,
        Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
        Err(e) => panic!("LocalStack start-up task failed: {e}"),
    }
}

pub fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// One OpenBao request that must succeed.
pub fn bao(bao: &OpenBao, method: &str, path: &str, body: Option<&str>) {
    let (status, text) = bao.request(method, path, body).expect("OpenBao request");
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
}

/// `[providers.hsm]`, `[providers.vault]` and `[providers.aws]` for the backends given, and
/// the environment variables their settings name.
pub fn providers(
    hsm: Option<&Hsm>,
    bao: Option<&OpenBao>,
    aws: Option<&LocalStack>,
) -> (String, Vec<(String, String)>) {
    let mut config = String::new();
    let mut env = Vec::new();
    if let Some(hsm) = hsm {
        config.push_str(&format!(
            "[providers.hsm]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken = {{ label = \"{TOKEN}\" }}\n\
             user_pin = {{ env = \"{PIN_VAR}\" }}\n\n",
            hsm.hsm.module_path().display()
        ));
        env.push((
            "SOFTHSM2_CONF".to_string(),
            hsm.hsm.conf_path().display().to_string(),
        ));
        env.push((PIN_VAR.into(), USER_PIN.into()));
    }
    if let Some(bao) = bao {
        config.push_str(&format!(
            "[providers.vault]\nkind = \"vault\"\naddress = \"{}\"\nmount = \"transit\"\n\
             auth = {{ method = \"token\", token = {{ env = \"{VAULT_TOKEN_VAR}\" }} }}\n\n",
            bao.addr()
        ));
        env.push((VAULT_TOKEN_VAR.into(), bao.token().into()));
    }
    if let Some(aws) = aws {
        config.push_str(&format!(
            "[providers.aws]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\
             credentials = {{ source = \"env\", access_key_id_env = \"{AWS_KEY_ID_VAR}\", \
             secret_access_key_env = \"{AWS_SECRET_VAR}\" }}\n\n",
            aws.endpoint()
        ));
        env.push((AWS_KEY_ID_VAR.into(), "test".into()));
        env.push((AWS_SECRET_VAR.into(), "test".into()));
    }
    (config, env)
}
