//! The real backends the cross-provider tests run against (SoftHSM2, OpenBao, LocalStack), as
//! providers `hsm`, `vault` and `aws` of one gateway (the local provider comes with dev mode),
//! and ways to put keys in them behind keygate's back.

use super::hsm::TestHsm;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use keygate_test_backends::localstack::LocalStack;
use keygate_test_backends::openbao::OpenBao;

const SO_PIN: &str = "1234";
const USER_PIN: &str = "5678";
// Not `KEYGATE_*`: keygate reads those as configuration overrides.
const PIN_VAR: &str = "E2E_BACKENDS_HSM_PIN";
const VAULT_TOKEN_VAR: &str = "E2E_BACKENDS_VAULT_TOKEN";
const AWS_KEY_ID_VAR: &str = "E2E_BACKENDS_AWS_ACCESS_KEY_ID";
const AWS_SECRET_VAR: &str = "E2E_BACKENDS_AWS_SECRET_ACCESS_KEY";

pub struct Backends {
    pub hsm: TestHsm,
    pub bao: OpenBao,
    pub aws: LocalStack,
}

/// A SoftHSM2 token labelled `token` (once per test binary: see [`TestHsm::new`]).
pub fn hsm(token: &'static str) -> TestHsm {
    TestHsm::new(token, SO_PIN, USER_PIN)
}

pub async fn start_openbao() -> OpenBao {
    match tokio::task::spawn_blocking(OpenBao::start).await {
        Ok(Ok(bao)) => bao,
        Ok(Err(e)) => panic!("OpenBao could not be started: {e}"),
        Err(e) => panic!("OpenBao start-up task failed: {e}"),
    }
}

pub async fn start_localstack() -> LocalStack {
    match tokio::task::spawn_blocking(LocalStack::start).await {
        Ok(Ok(ls)) => ls,
        Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
        Err(e) => panic!("LocalStack start-up task failed: {e}"),
    }
}

/// An AWS KMS client for LocalStack at `endpoint`, to make keys there behind keygate's back.
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

/// A request to OpenBao's HTTP API that must succeed.
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
    hsm: Option<&TestHsm>,
    bao: Option<&OpenBao>,
    aws: Option<&LocalStack>,
) -> (String, Vec<(String, String)>) {
    let mut config = String::new();
    let mut env = Vec::new();
    if let Some(hsm) = hsm {
        config.push_str(&format!(
            "[providers.hsm]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken = {{ label = \"{}\" }}\n\
             user_pin = {{ env = \"{PIN_VAR}\" }}\n\n",
            hsm.hsm.module_path().display(),
            hsm.token(),
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

impl Backends {
    /// Starts all three; the HSM's token is labelled `token`.
    pub async fn start(token: &'static str) -> Backends {
        Backends {
            hsm: hsm(token),
            bao: start_openbao().await,
            aws: start_localstack().await,
        }
    }

    /// The `[providers.*]` sections for the three, reading their secrets from [`Self::env`].
    pub fn providers_config(&self) -> String {
        providers(Some(&self.hsm), Some(&self.bao), Some(&self.aws)).0
    }

    /// The variables the gateway needs for [`Self::providers_config`].
    pub fn env(&self) -> Vec<(String, String)> {
        providers(Some(&self.hsm), Some(&self.bao), Some(&self.aws)).1
    }

    /// An AWS KMS client for this LocalStack.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        kms_client(&self.aws.endpoint())
    }

    /// A request to this OpenBao's HTTP API that must succeed.
    pub fn bao(&self, method: &str, path: &str, body: Option<&str>) {
        bao(&self.bao, method, path, body)
    }
}

impl TestHsm {
    /// An AES key somebody put on the token behind keygate's back.
    pub fn stray_key(&self, label: &str) {
        self.session()
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(vec![0x42]),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ],
            )
            .expect("generate a key straight on the token");
    }

    /// Removes the one object labelled `label`.
    pub fn remove(&self, label: &str) {
        let session = self.session();
        let found = session
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
            .expect("find");
        assert_eq!(found.len(), 1, "one object labelled {label}");
        session.destroy_object(found[0]).expect("destroy");
    }
}
