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

impl Backends {
    /// Starts all three; the HSM's token is labelled `token` (once per test binary: see
    /// [`TestHsm::new`]).
    pub async fn start(token: &'static str) -> Backends {
        let hsm = TestHsm::new(token, SO_PIN, USER_PIN);
        let bao = match tokio::task::spawn_blocking(OpenBao::start).await {
            Ok(Ok(bao)) => bao,
            Ok(Err(e)) => panic!("OpenBao could not be started: {e}"),
            Err(e) => panic!("OpenBao start-up task failed: {e}"),
        };
        let aws = match tokio::task::spawn_blocking(LocalStack::start).await {
            Ok(Ok(ls)) => ls,
            Ok(Err(e)) => panic!("LocalStack could not be started: {e}"),
            Err(e) => panic!("LocalStack start-up task failed: {e}"),
        };
        Backends { hsm, bao, aws }
    }

    /// The `[providers.*]` sections for the three, reading their secrets from [`Self::env`].
    pub fn providers_config(&self) -> String {
        format!(
            r#"[providers.hsm]
kind = "pkcs11"
module = "{module}"
token = {{ label = "{token}" }}
user_pin = {{ env = "{PIN_VAR}" }}

[providers.vault]
kind = "vault"
address = "{vault}"
mount = "transit"
auth = {{ method = "token", token = {{ env = "{VAULT_TOKEN_VAR}" }} }}

[providers.aws]
kind = "aws-kms"
region = "us-east-1"
endpoint_url = "{aws}"
credentials = {{ source = "env", access_key_id_env = "{AWS_KEY_ID_VAR}", secret_access_key_env = "{AWS_SECRET_VAR}" }}
"#,
            module = self.hsm.hsm.module_path().display(),
            token = self.hsm.token(),
            vault = self.bao.addr(),
            aws = self.aws.endpoint(),
        )
    }

    /// The variables the gateway needs for [`Self::providers_config`].
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SOFTHSM2_CONF".to_string(),
                self.hsm.hsm.conf_path().display().to_string(),
            ),
            (PIN_VAR.into(), USER_PIN.into()),
            (VAULT_TOKEN_VAR.into(), self.bao.token().into()),
            (AWS_KEY_ID_VAR.into(), "test".into()),
            (AWS_SECRET_VAR.into(), "test".into()),
        ]
    }

    /// An AWS KMS client for LocalStack, to make keys there behind keygate's back.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(self.aws.endpoint())
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    /// A request to OpenBao's HTTP API that must succeed.
    pub fn bao(&self, method: &str, path: &str, body: Option<&str>) {
        let (status, text) = self
            .bao
            .request(method, path, body)
            .expect("OpenBao request");
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
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
