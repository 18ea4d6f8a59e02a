//! The provider conformance suite against SoftHSM2, every algorithm the provider claims.

mod common;

use keygate_provider::conformance::{Options, run};
use keygate_provider::{Algorithm, KeyProvider, KeyUri};

async fn conform(prefix: &str, algorithms: &[Algorithm]) {
    let provider = common::provider().await;
    let mut options = Options::new(prefix);
    options.algorithms = algorithms.to_vec();
    options.unknown_uri = Some(KeyUri::new(format!(
        "pkcs11:token={};object=no-such-key",
        common::TOKEN
    )));
    if let Err(report) = run(&provider, &options).await {
        panic!("{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_and_ec() {
    conform(
        "conf-sym-ec",
        &[
            Algorithm::Aes256Gcm,
            Algorithm::HmacSha256,
            Algorithm::EcdsaP256,
            Algorithm::EcdsaP384,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pss() {
    conform(
        "conf-pss",
        &[
            Algorithm::Rsa2048Pss,
            Algorithm::Rsa3072Pss,
            Algorithm::Rsa4096Pss,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_oaep() {
    conform(
        "conf-oaep",
        &[
            Algorithm::Rsa2048Oaep,
            Algorithm::Rsa3072Oaep,
            Algorithm::Rsa4096Oaep,
        ],
    )
    .await;
}

#[tokio::test]
async fn every_claimed_algorithm_is_covered() {
    let provider = common::provider().await;
    let mut claimed = provider.capabilities().algorithms;
    claimed.sort_by_key(|a| a.as_str());
    let mut tested = vec![
        Algorithm::Aes256Gcm,
        Algorithm::HmacSha256,
        Algorithm::EcdsaP256,
        Algorithm::EcdsaP384,
        Algorithm::Rsa2048Pss,
        Algorithm::Rsa3072Pss,
        Algorithm::Rsa4096Pss,
        Algorithm::Rsa2048Oaep,
        Algorithm::Rsa3072Oaep,
        Algorithm::Rsa4096Oaep,
    ];
    tested.sort_by_key(|a| a.as_str());
    assert_eq!(claimed, tested);
}
