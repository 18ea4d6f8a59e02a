//! The provider conformance suite against the Key Vault emulator over HTTPS, with the SDK
//! doing the HTTP and the bearer challenge and `azure_identity` getting the token: a vault
//! (RSA and EC, software and HSM key types) and a Managed HSM (oct-HSM AES-256, RSA-HSM,
//! EC-HSM).

mod common;

use common::Fixture;
use keygate_provider::conformance::{self, Options};
use keygate_provider::{Algorithm, KeyProvider};

#[tokio::test]
async fn a_vault_passes_for_every_rsa_and_ec_key_type() {
    let f = Fixture::vault().await;
    let p = f.provider("kv-conf");
    assert!(!p.capabilities().supports(Algorithm::Aes256Gcm));
    let mut options = Options::new("conf");
    options.unknown_uri = Some(p.key_uri("no-such-key"));
    if let Err(report) = conformance::run(&p, &options).await {
        panic!("{report}");
    }
}

#[tokio::test]
async fn a_vault_with_hsm_keys_passes_too() {
    let f = Fixture::vault().await;
    let mut config = f.config();
    config.hsm = true;
    let p = keygate_provider_azure::AzureKeyVaultProvider::new("kv-hsm", config).expect("provider");
    let mut options = Options::new("hsm");
    options.algorithms = vec![
        Algorithm::Rsa2048Oaep,
        Algorithm::Rsa3072Pss,
        Algorithm::EcdsaP384,
    ];
    if let Err(report) = conformance::run(&p, &options).await {
        panic!("{report}");
    }
}

#[tokio::test]
async fn a_managed_hsm_passes_for_aes_rsa_and_ec() {
    let f = Fixture::managed_hsm().await;
    let p = f.provider("mhsm-conf");
    assert!(p.is_managed_hsm());
    assert!(p.capabilities().supports(Algorithm::Aes256Gcm));
    let mut options = Options::new("mhsm");
    options.algorithms = vec![
        Algorithm::Aes256Gcm,
        Algorithm::Rsa2048Oaep,
        Algorithm::Rsa2048Pkcs1,
        Algorithm::EcdsaP256,
    ];
    options.unknown_uri = Some(p.key_uri("no-such-key"));
    if let Err(report) = conformance::run(&p, &options).await {
        panic!("{report}");
    }
}
