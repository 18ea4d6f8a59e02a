//! The Cloud KMS and Key Vault emulators (in this process) as providers `gcp` and `azure` of
//! a gateway, and the official SDKs pointed straight at them, to see what keygate did there.
//!
//! Not part of `common`'s module tree (most tests do not need the cloud SDKs): a test that
//! does includes it with `#[path = "common/clouds.rs"] mod clouds;`.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use keygate_emulators::azure::{self, AzureEmulator, Options};
use keygate_emulators::gcp::{self, GcpEmulator, GcpOptions};
use std::path::Path;
use std::sync::Arc;

const CLIENT_ID: &str = "keygate-e2e";
const CLIENT_SECRET: &str = "e2e-client-secret";

pub struct Clouds {
    pub gcp: GcpEmulator,
    /// A Managed HSM: oct-HSM (AES) keys besides RSA-HSM and EC-HSM.
    pub azure: AzureEmulator,
}

impl Clouds {
    pub async fn start() -> Clouds {
        let gcp = gcp::spawn_with("127.0.0.1:0", GcpOptions::default())
            .await
            .expect("start the Cloud KMS emulator");
        let azure = azure::spawn_with(
            "127.0.0.1:0",
            Options {
                managed_hsm: true,
                audit_log: None,
            },
        )
        .await
        .expect("start the Managed HSM emulator");
        azure.register_client_secret(CLIENT_ID, CLIENT_SECRET);
        Clouds { gcp, azure }
    }

    /// `[providers.gcp]` and `[providers.azure]`; writes the files they name into `dir`.
    pub fn providers_config(&self, dir: &Path) -> String {
        let ca = dir.join("azure-ca.pem");
        std::fs::write(&ca, self.azure.ca_pem()).expect("write CA");
        let secret = dir.join("azure-client-secret");
        std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).expect("write secret");
        format!(
            r#"[providers.gcp]
kind = "gcp-kms"
project = "keygate-e2e"
location = "global"
key_ring = "keygate"
endpoint = "{gcp}"
credentials = {{ source = "anonymous" }}

[providers.azure]
kind = "azure-keyvault"
vault_url = "{azure}"
managed_hsm = true
authority_host = "{azure}"
ca_bundle = "{ca}"
verify_challenge_resource = false
credential = {{ source = "client-secret", tenant_id = "tenant-1", client_id = "{CLIENT_ID}", secret = {{ file = "{secret}" }} }}

[providers.azure.guard]
deadline = "30s"
"#,
            gcp = self.gcp.url(),
            azure = self.azure.url(),
            ca = ca.display(),
            secret = secret.display(),
        )
    }

    /// Cloud KMS's SDK, straight to the emulator.
    pub async fn gcp_sdk(&self) -> KeyManagementService {
        KeyManagementService::builder()
            .with_endpoint(self.gcp.url())
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .build()
            .await
            .expect("Cloud KMS SDK client")
    }

    /// The states of a Cloud KMS key's versions (`uri`: keygate's `gcpkms://…`).
    pub async fn gcp_version_states(&self, uri: &str) -> Vec<CryptoKeyVersionState> {
        let name = uri.trim_start_matches("gcpkms://");
        self.gcp_sdk()
            .await
            .list_crypto_key_versions()
            .set_parent(name)
            .send()
            .await
            .expect("list versions")
            .crypto_key_versions
            .into_iter()
            .map(|v| v.state)
            .collect()
    }

    /// Key Vault's SDK, straight to the emulator, as a user outside keygate would.
    pub fn azure_sdk(&self) -> KeyClient {
        let ca = reqwest::Certificate::from_pem(self.azure.ca_pem().as_bytes()).expect("CA");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("reqwest client");
        let options = KeyClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                ..Default::default()
            },
            verify_challenge_resource: Some(false),
            ..Default::default()
        };
        KeyClient::new(&self.azure.url(), Arc::new(FixedToken), Some(options))
            .expect("Key Vault SDK client")
    }

    /// The names of the keys in the Managed HSM (not deleted ones).
    pub async fn azure_key_names(&self) -> Vec<String> {
        use futures::TryStreamExt as _;
        let listed: Vec<_> = self
            .azure_sdk()
            .list_key_properties(None)
            .expect("list keys")
            .try_collect()
            .await
            .expect("list keys");
        listed
            .iter()
            .filter_map(|p| p.kid.as_deref())
            .filter_map(|kid| kid.split("/keys/").nth(1))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect()
    }
}

/// The Key Vault key name of keygate's `azurekms://HOST/keys/NAME`.
pub fn azure_key_name(uri: &str) -> &str {
    uri.rsplit("/keys/").next().unwrap_or(uri)
}

#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "outside-keygate",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
