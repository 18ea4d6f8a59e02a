//! Shared set-up for the provider's tests against the Key Vault emulator: an emulator over
//! HTTPS, its CA written to a file, and a provider configured as a deployment would be
//! (client-secret credential by file reference, the emulator as the authority host).
#![allow(dead_code)]

use keygate_emulators::azure::{self, AzureEmulator, Options};
use keygate_provider::SecretRef;
use keygate_provider::{Algorithm, KeySpec, ProviderKey, VersionRef};
use keygate_provider_azure::{AzureKeyVaultConfig, AzureKeyVaultProvider, CredentialConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const CLIENT_ID: &str = "keygate-tests";
pub const SECRET: &str = "kv-emulator-secret";

pub struct Fixture {
    pub emu: AzureEmulator,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
}

impl Fixture {
    pub async fn start(options: Options) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let emu = azure::spawn_with("127.0.0.1:0", options)
            .await
            .expect("start the Key Vault emulator");
        emu.register_client_secret(CLIENT_ID, SECRET);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emu.ca_pem()).expect("write CA");
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("write secret");
        Fixture { emu, dir, ca }
    }

    pub async fn vault() -> Fixture {
        Self::start(Options::default()).await
    }

    pub async fn managed_hsm() -> Fixture {
        Self::start(Options {
            managed_hsm: true,
            audit_log: None,
        })
        .await
    }

    pub fn config(&self) -> AzureKeyVaultConfig {
        let mut c = AzureKeyVaultConfig::new(
            self.emu.url(),
            CredentialConfig::ClientSecret {
                tenant_id: "tenant-1".into(),
                client_id: CLIENT_ID.into(),
                secret: SecretRef::File(self.dir.path().join("secret")),
            },
        );
        c.managed_hsm = Some(self.emu.is_managed_hsm());
        c.authority_host = Some(self.emu.url());
        c.ca_bundle = Some(self.ca.clone());
        // The challenge names vault.azure.net, not 127.0.0.1.
        c.verify_challenge_resource = false;
        c.connect_timeout_ms = 1_000;
        c.timeout_ms = 15_000;
        c
    }

    pub fn provider(&self, name: &str) -> AzureKeyVaultProvider {
        AzureKeyVaultProvider::new(name, self.config())
            .unwrap_or_else(|e| panic!("building the Azure provider failed: {e}"))
    }
}

pub fn spec(name: &str, algorithm: Algorithm) -> KeySpec {
    KeySpec {
        name: name.into(),
        key_id: format!("id-{name}"),
        algorithm,
        owner: "alice".into(),
        environment: "dev".into(),
        crypto_period: Duration::from_secs(90 * 86_400),
        labels: BTreeMap::new(),
    }
}

pub fn version(key: &ProviderKey, index: usize) -> VersionRef {
    let v = &key.versions[index];
    VersionRef {
        uri: key.uri.clone(),
        algorithm: key.algorithm,
        version: v.number,
        provider_version: v.provider_version.clone(),
    }
}

pub fn latest(key: &ProviderKey) -> VersionRef {
    version(key, key.versions.len() - 1)
}
